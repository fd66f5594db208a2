//! HTTP handlers: the page and the JSON endpoints.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::json;

use crate::read_model::{snapshot, ReadError, Snapshot};
use crate::AppState;

/// An API failure, answered as JSON with a status code.
pub struct ApiError(ReadError);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        tracing::error!(error = %self.0, "dashboard request failed");
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": self.0.to_string() })),
        )
            .into_response()
    }
}

/// Reads the snapshot on the blocking pool (table clients may block on I/O).
async fn read(state: &AppState) -> Result<Snapshot, ApiError> {
    let table = state.aggregates.clone();
    tokio::task::spawn_blocking(move || snapshot(table.as_ref()))
        .await
        .map_err(|e| ApiError(ReadError::Task(e.to_string())))?
        .map_err(ApiError)
}

fn money(cents: i64) -> f64 {
    cents as f64 / 100.0
}

/// The page.
pub async fn index() -> Html<&'static str> {
    Html(include_str!("../assets/index.html"))
}

/// Liveness.
pub async fn healthz() -> &'static str {
    "ok"
}

/// Key figures.
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
    /// Median amount, to the whole currency unit below it (exact within 1.00).
    pub median_amount_floor: Option<i64>,
    /// Rows read by cleaning.
    pub rows_in: u64,
    /// Rows written by cleaning.
    pub rows_out: u64,
    /// Rows dropped per cleaning rule.
    pub dropped: std::collections::BTreeMap<String, u64>,
    /// Rows fixed per fix.
    pub fixed: std::collections::BTreeMap<String, u64>,
    /// Clean files loaded.
    pub files: u64,
}

/// `GET /api/summary`.
pub async fn summary(State(state): State<AppState>) -> Result<Json<Summary>, ApiError> {
    let s = read(&state).await?;
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
        dropped: s.dropped,
        fixed: s.fixed,
        files: s.files,
    }))
}

/// One group of a breakdown.
#[derive(Debug, Serialize)]
pub struct Group {
    /// Group value (category, status, payment method).
    pub name: String,
    /// Orders.
    pub orders: u64,
    /// Sum of amounts.
    pub revenue: f64,
    /// Mean amount.
    pub average: f64,
    /// Share of all orders (0..1).
    pub share: f64,
}

fn groups(
    map: &std::collections::BTreeMap<String, ecom_jobs::aggregates::Tally>,
    total: u64,
) -> Vec<Group> {
    let mut out: Vec<Group> = map
        .iter()
        .map(|(name, t)| Group {
            name: name.clone(),
            orders: t.orders,
            revenue: money(t.revenue_cents),
            average: t.average(),
            share: if total == 0 {
                0.0
            } else {
                t.orders as f64 / total as f64
            },
        })
        .collect();
    out.sort_by(|a, b| b.revenue.total_cmp(&a.revenue).then(a.name.cmp(&b.name)));
    out
}

/// `GET /api/categories`: total and average amount per category.
pub async fn categories(State(state): State<AppState>) -> Result<Json<Vec<Group>>, ApiError> {
    let s = read(&state).await?;
    Ok(Json(groups(
        &s.aggregates.by_category,
        s.aggregates.total.orders,
    )))
}

/// `GET /api/status`: order status distribution.
pub async fn status(State(state): State<AppState>) -> Result<Json<Vec<Group>>, ApiError> {
    let s = read(&state).await?;
    Ok(Json(groups(
        &s.aggregates.by_status,
        s.aggregates.total.orders,
    )))
}

/// `GET /api/payments`: total amount per payment method.
pub async fn payments(State(state): State<AppState>) -> Result<Json<Vec<Group>>, ApiError> {
    let s = read(&state).await?;
    Ok(Json(groups(
        &s.aggregates.by_payment,
        s.aggregates.total.orders,
    )))
}
