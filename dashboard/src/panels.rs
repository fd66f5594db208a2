//! What every endpoint answers (the API contract's shapes), the definitions
//! shared by the server and the recomputation (quantile rank, histogram
//! edges, time-series range), and the CSV rendering of each answer.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::query::{Bucket, Filter};
use crate::time::{auto_bucket, bucket_count, bucket_next, bucket_start};

/// Absolute bound of the reported median and percentiles, currency units:
/// they are exact (computed from per-cent counts), so the bound is 0.
pub const QUANTILE_ERROR: f64 = 0.0;
/// `auto` picks the finest bucket giving at most this many points.
pub const AUTO_MAX_POINTS: usize = 200;
/// An explicit bucket may give at most this many points.
pub const MAX_POINTS: usize = 10_000;

/// Currency units of a number of cents.
pub fn money(cents: i64) -> f64 {
    cents as f64 / 100.0
}

/// The 0-based rank of the `q` quantile among `n` sorted values: nearest
/// rank, `round(q * (n - 1))` (the median of an even count is the upper
/// middle value when `q * (n - 1)` ends in .5, rounding half away from zero).
pub fn quantile_rank(q: f64, n: u64) -> u64 {
    ((q * (n.saturating_sub(1)) as f64).round() as u64).min(n.saturating_sub(1))
}

/// Histogram edges in cents: `bins + 1` edges from `min` to `max`, edge `i`
/// being `min + round(i * (max - min) / bins)`. Bin `i` holds
/// `edge[i] <= amount < edge[i + 1]`; the last bin also holds `max`.
pub fn bin_edges(min: i64, max: i64, bins: usize) -> Vec<i64> {
    let span = i128::from(max - min);
    let b = bins.max(1) as i128;
    (0..=b)
        .map(|i| min + ((2 * i * span + b) / (2 * b)) as i64)
        .collect()
}

/// The bin of `cents` among `edges` (see [`bin_edges`]).
pub fn bin_of(edges: &[i64], cents: i64) -> usize {
    let bins = edges.len() - 1;
    // First edge greater than the amount, minus one; the maximum goes last.
    let i = edges.partition_point(|e| *e <= cents);
    i.saturating_sub(1).min(bins - 1)
}

/// The time series' hours `[lo, hi)` and bucket: explicit bounds of the
/// filter win, missing ones come from the first and last hour with matching
/// data (`data` = `(first, last)` hour, `None` when no rows match).
pub fn series_range(
    filter: &Filter,
    data: Option<(i64, i64)>,
    bucket: Bucket,
) -> (Bucket, i64, i64) {
    let (lo, hi) = match (filter.from, filter.to, data) {
        (Some(f), Some(t), _) => (f, t),
        (f, t, Some((first, last))) => (f.unwrap_or(first), t.unwrap_or(last + 1)),
        (f, t, None) => {
            let lo = f.or(t).unwrap_or(0);
            (lo, lo)
        }
    };
    let chosen = match bucket {
        Bucket::Auto => auto_bucket(lo, hi, AUTO_MAX_POINTS),
        b => b,
    };
    (chosen, lo, hi)
}

/// Bucket starts covering `[lo, hi)`.
pub fn bucket_starts(bucket: Bucket, lo: i64, hi: i64) -> Vec<i64> {
    let mut out = Vec::with_capacity(bucket_count(bucket, lo, hi));
    let mut s = bucket_start(bucket, lo);
    while s < hi {
        out.push(s);
        s = bucket_next(bucket, s);
    }
    out
}

/// Key figures of a set of orders.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Orders.
    pub orders: u64,
    /// Sum of amounts.
    pub revenue: f64,
    /// Mean amount.
    pub mean: Option<f64>,
    /// Median amount (nearest rank).
    pub median: Option<f64>,
    /// Smallest amount.
    pub min: Option<f64>,
    /// Largest amount.
    pub max: Option<f64>,
    /// Sample standard deviation of amounts (n - 1; null below 2 orders).
    pub std: Option<f64>,
    /// 25th percentile (nearest rank).
    pub p25: Option<f64>,
    /// 75th percentile.
    pub p75: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// Rows dropped by cleaning (whole pipeline; not filterable; null for the previous period).
    pub dropped_rows: Option<u64>,
}

