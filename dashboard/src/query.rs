//! Query parameters of the API: parsing and validation (bad input -> a
//! message naming the parameter and the value, answered with 400).

use std::collections::BTreeSet;

use crate::time::{format_hour, parse_instant};

/// A rejected query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub String);

fn bad(msg: impl Into<String>) -> QueryError {
    QueryError(msg.into())
}

/// The panel endpoints and what they accept beyond the common filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `/api/kpis`.
    Kpis,
    /// `/api/categories`.
    Categories,
    /// `/api/status`.
    Status,
    /// `/api/category-status`.
    CategoryStatus,
    /// `/api/payments`.
    Payments,
    /// `/api/top-users`.
    TopUsers,
    /// `/api/histogram`.
    Histogram,
    /// `/api/timeseries`.
    Timeseries,
    /// `/api/health`.
    Health,
    /// `/api/orders`.
    Orders,
}

impl Endpoint {
    /// Every endpoint.
    pub const ALL: [Endpoint; 10] = [
        Endpoint::Kpis,
        Endpoint::Categories,
        Endpoint::Status,
        Endpoint::CategoryStatus,
        Endpoint::Payments,
        Endpoint::TopUsers,
        Endpoint::Histogram,
        Endpoint::Timeseries,
        Endpoint::Health,
        Endpoint::Orders,
    ];

    /// The path under `/api/`.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Kpis => "kpis",
            Endpoint::Categories => "categories",
            Endpoint::Status => "status",
            Endpoint::CategoryStatus => "category-status",
            Endpoint::Payments => "payments",
            Endpoint::TopUsers => "top-users",
            Endpoint::Histogram => "histogram",
            Endpoint::Timeseries => "timeseries",
            Endpoint::Health => "health",
            Endpoint::Orders => "orders",
        }
    }

    /// The endpoint of `/api/<name>`.
    pub fn from_name(name: &str) -> Option<Endpoint> {
        Endpoint::ALL.into_iter().find(|e| e.name() == name)
    }

    /// Whether the common filters apply.
    pub fn filtered(self) -> bool {
        self != Endpoint::Health
    }

    /// Parameters of this endpoint beyond the filters and `format`.
    pub fn extra_params(self) -> &'static [&'static str] {
        match self {
            Endpoint::TopUsers => &["limit"],
            Endpoint::Histogram => &["bins"],
            Endpoint::Timeseries => &["bucket"],
            Endpoint::Orders => &["page", "page_size", "all"],
            _ => &[],
        }
    }
}

/// Common filter names.
pub const FILTER_PARAMS: [&str; 5] = ["from", "to", "category", "payment", "status"];

/// Time bucket of the time series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    /// Finest bucket giving at most 200 points.
    Auto,
    /// One hour.
    Hour,
    /// One day (UTC).
    Day,
    /// One ISO week, from Monday 00:00 UTC.
    Week,
    /// One calendar month.
    Month,
}

impl Bucket {
    /// Its name in the API.
    pub fn name(self) -> &'static str {
        match self {
            Bucket::Auto => "auto",
            Bucket::Hour => "hour",
            Bucket::Day => "day",
            Bucket::Week => "week",
            Bucket::Month => "month",
        }
    }
}

/// The filters common to every panel. Hours are counted since 1970-01-01T00Z.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Filter {
    /// Inclusive first hour.
    pub from: Option<i64>,
    /// Exclusive last hour.
    pub to: Option<i64>,
    /// Categories (empty: all).
    pub category: BTreeSet<String>,
    /// Payment methods (empty: all).
    pub payment: BTreeSet<String>,
    /// Statuses (empty: all).
    pub status: BTreeSet<String>,
}

impl Filter {
    /// Whether a row of these values at `hour` passes.
    pub fn admits(&self, hour: i64, category: &str, payment: &str, status: &str) -> bool {
        self.from.is_none_or(|f| hour >= f)
            && self.to.is_none_or(|t| hour < t)
            && (self.category.is_empty() || self.category.contains(category))
            && (self.payment.is_empty() || self.payment.contains(payment))
            && (self.status.is_empty() || self.status.contains(status))
    }

