//! The in-memory model the dashboard answers from: the per-file cubes of the
//! loader merged into one set of cells keyed by (hour, category, payment,
//! status). Every panel under any filter is a pass over the matching cells;
//! no request reads the fact table (except the drill-down's page of rows).

use std::collections::{BTreeMap, HashMap};

use ecom_jobs::aggregates::{merge_sorted, Cube};

use crate::panels::{
    bin_edges, bin_of, bucket_starts, money, quantile_rank, series_range, BinRow, CategoryRow,
    CategoryStatusRow, Figures, Kpis, PaymentRow, StatusRow, TimeRow, Timeseries, UserRow,
    MAX_POINTS,
};
use crate::query::{Bucket, Filter, QueryError};
use crate::time::{format_hour, hour_of_text};

/// Hour of cells whose timestamp has no valid hour (seed-compat data):
/// excluded by every time filter, left out of the time series.
pub const NO_HOUR: i64 = i64::MIN;

/// One merged cell.
#[derive(Debug, Clone, Default)]
struct CellRec {
    hour: i64,
    dims: [u16; 3],
    orders: u64,
    sum_cents: i64,
    sum_sq: u128,
    min: i64,
    max: i64,
    /// `(cents, orders)` sorted by cents.
    amounts: Vec<(i64, u32)>,
    /// `(user index, orders, cents)` sorted by user index.
    users: Vec<(u32, u32, i64)>,
}

/// Dictionary of one dimension's values.
#[derive(Debug, Clone, Default)]
struct Dict {
    values: Vec<String>,
    index: HashMap<String, u16>,
}

impl Dict {
    fn id(&mut self, v: &str) -> u16 {
        if let Some(i) = self.index.get(v) {
            return *i;
        }
        let i = self.values.len() as u16;
        self.values.push(v.to_string());
        self.index.insert(v.to_string(), i);
        i
    }
    fn mask(&self, wanted: &std::collections::BTreeSet<String>) -> Vec<bool> {
        self.values
            .iter()
            .map(|v| wanted.is_empty() || wanted.contains(v))
            .collect()
    }
}

/// Merged cells of every loaded file.
#[derive(Debug, Clone, Default)]
pub struct Model {
    dims: [Dict; 3],
    cells: Vec<CellRec>,
    cell_index: HashMap<(i64, [u16; 3]), u32>,
    users: Vec<u64>,
    user_index: HashMap<u64, u32>,
    /// `(order id, cell)` sorted by order id.
    orders: Vec<(u64, u32)>,
}

/// Memory the model holds, bytes (approximate: vector capacities).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct ModelSize {
    /// Cells.
    pub cells: usize,
    /// Distinct users.
    pub users: usize,
    /// Orders indexed for the drill-down.
    pub orders: usize,
    /// Approximate bytes.
    pub bytes: usize,
}

impl Model {
    /// Merges one file's cube.
    pub fn merge(&mut self, cube: &Cube) {
        let mut new_orders = Vec::new();
        for (key, cell) in &cube.cells {
            if cell.orders == 0 {
                continue;
            }
            let hour = hour_of_text(&key.hour).unwrap_or(NO_HOUR);
            let dims = [
                self.dims[0].id(&key.category),
                self.dims[1].id(&key.payment),
                self.dims[2].id(&key.status),
            ];
            let next = self.cells.len() as u32;
            let idx = *self.cell_index.entry((hour, dims)).or_insert(next);
            if idx == next {
                self.cells.push(CellRec {
                    hour,
                    dims,
                    min: cell.min_cents,
                    max: cell.max_cents,
                    ..Default::default()
                });
            }
            let mut users: Vec<(u32, u32, i64)> = cell
                .users
                .iter()
                .map(|u| {
                    let next = self.users.len() as u32;
                    let ui = *self.user_index.entry(u.user_id).or_insert(next);
                    if ui == next {
                        self.users.push(u.user_id);
                    }
                    (ui, u.orders as u32, u.revenue_cents)
                })
                .collect();
            users.sort_unstable_by_key(|u| u.0);
            let rec = &mut self.cells[idx as usize];
            if rec.orders > 0 {
                rec.min = rec.min.min(cell.min_cents);
                rec.max = rec.max.max(cell.max_cents);
            }
            rec.orders += cell.orders;
            rec.sum_cents += cell.sum_cents;
            rec.sum_sq += cell.sum_sq_cents;
            let amounts: Vec<(i64, u32)> =
                cell.amounts.iter().map(|&(c, n)| (c, n as u32)).collect();
            rec.amounts = merge_sorted(&rec.amounts, &amounts, |a| a.0, |a, b| (a.0, a.1 + b.1));
            rec.users = merge_sorted(
                &rec.users,
                &users,
                |u| u.0,
                |a, b| (a.0, a.1 + b.1, a.2 + b.2),
            );
            new_orders.extend(cell.order_ids.iter().map(|&id| (id, idx)));
        }
        new_orders.sort_unstable();
        if self.orders.is_empty() {
            self.orders = new_orders;
        } else {
            self.orders = merge_sorted(&self.orders, &new_orders, |o| o.0, |a, _| *a);
        }
    }

