//! The topic's metadata (does it exist, how many partitions) and its creation.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaResult, RDKafkaErrorCode};
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
        .map_err(|source| cfg.client_err("metadata client", source))?;
    let md = fetch_watching(
        cfg,
        |wait| client.fetch_metadata(Some(&cfg.topic), wait),
        || {
            let _ = client.poll(SERVE_EVENTS);
        },
        client.context(),
    )?;
    partitions_in(&md, cfg)
}

/// Partitions of the configured topic as the producer's metadata shows them,
/// `None` if it does not exist.
pub(super) fn producer_partitions(
    p: &IdempotentProducer,
    cfg: &KafkaConfig,
) -> Result<Option<u32>, KafkaLogError> {
    let md = fetch_watching(
        cfg,
        |wait| p.client().fetch_metadata(Some(&cfg.topic), wait),
        || p.poll(SERVE_EVENTS),
        &p.context().client_error,
    )?;
    partitions_in(&md, cfg)
}

/// The first wait of a metadata lookup; each further wait is twice the last.
const FIRST_METADATA_WAIT: Duration = Duration::from_millis(250);
/// How long serving the client's events between two waits may take.
const SERVE_EVENTS: Duration = Duration::from_millis(50);

/// The metadata `fetch` returns within `cfg.timeout`, asked for in waits that start at
/// [`FIRST_METADATA_WAIT`] and double. After a wait that ends without an answer, `serve`
/// serves the client's queued events: librdkafka reports why a broker connection failed
/// only there, in an error event whose code says whether the broker refused the
/// connection's security. A refusal ends the lookup at once ([`KafkaLogError::Refused`],
/// permanent), where a single wait would have run out the whole timeout; anything else is
/// asked again until the timeout, whose error names the last client error.
fn fetch_watching(
    cfg: &KafkaConfig,
    fetch: impl Fn(Duration) -> KafkaResult<Metadata>,
    serve: impl Fn(),
    errors: &LastClientError,
) -> Result<Metadata, KafkaLogError> {
    let start = Instant::now();
    let mut wait = FIRST_METADATA_WAIT;
    loop {
        let left = cfg.timeout.saturating_sub(start.elapsed());
        let error = match fetch(wait.min(left).max(Duration::from_millis(1))) {
            Ok(md) => return Ok(md),
            Err(e) => e,
        };
        serve();
        if let Some((refusal, message)) = errors.refusal() {
            return Err(KafkaLogError::Refused {
                bootstrap: cfg.bootstrap.clone(),
                refusal,
                message,
            });
        }
        if start.elapsed() >= cfg.timeout {
            return Err(cfg.err(
                "fetching metadata",
                errors.explain(format!("{error} (no answer within {:?})", cfg.timeout)),
            ));
        }
        wait = wait.saturating_mul(2);
    }
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
        .map_err(|source| cfg.client_err("admin client", source))?;
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

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use rdkafka::client::ClientContext;
    use rdkafka::error::KafkaError;

    use super::super::Refusal;
    use super::*;

    fn cfg(timeout: Duration) -> KafkaConfig {
        let mut c = KafkaConfig::new("broker:9096", "t");
        c.timeout = timeout;
        c
    }

    fn no_answer(_: Duration) -> KafkaResult<Metadata> {
        Err(KafkaError::MetadataFetch(
            RDKafkaErrorCode::BrokerTransportFailure,
        ))
    }

    // librdkafka reports the failed handshake in an error event, served between two waits.
    #[test]
    fn a_refusal_ends_the_lookup_after_the_first_wait() {
        let errors = LastClientError::default();
        let waits = Cell::new(Vec::new());
        let fetch = |wait: Duration| {
            let mut w = waits.take();
            w.push(wait);
            waits.set(w);
            no_answer(wait)
        };
        let serve = || {
            errors.error(
                KafkaError::Global(RDKafkaErrorCode::SSL),
                "ssl://broker:9096/bootstrap: SSL handshake failed: certificate verify failed",
            )
        };
        let err = fetch_watching(&cfg(Duration::from_secs(3600)), fetch, serve, &errors)
            .expect_err("refused");
        assert_eq!(waits.take(), [FIRST_METADATA_WAIT]);
        assert!(matches!(
            err,
            KafkaLogError::Refused {
                refusal: Refusal::Tls,
                ..
            }
        ));
        assert_eq!(err.class(), Some(crate::retry::ErrorClass::Permanent));
        let text = err.to_string();
        assert!(
            text.starts_with("Kafka at broker:9096: TLS handshake failed"),
            "{text}"
        );
        assert!(text.contains("certificate verify failed"), "{text}");
    }

    // librdkafka reads the CA file when it creates the client: a missing one fails there,
    // permanently, naming the file, before any connection.
    #[test]
    fn a_missing_ca_file_fails_creating_the_client() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = dir.path().join("no-such-ca.crt");
        let mut c = cfg(Duration::from_secs(3600));
        c.extra = vec![
            ("security.protocol".into(), "SSL".into()),
            ("ssl.ca.location".into(), ca.display().to_string()),
        ];
        let err = topic_partitions(&c).expect_err("no CA file");
        assert!(matches!(err, KafkaLogError::Client { .. }), "{err:?}");
        assert_eq!(err.class(), Some(crate::retry::ErrorClass::Permanent));
        assert!(err.to_string().contains("no-such-ca.crt"), "{err}");
    }

    // Without a refusal the lookup asks again, in doubling waits, until the timeout: a
    // transient error naming the last client error.
    #[test]
    fn without_a_refusal_the_lookup_waits_out_the_timeout() {
        let errors = LastClientError::default();
        let waits = Cell::new(Vec::new());
        let fetch = |wait: Duration| {
            let mut w = waits.take();
            w.push(wait);
            waits.set(w);
            std::thread::sleep(wait);
            no_answer(wait)
        };
        let serve = || {
            errors.error(
                KafkaError::Global(RDKafkaErrorCode::AllBrokersDown),
                "1/1 brokers are down",
            )
        };
        let err = fetch_watching(&cfg(Duration::from_millis(800)), fetch, serve, &errors)
            .expect_err("no answer");
        // 250 ms, then at most twice the last wait, never past the timeout.
        let waits = waits.take();
        assert_eq!(waits[0], FIRST_METADATA_WAIT);
        assert!(waits.len() >= 2, "{waits:?}");
        assert!(waits.windows(2).all(|w| w[1] <= w[0] * 2), "{waits:?}");
        assert_eq!(err.class(), Some(crate::retry::ErrorClass::Transient));
        let text = err.to_string();
        assert!(text.contains("no answer within 800ms"), "{text}");
        assert!(text.contains("1/1 brokers are down"), "{text}");
    }
}
