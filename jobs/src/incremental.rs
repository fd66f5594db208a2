//! Incremental, sharded cleaning of a raw directory in a [`FileStore`] (HDFS).
//!
//! A run cleans the raw files that no committed run has cleaned yet and writes
//! its rows partitioned by the date of their timestamp, Hive style:
//! `date=YYYY-MM-DD/part-{run}.parquet` (rows whose timestamp has no date go
//! to `date=__HIVE_DEFAULT_PARTITION__`), plus `report-{run}.json` in the
//! clean directory. It then commits by writing its manifest
//! `_manifest/{run}.json` (the raw files it consumed and the Parquet files it
//! wrote). Readers (the loader) only trust files named by a manifest, so a
//! crash before the commit leaves nothing visible, and the retried run (same
//! pending files, same run id) overwrites the leftovers. Re-running with no
//! new raw file writes nothing.
//!
//! Duplicates across runs: an `order_id` already kept by a committed run is
//! dropped under `duplicate_order_id` (the same rule the cleaner applies
//! within a run), so re-producing the same input adds no row downstream.
//!
//! Sharding: `--shard INDEX/COUNT` gives each shard the raw files whose
//! `topic+partition` hashes to it. Records are keyed by order id, so all copies
//! of an order id are in one partition and therefore in one shard: N shards
//! drop exactly the duplicates one run would.

use std::collections::{BTreeMap, HashSet};
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
/// Partition value of rows whose timestamp holds no `YYYY-MM-DD` date (the
/// name Hive and Spark read back as null).
pub const NO_DATE: &str = "__HIVE_DEFAULT_PARTITION__";

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
    /// Clean Parquet written, one per date partition (store paths, in
    /// partition order).
    pub parquet_files: Vec<String>,
    /// Rows written per date partition (`YYYY-MM-DD` or [`NO_DATE`]).
    pub partitions: BTreeMap<String, u64>,
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
    for path in runs.iter().flat_map(|r| &r.parquet_files) {
        let pe = |source| IncrementalError::Parquet {
            file: files.describe(path),
            source,
        };
        let df = ParquetReader::new(Cursor::new(files.read(path)?))
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

/// The partition value of a timestamp: its `YYYY-MM-DD` prefix, or [`NO_DATE`].
pub fn date_of(timestamp: Option<&str>) -> &str {
    let Some(d) = timestamp.and_then(|t| t.get(..10)) else {
        return NO_DATE;
    };
    let b = d.as_bytes();
    let shape = b.iter().enumerate().all(|(i, c)| {
        if i == 4 || i == 7 {
            *c == b'-'
        } else {
            c.is_ascii_digit()
        }
    });
    if shape {
        d
    } else {
        NO_DATE
    }
}

/// Clean rows of one run split by date: the frames per partition value and
/// how many rows were removed because an earlier run already kept their id.
struct Partitioned {
    parts: Vec<(String, DataFrame)>,
    removed: u64,
}

/// Decodes a run's Parquet, drops rows whose order id is in `seen`, and splits
/// the rest by the date of their timestamp (input order kept in each part).
fn partition_run(
    parquet: &[u8],
    seen: &HashSet<String>,
    name: &str,
) -> Result<Partitioned, IncrementalError> {
    let pe = |source| IncrementalError::Parquet {
        file: name.to_string(),
        source,
    };
    let mut df = ParquetReader::new(Cursor::new(parquet))
        .finish()
        .map_err(pe)?;
    let mut removed = 0;
    if !seen.is_empty() {
        let ids = df
            .column("order_id")
            .and_then(|c| c.cast(&DataType::String))
            .map_err(pe)?;
        let ids = ids.str().map_err(pe)?;
        let keep: BooleanChunked = ids
            .iter()
            .map(|id| Some(!id.is_some_and(|id| seen.contains(id))))
            .collect();
        removed = keep.iter().filter(|k| *k == Some(false)).count() as u64;
        if removed > 0 {
            df = df.filter(&keep).map_err(pe)?;
        }
    }
    let dates: StringChunked = df
        .column("timestamp")
        .and_then(|c| c.str())
        .map_err(pe)?
        .iter()
        .map(|t| Some(date_of(t)))
        .collect();
    let key = "__date";
    df.with_column(dates.with_name(key.into()).into_column())
        .map_err(pe)?;
    let mut parts = Vec::new();
    for part in df.partition_by_stable([key], true).map_err(pe)? {
        let date = part
            .column(key)
            .and_then(|c| c.str())
            .map_err(pe)?
            .get(0)
            .unwrap_or(NO_DATE)
            .to_string();
        let part = part.drop(key).map_err(pe)?;
        parts.push((date, part));
    }
    parts.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Partitioned { parts, removed })
}

