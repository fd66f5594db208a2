//! The answer cache: rendered answers per canonical query, each valid for one
//! data version, bounded by entries and by bytes. Past either bound the least
//! recently used answers go first.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::api::Answer;

/// Bytes counted per entry beyond its key and body (map slot, entry, `Arc`,
/// string and `Bytes` headers).
pub const ENTRY_OVERHEAD: usize = 160;

/// Default byte budget of the cache (64 MiB).
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;

/// Default entry bound of the cache.
pub const DEFAULT_CACHE_ENTRIES: usize = 4096;

/// One cached answer.
#[derive(Debug)]
struct Entry {
    version: u64,
    answer: Arc<Answer>,
    bytes: usize,
    /// Tick of the last lookup or insert (least recently used goes first).
    used: AtomicU64,
}

/// Answers per canonical query with the data version they hold for. Lookups
/// take `&self` (concurrent under a read lock); inserts evict.
#[derive(Debug)]
pub struct AnswerCache {
    entries: HashMap<String, Entry>,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
    /// The newest data version inserted; older entries were dropped.
    newest: u64,
    clock: AtomicU64,
}

impl Default for AnswerCache {
    fn default() -> Self {
        AnswerCache::new(DEFAULT_CACHE_ENTRIES, DEFAULT_CACHE_BYTES)
    }
}

/// The bytes an answer under `key` is counted for.
pub fn answer_bytes(key: &str, answer: &Answer) -> usize {
    key.len() + answer.body.len() + ENTRY_OVERHEAD
}

impl AnswerCache {
    /// A cache of at most `max_entries` answers and `max_bytes` bytes (either 0: no cache).
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        AnswerCache {
            entries: HashMap::new(),
            bytes: 0,
            max_entries,
            max_bytes,
            newest: 0,
            clock: AtomicU64::new(0),
        }
    }

    /// Whether answers are cached at all.
    pub fn enabled(&self) -> bool {
        self.max_entries > 0 && self.max_bytes > 0
    }

    /// Answers held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no answer is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes held (as counted by [`answer_bytes`]).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The answer of `key` if it holds for `version`.
    pub fn get(&self, key: &str, version: u64) -> Option<Arc<Answer>> {
        let e = self.entries.get(key)?;
        if e.version != version {
            return None;
        }
        e.used.store(self.tick(), Ordering::Relaxed);
        Some(Arc::clone(&e.answer))
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed)
    }

    /// Keeps `answer` for `key` at `version`. Entries of older versions are
    /// dropped (they can never be served again); an answer of an older version
    /// than one already held, or bigger than a quarter of the byte budget, is
    /// not kept. Past a bound, the least recently used answers are evicted down
    /// to 7/8 of it, so eviction runs once every several inserts.
    pub fn insert(&mut self, key: String, version: u64, answer: Arc<Answer>) {
        let bytes = answer_bytes(&key, &answer);
        if !self.enabled() || version < self.newest || bytes > self.max_bytes / 4 {
            return;
        }
        if version > self.newest {
            self.entries.retain(|_, e| e.version >= version);
            self.bytes = self.entries.values().map(|e| e.bytes).sum();
            self.newest = version;
        }
        let used = AtomicU64::new(self.tick());
        let entry = Entry {
            version,
            answer,
            bytes,
            used,
        };
        if let Some(old) = self.entries.insert(key, entry) {
            self.bytes -= old.bytes;
        }
        self.bytes += bytes;
        if self.entries.len() > self.max_entries || self.bytes > self.max_bytes {
            self.evict();
        }
    }

    /// Drops the least recently used entries until both bounds are met with
    /// an eighth to spare.
    fn evict(&mut self) {
        let keep_entries = self.max_entries - self.max_entries / 8;
        let keep_bytes = self.max_bytes - self.max_bytes / 8;
        let mut by_age: Vec<(u64, String)> = self
            .entries
            .iter()
            .map(|(k, e)| (e.used.load(Ordering::Relaxed), k.clone()))
            .collect();
        by_age.sort_unstable();
        for (_, key) in by_age {
            if self.entries.len() <= keep_entries && self.bytes <= keep_bytes {
                break;
            }
            if let Some(e) = self.entries.remove(&key) {
                self.bytes -= e.bytes;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Bytes;

    fn answer(len: usize) -> Arc<Answer> {
        Arc::new(Answer {
            content_type: "application/json",
            body: Bytes::from(vec![b'x'; len]),
        })
    }

    #[test]
    fn stays_under_the_byte_budget_evicting_the_least_recently_used() {
        // Room for about 10 answers of 1,000 bytes.
        let budget = 10 * (1_000 + ENTRY_OVERHEAD + 2);
        let mut c = AnswerCache::new(1_000, budget);
        for i in 0..10 {
            c.insert(format!("q{i}"), 1, answer(1_000));
        }
        assert_eq!(c.len(), 10);
        // q0 is used: it must outlive q1 and q2 at the next eviction.
        assert!(c.get("q0", 1).is_some());
        for i in 10..200 {
            c.insert(format!("q{i}"), 1, answer(1_000));
            assert!(c.bytes() <= budget, "{} > {budget}", c.bytes());
            let counted: usize = c
                .entries
                .iter()
                .map(|(k, e)| answer_bytes(k, &e.answer))
                .sum();
            assert_eq!(counted, c.bytes());
        }
        assert!(c.get("q199", 1).is_some());
        assert!(c.get("q1", 1).is_none());
        assert!(c.len() < 10);
        // The recently used one survived the first eviction.
        let mut c = AnswerCache::new(1_000, budget);
        for i in 0..10 {
            c.insert(format!("q{i}"), 1, answer(1_000));
        }
        c.get("q0", 1);
        c.insert("q10".into(), 1, answer(1_000));
        assert!(c.get("q0", 1).is_some());
        assert!(c.get("q1", 1).is_none());
    }

    #[test]
    fn bounded_by_entries_too() {
        let mut c = AnswerCache::new(16, 1 << 30);
        for i in 0..100 {
            c.insert(format!("q{i}"), 1, answer(10));
            assert!(c.len() <= 16);
        }
        assert!(c.get("q99", 1).is_some());
    }

    #[test]
    fn versions_and_oversize_answers() {
        let mut c = AnswerCache::new(100, 100_000);
        c.insert("a".into(), 1, answer(100));
        assert!(c.get("a", 1).is_some());
        // Another version's lookup misses.
        assert!(c.get("a", 2).is_none());
        // A newer version drops every older entry.
        c.insert("b".into(), 2, answer(100));
        assert_eq!(c.len(), 1);
        assert!(c.get("a", 1).is_none());
        assert_eq!(c.bytes(), answer_bytes("b", &answer(100)));
        // A late answer of an older version is not kept.
        c.insert("a".into(), 1, answer(100));
        assert_eq!(c.len(), 1);
        // More than a quarter of the budget: not kept.
        c.insert("big".into(), 2, answer(30_000));
        assert!(c.get("big", 2).is_none());
        // Replacing an entry counts its bytes once.
        c.insert("b".into(), 2, answer(500));
        assert_eq!(c.bytes(), answer_bytes("b", &answer(500)));
        // Either bound 0: nothing kept.
        for mut off in [AnswerCache::new(0, 1 << 20), AnswerCache::new(10, 0)] {
            assert!(!off.enabled());
            off.insert("a".into(), 1, answer(1));
            assert!(off.is_empty());
        }
    }
}
