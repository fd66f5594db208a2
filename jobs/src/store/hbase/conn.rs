//! One connection to the Thrift server: the socket that remembers its last I/O error, the
//! client over the configured transport and protocol, and the calls with their retries and
//! the messages that name what went wrong.

use super::*;

/// `e` with its detail: the `thrift` crate's own text of a transport or
/// protocol error is only its kind ("transport error").
pub(super) fn describe(e: &thrift::Error) -> String {
    let (kind, message) = match e {
        thrift::Error::Transport(t) => (t.to_string(), &t.message),
        thrift::Error::Protocol(p) => (p.to_string(), &p.message),
        other => return other.to_string(),
    };
    if message.is_empty() || *message == kind {
        kind
    } else {
        format!("{kind}: {message}")
    }
}

/// Whether `e` is the server hanging up (end of file, a reset, a broken pipe)
/// or not answering: what a server of another transport or protocol does.
pub(super) fn closed_connection(e: &thrift::Error, io: Option<io::ErrorKind>) -> bool {
    hung_up(e, io) || timed_out(e, io)
}

/// Whether `e` is the server hanging up: end of file, or (by the socket's own
/// error kind, which the `thrift` crate keeps only as text) a reset or a broken pipe.
pub(super) fn hung_up(e: &thrift::Error, io: Option<io::ErrorKind>) -> bool {
    use io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
    match e {
        thrift::Error::Transport(t) => {
            t.kind == thrift::TransportErrorKind::EndOfFile
                || matches!(io, Some(ConnectionReset | BrokenPipe | ConnectionAborted))
        }
        _ => false,
    }
}

/// Whether `e` is the socket's read or write timeout (`WouldBlock` is how a
/// socket timeout surfaces on Linux).
pub(super) fn timed_out(e: &thrift::Error, io: Option<io::ErrorKind>) -> bool {
    use io::ErrorKind::{TimedOut, WouldBlock};
    match e {
        thrift::Error::Transport(t) => {
            t.kind == thrift::TransportErrorKind::TimedOut
                || matches!(io, Some(TimedOut | WouldBlock))
        }
        _ => false,
    }
}

/// The kind of the last I/O error on a connection's socket, shared by its two halves.
#[derive(Clone, Default)]
pub(super) struct LastIoError(Arc<Mutex<Option<io::ErrorKind>>>);

impl LastIoError {
    pub(super) fn record<T>(&self, r: io::Result<T>) -> io::Result<T> {
        if let (Err(e), Ok(mut last)) = (&r, self.0.lock()) {
            *last = Some(e.kind());
        }
        r
    }

    /// The kind recorded since the last `take`, cleared.
    pub(super) fn take(&self) -> Option<io::ErrorKind> {
        self.0.lock().ok().and_then(|mut last| last.take())
    }
}

/// The TCP stream under a client, remembering the kind of its last I/O error:
/// the `thrift` crate turns most socket errors (a reset, a broken pipe, a read
/// timeout) into one "unknown" kind with the error's text.
pub(super) struct Channel {
    pub(super) stream: TcpStream,
    pub(super) last: LastIoError,
}

impl Read for Channel {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.last.record(self.stream.read(buf))
    }
}