    /// The period of equal length just before this one (only with both bounds).
    pub fn previous(&self) -> Option<Filter> {
        let (from, to) = (self.from?, self.to?);
        Some(Filter {
            from: Some(from - (to - from)),
            to: Some(from),
            ..self.clone()
        })
    }

    /// A canonical text of the filter (cache keys).
    pub fn canonical(&self) -> String {
        let join = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(",");
        format!(
            "from={}&to={}&category={}&payment={}&status={}",
            self.from.map(format_hour).unwrap_or_default(),
            self.to.map(format_hour).unwrap_or_default(),
            join(&self.category),
            join(&self.payment),
            join(&self.status)
        )
    }
}

/// Answer format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// JSON.
    #[default]
    Json,
    /// CSV with a header line.
    Csv,
}

/// A parsed request of a panel endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Query {
    /// Which endpoint.
    pub endpoint: Endpoint,
    /// Filters.
    pub filter: Filter,
    /// JSON or CSV.
    pub format: Format,
    /// `limit` of top users (1..=100).
    pub limit: usize,
    /// `bins` of the histogram (1..=200).
    pub bins: usize,
    /// `bucket` of the time series.
    pub bucket: Bucket,
    /// `page` of orders (1-based).
    pub page: usize,
    /// `page_size` of orders (1..=500).
    pub page_size: usize,
    /// `all=true` of orders: every filtered order, streamed as CSV.
    pub all: bool,
}

impl Query {
    /// Defaults of `endpoint` with no parameter.
    pub fn new(endpoint: Endpoint) -> Query {
        Query {
            endpoint,
            filter: Filter::default(),
            format: Format::Json,
            limit: 10,
            bins: 20,
            bucket: Bucket::Auto,
            page: 1,
            page_size: 50,
            all: false,
        }
    }

    /// A canonical text of the whole query (cache keys).
    pub fn canonical(&self) -> String {
        format!(
            "{}?{}&limit={}&bins={}&bucket={}&page={}&page_size={}&all={}",
            self.endpoint.name(),
            self.filter.canonical(),
            self.limit,
            self.bins,
            self.bucket.name(),
            self.page,
            self.page_size,
            self.all
        )
    }
}

/// Decodes `%XX` and `+` of a query component.
fn decode(s: &str, name: &str) -> Result<String, QueryError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| bad(format!("parameter {name}: bad percent-escape in {s:?}")))?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| bad(format!("parameter {name}: {s:?} is not UTF-8")))
}

fn list(value: &str) -> BTreeSet<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect()
}

fn number(name: &str, value: &str, lo: usize, hi: usize) -> Result<usize, QueryError> {
    let n: usize = value
        .parse()
        .map_err(|_| bad(format!("parameter {name}: {value:?} is not a whole number")))?;
    if n < lo || n > hi {
        return Err(bad(format!(
            "parameter {name}: {n} is out of range {lo}..={hi}"
        )));
    }
    Ok(n)
}

