//! The `EcomPipeline` custom resource: spec and status types from which the CRD schema is
//! generated (descriptions from doc comments, defaults from serde, ranges and CEL rules
//! from schemars attributes).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod status;
mod streaming;

pub use status::*;
pub use streaming::StreamingSpec;

/// API group of the EcomPipeline resource.
pub const GROUP: &str = "pipelines.ecom-pipeline.io";
/// API version of the EcomPipeline resource.
pub const VERSION: &str = "v1alpha1";
/// Kind of the resource.
pub const KIND: &str = "EcomPipeline";

/// Desired state of an e-commerce analytics pipeline: transactions are produced into Kafka,
/// sunk exactly once into raw files on HDFS, cleaned into Parquet, loaded into HBase and
/// explored on a dashboard. In batch mode the operator runs each stage as a Kubernetes Job,
/// in order; in streaming mode one StatefulSet does sink, clean and load in micro-batches.
// The printcolumn(...) arguments repeat keys on purpose (one column each).
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "pipelines.ecom-pipeline.io",
    version = "v1alpha1",
    kind = "EcomPipeline",
    plural = "ecompipelines",
    singular = "ecompipeline",
    shortname = "ecp",
    category = "ecom",
    namespaced,
    status = "EcomPipelineStatus",
    derive = "PartialEq",
    doc = "An e-commerce analytics pipeline (Kafka -> HDFS -> clean -> HBase -> dashboard) run as ordered Jobs",
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Summary of the pipeline's progress"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether the data is loaded and the dashboard is available"
    ),
    printcolumn(
        name = "Produced",
        type_ = "integer",
        json_path = ".status.counts.produced",
        description = "Records produced into Kafka"
    ),
    printcolumn(
        name = "Loaded",
        type_ = "integer",
        json_path = ".status.counts.loaded",
        description = "Rows loaded into HBase"
    ),
    printcolumn(
        name = "Mode",
        type_ = "string",
        json_path = ".spec.mode",
        description = "batch or streaming",
        priority = 1
    ),
    printcolumn(
        name = "Dashboard",
        type_ = "string",
        json_path = ".status.dashboard.service",
        description = "Service of the dashboard",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.mode == 'streaming' || !has(self.streaming)",
        "message": "spec.streaming requires mode: streaming"
    }
]))]
pub struct EcomPipelineSpec {
    /// Container image with the `ecom` binary, used by every stage Job and the dashboard.
    #[serde(default = "default_image")]
    #[schemars(length(min = 1, max = 512))]
    pub image: String,
    /// Image pull policy of every container.
    #[serde(default)]
    pub image_pull_policy: PullPolicy,
    /// `batch`: produce, sink, clean and load run once, in order, then the dashboard starts.
    /// `streaming`: the producer keeps running and one long-running stream StatefulSet
    /// commits micro-batches (raw files, a clean run, the HBase load) every batchIntervalMs;
    /// the dashboard starts immediately.
    #[serde(default)]
    pub mode: Mode,
    /// Settings of streaming mode (only with `mode: streaming`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streaming: Option<StreamingSpec>,
    /// When true, the operator creates no new Jobs, suspends the unfinished ones and scales the
    /// stream StatefulSet to zero; set back to false to continue where the pipeline stopped.
    #[serde(default)]
    pub suspend: bool,
    /// Increase to run the whole pipeline again on purpose (finished stages are otherwise never
    /// re-run for an unchanged spec). May only grow.
    #[serde(default)]
    #[schemars(range(min = 0))]
    #[schemars(extend("x-kubernetes-validations" = [
        { "rule": "self >= oldSelf", "message": "runId can only be increased" }
    ]))]
    pub run_id: i64,
    /// What happens to the pipeline's data when the resource is deleted: `Retain` keeps the
    /// HDFS paths and the HBase table, `Delete` removes them (through a cleanup Job).
    #[serde(default)]
    pub cleanup_policy: CleanupPolicy,
    /// Seconds a finished stage Job is kept before Kubernetes deletes it (its results stay in
    /// the status).
    #[serde(default = "default_ttl")]
    #[schemars(range(min = 0, max = 2_592_000))]
    pub ttl_seconds_after_finished: i32,
    /// Kafka connection and topic.
    pub kafka: KafkaSpec,
    /// HDFS connection and the paths of raw and clean data.
    pub hdfs: HdfsSpec,
    /// HBase Thrift connection and serving table.
    pub hbase: HbaseSpec,
    /// Where the transactions come from.
    pub source: SourceSpec,
    /// Per-stage Job settings.
    #[serde(default)]
    pub stages: StagesSpec,
    /// The analytics dashboard (a Deployment and a Service).
    #[serde(default)]
    pub dashboard: DashboardSpec,
}

