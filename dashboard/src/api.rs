//! HTTP handlers: the page, the panel endpoints (JSON or CSV, cached per
//! canonical query and data version), the drill-down, server-sent events
//! and the scan baseline of the benchmark.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use ecom_jobs::load::row_key;
use ecom_jobs::store::Table;
use serde::Serialize;
use serde_json::{json, Value};

use crate::panels::{
    money, order_csv_line, rows_to_csv, to_csv, Health, OrderRow, Orders, Rows, StageRow,
    ORDER_COLUMNS,
};
use crate::query::{parse, Endpoint, Filter, Format, Query};
use crate::read_model::Snapshot;
use crate::server::SseSlot;
use crate::AppState;

/// An API failure, answered as `{"error": ...}` with a status code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Bad parameters (400).
    #[error("{0}")]
    BadRequest(String),
    /// No such endpoint (404).
    #[error("{0}")]
    NotFound(String),
    /// A backing store failed (503).
    #[error("{0}")]
    Unavailable(String),
    /// A limit of the server is reached (503, with `Retry-After`).
    #[error("{0}")]
    Busy(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unavailable(m) => {
                tracing::error!(error = %m, "dashboard request failed");
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Busy(m) => {
                tracing::warn!(error = %m, "dashboard request refused");
                let body = Json(json!({ "error": self.to_string() }));
                let retry = [(header::RETRY_AFTER, "5")];
                return (StatusCode::SERVICE_UNAVAILABLE, retry, body).into_response();
            }
        };
        (status, Json(json!({ "error": self.to_string() }))).into_response()
    }
}

impl From<crate::query::QueryError> for ApiError {
    fn from(e: crate::query::QueryError) -> Self {
        ApiError::BadRequest(e.0)
    }
}

/// A rendered answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// `application/json` or `text/csv`.
    pub content_type: &'static str,
    /// The body.
    pub body: Bytes,
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        ([(header::CONTENT_TYPE, self.content_type)], self.body).into_response()
    }
}

/// The page.
pub async fn index() -> Response {
    match crate::assets::find("index.html") {
        Some(bytes) => Html(bytes).into_response(),
        None => (StatusCode::NOT_FOUND, "index.html is not bundled").into_response(),
    }
}

/// Liveness.
pub async fn healthz() -> &'static str {
    "ok"
}

/// Unknown paths.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no such path: {}", uri.path()))
}

fn read_snapshot(state: &AppState) -> Result<std::sync::RwLockReadGuard<'_, Snapshot>, ApiError> {
    state
        .snapshot
        .read()
        .map_err(|_| ApiError::Unavailable("dashboard state lock poisoned".into()))
}

fn to_value<T: Serialize>(v: &T) -> Result<Value, ApiError> {
    serde_json::to_value(v).map_err(|e| ApiError::Unavailable(format!("encoding an answer: {e}")))
}

/// Health figures of a snapshot (`lag`: produced records and consumer lag).
pub fn health(s: &Snapshot, lag: Option<(u64, u64)>) -> Health {
    let rows_loaded = s.aggregates.total.orders;
    let fresh = s.freshness();
    let mut stages = Vec::new();
    if let Some((produced, _)) = lag {
        stages.push(StageRow {
            stage: "produced".into(),
            rows: produced,
        });
    }
    stages.extend([
        StageRow {
            stage: "cleaned_in".into(),
            rows: s.rows_in,
        },
        StageRow {
            stage: "cleaned_out".into(),
            rows: s.rows_out,
        },
        StageRow {
            stage: "loaded".into(),
            rows: rows_loaded,
        },
    ]);
    Health {
        rows_in: s.rows_in,
        rows_out: s.rows_out,
        dropped: s.dropped.clone(),
        fixed: s.fixed.clone(),
        rows_loaded,
        files_loaded: s.files,
        last_update: s.last_update.clone(),
        stages,
        consumer_lag: lag.map(|l| l.1),
        stream_lag_ms: fresh.as_ref().and_then(|f| f.lag_ms),
        stream_committed_at: fresh.map(|f| f.committed_at),
    }
}

