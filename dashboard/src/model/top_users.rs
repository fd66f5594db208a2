//! `/api/top-users`: the best users by revenue under a filter, by a
//! threshold search over users ranked by a bound, or by a pass over the
//! user-major index or over the selected cells.

use super::Model;
use crate::panels::{money, UserRow};
use crate::query::Filter;

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

impl Model {
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
}
