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

/// Sums and amounts of a set of orders (a cell, or a combination of
/// dimension values over every hour).
#[derive(Debug, Clone, Default)]
struct Agg {
    orders: u64,
    sum_cents: i64,
    sum_sq: u128,
    min: i64,
    max: i64,
    /// `(cents, orders)` sorted by cents.
    amounts: Vec<(i64, u32)>,
}

/// One merged cell.
#[derive(Debug, Clone, Default)]
struct CellRec {
    hour: i64,
    dims: [u16; 3],
    agg: Agg,
    /// `(user index, orders, cents)` sorted by user index.
    users: Vec<(u32, u32, i64)>,
}

/// One (category, payment, status) over every hour: what a query without a
/// time range selects, so such queries merge at most a few hundred of these
/// instead of every hourly cell.
#[derive(Debug, Clone, Default)]
struct Combo {
    dims: [u16; 3],
    agg: Agg,
}

impl Derived {
    /// Approximate bytes held.
    fn bytes(&self) -> usize {
        let combos: usize = self.combos.as_ref().map_or(0, |v| {
            v.iter()
                .map(|c| std::mem::size_of::<Combo>() + c.agg.amounts.capacity() * 12)
                .sum()
        });
        combos
            + self.by_hour.capacity() * 16
            + self.user_start.capacity() * 4
            + self.user_entries.capacity() * std::mem::size_of::<(u32, u32, i64)>()
            + self.by_total.capacity() * 16
            + self
                .by_value
                .iter()
                .flatten()
                .map(|r| r.users.capacity() * 16)
                .sum::<usize>()
    }
}

/// Users kept per dimension value in [`Derived::by_value`].
const RANKED_PREFIX: usize = 20_000;

/// Users ranked by their cents under one dimension value.
#[derive(Debug, Clone, Default)]
struct Ranked {
    /// `(cents, user)`, best first.
    users: Vec<(i64, u32)>,
    /// Every user with an order under the value is listed.
    complete: bool,
    /// Orders under the value (picks the most selective list).
    orders: u64,
}

/// Indexes derived from the cells after each merge (see [`Model::reindex`]).
#[derive(Debug, Clone, Default)]
struct Derived {
    /// `(hour, cell)` sorted by hour: time ranges select a slice.
    by_hour: Vec<(i64, u32)>,
    /// Every combination present, each summed over its cells; `None` when
    /// a per-amount count would overflow (then cells are merged instead).
    combos: Option<Vec<Combo>>,
    /// Per user, its tallies `(cell, orders, cents)`:
    /// `user_entries[user_start[u]..user_start[u + 1]]`.
    user_start: Vec<u32>,
    user_entries: Vec<(u32, u32, i64)>,
    /// `(cents over every cell, user)` by cents desc, ties by user id.
    by_total: Vec<(i64, u32)>,
    /// Per dimension and value: the best [`RANKED_PREFIX`] users by their
    /// cents under that value, ordered like `by_total`.
    by_value: [Vec<Ranked>; 3],
    /// Every per-user tally is positive, so a user's total bounds its
    /// filtered revenue (the threshold search of top users relies on it).
    positive: bool,
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
    derived: Derived,
}

/// A user's figures while searching the top users: `(cents, user id, orders)`.
type Cand = (i64, u64, u64);

/// Top-users candidates as answer rows.
fn user_rows(best: Vec<Cand>) -> Vec<UserRow> {
    best.into_iter()
        .map(|(cents, user_id, orders)| UserRow {
            user_id,
            orders,
            revenue: money(cents),
        })
        .collect()
}

fn better(a: &Cand, b: &Cand) -> bool {
    a.0 > b.0 || (a.0 == b.0 && a.1 < b.1)
}

/// Keeps the `limit` best candidates, best first.
fn offer(best: &mut Vec<Cand>, limit: usize, cand: Cand) {
    if best.len() < limit || best.last().is_some_and(|w| better(&cand, w)) {
        let pos = best.partition_point(|b| better(b, &cand));
        best.insert(pos, cand);
        best.truncate(limit);
    }
}