/// An answer in `format`. JSON is written straight from the typed answer (no
/// intermediate tree: a 10,000-point series would allocate megabytes of
/// nodes); CSV goes through the JSON tree, whose keys name the columns. The
/// body holds no spare capacity, so the bytes the cache counts are the bytes
/// it holds.
fn encode<T: Serialize>(answer: &T, format: Format) -> Result<Answer, ApiError> {
    let (content_type, mut bytes) = match format {
        Format::Json => (
            "application/json",
            serde_json::to_vec(answer)
                .map_err(|e| ApiError::Unavailable(format!("encoding an answer: {e}")))?,
        ),
        Format::Csv => (
            "text/csv; charset=utf-8",
            to_csv(&to_value(answer)?).into_bytes(),
        ),
    };
    bytes.shrink_to_fit();
    Ok(Answer {
        content_type,
        body: Bytes::from(bytes),
    })
}

/// A CSV answer.
fn csv_answer(text: serde_json::Result<String>) -> Result<Answer, ApiError> {
    let mut bytes = text
        .map_err(|e| ApiError::Unavailable(format!("encoding an answer: {e}")))?
        .into_bytes();
    bytes.shrink_to_fit();
    Ok(Answer {
        content_type: "text/csv; charset=utf-8",
        body: Bytes::from(bytes),
    })
}

/// A list answer: `{"rows": [...]}` in JSON, its rows in CSV (one row's tree at a time).
fn rows_answer<T: Serialize>(rows: Vec<T>, format: Format) -> Result<Answer, ApiError> {
    match format {
        Format::Json => encode(&Rows { rows }, format),
        Format::Csv => csv_answer(rows_to_csv(&rows, false)),
    }
}

/// Answers a panel query from the in-memory model (not `orders`).
pub fn panel_answer(s: &Snapshot, q: &Query, lag: Option<(u64, u64)>) -> Result<Answer, ApiError> {
    let m = &s.model;
    let f = &q.filter;
    let format = q.format;
    match q.endpoint {
        Endpoint::Kpis => encode(&m.kpis(f, s.dropped.values().sum()), format),
        Endpoint::Categories => rows_answer(m.categories(f), format),
        Endpoint::Status => rows_answer(m.status(f), format),
        Endpoint::CategoryStatus => rows_answer(m.category_status(f), format),
        Endpoint::Payments => rows_answer(m.payments(f), format),
        Endpoint::TopUsers => rows_answer(m.top_users(f, q.limit), format),
        Endpoint::Histogram => rows_answer(m.histogram(f, q.bins), format),
        Endpoint::Timeseries => {
            let series = m.timeseries(f, q.bucket)?;
            match format {
                Format::Json => encode(&series, format),
                Format::Csv => csv_answer(rows_to_csv(&series.rows, false)),
            }
        }
        Endpoint::Health => encode(&health(s, lag), format),
        Endpoint::Orders => Err(ApiError::NotFound(
            "orders are read from the fact table".into(),
        )),
    }
}

/// Reads the order rows of `ids` from the fact table, in the order of `ids`,
/// with one multi-get; an id in the aggregates without a row is an error.
fn order_rows(fact: &dyn Table, ids: &[u64], salt: u32) -> Result<Vec<OrderRow>, ApiError> {
    let keys: Vec<Vec<u8>> = ids
        .iter()
        .map(|id| row_key(&id.to_string(), salt).into_bytes())
        .collect();
    let rows = fact.get_many(&keys).map_err(|e| {
        let (first, last) = (ids.first().copied(), ids.last().copied());
        ApiError::Unavailable(format!(
            "reading {} orders ({} to {}): {e}",
            ids.len(),
            first.unwrap_or_default(),
            last.unwrap_or_default()
        ))
    })?;
    if rows.len() != ids.len() {
        return Err(ApiError::Unavailable(format!(
            "the fact table answered {} rows for {} orders",
            rows.len(),
            ids.len()
        )));
    }
    ids.iter()
        .zip(keys)
        .zip(rows)
        .map(|((&id, key), row)| {
            let row = row.ok_or_else(|| {
                ApiError::Unavailable(format!(
                    "order {id} (row {}) is in the aggregates but not in the fact table",
                    String::from_utf8_lossy(&key)
                ))
            })?;
            Ok(order_row(id, &row.cells))
        })
        .collect()
}

/// An order of the fact table from its cells.
fn order_row(id: u64, cells: &ecom_jobs::store::Cells) -> OrderRow {
    let get = |c: &str| {
        cells
            .get(c)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    };
    OrderRow {
        order_id: id,
        user_id: get("order_details:user_id").parse().unwrap_or_default(),
        category: get("order_details:category"),
        amount: get("order_details:amount").parse().unwrap_or_default(),
        payment_method: get("payment_info:payment_method"),
        status: get("status_info:status"),
        timestamp: get("timestamp_info:timestamp"),
    }
}

