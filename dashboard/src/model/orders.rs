//! The drill-down's walk over the order index: which orders pass a filter,
//! page by page.

use super::Model;
use crate::query::Filter;

impl Model {
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
