//! The panels' answers computed from the selected sums: key figures, the
//! breakdowns by dimension, the histogram and the time series.

use super::{Model, NO_HOUR};
use crate::panels::{
    bin_edges, bin_of, bucket_starts, money, quantile_rank, series_range, BinRow, CategoryRow,
    CategoryStatusRow, Figures, Kpis, PaymentRow, StatusRow, TimeRow, Timeseries, MAX_POINTS,
};
use crate::query::{Bucket, Filter, QueryError};
use crate::time::{bucket_count, format_hour};

impl Model {
    /// Key figures under `filter` (`dropped_rows` left empty).
    pub fn figures(&self, filter: &Filter) -> Figures {
        let parts = self.parts(filter);
        let (mut n, mut sum, mut sq) = (0u64, 0i128, 0u128);
        let (mut min, mut max) = (i64::MAX, i64::MIN);
        for (_, a) in &parts {
            n += a.orders;
            sum += i128::from(a.sum_cents);
            sq += a.sum_sq;
            min = min.min(a.min);
            max = max.max(a.max);
        }
        if n == 0 {
            return Figures::default();
        }
        let dist = Self::distribution(&parts, min, max);
        // One pass over the distribution for the four ranks, ascending.
        let qs = [0.25, 0.5, 0.75, 0.95];
        let mut found = [None; 4];
        let mut seen = 0u64;
        let mut next = 0;
        for &(cents, k) in &dist {
            seen += k;
            while next < qs.len() && seen > quantile_rank(qs[next], n) {
                found[next] = Some(money(cents));
                next += 1;
            }
            if next == qs.len() {
                break;
            }
        }
        let std = (n >= 2).then(|| {
            // Exact integer numerator: n * sum(x^2) - (sum x)^2, in cents^2.
            let num = (n as i128) * (sq as i128) - sum * sum;
            let var = num as f64 / (n as f64 * (n - 1) as f64);
            var.max(0.0).sqrt() / 100.0
        });
        Figures {
            orders: n,
            revenue: sum as f64 / 100.0,
            mean: Some(sum as f64 / 100.0 / n as f64),
            median: found[1],
            min: Some(money(min)),
            max: Some(money(max)),
            std,
            p25: found[0],
            p75: found[2],
            p95: found[3],
            dropped_rows: None,
        }
    }

    /// `/api/kpis` without `dropped_rows`.
    pub fn kpis(&self, filter: &Filter, dropped: u64) -> Kpis {
        let mut current = self.figures(filter);
        current.dropped_rows = Some(dropped);
        Kpis::new(current, filter.previous().map(|p| self.figures(&p)))
    }

    /// Orders and cents per value of dimension `d`.
    fn by_dim(&self, filter: &Filter, d: usize) -> Vec<(String, u64, i64)> {
        let mut acc = vec![(0u64, 0i64); self.dims[d].values.len()];
        for (dims, a) in self.parts(filter) {
            let t = &mut acc[dims[d] as usize];
            t.0 += a.orders;
            t.1 += a.sum_cents;
        }
        let mut out: Vec<(String, u64, i64)> = acc
            .into_iter()
            .enumerate()
            .filter(|(_, a)| a.0 > 0)
            .map(|(i, a)| (self.dims[d].values[i].clone(), a.0, a.1))
            .collect();
        out.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
        out
    }

    /// `/api/categories`: by revenue desc, ties by name.
    pub fn categories(&self, filter: &Filter) -> Vec<CategoryRow> {
        self.by_dim(filter, 0)
            .into_iter()
            .map(|(category, orders, cents)| CategoryRow {
                category,
                orders,
                revenue: money(cents),
                average: cents as f64 / 100.0 / orders as f64,
            })
            .collect()
    }

    /// `/api/payments`: by revenue desc, ties by name.
    pub fn payments(&self, filter: &Filter) -> Vec<PaymentRow> {
        self.by_dim(filter, 1)
            .into_iter()
            .map(|(payment_method, orders, cents)| PaymentRow {
                payment_method,
                orders,
                revenue: money(cents),
            })
            .collect()
    }