/// Change in percent against the previous period.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// Orders.
    pub orders: Option<f64>,
    /// Revenue.
    pub revenue: Option<f64>,
    /// Mean amount.
    pub mean: Option<f64>,
}

/// `GET /api/kpis`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kpis {
    /// Figures of the filtered period.
    #[serde(flatten)]
    pub current: Figures,
    /// Absolute bound of median and percentiles, currency units.
    pub quantile_error: f64,
    /// Figures of the period of equal length just before `from`.
    pub previous: Option<Figures>,
    /// Change against `previous`, percent.
    pub change_pct: Option<Change>,
}

/// Percent change from `prev` to `cur` (null when `prev` is 0 or missing).
pub fn pct(cur: Option<f64>, prev: Option<f64>) -> Option<f64> {
    match (cur, prev) {
        (Some(c), Some(p)) if p != 0.0 => Some((c - p) / p * 100.0),
        _ => None,
    }
}

impl Kpis {
    /// Assembles the answer from the figures of both periods.
    pub fn new(current: Figures, previous: Option<Figures>) -> Kpis {
        let change_pct = previous.as_ref().map(|p| Change {
            orders: pct(Some(current.orders as f64), Some(p.orders as f64)),
            revenue: pct(Some(current.revenue), Some(p.revenue)),
            mean: pct(current.mean, p.mean),
        });
        Kpis {
            current,
            quantile_error: QUANTILE_ERROR,
            previous,
            change_pct,
        }
    }
}

/// A row of `/api/categories`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryRow {
    /// Category.
    pub category: String,
    /// Orders.
    pub orders: u64,
    /// Sum of amounts.
    pub revenue: f64,
    /// Mean amount.
    pub average: f64,
}

/// A row of `/api/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusRow {
    /// Status.
    pub status: String,
    /// Orders.
    pub orders: u64,
    /// Sum of amounts.
    pub revenue: f64,
}

/// A row of `/api/category-status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryStatusRow {
    /// Category.
    pub category: String,
    /// Status.
    pub status: String,
    /// Orders.
    pub orders: u64,
}

/// A row of `/api/payments`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentRow {
    /// Payment method.
    pub payment_method: String,
    /// Orders.
    pub orders: u64,
    /// Sum of amounts.
    pub revenue: f64,
}

/// A row of `/api/top-users`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRow {
    /// User id.
    pub user_id: u64,
    /// Orders.
    pub orders: u64,
    /// Sum of amounts.
    pub revenue: f64,
}

/// A row of `/api/histogram`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BinRow {
    /// Lower edge (inclusive).
    pub lo: f64,
    /// Upper edge (exclusive, inclusive for the last bin).
    pub hi: f64,
    /// Orders in the bin.
    pub orders: u64,
}

/// A row of `/api/timeseries`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimeRow {
    /// Bucket start, `YYYY-MM-DDTHH:MM:SSZ`.
    pub start: String,
    /// Orders.
    pub orders: u64,
    /// Sum of amounts.
    pub revenue: f64,
}

/// `GET /api/timeseries`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timeseries {
    /// The bucket used.
    pub bucket: String,
    /// Always `UTC`.
    pub timezone: String,
    /// One row per bucket of the range, empty buckets included.
    pub rows: Vec<TimeRow>,
}

/// Rows through one pipeline stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageRow {
    /// Stage.
    pub stage: String,
    /// Rows.
    pub rows: u64,
}

