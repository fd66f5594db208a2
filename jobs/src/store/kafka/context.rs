//! The clients' contexts: delivery reports counted for the producer, and the
//! last client error librdkafka reported, kept to explain a failed call.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::ProducerContext;

/// The producer's context: counts delivery reports and remembers the last
/// client error (to name the cause when a call on the producer fails).
#[derive(Default)]
pub struct DeliveryCounter {
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
    pub(super) client_error: LastClientError,
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
    pub(super) fn first_error(&self) -> Option<String> {
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
    pub(super) fn explain(&self, message: impl std::fmt::Display) -> String {
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
