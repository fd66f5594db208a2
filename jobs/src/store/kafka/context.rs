//! The clients' contexts: delivery reports counted for the producer, and the
//! last client error librdkafka reported, kept to explain a failed call (and,
//! when its code says the broker refused the connection's security, to end the
//! call at once).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
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

/// Why a broker refused a connection, from the code of librdkafka's error event: the
/// refusals that another attempt with the same settings cannot change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The TLS handshake failed (`RD_KAFKA_RESP_ERR__SSL`): most often the broker's
    /// certificate is not signed by the CA the client trusts (`ssl.ca.location`) or does not
    /// name the address dialled. librdkafka reports a connection closed during the
    /// handshake with another code, as a transport error.
    Tls,
    /// SASL authentication failed (`RD_KAFKA_RESP_ERR__AUTHENTICATION`): wrong mechanism,
    /// user name or password.
    Authentication,
}

impl Refusal {
    /// The refusal a librdkafka error code means, if any.
    pub fn of_code(code: RDKafkaErrorCode) -> Option<Refusal> {
        match code {
            RDKafkaErrorCode::SSL => Some(Refusal::Tls),
            RDKafkaErrorCode::Authentication => Some(Refusal::Authentication),
            _ => None,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::Tls => {
                "TLS handshake failed (is the broker's certificate signed by the CA in \
                 ssl.ca.location, and does it name the address dialled?)"
            }
            Refusal::Authentication => {
                "SASL authentication failed (check sasl.mechanism, the user name and the password)"
            }
        })
    }
}

/// Remembers the last client-level error librdkafka reported (a failed SASL
/// authentication, a refused connection), to name the cause when a call then fails,
/// and the first refusal among them ([`Refusal`]).
#[derive(Default)]
pub struct LastClientError {
    last: Mutex<Option<String>>,
    refused: Mutex<Option<(Refusal, String)>>,
}

impl LastClientError {
    fn get(&self) -> Option<String> {
        self.last.lock().ok().and_then(|e| e.clone())
    }

    /// The first refusal reported, with librdkafka's words (they name the broker).
    pub fn refusal(&self) -> Option<(Refusal, String)> {
        self.refused.lock().ok().and_then(|r| r.clone())
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
                if let Ok(mut last) = self.last.lock() {
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
        let text = if reason.is_empty() {
            error.to_string()
        } else {
            format!("{error} ({reason})")
        };
        if let Some(refusal) = error.rdkafka_error_code().and_then(Refusal::of_code) {
            if let Ok(mut refused) = self.refused.lock() {
                let words = if reason.is_empty() { &text } else { reason };
                refused.get_or_insert_with(|| (refusal, words.to_string()));
            }
        }
        if let Ok(mut last) = self.last.lock() {
            *last = Some(text);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_come_from_the_error_code_and_the_first_one_stays() {
        let errors = LastClientError::default();
        errors.error(
            KafkaError::Global(RDKafkaErrorCode::AllBrokersDown),
            "1/1 brokers are down",
        );
        assert_eq!(errors.refusal(), None);
        errors.error(
            KafkaError::Global(RDKafkaErrorCode::SSL),
            "ssl://b:9096/bootstrap: SSL handshake failed",
        );
        errors.error(
            KafkaError::Global(RDKafkaErrorCode::Authentication),
            "sasl_ssl://b:9097/bootstrap: SASL authentication error",
        );
        assert_eq!(
            errors.refusal(),
            Some((
                Refusal::Tls,
                "ssl://b:9096/bootstrap: SSL handshake failed".to_string()
            ))
        );
        // The explanation still names the last error.
        assert!(errors.explain("x").contains("SASL authentication error"));
        assert_eq!(
            Refusal::of_code(RDKafkaErrorCode::Authentication),
            Some(Refusal::Authentication)
        );
        assert_eq!(
            Refusal::of_code(RDKafkaErrorCode::BrokerTransportFailure),
            None
        );
    }
}