/// `GET /api/health`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// Rows read by cleaning.
    pub rows_in: u64,
    /// Rows kept by cleaning.
    pub rows_out: u64,
    /// Rows dropped per rule.
    pub dropped: BTreeMap<String, u64>,
    /// Rows fixed per fix.
    pub fixed: BTreeMap<String, u64>,
    /// Rows in the loaded files.
    pub rows_loaded: u64,
    /// Clean files loaded.
    pub files_loaded: u64,
    /// Last time a file was loaded (RFC 3339), null if unknown.
    pub last_update: Option<String>,
    /// Rows per stage.
    pub stages: Vec<StageRow>,
    /// Records in the topic not yet read by cleaning, null without Kafka.
    pub consumer_lag: Option<u64>,
    /// End-to-end lag of the streaming shards' last micro-batches, milliseconds (null when
    /// nothing streams).
    #[serde(default)]
    pub stream_lag_ms: Option<u64>,
    /// When a streaming shard last committed (RFC 3339), null when nothing streams.
    #[serde(default)]
    pub stream_committed_at: Option<String>,
}

/// A row of `/api/orders`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderRow {
    /// Order id.
    pub order_id: u64,
    /// User id.
    pub user_id: u64,
    /// Category.
    pub category: String,
    /// Amount.
    pub amount: f64,
    /// Payment method.
    pub payment_method: String,
    /// Status.
    pub status: String,
    /// Timestamp as stored (`YYYY-MM-DD HH:MM:SS`, UTC).
    pub timestamp: String,
}

/// `GET /api/orders`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Orders {
    /// Page (1-based).
    pub page: usize,
    /// Page size.
    pub page_size: usize,
    /// Orders of the page, by order id.
    pub rows: Vec<OrderRow>,
    /// Whether a next page exists.
    pub has_more: bool,
}

/// Columns of a drill-down row in CSV: the JSON fields, in the fact table's order.
pub const ORDER_COLUMNS: [&str; 7] = ecom_jobs::record::COLUMNS;

/// One drill-down row as a CSV line (with its newline), formatted exactly as
/// [`to_csv`] formats the rows of a page.
pub fn order_csv_line(row: &OrderRow, out: &mut String) {
    use std::fmt::Write;
    let amount = serde_json::Value::from(row.amount);
    let _ = writeln!(
        out,
        "{},{},{},{},{},{},{}",
        row.order_id,
        row.user_id,
        field(&row.category),
        amount,
        field(&row.payment_method),
        field(&row.status),
        field(&row.timestamp)
    );
}

/// `{"rows": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rows<T> {
    /// The rows.
    pub rows: Vec<T>,
}

/// First characters that make a spreadsheet read a cell as a formula (the
/// OWASP list for CSV injection).
pub const FORMULA_START: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A text cell of CSV: prefixed with `'` when it begins with a formula
/// character (so a spreadsheet shows it as text), then quoted when needed.
/// Every text cell goes through here, whatever it holds; numbers the server
/// formats itself (amounts, counts, a negative `change_pct`) are written as
/// numbers, since a number cannot carry a formula.
pub fn field(s: &str) -> String {
    let text: std::borrow::Cow<'_, str> = if s.starts_with(FORMULA_START) {
        format!("'{s}").into()
    } else {
        s.into()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.into_owned()
    }
}

