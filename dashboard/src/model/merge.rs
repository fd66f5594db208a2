//! Merging a file's cube into the model, and rebuilding the derived indexes.

use std::cmp::Ordering;
use std::collections::HashMap;

use ecom_jobs::aggregates::{merge_sorted, Cube, Overflow};

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

/// The largest magnitude in cents `orders` amounts between `min` and `max` can sum to.
fn magnitude(orders: u64, min: i64, max: i64) -> u128 {
    u128::from(orders) * u128::from(min.unsigned_abs().max(max.unsigned_abs()))
}

impl Model {
    /// Whether every sum stays representable once `cube` is merged: the orders of all
    /// cells fit a `u32` (the model's per-cell counts) and the magnitudes of all amounts
    /// add up to at most `i64::MAX` cents. Every sum the model makes, here, in its indexes
    /// and in answers (a cell, a combination, a user, a filter), adds a subset of those
    /// amounts, so none can overflow; squares stay under `i64::MAX^2 < u128::MAX`.
    fn check_merge(&self, cube: &Cube) -> Result<(), Overflow> {
        let existing = self
            .cells
            .iter()
            .map(|c| (c.agg.orders, magnitude(c.agg.orders, c.agg.min, c.agg.max)));
        let added = cube
            .cells
            .values()
            .map(|c| (c.orders, magnitude(c.orders, c.min_cents, c.max_cents)));
        let (mut orders, mut cents) = (0u64, 0u128);
        for (n, m) in existing.chain(added) {
            orders = orders.checked_add(n).ok_or(Overflow {
                sum: "orders of the dashboard",
            })?;
            cents = cents.checked_add(m).ok_or(Overflow {
                sum: "revenue of the dashboard",
            })?;
        }
        if orders > u64::from(u32::MAX) {
            return Err(Overflow {
                sum: "orders of the dashboard",
            });
        }
        if cents > i64::MAX as u128 {
            return Err(Overflow {
                sum: "revenue of the dashboard",
            });
        }
        Ok(())
    }

    /// Merges one file's cube; an [`Overflow`] (a sum of the merged model that could not be
    /// represented) leaves the model unchanged.
    pub fn merge(&mut self, cube: &Cube) -> Result<(), Overflow> {
        self.check_merge(cube)?;
        // Below, no sum or count can overflow: `check_merge` bounds them all.
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
        Ok(())
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

#[cfg(test)]
mod tests {
    use ecom_jobs::aggregates::CubeBuilder;

    use super::*;

    /// A file's cube of one row of `amount` (order `id`).
    fn cube(id: u64, amount: f64) -> Cube {
        let mut b = CubeBuilder::default();
        b.add(
            id,
            7,
            "Books",
            amount,
            "Cash",
            "Pending",
            "2024-01-01 10:00:00",
        )
        .expect("add");
        b.finish().expect("one row fits")
    }

    #[test]
    fn a_merge_whose_sums_cannot_be_represented_is_refused_and_changes_nothing() {
        let mut model = Model::default();
        model.merge(&cube(1, 5e16)).expect("5e18 cents fit");
        model.merge(&cube(2, 12.5)).expect("small rows fit");
        let before = (
            model.orders(),
            model.cells.len(),
            model.cells[0].agg.sum_cents,
        );
        // Each file's cube is fine; together they pass i64::MAX cents.
        let err = model.merge(&cube(3, 5e16)).expect_err("overflow");
        assert_eq!(err.sum, "revenue of the dashboard");
        assert_eq!(
            (
                model.orders(),
                model.cells.len(),
                model.cells[0].agg.sum_cents
            ),
            before
        );
        // Negative amounts count by their magnitude.
        let mut model = Model::default();
        model.merge(&cube(1, -5e16)).expect("fits");
        assert!(model.merge(&cube(2, 5e16)).is_err());
        // Up to the bound, sums are exact.
        let mut model = Model::default();
        model.merge(&cube(1, 4.6e16)).expect("fits");
        model.merge(&cube(2, 4.6e16)).expect("9.2e18 cents fit");
        assert_eq!(model.cells[0].agg.sum_cents, 9_200_000_000_000_000_000);
    }
}
