//! [`KafkaLog`]: a Kafka topic as a [`MessageLog`], appending through the
//! idempotent producer and reading one assigned partition at a time.

use std::cell::OnceCell;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message as _;
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use super::producer::{drain, new_producer, serve_queued_reports, IdempotentProducer};
use super::topic::{create_topic, producer_partitions, topic_partitions, wait_for_topic};
use super::{KafkaConfig, KafkaLogError};
use crate::store::log::{LogError, Message, MessageLog};

/// Where the consumer currently reads.
struct ReadState {
    partition: u32,
    /// The offset of the next message the consumer will hand out.
    next: u64,
}

/// A Kafka topic as a [`MessageLog`].
pub struct KafkaLog {
    cfg: KafkaConfig,
    partitions: u32,
    producer: Option<IdempotentProducer>,
    /// Created on the first read or end offset: a producing run never needs it.
    consumer: OnceCell<BaseConsumer>,
    reading: Option<ReadState>,
    enqueued: u64,
}

impl KafkaLog {
    /// Connects to an existing topic (fails naming the address if the cluster
    /// does not answer within the timeout or the topic is missing).
    pub fn open(cfg: KafkaConfig) -> Result<Self, KafkaLogError> {
        let partitions = topic_partitions(&cfg)?
            .ok_or_else(|| cfg.err("looking up the topic", "topic does not exist"))?;
        Ok(KafkaLog {
            cfg,
            partitions,
            producer: None,
            consumer: OnceCell::new(),
            reading: None,
            enqueued: 0,
        })
    }

    /// Starts the producer, creates the topic with the configured partitions
    /// and replication if the producer's metadata shows it missing, and waits
    /// until the producer sees it.
    ///
    /// The producer is the only client unless the topic has to be created: it
    /// answers the metadata lookup itself, and it acquires its producer id
    /// while the caller starts reading its input.
    pub fn open_or_create(cfg: KafkaConfig) -> Result<Self, KafkaLogError> {
        let producer = new_producer(&cfg)?;
        let partitions = match producer_partitions(&producer, &cfg)? {
            Some(n) => n,
            None => {
                create_topic(&cfg)?;
                wait_for_topic(&producer, &cfg)?
            }
        };
        // librdkafka asks for the idempotent producer's id when a metadata answer arrives
        // while a broker connection is up. The first answer comes over the bootstrap
        // connection, which librdkafka then closes for the broker that answer names, so the
        // id request found no connection and waited for librdkafka's 500 ms retry timer.
        // A second lookup goes over the new connection and starts the request at once.
        let asked = Instant::now();
        if let Err(e) = producer
            .client()
            .fetch_metadata(Some(&cfg.topic), cfg.timeout)
        {
            tracing::debug!(error = %e, "second metadata lookup failed");
        }
        tracing::debug!(took = ?asked.elapsed(), "producer connected to the topic's broker");
        Ok(KafkaLog {
            cfg,
            partitions,
            producer: Some(producer),
            consumer: OnceCell::new(),
            reading: None,
            enqueued: 0,
        })
    }

    /// The settings.
    pub fn config(&self) -> &KafkaConfig {
        &self.cfg
    }

    /// Delivery counters of the producer (zero before the first append).
    pub fn delivered(&self) -> (u64, u64) {
        self.producer
            .as_ref()
            .map(|p| (p.context().delivered(), p.context().failed()))
            .unwrap_or((0, 0))
    }

    fn producer(&mut self) -> Result<&IdempotentProducer, KafkaLogError> {
        if self.producer.is_none() {
            self.producer = Some(new_producer(&self.cfg)?);
        }
        self.producer
            .as_ref()
            .ok_or_else(|| self.cfg.err("creating the producer", "not created"))
    }

    fn consumer(&self) -> Result<&BaseConsumer, KafkaLogError> {
        if let Some(c) = self.consumer.get() {
            return Ok(c);
        }
        let created = new_consumer(&self.cfg)?;
        Ok(self.consumer.get_or_init(|| created))
    }

