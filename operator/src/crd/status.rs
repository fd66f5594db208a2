//! The status the operator writes: phase, conditions, each stage's state and counts, how to
//! reach the dashboard.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use ecom_contract::summary::StageCounts;

/// Observed state of the pipeline, written by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EcomPipelineStatus {
    /// The `metadata.generation` this status was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// One-word summary (details in conditions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Hash of the spec fields that define the data (everything but suspend, dashboard and
    /// cleanupPolicy); stage Jobs carry it in their names, a new key starts a new run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_key: Option<String>,
    /// Conditions: Ingested, Cleaned, Loaded, DashboardAvailable, Ready, Degraded.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// State of each stage in the current run.
    #[serde(default)]
    pub stages: BTreeMap<String, StageStatus>,
    /// Row counts of the current run, read from the stage pods' termination messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<Counts>,
    /// No longer written: streaming mode once counted clean+load cycles here (its stream
    /// StatefulSet commits micro-batches continuously now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cycle: Option<i64>,
    /// How to reach the dashboard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dashboard: Option<DashboardStatus>,
}

/// A condition of the pipeline, in the Kubernetes convention.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Type of the condition, e.g. Ready.
    #[serde(rename = "type")]
    pub type_: String,
    /// Whether the condition holds.
    pub status: ConditionStatus,
    /// Machine-readable reason of the last transition, in CamelCase.
    pub reason: String,
    /// Human-readable explanation.
    #[serde(default)]
    pub message: String,
    /// When the status last changed (RFC 3339).
    pub last_transition_time: String,
    /// The generation the condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// State of one stage in the current run.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StageStatus {
    /// Where the stage stands.
    pub state: StageState,
    /// Name of the stage's Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// The stream stage: name of its StatefulSet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stateful_set: Option<String>,
    /// The run key this state belongs to; a Succeeded stage with the current key is never re-run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_key: Option<String>,
    /// Pods (shards) that succeeded.
    #[serde(default)]
    pub succeeded: i32,
    /// Pods (shards) the stage needs.
    #[serde(default)]
    pub completions: i32,
    /// The stream stage: pods (shards) ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<i32>,
    /// Failure reason or other detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the stage finished (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<String>,
    /// The counts of the stage's summaries (one per shard), summed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<StageCounts>,
}

/// Row counts of the current run.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Records the producer delivered to Kafka.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub produced: Option<i64>,
    /// Records the sink wrote to raw files on HDFS (batch mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sunk: Option<i64>,
    /// Rows read by cleaning (batch mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clean_input: Option<i64>,
    /// Rows kept by cleaning (batch mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleaned: Option<i64>,
    /// Rows dropped by cleaning, per rule (batch mode).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dropped: BTreeMap<String, i64>,
    /// Rows loaded into HBase (batch mode; in streaming mode the stream pods report no counts
    /// while they run: the dashboard shows what is loaded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loaded: Option<i64>,
}

/// How to reach the dashboard.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DashboardStatus {
    /// Name of the dashboard Service.
    pub service: String,
    /// Port of the dashboard Service.
    pub port: i32,
    /// Command that forwards the dashboard to http://localhost:PORT.
    pub port_forward: String,
    /// Ready pods of the dashboard Deployment.
    #[serde(default)]
    pub ready_replicas: i32,
}

/// Spellings on the wire, `as_str` and `Display` of a status enum.
macro_rules! wire_names {
    ($ty:ident { $($variant:ident),+ $(,)? }) => {
        impl $ty {
            /// The value as written to the status.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => stringify!($variant)),+
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// The pipeline's one-word summary.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum Phase {
    /// No stage has started.
    Pending,
    /// Stages are running (or waiting on one another).
    Running,
    /// Every stage of the run succeeded and the dashboard is available.
    Ready,
    /// `spec.suspend` holds the stages.
    Suspended,
    /// A stage failed.
    Failed,
    /// The spec does not validate (see the conditions).
    Invalid,
    /// The operator will not run the pipeline (see the conditions): an image or Secret
    /// outside its allow-lists, storage an older pipeline uses, or an object of a name it
    /// would write that belongs to something else.
    Refused,
}
wire_names!(Phase {
    Pending,
    Running,
    Ready,
    Suspended,
    Failed,
    Invalid,
    Refused
});

/// Where one stage stands.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum StageState {
    /// Not created yet: an upstream stage has not finished.
    #[default]
    Pending,
    /// Created suspended until an upstream stage finished.
    Waiting,
    /// Created, running (or about to).
    Running,
    /// Suspended by `spec.suspend`.
    Suspended,
    /// Finished successfully.
    Succeeded,
    /// Failed (backoff limit or deadline exceeded).
    Failed,
}
wire_names!(StageState {
    Pending,
    Waiting,
    Running,
    Suspended,
    Succeeded,
    Failed
});

/// Whether a condition holds, in the Kubernetes convention.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum ConditionStatus {
    /// It holds.
    True,
    /// It does not.
    False,
    /// Not known yet.
    #[default]
    Unknown,
}
wire_names!(ConditionStatus {
    True,
    False,
    Unknown
});

impl From<bool> for ConditionStatus {
    fn from(holds: bool) -> Self {
        if holds {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        }
    }
}
