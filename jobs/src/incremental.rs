//! Incremental, sharded cleaning of a raw directory in a [`FileStore`] (HDFS).
//!
//! A run cleans the raw files that no committed run has cleaned yet and writes
//! `part-{run}.parquet` and `report-{run}.json` into the clean directory, then
//! commits by writing its manifest `_manifest/{run}.json` (the list of raw
//! files it consumed). Readers (the loader) only trust files named by a
//! manifest, so a crash before the commit leaves nothing visible, and the
//! retried run (same pending files, same run id) overwrites the leftovers.
//! Re-running with no new raw file writes nothing.
//!
//! Duplicates across runs: an `order_id` already kept by a committed run is
//! dropped under `duplicate_order_id` (the same rule the cleaner applies
//! within a run), so re-producing the same input adds no row downstream.
//!
//! Sharding: `--shard INDEX/COUNT` gives each shard the raw files whose
//! `topic+partition` hashes to it. Records are keyed by order id, so all copies
//! of an order id are in one partition and therefore in one shard: N shards
//! drop exactly the duplicates one run would.

use std::collections::HashSet;
use std::io::Cursor;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::clean::{clean_to_memory, CleanConfig, CleanError, QualityReport};
use crate::rules::Rule;
use crate::sink::RawFileName;
use crate::store::log::partition_for;
use crate::store::{FileStore, FileStoreError};

/// Directory of run manifests inside the clean directory.
pub const MANIFEST_DIR: &str = "_manifest";

