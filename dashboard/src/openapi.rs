//! `GET /api/openapi.json`: the OpenAPI 3.1 description of the API.

use axum::Json;
use serde_json::{json, Map, Value};

use crate::query::Endpoint;

fn param(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema})
}

fn filters() -> Vec<Value> {
    let instant = json!({"type": "string", "examples": ["2024-01-01", "2024-01-01T10:00:00Z"]});
    vec![
        param(
            "from",
            "Inclusive start, UTC, whole hour: YYYY-MM-DD or YYYY-MM-DDTHH:00:00Z.",
            instant.clone(),
        ),
        param(
            "to",
            "Exclusive end, UTC, whole hour; must be after `from`.",
            instant,
        ),
        param(
            "category",
            "Comma-separated categories (exact values); empty = all.",
            json!({"type": "string"}),
        ),
        param(
            "payment",
            "Comma-separated payment methods; empty = all.",
            json!({"type": "string"}),
        ),
        param(
            "status",
            "Comma-separated statuses; empty = all.",
            json!({"type": "string"}),
        ),
    ]
}

fn format_param() -> Value {
    param(
        "format",
        "`csv` answers text/csv (a header line, then the rows of the main array).",
        json!({"type": "string", "enum": ["json", "csv"], "default": "json"}),
    )
}

fn num() -> Value {
    json!({"type": "number"})
}
fn nnum() -> Value {
    json!({"type": ["number", "null"]})
}
fn int() -> Value {
    json!({"type": "integer", "minimum": 0})
}
fn string() -> Value {
    json!({"type": "string"})
}

fn object(props: &[(&str, Value)]) -> Value {
    let mut p = Map::new();
    for (k, v) in props {
        p.insert((*k).to_string(), v.clone());
    }
    let required: Vec<&str> = props.iter().map(|(k, _)| *k).collect();
    json!({"type": "object", "properties": p, "required": required})
}

fn rows(item: Value) -> Value {
    object(&[("rows", json!({"type": "array", "items": item}))])
}

fn figures() -> Value {
    object(&[
        ("orders", int()),
        ("revenue", num()),
        ("mean", nnum()),
        ("median", nnum()),
        ("min", nnum()),
        ("max", nnum()),
        ("std", nnum()),
        ("p25", nnum()),
        ("p75", nnum()),
        ("p95", nnum()),
        ("dropped_rows", json!({"type": ["integer", "null"]})),
    ])
}

fn schema(e: Endpoint) -> Value {
    match e {
        Endpoint::Kpis => {
            let mut k = figures();
            if let Some(p) = k.get_mut("properties").and_then(Value::as_object_mut) {
                p.insert("quantile_error".into(), json!({"type": "number", "description": "Absolute bound of median and percentiles in currency units (0: exact)."}));
                p.insert("previous".into(), json!({"oneOf": [{"type": "null"}, figures()], "description": "The period of equal length just before `from` (null without both from and to)."}));
                p.insert("change_pct".into(), json!({"oneOf": [{"type": "null"}, object(&[("orders", nnum()), ("revenue", nnum()), ("mean", nnum())])]}));
            }
            k
        }
        Endpoint::Categories => rows(object(&[
            ("category", string()),
            ("orders", int()),
            ("revenue", num()),
            ("average", num()),
        ])),
        Endpoint::Status => rows(object(&[
            ("status", string()),
            ("orders", int()),
            ("revenue", num()),
        ])),
        Endpoint::CategoryStatus => rows(object(&[
            ("category", string()),
            ("status", string()),
            ("orders", int()),
        ])),
        Endpoint::Payments => rows(object(&[
            ("payment_method", string()),
            ("orders", int()),
            ("revenue", num()),
        ])),
        Endpoint::TopUsers => rows(object(&[
            ("user_id", int()),
            ("orders", int()),
            ("revenue", num()),
        ])),
        Endpoint::Histogram => rows(object(&[("lo", num()), ("hi", num()), ("orders", int())])),
        Endpoint::Timeseries => object(&[
            (
                "bucket",
                json!({"type": "string", "enum": ["hour", "day", "week", "month"]}),
            ),
            ("timezone", json!({"const": "UTC"})),
            (
                "rows",
                json!({"type": "array", "items": object(&[("start", string()), ("orders", int()), ("revenue", num())])}),
            ),
        ]),
        Endpoint::Health => object(&[
            ("rows_in", int()),
            ("rows_out", int()),
            (
                "dropped",
                json!({"type": "object", "additionalProperties": int()}),
            ),
            (
                "fixed",
                json!({"type": "object", "additionalProperties": int()}),
            ),
            ("rows_loaded", int()),
            ("files_loaded", int()),
            ("last_update", json!({"type": ["string", "null"]})),
            (
                "stages",
                json!({"type": "array", "items": object(&[("stage", string()), ("rows", int())])}),
            ),
            ("consumer_lag", json!({"type": ["integer", "null"]})),
            ("stream_lag_ms", json!({"type": ["integer", "null"]})),
            ("stream_committed_at", json!({"type": ["string", "null"]})),
        ]),
        Endpoint::Orders => object(&[
            ("page", int()),
            ("page_size", int()),
            (
                "rows",
                json!({"type": "array", "items": object(&[
                    ("order_id", int()), ("user_id", int()), ("category", string()), ("amount", num()),
                    ("payment_method", string()), ("status", string()), ("timestamp", string()),
                ])}),
            ),
            ("has_more", json!({"type": "boolean"})),
        ]),
    }
}

