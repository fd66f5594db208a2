//! The serving table on HBase, over the Thrift 1 `Hbase` service.
//!
//! The client is synchronous; one connection is kept per store behind a mutex
//! and re-opened after a transport failure. Every call is retried with
//! exponential backoff until a deadline, then fails naming the address.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hbase_thrift::hbase::{
    BatchMutation, ColumnDescriptor, HbaseSyncClient, Mutation, THbaseSyncClient,
};
use thrift::protocol::{
    TBinaryInputProtocol, TBinaryOutputProtocol, TCompactInputProtocol, TCompactOutputProtocol,
};
use thrift::transport::{
    ReadHalf, TBufferedReadTransport, TBufferedWriteTransport, TFramedReadTransport,
    TFramedWriteTransport, TIoChannel, WriteHalf,
};

use super::table::{Cells, RemoteKind, Row, Table, TableError, TableStore};

/// A connected client; one dynamic call per Thrift method, the protocol and
/// transport underneath it compiled for each of the four wire settings.
type Client = Box<dyn THbaseSyncClient + Send>;

/// How the Thrift server delimits and encodes messages (its `-f`/`--framed` and
/// `-c`/`--compact` flags; the `-hsha`, `-nonblocking` and `-threadedselector` modes accept
/// framed connections only): the contract's wire enums.
pub use ecom_contract::wire::{ThriftProtocol, ThriftTransport};

mod conn;

use conn::*;

/// Bytes of Thrift data a framed `mutateRows` call stays under: half of the
/// server's default frame limit (`hbase.regionserver.thrift.framed.max_frame_size_in_mb`,
/// 2 MB), which closes the connection on a larger frame.
pub const FRAME_BUDGET: u64 = 1 << 20;

/// Connection settings of the Thrift server.
#[derive(Debug, Clone)]
pub struct HbaseConfig {
    /// `host:port` of the HBase Thrift server.
    pub address: String,
    /// Timeout of one connect, read or write.
    pub io_timeout: Duration,
    /// Give up on a call (with retries) after this long.
    pub deadline: Duration,
    /// Connections kept open (calls from that many threads run in parallel).
    pub connections: usize,
    /// The server's transport; it must match, or every call fails.
    pub transport: ThriftTransport,
    /// The server's protocol; it must match, or every call fails.
    pub protocol: ThriftProtocol,
}

impl HbaseConfig {
    /// Defaults for `address`: 10 s per I/O, 60 s per call including retries,
    /// 4 connections, the server's default buffered transport and binary protocol.
    pub fn new(address: impl Into<String>) -> Self {
        HbaseConfig {
            address: address.into(),
            io_timeout: Duration::from_secs(10),
            deadline: Duration::from_secs(60),
            connections: 4,
            transport: ThriftTransport::default(),
            protocol: ThriftProtocol::default(),
        }
    }

    /// The same settings with `transport` and `protocol`.
    pub fn with_wire(mut self, transport: ThriftTransport, protocol: ThriftProtocol) -> Self {
        self.transport = transport;
        self.protocol = protocol;
        self
    }
}

/// Tables of one HBase cluster, reached through its Thrift server.
#[derive(Clone)]
pub struct HbaseTables {
    conn: Arc<Conn>,
}

impl HbaseTables {
    /// A store that connects lazily to `cfg.address`.
    pub fn new(cfg: HbaseConfig) -> Self {
        HbaseTables {
            conn: Arc::new(Conn {
                clients: (0..cfg.connections.max(1))
                    .map(|_| Mutex::new(None))
                    .collect(),
                next: AtomicUsize::new(0),
                cfg,
            }),
        }
    }

    /// Whether the server answers (lists tables once, with retries).
    pub fn ping(&self) -> Result<(), TableError> {
        self.conn.call("", |c| c.get_table_names()).map(|_| ())
    }