/// `/api/orders`: one page of order ids from the in-memory index, then those
/// rows (only those) by key from the fact table.
fn orders(state: &AppState, q: &Query) -> Result<Answer, ApiError> {
    let fact = state.fact.get().ok_or_else(|| {
        ApiError::Unavailable(
            "the fact table is not available to this dashboard (yet: the pipeline's first load creates it)".into(),
        )
    })?;
    let ((ids, has_more), salt) = {
        let s = read_snapshot(state)?;
        (
            s.model.order_page(&q.filter, q.page, q.page_size),
            s.salt_buckets,
        )
    };
    let rows = order_rows(fact.as_ref(), &ids, salt)?;
    match q.format {
        Format::Csv => csv_answer(rows_to_csv(&rows, true)),
        Format::Json => {
            let page = Orders {
                page: q.page,
                page_size: q.page_size,
                rows,
                has_more,
            };
            encode(&page, q.format)
        }
    }
}

/// Orders per batch of the full export: ids from the order index, then
/// their rows from the fact table in one multi-get (on HBase, four `getRows`
/// calls of 1,000 keys, read in parallel over the connection pool).
const EXPORT_BATCH: usize = 4000;
/// Index entries walked per batch at most (bounds the time the snapshot
/// lock is held under a very selective filter).
const EXPORT_WALK: usize = 1 << 20;

/// Where a full export stands between batches.
struct Export {
    state: AppState,
    fact: Arc<dyn Table>,
    filter: Filter,
    /// The order id to continue after (`None` before the first batch).
    cursor: Option<u64>,
    /// The cell mask of the filter and the data version it was computed for.
    pass: Option<(u64, Vec<bool>)>,
    /// Rows sent so far.
    rows: u64,
    /// The index is exhausted.
    done: bool,
}

impl Export {
    /// The CSV lines of the next batch; `None` once every order was sent.
    fn next_batch(&mut self) -> Result<Option<Bytes>, ApiError> {
        while !self.done {
            let ((ids, next), salt) = {
                let s = read_snapshot(&self.state)?;
                if self.pass.as_ref().is_none_or(|(v, _)| *v != s.version) {
                    self.pass = Some((s.version, s.model.pass_mask(&self.filter)));
                }
                let pass = self.pass.as_ref().map(|p| p.1.as_slice()).unwrap_or(&[]);
                (
                    s.model
                        .order_ids_after(self.cursor, pass, EXPORT_BATCH, EXPORT_WALK),
                    s.salt_buckets,
                )
            };
            match next {
                Some(n) => self.cursor = Some(n),
                None => self.done = true,
            }
            if ids.is_empty() {
                continue;
            }
            let mut out = String::with_capacity(ids.len() * 80);
            for row in order_rows(self.fact.as_ref(), &ids, salt)? {
                order_csv_line(&row, &mut out);
            }
            self.rows += ids.len() as u64;
            return Ok(Some(Bytes::from(out)));
        }
        Ok(None)
    }
}

/// `/api/orders?format=csv&all=true`: every order passing the filters, by
/// order id, streamed in batches (ids from the in-memory index, rows by key
/// from the fact table), so memory stays bounded whatever the size. A store
/// failure mid-way ends the body with an `# error: ...` line and aborts the
/// connection (no terminating chunk), so the file never looks complete.
fn export_orders(state: &AppState, q: &Query) -> Result<Response, ApiError> {
    let fact = state.fact.get().ok_or_else(|| {
        ApiError::Unavailable(
            "the fact table is not available to this dashboard (yet: the pipeline's first load creates it)".into(),
        )
    })?;
    let export = Export {
        state: state.clone(),
        fact,
        filter: q.filter.clone(),
        cursor: None,
        pass: None,
        rows: 0,
        done: false,
    };
    let header = Bytes::from(format!("{}\n", ORDER_COLUMNS.join(",")));
    enum Step {
        Run(Box<Export>),
        Fail(String),
        Done,
    }
    let body = futures::stream::unfold(Step::Run(Box::new(export)), |step| async move {
        match step {
            Step::Done => None,
            Step::Fail(msg) => {
                // Let the error line be flushed before the connection is aborted.
                tokio::time::sleep(Duration::from_millis(100)).await;
                Some((Err(std::io::Error::other(msg)), Step::Done))
            }
            Step::Run(mut x) => {
                // A batch holds up to EXPORT_BATCH rows: one computation slot.
                let slot = x.state.computing.clone().acquire_owned().await;
                let task = tokio::task::spawn_blocking(move || {
                    let r = x.next_batch();
                    drop(slot);
                    (x, r)
                })
                .await;
                let msg = match task {
                    Ok((_, Ok(None))) => return None,
                    Ok((x, Ok(Some(bytes)))) => return Some((Ok(bytes), Step::Run(x))),
                    Ok((x, Err(e))) => format!("after {} rows: {e}", x.rows),
                    Err(e) => format!("export task failed: {e}"),
                };
                tracing::error!(error = %msg, "orders export aborted");
                let line = Bytes::from(format!("# error: export incomplete, {msg}\n"));
                Some((Ok(line), Step::Fail(msg)))
            }
        }
    });
    let stream = futures::StreamExt::chain(
        futures::stream::iter([Ok::<_, std::io::Error>(header)]),
        body,
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"orders.csv\"",
            ),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}

