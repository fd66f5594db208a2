//! The message transport on Apache Kafka, through rdkafka (librdkafka).
//!
//! Writes go through one idempotent
//! [`BaseProducer`](rdkafka::producer::BaseProducer): records are enqueued
//! without waiting and librdkafka batches them (linger, batch size and
//! compression are configurable); delivery reports are counted by the
//! producer context, and [`MessageLog::flush`](super::log::MessageLog::flush)
//! fails if any record was not delivered. [`KafkaLog::open_or_create`] uses
//! that producer for the topic's metadata too, so a produce run starts one
//! client (plus an admin client only when the topic is missing). Reads use a
//! [`BaseConsumer`](rdkafka::consumer::BaseConsumer), created on the
//! first read, with manual assignment of one partition at a time (no
//! consumer-group offsets: the caller says where to read from), end offsets
//! come from the partition watermarks. Every call that waits on the cluster
//! fails after the configured timeout with an error that names the bootstrap
//! address, and the last client error librdkafka reported when there was one.
//! A metadata lookup (the first call of every stage) serves the client's error
//! events while it waits: a broker refusing the connection's security (a TLS
//! certificate the configured CA did not sign, a failed SASL authentication)
//! ends it at once with [`KafkaLogError::Refused`], a permanent error, instead
//! of a timeout and retries.
//!
//! The settings are in `config`, the `--kafka-property` and environment
//! parsing in `properties`, the clients' contexts in `context`, the topic's
//! metadata and creation in `topic`, the producer and its drain in
//! `producer`, and the [`MessageLog`](super::log::MessageLog) itself in
//! `message_log`.

mod config;
mod context;
mod message_log;
mod producer;
mod properties;
mod tail;
mod topic;

use rdkafka::error::KafkaError;

use super::log::LogError;

pub use config::KafkaConfig;
pub use context::{DeliveryCounter, LastClientError, Refusal};
pub use message_log::KafkaLog;
pub use properties::{
    kafka_properties, property_env_name, ENV_PROPERTY_PREFIX, ENV_SASL_PASSWORD, ENV_SASL_USERNAME,
    SECRET_PROPERTIES,
};
pub use tail::KafkaTail;
pub use topic::{create_topic, topic_partitions};

/// Errors of the Kafka backend, naming the bootstrap address and topic.
#[derive(Debug, thiserror::Error)]
pub enum KafkaLogError {
    /// The client refused its configuration.
    #[error("Kafka at {bootstrap}: creating the {what}{files}: {source}")]
    Client {
        /// Bootstrap servers.
        bootstrap: String,
        /// Which client.
        what: &'static str,
        /// The files the configuration names (` (ssl.ca.location=PATH)`), which
        /// librdkafka's message leaves out; empty when none.
        files: String,
        /// The rdkafka error.
        source: Box<KafkaError>,
    },
    /// A `--kafka-property` argument is not `KEY=VALUE`.
    #[error("--kafka-property {0}: expected KEY=VALUE")]
    MalformedProperty(String),
    /// A secret was given on the command line, where the process list shows it.
    #[error(
        "--kafka-property {key}=...: {key} is a secret and the command line is visible in the \
         process list; set the environment variable {env} instead"
    )]
    SecretOnCommandLine {
        /// The property.
        key: String,
        /// The environment variable to use instead.
        env: String,
    },
    /// The broker refused the connection's security (TLS or SASL); librdkafka's
    /// message names the broker and the cause.
    #[error("Kafka at {bootstrap}: {refusal}: {message}")]
    Refused {
        /// Bootstrap servers.
        bootstrap: String,
        /// What was refused.
        refusal: Refusal,
        /// librdkafka's report of the refusal.
        message: String,
    },
    /// The cluster did not answer in time, or answered with an error.
    #[error("Kafka at {bootstrap}, topic {topic}: {op}: {message}")]
    Cluster {
        /// Bootstrap servers.
        bootstrap: String,
        /// Topic.
        topic: String,
        /// What was being done.
        op: &'static str,
        /// What went wrong.
        message: String,
    },
}

impl From<KafkaLogError> for LogError {
    fn from(e: KafkaLogError) -> Self {
        LogError::Remote(Box::new(e))
    }
}

impl KafkaLogError {
    /// A client librdkafka refused to create (its configuration), a malformed property or
    /// a broker refusing the connection's security never heals; the cluster not answering
    /// or answering with an error may.
    pub fn class(&self) -> Option<crate::retry::ErrorClass> {
        use crate::retry::ErrorClass::{Permanent, Transient};
        Some(match self {
            KafkaLogError::Client { .. }
            | KafkaLogError::MalformedProperty(_)
            | KafkaLogError::SecretOnCommandLine { .. }
            | KafkaLogError::Refused { .. } => Permanent,
            KafkaLogError::Cluster { .. } => Transient,
        })
    }
}
