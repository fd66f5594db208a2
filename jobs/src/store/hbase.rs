//! The serving table on HBase, over the Thrift 1 `Hbase` service.
//!
//! The client is synchronous; one connection is kept per store behind a mutex
//! and re-opened after a transport failure. Every call is retried with
//! exponential backoff until a deadline, then fails naming the address.

use std::collections::HashMap;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hbase_thrift::hbase::{
    BatchMutation, ColumnDescriptor, HbaseSyncClient, Mutation, THbaseSyncClient,
};
use thrift::protocol::{TBinaryInputProtocol, TBinaryOutputProtocol};
use thrift::transport::{
    ReadHalf, TBufferedReadTransport, TBufferedWriteTransport, TIoChannel, TTcpChannel, WriteHalf,
};

use super::table::{Cells, Row, Table, TableError, TableStore};

type Client = HbaseSyncClient<
    TBinaryInputProtocol<TBufferedReadTransport<ReadHalf<TTcpChannel>>>,
    TBinaryOutputProtocol<TBufferedWriteTransport<WriteHalf<TTcpChannel>>>,
>;

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
}

impl HbaseConfig {
    /// Defaults for `address`: 10 s per I/O, 60 s per call including retries,
    /// 4 connections.
    pub fn new(address: impl Into<String>) -> Self {
        HbaseConfig {
            address: address.into(),
            io_timeout: Duration::from_secs(10),
            deadline: Duration::from_secs(60),
            connections: 4,
        }
    }
}

struct Conn {
    cfg: HbaseConfig,
    /// A small pool: each slot holds one connection (or none after a failure).
    clients: Vec<Mutex<Option<Client>>>,
    next: AtomicUsize,
}

impl Conn {
    fn connect(&self) -> Result<Client, String> {
        let addrs: Vec<_> = self
            .cfg
            .address
            .to_socket_addrs()
            .map_err(|e| format!("resolving: {e}"))?
            .collect();
        let mut last = String::from("no address");
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, self.cfg.io_timeout) {
                Ok(stream) => {
                    stream
                        .set_read_timeout(Some(self.cfg.io_timeout))
                        .and_then(|_| stream.set_write_timeout(Some(self.cfg.io_timeout)))
                        .and_then(|_| stream.set_nodelay(true))
                        .map_err(|e| format!("configuring socket: {e}"))?;
                    let (i, o) = TTcpChannel::with_stream(stream)
                        .split()
                        .map_err(|e| format!("splitting channel: {e}"))?;
                    return Ok(HbaseSyncClient::new(
                        TBinaryInputProtocol::new(TBufferedReadTransport::new(i), true),
                        TBinaryOutputProtocol::new(TBufferedWriteTransport::new(o), true),
                    ));
                }
                Err(e) => last = format!("connecting: {e}"),
            }
        }
        Err(last)
    }

    /// Runs `f` on a connected client, reconnecting and retrying transient failures.
    fn call<T>(
        &self,
        table: &str,
        mut f: impl FnMut(&mut Client) -> thrift::Result<T>,
    ) -> Result<T, TableError> {
        let start = Instant::now();
        let mut backoff = Duration::from_millis(100);
        loop {
            let message = {
                let mut guard = self.slot(table)?;
                let connected = match guard.take() {
                    Some(c) => Ok(c),
                    None => self.connect(),
                };
                match connected {
                    Err(e) => e,
                    Ok(mut client) => match f(&mut client) {
                        Ok(v) => {
                            *guard = Some(client);
                            return Ok(v);
                        }
                        Err(thrift::Error::Application(e)) => {
                            *guard = Some(client);
                            return Err(
                                self.err(table, format!("server refused the call: {}", e.message))
                            );
                        }
                        // IOError, IllegalArgument, AlreadyExists: the server's answer, not a fault.
                        Err(thrift::Error::User(e)) => {
                            *guard = Some(client);
                            return Err(self.err(table, format!("server error: {e}")));
                        }
                        // Transport or protocol trouble: drop the connection, retry on a new one.
                        Err(e) => e.to_string(),
                    },
                }
            };
            if start.elapsed() + backoff > self.cfg.deadline {
                return Err(self.err(
                    table,
                    format!(
                        "{message} (gave up after {:.1}s)",
                        start.elapsed().as_secs_f64()
                    ),
                ));
            }
            tracing::warn!(address = %self.cfg.address, table, error = %message, "HBase call failed, retrying");
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// A free pool slot if there is one, else waits for the next in turn.
    fn slot(&self, table: &str) -> Result<MutexGuard<'_, Option<Client>>, TableError> {
        let n = self.clients.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            if let Ok(guard) = self.clients[(start + i) % n].try_lock() {
                return Ok(guard);
            }
        }
        self.clients[start % n]
            .lock()
            .map_err(|_| self.err(table, "client lock poisoned".into()))
    }

    fn err(&self, table: &str, message: String) -> TableError {
        TableError::Remote {
            address: self.cfg.address.clone(),
            table: table.to_string(),
            message,
        }
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
            Err(e)
                if e.to_string().contains("AlreadyExists")
                    || e.to_string().contains("already exists") =>
            {
                Ok(())
            }
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

impl Table for HbaseTable {
    fn put(&self, rows: &[Row]) -> Result<(), TableError> {
        if rows.is_empty() {
            return Ok(());
        }
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
                        failure.get_or_insert(
                            self.conn
                                .err(&self.name, "a getRows worker panicked".to_string()),
                        );
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
                self.conn
                    .err(&self.name, "a getRows chunk was not read".to_string())
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