/// Parses the raw query string of `endpoint` (unknown, repeated or bad
/// parameters are errors).
pub fn parse(endpoint: Endpoint, raw: Option<&str>) -> Result<Query, QueryError> {
    let mut q = Query::new(endpoint);
    let mut seen = BTreeSet::new();
    for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode(k, k)?;
        let value = decode(v, &name)?;
        let known = name == "format"
            || (endpoint.filtered() && FILTER_PARAMS.contains(&name.as_str()))
            || endpoint.extra_params().contains(&name.as_str());
        if !known {
            let mut accepted: Vec<&str> = vec!["format"];
            if endpoint.filtered() {
                accepted.extend(FILTER_PARAMS);
            }
            accepted.extend(endpoint.extra_params());
            return Err(bad(format!(
                "unknown parameter {name:?} for /api/{} (accepted: {})",
                endpoint.name(),
                accepted.join(", ")
            )));
        }
        if !seen.insert(name.clone()) {
            return Err(bad(format!(
                "parameter {name} given more than once (use a comma-separated list)"
            )));
        }
        match name.as_str() {
            "format" => {
                q.format = match value.as_str() {
                    "json" | "" => Format::Json,
                    "csv" => Format::Csv,
                    other => {
                        return Err(bad(format!(
                            "parameter format: {other:?} is not json or csv"
                        )))
                    }
                }
            }
            "from" | "to" if value.is_empty() => {}
            "from" => q.filter.from = Some(parse_instant("from", &value)?),
            "to" => q.filter.to = Some(parse_instant("to", &value)?),
            "category" => q.filter.category = list(&value),
            "payment" => q.filter.payment = list(&value),
            "status" => q.filter.status = list(&value),
            "limit" => q.limit = number("limit", &value, 1, 100)?,
            "bins" => q.bins = number("bins", &value, 1, 200)?,
            "page" => q.page = number("page", &value, 1, 1_000_000)?,
            "page_size" => q.page_size = number("page_size", &value, 1, 500)?,
            "all" => {
                q.all = match value.as_str() {
                    "true" | "1" => true,
                    "false" | "0" | "" => false,
                    other => {
                        return Err(bad(format!(
                            "parameter all: {other:?} is not true or false"
                        )))
                    }
                }
            }
            "bucket" => {
                q.bucket = match value.as_str() {
                    "auto" | "" => Bucket::Auto,
                    "hour" => Bucket::Hour,
                    "day" => Bucket::Day,
                    "week" => Bucket::Week,
                    "month" => Bucket::Month,
                    other => {
                        return Err(bad(format!(
                            "parameter bucket: {other:?} is not auto, hour, day, week or month"
                        )))
                    }
                }
            }
            _ => {}
        }
    }
    if q.all {
        if q.format != Format::Csv {
            return Err(bad(
                "parameter all: the whole result is exported as CSV only (add format=csv)",
            ));
        }
        if let Some(p) = ["page", "page_size"]
            .into_iter()
            .find(|p| seen.contains(*p))
        {
            return Err(bad(format!(
                "parameter {p}: not with all=true (the export holds every filtered order)"
            )));
        }
    }
    if let (Some(f), Some(t)) = (q.filter.from, q.filter.to) {
        if f >= t {
            return Err(bad(format!(
                "parameter from ({}) must be before to ({})",
                format_hour(f),
                format_hour(t)
            )));
        }
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_filters_and_rejects_bad_input() {
        let q = parse(
            Endpoint::Categories,
            Some("from=2024-01-01&to=2024-01-02T05:00:00Z&category=Books,Home+%26+Kitchen&format=csv"),
        )
        .expect("parse");
        assert_eq!(q.filter.from, Some(473_352));
        assert_eq!(q.filter.to, Some(473_352 + 29));
        assert!(q.filter.category.contains("Home & Kitchen"));
        assert_eq!(q.format, Format::Csv);
        for (endpoint, raw, needle) in [
            (Endpoint::Kpis, "from=2024-01-01T10:30:00Z", "from"),
            (Endpoint::Kpis, "from=yesterday", "yesterday"),
            (Endpoint::Kpis, "from=2024-01-02&to=2024-01-01", "before"),
            (Endpoint::Kpis, "colour=red", "colour"),
            (Endpoint::Kpis, "limit=5", "limit"),
            (Endpoint::TopUsers, "limit=0", "limit"),
            (Endpoint::TopUsers, "limit=abc", "abc"),
            (Endpoint::Histogram, "bins=201", "bins"),
            (Endpoint::Timeseries, "bucket=year", "year"),
            (Endpoint::Orders, "page_size=501", "page_size"),
            (Endpoint::Orders, "all=yes&format=csv", "yes"),
            (Endpoint::Orders, "all=true", "format=csv"),
            (Endpoint::Orders, "all=true&format=csv&page=2", "page"),
            (Endpoint::Health, "category=Books", "category"),
            (Endpoint::Kpis, "category=A&category=B", "more than once"),
            (Endpoint::Kpis, "format=xml", "xml"),
            (Endpoint::Kpis, "category=%zz", "percent"),
        ] {
            let err = parse(endpoint, Some(raw)).expect_err(raw);
            assert!(err.0.contains(needle), "{raw}: {err}");
        }
    }
}