fn opt(v: Option<f64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// Renders the main array of a JSON answer as CSV: a header of the rows'
/// keys, then one line per row (objects of `rows`; for KPIs one line per
/// figure: `figure,value,previous,change_pct`; for health the stages).
pub fn to_csv(answer: &serde_json::Value) -> String {
    use serde_json::Value;
    let mut out = String::new();
    if answer.get("quantile_error").is_some() {
        out.push_str("figure,value,previous,change_pct\n");
        let num = |v: Option<&Value>| v.and_then(Value::as_f64);
        for name in [
            "orders",
            "revenue",
            "mean",
            "median",
            "min",
            "max",
            "std",
            "p25",
            "p75",
            "p95",
            "dropped_rows",
        ] {
            let prev = answer.get("previous").and_then(|p| num(p.get(name)));
            let change = answer.get("change_pct").and_then(|c| num(c.get(name)));
            out.push_str(&format!(
                "{name},{},{},{}\n",
                opt(num(answer.get(name))),
                opt(prev),
                opt(change)
            ));
        }
        return out;
    }
    let empty = Vec::new();
    let rows = answer
        .get("rows")
        .or_else(|| answer.get("stages"))
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let header = csv_header(rows.first(), answer.get("has_more").is_some());
    csv_head_line(&header, &mut out);
    for row in rows {
        csv_line(row, &header, &mut out);
    }
    out
}

/// The CSV of a list of rows, as [`to_csv`] renders an answer holding them
/// (`orders`: a drill-down page, whose columns are named even without rows).
/// One row at a time goes through a JSON tree, never the whole list.
pub fn rows_to_csv<T: Serialize>(rows: &[T], orders: bool) -> serde_json::Result<String> {
    let first = rows.first().map(serde_json::to_value).transpose()?;
    let header = csv_header(first.as_ref(), orders);
    let mut out = String::new();
    csv_head_line(&header, &mut out);
    for row in rows {
        csv_line(&serde_json::to_value(row)?, &header, &mut out);
    }
    Ok(out)
}

/// The columns: the first row's keys in the declared order, or the
/// drill-down's columns for an empty page.
fn csv_header(first: Option<&serde_json::Value>, orders: bool) -> Vec<String> {
    let header: Vec<String> = match first {
        Some(serde_json::Value::Object(o)) => o.keys().cloned().collect(),
        // An empty drill-down still names its columns.
        _ if orders => ORDER_COLUMNS.iter().map(|c| c.to_string()).collect(),
        _ => Vec::new(),
    };
    // serde_json keeps keys sorted unless told otherwise; use the declared order instead.
    declared_order(header)
}

fn csv_head_line(header: &[String], out: &mut String) {
    out.push_str(&header.join(","));
    out.push('\n');
}

/// One row's line: text cells through [`field`], numbers as they are.
fn csv_line(row: &serde_json::Value, header: &[String], out: &mut String) {
    use serde_json::Value;
    for (i, k) in header.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match row.get(k) {
            Some(Value::String(s)) => out.push_str(&field(s)),
            Some(Value::Null) | None => {}
            Some(v) => out.push_str(&v.to_string()),
        }
    }
    out.push('\n');
}

