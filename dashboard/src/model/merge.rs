//! Merging a file's cube into the model, and rebuilding the derived indexes.

use std::cmp::Ordering;
use std::collections::HashMap;

use ecom_jobs::aggregates::{merge_sorted, Cube};

use super::cells::{Agg, CellRec, Combo, Derived, Ranked, RANKED_PREFIX};
use super::{Model, NO_HOUR};
use crate::time::hour_of_text;

/// The user-major index and what is learnt while building it.
struct UserMajor {
    /// `user_entries[user_start[u]..user_start[u + 1]]` are user `u`'s tallies.
    user_start: Vec<u32>,
    /// `(cell, orders, cents)` per user.
    user_entries: Vec<(u32, u32, i64)>,
    /// Each user's cents over every cell.
    total: Vec<i64>,
    /// Every tally is positive.
    positive: bool,
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
        let combos = self.combos();
        let UserMajor {
            user_start,
            user_entries,
            total,
            positive,
        } = self.user_major();
        let mut by_total: Vec<(i64, u32)> = total
            .iter()
            .enumerate()
            .map(|(u, &t)| (t, u as u32))
            .collect();
        by_total.sort_unstable_by(|a, b| self.rank(a, b));
        let by_value = self.ranked_by_value();
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

    /// `(cents, user)` pairs by cents desc, ties by user id.
    fn rank(&self, a: &(i64, u32), b: &(i64, u32)) -> Ordering {
        b.0.cmp(&a.0)
            .then_with(|| self.users[a.1 as usize].cmp(&self.users[b.1 as usize]))
    }

    /// Combinations: the cells of each, summed, amounts folded; `None` when
    /// a per-amount count would overflow.
    fn combos(&self) -> Option<Vec<Combo>> {
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
        combos
    }

    /// The user-major index: the cells' tallies counting-sorted by user.
    fn user_major(&self) -> UserMajor {
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
        UserMajor {
            user_start,
            user_entries,
            total,
            positive,
        }
    }

    /// Per dimension and value, the best [`RANKED_PREFIX`] users by their
    /// cents under that value.
    fn ranked_by_value(&self) -> [Vec<Ranked>; 3] {
        let users = self.users.len();
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
                    list.select_nth_unstable_by(RANKED_PREFIX - 1, |a, b| self.rank(a, b));
                    list.truncate(RANKED_PREFIX);
                }
                list.sort_unstable_by(|a, b| self.rank(a, b));
                list.shrink_to_fit();
                out.push(Ranked {
                    users: list,
                    complete,
                    orders: n,
                });
            }
        }
        by_value
    }
}
