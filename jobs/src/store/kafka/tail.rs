//! [`KafkaTail`]: the streaming stage's consumer. It is assigned all of a shard's partitions
//! at once and hands out records as they arrive, with the broker's timestamp of each.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};

use super::topic::topic_partitions;
use super::{KafkaConfig, KafkaLogError};
use crate::store::log::{LogError, Polled, Tail};

/// A Kafka topic read as a [`Tail`] (manual assignment, no consumer-group offsets: the
/// caller says where each partition resumes).
pub struct KafkaTail {
    cfg: KafkaConfig,
    partitions: u32,
    consumer: BaseConsumer,
    /// The next offset expected per assigned partition.
    next: BTreeMap<u32, u64>,
}

impl KafkaTail {
    /// Connects to an existing topic (fails naming the address if the cluster does not
    /// answer within the timeout or the topic is missing).
    pub fn open(cfg: KafkaConfig) -> Result<Self, KafkaLogError> {
        let partitions = topic_partitions(&cfg)?
            .ok_or_else(|| cfg.err("looking up the topic", "topic does not exist"))?;
        let consumer = super::message_log::consumer_with(&cfg, false)?;
        Ok(KafkaTail {
            cfg,
            partitions,
            consumer,
            next: BTreeMap::new(),
        })
    }
}

impl Tail for KafkaTail {
    fn partitions(&self) -> u32 {
        self.partitions
    }

    fn assign(&mut self, positions: &BTreeMap<u32, u64>) -> Result<(), LogError> {
        let mut tpl = TopicPartitionList::new();
        for (&p, &offset) in positions {
            if p >= self.partitions {
                return Err(LogError::NoPartition {
                    partition: p,
                    partitions: self.partitions,
                });
            }
            tpl.add_partition_offset(&self.cfg.topic, p as i32, Offset::Offset(offset as i64))
                .map_err(|e| self.cfg.err("assigning partitions", e))?;
        }
        self.consumer
            .assign(&tpl)
            .map_err(|e| self.cfg.err("assigning partitions", e))?;
        self.next = positions.clone();
        Ok(())
    }

    fn watermarks(&self, partition: u32) -> Result<(u64, u64), LogError> {
        let (low, high) = self
            .consumer
            .fetch_watermarks(&self.cfg.topic, partition as i32, self.cfg.timeout)
            .map_err(|e| self.cfg.err("fetching the partition's offsets", e))?;
        Ok((low.max(0) as u64, high.max(0) as u64))
    }

    fn poll(&mut self, max: usize, wait: Duration) -> Result<Vec<Polled>, LogError> {
        let started = Instant::now();
        let mut out = Vec::new();
        while out.len() < max {
            let left = if out.is_empty() {
                wait.saturating_sub(started.elapsed())
            } else {
                Duration::ZERO
            };
            match self.consumer.poll(left) {
                None => break,
                Some(Err(KafkaError::PartitionEOF(_))) => {
                    if started.elapsed() >= wait {
                        break;
                    }
                }
                Some(Err(e)) => {
                    if started.elapsed() > self.cfg.timeout {
                        return Err(self.cfg.err("reading", e).into());
                    }
                    tracing::warn!(bootstrap = %self.cfg.bootstrap, topic = %self.cfg.topic, error = %e, "Kafka read error, retrying");
                    if started.elapsed() >= wait && out.is_empty() {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
                Some(Ok(m)) => {
                    let partition = m.partition().max(0) as u32;
                    let offset = m.offset().max(0) as u64;
                    // A record before the expected offset was read already (a re-assignment);
                    // one after it is a gap, which the stream checks.
                    let Some(next) = self.next.get_mut(&partition) else {
                        continue;
                    };
                    if offset < *next {
                        continue;
                    }
                    *next = offset + 1;
                    out.push(Polled {
                        partition,
                        offset,
                        value: m.payload().unwrap_or_default().to_vec(),
                        timestamp_ms: m.timestamp().to_millis(),
                    });
                }
            }
        }
        Ok(out)
    }
}