    /// `/api/status`: by orders desc, ties by name.
    pub fn status(&self, filter: &Filter) -> Vec<StatusRow> {
        let mut rows: Vec<StatusRow> = self
            .by_dim(filter, 2)
            .into_iter()
            .map(|(status, orders, cents)| StatusRow {
                status,
                orders,
                revenue: money(cents),
            })
            .collect();
        rows.sort_by(|a, b| {
            b.orders
                .cmp(&a.orders)
                .then_with(|| a.status.cmp(&b.status))
        });
        rows
    }

    /// `/api/category-status`: by category, then status.
    pub fn category_status(&self, filter: &Filter) -> Vec<CategoryStatusRow> {
        let statuses = self.dims[2].values.len();
        let mut acc = vec![0u64; self.dims[0].values.len() * statuses];
        for (dims, a) in self.parts(filter) {
            acc[dims[0] as usize * statuses + dims[2] as usize] += a.orders;
        }
        let mut rows: Vec<CategoryStatusRow> = acc
            .into_iter()
            .enumerate()
            .filter(|(_, n)| *n > 0)
            .map(|(i, orders)| CategoryStatusRow {
                category: self.dims[0].values[i / statuses].clone(),
                status: self.dims[2].values[i % statuses].clone(),
                orders,
            })
            .collect();
        rows.sort_by(|a, b| (&a.category, &a.status).cmp(&(&b.category, &b.status)));
        rows
    }

    /// `/api/histogram`: `bins` equal-width bins over the filtered [min, max].
    pub fn histogram(&self, filter: &Filter, bins: usize) -> Vec<BinRow> {
        let parts = self.parts(filter);
        let (mut min, mut max) = (i64::MAX, i64::MIN);
        for (_, a) in &parts {
            min = min.min(a.min);
            max = max.max(a.max);
        }
        if min > max {
            return Vec::new();
        }
        let edges = bin_edges(min, max, bins);
        let mut counts = vec![0u64; bins];
        for (cents, n) in Self::distribution(&parts, min, max) {
            counts[bin_of(&edges, cents)] += n;
        }
        counts
            .into_iter()
            .enumerate()
            .map(|(i, orders)| BinRow {
                lo: money(edges[i]),
                hi: money(edges[i + 1]),
                orders,
            })
            .collect()
    }

    /// `/api/timeseries`.
    pub fn timeseries(&self, filter: &Filter, bucket: Bucket) -> Result<Timeseries, QueryError> {
        let sel = self.select(filter);
        let mut data: Option<(i64, i64)> = None;
        for c in self.cells_of(&sel).filter(|c| c.hour != NO_HOUR) {
            data = Some(data.map_or((c.hour, c.hour), |(a, b)| (a.min(c.hour), b.max(c.hour))));
        }
        let (chosen, lo, hi) = series_range(filter, data, bucket);
        // Counted, not built: a range of millennia by the hour is refused before any allocation.
        let points = bucket_count(chosen, lo, hi);
        if points > MAX_POINTS {
            return Err(QueryError(format!(
                "parameter bucket: {} gives {points} points over {} to {}; at most {MAX_POINTS} (choose a coarser bucket or a shorter range)",
                chosen.name(),
                format_hour(lo),
                format_hour(hi)
            )));
        }
        let starts = bucket_starts(chosen, lo, hi);
        let mut acc = vec![(0u64, 0i64); starts.len()];
        for c in self.cells_of(&sel).filter(|c| c.hour != NO_HOUR) {
            if c.hour < lo || c.hour >= hi {
                continue;
            }
            let i = starts.partition_point(|s| *s <= c.hour) - 1;
            acc[i].0 += c.agg.orders;
            acc[i].1 += c.agg.sum_cents;
        }
        Ok(Timeseries {
            bucket: chosen.name().to_string(),
            timezone: "UTC".into(),
            rows: starts
                .iter()
                .zip(acc)
                .map(|(s, (orders, cents))| TimeRow {
                    start: format_hour(*s),
                    orders,
                    revenue: money(cents),
                })
                .collect(),
        })
    }
}
