//! The idempotent producer: its configuration, and draining it (every
//! enqueued record delivered or the timeout passed).

use std::time::{Duration, Instant};

use rdkafka::producer::{BaseProducer, Producer};

use super::context::DeliveryCounter;
use super::{KafkaConfig, KafkaLogError};

/// The idempotent producer of a [`KafkaLog`](super::KafkaLog).
pub(super) type IdempotentProducer = BaseProducer<DeliveryCounter>;

/// The idempotent producer of `cfg`'s topic.
pub(super) fn new_producer(cfg: &KafkaConfig) -> Result<IdempotentProducer, KafkaLogError> {
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
        .map_err(|source| cfg.client_err("producer", source))
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
pub(super) fn drain(p: &IdempotentProducer, timeout: Duration) -> Result<(), String> {
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
pub(super) fn serve_queued_reports(p: &IdempotentProducer) -> bool {
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