/// Computes the unfiltered answer of every panel into the cache (after a
/// data change, so that the page's first load is served from memory).
pub fn warm(state: &AppState) {
    if !state.caching() {
        return;
    }
    let version = state.updates.borrow().version;
    for e in Endpoint::ALL {
        if e == Endpoint::Health {
            continue;
        }
        let q = Query::new(e);
        let Ok(answer) = compute(state, &q) else {
            continue;
        };
        let key = format!("{}&format={:?}", q.canonical(), q.format);
        if let Ok(mut c) = state.cache.write() {
            c.insert(key, version, Arc::new(answer));
        }
    }
}

/// Computes an answer (blocking: model passes and fact-table reads).
fn compute(state: &AppState, q: &Query) -> Result<Answer, ApiError> {
    match q.endpoint {
        Endpoint::Orders => orders(state, q),
        Endpoint::Health => {
            let rows_in = read_snapshot(state)?.rows_in;
            let lag = state.lag.as_ref().and_then(|p| p(rows_in));
            panel_answer(&*read_snapshot(state)?, q, lag)
        }
        _ => panel_answer(&*read_snapshot(state)?, q, None),
    }
}

/// `GET /api/{panel}`: every panel endpoint and the drill-down.
pub async fn panel(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let endpoint = Endpoint::from_name(&name)
        .ok_or_else(|| ApiError::NotFound(format!("no such endpoint: /api/{name}")))?;
    let q = parse(endpoint, raw.as_deref())?;
    if q.all {
        return export_orders(&state, &q);
    }
    answer(state, q).await.map(IntoResponse::into_response)
}

/// A panel's answer, from the cache or computed.
async fn answer(state: AppState, q: Query) -> Result<Answer, ApiError> {
    let endpoint = q.endpoint;
    let key = format!("{}&format={:?}", q.canonical(), q.format);
    let version = state.updates.borrow().version;
    let cacheable = endpoint != Endpoint::Health && state.caching();
    if cacheable {
        if let Some(a) = state.cache.read().ok().and_then(|c| c.get(&key, version)) {
            return Ok((*a).clone());
        }
    }
    let s = state.clone();
    let q2 = q.clone();
    // At most `max_computations` at once: what a burst of large answers holds
    // in memory is bounded by it, whatever the number of connections. The slot
    // goes with the computation, which runs to its end even if the request
    // timed out meanwhile.
    let slot = state
        .computing
        .clone()
        .acquire_owned()
        .await
        .map_err(|e| ApiError::Unavailable(format!("computation slots closed: {e}")))?;
    let answer = tokio::task::spawn_blocking(move || {
        let answer = compute(&s, &q2);
        drop(slot);
        answer
    })
    .await
    .map_err(|e| ApiError::Unavailable(format!("answer task failed: {e}")))??;
    if cacheable {
        if let Ok(mut c) = state.cache.write() {
            c.insert(key, version, Arc::new(answer.clone()));
        }
    }
    Ok(answer)
}

/// Key figures (kept for scripts and the README).
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Orders loaded.
    pub orders: u64,
    /// Sum of amounts.
    pub revenue: f64,
    /// Mean amount.
    pub mean_amount: f64,
    /// Smallest amount.
    pub min_amount: Option<f64>,
    /// Largest amount.
    pub max_amount: Option<f64>,
    /// Median amount, to the whole currency unit below it.
    pub median_amount_floor: Option<i64>,
    /// Rows read by cleaning.
    pub rows_in: u64,
    /// Rows written by cleaning.
    pub rows_out: u64,
    /// Rows dropped per cleaning rule.
    pub dropped: BTreeMap<String, u64>,
    /// Rows fixed per fix.
    pub fixed: BTreeMap<String, u64>,
    /// Clean files loaded.
    pub files: u64,
    /// End-to-end lag and last commit of the streaming shards (absent when nothing streams).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub freshness: Option<crate::read_model::Freshness>,
}

