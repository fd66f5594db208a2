//! The analytics dashboard: a JSON API and a page, served with axum from the
//! aggregates table that the loader maintains (no request scans the fact table).

pub mod api;
pub mod read_model;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use ecom_jobs::store::Table;

/// Errors of the dashboard server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listening socket could not be bound.
    #[error("binding the dashboard to {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("serving the dashboard on {addr}: {source}")]
    Serve {
        /// Address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    /// The aggregates table (`<table>_agg`).
    pub aggregates: Arc<dyn Table>,
}

/// The router with every route.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(api::index))
        .route("/healthz", get(api::healthz))
        .route("/api/summary", get(api::summary))
        .route("/api/categories", get(api::categories))
        .route("/api/status", get(api::status))
        .route("/api/payments", get(api::payments))
        .with_state(state)
}

/// Serves until `shutdown` resolves; `on_bound` learns the bound address.
pub async fn serve(
    addr: SocketAddr,
    state: AppState,
    on_bound: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| ServeError::Bind { addr, source })?;
    on_bound(bound);
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| ServeError::Serve {
            addr: bound,
            source,
        })
}