    /// Disables and deletes `name` if it exists.
    pub fn drop_table(&self, name: &str) -> Result<(), TableError> {
        let exists = self
            .conn
            .call(name, |c| c.get_table_names())?
            .iter()
            .any(|t| t == name.as_bytes());
        if exists {
            self.conn.call(name, |c| c.disable_table(name.into()))?;
            self.conn.call(name, |c| c.delete_table(name.into()))?;
        }
        Ok(())
    }
}

/// A column family with the Thrift IDL defaults spelled out (the generated
/// `Default` leaves them unset, which the server reads as zero versions).
pub fn family_descriptor(family: &str) -> ColumnDescriptor {
    ColumnDescriptor {
        name: Some(format!("{family}:").into_bytes()),
        max_versions: Some(1),
        compression: Some("NONE".into()),
        in_memory: Some(false),
        bloom_filter_type: Some("ROW".into()),
        bloom_filter_vector_size: Some(0),
        bloom_filter_nb_hashes: Some(0),
        block_cache_enabled: Some(true),
        time_to_live: Some(i32::MAX),
    }
}

impl TableStore for HbaseTables {
    fn ensure_table(&self, name: &str, families: &[&str]) -> Result<(), TableError> {
        let names = self.conn.call(name, |c| c.get_table_names())?;
        if names.iter().any(|t| t == name.as_bytes()) {
            return Ok(());
        }
        let descriptors: Vec<ColumnDescriptor> =
            families.iter().map(|f| family_descriptor(f)).collect();
        match self
            .conn
            .call(name, |c| c.create_table(name.into(), descriptors.clone()))
        {
            Ok(()) => Ok(()),
            // Another loader created it in between.
            Err(TableError::Remote {
                kind: RemoteKind::AlreadyExists,
                ..
            }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn table(&self, name: &str) -> Result<Arc<dyn Table>, TableError> {
        let names = self.conn.call(name, |c| c.get_table_names())?;
        if !names.iter().any(|t| t == name.as_bytes()) {
            return Err(TableError::NoTable(name.into()));
        }
        Ok(Arc::new(HbaseTable {
            conn: self.conn.clone(),
            name: name.to_string(),
        }))
    }
}

struct HbaseTable {
    conn: Arc<Conn>,
    name: String,
}

/// Row keys per `getRows` call of [`Table::get_many`].
pub const GET_MANY_CHUNK: usize = 1000;

fn to_row(r: hbase_thrift::hbase::TRowResult) -> Row {
    let cells: Cells = r
        .columns
        .unwrap_or_default()
        .into_iter()
        .map(|(k, cell)| {
            (
                String::from_utf8_lossy(&k).into_owned(),
                cell.value.unwrap_or_default(),
            )
        })
        .collect();
    Row {
        key: r.row.unwrap_or_default(),
        cells,
    }
}

impl HbaseTable {
    /// One `mutateRows` call.
    fn mutate(&self, rows: &[Row]) -> Result<(), TableError> {
        let build = || -> Vec<BatchMutation> {
            rows.iter()
                .map(|row| BatchMutation {
                    row: Some(row.key.clone()),
                    mutations: Some(
                        row.cells
                            .iter()
                            // `isDelete` and `writeToWAL` are left out: the server's
                            // IDL defaults (a put, written to the WAL) apply, and it
                            // reads two fields less per cell.
                            .map(|(column, value)| Mutation {
                                is_delete: None,
                                column: Some(column.as_bytes().to_vec()),
                                value: Some(value.clone()),
                                write_to_w_a_l: None,
                            })
                            .collect(),
                    ),
                })
                .collect()
        };
        // The client consumes its argument: build it once, again only on a retry.
        let mut first = Some(build());
        self.conn.call(&self.name, |c| {
            let batches = first.take().unwrap_or_else(build);
            c.mutate_rows(self.name.as_bytes().to_vec(), batches, Default::default())
        })
    }

    /// The rows of one chunk of keys, in the chunk's order: one `getRows` call.
    fn get_chunk(&self, chunk: &[Vec<u8>]) -> Result<Vec<Option<Row>>, TableError> {
        // The first position of each distinct key in the chunk.
        let mut first: HashMap<&[u8], usize> = HashMap::with_capacity(chunk.len());
        let mut asked: Vec<&Vec<u8>> = Vec::with_capacity(chunk.len());
        for (i, key) in chunk.iter().enumerate() {
            first.entry(key.as_slice()).or_insert_with(|| {
                asked.push(key);
                i
            });
        }
        let build = || asked.iter().map(|k| k.to_vec()).collect::<Vec<_>>();
        // The client consumes its argument: build it once, again only on a retry.
        let mut request = Some(build());
        let results = self.conn.call(&self.name, |c| {
            let rows = request.take().unwrap_or_else(build);
            c.get_rows(self.name.as_bytes().to_vec(), rows, Default::default())
        })?;
        let mut found: Vec<Option<Row>> = vec![None; chunk.len()];
        for result in results {
            let row = to_row(result);
            let Some(&i) = first.get(row.key.as_slice()) else {
                return Err(self.conn.err(
                    &self.name,
                    RemoteKind::Client,
                    format!(
                        "getRows answered row {:?}, which was not asked for",
                        String::from_utf8_lossy(&row.key)
                    ),
                ));
            };
            found[i] = Some(row);
        }
        // A repeated key gets the row of its first occurrence.
        for (i, key) in chunk.iter().enumerate() {
            match first.get(key.as_slice()) {
                Some(&j) if j != i => found[i] = found[j].clone(),
                _ => {}
            }
        }
        Ok(found)
    }
}

/// Thrift bytes of one row in a `mutateRows` call, roughly (field headers
/// included), for keeping framed calls under [`FRAME_BUDGET`].
fn encoded_len(row: &Row) -> u64 {
    let cells: usize = row
        .cells
        .iter()
        .map(|(column, value)| column.len() + value.len() + 24)
        .sum();
    (row.key.len() + 16 + cells) as u64
}

/// `rows` cut into runs of at most `budget` encoded bytes (a larger row alone).
fn frame_chunks(rows: &[Row], budget: u64) -> Vec<&[Row]> {
    crate::chunks::by_size(rows, budget, encoded_len)
}

impl Table for HbaseTable {
    /// One `mutateRows` call; on a framed connection, one per
    /// [`FRAME_BUDGET`] bytes.
    fn put(&self, rows: &[Row]) -> Result<(), TableError> {
        if rows.is_empty() {
            return Ok(());
        }
        match self.conn.cfg.transport {
            ThriftTransport::Buffered => self.mutate(rows),
            ThriftTransport::Framed => frame_chunks(rows, FRAME_BUDGET)
                .into_iter()
                .try_for_each(|chunk| self.mutate(chunk)),
        }
    }

    fn get(&self, key: &[u8]) -> Result<Option<Row>, TableError> {
        let rows = self.conn.call(&self.name, |c| {
            c.get_row(
                self.name.clone().into_bytes(),
                key.to_vec(),
                Default::default(),
            )
        })?;
        Ok(rows.into_iter().next().map(to_row))
    }

    /// One `getRows` call per [`GET_MANY_CHUNK`] keys (each distinct key asked
    /// once), the chunks spread over the connection pool; the answer omits
    /// missing rows and need not follow the asked order, so rows are matched
    /// back to their keys by row key.
    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Row>>, TableError> {
        let chunks: Vec<&[Vec<u8>]> = keys.chunks(GET_MANY_CHUNK).collect();
        let workers = self.conn.clients.len().min(chunks.len());
        if workers <= 1 {
            let mut out = Vec::with_capacity(keys.len());
            for chunk in chunks {
                out.extend(self.get_chunk(chunk)?);
            }
            return Ok(out);
        }
        // Workers take the next chunk until none is left or one fails.
        let next = AtomicUsize::new(0);
        let mut answers: Vec<Option<Vec<Option<Row>>>> = vec![None; chunks.len()];
        let mut failure = None;
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    scope.spawn(|| {
                        let mut mine = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(chunk) = chunks.get(i) else {
                                return Ok(mine);
                            };
                            match self.get_chunk(chunk) {
                                Ok(rows) => mine.push((i, rows)),
                                Err(e) => {
                                    // The others stop at their next chunk.
                                    next.store(chunks.len(), Ordering::Relaxed);
                                    return Err(e);
                                }
                            }
                        }
                    })
                })
                .collect();
            for h in handles {
                match h.join() {
                    Ok(Ok(mine)) => mine
                        .into_iter()
                        .for_each(|(i, rows)| answers[i] = Some(rows)),
                    Ok(Err(e)) => {
                        failure.get_or_insert(e);
                    }
                    Err(_) => {
                        failure.get_or_insert(self.conn.err(
                            &self.name,
                            RemoteKind::Client,
                            "a getRows worker panicked".to_string(),
                        ));
                    }
                }
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        let mut out = Vec::with_capacity(keys.len());
        for rows in answers {
            out.extend(rows.ok_or_else(|| {
                self.conn.err(
                    &self.name,
                    RemoteKind::Client,
                    "a getRows chunk was not read".to_string(),
                )
            })?);
        }
        Ok(out)
    }

    fn scan(&self, start: &[u8], stop: &[u8], limit: usize) -> Result<Vec<Row>, TableError> {
        let table = self.name.clone().into_bytes();
        let id = self.conn.call(&self.name, |c| {
            c.scanner_open_with_stop(
                table.clone(),
                start.to_vec(),
                stop.to_vec(),
                Vec::new(),
                Default::default(),
            )
        })?;
        let mut out = Vec::new();
        let result = loop {
            let want = (limit - out.len()).min(1000) as i32;
            if want == 0 {
                break Ok(());
            }
            match self.conn.call(&self.name, |c| c.scanner_get_list(id, want)) {
                Ok(batch) if batch.is_empty() => break Ok(()),
                Ok(batch) => out.extend(batch.into_iter().map(to_row)),
                Err(e) => break Err(e),
            }
        };
        let closed = self.conn.call(&self.name, |c| c.scanner_close(id));
        result?;
        closed?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &str, value_len: usize) -> Row {
        let mut cells = Cells::new();
        cells.insert("f:c".into(), vec![b'x'; value_len]);
        Row {
            key: key.as_bytes().to_vec(),
            cells,
        }
    }

    #[test]
    fn frame_chunks_keep_order_and_stay_under_the_budget() {
        let rows: Vec<Row> = (0..10).map(|i| row(&format!("k{i}"), 100)).collect();
        let one = encoded_len(&rows[0]);
        let chunks = frame_chunks(&rows, 3 * one);
        assert_eq!(
            chunks.iter().map(|c| c.len()).collect::<Vec<_>>(),
            [3, 3, 3, 1]
        );
        let flat: Vec<&Row> = chunks.iter().flat_map(|c| c.iter()).collect();
        assert!(flat.iter().zip(&rows).all(|(a, b)| *a == b));
        // Everything fits: one call.
        assert_eq!(frame_chunks(&rows, u64::MAX).len(), 1);
    }

    #[test]
    fn a_row_above_the_budget_goes_alone() {
        let rows = vec![row("a", 10), row("big", 5000), row("c", 10)];
        let chunks = frame_chunks(&rows, 1000);
        assert_eq!(
            chunks.iter().map(|c| c.len()).collect::<Vec<_>>(),
            [1, 1, 1]
        );
        assert!(frame_chunks(&[], 1000).is_empty());
    }

    #[test]
    fn transport_errors_keep_their_detail_and_hangups_are_recognised() {
        let io = |kind, text: &str| thrift::Error::from(std::io::Error::new(kind, text));
        let pipe = io(std::io::ErrorKind::BrokenPipe, "Broken pipe (os error 32)");
        assert_eq!(
            describe(&pipe),
            "transport error: Broken pipe (os error 32)"
        );
        assert!(closed_connection(
            &pipe,
            Some(std::io::ErrorKind::BrokenPipe)
        ));
        let eof = thrift::Error::from(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        assert!(closed_connection(&eof, None));
        let refused = io(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused (os error 111)",
        );
        assert_eq!(
            describe(&refused),
            "not open: Connection refused (os error 111)"
        );
        assert!(!closed_connection(
            &refused,
            Some(std::io::ErrorKind::ConnectionRefused)
        ));
        let app = thrift::Error::Application(thrift::ApplicationError::new(
            thrift::ApplicationErrorKind::InternalError,
            "boom",
        ));
        assert!(!closed_connection(&app, None));
    }

    /// A listener on loopback that serves `serve` to each accepted connection
    /// until `connections` were accepted, then stops listening.
    fn server(connections: usize, serve: fn(TcpStream)) -> (String, std::thread::JoinHandle<()>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let handle = std::thread::spawn(move || {
            for stream in listener.incoming().take(connections) {
                serve(stream.expect("accept"));
            }
        });
        (address, handle)
    }

    /// Reads what the client sent, then closes: a server of another wire.
    fn hang_up(mut stream: TcpStream) {
        use std::io::Read;
        let mut buf = [0u8; 64];
        let _ = stream.read(&mut buf);
    }

    fn tables(address: &str, deadline: Duration) -> HbaseTables {
        let mut cfg = HbaseConfig::new(address);
        cfg.deadline = deadline;
        cfg.io_timeout = Duration::from_secs(5);
        cfg.connections = 1;
        HbaseTables::new(cfg)
    }

    #[test]
    fn a_server_that_hangs_up_on_every_new_connection_fails_the_call_at_once() {
        let (address, server) = server(HANGUPS_BEFORE_GIVING_UP as usize, hang_up);
        let started = Instant::now();
        let err = tables(&address, Duration::from_secs(600))
            .ensure_table("t", &["f"])
            .expect_err("a hanging-up server");
        // Three attempts and two backoffs (0.1 s, 0.2 s), not the 600 s deadline.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        let TableError::Wire {
            address: named,
            message,
            ..
        } = &err
        else {
            panic!("not a wire error: {err}");
        };
        assert_eq!(named, &address);
        assert!(
            message.contains("on 3 new connections in a row"),
            "{message}"
        );
        assert!(
            message.contains("buffered transport and the binary protocol"),
            "{message}"
        );
        server.join().expect("server thread");
    }

    #[test]
    fn hangups_broken_by_a_refused_connection_are_retried_until_the_deadline() {
        // Two hang-ups, then nobody listens (a server going down): the count starts
        // again, and the call ends at its deadline as before.
        let (address, server) = server(2, hang_up);
        let err = tables(&address, Duration::from_secs(2))
            .ensure_table("t", &["f"])
            .expect_err("no server");
        assert!(
            matches!(
                err,
                TableError::Remote {
                    kind: RemoteKind::GaveUp,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("gave up after"), "{err}");
        server.join().expect("server thread");
    }

    #[test]
    fn timeouts_are_not_hangups() {
        let timeout = thrift::Error::from(std::io::Error::new(
            std::io::ErrorKind::WouldBlock,
            "Resource temporarily unavailable (os error 11)",
        ));
        let kind = Some(std::io::ErrorKind::WouldBlock);
        assert!(closed_connection(&timeout, kind) && timed_out(&timeout, kind));
        assert!(!hung_up(&timeout, kind));
        let eof = thrift::Error::from(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        assert!(hung_up(&eof, None) && !timed_out(&eof, None));
    }
}
