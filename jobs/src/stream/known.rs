//! Which order ids of a micro-batch earlier runs kept, at a cost per batch that does not
//! grow with the number of earlier runs.
//!
//! The ids the runs of this process kept are held in memory, exactly, up to a budget; older
//! runs (those committed before the process started, and runs evicted from memory) are known
//! only by the union of their id ranges. An id in memory is a duplicate; an id outside every
//! older range is new; only an id inside an older range and not in memory is looked up in the
//! fact table. Order ids that grow over time (as generated ones and most shops' do) fall after
//! every range, held or older, so a batch costs a comparison or two per row whatever came
//! before; ids in no order cost a hash lookup, and the table lookup for older ones, whose cost
//! per id does not grow with the history either.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use polars::prelude::StringChunked;

use crate::incremental::{IdRange, IncrementalError, KnownIds, RunManifest};
use crate::load::row_key;
use crate::store::Table;

/// Disjoint, sorted, closed intervals of ids (text order).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Intervals(Vec<(String, String)>);

impl Intervals {
    /// Adds `[lo, hi]`, merging what overlaps it.
    pub fn add(&mut self, lo: &str, hi: &str) {
        let mut lo = lo.to_string();
        let mut hi = hi.to_string();
        let mut kept = Vec::with_capacity(self.0.len() + 1);
        for (a, b) in self.0.drain(..) {
            if b < lo || a > hi {
                kept.push((a, b));
            } else {
                lo = lo.min(a);
                hi = hi.max(b);
            }
        }
        let at = kept.partition_point(|(a, _)| *a < lo);
        kept.insert(at, (lo, hi));
        self.0 = kept;
    }

    /// Whether `id` lies in an interval.
    pub fn contains(&self, id: &str) -> bool {
        let i = self.0.partition_point(|(a, _)| a.as_str() <= id);
        i > 0 && id <= self.0[i - 1].1.as_str()
    }

    /// The intervals.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Ids this process's runs kept, in memory, and what older runs cover.
pub struct StreamIds {
    /// The fact table, for ids inside an older range.
    table: Arc<dyn Table>,
    salt_buckets: u32,
    /// The ids of the runs held in memory, newest last, with their ranges.
    runs: VecDeque<(Option<IdRange>, Vec<Box<str>>)>,
    held: HashSet<Box<str>>,
    /// The union of the held runs' ranges: an id outside it needs no hash lookup (ids that
    /// grow over time are all after it), so the check stays as cheap with a full memory as
    /// with an empty one.
    held_ranges: Intervals,
    /// Ids held in memory at most (older runs are evicted into `older`).
    budget: usize,
    /// Where the ids of runs not in memory lie; everything when a run's range is unknown.
    older: Intervals,
    everything_older: bool,
    /// Ids the last batch looked up in the table.
    pub looked_up: usize,
    /// How long the last batch's check took.
    pub took: Duration,
}

impl StreamIds {
    /// Knows `committed` (runs before this process) by their ranges; holds up to `budget`
    /// ids of later runs in memory.
    pub fn new(
        table: Arc<dyn Table>,
        salt_buckets: u32,
        committed: &[RunManifest],
        budget: usize,
    ) -> StreamIds {
        let mut ids = StreamIds {
            table,
            salt_buckets,
            runs: VecDeque::new(),
            held: HashSet::new(),
            held_ranges: Intervals::default(),
            budget,
            older: Intervals::default(),
            everything_older: false,
            looked_up: 0,
            took: Duration::ZERO,
        };
        for run in committed {
            ids.cover(run.order_ids.as_ref(), run.rows_out);
        }
        ids
    }

    /// Marks a run's range as older (not in memory).
    fn cover(&mut self, range: Option<&IdRange>, rows: u64) {
        match range {
            Some(r) => self.older.add(&r.min, &r.max),
            // An older version's manifest, or a run that kept nothing.
            None => self.everything_older |= rows > 0,
        }
    }

    /// Remembers the ids a run just committed kept.
    fn remember(&mut self, range: Option<IdRange>, kept: Vec<Box<str>>) {
        for id in &kept {
            self.held.insert(id.clone());
        }
        if let Some(r) = &range {
            self.held_ranges.add(&r.min, &r.max);
        }
        self.runs.push_back((range, kept));
        let mut evicted = false;
        while self.held.len() > self.budget && self.runs.len() > 1 {
            let Some((range, ids)) = self.runs.pop_front() else {
                break;
            };
            for id in &ids {
                self.held.remove(id);
            }
            self.cover(range.as_ref(), ids.len() as u64);
            evicted = true;
        }
        if evicted {
            self.held_ranges = Intervals::default();
            for r in self.runs.iter().filter_map(|(r, _)| r.as_ref()) {
                self.held_ranges.add(&r.min, &r.max);
            }
        }
    }