fn default_image() -> String {
    "ghcr.io/ecom-pipeline/ecom:0.1.0".to_string()
}

fn default_ttl() -> i32 {
    86_400
}

/// Image pull policy of the pipeline's containers.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PullPolicy {
    /// Always pull the image.
    Always,
    /// Pull only when the image is not on the node.
    #[default]
    IfNotPresent,
    /// Never pull.
    Never,
}

impl PullPolicy {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "Always",
            Self::IfNotPresent => "IfNotPresent",
            Self::Never => "Never",
        }
    }
}

/// How the pipeline runs.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Every stage runs once, in order.
    #[default]
    Batch,
    /// The producer keeps running; a stream StatefulSet commits micro-batches.
    Streaming,
}

/// Fate of the data when the resource is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum CleanupPolicy {
    /// Keep the HDFS paths and the HBase table.
    #[default]
    Retain,
    /// Delete the HDFS paths and the HBase table.
    Delete,
}

/// Kafka connection and topic.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaSpec {
    /// Bootstrap servers, comma-separated `host:port` list.
    #[schemars(
        length(min = 1, max = 1024),
        regex(pattern = r"^[^,\s]+:[0-9]+(,[^,\s]+:[0-9]+)*$")
    )]
    pub bootstrap: String,
    /// Topic of the transactions (created by the producer if missing). Default:
    /// `ecom.<namespace>.<name>`, so that no two pipelines share a topic by accident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 249), regex(pattern = r"^[a-zA-Z0-9._-]+$"))]
    pub topic: Option<String>,
    /// Partitions of the topic when the producer creates it.
    #[serde(default = "default_partitions")]
    #[schemars(range(min = 1, max = 1000))]
    pub partitions: i32,
    /// Replication factor of the topic when the producer creates it.
    #[serde(default = "default_replication")]
    #[schemars(range(min = 1, max = 10))]
    pub replication_factor: i32,
    /// Security settings; plaintext without authentication when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<KafkaSecurity>,
}

fn default_partitions() -> i32 {
    3
}

fn default_replication() -> i32 {
    1
}

/// Kafka security: protocol, SASL credentials and TLS trust, taken from Secrets.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "(self.protocol == 'SASL_PLAINTEXT' || self.protocol == 'SASL_SSL') == has(self.sasl)",
        "message": "sasl is required exactly when protocol is SASL_PLAINTEXT or SASL_SSL"
    },
    {
        "rule": "!has(self.tls) || self.protocol == 'SSL' || self.protocol == 'SASL_SSL'",
        "message": "tls requires protocol SSL or SASL_SSL"
    }
]))]
pub struct KafkaSecurity {
    /// Security protocol of the connection.
    #[serde(default)]
    pub protocol: KafkaProtocol,
    /// SASL authentication (with protocol SASL_PLAINTEXT or SASL_SSL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl: Option<KafkaSasl>,
    /// TLS trust (with protocol SSL or SASL_SSL); the system trust store when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<KafkaTls>,
}

/// Kafka security protocol.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
pub enum KafkaProtocol {
    /// No encryption, no authentication.
    #[default]
    PLAINTEXT,
    /// TLS encryption.
    SSL,
    /// SASL authentication without encryption.
    SASL_PLAINTEXT,
    /// SASL authentication over TLS.
    SASL_SSL,
}

impl KafkaProtocol {
    /// The librdkafka spelling (`security.protocol`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PLAINTEXT => "PLAINTEXT",
            Self::SSL => "SSL",
            Self::SASL_PLAINTEXT => "SASL_PLAINTEXT",
            Self::SASL_SSL => "SASL_SSL",
        }
    }
}

