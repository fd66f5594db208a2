//! The message transport on Apache Kafka, through rdkafka (librdkafka).
//!
//! Writes go through one idempotent [`BaseProducer`]: records are enqueued
//! without waiting and librdkafka batches them (linger, batch size and
//! compression are configurable); delivery reports are counted by the
//! producer context, and [`MessageLog::flush`] fails if any record was not
//! delivered. [`KafkaLog::open_or_create`] uses that producer for the topic's
//! metadata too, so a produce run starts one client (plus an admin client only
//! when the topic is missing). Reads use a [`BaseConsumer`], created on the
//! first read, with manual assignment of one partition at a time (no
//! consumer-group offsets: the caller says where to read from), end offsets
//! come from the partition watermarks. Every call that waits on the cluster
//! fails after the configured timeout with an error that names the bootstrap
//! address, and the last client error librdkafka reported (such as a failed
//! SASL authentication) when there was one.

use std::cell::OnceCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message as _};
use rdkafka::metadata::Metadata;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{Offset, TopicPartitionList};

use super::log::{LogError, Message, MessageLog};

/// Errors of the Kafka backend, naming the bootstrap address and topic.
#[derive(Debug, thiserror::Error)]
pub enum KafkaLogError {
    /// The client refused its configuration.
    #[error("Kafka at {bootstrap}: creating the {what}: {source}")]
    Client {
        /// Bootstrap servers.
        bootstrap: String,
        /// Which client.
        what: &'static str,
        /// The rdkafka error.
        source: KafkaError,
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
    /// A client librdkafka refused to create (its configuration) or a malformed
    /// property never heals; the cluster not answering or answering with an error may.
    pub fn class(&self) -> Option<crate::retry::ErrorClass> {
        use crate::retry::ErrorClass::{Permanent, Transient};
        Some(match self {
            KafkaLogError::Client { .. }
            | KafkaLogError::MalformedProperty(_)
            | KafkaLogError::SecretOnCommandLine { .. } => Permanent,
            KafkaLogError::Cluster { .. } => Transient,
        })
    }
}

/// Environment variable read as `sasl.username`.
pub const ENV_SASL_USERNAME: &str = "KAFKA_SASL_USERNAME";
/// Environment variable read as `sasl.password`.
pub const ENV_SASL_PASSWORD: &str = "KAFKA_SASL_PASSWORD";
/// Prefix of environment variables read as any librdkafka property:
/// `ECOM_KAFKA_PROPERTY_SSL_KEY_PASSWORD` sets `ssl.key.password`.
pub const ENV_PROPERTY_PREFIX: &str = "ECOM_KAFKA_PROPERTY_";
/// Properties holding secrets, refused on the command line.
pub const SECRET_PROPERTIES: &[&str] = &[
    "sasl.password",
    "sasl.oauthbearer.client.secret",
    "ssl.key.password",
    "ssl.key.pem",
    "ssl.keystore.password",
];

/// The environment variable that carries librdkafka property `key`.
pub fn property_env_name(key: &str) -> String {
    match key {
        "sasl.username" => ENV_SASL_USERNAME.to_string(),
        "sasl.password" => ENV_SASL_PASSWORD.to_string(),
        _ => format!(
            "{ENV_PROPERTY_PREFIX}{}",
            key.replace(['.', '-'], "_").to_ascii_uppercase()
        ),
    }
}

/// librdkafka properties from `--kafka-property KEY=VALUE` arguments and the environment
/// `env`: `KAFKA_SASL_USERNAME` and `KAFKA_SASL_PASSWORD` set `sasl.username` and
/// `sasl.password`, `ECOM_KAFKA_PROPERTY_<NAME>` sets `<name>` in lower case with `_` read
/// as `.`. The environment comes last, so it wins. Secrets ([`SECRET_PROPERTIES`]) are
/// refused in `args`: a Kubernetes Secret reaches a pod as an environment variable.
pub fn kafka_properties(
    args: &[String],
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<(String, String)>, KafkaLogError> {
    let mut out = Vec::new();
    for a in args {
        let (k, v) = a
            .split_once('=')
            .filter(|(k, _)| !k.trim().is_empty())
            .ok_or_else(|| KafkaLogError::MalformedProperty(a.clone()))?;
        let k = k.trim();
        if SECRET_PROPERTIES.contains(&k) {
            return Err(KafkaLogError::SecretOnCommandLine {
                key: k.to_string(),
                env: property_env_name(k),
            });
        }
        out.push((k.to_string(), v.to_string()));
    }
    let mut from_env: Vec<(String, String)> = env
        .into_iter()
        .filter_map(|(name, value)| {
            let key = match name.as_str() {
                ENV_SASL_USERNAME => "sasl.username".to_string(),
                ENV_SASL_PASSWORD => "sasl.password".to_string(),
                _ => name
                    .strip_prefix(ENV_PROPERTY_PREFIX)
                    .filter(|n| !n.is_empty())?
                    .to_ascii_lowercase()
                    .replace('_', "."),
            };
            Some((key, value))
        })
        .collect();
    from_env.sort();
    out.extend(from_env);
    Ok(out)
}

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

    fn base(&self) -> ClientConfig {
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

    fn apply_extra(&self, c: &mut ClientConfig) {
        for (k, v) in &self.extra {
            c.set(k, v);
        }
    }

    fn err(&self, op: &'static str, message: impl std::fmt::Display) -> KafkaLogError {
        KafkaLogError::Cluster {
            bootstrap: self.bootstrap.clone(),
            topic: self.topic.clone(),
            op,
            message: message.to_string(),
        }
    }
}

/// The producer's context: counts delivery reports and remembers the last
/// client error (to name the cause when a call on the producer fails).
#[derive(Default)]
pub struct DeliveryCounter {
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
    client_error: LastClientError,
}

impl DeliveryCounter {
    /// Records acknowledged by the cluster.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }
    /// Records that could not be delivered.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
    fn first_error(&self) -> Option<String> {
        self.first_error.lock().ok().and_then(|e| e.clone())
    }
}

impl ClientContext for DeliveryCounter {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.client_error.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.client_error.error(error, reason);
    }
}

/// Remembers the last client-level error librdkafka reported (a failed SASL
/// authentication, a refused connection), to name the cause when a call then fails.
#[derive(Default)]
pub struct LastClientError(Mutex<Option<String>>);

impl LastClientError {
    fn get(&self) -> Option<String> {
        self.0.lock().ok().and_then(|e| e.clone())
    }

