//! Storage seams: the message transport, the raw/clean file store and the
//! serving table. Each trait has an embedded backend here (local files and an
//! embedded on-disk store) so the whole pipeline runs on one machine; the Kafka,
//! HDFS and HBase backends implement the same traits.

pub mod files;
pub mod hbase;
pub mod hdfs;
pub mod kafka;
pub mod log;
pub mod table;

pub use files::{FileStore, FileStoreError, LocalFiles};
pub use log::{Gaps, LocalLog, LogError, LogTail, Message, MessageLog, Polled, Tail};
pub use table::{Cells, EmbeddedTables, RemoteKind, Row, Table, TableError, TableStore};