/// SASL authentication with a username and password from a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaSasl {
    /// SASL mechanism.
    #[serde(default)]
    pub mechanism: SaslMechanism,
    /// Secret (in the resource's namespace) holding the username and password.
    pub secret_name: String,
    /// Key of the username in the Secret.
    #[serde(default = "default_username_key")]
    pub username_key: String,
    /// Key of the password in the Secret.
    #[serde(default = "default_password_key")]
    pub password_key: String,
}

fn default_username_key() -> String {
    "username".to_string()
}

fn default_password_key() -> String {
    "password".to_string()
}

/// SASL mechanism.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum SaslMechanism {
    /// Username and password in clear text (use with SASL_SSL).
    #[default]
    #[serde(rename = "PLAIN")]
    Plain,
    /// SCRAM with SHA-256.
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// SCRAM with SHA-512.
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    /// The librdkafka spelling (`sasl.mechanism`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// TLS trust for Kafka from a Secret holding a CA certificate.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaTls {
    /// Secret (in the resource's namespace) holding the CA certificate in PEM.
    pub ca_secret_name: String,
    /// Key of the CA certificate in the Secret.
    #[serde(default = "default_ca_key")]
    pub ca_key: String,
}

fn default_ca_key() -> String {
    "ca.crt".to_string()
}

/// HDFS connection and paths.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.rawPath) || !has(self.cleanPath) || (self.rawPath != self.cleanPath && !self.cleanPath.startsWith(self.rawPath + '/') && !self.rawPath.startsWith(self.cleanPath + '/'))",
        "message": "rawPath and cleanPath must be different and not inside each other"
    }
]))]
pub struct HdfsSpec {
    /// NameNode URL, e.g. `hdfs://namenode:9000`.
    #[schemars(length(max = 1024), regex(pattern = r"^hdfs://[^/\s]+$"))]
    pub url: String,
    /// Absolute HDFS path of the raw TSV files written by the sink. Default:
    /// `/ecom/<namespace>/<name>/raw`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024), regex(pattern = r"^/[^\s]*[^/\s]$"))]
    pub raw_path: Option<String>,
    /// Absolute HDFS path of the clean Parquet files and quality reports. Default:
    /// `/ecom/<namespace>/<name>/clean`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024), regex(pattern = r"^/[^\s]*[^/\s]$"))]
    pub clean_path: Option<String>,
}

/// HBase Thrift connection and serving table.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HbaseSpec {
    /// Host of the HBase Thrift 1 server.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[^:\s/]+$"))]
    pub thrift_host: String,
    /// Port of the HBase Thrift 1 server.
    #[serde(default = "default_thrift_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub thrift_port: i32,
    /// Transport of the HBase Thrift server: `framed` when it runs with -f/--framed (required
    /// by its -hsha and -nonblocking modes), else `buffered`.
    #[serde(default)]
    pub thrift_transport: ThriftTransport,
    /// Protocol of the HBase Thrift server: `compact` when it runs with -c/--compact, else
    /// `binary`.
    #[serde(default)]
    pub thrift_protocol: ThriftProtocol,
    /// Serving table (created by the load stage if missing; its aggregates go to
    /// `<table>_agg`). Default: `ecom_<namespace>_<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 128),
        regex(pattern = r"^[a-zA-Z0-9_][a-zA-Z0-9_.-]*(:[a-zA-Z0-9_][a-zA-Z0-9_.-]*)?$")
    )]
    pub table: Option<String>,
    /// Row-key salt buckets (0 = no salting): spreads sequential keys over regions.
    #[serde(default = "default_salt_buckets")]
    #[schemars(range(min = 0, max = 1024))]
    pub salt_buckets: i32,
}

fn default_thrift_port() -> i32 {
    9090
}

pub use ecom_contract::wire::{ThriftProtocol, ThriftTransport};

fn default_salt_buckets() -> i32 {
    16
}

/// Source of the transactions: exactly one of `generated` or `file`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.generated) != has(self.file)",
        "message": "exactly one of source.generated or source.file must be set"
    }
]))]
pub struct SourceSpec {
    /// Deterministic synthetic data with controllable dirt (`ecom generate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated: Option<GeneratedSource>,
    /// A TSV file on a PersistentVolumeClaim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileSource>,
}