    /// What the model holds.
    pub fn size(&self) -> ModelSize {
        let cells: usize = self
            .cells
            .iter()
            .map(|c| {
                std::mem::size_of::<CellRec>()
                    + c.amounts.capacity() * std::mem::size_of::<(i64, u32)>()
                    + c.users.capacity() * std::mem::size_of::<(u32, u32, i64)>()
            })
            .sum();
        ModelSize {
            cells: self.cells.len(),
            users: self.users.len(),
            orders: self.orders.len(),
            bytes: cells
                + self.cell_index.capacity() * 40
                + self.users.capacity() * 8
                + self.user_index.capacity() * 16
                + self.orders.capacity() * 16,
        }
    }

    /// Orders in the model.
    pub fn orders(&self) -> u64 {
        self.orders.len() as u64
    }

    /// Indices of the cells passing `filter`.
    fn select(&self, filter: &Filter) -> Vec<u32> {
        let masks = [
            self.dims[0].mask(&filter.category),
            self.dims[1].mask(&filter.payment),
            self.dims[2].mask(&filter.status),
        ];
        let (from, to) = (filter.from, filter.to);
        self.cells
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                (from.is_none() && to.is_none()
                    || c.hour != NO_HOUR
                        && from.is_none_or(|f| c.hour >= f)
                        && to.is_none_or(|t| c.hour < t))
                    && masks[0][c.dims[0] as usize]
                    && masks[1][c.dims[1] as usize]
                    && masks[2][c.dims[2] as usize]
            })
            .map(|(i, _)| i as u32)
            .collect()
    }

    fn cells_of<'a>(&'a self, sel: &'a [u32]) -> impl Iterator<Item = &'a CellRec> + 'a {
        sel.iter().map(move |&i| &self.cells[i as usize])
    }

    /// Orders per exact amount (cents) of the selected cells, ascending.
    fn distribution(&self, sel: &[u32], min: i64, max: i64) -> Vec<(i64, u64)> {
        let span = (max - min) as usize + 1;
        if span <= 8 << 20 {
            let mut dense = vec![0u64; span];
            for c in self.cells_of(sel) {
                for &(cents, n) in &c.amounts {
                    dense[(cents - min) as usize] += u64::from(n);
                }
            }
            dense
                .into_iter()
                .enumerate()
                .filter(|(_, n)| *n > 0)
                .map(|(i, n)| (min + i as i64, n))
                .collect()
        } else {
            let mut all: BTreeMap<i64, u64> = BTreeMap::new();
            for c in self.cells_of(sel) {
                for &(cents, n) in &c.amounts {
                    *all.entry(cents).or_default() += u64::from(n);
                }
            }
            all.into_iter().collect()
        }
    }

    /// Key figures under `filter` (`dropped_rows` left empty).
    pub fn figures(&self, filter: &Filter) -> Figures {
        let sel = self.select(filter);
        let (mut n, mut sum, mut sq) = (0u64, 0i128, 0u128);
        let (mut min, mut max) = (i64::MAX, i64::MIN);
        for c in self.cells_of(&sel) {
            n += c.orders;
            sum += i128::from(c.sum_cents);
            sq += c.sum_sq;
            min = min.min(c.min);
            max = max.max(c.max);
        }
        if n == 0 {
            return Figures::default();
        }
        let dist = self.distribution(&sel, min, max);
        let quantile = |q: f64| {
            let rank = quantile_rank(q, n);
            let mut seen = 0u64;
            for &(cents, k) in &dist {
                seen += k;
                if seen > rank {
                    return Some(money(cents));
                }
            }
            None
        };
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
            median: quantile(0.5),
            min: Some(money(min)),
            max: Some(money(max)),
            std,
            p25: quantile(0.25),
            p75: quantile(0.75),
            p95: quantile(0.95),
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
        for c in self.cells_of(&self.select(filter)) {
            let a = &mut acc[c.dims[d] as usize];
            a.0 += c.orders;
            a.1 += c.sum_cents;
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
        let mut acc: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        for c in self.cells_of(&self.select(filter)) {
            *acc.entry((
                &self.dims[0].values[c.dims[0] as usize],
                &self.dims[2].values[c.dims[2] as usize],
            ))
            .or_default() += c.orders;
        }
        acc.into_iter()
            .map(|((category, status), orders)| CategoryStatusRow {
                category: category.to_string(),
                status: status.to_string(),
                orders,
            })
            .collect()
    }

    /// `/api/top-users`: by revenue desc, ties by user id asc.
    pub fn top_users(&self, filter: &Filter, limit: usize) -> Vec<UserRow> {
        let mut orders = vec![0u64; self.users.len()];
        let mut cents = vec![0i64; self.users.len()];
        for c in self.cells_of(&self.select(filter)) {
            for &(u, n, s) in &c.users {
                orders[u as usize] += u64::from(n);
                cents[u as usize] += s;
            }
        }
        let mut best: Vec<(i64, u64, u32)> = Vec::with_capacity(limit + 1);
        for (u, &n) in orders.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let cand = (cents[u], self.users[u], u as u32);
            let better =
                |a: &(i64, u64, u32), b: &(i64, u64, u32)| a.0 > b.0 || (a.0 == b.0 && a.1 < b.1);
            if best.len() < limit || best.last().is_some_and(|w| better(&cand, w)) {
                let pos = best.partition_point(|b| better(b, &cand));
                best.insert(pos, cand);
                best.truncate(limit);
            }
        }
        best.into_iter()
            .map(|(c, user_id, u)| UserRow {
                user_id,
                orders: orders[u as usize],
                revenue: money(c),
            })
            .collect()
    }

    /// `/api/histogram`: `bins` equal-width bins over the filtered [min, max].
    pub fn histogram(&self, filter: &Filter, bins: usize) -> Vec<BinRow> {
        let sel = self.select(filter);
        let (mut min, mut max) = (i64::MAX, i64::MIN);
        for c in self.cells_of(&sel) {
            min = min.min(c.min);
            max = max.max(c.max);
        }
        if min > max {
            return Vec::new();
        }
        let edges = bin_edges(min, max, bins);
        let mut counts = vec![0u64; bins];
        for (cents, n) in self.distribution(&sel, min, max) {
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
        let starts = bucket_starts(chosen, lo, hi);
        if starts.len() > MAX_POINTS {
            return Err(QueryError(format!(
                "parameter bucket: {} gives {} points over the range; at most {MAX_POINTS} (choose a coarser bucket or a shorter range)",
                chosen.name(),
                starts.len()
            )));
        }
        let mut acc = vec![(0u64, 0i64); starts.len()];
        for c in self.cells_of(&sel).filter(|c| c.hour != NO_HOUR) {
            if c.hour < lo || c.hour >= hi {
                continue;
            }
            let i = starts.partition_point(|s| *s <= c.hour) - 1;
            acc[i].0 += c.orders;
            acc[i].1 += c.sum_cents;
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

    /// Order ids of page `page` (1-based) under `filter`, by order id, and
    /// whether more follow. Walks the order index only as far as the page.
    pub fn order_page(&self, filter: &Filter, page: usize, size: usize) -> (Vec<u64>, bool) {
        let mut pass = vec![false; self.cells.len()];
        for i in self.select(filter) {
            pass[i as usize] = true;
        }
        let skip = (page - 1).saturating_mul(size);
        let mut ids = self
            .orders
            .iter()
            .filter(|(_, c)| pass[*c as usize])
            .skip(skip)
            .take(size + 1)
            .map(|(id, _)| *id);
        let page_ids: Vec<u64> = ids.by_ref().take(size).collect();
        let more = ids.next().is_some();
        (page_ids, more)
    }
}
