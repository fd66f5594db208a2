//! Environment variables the binary reads and the operator sets.

/// Kafka bootstrap servers (`--kafka-bootstrap`).
pub const KAFKA_BOOTSTRAP: &str = "KAFKA_BOOTSTRAP";
/// SASL user name; sets librdkafka's `sasl.username` (never a flag: command lines are public).
pub const KAFKA_SASL_USERNAME: &str = "KAFKA_SASL_USERNAME";
/// SASL password; sets librdkafka's `sasl.password`.
pub const KAFKA_SASL_PASSWORD: &str = "KAFKA_SASL_PASSWORD";
/// Prefix of variables that set any librdkafka property: `ECOM_KAFKA_PROPERTY_SSL_KEY_PASSWORD`
/// sets `ssl.key.password`.
pub const KAFKA_PROPERTY_PREFIX: &str = "ECOM_KAFKA_PROPERTY_";
/// Kafka topic (`--topic`).
pub const TOPIC: &str = "ECOM_TOPIC";
/// HBase Thrift server `host:port` (`--hbase-thrift`).
pub const HBASE_THRIFT: &str = "HBASE_THRIFT";
/// Thrift transport (`--hbase-transport`), a [`crate::wire::ThriftTransport`].
pub const HBASE_THRIFT_TRANSPORT: &str = "HBASE_THRIFT_TRANSPORT";
/// Thrift protocol (`--hbase-protocol`), a [`crate::wire::ThriftProtocol`].
pub const HBASE_THRIFT_PROTOCOL: &str = "HBASE_THRIFT_PROTOCOL";
/// Fact table (`--table`).
pub const TABLE: &str = "ECOM_TABLE";
/// A stage's deadline (`--deadline`), e.g. `285s`.
pub const DEADLINE: &str = "ECOM_DEADLINE";
/// Attempts of a stage on transient failures (`--attempts`).
pub const ATTEMPTS: &str = "ECOM_ATTEMPTS";
/// Timeout of one service call (`--call-timeout`).
pub const CALL_TIMEOUT: &str = "ECOM_CALL_TIMEOUT";
/// Where the summary is also written (`--summary-file`).
pub const SUMMARY_FILE: &str = "ECOM_SUMMARY_FILE";
/// Raw bytes one clean run takes at most (`--max-run-bytes`).
pub const CLEAN_MAX_RUN_BYTES: &str = "ECOM_CLEAN_MAX_RUN_BYTES";
/// Dashboard listen address (`--host`).
pub const DASHBOARD_HOST: &str = "ECOM_DASHBOARD_HOST";
/// Dashboard listen port (`--port`).
pub const DASHBOARD_PORT: &str = "ECOM_DASHBOARD_PORT";
/// The completion index Kubernetes gives each pod of an Indexed Job; `--shard COUNT` reads it.
pub const JOB_COMPLETION_INDEX: &str = "JOB_COMPLETION_INDEX";
/// The shard index of a pod of the streaming StatefulSet (its pod index); `--shard COUNT`
/// reads it, before [`JOB_COMPLETION_INDEX`].
pub const SHARD_INDEX: &str = "ECOM_SHARD_INDEX";
/// UID of the `EcomPipeline` a stage runs for: the stage marks the HDFS directories and the
/// HBase table it writes as this pipeline's, refuses those marked by another, and `ecom
/// purge` deletes only what carries it. Unset (a stage run by hand): no marks.
pub const PIPELINE_UID: &str = "ECOM_PIPELINE_UID";
/// `namespace/name` of that `EcomPipeline` (written into marks, for messages).
pub const PIPELINE: &str = "ECOM_PIPELINE";
/// Log filter of `tracing` (e.g. `info`).
pub const RUST_LOG: &str = "RUST_LOG";