    /// `message`, followed by the last client error if there was one.
    fn explain(&self, message: impl std::fmt::Display) -> String {
        match self.get() {
            Some(cause) => format!("{message}; last client error: {cause}"),
            None => message.to_string(),
        }
    }
}

impl ConsumerContext for LastClientError {}

impl ClientContext for LastClientError {
    // librdkafka reports a failed authentication as an error-level log line from its broker
    // thread (the error event would need a poll the metadata call does not do).
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", "{fac} {log_message}");
                if let Ok(mut last) = self.0.lock() {
                    *last = Some(log_message.to_string());
                }
            }
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", "{fac} {log_message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", "{fac} {log_message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", "{fac} {log_message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "Kafka client error");
        if let Ok(mut last) = self.0.lock() {
            *last = Some(if reason.is_empty() {
                error.to_string()
            } else {
                format!("{error} ({reason})")
            });
        }
    }
}

impl ProducerContext for DeliveryCounter {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = self.first_error.lock() {
                    first.get_or_insert_with(|| e.to_string());
                }
            }
        }
    }
}

/// Where the consumer currently reads.
struct ReadState {
    partition: u32,
    /// The offset of the next message the consumer will hand out.
    next: u64,
}

/// The idempotent producer of a [`KafkaLog`].
type IdempotentProducer = BaseProducer<DeliveryCounter>;

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

fn new_producer(cfg: &KafkaConfig) -> Result<IdempotentProducer, KafkaLogError> {
    let mut c = cfg.base();
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", cfg.linger_ms.to_string())
        .set("batch.size", cfg.batch_bytes.to_string())
        .set("compression.type", &cfg.compression)
        .set("partitioner", "murmur2_random")
        .set("queue.buffering.max.kbytes", "262144")
        .set(
            "message.timeout.ms",
            cfg.timeout.as_millis().max(1000).to_string(),
        )
        // The producer looks the topic up itself: a missing topic must be reported (and
        // created with the configured partitions), not created by the broker's defaults.
        .set("allow.auto.create.topics", "false")
        // The connection to a broker learnt from the bootstrap answer waits for half of
        // this (50 ms by default), and the producer id (so every record) waits for it.
        .set("reconnect.backoff.ms", "20");
    cfg.apply_extra(&mut c);
    c.create_with_context(DeliveryCounter::default())
        .map_err(|source| KafkaLogError::Client {
            bootstrap: cfg.bootstrap.clone(),
            what: "producer",
            source,
        })
}