/// `GET /api/summary`.
pub async fn summary(State(state): State<AppState>) -> Result<Json<Summary>, ApiError> {
    let s = read_snapshot(&state)?;
    let a = &s.aggregates;
    Ok(Json(Summary {
        orders: a.total.orders,
        revenue: money(a.total.revenue_cents),
        mean_amount: a.total.average(),
        min_amount: a.min_cents.map(money),
        max_amount: a.max_cents.map(money),
        median_amount_floor: a.quantile_unit(0.5),
        rows_in: s.rows_in,
        rows_out: s.rows_out,
        dropped: s.dropped.clone(),
        fixed: s.fixed.clone(),
        files: s.files,
        freshness: s.freshness(),
    }))
}

/// `GET /api/events`: `update` events carrying the data version, whenever
/// the loaded data changes (the first one at once), and keep-alive comments.
/// At most `limits.max_sse_clients` streams are open at once; past it, 503.
pub async fn events(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Sse<impl futures::Stream<Item = Result<Event, Infallible>>>, ApiError> {
    if raw.is_some_and(|r| !r.is_empty()) {
        return Err(ApiError::BadRequest(
            "/api/events takes no parameters".into(),
        ));
    }
    let max = state.limits.max_sse_clients;
    let slot = SseSlot::take(&state.sse_open, max).ok_or_else(|| {
        ApiError::Busy(format!(
            "too many live-update streams open (at most {max}, --max-sse-clients); retry later"
        ))
    })?;
    let rx = state.updates.subscribe();
    let closing = state.closing.subscribe();
    // The slot lives as long as the stream: dropped when the client leaves.
    let stream = futures::stream::unfold(
        (rx, closing, true, slot),
        |(mut rx, mut closing, first, slot)| async move {
            if !first {
                tokio::select! {
                    changed = rx.changed() => changed.ok()?,
                    _ = closing.wait_for(|c| *c) => return None,
                }
            }
            if *closing.borrow() {
                return None;
            }
            let update = rx.borrow_and_update().clone();
            let data = json!(update).to_string();
            let event = Event::default().event("update").data(data);
            Some((Ok(event), (rx, closing, false, slot)))
        },
    );
    let keep_alive = KeepAlive::new().interval(state.limits.sse_keep_alive());
    Ok(Sse::new(stream).keep_alive(keep_alive))
}

/// `GET /api/scan-baseline/categories` (only with `--scan-baseline`): the
/// categories panel computed by scanning the whole fact table per request,
/// like the original dashboard did; the benchmark's reference.
pub async fn scan_baseline(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    if !state.scan_baseline {
        return Err(ApiError::NotFound(
            "the scan baseline is off (ecom dashboard --scan-baseline)".into(),
        ));
    }
    let fact = state
        .fact
        .get()
        .ok_or_else(|| ApiError::Unavailable("the fact table is not available".into()))?;
    let value = tokio::task::spawn_blocking(move || -> Result<Value, ApiError> {
        let mut acc: BTreeMap<String, (u64, i64)> = BTreeMap::new();
        let mut start: Vec<u8> = Vec::new();
        loop {
            let rows = fact
                .scan(&start, b"", 10_000)
                .map_err(|e| ApiError::Unavailable(format!("scanning the fact table: {e}")))?;
            let Some(last) = rows.last() else { break };
            start = last.key.clone();
            start.push(0);
            for r in &rows {
                let cat = r
                    .cells
                    .get("order_details:category")
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default();
                let amount: f64 = r
                    .cells
                    .get("order_details:amount")
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_default();
                let a = acc.entry(cat).or_default();
                a.0 += 1;
                a.1 += ecom_jobs::record::to_cents(amount);
            }
        }
        let mut rows: Vec<Value> = acc
            .into_iter()
            .map(|(c, (n, cents))| {
                json!({"category": c, "orders": n, "revenue": money(cents),
                       "average": cents as f64 / 100.0 / n as f64})
            })
            .collect();
        rows.sort_by(|a, b| {
            b["revenue"]
                .as_f64()
                .partial_cmp(&a["revenue"].as_f64())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        Ok(json!({ "rows": rows }))
    })
    .await
    .map_err(|e| ApiError::Unavailable(format!("scan task failed: {e}")))??;
    Ok(Json(value))
}