/// Column order of the CSV files: as in the contract.
fn declared_order(mut keys: Vec<String>) -> Vec<String> {
    const ORDER: [&str; 14] = [
        "order_id",
        "start",
        "lo",
        "hi",
        "user_id",
        "category",
        "status",
        "payment_method",
        "stage",
        "amount",
        "orders",
        "rows",
        "revenue",
        "average",
    ];
    keys.sort_by_key(|k| ORDER.iter().position(|o| o == k).unwrap_or(usize::MAX));
    // A drill-down row reads best in the fact table's column order.
    if keys.first().map(String::as_str) == Some("order_id") {
        keys = ORDER_COLUMNS.iter().map(|s| s.to_string()).collect();
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_bins_and_ranks() {
        assert_eq!(bin_edges(500, 1500, 4), vec![500, 750, 1000, 1250, 1500]);
        assert_eq!(bin_edges(0, 10, 3), vec![0, 3, 7, 10]);
        let e = bin_edges(500, 1500, 4);
        assert_eq!(bin_of(&e, 500), 0);
        assert_eq!(bin_of(&e, 749), 0);
        assert_eq!(bin_of(&e, 750), 1);
        assert_eq!(bin_of(&e, 1500), 3);
        let flat = bin_edges(700, 700, 3);
        assert_eq!(bin_of(&flat, 700), 2);
        assert_eq!(quantile_rank(0.5, 4), 2);
        assert_eq!(quantile_rank(0.5, 5), 2);
        assert_eq!(quantile_rank(0.95, 1), 0);
    }

    #[test]
    fn order_line_matches_page_csv() {
        for amount in [12.5, 100.0, 0.01, 1234.56] {
            let row = OrderRow {
                order_id: 7,
                user_id: 42,
                category: "Home & Kitchen, \"big\"".into(),
                amount,
                payment_method: "Credit Card".into(),
                status: "Shipped".into(),
                timestamp: "2024-01-02 03:04:05".into(),
            };
            let page = Orders {
                page: 1,
                page_size: 1,
                rows: vec![row.clone()],
                has_more: false,
            };
            let mut line = ORDER_COLUMNS.join(",");
            line.push('\n');
            order_csv_line(&row, &mut line);
            let value = serde_json::to_value(&page).expect("json");
            assert_eq!(line, to_csv(&value));
        }
        let empty = serde_json::json!({"page": 1, "page_size": 5, "rows": [], "has_more": false});
        assert_eq!(to_csv(&empty), format!("{}\n", ORDER_COLUMNS.join(",")));
    }

    #[test]
    fn formula_cells_are_neutralised() {
        for (raw, cell) in [
            (
                "=HYPERLINK(\"http://x\",\"y\")",
                "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"",
            ),
            ("+1+1", "'+1+1"),
            ("-2+3", "'-2+3"),
            ("-5", "'-5"),
            ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
            ("\tcmd", "'\tcmd"),
            ("\rcmd", "\"'\rcmd\""),
            ("=1,2", "\"'=1,2\""),
            ("Books", "Books"),
            ("a=b", "a=b"),
            ("", ""),
        ] {
            assert_eq!(field(raw), cell, "{raw:?}");
        }
        let v = serde_json::json!({"rows": [
            {"category": "=cmd|' /C calc'!A0", "orders": 2, "revenue": 3.5, "average": 1.75}
        ]});
        assert_eq!(
            to_csv(&v),
            "category,orders,revenue,average\n'=cmd|' /C calc'!A0,2,3.5,1.75\n"
        );
        let row = OrderRow {
            order_id: 1,
            user_id: 2,
            category: "@evil".into(),
            amount: 5.0,
            payment_method: "+pay".into(),
            status: "-status".into(),
            timestamp: "2024-01-02 03:04:05".into(),
        };
        let mut line = String::new();
        order_csv_line(&row, &mut line);
        assert_eq!(line, "1,2,'@evil,5.0,'+pay,'-status,2024-01-02 03:04:05\n");
        // Numbers stay numbers, negative ones included (KPIs' change_pct).
        let kpis = serde_json::json!({"quantile_error": 0, "orders": 5,
            "change_pct": {"orders": -12.5}, "previous": {"orders": 8}});
        assert!(
            to_csv(&kpis).contains("\norders,5,8,-12.5\n"),
            "{}",
            to_csv(&kpis)
        );
    }

    #[test]
    fn rows_render_as_the_answer_renders() {
        let cats = vec![
            CategoryRow {
                category: "=Home, Garden".into(),
                orders: 2,
                revenue: 3.5,
                average: 1.75,
            },
            CategoryRow {
                category: "Books".into(),
                orders: 1,
                revenue: 0.5,
                average: 0.5,
            },
        ];
        let whole = serde_json::to_value(Rows { rows: cats.clone() }).expect("json");
        assert_eq!(rows_to_csv(&cats, false).expect("csv"), to_csv(&whole));
        let none: Vec<CategoryRow> = Vec::new();
        let whole = serde_json::to_value(Rows { rows: none.clone() }).expect("json");
        assert_eq!(rows_to_csv(&none, false).expect("csv"), to_csv(&whole));
        let page = Orders {
            page: 1,
            page_size: 5,
            rows: Vec::new(),
            has_more: false,
        };
        let whole = serde_json::to_value(&page).expect("json");
        assert_eq!(rows_to_csv(&page.rows, true).expect("csv"), to_csv(&whole));
    }

    #[test]
    fn csv_has_header_rows_and_quotes() {
        let v = serde_json::json!({"rows": [
            {"category": "Home, Garden", "orders": 2, "revenue": 3.5, "average": 1.75}
        ]});
        assert_eq!(
            to_csv(&v),
            "category,orders,revenue,average\n\"Home, Garden\",2,3.5,1.75\n"
        );
    }
}