    /// Ids held in memory.
    pub fn held(&self) -> usize {
        self.held.len()
    }
}

impl KnownIds for StreamIds {
    fn kept(
        &mut self,
        ids: &StringChunked,
        _range: &IdRange,
    ) -> Result<HashSet<String>, IncrementalError> {
        let started = Instant::now();
        let mut found = HashSet::new();
        let mut ask: Vec<&str> = Vec::new();
        for id in ids.iter().flatten() {
            if self.held_ranges.contains(id) && self.held.contains(id) {
                found.insert(id.to_string());
            } else if self.everything_older || self.older.contains(id) {
                ask.push(id);
            }
        }
        self.looked_up = ask.len();
        if !ask.is_empty() {
            let keys: Vec<Vec<u8>> = ask
                .iter()
                .map(|id| row_key(id, self.salt_buckets).into_bytes())
                .collect();
            let rows = self.table.get_many(&keys)?;
            found.extend(
                ask.iter()
                    .zip(rows)
                    .filter(|(_, row)| row.is_some())
                    .map(|(id, _)| id.to_string()),
            );
        }
        self.took = started.elapsed();
        Ok(found)
    }

    fn committed(&mut self, kept: &StringChunked, range: Option<&IdRange>) {
        let ids = kept.iter().flatten().map(Box::from).collect();
        self.remember(range.cloned(), ids);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Cells, EmbeddedTables, Row, TableStore};
    use polars::prelude::NewChunkedArray;

    fn chunk(ids: impl IntoIterator<Item = u32>) -> StringChunked {
        let ids: Vec<String> = ids.into_iter().map(|i| i.to_string()).collect();
        StringChunked::from_slice("order_id".into(), &ids)
    }

    #[test]
    fn ids_in_order_are_never_looked_up_and_old_ones_are_found_in_the_table() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tables = EmbeddedTables::open(dir.path().join("t.redb")).expect("tables");
        tables.ensure_table("f", &["order_details"]).expect("table");
        let table = tables.table("f").expect("table");
        // Rows 100..=199 are loaded.
        let rows: Vec<Row> = (100..200)
            .map(|i| {
                let mut cells = Cells::new();
                cells.insert("order_details:category".into(), b"Books".to_vec());
                Row {
                    key: row_key(&i.to_string(), 16).into_bytes(),
                    cells,
                }
            })
            .collect();
        table.put(&rows).expect("put");
        let range = |lo: u32, hi: u32| IdRange {
            min: lo.to_string(),
            max: hi.to_string(),
        };
        let mut known = StreamIds::new(table, 16, &[], 50);
        known.committed(&chunk(100..150), Some(&range(100, 149)));
        known.committed(&chunk(150..200), Some(&range(150, 199)));
        // The first run left memory: only its range is known.
        assert_eq!(known.held(), 50);
        let found = known
            .kept(&chunk(200..210), &range(200, 209))
            .expect("kept");
        assert!(found.is_empty());
        assert_eq!(known.looked_up, 0, "ids after every range need no lookup");
        let found = known
            .kept(&chunk([120, 160, 300]), &range(120, 300))
            .expect("kept");
        let want: HashSet<String> = ["120", "160"].map(String::from).into();
        assert_eq!(found, want);
        assert_eq!(
            known.looked_up, 1,
            "only 120: in an older range, not in memory"
        );
    }

    #[test]
    fn intervals_merge_and_answer() {
        let mut i = Intervals::default();
        i.add("10", "20");
        i.add("30", "40");
        assert!(i.contains("15") && i.contains("30") && i.contains("40"));
        assert!(!i.contains("25") && !i.contains("05") && !i.contains("5"));
        i.add("18", "32");
        assert_eq!(i.len(), 1);
        assert!(i.contains("25"));
        i.add("50", "60");
        i.add("00", "01");
        assert_eq!(i.len(), 3);
        assert!(i.contains("00") && i.contains("55") && !i.contains("45"));
    }
}
