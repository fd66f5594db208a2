//! What the model stores: the summed cells, the dimension dictionaries and
//! the indexes derived from the cells after each merge.

use std::collections::HashMap;

/// Sums and amounts of a set of orders (a cell, or a combination of
/// dimension values over every hour).
#[derive(Debug, Clone, Default)]
pub(super) struct Agg {
    pub(super) orders: u64,
    pub(super) sum_cents: i64,
    pub(super) sum_sq: u128,
    pub(super) min: i64,
    pub(super) max: i64,
    /// `(cents, orders)` sorted by cents.
    pub(super) amounts: Vec<(i64, u32)>,
}

/// One merged cell.
#[derive(Debug, Clone, Default)]
pub(super) struct CellRec {
    pub(super) hour: i64,
    pub(super) dims: [u16; 3],
    pub(super) agg: Agg,
    /// `(user index, orders, cents)` sorted by user index.
    pub(super) users: Vec<(u32, u32, i64)>,
}

/// One (category, payment, status) over every hour: what a query without a
/// time range selects, so such queries merge at most a few hundred of these
/// instead of every hourly cell.
#[derive(Debug, Clone, Default)]
pub(super) struct Combo {
    pub(super) dims: [u16; 3],
    pub(super) agg: Agg,
}

/// Users kept per dimension value in [`Derived::by_value`].
pub(super) const RANKED_PREFIX: usize = 20_000;

/// Users ranked by their cents under one dimension value.
#[derive(Debug, Clone, Default)]
pub(super) struct Ranked {
    /// `(cents, user)`, best first.
    pub(super) users: Vec<(i64, u32)>,
    /// Every user with an order under the value is listed.
    pub(super) complete: bool,
    /// Orders under the value (picks the most selective list).
    pub(super) orders: u64,
}

/// Indexes derived from the cells after each merge (see [`super::Model::reindex`]).
#[derive(Debug, Clone, Default)]
pub(super) struct Derived {
    /// `(hour, cell)` sorted by hour: time ranges select a slice.
    pub(super) by_hour: Vec<(i64, u32)>,
    /// Every combination present, each summed over its cells; `None` when
    /// a per-amount count would overflow (then cells are merged instead).
    pub(super) combos: Option<Vec<Combo>>,
    /// Per user, its tallies `(cell, orders, cents)`:
    /// `user_entries[user_start[u]..user_start[u + 1]]`.
    pub(super) user_start: Vec<u32>,
    pub(super) user_entries: Vec<(u32, u32, i64)>,
    /// `(cents over every cell, user)` by cents desc, ties by user id.
    pub(super) by_total: Vec<(i64, u32)>,
    /// Per dimension and value: the best [`RANKED_PREFIX`] users by their
    /// cents under that value, ordered like `by_total`.
    pub(super) by_value: [Vec<Ranked>; 3],
    /// Every per-user tally is positive, so a user's total bounds its
    /// filtered revenue (the threshold search of top users relies on it).
    pub(super) positive: bool,
}

impl Derived {
    /// Approximate bytes held.
    pub(super) fn bytes(&self) -> usize {
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

/// Dictionary of one dimension's values.
#[derive(Debug, Clone, Default)]
pub(super) struct Dict {
    pub(super) values: Vec<String>,
    pub(super) index: HashMap<String, u16>,
}

impl Dict {
    /// The id of value `v`, added if new.
    pub(super) fn id(&mut self, v: &str) -> u16 {
        if let Some(i) = self.index.get(v) {
            return *i;
        }
        let i = self.values.len() as u16;
        self.values.push(v.to_string());
        self.index.insert(v.to_string(), i);
        i
    }

    /// A flag per value: whether `wanted` keeps it (all when empty).
    pub(super) fn mask(&self, wanted: &std::collections::BTreeSet<String>) -> Vec<bool> {
        self.values
            .iter()
            .map(|v| wanted.is_empty() || wanted.contains(v))
            .collect()
    }
}