/// Synthetic transactions.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GeneratedSource {
    /// Number of data rows.
    #[serde(default = "default_rows")]
    #[schemars(range(min = 1, max = 2_000_000_000))]
    pub rows: i64,
    /// Seed: the same seed and settings always give the same data.
    #[serde(default = "default_seed")]
    #[schemars(range(min = 0))]
    pub seed: i64,
    /// Fraction of rows with one kind of dirt (0 to 1).
    #[serde(default = "default_dirty_rate")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub dirty_rate: f64,
    /// Send at most this many rows per second, so the producer keeps running for
    /// rows / ratePerSecond seconds (useful with `mode: streaming`); unpaced when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // `minimum` alone lets a whole 0 through (the server compares an integer with the bound
    // cut to an integer), so the rule says it in CEL too.
    #[schemars(
        range(min = 0.001, max = 10_000_000.0),
        extend("x-kubernetes-validations" = [
            { "rule": "self >= 0.001", "message": "ratePerSecond must be at least 0.001" }
        ])
    )]
    pub rate_per_second: Option<f64>,
}

impl Default for GeneratedSource {
    fn default() -> Self {
        Self {
            rows: default_rows(),
            seed: default_seed(),
            dirty_rate: default_dirty_rate(),
            rate_per_second: None,
        }
    }
}

fn default_rows() -> i64 {
    1_000_000
}

fn default_seed() -> i64 {
    42
}

fn default_dirty_rate() -> f64 {
    0.05
}

/// A TSV file on a PersistentVolumeClaim, mounted read-only into the producer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileSource {
    /// Name of the PersistentVolumeClaim (in the resource's namespace).
    #[schemars(length(min = 1, max = 253))]
    pub claim_name: String,
    /// Path of the file inside the volume (relative, no `..`).
    #[schemars(length(min = 1, max = 1024), regex(pattern = r"^[^/]"))]
    #[schemars(extend("x-kubernetes-validations" = [
        { "rule": "!self.split('/').exists(p, p == '..')", "message": "path must not contain '..'" }
    ]))]
    pub path: String,
}

/// Job settings of every stage.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StagesSpec {
    /// The producer: source to Kafka.
    #[serde(default)]
    pub produce: StageSpec,
    /// The sink: Kafka to raw files on HDFS, exactly once.
    #[serde(default)]
    pub sink: StageSpec,
    /// Cleaning: raw files to clean Parquet and a quality report.
    #[serde(default)]
    pub clean: CleanStageSpec,
    /// Loading: clean Parquet to the HBase table.
    #[serde(default)]
    pub load: ParallelStageSpec,
}

/// Job settings of a single-pod stage.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StageSpec {
    /// CPU and memory of the stage's container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// Retries of a failed pod before the stage fails.
    #[serde(default = "default_backoff_limit")]
    #[schemars(range(min = 0, max = 100))]
    pub backoff_limit: i32,
    /// Seconds the stage may run before it is stopped and fails.
    #[serde(default = "default_deadline")]
    #[schemars(range(min = 1, max = 604_800))]
    pub active_deadline_seconds: i64,
}

impl Default for StageSpec {
    fn default() -> Self {
        Self {
            resources: None,
            backoff_limit: default_backoff_limit(),
            active_deadline_seconds: default_deadline(),
        }
    }
}

/// Job settings of a stage that can run as several pods, each taking one shard of the input.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParallelStageSpec {
    /// CPU and memory of each pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// Retries of a failed pod (per index when parallel) before the stage fails.
    #[serde(default = "default_backoff_limit")]
    #[schemars(range(min = 0, max = 100))]
    pub backoff_limit: i32,
    /// Seconds the stage may run before it is stopped and fails.
    #[serde(default = "default_deadline")]
    #[schemars(range(min = 1, max = 604_800))]
    pub active_deadline_seconds: i64,
    /// Pods (shards) of the stage; above 1 the Job is Indexed and each pod processes the
    /// share `--shard INDEX/COUNT` of the input files.
    #[serde(default = "default_parallelism")]
    #[schemars(range(min = 1, max = 64))]
    pub parallelism: i32,
}

impl Default for ParallelStageSpec {
    fn default() -> Self {
        Self {
            resources: None,
            backoff_limit: default_backoff_limit(),
            active_deadline_seconds: default_deadline(),
            parallelism: default_parallelism(),
        }
    }
}

