//! Which stage failures are worth another attempt.
//!
//! [`classify`] walks an error's chain and sorts it into [`ErrorClass::Permanent`]
//! (waiting cannot fix it: a path that is not a directory or does not exist, a
//! permission refused, a corrupt Parquet or JSON file, a malformed flag, an HBase
//! `IllegalArgument` or Thrift application error) or [`ErrorClass::Transient`]
//! (a refused or reset connection, a timeout, HDFS safe mode or a standby
//! NameNode, an HBase `IOError` such as a region moving, any Kafka cluster error).
//! Anything it does not recognise is transient: retrying is the old, safe default.
//!
//! The HDFS and HBase backends of `ecom_jobs` carry their client's error as text
//! (an [`std::io::Error`] of kind `Other` holding the `hdfs_native` message, a
//! [`TableError::Remote`] message), so those are recognised by the wording those
//! backends and their client crates use.

use std::error::Error as StdError;
use std::fmt;
use std::io::{self, ErrorKind};

use ecom_jobs::aggregates::CubeError;
use ecom_jobs::clean::{CleanError, CleanStoreError};
use ecom_jobs::generate::GenerateError;
use ecom_jobs::incremental::IncrementalError;
use ecom_jobs::load::LoadError;
use ecom_jobs::produce::ProduceError;
use ecom_jobs::sink::SinkError;
use ecom_jobs::store::kafka::KafkaLogError;
use ecom_jobs::store::{FileStoreError, LogError, TableError};

/// An error and its causes on one line, each text once: the `ecom_jobs`
/// errors print their source in their own message and also expose it as the
/// cause, so `{:#}` would repeat it ("listing x: Not a directory: Not a
/// directory"). A cause already contained in the text so far is left out.
pub fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Whether another attempt can succeed where this one failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Waiting cannot fix it: fail now.
    Permanent,
    /// It may heal (a service restarting, a network hiccup): retry with backoff.
    Transient,
}

/// An error its maker knows cannot heal by waiting (a malformed URL or flag);
/// [`classify`] finds any chain holding one permanent.
#[derive(Debug)]
pub struct Permanent(pub String);

impl fmt::Display for Permanent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Permanent {}

/// Sorts `err` by the first error of its chain (outermost first) that says
/// something definite; [`ErrorClass::Transient`] when none does.
pub fn classify(err: &anyhow::Error) -> ErrorClass {
    err.chain().find_map(one).unwrap_or(ErrorClass::Transient)
}

