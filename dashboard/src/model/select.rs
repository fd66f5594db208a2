//! The cells (or combinations over every hour) a filter selects.

use std::collections::BTreeMap;

use super::cells::{Agg, CellRec};
use super::{Model, NO_HOUR};
use crate::query::Filter;

impl Model {
    /// The masks of the three dimensions under `filter`.
    pub(super) fn masks(&self, filter: &Filter) -> [Vec<bool>; 3] {
        [
            self.dims[0].mask(&filter.category),
            self.dims[1].mask(&filter.payment),
            self.dims[2].mask(&filter.status),
        ]
    }

    /// A flag per cell: whether `sel` holds it.
    pub(super) fn cell_mask(&self, sel: &[u32]) -> Vec<bool> {
        let mut pass = vec![false; self.cells.len()];
        for &i in sel {
            pass[i as usize] = true;
        }
        pass
    }

    /// Indices of the cells passing `filter` (by hour when it has a time range).
    pub(super) fn select(&self, filter: &Filter) -> Vec<u32> {
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
    pub(super) fn parts(&self, filter: &Filter) -> Vec<([u16; 3], &Agg)> {
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

    /// The cells of `sel`.
    pub(super) fn cells_of<'a>(&'a self, sel: &'a [u32]) -> impl Iterator<Item = &'a CellRec> + 'a {
        sel.iter().map(move |&i| &self.cells[i as usize])
    }

    /// Orders per exact amount (cents) of the given sums, ascending. A dense
    /// array over `[min, max]` when the amounts fill it well enough, so its size
    /// follows the entries merged (at most four slots per entry, or 64 Ki), never
    /// the span of amounts alone.
    pub(super) fn distribution(parts: &[([u16; 3], &Agg)], min: i64, max: i64) -> Vec<(i64, u64)> {
        let span = usize::try_from(i128::from(max) - i128::from(min) + 1).unwrap_or(usize::MAX);
        let entries: usize = parts.iter().map(|(_, a)| a.amounts.len()).sum();
        if span <= entries.saturating_mul(4).max(1 << 16) {
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
}