/// Job settings of the clean stage: those of a parallel stage, plus the size of its runs.
// The four fields repeat `ParallelStageSpec`'s on purpose: `#[serde(flatten)]` gives the same
// CRD, but its errors lose the field ("spec.stages.clean: invalid type ..." instead of
// "spec.stages.clean.parallelism: ...").
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CleanStageSpec {
    /// CPU and memory of each pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// Retries of a failed pod (per index when parallel) before the stage fails.
    #[serde(default = "default_backoff_limit")]
    #[schemars(range(min = 0, max = 100))]
    pub backoff_limit: i32,
    /// Seconds the stage may run before it is stopped and fails.
    #[serde(default = "default_deadline")]
    #[schemars(range(min = 1, max = 604_800))]
    pub active_deadline_seconds: i64,
    /// Pods (shards) of the stage; above 1 the Job is Indexed and each pod processes the
    /// share `--shard INDEX/COUNT` of the input files.
    #[serde(default = "default_parallelism")]
    #[schemars(range(min = 1, max = 64))]
    pub parallelism: i32,
    /// Raw input bytes one clean run takes at most; a pod's peak memory is about 110 MB plus
    /// 3.5 bytes per raw byte. Default: a fifth of the clean pods' memory limit above
    /// 128 MiB, if a limit is set; otherwise no limit (one run takes all pending input).
    // Last and omitted when unset, so the exec hash of existing pipelines stays the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = MIN_MAX_RUN_BYTES))]
    pub max_run_bytes: Option<i64>,
}

/// Smallest `spec.stages.clean.maxRunBytes` (1 MiB).
pub const MIN_MAX_RUN_BYTES: i64 = 1 << 20;

impl Default for CleanStageSpec {
    fn default() -> Self {
        Self {
            resources: None,
            backoff_limit: default_backoff_limit(),
            active_deadline_seconds: default_deadline(),
            parallelism: default_parallelism(),
            max_run_bytes: None,
        }
    }
}

fn default_backoff_limit() -> i32 {
    3
}

fn default_deadline() -> i64 {
    3600
}

fn default_parallelism() -> i32 {
    1
}

/// Compute resources of a container.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    /// Resources the scheduler reserves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<ResourceAmounts>,
    /// Upper bounds enforced at run time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ResourceAmounts>,
}

/// CPU and memory amounts as Kubernetes quantities.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceAmounts {
    /// CPU, e.g. `500m` or `2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?|\.[0-9]+)m?$"))]
    pub cpu: Option<String>,
    /// Memory, e.g. `512Mi` or `2Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?([KMGTPE]i?|[kmu]|e[0-9]+)?$"))]
    pub memory: Option<String>,
}

/// The dashboard Deployment and Service.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.nodePort) || self.serviceType != 'ClusterIP'",
        "message": "nodePort requires serviceType NodePort or LoadBalancer"
    }
]))]
pub struct DashboardSpec {
    /// Whether to run the dashboard at all.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Pods of the dashboard Deployment.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 20))]
    pub replicas: i32,
    /// Type of the dashboard Service.
    #[serde(default)]
    pub service_type: ServiceType,
    /// Port of the dashboard Service (and of the container).
    #[serde(default = "default_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Fixed node port (with serviceType NodePort or LoadBalancer); chosen by Kubernetes when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 30000, max = 32767))]
    pub node_port: Option<i32>,
    /// CPU and memory of each dashboard pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
}

impl Default for DashboardSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            replicas: default_replicas(),
            service_type: ServiceType::default(),
            port: default_port(),
            node_port: None,
            resources: None,
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_replicas() -> i32 {
    1
}

fn default_port() -> i32 {
    8080
}

/// Type of the dashboard Service.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ServiceType {
    /// Reachable inside the cluster (use `kubectl port-forward`).
    #[default]
    ClusterIP,
    /// Also on a port of every node.
    NodePort,
    /// Through the cloud's load balancer.
    LoadBalancer,
}

impl ServiceType {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClusterIP => "ClusterIP",
            Self::NodePort => "NodePort",
            Self::LoadBalancer => "LoadBalancer",
        }
    }
}
