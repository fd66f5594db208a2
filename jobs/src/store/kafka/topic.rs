//! The topic's metadata (does it exist, how many partitions) and its creation.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::metadata::Metadata;
use rdkafka::producer::Producer;

use super::context::LastClientError;
use super::producer::IdempotentProducer;
use super::{KafkaConfig, KafkaLogError};

/// Partitions of the configured topic, `None` if it does not exist.
pub fn topic_partitions(cfg: &KafkaConfig) -> Result<Option<u32>, KafkaLogError> {
    let client: BaseConsumer<LastClientError> = cfg
        .base()
        .create_with_context(LastClientError::default())
        .map_err(|source| KafkaLogError::Client {
            bootstrap: cfg.bootstrap.clone(),
            what: "metadata client",
            source,
        })?;
    let md = client
        .fetch_metadata(Some(&cfg.topic), cfg.timeout)
        .map_err(|e| {
            // Serve the queued log and error events: they name the cause (e.g. a failed SASL
            // authentication) that the metadata error only calls a transport failure.
            for _ in 0..10 {
                let _ = client.poll(Duration::from_millis(50));
            }
            cfg.err(
                "fetching metadata",
                client
                    .context()
                    .explain(format!("{e} (no answer within {:?})", cfg.timeout)),
            )
        })?;
    partitions_in(&md, cfg)
}

/// Partitions of the configured topic as the producer's metadata shows them,
/// `None` if it does not exist.
pub(super) fn producer_partitions(
    p: &IdempotentProducer,
    cfg: &KafkaConfig,
) -> Result<Option<u32>, KafkaLogError> {
    let md = p
        .client()
        .fetch_metadata(Some(&cfg.topic), cfg.timeout)
        .map_err(|e| {
            // Serve the queued error events: they name the cause (e.g. a failed SASL
            // authentication) that the metadata error only calls a transport failure.
            p.poll(Duration::from_millis(500));
            cfg.err(
                "fetching metadata",
                p.context()
                    .client_error
                    .explain(format!("{e} (no answer within {:?})", cfg.timeout)),
            )
        })?;
    partitions_in(&md, cfg)
}

/// Waits until the producer's metadata shows the topic just created (it takes
/// a moment to reach every broker), and returns its partitions.
pub(super) fn wait_for_topic(
    p: &IdempotentProducer,
    cfg: &KafkaConfig,
) -> Result<u32, KafkaLogError> {
    let start = Instant::now();
    loop {
        let error = match producer_partitions(p, cfg) {
            Ok(Some(n)) => return Ok(n),
            Ok(None) => cfg.err("looking up the created topic", "topic does not exist"),
            Err(e) => e,
        };
        if start.elapsed() > cfg.timeout {
            return Err(error);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The partitions `md` lists for the configured topic, `None` if it does not exist.
fn partitions_in(md: &Metadata, cfg: &KafkaConfig) -> Result<Option<u32>, KafkaLogError> {
    let Some(t) = md.topics().iter().find(|t| t.name() == cfg.topic) else {
        return Ok(None);
    };
    match t.error() {
        None if !t.partitions().is_empty() => Ok(Some(t.partitions().len() as u32)),
        None => Ok(None),
        Some(e) if RDKafkaErrorCode::from(e) == RDKafkaErrorCode::UnknownTopicOrPartition => {
            Ok(None)
        }
        Some(e) => Err(cfg.err("fetching metadata", RDKafkaErrorCode::from(e))),
    }
}

/// Creates the configured topic (an existing topic is not an error).
pub fn create_topic(cfg: &KafkaConfig) -> Result<(), KafkaLogError> {
    let admin: AdminClient<LastClientError> = cfg
        .base()
        .create_with_context(LastClientError::default())
        .map_err(|source| KafkaLogError::Client {
            bootstrap: cfg.bootstrap.clone(),
            what: "admin client",
            source,
        })?;
    let opts = AdminOptions::new()
        .operation_timeout(Some(cfg.timeout))
        .request_timeout(Some(cfg.timeout));
    let topic = NewTopic::new(
        &cfg.topic,
        cfg.partitions.max(1) as i32,
        TopicReplication::Fixed(cfg.replication.max(1) as i32),
    );
    let results = futures::executor::block_on(admin.create_topics([&topic], &opts))
        .map_err(|e| cfg.err("creating the topic", admin.inner().context().explain(e)))?;
    for r in results {
        match r {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => {
                return Err(cfg.err("creating the topic", admin.inner().context().explain(code)))
            }
        }
    }
    tracing::info!(bootstrap = %cfg.bootstrap, topic = %cfg.topic, partitions = cfg.partitions, replication = cfg.replication, "created topic");
    Ok(())
}