    fn read_kafka(
        &mut self,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Result<Vec<(u64, Message)>, KafkaLogError> {
        if partition >= self.partitions {
            return Err(self.cfg.err(
                "reading",
                format!(
                    "partition {partition} does not exist (the topic has {})",
                    self.partitions
                ),
            ));
        }
        let positioned =
            matches!(&self.reading, Some(r) if r.partition == partition && r.next == from);
        if !positioned {
            let topic = self.cfg.topic.clone();
            let consumer = self.consumer()?;
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&topic, partition as i32, Offset::Offset(from as i64))
                .map_err(|e| self.cfg.err("assigning a partition", e))?;
            consumer
                .assign(&tpl)
                .map_err(|e| self.cfg.err("assigning a partition", e))?;
            self.reading = Some(ReadState {
                partition,
                next: from,
            });
        }
        let poll_timeout = self.cfg.poll_timeout;
        let cfg = self.cfg.clone();
        let consumer = self.consumer()?;
        let mut out = Vec::new();
        let started = Instant::now();
        let mut next = from;
        while out.len() < max {
            let wait = if out.is_empty() {
                poll_timeout.saturating_sub(started.elapsed())
            } else {
                Duration::from_millis(50)
            };
            match consumer.poll(wait) {
                None => break,
                Some(Err(KafkaError::PartitionEOF(_))) => break,
                Some(Err(e)) => {
                    if started.elapsed() > cfg.timeout {
                        return Err(cfg.err("reading", e));
                    }
                    tracing::warn!(bootstrap = %cfg.bootstrap, topic = %cfg.topic, error = %e, "Kafka read error, retrying");
                }
                Some(Ok(m)) => {
                    let offset = m.offset().max(0) as u64;
                    if m.partition() as u32 != partition || offset < next {
                        continue;
                    }
                    out.push((
                        offset,
                        Message {
                            key: m.key().unwrap_or_default().to_vec(),
                            value: m.payload().unwrap_or_default().to_vec(),
                        },
                    ));
                    next = offset + 1;
                }
            }
        }
        if let Some(r) = &mut self.reading {
            r.next = next;
        }
        Ok(out)
    }
}

/// The consumer of `cfg`'s topic (manual assignment, no committed offsets).
pub(super) fn new_consumer(cfg: &KafkaConfig) -> Result<BaseConsumer, KafkaLogError> {
    consumer_with(cfg, true)
}

/// A consumer of `cfg`'s topic; `partition_eof`: report reaching a partition's end (the
/// tail, which never waits for an end, turns it off: librdkafka logs each one as an error).
pub(super) fn consumer_with(
    cfg: &KafkaConfig,
    partition_eof: bool,
) -> Result<BaseConsumer, KafkaLogError> {
    let mut c = cfg.base();
    c.set("group.id", format!("ecom-reader-{}", cfg.topic))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", partition_eof.to_string())
        .set("auto.offset.reset", "earliest")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "8388608");
    cfg.apply_extra(&mut c);
    c.create()
        .map_err(|source| cfg.client_err("consumer", source))
}

impl MessageLog for KafkaLog {
    fn partitions(&self) -> u32 {
        self.partitions
    }

    fn append(&mut self, messages: &[Message]) -> Result<(), LogError> {
        let topic = self.cfg.topic.clone();
        let timeout = self.cfg.timeout;
        let cfg = self.cfg.clone();
        let producer = self.producer()?;
        for m in messages {
            let mut record = BaseRecord::to(&topic).key(&m.key[..]).payload(&m.value[..]);
            // Read the clock only when the queue is full, not once per record.
            let mut full_since: Option<Instant> = None;
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        if full_since.get_or_insert_with(Instant::now).elapsed() > timeout {
                            return Err(cfg
                                .err(
                                    "sending",
                                    format!("local queue still full after {timeout:?}"),
                                )
                                .into());
                        }
                        record = r;
                        if !serve_queued_reports(producer) {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    }
                    Err((e, _)) => return Err(cfg.err("sending", e).into()),
                }
            }
        }
        serve_queued_reports(producer);
        let failed = producer.context().failed();
        let first_error = producer.context().first_error();
        self.enqueued += messages.len() as u64;
        if failed > 0 {
            return Err(cfg
                .err(
                    "delivering",
                    format!(
                        "{failed} records not delivered; first error: {}",
                        first_error.unwrap_or_default()
                    ),
                )
                .into());
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), LogError> {
        let Some(producer) = &self.producer else {
            return Ok(());
        };
        let cfg = &self.cfg;
        let drained = drain(producer, cfg.timeout);
        let ctx = producer.context();
        let (delivered, failed) = (ctx.delivered(), ctx.failed());
        if failed > 0 || drained.is_err() || delivered < self.enqueued {
            let waited = match &drained {
                Err(left) => format!(" within {:?} ({left})", cfg.timeout),
                Ok(()) => String::new(),
            };
            return Err(cfg
                .err(
                    "delivering",
                    format!(
                        "{} of {} records not delivered{waited}; first error: {}",
                        self.enqueued.saturating_sub(delivered),
                        self.enqueued,
                        ctx.first_error().unwrap_or_else(|| "none reported".into())
                    ),
                )
                .into());
        }
        Ok(())
    }

    fn read(
        &mut self,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Result<Vec<(u64, Message)>, LogError> {
        Ok(self.read_kafka(partition, from, max)?)
    }

    fn end_offset(&self, partition: u32) -> Result<u64, LogError> {
        Ok(self.watermarks(partition)?.1)
    }

    fn watermarks(&self, partition: u32) -> Result<(u64, u64), LogError> {
        let (low, high) = self
            .consumer()?
            .fetch_watermarks(&self.cfg.topic, partition as i32, self.cfg.timeout)
            .map_err(|e| self.cfg.err("fetching the partition's offsets", e))?;
        Ok((low.max(0) as u64, high.max(0) as u64))
    }

    fn max_record_bytes(&self) -> Option<usize> {
        Some(self.cfg.max_record_bytes())
    }
}