impl Write for Channel {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.last.record(self.stream.write(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.last.record(self.stream.flush())
    }
}

impl TIoChannel for Channel {
    fn split(self) -> thrift::Result<(ReadHalf<Self>, WriteHalf<Self>)> {
        let writer = Channel {
            stream: self.stream.try_clone()?,
            last: self.last.clone(),
        };
        Ok((ReadHalf::new(self), WriteHalf::new(writer)))
    }
}

/// A connected client and its socket's last I/O error.
pub(super) struct Connection {
    pub(super) client: Client,
    pub(super) last_io: LastIoError,
}

/// The message an HBase exception carries (its `Display` names only its type),
/// as `": message"`, or nothing.
pub(super) fn exception_message(e: &(dyn std::error::Error + Send + Sync + 'static)) -> String {
    use hbase_thrift::hbase::{AlreadyExists, IOError, IllegalArgument};
    let message = if let Some(e) = e.downcast_ref::<IOError>() {
        e.message.as_deref()
    } else if let Some(e) = e.downcast_ref::<IllegalArgument>() {
        e.message.as_deref()
    } else if let Some(e) = e.downcast_ref::<AlreadyExists>() {
        e.message.as_deref()
    } else {
        None
    };
    message.map(|m| format!(": {m}")).unwrap_or_default()
}

/// The server's answer to a call, typed: an HBase exception of the Thrift
/// service, or another user error (which the service does not declare).
pub(super) fn server_error(e: &(dyn std::error::Error + Send + Sync + 'static)) -> RemoteKind {
    if let Some(e) = e.downcast_ref::<hbase_thrift::hbase::IOError>() {
        RemoteKind::IoException {
            can_retry: e.can_retry,
        }
    } else if e.is::<hbase_thrift::hbase::IllegalArgument>() {
        RemoteKind::IllegalArgument
    } else if e.is::<hbase_thrift::hbase::AlreadyExists>() {
        RemoteKind::AlreadyExists
    } else {
        RemoteKind::IoException { can_retry: None }
    }
}

/// New connections in a row, each closed by the server at its first call, after
/// which a call stops retrying. A server of another transport or protocol hangs
/// up on every connection, except that an unframed binary server leaves a framed
/// client waiting for its timeout; a restarting server refuses connections,
/// which resets the count.
pub(super) const HANGUPS_BEFORE_GIVING_UP: u32 = 3;

/// A client speaking `transport` and `protocol` over `channel`.
pub(super) fn client_over(
    channel: Channel,
    transport: ThriftTransport,
    protocol: ThriftProtocol,
) -> thrift::Result<Client> {
    use ThriftProtocol::{Binary, Compact};
    use ThriftTransport::{Buffered, Framed};
    let (i, o) = channel.split()?;
    Ok(match (transport, protocol) {
        (Buffered, Binary) => Box::new(HbaseSyncClient::new(
            TBinaryInputProtocol::new(TBufferedReadTransport::new(i), true),
            TBinaryOutputProtocol::new(TBufferedWriteTransport::new(o), true),
        )),
        (Buffered, Compact) => Box::new(HbaseSyncClient::new(
            TCompactInputProtocol::new(TBufferedReadTransport::new(i)),
            TCompactOutputProtocol::new(TBufferedWriteTransport::new(o)),
        )),
        (Framed, Binary) => Box::new(HbaseSyncClient::new(
            TBinaryInputProtocol::new(TFramedReadTransport::new(i), true),
            TBinaryOutputProtocol::new(TFramedWriteTransport::new(o), true),
        )),
        (Framed, Compact) => Box::new(HbaseSyncClient::new(
            TCompactInputProtocol::new(TFramedReadTransport::new(i)),
            TCompactOutputProtocol::new(TFramedWriteTransport::new(o)),
        )),
    })
}

pub(super) struct Conn {
    pub(super) cfg: HbaseConfig,
    /// A small pool: each slot holds one connection (or none after a failure).
    pub(super) clients: Vec<Mutex<Option<Connection>>>,
    pub(super) next: AtomicUsize,
}

impl Conn {
    pub(super) fn connect(&self) -> Result<Connection, String> {
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
                    let last_io = LastIoError::default();
                    let channel = Channel {
                        stream,
                        last: last_io.clone(),
                    };
                    return client_over(channel, self.cfg.transport, self.cfg.protocol)
                        .map(|client| Connection { client, last_io })
                        .map_err(|e| format!("splitting channel: {e}"));
                }
                Err(e) => last = format!("connecting: {e}"),
            }
        }
        Err(last)
    }