/// Per-user scratch of the cell-major pass of top users, kept per thread
/// (zeroed again after each use: only touched entries are reset).
#[derive(Default)]
struct Scratch {
    orders: Vec<u64>,
    cents: Vec<i64>,
    touched: Vec<u32>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
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
                    agg: Agg {
                        min: cell.min_cents,
                        max: cell.max_cents,
                        ..Default::default()
                    },
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
            let agg = &mut rec.agg;
            if agg.orders > 0 {
                agg.min = agg.min.min(cell.min_cents);
                agg.max = agg.max.max(cell.max_cents);
            }
            agg.orders += cell.orders;
            agg.sum_cents += cell.sum_cents;
            agg.sum_sq += cell.sum_sq_cents;
            let amounts: Vec<(i64, u32)> =
                cell.amounts.iter().map(|&(c, n)| (c, n as u32)).collect();
            agg.amounts = merge_sorted(&agg.amounts, &amounts, |a| a.0, |a, b| (a.0, a.1 + b.1));
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
        self.reindex();
    }

    /// Rebuilds the derived indexes from the cells: the hour order, the
    /// combinations over every hour, the user-major index and the users by
    /// total revenue. Linear in the cells' entries (plus sorts of the
    /// combinations' amounts and of the users).
    fn reindex(&mut self) {
        let mut by_hour: Vec<(i64, u32)> = self
            .cells
            .iter()
            .enumerate()
            .map(|(i, c)| (c.hour, i as u32))
            .collect();
        by_hour.sort_unstable();

        // Combinations: the cells of each, summed, amounts folded.
        let mut combo_of: HashMap<[u16; 3], usize> = HashMap::new();
        let mut members: Vec<Vec<u32>> = Vec::new();
        for (i, c) in self.cells.iter().enumerate() {
            let next = members.len();
            let k = *combo_of.entry(c.dims).or_insert(next);
            if k == next {
                members.push(Vec::new());
            }
            members[k].push(i as u32);
        }
        let mut combos = Some(Vec::with_capacity(members.len()));
        for cells in &members {
            let mut agg = Agg {
                min: i64::MAX,
                max: i64::MIN,
                ..Default::default()
            };
            let mut all: Vec<(i64, u32)> = Vec::new();
            for &i in cells {
                let a = &self.cells[i as usize].agg;
                agg.orders += a.orders;
                agg.sum_cents += a.sum_cents;
                agg.sum_sq += a.sum_sq;
                agg.min = agg.min.min(a.min);
                agg.max = agg.max.max(a.max);
                all.extend_from_slice(&a.amounts);
            }
            all.sort_unstable_by_key(|a| a.0);
            let mut folded: Vec<(i64, u32)> = Vec::with_capacity(all.len());
            let mut overflow = false;
            for (cents, n) in all {
                match folded.last_mut() {
                    Some(last) if last.0 == cents => match last.1.checked_add(n) {
                        Some(sum) => last.1 = sum,
                        None => overflow = true,
                    },
                    _ => folded.push((cents, n)),
                }
            }
            agg.amounts = folded;
            let dims = self.cells[cells[0] as usize].dims;
            match (&mut combos, overflow) {
                (Some(v), false) => v.push(Combo { dims, agg }),
                _ => combos = None,
            }
        }

        // Users: the cells of each (counting sort), totals, order by total.
        let users = self.users.len();
        let mut count = vec![0u32; users + 1];
        let mut total = vec![0i64; users];
        let mut positive = true;
        for c in &self.cells {
            for &(u, _, cents) in &c.users {
                count[u as usize + 1] += 1;
                total[u as usize] += cents;
                positive &= cents > 0;
            }
        }
        for u in 0..users {
            count[u + 1] += count[u];
        }
        let user_start = count.clone();
        let mut fill = count;
        let mut user_entries = vec![(0u32, 0u32, 0i64); user_start[users] as usize];
        for (i, c) in self.cells.iter().enumerate() {
            for &(u, n, cents) in &c.users {
                let at = &mut fill[u as usize];
                user_entries[*at as usize] = (i as u32, n, cents);
                *at += 1;
            }
        }
        let ids = &self.users;
        let rank = |a: &(i64, u32), b: &(i64, u32)| {
            b.0.cmp(&a.0)
                .then_with(|| ids[a.1 as usize].cmp(&ids[b.1 as usize]))
        };
        let mut by_total: Vec<(i64, u32)> = total
            .iter()
            .enumerate()
            .map(|(u, &t)| (t, u as u32))
            .collect();
        by_total.sort_unstable_by(rank);
        // Per dimension (one at a time: users x values of it), each value's
        // best users.
        let mut by_value: [Vec<Ranked>; 3] = Default::default();
        for (d, out) in by_value.iter_mut().enumerate() {
            let values = self.dims[d].values.len();
            let mut acc = vec![0i64; users * values];
            let mut orders = vec![0u64; values];
            for c in &self.cells {
                let v = c.dims[d] as usize;
                orders[v] += c.agg.orders;
                for &(u, _, cents) in &c.users {
                    acc[u as usize * values + v] += cents;
                }
            }
            for (v, &n) in orders.iter().enumerate() {
                let mut list: Vec<(i64, u32)> = (0..users)
                    .filter_map(|u| {
                        let cents = acc[u * values + v];
                        (cents != 0).then_some((cents, u as u32))
                    })
                    .collect();
                let complete = list.len() <= RANKED_PREFIX;
                if !complete {
                    list.select_nth_unstable_by(RANKED_PREFIX - 1, rank);
                    list.truncate(RANKED_PREFIX);
                }
                list.sort_unstable_by(rank);
                list.shrink_to_fit();
                out.push(Ranked {
                    users: list,
                    complete,
                    orders: n,
                });
            }
        }
        self.derived = Derived {
            by_hour,
            combos,
            user_start,
            user_entries,
            by_total,
            by_value,
            positive,
        };
    }

    /// What the model holds.
    pub fn size(&self) -> ModelSize {
        let cells: usize = self
            .cells
            .iter()
            .map(|c| {
                std::mem::size_of::<CellRec>()
                    + c.agg.amounts.capacity() * std::mem::size_of::<(i64, u32)>()
                    + c.users.capacity() * std::mem::size_of::<(u32, u32, i64)>()
            })
            .sum();
        ModelSize {
            cells: self.cells.len(),
            users: self.users.len(),
            orders: self.orders.len(),
            bytes: cells
                + self.derived.bytes()
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

    /// The masks of the three dimensions under `filter`.
    fn masks(&self, filter: &Filter) -> [Vec<bool>; 3] {
        [
            self.dims[0].mask(&filter.category),
            self.dims[1].mask(&filter.payment),
            self.dims[2].mask(&filter.status),
        ]
    }

    /// A flag per cell: whether `sel` holds it.
    fn cell_mask(&self, sel: &[u32]) -> Vec<bool> {
        let mut pass = vec![false; self.cells.len()];
        for &i in sel {
            pass[i as usize] = true;
        }
        pass
    }

    /// Indices of the cells passing `filter` (by hour when it has a time range).
    fn select(&self, filter: &Filter) -> Vec<u32> {
        let masks = self.masks(filter);
        let admit = |c: &CellRec| {
            masks[0][c.dims[0] as usize]
                && masks[1][c.dims[1] as usize]
                && masks[2][c.dims[2] as usize]
        };
        if filter.from.is_none() && filter.to.is_none() {
            return self
                .cells
                .iter()
                .enumerate()
                .filter(|(_, c)| admit(c))
                .map(|(i, _)| i as u32)
                .collect();
        }
        // Cells without an hour sort first and fail every time filter.
        let h = &self.derived.by_hour;
        let lo = match filter.from {
            Some(f) => h.partition_point(|x| x.0 < f),
            None => h.partition_point(|x| x.0 == NO_HOUR),
        };
        let hi = filter
            .to
            .map_or(h.len(), |t| h.partition_point(|x| x.0 < t));
        h[lo..hi.max(lo)]
            .iter()
            .filter(|(_, i)| admit(&self.cells[*i as usize]))
            .map(|(_, i)| *i)
            .collect()
    }

    /// The sums to merge for `filter` with the dimension values of each: the
    /// combinations over every hour when the filter has no time range (and
    /// they exist), otherwise the matching cells.
    fn parts(&self, filter: &Filter) -> Vec<([u16; 3], &Agg)> {
        if filter.from.is_none() && filter.to.is_none() {
            if let Some(combos) = &self.derived.combos {
                let masks = self.masks(filter);
                return combos
                    .iter()
                    .filter(|c| (0..3).all(|d| masks[d][c.dims[d] as usize]))
                    .map(|c| (c.dims, &c.agg))
                    .collect();
            }
        }
        self.select(filter)
            .into_iter()
            .map(|i| {
                let c = &self.cells[i as usize];
                (c.dims, &c.agg)
            })
            .collect()
    }

    fn cells_of<'a>(&'a self, sel: &'a [u32]) -> impl Iterator<Item = &'a CellRec> + 'a {
        sel.iter().map(move |&i| &self.cells[i as usize])
    }

    /// Orders per exact amount (cents) of the given sums, ascending.
    fn distribution(parts: &[([u16; 3], &Agg)], min: i64, max: i64) -> Vec<(i64, u64)> {
        let span = (max - min) as usize + 1;
        if span <= 8 << 20 {
            let mut dense = vec![0u64; span];
            for (_, a) in parts {
                for &(cents, n) in &a.amounts {
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
            for (_, a) in parts {
                for &(cents, n) in &a.amounts {
                    *all.entry(cents).or_default() += u64::from(n);
                }
            }
            all.into_iter().collect()
        }
    }

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

    /// `/api/top-users`: by revenue desc, ties by user id asc.
    ///
    /// With positive tallies (checked when indexing) a user's filtered
    /// revenue is at most its revenue under any one value the filter keeps,
    /// and at most its total: users are visited in the order of such a
    /// bound (the list of the most selective single value of the filter, or
    /// by total), and the search stops at the first whose bound is below the
    /// `limit`-th best filtered revenue found, so a broad filter ends after a
    /// few users. When the list runs out, or the search has cost an eighth of
    /// a pass over the selected cells, the cell-major pass answers instead.
    pub fn top_users(&self, filter: &Filter, limit: usize) -> Vec<UserRow> {
        let sel = self.select(filter);
        let entries: usize = self.cells_of(&sel).map(|c| c.users.len()).sum();
        let found = if self.derived.positive {
            let pass = self.cell_mask(&sel);
            let sets = [&filter.category, &filter.payment, &filter.status];
            let single = (0..3)
                .filter_map(|d| {
                    let set = sets[d];
                    if set.len() != 1 {
                        return None;
                    }
                    let v = set.iter().next().and_then(|v| self.dims[d].index.get(v))?;
                    self.derived.by_value[d].get(*v as usize)
                })
                .min_by_key(|r| r.orders);
            match single {
                Some(r) => self.top_users_ranked(&r.users, r.complete, &pass, limit, entries / 8),
                None => {
                    self.top_users_ranked(&self.derived.by_total, true, &pass, limit, entries / 8)
                }
            }
        } else {
            None
        };
        let best = match found {
            Some(best) => best,
            // A large selection: one sequential pass over every user's
            // tallies beats scattering the selected ones over all users.
            None if entries > self.derived.user_entries.len() / 8 => {
                let pass = self.cell_mask(&sel);
                self.top_users_by_users(&pass, limit)
            }
            None => self.top_users_by_cells(&sel, limit),
        };
        user_rows(best)
    }

    /// Top users by each method: the threshold search (by total, without
    /// budget; empty when tallies are not all positive), the user-major pass
    /// and the cell-major pass. Tests check that they agree.
    #[doc(hidden)]
    pub fn top_users_each_method(&self, filter: &Filter, limit: usize) -> Vec<Vec<UserRow>> {
        let sel = self.select(filter);
        let pass = self.cell_mask(&sel);
        let threshold = if self.derived.positive {
            self.top_users_ranked(&self.derived.by_total, true, &pass, limit, usize::MAX)
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        [
            threshold,
            self.top_users_by_users(&pass, limit),
            self.top_users_by_cells(&sel, limit),
        ]
        .into_iter()
        .map(user_rows)
        .collect()
    }

    /// Threshold search over `ranked` (`(bound, user)`, bound desc, every
    /// user with an order under the filter listed when `complete`); `None`
    /// when it could not conclude within `budget` visited (user, cell) entries.
    fn top_users_ranked(
        &self,
        ranked: &[(i64, u32)],
        complete: bool,
        pass: &[bool],
        limit: usize,
        budget: usize,
    ) -> Option<Vec<Cand>> {
        let d = &self.derived;
        let mut best: Vec<Cand> = Vec::with_capacity(limit + 1);
        let mut work = 0usize;
        for &(bound, u) in ranked {
            if best.len() == limit && best.last().is_some_and(|w| bound < w.0) {
                return Some(best);
            }
            let entries = &d.user_entries
                [d.user_start[u as usize] as usize..d.user_start[u as usize + 1] as usize];
            work += entries.len();
            if work > budget {
                return None;
            }
            let (mut n, mut cents) = (0u64, 0i64);
            for &(c, k, x) in entries {
                if pass[c as usize] {
                    n += u64::from(k);
                    cents += x;
                }
            }
            if n > 0 {
                offer(&mut best, limit, (cents, self.users[u as usize], n));
            }
        }
        complete.then_some(best)
    }

    /// Every user's tallies in the passing cells summed (one sequential pass
    /// over the user-major index), then the best `limit`.
    fn top_users_by_users(&self, pass: &[bool], limit: usize) -> Vec<Cand> {
        let d = &self.derived;
        let mut best: Vec<Cand> = Vec::with_capacity(limit + 1);
        for (u, w) in d.user_start.windows(2).enumerate() {
            let (mut n, mut cents) = (0u64, 0i64);
            for &(c, k, x) in &d.user_entries[w[0] as usize..w[1] as usize] {
                if pass[c as usize] {
                    n += u64::from(k);
                    cents += x;
                }
            }
            if n > 0 {
                offer(&mut best, limit, (cents, self.users[u], n));
            }
        }
        best
    }

    /// Per-user tallies of the selected cells summed per user (per-thread
    /// scratch arrays, only the touched users reset), then the best `limit`.
    fn top_users_by_cells(&self, sel: &[u32], limit: usize) -> Vec<Cand> {
        SCRATCH.with(|cell| {
            let mut guard = cell.borrow_mut();
            let s = &mut *guard;
            if s.orders.len() < self.users.len() {
                s.orders.resize(self.users.len(), 0);
                s.cents.resize(self.users.len(), 0);
            }
            s.touched.clear();
            for c in self.cells_of(sel) {
                for &(u, n, cents) in &c.users {
                    let i = u as usize;
                    if s.orders[i] == 0 {
                        s.touched.push(u);
                    }
                    s.orders[i] += u64::from(n);
                    s.cents[i] += cents;
                }
            }
            let mut best: Vec<Cand> = Vec::with_capacity(limit + 1);
            for &u in &s.touched {
                let i = u as usize;
                offer(&mut best, limit, (s.cents[i], self.users[i], s.orders[i]));
            }
            for &u in &s.touched {
                s.orders[u as usize] = 0;
                s.cents[u as usize] = 0;
            }
            best
        })
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

    /// Which cells pass `filter`, indexed by cell (valid for this model only).
    pub fn pass_mask(&self, filter: &Filter) -> Vec<bool> {
        self.cell_mask(&self.select(filter))
    }

    /// The next order ids after `after` (all when `None`) whose cell passes
    /// `pass` (see [`Model::pass_mask`]), by order id: at most `max` ids,
    /// walking at most `max_walk` index entries. Returns the ids, the id to
    /// continue after (`None`: the index is exhausted).
    pub fn order_ids_after(
        &self,
        after: Option<u64>,
        pass: &[bool],
        max: usize,
        max_walk: usize,
    ) -> (Vec<u64>, Option<u64>) {
        let start = after.map_or(0, |a| self.orders.partition_point(|o| o.0 <= a));
        let mut ids = Vec::with_capacity(max.min(4096));
        let mut last = None;
        for &(id, cell) in self.orders[start..].iter().take(max_walk) {
            last = Some(id);
            if pass.get(cell as usize).copied().unwrap_or(false) {
                ids.push(id);
                if ids.len() == max {
                    break;
                }
            }
        }
        let exhausted = match last {
            None => true,
            Some(l) => self.orders.last().is_some_and(|o| o.0 == l),
        };
        (ids, if exhausted { None } else { last })
    }

    /// Order ids of page `page` (1-based) under `filter`, by order id, and
    /// whether more follow. Walks the order index only as far as the page.
    pub fn order_page(&self, filter: &Filter, page: usize, size: usize) -> (Vec<u64>, bool) {
        let pass = self.pass_mask(filter);
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