/// The class of one error of a chain, `None` when it leaves the question to its source.
fn one(e: &(dyn StdError + 'static)) -> Option<ErrorClass> {
    if e.is::<Permanent>() {
        return Some(ErrorClass::Permanent);
    }
    if let Some(e) = e.downcast_ref::<io::Error>() {
        return io_error(e);
    }
    if let Some(e) = e.downcast_ref::<serde_json::Error>() {
        return json(e);
    }
    if let Some(e) = e.downcast_ref::<FileStoreError>() {
        return files(e);
    }
    if let Some(e) = e.downcast_ref::<LogError>() {
        return log(e);
    }
    if let Some(e) = e.downcast_ref::<KafkaLogError>() {
        return Some(kafka(e));
    }
    if let Some(e) = e.downcast_ref::<TableError>() {
        return table(e);
    }
    if let Some(e) = e.downcast_ref::<CleanError>() {
        return clean(e);
    }
    if let Some(e) = e.downcast_ref::<CleanStoreError>() {
        return clean_store(e);
    }
    if let Some(e) = e.downcast_ref::<IncrementalError>() {
        return incremental(e);
    }
    if let Some(e) = e.downcast_ref::<LoadError>() {
        return load(e);
    }
    if let Some(e) = e.downcast_ref::<ProduceError>() {
        return produce(e);
    }
    if let Some(e) = e.downcast_ref::<SinkError>() {
        return sink(e);
    }
    if let Some(e) = e.downcast_ref::<GenerateError>() {
        return generate(e);
    }
    if e.is::<CubeError>() {
        return Some(ErrorClass::Permanent);
    }
    None
}

/// By kind; an `Other` error (how the HDFS backend carries `hdfs_native`'s) by its text.
fn io_error(e: &io::Error) -> Option<ErrorClass> {
    use ErrorKind::*;
    match e.kind() {
        NotFound | PermissionDenied | NotADirectory | IsADirectory | InvalidInput | InvalidData
        | InvalidFilename | ReadOnlyFilesystem | Unsupported | FileTooLarge | NotSeekable
        | TooManyLinks | CrossesDevices | ArgumentListTooLong => Some(ErrorClass::Permanent),
        ConnectionRefused
        | ConnectionReset
        | ConnectionAborted
        | NotConnected
        | AddrInUse
        | AddrNotAvailable
        | BrokenPipe
        | TimedOut
        | WouldBlock
        | Interrupted
        | HostUnreachable
        | NetworkUnreachable
        | NetworkDown
        | ResourceBusy
        | StaleNetworkFileHandle => Some(ErrorClass::Transient),
        Other => hdfs_text(&e.to_string()),
        _ => None,
    }
}

/// Words of HDFS failures that heal: the NameNode in safe mode, a standby or
/// observer NameNode, a retriable RPC, a block not replicated yet, no answer
/// (the backend's timeout) or a broken connection (`hdfs_native`'s `IOError`).
const HDFS_TRANSIENT: &[&str] = &[
    "SafeModeException",
    "safe mode",
    "StandbyException",
    "ObserverRetryOnActiveException",
    "RetriableException",
    "NotReplicatedYetException",
    "IO error occurred while communicating with HDFS",
    "no answer from",
    "timed out",
];

/// Words of HDFS failures that do not heal (`hdfs_native` messages and the
/// NameNode's exception classes): a missing file, a directory where a file must
/// be or the reverse, a refused permission, a malformed path, URL or argument,
/// an unsupported feature, no usable SASL mechanism.
const HDFS_PERMANENT: &[&str] = &[
    "file not found:",
    "FileNotFoundException",
    "path is a directory:",
    "ParentNotDirectoryException",
    "PathIsNotDirectoryException",
    "AccessControlException",
    "invalid path:",
    "InvalidPathException",
    "invalid argument:",
    "failed to parse URL:",
    "expected hdfs://host:port/path",
    "operation not supported:",
    "unsupported erasure coding policy",
    "No valid SASL mechanism found",
];

fn hdfs_text(text: &str) -> Option<ErrorClass> {
    if HDFS_TRANSIENT.iter().any(|w| text.contains(w)) {
        Some(ErrorClass::Transient)
    } else if HDFS_PERMANENT.iter().any(|w| text.contains(w)) {
        Some(ErrorClass::Permanent)
    } else {
        None
    }
}

/// Malformed JSON never heals; an I/O error underneath goes by its kind.
fn json(e: &serde_json::Error) -> Option<ErrorClass> {
    match e.io_error_kind() {
        Some(kind) => io_error(&io::Error::from(kind)),
        None => Some(ErrorClass::Permanent),
    }
}

/// A polars failure (decoding or encoding Parquet, cleaning in memory) is about
/// the data, unless an I/O error underneath says the connection failed.
fn polars(source: &(dyn StdError + 'static)) -> ErrorClass {
    let transient_io = std::iter::successors(Some(source), |&e| e.source())
        .filter_map(|e| e.downcast_ref::<io::Error>())
        .any(|e| io_error(e) == Some(ErrorClass::Transient));
    if transient_io {
        ErrorClass::Transient
    } else {
        ErrorClass::Permanent
    }
}

fn files(e: &FileStoreError) -> Option<ErrorClass> {
    match e {
        FileStoreError::Io { source, .. } => io_error(source),
        FileStoreError::BadPath(_) => Some(ErrorClass::Permanent),
    }
}

/// Kafka errors reach a [`LogError`] as text; they and a missing partition (a
/// topic still being created) stay transient.
fn log(e: &LogError) -> Option<ErrorClass> {
    match e {
        LogError::Io { source, .. } => io_error(source),
        LogError::Remote(_) | LogError::NoPartition { .. } => None,
    }
}

/// A client librdkafka refused to create (its configuration) or a malformed
/// property never heals; the cluster not answering or answering with an error may.
fn kafka(e: &KafkaLogError) -> ErrorClass {
    match e {
        KafkaLogError::Client { .. }
        | KafkaLogError::MalformedProperty(_)
        | KafkaLogError::SecretOnCommandLine { .. } => ErrorClass::Permanent,
        KafkaLogError::Cluster { .. } => ErrorClass::Transient,
    }
}

/// A corrupt row never heals, nor does a server of another Thrift wire (it hangs
/// up on every new connection). A missing table does: in a stage it was just
/// ensured, so it vanished under a concurrent purge and the next attempt creates
/// it again. HBase over Thrift by the message of the HBase backend.
fn table(e: &TableError) -> Option<ErrorClass> {
    match e {
        TableError::Corrupt { .. } | TableError::Wire { .. } => Some(ErrorClass::Permanent),
        TableError::NoTable(_) => Some(ErrorClass::Transient),
        TableError::Remote { message, .. } => hbase_text(message),
        TableError::Embedded { .. } => None,
    }
}

/// The HBase backend's messages: it retries transport and protocol failures
/// itself until it "gave up after" its deadline (transient); a Thrift
/// application error ("server refused the call") and the `IllegalArgument` and
/// `AlreadyExists` exceptions are the server's answer to this very call
/// (permanent); an `IOError` exception hides its cause (a region moving, a
/// server starting) behind one text, so it stays transient.
fn hbase_text(message: &str) -> Option<ErrorClass> {
    if message.contains("gave up after") || message.contains("threw IOError") {
        Some(ErrorClass::Transient)
    } else if message.contains("server refused the call")
        || message.contains("threw IllegalArgument")
        || message.contains("threw AlreadyExists")
    {
        Some(ErrorClass::Permanent)
    } else {
        None
    }
}

// `if let` rather than `match` below: the cleaner's error enum is still growing,
// and a variant these lines do not know simply stays transient.
fn clean(e: &CleanError) -> Option<ErrorClass> {
    if let CleanError::Read { source, .. } | CleanError::Write { source, .. } = e {
        return io_error(source);
    }
    if let CleanError::Polars { source, .. } = e {
        return Some(polars(source));
    }
    None
}

fn clean_store(e: &CleanStoreError) -> Option<ErrorClass> {
    match e {
        CleanStoreError::Clean(e) => clean(e),
        CleanStoreError::Files(e) => files(e),
        CleanStoreError::Report(_) => Some(ErrorClass::Permanent),
    }
}

/// A corrupt manifest, report or Parquet file, or a malformed `--shard`, never heals.
fn incremental(e: &IncrementalError) -> Option<ErrorClass> {
    match e {
        IncrementalError::Files(e) => files(e),
        IncrementalError::Clean(e) => clean(e),
        IncrementalError::Parquet { source, .. } => Some(polars(source)),
        IncrementalError::Json { .. } | IncrementalError::BadShard(_) => {
            Some(ErrorClass::Permanent)
        }
    }
}

/// The writers stopping says nothing by itself (their own error is reported instead).
fn load(e: &LoadError) -> Option<ErrorClass> {
    match e {
        LoadError::Files(e) => files(e),
        LoadError::Table(e) => table(e),
        LoadError::Parquet { source, .. } => Some(polars(source)),
        LoadError::Json(_) => Some(ErrorClass::Permanent),
        LoadError::WritersStopped => None,
    }
}

fn produce(e: &ProduceError) -> Option<ErrorClass> {
    match e {
        ProduceError::Read { source, .. } => io_error(source),
        ProduceError::Log(e) => log(e),
    }
}

fn sink(e: &SinkError) -> Option<ErrorClass> {
    match e {
        SinkError::Log { source, .. } => log(source),
        SinkError::Files(e) => files(e),
    }
}

fn generate(e: &GenerateError) -> Option<ErrorClass> {
    match e {
        GenerateError::InvalidRates(_) => Some(ErrorClass::Permanent),
        GenerateError::Write { source, .. } => io_error(source),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_cause_repeated_in_its_parent_message_is_printed_once() {
        #[derive(Debug)]
        struct Wrap(io::Error);
        impl fmt::Display for Wrap {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "listing /x: {}", self.0)
            }
        }
        impl StdError for Wrap {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                Some(&self.0)
            }
        }
        let inner = io::Error::new(ErrorKind::NotADirectory, "Not a directory");
        let e = anyhow::Error::new(Wrap(inner)).context("clean stage");
        assert_eq!(message(&e), "clean stage: listing /x: Not a directory");
        let plain = anyhow::anyhow!("refused").context("connecting to 127.0.0.1:1");
        assert_eq!(message(&plain), "connecting to 127.0.0.1:1: refused");
    }

    use super::*;
    use anyhow::{anyhow, Context};
    use ErrorClass::{Permanent as P, Transient as T};

    fn os(kind: ErrorKind) -> io::Error {
        io::Error::from(kind)
    }

    /// A file store error as the HDFS backend builds it: the client's message as text.
    fn hdfs(message: &str) -> FileStoreError {
        FileStoreError::Io {
            op: "listing",
            path: "hdfs://namenode:8020/raw".into(),
            source: io::Error::other(message.to_string()),
        }
    }

    fn hbase(message: &str) -> TableError {
        TableError::Remote {
            address: "hbase:9090".into(),
            table: "ecommerce".into(),
            message: message.into(),
        }
    }

    fn of(e: impl Into<anyhow::Error>) -> ErrorClass {
        classify(&e.into())
    }

    #[test]
    fn io_kinds() {
        for kind in [
            ErrorKind::NotFound,
            ErrorKind::PermissionDenied,
            ErrorKind::NotADirectory,
            ErrorKind::IsADirectory,
            ErrorKind::InvalidData,
            ErrorKind::InvalidInput,
        ] {
            assert_eq!(of(os(kind)), P, "{kind:?}");
        }
        for kind in [
            ErrorKind::ConnectionRefused,
            ErrorKind::ConnectionReset,
            ErrorKind::ConnectionAborted,
            ErrorKind::BrokenPipe,
            ErrorKind::TimedOut,
            ErrorKind::HostUnreachable,
            ErrorKind::Interrupted,
        ] {
            assert_eq!(of(os(kind)), T, "{kind:?}");
        }
        // Not known either way: retried, as before.
        assert_eq!(of(os(ErrorKind::UnexpectedEof)), T);
        assert_eq!(of(os(ErrorKind::StorageFull)), T);
        assert_eq!(of(io::Error::other("something odd")), T);
    }

    #[test]
    fn a_real_not_a_directory_error_deep_in_a_load_error() {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        let source = std::fs::read_dir(file.path().join("_manifest"))
            .expect_err("listing below a regular file fails");
        let err = anyhow::Error::from(LoadError::Files(FileStoreError::Io {
            op: "listing",
            path: file.path().display().to_string(),
            source,
        }))
        .context("load attempt 1");
        assert_eq!(classify(&err), P);
    }

    #[test]
    fn hdfs_messages() {
        for message in [
            "file not found: /raw/part-0.tsv",
            "path is a directory: /clean",
            "RPC error: org.apache.hadoop.security.AccessControlException Permission denied: \
             user=ecom, access=WRITE, inode=\"/clean\"",
            "RPC error: org.apache.hadoop.fs.ParentNotDirectoryException /raw (is not a directory)",
            "invalid path: a//b",
            "failed to parse URL: empty host",
            "expected hdfs://host:port/path",
        ] {
            assert_eq!(of(hdfs(message)), P, "{message}");
        }
        for message in [
            "RPC error: org.apache.hadoop.hdfs.server.namenode.SafeModeException Cannot create \
             file /clean/x. Name node is in safe mode.",
            "RPC error: org.apache.hadoop.ipc.StandbyException Operation category READ is not \
             supported in state standby",
            "RPC error: org.apache.hadoop.ipc.RetriableException try again",
            "IO error occurred while communicating with HDFS: Connection refused (os error 111)",
            "no answer from hdfs://namenode:8020 within 30s",
            "timed out",
            "checksums didn't match",
        ] {
            assert_eq!(of(hdfs(message)), T, "{message}");
        }
        // Safe mode wins over words of a permanent failure in the same text.
        assert_eq!(
            of(hdfs(
                "RPC error: org.apache.hadoop.hdfs.server.namenode.SafeModeException \
                 Cannot delete /raw: file not found: no, in safe mode"
            )),
            T
        );
    }

    #[test]
    fn hbase_messages() {
        assert_eq!(
            of(hbase("server error: remote service threw IllegalArgument")),
            P
        );
        assert_eq!(
            of(hbase(
                "server refused the call: Invalid method name: 'mutateRowz'"
            )),
            P
        );
        assert_eq!(of(hbase("server error: remote service threw IOError")), T);
        assert_eq!(
            of(hbase(
                "connecting: Connection refused (os error 111) (gave up after 59.8s)"
            )),
            T
        );
        assert_eq!(of(hbase("client lock poisoned")), T);
        assert_eq!(
            of(LoadError::Table(TableError::Corrupt {
                table: "ecommerce_agg".into(),
                key: "batch/x".into(),
            })),
            P
        );
        assert_eq!(of(TableError::NoTable("ecommerce".into())), T);
        let wire = TableError::Wire {
            address: "hbase:9090".into(),
            table: "ecommerce".into(),
            message: "end of file on 3 new connections in a row".into(),
        };
        assert_eq!(of(LoadError::Table(wire)), P);
    }

    #[test]
    fn a_corrupt_parquet_file_is_permanent() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("part-0.parquet"), b"not parquet at all")
            .expect("write file");
        let files = ecom_jobs::store::LocalFiles::new(dir.path());
        let tables = ecom_jobs::store::EmbeddedTables::open(dir.path().join("tables.redb"))
            .expect("embedded tables");
        let inputs = [ecom_jobs::load::LoadInput {
            agg_key: "part-0.parquet".into(),
            path: "part-0.parquet".into(),
        }];
        let err = ecom_jobs::load::load_files(
            &files,
            &inputs,
            &tables,
            &ecom_jobs::load::LoadConfig::default(),
            1,
            |_| {},
        )
        .expect_err("garbage is not Parquet");
        assert!(
            matches!(err, LoadError::Parquet { .. }),
            "a Parquet error: {err}"
        );
        assert_eq!(of(err), P);
    }

    #[test]
    fn corrupt_json_is_permanent() {
        let err = serde_json::from_str::<serde_json::Value>("{\"rows_in\": 12")
            .expect_err("truncated JSON");
        let err = anyhow::Error::from(err).context("decoding /clean/report-1.json");
        assert_eq!(classify(&err), P);
        let err = serde_json::from_str::<serde_json::Value>("[1,").expect_err("truncated JSON");
        assert_eq!(
            of(IncrementalError::Json {
                file: "_manifest/run-1.json".into(),
                source: err,
            }),
            P
        );
    }

    #[test]
    fn flags_and_config() {
        let malformed = ecom_jobs::store::kafka::kafka_properties(
            &["security.protocol".to_string()],
            Vec::new(),
        )
        .expect_err("no =");
        assert_eq!(of(malformed), P);
        let shard = "3/2"
            .parse::<ecom_jobs::incremental::Shard>()
            .expect_err("index beyond count");
        assert_eq!(of(shard), P);
        assert_eq!(of(GenerateError::InvalidRates("0.9 + 0.9 > 1".into())), P);
        assert_eq!(
            of(anyhow!(Permanent(
                "hdfs:///x: expected hdfs://host:port/path".into()
            ))),
            P
        );
    }

    #[test]
    fn kafka_and_message_log() {
        assert_eq!(
            of(KafkaLogError::Cluster {
                bootstrap: "kafka:9092".into(),
                topic: "orders".into(),
                op: "fetching metadata",
                message: "Local: Broker transport failure".into(),
            }),
            T
        );
        assert_eq!(
            of(ProduceError::Log(LogError::Remote(
                "Kafka at kafka:9092, topic orders: delivering: Message timed out".into()
            ))),
            T
        );
        assert_eq!(
            of(SinkError::Log {
                topic: "orders".into(),
                source: LogError::Io {
                    op: "reading",
                    path: "/log/orders-0".into(),
                    source: os(ErrorKind::PermissionDenied),
                },
            }),
            P
        );
    }

    #[test]
    fn the_outermost_definite_error_decides() {
        // A context without a type says nothing: its source decides.
        let err = Err::<(), _>(os(ErrorKind::ConnectionRefused))
            .context("connecting to HDFS at hdfs://namenode:8020")
            .expect_err("an error");
        assert_eq!(classify(&err), T);
        // A plain message is unknown: retried, as before.
        assert_eq!(classify(&anyhow!("the writers stopped")), T);
        assert_eq!(of(LoadError::WritersStopped), T);
    }
}