    /// Runs `f` on a connected client, reconnecting and retrying transient failures.
    pub(super) fn call<T>(
        &self,
        table: &str,
        mut f: impl FnMut(&mut Client) -> thrift::Result<T>,
    ) -> Result<T, TableError> {
        let start = Instant::now();
        let mut backoff = Duration::from_millis(100);
        // New connections in a row the server hung up on at their first call.
        let mut hangups = 0;
        loop {
            // Whether this attempt's failure was the server hanging up.
            let mut closed_by_server = false;
            let message = {
                let mut guard = self.slot(table)?;
                let (connected, fresh) = match guard.take() {
                    Some(c) => (Ok(c), false),
                    None => (self.connect(), true),
                };
                match connected {
                    Err(e) => {
                        hangups = 0;
                        e
                    }
                    Ok(mut conn) => {
                        conn.last_io.take();
                        match f(&mut conn.client) {
                            Ok(v) => {
                                *guard = Some(conn);
                                return Ok(v);
                            }
                            Err(thrift::Error::Application(e)) => {
                                *guard = Some(conn);
                                return Err(self.err(
                                    table,
                                    RemoteKind::Refused,
                                    format!("server refused the call: {}", e.message),
                                ));
                            }
                            // IOError, IllegalArgument, AlreadyExists: the server's answer, not a fault.
                            Err(thrift::Error::User(e)) => {
                                *guard = Some(conn);
                                let message =
                                    format!("server error: {e}{}", exception_message(&*e));
                                return Err(self.err(table, server_error(&*e), message));
                            }
                            // Transport or protocol trouble: drop the connection, retry on a new one.
                            Err(e) => {
                                let io = conn.last_io.take();
                                closed_by_server = closed_connection(&e, io);
                                hangups = if fresh && hung_up(&e, io) {
                                    hangups + 1
                                } else {
                                    0
                                };
                                describe(&e)
                            }
                        }
                    }
                }
            };
            let hint = if closed_by_server {
                self.wire_hint()
            } else {
                String::new()
            };
            if hangups >= HANGUPS_BEFORE_GIVING_UP {
                return Err(TableError::Wire {
                    address: self.cfg.address.clone(),
                    table: table.to_string(),
                    message: format!(
                        "{message} on {hangups} new connections in a row, each at its first call{hint}"
                    ),
                });
            }
            if start.elapsed() + backoff > self.cfg.deadline {
                return Err(self.err(
                    table,
                    RemoteKind::GaveUp,
                    format!(
                        "{message} (gave up after {:.1}s){hint}",
                        start.elapsed().as_secs_f64()
                    ),
                ));
            }
            tracing::warn!(address = %self.cfg.address, table, error = %format!("{message}{hint}"), "HBase call failed, retrying");
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// What to check when the server keeps closing connections: a server
    /// with another transport or protocol drops the first message.
    pub(super) fn wire_hint(&self) -> String {
        let (transport, protocol) = (self.cfg.transport, self.cfg.protocol);
        let mut hint = format!(
            "; the server closed the connection or did not answer: is it serving the {} transport and the {} \
             protocol, as this client expects (the Thrift server's -f/--framed and -c/--compact \
             flags)?",
            transport.as_str(),
            protocol.as_str()
        );
        if transport == ThriftTransport::Framed {
            hint.push_str(
                " A framed server also closes a connection whose frame exceeds \
                 hbase.regionserver.thrift.framed.max_frame_size_in_mb",
            );
        }
        hint
    }

    /// A free pool slot if there is one, else waits for the next in turn.
    pub(super) fn slot(
        &self,
        table: &str,
    ) -> Result<MutexGuard<'_, Option<Connection>>, TableError> {
        let n = self.clients.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            if let Ok(guard) = self.clients[(start + i) % n].try_lock() {
                return Ok(guard);
            }
        }
        self.clients[start % n]
            .lock()
            .map_err(|_| self.err(table, RemoteKind::Client, "client lock poisoned".into()))
    }

    pub(super) fn err(&self, table: &str, kind: RemoteKind, message: String) -> TableError {
        TableError::Remote {
            address: self.cfg.address.clone(),
            table: table.to_string(),
            kind,
            message,
        }
    }
}
