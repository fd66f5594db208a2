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

impl KafkaConfig {
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