/// Errors of incremental cleaning, naming the file involved.
#[derive(Debug, thiserror::Error)]
pub enum IncrementalError {
    /// The file store failed.
    #[error("file store: {0}")]
    Files(#[from] FileStoreError),
    /// Cleaning failed.
    #[error(transparent)]
    Clean(#[from] CleanError),
    /// A Parquet file could not be read or written.
    #[error("parquet {file}: {source}")]
    Parquet {
        /// The file.
        file: String,
        /// The polars error.
        source: PolarsError,
    },
    /// A manifest or report could not be encoded or decoded.
    #[error("manifest or report {file}: {source}")]
    Json {
        /// The file.
        file: String,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// A `--shard` value that is not `INDEX/COUNT` with `INDEX < COUNT`.
    #[error("invalid shard {0:?}: expected INDEX/COUNT with 0 <= INDEX < COUNT")]
    BadShard(String),
}

/// A disjoint, stable share of the inputs: shard `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// This shard, `0..count`.
    pub index: u32,
    /// Number of shards.
    pub count: u32,
}

impl Default for Shard {
    fn default() -> Self {
        Shard { index: 0, count: 1 }
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = IncrementalError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || IncrementalError::BadShard(s.to_string());
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u32 = i.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// Whether this shard owns the item with stable key `key`.
    pub fn owns(&self, key: &str) -> bool {
        self.count <= 1 || partition_for(key.as_bytes(), self.count) == self.index
    }
}

/// The shard key of a raw file: `topic+partition` for sink files (all files
/// of a partition go to one shard), else the file name.
pub fn raw_shard_key(path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or(path);
    match RawFileName::parse(name) {
        Some(f) => format!("{}+{}", f.topic, f.partition),
        None => name.to_string(),
    }
}

/// The commit record of one cleaning run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunManifest {
    /// Run id (hash of its raw files and shard).
    pub run: String,
    /// Shard that ran it.
    pub shard: Shard,
    /// Raw files consumed (store paths).
    pub raw_files: Vec<String>,
    /// Clean Parquet written (store path).
    pub parquet: String,
    /// Quality report written (store path).
    pub report: String,
    /// Rows in the Parquet file.
    pub rows_out: u64,
}

/// What one incremental cleaning run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IncrementalSummary {
    /// Run id, `None` when there was nothing new to clean.
    pub run: Option<String>,
    /// Shard.
    pub shard: String,
    /// Raw files of this shard already cleaned by earlier runs.
    pub already_cleaned: u64,
    /// Raw files cleaned now.
    pub raw_files: u64,
    /// Rows kept by this run that earlier runs had already kept (dropped).
    pub cross_run_duplicates: u64,
    /// The quality report of this run (default when nothing was cleaned).
    pub report: QualityReport,
}

fn fnv_hex(parts: &[&str]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain([0u8]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

fn join(dir: &str, name: &str) -> String {
    format!("{}/{name}", dir.trim_end_matches('/'))
}

/// Every committed run of `clean_dir`, in manifest name order.
pub fn committed_runs(
    files: &dyn FileStore,
    clean_dir: &str,
) -> Result<Vec<RunManifest>, IncrementalError> {
    let mut runs = Vec::new();
    for entry in files.list(&join(clean_dir, MANIFEST_DIR))? {
        if !entry.path.ends_with(".json") {
            continue;
        }
        let bytes = files.read(&entry.path)?;
        runs.push(
            serde_json::from_slice(&bytes).map_err(|source| IncrementalError::Json {
                file: files.describe(&entry.path),
                source,
            })?,
        );
    }
    Ok(runs)
}

/// Order ids kept by committed runs (as text), read from their Parquet files.
fn kept_ids(
    files: &dyn FileStore,
    runs: &[RunManifest],
) -> Result<HashSet<String>, IncrementalError> {
    let mut ids = HashSet::new();
    for run in runs {
        let pe = |source| IncrementalError::Parquet {
            file: files.describe(&run.parquet),
            source,
        };
        let df = ParquetReader::new(Cursor::new(files.read(&run.parquet)?))
            .with_columns(Some(vec!["order_id".into()]))
            .finish()
            .map_err(pe)?;
        let col = df
            .column("order_id")
            .and_then(|c| c.cast(&DataType::String))
            .map_err(pe)?;
        let col = col.str().map_err(pe)?;
        ids.extend(col.iter().flatten().map(str::to_string));
    }
    Ok(ids)
}

/// Removes rows whose order id is in `seen`; returns the new Parquet and how many went.
fn drop_seen(
    parquet: Vec<u8>,
    seen: &HashSet<String>,
    name: &str,
) -> Result<(Vec<u8>, u64), IncrementalError> {
    let pe = |source| IncrementalError::Parquet {
        file: name.to_string(),
        source,
    };
    let mut df = ParquetReader::new(Cursor::new(&parquet))
        .finish()
        .map_err(pe)?;
    let ids = df
        .column("order_id")
        .and_then(|c| c.cast(&DataType::String))
        .map_err(pe)?;
    let ids = ids.str().map_err(pe)?;
    let keep: BooleanChunked = ids
        .iter()
        .map(|id| Some(!id.is_some_and(|id| seen.contains(id))))
        .collect();
    let removed = keep.iter().filter(|k| *k == Some(false)).count() as u64;
    if removed == 0 {
        return Ok((parquet, 0));
    }
    df = df.filter(&keep).map_err(pe)?;
    let mut out = Vec::new();
    ParquetWriter::new(&mut out)
        .with_compression(ParquetCompression::Snappy)
        .finish(&mut df)
        .map_err(pe)?;
    Ok((out, removed))
}

/// Cleans the raw files of `shard` under `raw_dir` (in `raw`) that no committed
/// run of `clean_dir` (in `out`) has consumed, and commits one run.
pub fn clean_incremental(
    raw: &dyn FileStore,
    raw_dir: &str,
    out: &dyn FileStore,
    clean_dir: &str,
    cfg: CleanConfig,
    shard: Shard,
    mut progress: impl FnMut(u64),
) -> Result<IncrementalSummary, IncrementalError> {
    let runs = committed_runs(out, clean_dir)?;
    let done: HashSet<&str> = runs
        .iter()
        .flat_map(|r| r.raw_files.iter().map(String::as_str))
        .collect();
    let mut summary = IncrementalSummary {
        shard: shard.to_string(),
        ..Default::default()
    };
    let mut pending = Vec::new();
    for entry in raw.list(raw_dir)? {
        if !shard.owns(&raw_shard_key(&entry.path)) {
            continue;
        }
        if done.contains(entry.path.as_str()) {
            summary.already_cleaned += 1;
        } else {
            pending.push(entry.path);
        }
    }
    if pending.is_empty() {
        tracing::info!(raw = %raw.describe(raw_dir), shard = %shard, "no new raw files");
        return Ok(summary);
    }
    let shard_text = shard.to_string();
    let mut key: Vec<&str> = vec![&shard_text];
    key.extend(pending.iter().map(String::as_str));
    let run = fnv_hex(&key);
    let parquet_path = join(clean_dir, &format!("part-{run}.parquet"));
    let report_path = join(clean_dir, &format!("report-{run}.json"));
    tracing::info!(run = %run, files = pending.len(), shard = %shard, "cleaning new raw files");

    let mut inputs = Vec::with_capacity(pending.len());
    for p in &pending {
        inputs.push((raw.describe(p), raw.read(p)?));
    }
    let dedup = cfg.rule_on(Rule::DuplicateOrderId);
    let (mut report, parquet) = clean_to_memory(
        cfg,
        inputs.iter().map(|(n, d)| (n.clone(), d.as_slice())),
        &out.describe(&parquet_path),
        &mut progress,
    )?;
    drop(inputs);
    let mut parquet = parquet;
    if dedup && !runs.is_empty() && report.rows_out > 0 {
        let seen = kept_ids(out, &runs)?;
        let (filtered, removed) = drop_seen(parquet, &seen, &out.describe(&parquet_path))?;
        parquet = filtered;
        if removed > 0 {
            report.rows_out -= removed;
            *report
                .dropped
                .entry(Rule::DuplicateOrderId.name().into())
                .or_default() += removed;
            summary.cross_run_duplicates = removed;
        }
    }
    out.write_atomic(&parquet_path, &parquet)?;
    out.write_atomic(&report_path, &to_json(out, &report_path, &report)?)?;
    let manifest = RunManifest {
        run: run.clone(),
        shard,
        raw_files: pending.clone(),
        parquet: parquet_path,
        report: report_path,
        rows_out: report.rows_out,
    };
    let manifest_path = join(clean_dir, &format!("{MANIFEST_DIR}/{run}.json"));
    out.write_atomic(&manifest_path, &to_json(out, &manifest_path, &manifest)?)?;
    summary.run = Some(run);
    summary.raw_files = pending.len() as u64;
    summary.report = report;
    Ok(summary)
}

fn to_json<T: Serialize>(
    out: &dyn FileStore,
    file: &str,
    value: &T,
) -> Result<Vec<u8>, IncrementalError> {
    serde_json::to_vec_pretty(value).map_err(|source| IncrementalError::Json {
        file: out.describe(file),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LocalFiles;

    fn raw_line(id: u32) -> String {
        format!("{id}\t7\tBooks\t12.50\tCash\tPending\t2024-01-01 10:00:00\n")
    }

    #[test]
    fn shards_parse_and_partition() {
        assert_eq!(
            "1/3".parse::<Shard>().ok(),
            Some(Shard { index: 1, count: 3 })
        );
        assert!("3/3".parse::<Shard>().is_err());
        assert!("x".parse::<Shard>().is_err());
        let keys: Vec<String> = (0..50).map(|p| format!("t+{p}")).collect();
        for k in &keys {
            let owners = (0..3).filter(|i| {
                Shard {
                    index: *i,
                    count: 3,
                }
                .owns(k)
            });
            assert_eq!(owners.count(), 1);
        }
        assert_eq!(
            raw_shard_key("raw/t+2+00000000000000000005+00000000000000000009.tsv"),
            "t+2"
        );
    }

    #[test]
    fn reruns_change_nothing_and_cross_run_duplicates_are_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalFiles::new(dir.path());
        let file = |p: u32, first: u64, ids: std::ops::Range<u32>| {
            let name = RawFileName {
                topic: "t".into(),
                partition: p,
                first,
                last: first + u64::from(ids.len() as u32) - 1,
            };
            let data: String = ids.map(raw_line).collect();
            store
                .write_atomic(&format!("raw/{}", name.render()), data.as_bytes())
                .expect("write raw");
        };
        file(0, 0, 1..11);
        let cfg = CleanConfig::default();
        let first = clean_incremental(
            &store,
            "raw",
            &store,
            "clean",
            cfg.clone(),
            Shard::default(),
            |_| {},
        )
        .expect("clean");
        assert_eq!(first.report.rows_out, 10);
        let again = clean_incremental(
            &store,
            "raw",
            &store,
            "clean",
            cfg.clone(),
            Shard::default(),
            |_| {},
        )
        .expect("clean");
        assert_eq!(again.run, None);
        assert_eq!(again.already_cleaned, 1);
        // The same records produced again, plus two new ones.
        file(0, 10, 1..13);
        let third = clean_incremental(
            &store,
            "raw",
            &store,
            "clean",
            cfg,
            Shard::default(),
            |_| {},
        )
        .expect("clean");
        assert_eq!(third.report.rows_out, 2);
        assert_eq!(third.cross_run_duplicates, 10);
        assert!(third.report.is_consistent());
        let runs = committed_runs(&store, "clean").expect("runs");
        assert_eq!(runs.len(), 2);
        assert_eq!(runs.iter().map(|r| r.rows_out).sum::<u64>(), 12);
    }
}