fn summary(e: Endpoint) -> &'static str {
    match e {
        Endpoint::Kpis => "Key figures of the filtered orders and of the previous period",
        Endpoint::Categories => "Orders, revenue and average amount per category, by revenue",
        Endpoint::Status => "Order status distribution",
        Endpoint::CategoryStatus => "Orders per category and status",
        Endpoint::Payments => "Orders and revenue per payment method",
        Endpoint::TopUsers => "Top buying users by revenue (ties by user id)",
        Endpoint::Histogram => {
            "Histogram of amounts: equal-width bins over [min, max], last bin closed"
        }
        Endpoint::Timeseries => "Orders and revenue over time (UTC buckets)",
        Endpoint::Health => {
            "Pipeline health: rows per stage, dropped per rule, last update, consumer lag"
        }
        Endpoint::Orders => {
            "Drill-down: one page of orders by order id, or (format=csv&all=true) every filtered order as a CSV stream"
        }
    }
}

/// The document.
pub fn spec() -> Value {
    let error = json!({
        "description": "Bad parameter: the message names the parameter and the value",
        "content": {"application/json": {"schema": object(&[("error", string())])}}
    });
    let mut paths = Map::new();
    for e in Endpoint::ALL {
        let mut params = vec![format_param()];
        if e.filtered() {
            params.extend(filters());
        }
        match e {
            Endpoint::TopUsers => params.push(param("limit", "Users to return.", json!({"type": "integer", "minimum": 1, "maximum": 100, "default": 10}))),
            Endpoint::Histogram => params.push(param("bins", "Number of bins.", json!({"type": "integer", "minimum": 1, "maximum": 200, "default": 20}))),
            Endpoint::Timeseries => params.push(param("bucket", "Bucket; auto picks the finest giving at most 200 points. A bucket giving more than 10,000 points over the range answers 400 (counted before anything is built).", json!({"type": "string", "enum": ["auto", "hour", "day", "week", "month"], "default": "auto"}))),
            Endpoint::Orders => {
                params.push(param("page", "Page, from 1.", json!({"type": "integer", "minimum": 1, "default": 1})));
                params.push(param("page_size", "Rows per page.", json!({"type": "integer", "minimum": 1, "maximum": 500, "default": 50})));
                params.push(param(
                    "all",
                    "`true` (with `format=csv`, without `page`/`page_size`): the whole filtered result instead of a page, every order by order id, streamed as text/csv (chunked) with the header `order_id,user_id,category,amount,payment_method,status,timestamp`. If the fact table fails mid-way, the body ends with a line `# error: export incomplete, ...` and the connection is aborted without the terminating chunk, so the download fails instead of looking complete.",
                    json!({"type": "boolean", "default": false}),
                ));
            }
            _ => {}
        }
        paths.insert(
            format!("/api/{}", e.name()),
            json!({"get": {
                "summary": summary(e),
                "operationId": e.name().replace('-', "_"),
                "parameters": params,
                "responses": {
                    "200": {"description": "The panel's data", "content": {
                        "application/json": {"schema": schema(e)},
                        "text/csv": {"schema": {"type": "string"}}
                    }},
                    "400": error.clone()
                }
            }}),
        );
    }
    paths.insert("/api/events".into(), json!({"get": {
        "summary": "Server-sent events: `update` with {version, last_update, freshness} whenever the loaded data or a streaming shard's mark changes (freshness: {lag_ms, committed_at, batches, shards} of the streaming shards, null when nothing streams); keep-alive comments every 15 s (a third of --idle-timeout when shorter)",
        "operationId": "events",
        "responses": {"200": {"description": "An event stream", "content": {"text/event-stream": {"schema": string()}}}, "400": error.clone(),
            "503": {"description": "Too many event streams open (--max-sse-clients); retry later (Retry-After)", "content": {"application/json": {"schema": object(&[("error", string())])}}}}
    }}));
    paths.insert("/api/summary".into(), json!({"get": {
        "summary": "Totals of everything loaded (orders, revenue, cleaning report)",
        "operationId": "summary",
        "responses": {"200": {"description": "Totals", "content": {"application/json": {"schema": {"type": "object"}}}}}
    }}));
    paths.insert("/api/openapi.json".into(), json!({"get": {
        "summary": "This document", "operationId": "openapi",
        "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}}}
    }}));
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "ecom-pipeline dashboard API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Every panel of the dashboard. Amounts are in currency units (exact cents / 100). Timestamps carry no zone in the data and are treated as UTC. Filters apply to every panel endpoint and to /api/orders."
        },
        "paths": paths
    })
}

/// `GET /api/openapi.json`.
pub async fn document() -> Json<Value> {
    Json(spec())
}
