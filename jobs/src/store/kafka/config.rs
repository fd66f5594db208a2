//! Settings of the Kafka backend and the client configuration built from them.

use std::time::Duration;

use rdkafka::config::ClientConfig;

use super::KafkaLogError;

/// Settings of the Kafka backend.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `bootstrap.servers`.
    pub bootstrap: String,
    /// Topic.
    pub topic: String,
    /// Partitions when the topic is created.
    pub partitions: u32,
    /// Replication factor when the topic is created.
    pub replication: u32,
    /// `linger.ms` of the producer.
    pub linger_ms: u32,
    /// `batch.size` (bytes per partition batch) of the producer.
    pub batch_bytes: u32,
    /// `compression.type`: none, gzip, snappy, lz4, zstd.
    pub compression: String,
    /// Bound on every wait for the cluster (metadata, watermarks, delivery).
    pub timeout: Duration,
    /// How long one read waits for new messages before returning what it has.
    pub poll_timeout: Duration,
    /// Extra librdkafka properties (`key`, `value`), applied last to every client
    /// (security settings such as `security.protocol` and `sasl.*` go here).
    pub extra: Vec<(String, String)>,
}

/// librdkafka's default `message.max.bytes`.
const DEFAULT_MESSAGE_MAX_BYTES: usize = 1_000_000;
/// What librdkafka adds to a record's key and value when it checks `message.max.bytes`
/// (its largest framing of one record: length, attributes, timestamp and offset deltas, key
/// and value lengths and header count, as varints).
const RECORD_OVERHEAD: usize = 36;

impl KafkaConfig {
    /// The largest key and value together the producer accepts: `message.max.bytes` (from
    /// the extra properties, else librdkafka's default of 1,000,000) less the record's
    /// framing. A larger record is refused by librdkafka before it is sent.
    pub fn max_record_bytes(&self) -> usize {
        self.extra
            .iter()
            .rev()
            .find(|(k, _)| k == "message.max.bytes")
            .and_then(|(_, v)| v.trim().parse::<usize>().ok())
            .unwrap_or(DEFAULT_MESSAGE_MAX_BYTES)
            .saturating_sub(RECORD_OVERHEAD)
    }

    /// Defaults for `bootstrap` and `topic`: 3 partitions, replication 1,
    /// linger 20 ms, 1 MiB batches, lz4, 30 s timeout.
    pub fn new(bootstrap: impl Into<String>, topic: impl Into<String>) -> Self {
        KafkaConfig {
            bootstrap: bootstrap.into(),
            topic: topic.into(),
            partitions: 3,
            replication: 1,
            linger_ms: 20,
            batch_bytes: 1 << 20,
            compression: "lz4".into(),
            timeout: Duration::from_secs(30),
            poll_timeout: Duration::from_millis(500),
            extra: Vec::new(),
        }
    }

    pub(super) fn base(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap)
            .set(
                "socket.connection.setup.timeout.ms",
                self.timeout.as_millis().max(1000).to_string(),
            )
            .set("log_level", "3");
        self.apply_extra(&mut c);
        c
    }

    pub(super) fn apply_extra(&self, c: &mut ClientConfig) {
        for (k, v) in &self.extra {
            c.set(k, v);
        }
    }

    /// A client librdkafka refused to create, with the files the settings name
    /// (`ssl.ca.location` and the other `*.location` properties).
    pub(super) fn client_err(
        &self,
        what: &'static str,
        source: rdkafka::error::KafkaError,
    ) -> KafkaLogError {
        let files: Vec<String> = self
            .extra
            .iter()
            .filter(|(k, _)| k.ends_with(".location"))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        KafkaLogError::Client {
            bootstrap: self.bootstrap.clone(),
            what,
            files: if files.is_empty() {
                String::new()
            } else {
                format!(" ({})", files.join(", "))
            },
            source: Box::new(source),
        }
    }

    pub(super) fn err(&self, op: &'static str, message: impl std::fmt::Display) -> KafkaLogError {
        KafkaLogError::Cluster {
            bootstrap: self.bootstrap.clone(),
            topic: self.topic.clone(),
            op,
            message: message.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_limit_follows_message_max_bytes() {
        let mut cfg = KafkaConfig::new("k:9092", "t");
        assert_eq!(cfg.max_record_bytes(), 1_000_000 - 36);
        cfg.extra.push(("message.max.bytes".into(), "2000".into()));
        cfg.extra.push(("linger.ms".into(), "5".into()));
        assert_eq!(cfg.max_record_bytes(), 2000 - 36);
        cfg.extra.push(("message.max.bytes".into(), "5000".into()));
        assert_eq!(cfg.max_record_bytes(), 5000 - 36, "the last one wins");
    }
}
