//! Which failures are worth another attempt, decided from typed errors.
//!
//! Every error type of this crate answers [`ErrorClass`] for itself (a `class`
//! method beside the type; `None` leaves the question to its source), from the
//! client error it still holds: an `io::ErrorKind`, an `hdfs_native` error and
//! the NameNode's exception class, the kind of an HBase Thrift failure, a Kafka
//! client or cluster error. [`classify`] walks an error's chain to the first link
//! that says something definite. No decision reads an error's text.
//!
//! Anything not recognised is transient: retrying is the safe default, and a
//! retried permanent failure still fails, only later.

use std::error::Error as StdError;
use std::fmt;
use std::io::{self, ErrorKind};

use crate::aggregates::CubeError;
use crate::clean::CleanError;
use crate::generate::GenerateError;
use crate::incremental::IncrementalError;
use crate::load::LoadError;
use crate::owner::OwnerError;
use crate::produce::ProduceError;
use crate::sink::SinkError;
use crate::store::hdfs::HdfsFailure;
use crate::store::kafka::KafkaLogError;
use crate::store::{FileStoreError, LogError, TableError};
use crate::stream::StreamError;

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
pub fn classify(err: &(dyn StdError + 'static)) -> ErrorClass {
    std::iter::successors(Some(err), |&e| e.source())
        .find_map(class_of)
        .unwrap_or(ErrorClass::Transient)
}

/// The class of one error of a chain, `None` when it leaves the question to its
/// source (or is not an error type this crate knows).
pub fn class_of(e: &(dyn StdError + 'static)) -> Option<ErrorClass> {
    if e.is::<Permanent>() || e.is::<CubeError>() {
        return Some(ErrorClass::Permanent);
    }
    if let Some(e) = e.downcast_ref::<io::Error>() {
        return io_class(e);
    }
    if let Some(e) = e.downcast_ref::<serde_json::Error>() {
        return json_class(e);
    }
    macro_rules! by_type {
        ($($t:ty),*) => {$(
            if let Some(e) = e.downcast_ref::<$t>() {
                return e.class();
            }
        )*};
    }
    by_type!(
        FileStoreError,
        HdfsFailure,
        LogError,
        KafkaLogError,
        TableError,
        CleanError,
        IncrementalError,
        LoadError,
        ProduceError,
        SinkError,
        StreamError,
        GenerateError,
        OwnerError
    );
    None
}

/// By kind: a path that is missing or of the wrong type, a refused permission
/// or malformed data never heals; a refused, reset or timed-out connection may.
/// An `Other` error goes by the error it carries, if this crate knows it.
pub fn io_class(e: &io::Error) -> Option<ErrorClass> {
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
        _ => e.get_ref().and_then(|inner| class_of(inner)),
    }
}

/// Malformed JSON never heals; an I/O error underneath goes by its kind.
fn json_class(e: &serde_json::Error) -> Option<ErrorClass> {
    match e.io_error_kind() {
        Some(kind) => io_class(&io::Error::from(kind)),
        None => Some(ErrorClass::Permanent),
    }
}

/// A polars failure (decoding or encoding Parquet, cleaning in memory) is about
/// the data, unless an I/O error underneath says the connection failed.
pub fn polars_class(source: &(dyn StdError + 'static)) -> ErrorClass {
    let transient_io = std::iter::successors(Some(source), |&e| e.source())
        .filter_map(|e| e.downcast_ref::<io::Error>())
        .any(|e| io_class(e) == Some(ErrorClass::Transient));
    if transient_io {
        ErrorClass::Transient
    } else {
        ErrorClass::Permanent
    }
}

impl CleanError {
    /// A read or write by its I/O error; a polars failure by [`polars_class`].
    pub fn class(&self) -> Option<ErrorClass> {
        // `if let` rather than `match`: a variant these lines do not know stays transient.
        if let CleanError::Read { source, .. } | CleanError::Write { source, .. } = self {
            return io_class(source);
        }
        if let CleanError::Polars { source, .. } = self {
            return Some(polars_class(source));
        }
        None
    }
}

impl IncrementalError {
    /// A corrupt manifest, report or Parquet file, or a malformed `--shard`, never heals.
    pub fn class(&self) -> Option<ErrorClass> {
        match self {
            IncrementalError::Files(e) => e.class(),
            IncrementalError::Clean(e) => e.class(),
            IncrementalError::Table(e) => e.class(),
            IncrementalError::Parquet { source, .. } => Some(polars_class(source)),
            IncrementalError::Json { .. }
            | IncrementalError::BadShard(_)
            | IncrementalError::NotTsv { .. } => Some(ErrorClass::Permanent),
        }
    }
}

impl LoadError {
    /// The writers stopping says nothing by itself (their own error is reported instead).
    pub fn class(&self) -> Option<ErrorClass> {
        match self {
            LoadError::Files(e) => e.class(),
            LoadError::Table(e) => e.class(),
            LoadError::Parquet { source, .. } => Some(polars_class(source)),
            LoadError::Json(_) => Some(ErrorClass::Permanent),
            LoadError::WritersStopped => None,
            LoadError::Runs(e) => e.class(),
            LoadError::Report { .. } | LoadError::Aggregates(_) => Some(ErrorClass::Permanent),
        }
    }
}

impl ProduceError {
    /// By the input's I/O error or the log's error.
    pub fn class(&self) -> Option<ErrorClass> {
        match self {
            ProduceError::Read { source, .. } => io_class(source),
            ProduceError::Log(e) => e.class(),
        }
    }
}

impl SinkError {
    /// By the log's or the file store's error.
    pub fn class(&self) -> Option<ErrorClass> {
        match self {
            SinkError::Log { source, .. } => source.class(),
            SinkError::Files(e) => e.class(),
        }
    }
}

impl StreamError {
    /// By the error it holds; an undecodable report or mark never heals.
    pub fn class(&self) -> Option<ErrorClass> {
        match self {
            StreamError::Log { source, .. } => source.class(),
            StreamError::Files(e) => e.class(),
            StreamError::Sink(e) => e.class(),
            StreamError::Clean(e) => e.class(),
            StreamError::Load(e) => e.class(),
            StreamError::Table(e) => e.class(),
            StreamError::Json { .. } => Some(ErrorClass::Permanent),
        }
    }
}

impl GenerateError {
    /// Invalid rates never heal; a write goes by its I/O error.
    pub fn class(&self) -> Option<ErrorClass> {
        match self {
            GenerateError::InvalidRates(_) => Some(ErrorClass::Permanent),
            GenerateError::Write { source, .. } => io_class(source),
        }
    }
}
