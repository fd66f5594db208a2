//! The oracle: every panel recomputed straight from clean Parquet with polars
//! (no cube, no aggregates table), answering the same queries with the same
//! JSON as the dashboard's API.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ecom_dashboard::panels::{
    bin_edges, bin_of, bucket_starts, money, quantile_rank, series_range, to_csv, BinRow,
    CategoryRow, CategoryStatusRow, Figures, Health, Kpis, OrderRow, Orders, PaymentRow, Rows,
    StageRow, StatusRow, TimeRow, Timeseries, UserRow, MAX_POINTS,
};
use ecom_dashboard::query::{parse, Endpoint, Filter, Format, Query, QueryError};
use ecom_dashboard::time::{bucket_start, format_hour, hour_of_text};
use ecom_jobs::clean::QualityReport;
use ecom_jobs::record::to_cents;
use polars::prelude::*;
use serde_json::Value;

/// Errors of the recomputation.
#[derive(Debug, thiserror::Error)]
pub enum RecomputeError {
    /// A directory or file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// polars failed on a file or a computation.
    #[error("polars on {what}: {source}")]
    Polars {
        /// The file or step.
        what: String,
        /// The error.
        source: PolarsError,
    },
    /// A quality report did not decode.
    #[error("quality report {path}: {source}")]
    Report {
        /// The path.
        path: String,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// The query is not valid.
    #[error("bad query: {0}")]
    Query(#[from] QueryError),
    /// The path is not an API endpoint.
    #[error("not an endpoint: {0}")]
    NoEndpoint(String),
}

/// One clean row.
#[derive(Debug, Clone)]
struct Rec {
    order_id: u64,
    user_id: u64,
    category: String,
    cents: i64,
    payment: String,
    status: String,
    timestamp: String,
    hour: Option<i64>,
}

/// Clean rows and cleaning reports of a directory.
pub struct Oracle {
    rows: Vec<Rec>,
    reports: Vec<QualityReport>,
    files: u64,
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), RecomputeError> {
    let io = |source| RecomputeError::Io {
        path: dir.display().to_string(),
        source,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        // `_manifest/`, `_staging/`, `_checkpoints/` hold bookkeeping, not data.
        if p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(['_', '.']))
        {
            continue;
        }
        if p.is_dir() {
            walk(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

/// Whether a file name is a quality report's: `report.json` or a run's `report-RUN.json`.
fn is_report(name: &std::ffi::OsStr) -> bool {
    let name = name.to_string_lossy();
    name == "report.json" || (name.starts_with("report-") && name.ends_with(".json"))
}

/// An answer's JSON value (an encoding failure reported as an error).
fn json(v: Result<Value, serde_json::Error>) -> Result<Value, RecomputeError> {
    v.map_err(|e| RecomputeError::NoEndpoint(format!("encoding: {e}")))
}

fn pe(what: &str) -> impl Fn(PolarsError) -> RecomputeError + '_ {
    move |source| RecomputeError::Polars {
        what: what.to_string(),
        source,
    }
}

impl Oracle {
    /// Reads every `*.parquet` (clean rows) and quality report (`report.json`, or a run's
    /// `report-RUN.json`) under `dir`, bookkeeping directories (`_manifest/`, …) aside.
    pub fn from_dir(dir: &Path) -> Result<Oracle, RecomputeError> {
        let mut paths = Vec::new();
        walk(dir, &mut paths)?;
        let mut oracle = Oracle {
            rows: Vec::new(),
            reports: Vec::new(),
            files: 0,
        };
        for p in paths {
            let name = p.display().to_string();
            let read = |source| RecomputeError::Io {
                path: name.clone(),
                source,
            };
            if name.ends_with(".parquet") {
                let file = std::fs::File::open(&p).map_err(read)?;
                let df = ParquetReader::new(file)
                    .finish()
                    .and_then(ecom_jobs::clean::timestamp::to_text)
                    .map_err(pe(&name))?;
                oracle.add_frame(df, &name)?;
                oracle.files += 1;
            } else if p.file_name().is_some_and(is_report) {
                let bytes = std::fs::read(&p).map_err(read)?;
                oracle.reports.push(
                    serde_json::from_slice(&bytes)
                        .map_err(|source| RecomputeError::Report { path: name, source })?,
                );
            }
        }
        Ok(oracle)
    }

    fn add_frame(&mut self, df: DataFrame, name: &str) -> Result<(), RecomputeError> {
        let df = df
            .lazy()
            .select([
                col("order_id").cast(DataType::UInt64),
                col("user_id").cast(DataType::UInt64),
                col("category"),
                col("amount"),
                col("payment_method"),
                col("status"),
                col("timestamp"),
            ])
            .collect()
            .map_err(pe(name))?;
        let s = |c: &str| df.column(c).and_then(|c| c.str()).map_err(pe(name));
        let u = |c: &str| df.column(c).and_then(|c| c.u64()).map_err(pe(name));
        let (order, user, cat, pay, status, ts) = (
            u("order_id")?,
            u("user_id")?,
            s("category")?,
            s("payment_method")?,
            s("status")?,
            s("timestamp")?,
        );
        let amount = df
            .column("amount")
            .and_then(|c| c.f64())
            .map_err(pe(name))?;
        for i in 0..df.height() {
            let timestamp = ts.get(i).unwrap_or("").to_string();
            self.rows.push(Rec {
                order_id: order.get(i).unwrap_or(0),
                user_id: user.get(i).unwrap_or(0),
                category: cat.get(i).unwrap_or("").to_string(),
                cents: to_cents(amount.get(i).unwrap_or(0.0)),
                payment: pay.get(i).unwrap_or("").to_string(),
                status: status.get(i).unwrap_or("").to_string(),
                hour: hour_of_text(&timestamp),
                timestamp,
            });
        }
        Ok(())
    }

    /// Clean rows read.
    pub fn rows(&self) -> usize {
        self.rows.len()
    }

    fn admits(f: &Filter, r: &Rec) -> bool {
        let timed = f.from.is_some() || f.to.is_some();
        (!timed
            || r.hour
                .is_some_and(|h| f.from.is_none_or(|x| h >= x) && f.to.is_none_or(|x| h < x)))
            && (f.category.is_empty() || f.category.contains(&r.category))
            && (f.payment.is_empty() || f.payment.contains(&r.payment))
            && (f.status.is_empty() || f.status.contains(&r.status))
    }

    fn select(&self, f: &Filter) -> Vec<&Rec> {
        self.rows.iter().filter(|r| Self::admits(f, r)).collect()
    }

    /// The filtered rows as a polars frame (category, payment_method, status,
    /// user_id, cents, amount).
    fn frame(rows: &[&Rec]) -> Result<DataFrame, RecomputeError> {
        let col_s = |name: &str, f: &dyn Fn(&Rec) -> &str| {
            Column::new(
                name.into(),
                rows.iter().map(|r| f(r)).collect::<Vec<&str>>(),
            )
        };
        DataFrame::new(
            rows.len(),
            vec![
                col_s("category", &|r| r.category.as_str()),
                col_s("payment_method", &|r| r.payment.as_str()),
                col_s("status", &|r| r.status.as_str()),
                Column::new(
                    "user_id".into(),
                    rows.iter().map(|r| r.user_id).collect::<Vec<u64>>(),
                ),
                Column::new(
                    "cents".into(),
                    rows.iter().map(|r| r.cents).collect::<Vec<i64>>(),
                ),
                Column::new(
                    "amount".into(),
                    rows.iter()
                        .map(|r| r.cents as f64 / 100.0)
                        .collect::<Vec<f64>>(),
                ),
            ],
        )
        .map_err(pe("building the filtered frame"))
    }

    /// Orders and cents per group of `keys`, with polars.
    fn grouped(
        rows: &[&Rec],
        keys: &[&str],
    ) -> Result<Vec<(Vec<String>, u64, i64)>, RecomputeError> {
        let df = Self::frame(rows)?
            .lazy()
            .group_by(keys.iter().map(|k| col(*k)).collect::<Vec<_>>())
            .agg([
                len().cast(DataType::UInt64).alias("orders"),
                col("cents").sum().alias("cents"),
            ])
            .collect()
            .map_err(pe("group by"))?;
        let e = pe("group by result");
        let orders = df.column("orders").and_then(|c| c.u64()).map_err(&e)?;
        let cents = df.column("cents").and_then(|c| c.i64()).map_err(&e)?;
        let key_cols: Vec<&StringChunked> = keys
            .iter()
            .map(|k| df.column(k).and_then(|c| c.str()).map_err(&e))
            .collect::<Result<_, _>>()?;
        Ok((0..df.height())
            .map(|i| {
                (
                    key_cols
                        .iter()
                        .map(|c| c.get(i).unwrap_or("").to_string())
                        .collect(),
                    orders.get(i).unwrap_or(0),
                    cents.get(i).unwrap_or(0),
                )
            })
            .collect())
    }

    fn figures(&self, f: &Filter) -> Result<Figures, RecomputeError> {
        let rows = self.select(f);
        if rows.is_empty() {
            return Ok(Figures::default());
        }
        let stats = Self::frame(&rows)?
            .lazy()
            .select([
                col("cents").sum().alias("sum"),
                col("amount").mean().alias("mean"),
                col("amount").std(1).alias("std"),
                col("cents").min().alias("min"),
                col("cents").max().alias("max"),
            ])
            .collect()
            .map_err(pe("statistics"))?;
        let e = pe("statistics result");
        let get_i = |c: &str| {
            stats
                .column(c)
                .and_then(|c| c.i64())
                .map(|c| c.get(0))
                .map_err(&e)
        };
        let get_f = |c: &str| {
            stats
                .column(c)
                .and_then(|c| c.f64())
                .map(|c| c.get(0))
                .map_err(&e)
        };
        let mut sorted: Vec<i64> = rows.iter().map(|r| r.cents).collect();
        sorted.sort_unstable();
        let n = sorted.len() as u64;
        let q = |q: f64| Some(money(sorted[quantile_rank(q, n) as usize]));
        Ok(Figures {
            orders: n,
            revenue: money(get_i("sum")?.unwrap_or(0)),
            mean: get_f("mean")?,
            median: q(0.5),
            min: get_i("min")?.map(money),
            max: get_i("max")?.map(money),
            std: if n >= 2 { get_f("std")? } else { None },
            p25: q(0.25),
            p75: q(0.75),
            p95: q(0.95),
            dropped_rows: None,
        })
    }

    fn health(&self) -> Health {
        let mut h = Health {
            rows_loaded: self.rows.len() as u64,
            files_loaded: self.files,
            ..Default::default()
        };
        for r in &self.reports {
            h.rows_in += r.rows_in;
            h.rows_out += r.rows_out;
            for (k, v) in &r.dropped {
                *h.dropped.entry(k.clone()).or_default() += v;
            }
            for (k, v) in &r.fixed {
                *h.fixed.entry(k.clone()).or_default() += v;
            }
        }
        h.stages = vec![
            StageRow {
                stage: "cleaned_in".into(),
                rows: h.rows_in,
            },
            StageRow {
                stage: "cleaned_out".into(),
                rows: h.rows_out,
            },
            StageRow {
                stage: "loaded".into(),
                rows: h.rows_loaded,
            },
        ];
        h
    }

    /// Answers a parsed query (JSON value).
    pub fn value(&self, q: &Query) -> Result<Value, RecomputeError> {
        let f = &q.filter;
        match q.endpoint {
            Endpoint::Kpis => {
                let mut current = self.figures(f)?;
                current.dropped_rows = Some(self.health().dropped.values().sum());
                let previous = f.previous().map(|p| self.figures(&p)).transpose()?;
                json(serde_json::to_value(Kpis::new(current, previous)))
            }
            Endpoint::Categories => self.categories(f),
            Endpoint::Status => self.status(f),
            Endpoint::CategoryStatus => self.category_status(f),
            Endpoint::Payments => self.payments(f),
            Endpoint::TopUsers => self.top_users(q),
            Endpoint::Histogram => self.histogram(q),
            Endpoint::Timeseries => self.timeseries(q),
            Endpoint::Health => json(serde_json::to_value(self.health())),
            Endpoint::Orders => self.orders(q),
        }
    }

    /// `/api/categories`: orders and revenue per category (polars group-by), by revenue desc.
    fn categories(&self, f: &Filter) -> Result<Value, RecomputeError> {
        let mut rows: Vec<CategoryRow> = Self::grouped(&self.select(f), &["category"])?
            .into_iter()
            .map(|(k, n, c)| CategoryRow {
                category: k[0].clone(),
                orders: n,
                revenue: money(c),
                average: c as f64 / 100.0 / n as f64,
            })
            .collect();
        rows.sort_by(|a, b| {
            b.revenue
                .total_cmp(&a.revenue)
                .then_with(|| a.category.cmp(&b.category))
        });
        json(serde_json::to_value(Rows { rows }))
    }

    /// `/api/status`: orders and revenue per status, by orders desc.
    fn status(&self, f: &Filter) -> Result<Value, RecomputeError> {
        let mut rows: Vec<StatusRow> = Self::grouped(&self.select(f), &["status"])?
            .into_iter()
            .map(|(k, n, c)| StatusRow {
                status: k[0].clone(),
                orders: n,
                revenue: money(c),
            })
            .collect();
        rows.sort_by(|a, b| {
            b.orders
                .cmp(&a.orders)
                .then_with(|| a.status.cmp(&b.status))
        });
        json(serde_json::to_value(Rows { rows }))
    }

    /// `/api/category-status`: orders per category and status.
    fn category_status(&self, f: &Filter) -> Result<Value, RecomputeError> {
        let mut rows: Vec<CategoryStatusRow> =
            Self::grouped(&self.select(f), &["category", "status"])?
                .into_iter()
                .map(|(k, n, _)| CategoryStatusRow {
                    category: k[0].clone(),
                    status: k[1].clone(),
                    orders: n,
                })
                .collect();
        rows.sort_by(|a, b| (&a.category, &a.status).cmp(&(&b.category, &b.status)));
        json(serde_json::to_value(Rows { rows }))
    }

    /// `/api/payments`: orders and revenue per payment method, by revenue desc.
    fn payments(&self, f: &Filter) -> Result<Value, RecomputeError> {
        let mut rows: Vec<PaymentRow> = Self::grouped(&self.select(f), &["payment_method"])?
            .into_iter()
            .map(|(k, n, c)| PaymentRow {
                payment_method: k[0].clone(),
                orders: n,
                revenue: money(c),
            })
            .collect();
        rows.sort_by(|a, b| {
            b.revenue
                .total_cmp(&a.revenue)
                .then_with(|| a.payment_method.cmp(&b.payment_method))
        });
        json(serde_json::to_value(Rows { rows }))
    }

    /// `/api/top-users`: polars group-by per user, by revenue desc, ties by user id.
    fn top_users(&self, q: &Query) -> Result<Value, RecomputeError> {
        let f = &q.filter;
        let rows = self.select(f);
        let df = Self::frame(&rows)?
            .lazy()
            .group_by([col("user_id")])
            .agg([
                len().cast(DataType::UInt64).alias("orders"),
                col("cents").sum().alias("cents"),
            ])
            .sort_by_exprs(
                [col("cents"), col("user_id")],
                SortMultipleOptions::default().with_order_descending_multi([true, false]),
            )
            .limit(q.limit as IdxSize)
            .collect()
            .map_err(pe("top users"))?;
        let e = pe("top users result");
        let users = df.column("user_id").and_then(|c| c.u64()).map_err(&e)?;
        let orders = df.column("orders").and_then(|c| c.u64()).map_err(&e)?;
        let cents = df.column("cents").and_then(|c| c.i64()).map_err(&e)?;
        let rows: Vec<UserRow> = (0..df.height())
            .map(|i| UserRow {
                user_id: users.get(i).unwrap_or(0),
                orders: orders.get(i).unwrap_or(0),
                revenue: money(cents.get(i).unwrap_or(0)),
            })
            .collect();
        json(serde_json::to_value(Rows { rows }))
    }

    /// `/api/histogram`: the rows counted into the API's bin edges.
    fn histogram(&self, q: &Query) -> Result<Value, RecomputeError> {
        let f = &q.filter;
        let rows = self.select(f);
        let (Some(min), Some(max)) = (
            rows.iter().map(|r| r.cents).min(),
            rows.iter().map(|r| r.cents).max(),
        ) else {
            return json(serde_json::to_value(Rows::<BinRow> { rows: vec![] }));
        };
        let edges = bin_edges(min, max, q.bins);
        let mut counts = vec![0u64; q.bins];
        for r in &rows {
            counts[bin_of(&edges, r.cents)] += 1;
        }
        let rows: Vec<BinRow> = counts
            .into_iter()
            .enumerate()
            .map(|(i, orders)| BinRow {
                lo: money(edges[i]),
                hi: money(edges[i + 1]),
                orders,
            })
            .collect();
        json(serde_json::to_value(Rows { rows }))
    }

    /// `/api/timeseries`: orders and revenue per bucket of the chosen range.
    fn timeseries(&self, q: &Query) -> Result<Value, RecomputeError> {
        let f = &q.filter;
        let rows = self.select(f);
        let hours: Vec<i64> = rows.iter().filter_map(|r| r.hour).collect();
        let data = hours
            .iter()
            .min()
            .zip(hours.iter().max())
            .map(|(a, b)| (*a, *b));
        let (chosen, lo, hi) = series_range(f, data, q.bucket);
        let starts = bucket_starts(chosen, lo, hi);
        if starts.len() > MAX_POINTS {
            return Err(QueryError(format!("too many points: {}", starts.len())).into());
        }
        let mut acc: BTreeMap<i64, (u64, i64)> = starts.iter().map(|s| (*s, (0, 0))).collect();
        for r in &rows {
            let Some(h) = r.hour.filter(|h| *h >= lo && *h < hi) else {
                continue;
            };
            let a = acc.entry(bucket_start(chosen, h)).or_default();
            a.0 += 1;
            a.1 += r.cents;
        }
        json(serde_json::to_value(Timeseries {
            bucket: chosen.name().into(),
            timezone: "UTC".into(),
            rows: acc
                .into_iter()
                .map(|(s, (orders, cents))| TimeRow {
                    start: format_hour(s),
                    orders,
                    revenue: money(cents),
                })
                .collect(),
        }))
    }

    /// `/api/orders`: the filtered rows by order id, one page (or all with `all=true`).
    fn orders(&self, q: &Query) -> Result<Value, RecomputeError> {
        let f = &q.filter;
        let mut rows = self.select(f);
        rows.sort_by_key(|r| r.order_id);
        // `all=true`: every filtered order (the export), as one page.
        let (skip, take) = if q.all {
            (0, rows.len())
        } else {
            ((q.page - 1) * q.page_size, q.page_size)
        };
        let page: Vec<OrderRow> = rows
            .iter()
            .skip(skip)
            .take(take)
            .map(|r| OrderRow {
                order_id: r.order_id,
                user_id: r.user_id,
                category: r.category.clone(),
                amount: money(r.cents),
                payment_method: r.payment.clone(),
                status: r.status.clone(),
                timestamp: r.timestamp.clone(),
            })
            .collect();
        json(serde_json::to_value(Orders {
            page: q.page,
            page_size: q.page_size,
            has_more: rows.len() > skip + take,
            rows: page,
        }))
    }

    /// Answers `/api/<endpoint>?<query>` as the API would (JSON value; for
    /// `format=csv` a JSON string holding the CSV text).
    pub fn answer(&self, path_and_query: &str) -> Result<Value, RecomputeError> {
        let (path, raw) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let name = path.trim_start_matches("/api/");
        let endpoint = Endpoint::from_name(name)
            .ok_or_else(|| RecomputeError::NoEndpoint(path.to_string()))?;
        let q = parse(endpoint, Some(raw))?;
        let v = self.value(&q)?;
        Ok(match q.format {
            Format::Json => v,
            Format::Csv => Value::String(to_csv(&v)),
        })
    }
}