fn new_consumer(cfg: &KafkaConfig) -> Result<BaseConsumer, KafkaLogError> {
    let mut c = cfg.base();
    c.set("group.id", format!("ecom-reader-{}", cfg.topic))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "8388608");
    cfg.apply_extra(&mut c);
    c.create().map_err(|source| KafkaLogError::Client {
        bootstrap: cfg.bootstrap.clone(),
        what: "consumer",
        source,
    })
}

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
fn producer_partitions(
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
fn wait_for_topic(p: &IdempotentProducer, cfg: &KafkaConfig) -> Result<u32, KafkaLogError> {
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

/// Waits until every enqueued record has its delivery report, or fails once
/// `timeout` has passed.
///
/// librdkafka sends a partial batch at once, instead of waiting out
/// `linger.ms`, only while `rd_kafka_flush` runs. rdkafka's `flush` calls it
/// without waiting and then polls in 100 ms steps, so the last batch of a run
/// waited for the linger and the whole run for the next step. Here
/// `rd_kafka_flush` waits on a helper thread, for the whole drain, while this
/// thread serves the delivery reports as they arrive (they must be served for
/// the flush to end).
fn drain(p: &IdempotentProducer, timeout: Duration) -> Result<(), String> {
    if p.in_flight_count() == 0 {
        return Ok(());
    }
    tracing::debug!(in_flight = p.in_flight_count(), "draining the producer");
    let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            // SAFETY: the handle is valid until the producer is dropped, which cannot
            // happen before this scope ends; librdkafka's flush is thread-safe, and with
            // event-based delivery reports it only waits for the undelivered count to
            // reach zero (or the timeout) without serving any queue.
            unsafe { rdkafka::bindings::rd_kafka_flush(p.client().native_ptr(), timeout_ms) };
        });
        serve_reports(p, timeout)
    })
}

/// Serves delivery reports until none is outstanding, sleeping a millisecond
/// whenever there was none to serve (rdkafka's `poll` with a timeout would
/// wait for the whole timeout, spinning through its last millisecond).
fn serve_reports(p: &IdempotentProducer, timeout: Duration) -> Result<(), String> {
    let start = Instant::now();
    while p.in_flight_count() > 0 {
        if serve_queued_reports(p) {
            continue;
        }
        if start.elapsed() >= timeout {
            return Err(format!(
                "{} records or reports still queued",
                p.in_flight_count()
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// Serves the delivery reports already queued, without waiting (one `poll`
/// serves one event); returns whether there was any.
fn serve_queued_reports(p: &IdempotentProducer) -> bool {
    let mut left = p.in_flight_count();
    let mut served = false;
    loop {
        p.poll(Duration::ZERO);
        let now = p.in_flight_count();
        if now >= left {
            return served;
        }
        served = true;
        left = now;
    }
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
        let (_, high) = self
            .consumer()?
            .fetch_watermarks(&self.cfg.topic, partition as i32, self.cfg.timeout)
            .map_err(|e| self.cfg.err("fetching end offsets", e))?;
        Ok(high.max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn secrets_come_from_the_environment() {
        let args = vec![
            "security.protocol=SASL_PLAINTEXT".to_string(),
            "sasl.mechanism=PLAIN".to_string(),
        ];
        let props = kafka_properties(
            &args,
            env(&[
                ("KAFKA_SASL_PASSWORD", "p=w"),
                ("KAFKA_SASL_USERNAME", "ecom"),
                ("ECOM_KAFKA_PROPERTY_SSL_KEY_PASSWORD", "k"),
                ("PATH", "/bin"),
                ("ECOM_KAFKA_PROPERTY_", "ignored"),
            ]),
        )
        .expect("valid");
        let props: Vec<(&str, &str)> = props
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            props,
            [
                ("security.protocol", "SASL_PLAINTEXT"),
                ("sasl.mechanism", "PLAIN"),
                ("sasl.password", "p=w"),
                ("sasl.username", "ecom"),
                ("ssl.key.password", "k"),
            ]
        );
    }

    #[test]
    fn a_secret_on_the_command_line_is_refused_naming_the_variable() {
        let err = kafka_properties(&["sasl.password=hunter2".to_string()], Vec::new())
            .expect_err("refused");
        let text = err.to_string();
        assert!(text.contains("KAFKA_SASL_PASSWORD"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        let err =
            kafka_properties(&["ssl.key.password=x".to_string()], Vec::new()).expect_err("refused");
        assert!(
            err.to_string()
                .contains("ECOM_KAFKA_PROPERTY_SSL_KEY_PASSWORD"),
            "{err}"
        );
        let err = kafka_properties(&["novalue".to_string()], Vec::new()).expect_err("malformed");
        assert_eq!(
            err.to_string(),
            "--kafka-property novalue: expected KEY=VALUE"
        );
    }
}
