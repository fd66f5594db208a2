//! Which stage failures are worth another attempt: the typed decision of
//! [`ecom_jobs::retry`] applied to an `anyhow` chain, and the one-line message
//! a failed stage reports.

use ecom_jobs::retry::class_of;
pub use ecom_jobs::retry::{ErrorClass, Permanent};

/// An error and its causes on one line, each text once: the `ecom_jobs`
/// errors print their source in their own message and also expose it as the
/// cause, so `{:#}` would repeat it ("listing x: Not a directory: Not a
/// directory"). A cause already contained in the text so far is left out.
pub fn message(e: &anyhow::Error) -> String {
    ecom_jobs::runtime::chain_message(e.chain())
}

/// Sorts `err` by the first error of its chain (outermost first) that says
/// something definite; [`ErrorClass::Transient`] when none does.
pub fn classify(err: &anyhow::Error) -> ErrorClass {
    err.chain()
        .find_map(class_of)
        .unwrap_or(ErrorClass::Transient)
}

#[cfg(test)]
mod tests {
    /// The runtime's `chain_message` over an `anyhow` chain: context first, each text once
    /// (the repeated-cause case is tested beside `chain_message`).
    #[test]
    fn an_anyhow_chain_is_one_line_with_its_context_first() {
        let plain = anyhow::anyhow!("refused").context("connecting to 127.0.0.1:1");
        assert_eq!(message(&plain), "connecting to 127.0.0.1:1: refused");
    }

    use super::*;
    use anyhow::{anyhow, Context};
    use ecom_jobs::generate::GenerateError;
    use ecom_jobs::incremental::IncrementalError;
    use ecom_jobs::load::LoadError;
    use ecom_jobs::produce::ProduceError;
    use ecom_jobs::sink::SinkError;
    use ecom_jobs::store::hdfs::HdfsFailure;
    use ecom_jobs::store::kafka::{KafkaLogError, Refusal};
    use ecom_jobs::store::{FileStoreError, LogError, RemoteKind, TableError};
    use hdfs_native::HdfsError;
    use std::io::{self, ErrorKind};
    use ErrorClass::{Permanent as P, Transient as T};

    fn os(kind: ErrorKind) -> io::Error {
        io::Error::from(kind)
    }

    /// A file store error as the HDFS backend builds it.
    fn hdfs(source: impl Into<HdfsFailure>) -> FileStoreError {
        FileStoreError::Hdfs {
            op: "listing",
            path: "hdfs://namenode:8020/raw".into(),
            source: source.into(),
        }
    }

    /// An RPC error of the NameNode with its exception class.
    fn rpc(class: &str) -> HdfsError {
        HdfsError::RPCError(class.into(), "the NameNode's message".into())
    }

    fn hbase(kind: RemoteKind) -> TableError {
        TableError::Remote {
            address: "hbase:9090".into(),
            table: "ecommerce".into(),
            kind,
            message: "the client's message".into(),
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
    fn hdfs_errors() {
        for e in [
            HdfsError::FileNotFound("/raw/part-0.tsv".into()),
            HdfsError::IsADirectoryError("/clean".into()),
            rpc("org.apache.hadoop.security.AccessControlException"),
            rpc("org.apache.hadoop.fs.ParentNotDirectoryException"),
            HdfsError::InvalidPath("a//b".into()),
            HdfsError::NoSASLMechanism,
        ] {
            assert_eq!(of(hdfs(e)), P);
        }
        assert_eq!(of(hdfs(HdfsFailure::BadUrl)), P);
        for e in [
            rpc("org.apache.hadoop.hdfs.server.namenode.SafeModeException"),
            rpc("org.apache.hadoop.ipc.StandbyException"),
            rpc("org.apache.hadoop.ipc.RetriableException"),
            HdfsError::IOError(os(ErrorKind::ConnectionRefused)),
            HdfsError::ChecksumError,
            HdfsError::DataTransferError("the DataNode went away".into()),
        ] {
            assert_eq!(of(hdfs(e)), T);
        }
        let no_answer = HdfsFailure::NoAnswer {
            authority: "hdfs://namenode:8020".into(),
            timeout: std::time::Duration::from_secs(30),
        };
        assert_eq!(of(hdfs(no_answer)), T);
        // The exception class decides, not the words of the message.
        let safe_mode = HdfsError::RPCError(
            "org.apache.hadoop.hdfs.server.namenode.SafeModeException".into(),
            "Cannot delete /raw: file not found".into(),
        );
        assert_eq!(of(hdfs(safe_mode)), T);
        // An exception class nobody listed is retried, as anything unknown.
        assert_eq!(of(hdfs(rpc("org.example.SomethingNewException"))), T);
    }

    #[test]
    fn hbase_errors() {
        assert_eq!(of(hbase(RemoteKind::IllegalArgument)), P);
        assert_eq!(of(hbase(RemoteKind::AlreadyExists)), P);
        assert_eq!(of(hbase(RemoteKind::Refused)), P);
        assert_eq!(of(hbase(RemoteKind::IoException { can_retry: None })), T);
        assert_eq!(
            of(hbase(RemoteKind::IoException {
                can_retry: Some(true)
            })),
            T
        );
        // HBase's do-not-retry exceptions say so on the wire.
        assert_eq!(
            of(hbase(RemoteKind::IoException {
                can_retry: Some(false)
            })),
            P
        );
        assert_eq!(of(hbase(RemoteKind::GaveUp)), T);
        assert_eq!(of(hbase(RemoteKind::Client)), T);
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
            of(ProduceError::Log(LogError::from(
                KafkaLogError::MalformedProperty("acks".into())
            ))),
            P
        );
        assert_eq!(
            of(ProduceError::Log(LogError::from(KafkaLogError::Cluster {
                bootstrap: "kafka:9092".into(),
                topic: "orders".into(),
                op: "delivering",
                message: "Message timed out".into(),
            }))),
            T
        );
        // A broker refusing the TLS handshake or the SASL login: the same settings never pass.
        for refusal in [Refusal::Tls, Refusal::Authentication] {
            assert_eq!(
                of(ProduceError::Log(LogError::from(KafkaLogError::Refused {
                    bootstrap: "kafka:9096".into(),
                    refusal,
                    message: "ssl://kafka:9096/bootstrap: SSL handshake failed".into(),
                }))),
                P
            );
        }
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
