//! The analytics dashboard: a JSON/CSV API, server-sent events and a page,
//! served with axum from the aggregates the loader maintains. The merged
//! aggregates live in memory; only the drill-down reads (one page of) the
//! fact table.

pub mod api;
pub mod assets;
pub mod cache;
pub mod fact;
pub mod model;
pub mod openapi;
pub mod panels;
pub mod query;
pub mod read_model;
pub mod server;
pub mod time;

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use ecom_jobs::store::Table;
use tokio::sync::watch;

pub use crate::cache::AnswerCache;
use crate::read_model::{read_delta, read_stream_delta, ReadError, Snapshot};
pub use crate::server::Limits;

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
    /// The aggregates could not be read at start.
    #[error("reading the dashboard's aggregates: {0}")]
    Read(#[from] ReadError),
}

/// What an `update` event says: the data version, when a file was last loaded, and how
/// fresh streamed data is.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Update {
    /// Bumped whenever the loaded data changes.
    pub version: u64,
    /// Latest load time of a file (RFC 3339).
    pub last_update: Option<String>,
    /// End-to-end lag and last commit of the streaming shards, if any.
    pub freshness: Option<read_model::Freshness>,
}

impl Update {
    /// The update a snapshot announces.
    pub fn of(s: &Snapshot) -> Update {
        Update {
            version: s.version,
            last_update: s.last_update.clone(),
            freshness: s.freshness(),
        }
    }
}

/// Reports the records not yet read by cleaning (consumer lag), if known.
pub type LagProbe = Arc<dyn Fn(u64) -> Option<(u64, u64)> + Send + Sync>;

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    /// The aggregates table (`<table>_agg`).
    pub aggregates: Arc<dyn Table>,
    /// The fact table (drill-down and the scan baseline), opened when it is there.
    pub fact: fact::FactTable,
    /// The merged aggregates.
    pub snapshot: Arc<RwLock<Snapshot>>,
    /// Answers per canonical query, valid for one snapshot version, bounded
    /// by entries and bytes (see [`AppState::with_cache`]).
    /// (A read-write lock: cached answers are looked up concurrently.)
    pub cache: Arc<RwLock<AnswerCache>>,
    /// Version, last update and freshness, for server-sent events.
    pub updates: watch::Sender<Update>,
    /// Given the rows read by cleaning, `(produced, lag)` from Kafka.
    pub lag: Option<LagProbe>,
    /// Serve `/api/scan-baseline/categories` (benchmarks only).
    pub scan_baseline: bool,
    /// Limits of the server: timeouts, connections, event streams.
    pub limits: Limits,
    /// Event streams open now.
    pub sse_open: Arc<AtomicUsize>,
    /// Computation slots (`limits.max_computations` of them, sized by [`serve`]).
    pub computing: Arc<tokio::sync::Semaphore>,
    /// How often the aggregates table is polled.
    pub poll: Duration,
    /// Raised at shutdown so that event streams end.
    pub closing: watch::Sender<bool>,
}

impl AppState {
    /// Reads the aggregates (blocking) and builds the state.
    pub fn load(aggregates: Arc<dyn Table>, fact: fact::FactTable) -> Result<Self, ReadError> {
        let snap = read_model::snapshot(aggregates.as_ref())?;
        let size = snap.model.size();
        tracing::info!(
            files = snap.files,
            orders = snap.model.orders(),
            cells = size.cells,
            users = size.users,
            model_mib = size.bytes >> 20,
            "dashboard aggregates loaded"
        );
        let (updates, _) = watch::channel(Update::of(&snap));
        Ok(AppState {
            aggregates,
            fact,
            snapshot: Arc::new(RwLock::new(snap)),
            cache: Arc::new(RwLock::new(AnswerCache::default())),
            updates,
            lag: None,
            scan_baseline: false,
            limits: Limits::default(),
            sse_open: Arc::new(AtomicUsize::new(0)),
            computing: Arc::new(tokio::sync::Semaphore::new(
                server::default_max_computations(),
            )),
            poll: Duration::from_secs(1),
            closing: watch::channel(false).0,
        })
    }

    /// The state with a cache of at most `entries` answers and `bytes` bytes
    /// (either 0: every answer computed).
    pub fn with_cache(mut self, entries: usize, bytes: usize) -> Self {
        self.cache = Arc::new(RwLock::new(AnswerCache::new(entries, bytes)));
        self
    }

    /// Whether answers are cached.
    pub fn caching(&self) -> bool {
        self.cache.read().is_ok_and(|c| c.enabled())
    }

    /// Polls the aggregates table once and merges what changed; returns
    /// whether the data changed.
    pub fn refresh(&self) -> Result<bool, ReadError> {
        let delta = {
            let current = self
                .snapshot
                .read()
                .map_err(|_| ReadError::Task("snapshot lock poisoned".into()))?;
            // Streaming shards' marks and logs say what is new; a rescan only without them.
            let table = self.aggregates.as_ref();
            let delta = match read_stream_delta(table, &current)? {
                Some(d) => d,
                None => read_delta(table, Some(&current))?,
            };
            if !delta.changes(&current) {
                return Ok(false);
            }
            delta
        };
        let mut snap = self
            .snapshot
            .write()
            .map_err(|_| ReadError::Task("snapshot lock poisoned".into()))?;
        let changed = snap.apply(delta);
        if changed {
            let _ = self.updates.send(Update::of(&snap));
            tracing::info!(
                version = snap.version,
                files = snap.files,
                orders = snap.model.orders(),
                "dashboard aggregates updated"
            );
        }
        Ok(changed)
    }
}

/// The router with every route, the request timeout and the security headers.
pub fn router(state: AppState) -> Router {
    let limits = state.limits;
    let routes = Router::new()
        .route("/", get(api::index))
        .route("/healthz", get(api::healthz))
        .route("/assets/{*file}", get(assets::asset))
        .route("/api/summary", get(api::summary))
        .route("/api/openapi.json", get(openapi::document))
        .route("/api/events", get(api::events))
        .route("/api/scan-baseline/categories", get(api::scan_baseline))
        .route("/api/{panel}", get(api::panel))
        .fallback(api::not_found)
        .with_state(state);
    server::with_layers(routes, &limits)
}

/// Polls the aggregates table every `state.poll` until the process ends.
async fn refresh_loop(state: AppState) {
    let mut tick = tokio::time::interval(state.poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let s = state.clone();
        match tokio::task::spawn_blocking(move || {
            let changed = s.refresh()?;
            if changed {
                api::warm(&s);
            }
            Ok::<bool, ReadError>(changed)
        })
        .await
        {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "polling the aggregates failed"),
            Err(e) => tracing::warn!(error = %e, "polling task failed"),
        }
    }
}

/// Serves until `shutdown` resolves (under `state.limits`); `on_bound` learns
/// the bound address.
pub async fn serve(
    addr: SocketAddr,
    mut state: AppState,
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
    let slots = state.limits.max_computations.max(1);
    state.computing = Arc::new(tokio::sync::Semaphore::new(slots));
    let warm = state.clone();
    tokio::task::spawn_blocking(move || api::warm(&warm));
    let poller = tokio::spawn(refresh_loop(state.clone()));
    let (limits, closing) = (state.limits, state.closing.clone());
    server::run(listener, router(state), limits, closing, shutdown).await;
    poller.abort();
    Ok(())
}