/// Encodes one partition as Snappy Parquet.
fn encode(mut df: DataFrame, name: &str) -> Result<Vec<u8>, IncrementalError> {
    let mut out = Vec::new();
    ParquetWriter::new(&mut out)
        .with_compression(ParquetCompression::Snappy)
        .finish(&mut df)
        .map_err(|source| IncrementalError::Parquet {
            file: name.to_string(),
            source,
        })?;
    Ok(out)
}

/// Files written at once. An HDFS file costs a few round trips, and closing it
/// often waits for the NameNode to learn of its block (the client polls with a
/// 0.5 s backoff), so small partitions are written side by side.
const WRITERS: usize = 32;

/// Encodes and writes each `(path, frame)` atomically, `WRITERS` at a time;
/// the first error stops the rest.
fn write_parallel(
    out: &dyn FileStore,
    writes: Vec<(String, DataFrame)>,
) -> Result<(), IncrementalError> {
    let queue = std::sync::Mutex::new(writes.into_iter());
    let failed = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..WRITERS)
            .map(|_| {
                scope.spawn(|| -> Result<(), IncrementalError> {
                    while !failed.load(std::sync::atomic::Ordering::Relaxed) {
                        let Some((path, df)) = queue.lock().ok().and_then(|mut q| q.next()) else {
                            break;
                        };
                        let written = encode(df, &out.describe(&path))
                            .and_then(|bytes| Ok(out.write_atomic(&path, &bytes)?));
                        if written.is_err() {
                            failed.store(true, std::sync::atomic::Ordering::Relaxed);
                            return written;
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        let mut result = Ok(());
        for w in workers {
            let done = w.join().unwrap_or_else(|_| {
                Err(IncrementalError::Files(FileStoreError::Io {
                    op: "writing",
                    path: "clean partitions".into(),
                    source: std::io::Error::other("a writer thread panicked"),
                }))
            });
            if result.is_ok() {
                result = done;
            }
        }
        result
    })
}

/// Store path of a run's Parquet file in date partition `date`.
pub fn partition_path(clean_dir: &str, date: &str, run: &str) -> String {
    join(clean_dir, &format!("date={date}/part-{run}.parquet"))
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
    let report_path = join(clean_dir, &format!("report-{run}.json"));
    let run_name = out.describe(&join(clean_dir, &format!("date=*/part-{run}.parquet")));
    tracing::info!(run = %run, files = pending.len(), shard = %shard, "cleaning new raw files");

    let mut inputs = Vec::with_capacity(pending.len());
    for p in &pending {
        inputs.push((raw.describe(p), raw.read(p)?));
    }
    let dedup = cfg.rule_on(Rule::DuplicateOrderId);
    let (mut report, parquet) = clean_to_memory(
        cfg,
        inputs.iter().map(|(n, d)| (n.clone(), d.as_slice())),
        &run_name,
        &mut progress,
    )?;
    drop(inputs);
    let seen = if dedup && !runs.is_empty() && report.rows_out > 0 {
        kept_ids(out, &runs)?
    } else {
        HashSet::new()
    };
    let split = partition_run(&parquet, &seen, &run_name)?;
    drop(parquet);
    if split.removed > 0 {
        report.rows_out -= split.removed;
        *report
            .dropped
            .entry(Rule::DuplicateOrderId.name().into())
            .or_default() += split.removed;
        summary.cross_run_duplicates = split.removed;
    }
    let mut parquet_files = Vec::with_capacity(split.parts.len());
    let mut partitions = BTreeMap::new();
    let mut writes = Vec::with_capacity(split.parts.len());
    for (date, df) in split.parts {
        let path = partition_path(clean_dir, &date, &run);
        partitions.insert(date, df.height() as u64);
        parquet_files.push(path.clone());
        writes.push((path, df));
    }
    write_parallel(out, writes)?;
    report.output_files = parquet_files.iter().map(|p| out.describe(p)).collect();
    out.write_atomic(&report_path, &to_json(out, &report_path, &report)?)?;
    let manifest = RunManifest {
        run: run.clone(),
        shard,
        raw_files: pending.clone(),
        parquet_files,
        partitions,
        report: report_path,
        rows_out: report.rows_out,
    };
    let manifest_path = join(clean_dir, &format!("{MANIFEST_DIR}/{run}.json"));
    out.write_atomic(&manifest_path, &to_json(out, &manifest_path, &manifest)?)?;
    tracing::info!(run = %run, partitions = manifest.partitions.len(), rows = report.rows_out, "committed clean run");
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
        // Three dates, and a timestamp with no date at all (kept in seed-compat mode).
        let ts = match id % 4 {
            0 => "2024-01-01 10:00:00",
            1 => "2024-01-02 00:00:00",
            2 => "2023-12-31 23:59:59",
            _ => "2024-01-01 23:59:59",
        };
        format!("{id}\t7\tBooks\t12.50\tCash\tPending\t{ts}\n")
    }

    #[test]
    fn dates_of_timestamps() {
        assert_eq!(date_of(Some("2024-03-09 10:00:00")), "2024-03-09");
        assert_eq!(date_of(Some("2024-3-9 10:00")), NO_DATE);
        assert_eq!(date_of(Some("yesterday")), NO_DATE);
        assert_eq!(date_of(Some("")), NO_DATE);
        assert_eq!(date_of(None), NO_DATE);
    }

    #[test]
    fn seed_compat_rows_without_a_date_get_the_default_partition() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalFiles::new(dir.path());
        store
            .write_atomic(
                "raw/a.tsv",
                b"1\t7\tBooks\t1.5\tCash\tPending\tnot a time\n\
                  2\t7\tBooks\t1.5\tCash\tPending\t2024-02-29 01:00:00\n",
            )
            .expect("write raw");
        let cfg = CleanConfig {
            seed_compat: true,
            ..Default::default()
        };
        let s = clean_incremental(
            &store,
            "raw",
            &store,
            "clean",
            cfg,
            Shard::default(),
            |_| {},
        )
        .expect("clean");
        assert_eq!(s.report.rows_out, 2);
        let run = &committed_runs(&store, "clean").expect("runs")[0];
        let expected: BTreeMap<String, u64> =
            [("2024-02-29".to_string(), 1), (NO_DATE.to_string(), 1)].into();
        assert_eq!(run.partitions, expected);
        assert!(store
            .exists(&format!("clean/date={NO_DATE}/part-{}.parquet", run.run))
            .expect("exists"));
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
        // Every row is in the partition of its date, and nowhere else.
        let mut per_date: BTreeMap<String, u64> = BTreeMap::new();
        for run in &runs {
            assert_eq!(run.partitions.values().sum::<u64>(), run.rows_out);
            for path in &run.parquet_files {
                let date = path
                    .split('/')
                    .find_map(|p| p.strip_prefix("date="))
                    .expect("partition directory");
                let df = ParquetReader::new(Cursor::new(store.read(path).expect("read")))
                    .finish()
                    .expect("parquet");
                let ts = df
                    .column("timestamp")
                    .expect("ts")
                    .str()
                    .expect("str")
                    .clone();
                for t in ts.iter() {
                    assert_eq!(date_of(t), date, "{path}");
                }
                *per_date.entry(date.to_string()).or_default() += df.height() as u64;
            }
        }
        // Ids 1..=12: id % 4 picks the date.
        let expected: BTreeMap<String, u64> = [
            ("2023-12-31".to_string(), 3),
            ("2024-01-01".to_string(), 6),
            ("2024-01-02".to_string(), 3),
        ]
        .into();
        assert_eq!(per_date, expected);
    }
}
