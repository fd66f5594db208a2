//! Prometheus metrics of the operator, in the text exposition format, and the HTTP server
//! with `/metrics`, `/healthz` and `/readyz`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use tokio::sync::watch;

/// Upper bounds (seconds) of the reconcile duration histogram buckets.
const BUCKETS: [f64; 9] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Errors of the metrics server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listen address could not be bound.
    #[error("binding the metrics server to {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The server stopped with an error.
    #[error("serving metrics on {addr}: {source}")]
    Serve {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Counters and gauges of the operator.
#[derive(Debug, Default)]
pub struct Metrics {
    reconciles: AtomicU64,
    failures: Mutex<BTreeMap<String, u64>>,
    buckets: [AtomicU64; BUCKETS.len()],
    duration_sum_micros: AtomicU64,
    jobs_created: AtomicU64,
    leader: AtomicBool,
    ready: AtomicBool,
}

impl Metrics {
    /// Counts one reconcile that took `d`.
    pub fn reconciled(&self, d: Duration) {
        self.reconciles.fetch_add(1, Ordering::Relaxed);
        let secs = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.duration_sum_micros
            .fetch_add(micros, Ordering::Relaxed);
    }

    /// Counts one failed reconcile with reason `reason`.
    pub fn failed(&self, reason: &str) {
        if let Ok(mut m) = self.failures.lock() {
            *m.entry(reason.to_string()).or_insert(0) += 1;
        }
    }

    /// Counts created Jobs.
    pub fn jobs_created(&self, n: usize) {
        self.jobs_created.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Sets whether this replica leads.
    pub fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::Relaxed);
    }

    /// Sets whether `/readyz` answers 200.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// The metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let count = self.reconciles.load(Ordering::Relaxed);
        let _ = writeln!(out, "# HELP ecom_operator_reconciles_total Reconciles run.");
        let _ = writeln!(out, "# TYPE ecom_operator_reconciles_total counter");
        let _ = writeln!(out, "ecom_operator_reconciles_total {count}");
        let _ = writeln!(
            out,
            "# HELP ecom_operator_reconcile_failures_total Failed reconciles by reason."
        );
        let _ = writeln!(out, "# TYPE ecom_operator_reconcile_failures_total counter");
        if let Ok(m) = self.failures.lock() {
            for (reason, n) in m.iter() {
                let _ = writeln!(
                    out,
                    "ecom_operator_reconcile_failures_total{{reason=\"{reason}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP ecom_operator_reconcile_duration_seconds Duration of reconciles."
        );
        let _ = writeln!(
            out,
            "# TYPE ecom_operator_reconcile_duration_seconds histogram"
        );
        for (i, b) in BUCKETS.iter().enumerate() {
            let n = self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "ecom_operator_reconcile_duration_seconds_bucket{{le=\"{b}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "ecom_operator_reconcile_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let sum = self.duration_sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "ecom_operator_reconcile_duration_seconds_sum {sum}");
        let _ = writeln!(
            out,
            "ecom_operator_reconcile_duration_seconds_count {count}"
        );
        let _ = writeln!(
            out,
            "# HELP ecom_operator_jobs_created_total Stage Jobs created."
        );
        let _ = writeln!(out, "# TYPE ecom_operator_jobs_created_total counter");
        let _ = writeln!(
            out,
            "ecom_operator_jobs_created_total {}",
            self.jobs_created.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP ecom_operator_leader Whether this replica holds the lease."
        );
        let _ = writeln!(out, "# TYPE ecom_operator_leader gauge");
        let _ = writeln!(
            out,
            "ecom_operator_leader {}",
            u8::from(self.leader.load(Ordering::Relaxed))
        );
        out
    }
}

async fn metrics_text(State(m): State<Arc<Metrics>>) -> String {
    m.render()
}

async fn readyz(State(m): State<Arc<Metrics>>) -> (StatusCode, &'static str) {
    if m.is_ready() {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

/// Binds `addr` and returns the bound address and the server future, which serves until
/// `shutdown` turns true.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<
    (
        SocketAddr,
        impl std::future::Future<Output = Result<(), Error>>,
    ),
    Error,
> {
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(metrics);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| Error::Bind { addr, source })?;
    let fut = async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = shutdown.wait_for(|s| *s).await;
            })
            .await
            .map_err(|source| Error::Serve {
                addr: bound,
                source,
            })
    };
    Ok((bound, fut))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histogram() {
        let m = Metrics::default();
        m.reconciled(Duration::from_millis(30));
        m.failed("apply");
        m.failed("apply");
        let text = m.render();
        assert!(
            text.contains("ecom_operator_reconciles_total 1\n"),
            "{text}"
        );
        assert!(text.contains("ecom_operator_reconcile_failures_total{reason=\"apply\"} 2\n"));
        assert!(text.contains("ecom_operator_reconcile_duration_seconds_bucket{le=\"0.01\"} 0\n"));
        assert!(text.contains("ecom_operator_reconcile_duration_seconds_bucket{le=\"0.05\"} 1\n"));
    }
}
