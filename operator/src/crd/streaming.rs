//! `spec.streaming`: the settings of the stream StatefulSet of streaming mode.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Resources;

/// Settings of streaming mode: the stream StatefulSet (`ecom stream`), one pod per shard,
/// each tailing its share of the topic's partitions and committing a micro-batch all the way
/// to HBase every batchIntervalMs, exactly once.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StreamingSpec {
    /// No longer used (ignored): micro-batches commit every batchIntervalMs. Still accepted
    /// so that existing manifests apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 86_400))]
    pub interval_seconds: Option<i32>,
    /// Milliseconds a record waits at most before its micro-batch commits
    /// (`--batch-interval`).
    #[serde(default = "default_batch_interval_ms")]
    #[schemars(range(min = 100, max = 60_000))]
    pub batch_interval_ms: i32,
    /// Records one micro-batch takes at most (`--max-batch-records`).
    #[serde(default = "default_max_batch_records")]
    #[schemars(range(min = 1000, max = 5_000_000))]
    pub max_batch_records: i32,
    /// Pods of the stream StatefulSet (`--shard INDEX/COUNT`); each partition of the topic
    /// belongs to one of them (by a hash of topic and partition), so more shards than
    /// partitions leaves some idle. A change stops every pod before the new count starts.
    #[serde(default = "default_shards")]
    #[schemars(range(min = 1, max = 64))]
    pub shards: i32,
    /// CPU and memory of each stream pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
}

impl Default for StreamingSpec {
    fn default() -> Self {
        Self {
            interval_seconds: None,
            batch_interval_ms: default_batch_interval_ms(),
            max_batch_records: default_max_batch_records(),
            shards: default_shards(),
            resources: None,
        }
    }
}

fn default_batch_interval_ms() -> i32 {
    1000
}

fn default_max_batch_records() -> i32 {
    200_000
}

fn default_shards() -> i32 {
    1
}
