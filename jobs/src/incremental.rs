//! Incremental, sharded cleaning of a raw directory in a [`FileStore`] (HDFS).
//!
//! A run cleans the raw files that no committed run has cleaned yet and writes
//! its rows partitioned by the date of their timestamp, Hive style:
//! `date=YYYY-MM-DD/part-{run}.parquet` (rows whose timestamp has no date go
//! to `date=__HIVE_DEFAULT_PARTITION__`), plus `report-{run}.json` in the
//! clean directory. It then commits by moving its manifest into
//! `_manifest/{run}.json` (the raw files it consumed and the Parquet files it
//! wrote). Readers (the loader) only trust files named by a manifest, so a
//! crash before the commit leaves nothing visible. Every file is first written
//! into the attempt's own directory under [`STAGING_DIR`]; the next run of the
//! shard sweeps what a failed attempt left ([`sweep_staging`]), and a retry
//! (same pending files, same run id) rewrites the same paths. Re-running with
//! no new raw file writes nothing.
//!
//! Duplicates across runs: an `order_id` already kept by a committed run is
//! dropped under `duplicate_order_id` (the same rule the cleaner applies
//! within a run), so re-producing the same input adds no row downstream. Each
//! manifest records the smallest and largest id its run kept ([`IdRange`]),
//! so a run reads the ids of only the committed runs whose range overlaps its
//! own (and of manifests without a range, written by older versions).
//!
//! Sharding: `--shard INDEX/COUNT` gives each shard the raw files whose
//! `topic+partition` hashes to it. Records are keyed by order id, so all copies
//! of an order id are in one partition and therefore in one shard: N shards
//! drop exactly the duplicates one run would.

use std::collections::{BTreeMap, HashSet};
use std::io::Cursor;
use std::time::{Duration, Instant};

use polars::prelude::*;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::clean::{CleanConfig, CleanError, Cleaner};
use crate::rules::Rule;
use crate::sink::RawFileName;
use crate::store::files::FileEntry;
use crate::store::log::partition_for;
use crate::store::{FileStore, FileStoreError};

mod checkpoint;

pub use checkpoint::{CHECKPOINT_DIR, CHECKPOINT_EVERY};

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
    /// The order ids the run kept, as text; `None` when it kept no row, or
    /// when an older version wrote the manifest (such runs are always read
    /// when de-duplicating).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_ids: Option<IdRange>,
}

/// The smallest and largest of a set of order ids, as text in plain byte
/// order (a total order on any ids: exact for pruning, whatever the ids are).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    /// Smallest id.
    pub min: String,
    /// Largest id.
    pub max: String,
}

impl IdRange {
    /// The range of `ids` (nulls skipped), `None` when there is none.
    fn of<'a>(ids: impl IntoIterator<Item = Option<&'a str>>) -> Option<IdRange> {
        let mut range: Option<(&str, &str)> = None;
        for id in ids.into_iter().flatten() {
            range = Some(match range {
                None => (id, id),
                Some((lo, hi)) => (lo.min(id), hi.max(id)),
            });
        }
        range.map(|(lo, hi)| IdRange {
            min: lo.to_string(),
            max: hi.to_string(),
        })
    }

    /// Whether `id` lies in the range.
    fn contains(&self, id: &str) -> bool {
        self.min.as_str() <= id && id <= self.max.as_str()
    }

    /// Whether the two ranges share at least one possible id.
    fn overlaps(&self, other: &IdRange) -> bool {
        self.min <= other.max && other.min <= self.max
    }
}

pub use ecom_contract::summary::CleanRunSummary;

/// How many of `pending` (in path order) one run takes: files while their sizes
/// add up to at most `max_bytes`, and always the first.
fn run_share(pending: &[FileEntry], max_bytes: u64) -> usize {
    crate::chunks::by_size(pending, max_bytes, |e| e.len)
        .first()
        .map_or(0, |run| run.len())
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

/// Every committed run of `clean_dir`, in manifest name order (from the
/// newest manifest checkpoint and the manifests committed since it).
pub fn committed_runs(
    files: &dyn FileStore,
    clean_dir: &str,
) -> Result<Vec<RunManifest>, IncrementalError> {
    Ok(checkpoint::read_committed(files, clean_dir)?.runs)
}

/// The order ids of a frame's `order_id` column, as text.
fn order_id_text(df: &DataFrame) -> PolarsResult<Column> {
    df.column("order_id")
        .and_then(|c| c.cast(&DataType::String))
}

/// The order ids in `new` that committed runs already kept (as text), read
/// from the Parquet files of only the runs whose [`IdRange`] overlaps `new`
/// (and of runs with no range: manifests of older versions).
fn kept_ids(
    files: &dyn FileStore,
    runs: &[RunManifest],
    new: &IdRange,
) -> Result<HashSet<String>, IncrementalError> {
    let mut ids = HashSet::new();
    let paths: Vec<String> = runs
        .iter()
        .filter(|r| r.order_ids.as_ref().is_none_or(|k| k.overlaps(new)))
        .flat_map(|r| r.parquet_files.iter().cloned())
        .collect();
    for (path, data) in paths.iter().zip(files.read_files(&paths)) {
        let pe = |source| IncrementalError::Parquet {
            file: files.describe(path),
            source,
        };
        let df = ParquetReader::new(Cursor::new(data?))
            .with_columns(Some(vec!["order_id".into()]))
            .finish()
            .map_err(pe)?;
        let col = order_id_text(&df).map_err(pe)?;
        let col = col.str().map_err(pe)?;
        ids.extend(
            col.iter()
                .flatten()
                .filter(|id| new.contains(id))
                .map(str::to_string),
        );
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

/// Clean rows of one run grouped by date: the rows, the row numbers of each
/// partition value (ascending, in partition value order), how many rows
/// were removed because an earlier run already kept their id, and the range
/// of the ids kept.
struct Partitioned {
    df: DataFrame,
    groups: Vec<(String, Vec<IdxSize>)>,
    removed: u64,
    kept: Option<IdRange>,
}

/// Drops a run's clean rows whose order id (`ids`, as text, whose range is
/// `all`) is in `seen`, and groups the rest by the date of their timestamp.
/// The partitions themselves are cut out later ([`take_rows`]), in parallel
/// with their encoding.
fn partition_run(
    mut df: DataFrame,
    ids: &StringChunked,
    all: Option<IdRange>,
    seen: &HashSet<String>,
    name: &str,
) -> Result<Partitioned, IncrementalError> {
    let pe = |source| IncrementalError::Parquet {
        file: name.to_string(),
        source,
    };
    let mut removed = 0;
    let mut kept = all;
    if !seen.is_empty() {
        let keep: BooleanChunked = ids
            .iter()
            .map(|id| Some(!id.is_some_and(|id| seen.contains(id))))
            .collect();
        removed = keep.iter().filter(|k| *k == Some(false)).count() as u64;
        if removed > 0 {
            df = df.filter(&keep).map_err(pe)?;
            kept = IdRange::of(
                ids.iter()
                    .zip(keep.iter())
                    .filter_map(|(id, k)| (k == Some(true)).then_some(id)),
            );
        }
    }
    let mut groups: Vec<(String, Vec<IdxSize>)> = {
        let timestamps = df.column("timestamp").and_then(|c| c.str()).map_err(pe)?;
        let mut by_date: std::collections::HashMap<&str, Vec<IdxSize>> = Default::default();
        for (i, t) in timestamps.iter().enumerate() {
            by_date.entry(date_of(t)).or_default().push(i as IdxSize);
        }
        by_date
            .into_iter()
            .map(|(d, rows)| (d.to_string(), rows))
            .collect()
    };
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Partitioned {
        df,
        groups,
        removed,
        kept,
    })
}

/// The rows `idx` of `df`, as one partition's frame.
fn take_rows(df: &DataFrame, idx: Vec<IdxSize>, name: &str) -> Result<DataFrame, IncrementalError> {
    df.take(&IdxCa::from_vec("idx".into(), idx))
        .map_err(|source| IncrementalError::Parquet {
            file: name.to_string(),
            source,
        })
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

/// Store path of a run's Parquet file in date partition `date`.
pub fn partition_path(clean_dir: &str, date: &str, run: &str) -> String {
    join(clean_dir, &format!("date={date}/part-{run}.parquet"))
}

/// Directory of the runs' temporary files inside the clean directory. Each
/// attempt of a run writes into its own subdirectory,
/// `{shard index}-{shard count}-{run}-{attempt}`, and moves the files into
/// place from there, so the leftovers of a crashed attempt are one listing away.
pub const STAGING_DIR: &str = "_staging";
/// The run's manifest inside its staging directory, before the commit.
const STAGED_MANIFEST: &str = "manifest.json";
/// The run's report inside its staging directory.
const STAGED_REPORT: &str = "report.json";
/// Staging directories of other shards are swept once untouched this long: a
/// crashed attempt whose shard layout never runs again (a live attempt
/// touches its directory within its deadline).
const STALE_STAGING: Duration = Duration::from_secs(24 * 3600);

/// Store path of a run's manifest.
fn manifest_path(clean_dir: &str, run: &str) -> String {
    join(clean_dir, &format!("{MANIFEST_DIR}/{run}.json"))
}

/// The shard and run of a staging directory name.
fn parse_staging(name: &str) -> Option<(Shard, &str)> {
    let mut parts = name.splitn(4, '-');
    let index = parts.next()?.parse().ok()?;
    let count = parts.next()?.parse().ok()?;
    let run = parts.next()?;
    parts.next()?;
    Some((Shard { index, count }, run))
}

/// The staged manifest of an uncommitted attempt, if it was written whole.
/// Files are moved into place only after it is closed, so without it there is
/// nothing in place to remove.
fn staged_manifest(out: &dyn FileStore, staging: &str, run: &str) -> Option<RunManifest> {
    let path = join(staging, STAGED_MANIFEST);
    let parsed = out
        .read(&path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice::<RunManifest>(&b).map_err(|e| e.to_string()));
    match parsed {
        Ok(m) if m.run == run => Some(m),
        Ok(_) => None,
        // Missing, or still open under the crashed writer's lease: the attempt
        // never got to move files.
        Err(e) => {
            tracing::debug!(file = %out.describe(&path), error = %e, "no whole staged manifest");
            None
        }
    }
}

/// Removes the leftovers of attempts that can no longer commit: staging
/// directories of this shard (an earlier attempt that crashed or failed), of
/// committed runs, and stale ones; plus the files an uncommitted attempt had
/// already moved into place. Returns how many staging directories went.
///
/// Safe against a live attempt of the same shard: its staging directory goes
/// first, which makes its commit (a rename out of it) fail, and files are
/// removed only if its manifest is still absent after that.
pub fn sweep_staging(
    out: &dyn FileStore,
    clean_dir: &str,
    runs: &[RunManifest],
    shard: Shard,
) -> Result<u64, IncrementalError> {
    let committed: HashSet<&str> = runs.iter().map(|r| r.run.as_str()).collect();
    let mut swept = 0;
    for dir in out.list_dirs(&join(clean_dir, STAGING_DIR))? {
        let name = dir.path.rsplit('/').next().unwrap_or(&dir.path);
        let Some((owner, run)) = parse_staging(name) else {
            continue;
        };
        let done = committed.contains(run);
        let stale = dir
            .modified
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age > STALE_STAGING);
        if !(done || owner == shard || stale) {
            continue;
        }
        let placed = if done {
            None
        } else {
            staged_manifest(out, &dir.path, run)
        };
        out.remove_all(&dir.path)?;
        let mut removed = 0;
        if let Some(m) = placed {
            if !out.exists(&manifest_path(clean_dir, run))? {
                let own = |f: &&String| {
                    f.ends_with(&format!("/part-{run}.parquet"))
                        || f.ends_with(&format!("/report-{run}.json"))
                };
                for f in m.parquet_files.iter().chain([&m.report]).filter(own) {
                    out.remove_all(f)?;
                    removed += 1;
                }
            }
        }
        tracing::info!(staging = %out.describe(&dir.path), committed = done, removed_in_place = removed, "swept leftovers of an earlier attempt");
        swept += 1;
    }
    Ok(swept)
}

/// A name for this attempt of a run, unique across processes and retries.
fn attempt_id() -> String {
    static ATTEMPTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let n = ATTEMPTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    fnv_hex(&[
        &std::process::id().to_string(),
        &nanos.to_string(),
        &n.to_string(),
    ])
}

/// Cuts each `(path, rows)` partition out of `df` and encodes it on the rayon
/// pool, writing the files as they come, with `small` (already encoded) first,
/// in one [`FileStore::write_files`] batch.
fn encode_and_write(
    out: &dyn FileStore,
    dirs: &[String],
    small: Vec<(String, Vec<u8>)>,
    df: &DataFrame,
    parts: Vec<(String, Vec<IdxSize>)>,
) -> Result<(), IncrementalError> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        let encoder = scope.spawn(move || {
            parts
                .into_par_iter()
                .try_for_each_with(tx, |tx, (path, rows)| {
                    let name = out.describe(&path);
                    let bytes = take_rows(df, rows, &name)
                        .and_then(|part| encode(part, &name))
                        .map_err(Some)?;
                    // A closed channel: the writes stopped on an error of their own.
                    tx.send((path, bytes)).map_err(|_| None)
                })
                .err()
                .flatten()
        });
        let written = out.write_files(dirs, &mut small.into_iter().chain(rx.iter()));
        drop(rx);
        let encoded = encoder.join().unwrap_or_else(|_| {
            Some(IncrementalError::Files(FileStoreError::Stopped {
                op: "encoding",
                path: "clean partitions".into(),
                what: "the encoder thread",
            }))
        });
        match encoded {
            Some(e) => Err(e),
            None => Ok(written?),
        }
    })
}

/// Cleans the raw files of `shard` under `raw_dir` (in `raw`) that no committed
/// run of `clean_dir` (in `out`) has consumed, and commits one run.
///
/// Raw files are fetched a few at a time ahead of the cleaner. The run's
/// files are all written at once into a staging directory (its manifest
/// included), moved into place, and the run commits by moving its manifest
/// into `_manifest/`. Leftovers of earlier failed attempts are swept first
/// ([`sweep_staging`]).
pub fn clean_incremental(
    raw: &dyn FileStore,
    raw_dir: &str,
    out: &dyn FileStore,
    clean_dir: &str,
    cfg: CleanConfig,
    shard: Shard,
    progress: impl FnMut(u64),
) -> Result<CleanRunSummary, IncrementalError> {
    let run = CleanRun {
        raw,
        input: RawInput::Dir(raw_dir.to_string()),
        out,
        clean_dir: clean_dir.to_string(),
        cfg,
        shard,
        max_run_bytes: u64::MAX,
    };
    clean_next_run(&run, progress)
}

/// The raw files a cleaning takes: every file of a directory (the sink's, on HDFS or local),
/// or one file (a local export).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawInput {
    /// Every visible file of the directory.
    Dir(String),
    /// This file alone.
    File(String),
}

/// One incremental cleaning: where the raw files are, where the runs go, how to clean.
#[derive(Clone)]
pub struct CleanRun<'a> {
    /// Store of the raw files.
    pub raw: &'a dyn FileStore,
    /// The raw files.
    pub input: RawInput,
    /// Store of the clean directory.
    pub out: &'a dyn FileStore,
    /// The clean directory: runs, reports, `_manifest/`.
    pub clean_dir: String,
    /// Rules and fixes.
    pub cfg: CleanConfig,
    /// This shard's share of the raw files.
    pub shard: Shard,
    /// Raw bytes one run takes at most (at least one file).
    pub max_run_bytes: u64,
}

impl CleanRun<'_> {
    /// The raw files, listed.
    fn list_raw(&self) -> Result<Vec<FileEntry>, IncrementalError> {
        match &self.input {
            RawInput::Dir(dir) => Ok(self.raw.list(dir)?),
            RawInput::File(file) => {
                let dir = file.rsplit_once('/').map_or("", |(d, _)| d);
                let dir = if dir.is_empty() { "/" } else { dir };
                let found: Vec<FileEntry> = self
                    .raw
                    .list(dir)?
                    .into_iter()
                    .filter(|e| e.path == *file)
                    .collect();
                if found.is_empty() {
                    return Err(IncrementalError::Files(FileStoreError::Io {
                        op: "finding",
                        path: self.raw.describe(file),
                        source: std::io::Error::new(
                            std::io::ErrorKind::NotFound,
                            "no such raw file",
                        ),
                    }));
                }
                Ok(found)
            }
        }
    }

    /// Cleans run after run until no raw file is pending; `on_run` sees each run's summary.
    /// Returns the ids of the runs committed and their summaries merged.
    pub fn clean_pending(
        &self,
        mut progress: impl FnMut(u64),
        mut on_run: impl FnMut(&CleanRunSummary),
    ) -> Result<(Vec<String>, CleanRunSummary), IncrementalError> {
        let mut runs = Vec::new();
        let mut merged: Option<CleanRunSummary> = None;
        loop {
            let s = clean_next_run(self, &mut progress)?;
            on_run(&s);
            let more = s.run.is_some() && s.pending_after > 0;
            runs.extend(s.run.clone());
            match &mut merged {
                Some(total) => total.merge(s),
                None => merged = Some(s),
            }
            if !more {
                return Ok((runs, merged.unwrap_or_default()));
            }
        }
    }
}

/// Like [`clean_incremental`], but the run takes the pending raw files in path
/// order only while their listed sizes add up to at most `max_run_bytes` (and
/// at least one file), so its memory is bounded; the summary's `pending_after`
/// counts the files left for the next run. Runs taken one after another clean
/// exactly what one run of all the files would: duplicates of an order id kept
/// by an earlier run are dropped as it would drop them within itself.
pub fn clean_next_run(
    run_cfg: &CleanRun,
    mut progress: impl FnMut(u64),
) -> Result<CleanRunSummary, IncrementalError> {
    let (raw, out, clean_dir) = (run_cfg.raw, run_cfg.out, run_cfg.clean_dir.as_str());
    let (cfg, shard) = (run_cfg.cfg.clone(), run_cfg.shard);
    let started = Instant::now();
    let committed = checkpoint::read_committed(out, clean_dir)?;
    let runs = &committed.runs;
    sweep_staging(out, clean_dir, runs, shard)?;
    let done: HashSet<&str> = runs
        .iter()
        .flat_map(|r| r.raw_files.iter().map(String::as_str))
        .collect();
    let mut summary = CleanRunSummary {
        shard: shard.to_string(),
        ..Default::default()
    };
    let mut pending = Vec::new();
    for entry in run_cfg.list_raw()? {
        if !shard.owns(&raw_shard_key(&entry.path)) {
            continue;
        }
        if done.contains(entry.path.as_str()) {
            summary.already_cleaned += 1;
        } else {
            pending.push(entry);
        }
    }
    if pending.is_empty() {
        tracing::info!(shard = %shard, "no new raw files");
        return Ok(summary);
    }
    // In path order: the store lists it so.
    let take = run_share(&pending, run_cfg.max_run_bytes);
    summary.pending_after = (pending.len() - take) as u64;
    let pending: Vec<String> = pending.into_iter().take(take).map(|e| e.path).collect();
    let shard_text = shard.to_string();
    let mut key: Vec<&str> = vec![&shard_text];
    key.extend(pending.iter().map(String::as_str));
    let run = fnv_hex(&key);
    let report_path = join(clean_dir, &format!("report-{run}.json"));
    let run_name = out.describe(&join(clean_dir, &format!("date=*/part-{run}.parquet")));
    tracing::info!(run = %run, files = pending.len(), shard = %shard, "cleaning new raw files");

    let dedup = cfg.rule_on(Rule::DuplicateOrderId);
    let mut cleaner = Cleaner::in_memory(cfg, &run_name);
    for (path, data) in pending.iter().zip(raw.read_files(&pending)) {
        cleaner.clean_reader(data?.as_slice(), &raw.describe(path), &mut progress)?;
    }
    let (mut report, clean_rows) = cleaner.finish_frames()?;
    let cleaned = started.elapsed();
    let pe = |source| IncrementalError::Parquet {
        file: run_name.clone(),
        source,
    };
    let ids = order_id_text(&clean_rows).map_err(pe)?;
    let ids = ids.str().map_err(pe)?;
    // Only runs whose ids can meet this run's are read.
    let new_ids = IdRange::of(ids.iter());
    let seen = match &new_ids {
        Some(new) if dedup && !runs.is_empty() => kept_ids(out, runs, new)?,
        _ => HashSet::new(),
    };
    let split = partition_run(clean_rows, ids, new_ids, &seen, &run_name)?;
    if split.removed > 0 {
        report.rows_out -= split.removed;
        *report
            .dropped
            .entry(Rule::DuplicateOrderId.name().into())
            .or_default() += split.removed;
        summary.cross_run_duplicates = split.removed;
    }
    let split_done = started.elapsed();

    let staging = join(
        clean_dir,
        &format!(
            "{STAGING_DIR}/{}-{}-{run}-{}",
            shard.index,
            shard.count,
            attempt_id()
        ),
    );
    let mut parquet_files = Vec::with_capacity(split.groups.len());
    let mut partitions = BTreeMap::new();
    let mut parts = Vec::with_capacity(split.groups.len());
    let mut moves = Vec::with_capacity(split.groups.len() + 1);
    for (date, rows) in split.groups {
        let path = partition_path(clean_dir, &date, &run);
        let staged = join(&staging, &format!("date={date}.parquet"));
        partitions.insert(date, rows.len() as u64);
        parquet_files.push(path.clone());
        moves.push((staged.clone(), path));
        parts.push((staged, rows));
    }
    report.output_files = parquet_files.iter().map(|p| out.describe(p)).collect();
    let staged_report = join(&staging, STAGED_REPORT);
    moves.push((staged_report.clone(), report_path.clone()));
    let manifest = RunManifest {
        run: run.clone(),
        shard,
        raw_files: pending.clone(),
        parquet_files,
        partitions,
        report: report_path.clone(),
        rows_out: report.rows_out,
        order_ids: split.kept,
    };
    let manifest_path = manifest_path(clean_dir, &run);
    let staged_manifest = join(&staging, STAGED_MANIFEST);
    let manifest_json = to_json(out, &manifest_path, &manifest)?;
    let manifest_len = manifest_json.len() as u64;
    let small = vec![
        (staged_manifest.clone(), manifest_json),
        (staged_report, to_json(out, &report_path, &report)?),
    ];
    // Every destination directory, created while the files are written.
    let mut dirs: Vec<String> = moves
        .iter()
        .chain([&(String::new(), manifest_path.clone())])
        .filter_map(|(_, to)| to.rsplit_once('/').map(|(d, _)| d.to_string()))
        .collect();
    dirs.sort();
    dirs.dedup();
    encode_and_write(out, &dirs, small, &split.df, parts)?;
    drop(split.df);
    let written = started.elapsed();
    out.rename_files(&moves)?;
    // The commit.
    out.rename_files(&[(staged_manifest, manifest_path)])?;
    if let Err(e) = out.remove_all(&staging) {
        tracing::warn!(error = %e, "could not remove the staging directory (the next run sweeps it)");
    }
    // `_staging` itself goes only when empty, in one step of the store, so a
    // directory another shard's attempt creates meanwhile is never taken.
    if let Err(e) = out.remove_empty_dir(&join(clean_dir, STAGING_DIR)) {
        tracing::warn!(error = %e, "could not remove the empty staging directory");
    }
    // The run is committed; a checkpoint only saves later runs reading time.
    if committed.uncovered + 1 >= CHECKPOINT_EVERY {
        if let Err(e) = checkpoint::write(out, clean_dir, &committed, &manifest, manifest_len) {
            tracing::warn!(error = %e, "could not write a manifest checkpoint (the next run tries again)");
        }
    }
    tracing::info!(
        run = %run,
        partitions = manifest.partitions.len(),
        rows = report.rows_out,
        read_and_clean_ms = cleaned.as_millis() as u64,
        split_ms = (split_done - cleaned).as_millis() as u64,
        write_ms = (written - split_done).as_millis() as u64,
        commit_ms = (started.elapsed() - written).as_millis() as u64,
        "committed clean run"
    );
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
    use crate::store::files::testing::FailingRenames;
    use crate::store::LocalFiles;

    /// One unsharded run from `raw/` to `clean/` of `store`.
    fn clean_all(store: &dyn FileStore, cfg: CleanConfig) -> CleanRunSummary {
        clean_incremental(store, "raw", store, "clean", cfg, Shard::default(), |_| {})
            .expect("clean")
    }

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
        let s = clean_all(&store, cfg);
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
        let first = clean_all(&store, cfg.clone());
        assert_eq!(first.report.rows_out, 10);
        // The committed attempt removed its staging directory, and `_staging`
        // with it once empty.
        assert!(store.list_dirs("clean/_staging").expect("dirs").is_empty());
        assert!(!store.exists("clean/_staging").expect("exists"));
        let again = clean_all(&store, cfg.clone());
        assert_eq!(again.run, None);
        assert_eq!(again.already_cleaned, 1);
        // The same records produced again, plus two new ones.
        file(0, 10, 1..13);
        let third = clean_all(&store, cfg);
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

    /// Every clean row of the committed runs of `clean/` as its order id, sorted.
    fn kept_order_ids(store: &dyn FileStore) -> Vec<String> {
        let mut ids = Vec::new();
        for run in committed_runs(store, "clean").expect("runs") {
            for path in &run.parquet_files {
                let df = ParquetReader::new(Cursor::new(store.read(path).expect("read")))
                    .finish()
                    .expect("parquet");
                let text = order_id_text(&df).expect("ids");
                ids.extend(text.str().expect("str").iter().flatten().map(String::from));
            }
        }
        ids.sort();
        ids
    }

    #[test]
    fn byte_limited_runs_clean_what_one_run_cleans() {
        // Five raw files of 30 records; ids repeat across files (and within one).
        let write = |store: &LocalFiles| {
            // Four-digit ids: every file has the same size.
            for f in 0..5u32 {
                let first = 1000 + f * 25;
                let mut data: String = (first..first + 30).map(raw_line).collect();
                data.push_str(&raw_line(first));
                store
                    .write_atomic(&format!("raw/f{f}.tsv"), data.as_bytes())
                    .expect("write raw");
            }
        };
        let (one_dir, many_dir) = (
            tempfile::tempdir().expect("tmp"),
            tempfile::tempdir().expect("tmp"),
        );
        let (one, many) = (
            LocalFiles::new(one_dir.path()),
            LocalFiles::new(many_dir.path()),
        );
        write(&one);
        write(&many);
        let cfg = CleanConfig::default();
        let all = clean_all(&one, cfg.clone());
        assert_eq!(all.pending_after, 0);

        // Two files' worth of bytes a run: 2 + 2 + 1 files.
        let sizes: Vec<u64> = one
            .list("raw")
            .expect("list")
            .iter()
            .map(|e| e.len)
            .collect();
        assert!(sizes.iter().all(|s| *s == sizes[0]), "{sizes:?}");
        let size = sizes[0];
        let mut runs = Vec::new();
        loop {
            let s = clean_next_run(
                &CleanRun {
                    raw: &many,
                    input: RawInput::Dir("raw".into()),
                    out: &many,
                    clean_dir: "clean".into(),
                    cfg: cfg.clone(),
                    shard: Shard::default(),
                    max_run_bytes: 2 * size + 1,
                },
                |_| {},
            )
            .expect("clean");
            if s.run.is_none() {
                break;
            }
            runs.push(s);
        }
        assert_eq!(
            runs.iter()
                .map(|s| (s.raw_files, s.pending_after))
                .collect::<Vec<_>>(),
            [(2, 3), (2, 1), (1, 0)]
        );
        let mut merged = crate::clean::QualityReport::default();
        for s in &runs {
            merged.merge(&s.report);
        }
        assert!(merged.is_consistent());
        assert_eq!(merged.rows_in, all.report.rows_in);
        assert_eq!(merged.rows_out, all.report.rows_out);
        assert_eq!(merged.dropped, all.report.dropped);
        assert_eq!(merged.fixed, all.report.fixed);
        assert!(runs.iter().skip(1).all(|s| s.cross_run_duplicates > 0));
        assert_eq!(kept_order_ids(&many), kept_order_ids(&one));
        // A limit below the first file still takes it.
        let dir = tempfile::tempdir().expect("tmp");
        let store = LocalFiles::new(dir.path());
        write(&store);
        let s = clean_next_run(
            &CleanRun {
                raw: &store,
                input: RawInput::Dir("raw".into()),
                out: &store,
                clean_dir: "clean".into(),
                cfg,
                shard: Shard::default(),
                max_run_bytes: 1,
            },
            |_| {},
        )
        .expect("clean");
        assert_eq!((s.raw_files, s.pending_after), (1, 4));
    }

    /// A local store whose commit (the move into `_manifest/`) fails, as if
    /// the process died right before it.
    fn crash_before_commit(store: &LocalFiles) -> impl FileStore {
        FailingRenames::new(store.clone(), |moves: &[(String, String)], _| {
            moves.iter().any(|(_, to)| to.contains(MANIFEST_DIR))
        })
    }

    /// Parquet files under `clean/date=*/`.
    fn partition_files(store: &LocalFiles) -> Vec<String> {
        let mut out = Vec::new();
        for d in store.list_dirs("clean").expect("dirs") {
            if d.path.contains("date=") {
                out.extend(
                    store
                        .list(&d.path)
                        .expect("list")
                        .into_iter()
                        .map(|e| e.path),
                );
            }
        }
        out
    }

    #[test]
    fn leftovers_of_a_crashed_attempt_are_swept_and_the_retry_commits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalFiles::new(dir.path());
        let data = |ids: std::ops::Range<u32>| ids.map(raw_line).collect::<String>();
        store
            .write_atomic("raw/a.tsv", data(1..9).as_bytes())
            .expect("write raw");
        let cfg = CleanConfig::default();
        let crashing = crash_before_commit(&store);
        let crashed = clean_incremental(
            &crashing,
            "raw",
            &crashing,
            "clean",
            cfg.clone(),
            Shard::default(),
            |_| {},
        );
        assert!(crashed.is_err());
        // Nothing committed; the attempt left its staging directory (with its
        // manifest) and files already moved into place.
        assert!(committed_runs(&store, "clean").expect("runs").is_empty());
        let staging = store.list_dirs("clean/_staging").expect("staging");
        assert_eq!(staging.len(), 1);
        let name = staging[0].path.rsplit('/').next().expect("name");
        let (_, dead_run) = parse_staging(name).expect("staging name");
        let dead_run = dead_run.to_string();
        assert!(store
            .exists(&format!("{}/{STAGED_MANIFEST}", staging[0].path))
            .expect("exists"));
        let orphans = partition_files(&store);
        assert_eq!(orphans.len(), 3, "{orphans:?}");
        assert!(store
            .exists(&format!("clean/report-{dead_run}.json"))
            .expect("exists"));
        // Another shard's live attempt and a committed run's leftovers.
        let other = "clean/_staging/1-2-0123456789abcdef-feed";
        store
            .write_atomic(&format!("{other}/{STAGED_MANIFEST}"), b"{")
            .expect("write");

        // New raw data arrives before the retry: a new run id, so nothing
        // overwrites the dead attempt's files; the sweep removes them.
        store
            .write_atomic("raw/b.tsv", data(9..13).as_bytes())
            .expect("write raw");
        let s = clean_all(&store, cfg.clone());
        let run = s.run.expect("a run");
        assert_ne!(run, dead_run);
        assert_eq!(s.report.rows_out, 12);
        let runs = committed_runs(&store, "clean").expect("runs");
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].raw_files, ["raw/a.tsv", "raw/b.tsv"]);
        let mut files = partition_files(&store);
        files.sort();
        assert_eq!(files, runs[0].parquet_files);
        assert!(!store
            .exists(&format!("clean/report-{dead_run}.json"))
            .expect("exists"));
        assert!(store.exists(&runs[0].report).expect("exists"));
        let left: Vec<String> = store
            .list_dirs("clean/_staging")
            .expect("staging")
            .into_iter()
            .map(|d| d.path)
            .collect();
        assert_eq!(left, [other]);

        // A committed run's staging directory (a crash after the commit) is
        // swept by the next run, which has nothing to clean.
        let after_commit = format!("clean/_staging/0-1-{run}-beef");
        store
            .write_atomic(&format!("{after_commit}/{STAGED_REPORT}"), b"{}")
            .expect("write");
        let again = clean_all(&store, cfg);
        assert_eq!(again.run, None);
        assert!(!store.exists(&after_commit).expect("exists"));
        assert!(store.exists(other).expect("exists"));
        assert_eq!(committed_runs(&store, "clean").expect("runs"), runs);
    }

    #[test]
    fn a_retry_of_the_same_run_replaces_the_crashed_attempt() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalFiles::new(dir.path());
        let data: String = (1..9).map(raw_line).collect();
        store
            .write_atomic("raw/a.tsv", data.as_bytes())
            .expect("write raw");
        let crashing = crash_before_commit(&store);
        let cfg = CleanConfig::default();
        let run = |files: &dyn FileStore| {
            clean_incremental(
                files,
                "raw",
                files,
                "clean",
                cfg.clone(),
                Shard::default(),
                |_| {},
            )
        };
        assert!(run(&crashing).is_err());
        assert!(run(&crashing).is_err());
        // Two failed attempts, but only the latest one's staging directory.
        assert_eq!(store.list_dirs("clean/_staging").expect("dirs").len(), 1);
        let s = run(&store).expect("clean");
        assert_eq!(s.report.rows_out, 8);
        assert!(store.list_dirs("clean/_staging").expect("dirs").is_empty());
        let runs = committed_runs(&store, "clean").expect("runs");
        assert_eq!(runs.len(), 1);
        let mut files = partition_files(&store);
        files.sort();
        assert_eq!(files, runs[0].parquet_files);
        let rows: u64 = files
            .iter()
            .map(|p| {
                ParquetReader::new(Cursor::new(store.read(p).expect("read")))
                    .finish()
                    .expect("parquet")
                    .height() as u64
            })
            .sum();
        assert_eq!(rows, 8);
    }

    /// A local store that records the paths it reads and, with
    /// `old_manifests`, serves manifests as an older version wrote them
    /// (without `order_ids`), so every run is read when de-duplicating.
    struct Observed {
        files: LocalFiles,
        reads: std::sync::Mutex<Vec<String>>,
        old_manifests: bool,
    }

    impl Observed {
        fn new(files: LocalFiles, old_manifests: bool) -> Self {
            Observed {
                files,
                reads: Default::default(),
                old_manifests,
            }
        }

        /// The Parquet files read since the last call, sorted.
        fn parquet_reads(&self) -> Vec<String> {
            let mut reads = std::mem::take(&mut *self.reads.lock().expect("lock"));
            reads.retain(|p| p.ends_with(".parquet"));
            reads.sort();
            reads
        }
    }

    impl FileStore for Observed {
        fn list(&self, dir: &str) -> Result<Vec<crate::store::files::FileEntry>, FileStoreError> {
            self.files.list(dir)
        }
        fn read(&self, path: &str) -> Result<Vec<u8>, FileStoreError> {
            self.reads.lock().expect("lock").push(path.to_string());
            let data = self.files.read(path)?;
            if !(self.old_manifests && path.contains(MANIFEST_DIR)) {
                return Ok(data);
            }
            let mut manifest: serde_json::Value =
                serde_json::from_slice(&data).expect("manifest json");
            let fields = manifest.as_object_mut().expect("manifest object");
            let range = fields.remove("order_ids");
            // Every test run keeps rows, so every manifest has a range to hide.
            assert!(range.is_some(), "{path}: no order_ids");
            Ok(serde_json::to_vec(&manifest).expect("json"))
        }
        fn write_atomic(&self, path: &str, data: &[u8]) -> Result<(), FileStoreError> {
            self.files.write_atomic(path, data)
        }
        fn exists(&self, path: &str) -> Result<bool, FileStoreError> {
            self.files.exists(path)
        }
        fn remove_all(&self, dir: &str) -> Result<(), FileStoreError> {
            self.files.remove_all(dir)
        }
        fn remove_empty_dir(&self, dir: &str) -> Result<bool, FileStoreError> {
            self.files.remove_empty_dir(dir)
        }
        fn describe(&self, path: &str) -> String {
            self.files.describe(path)
        }
        fn list_dirs(
            &self,
            dir: &str,
        ) -> Result<Vec<crate::store::files::DirEntry>, FileStoreError> {
            self.files.list_dirs(dir)
        }
        fn write_files(
            &self,
            dirs: &[String],
            files: &mut dyn Iterator<Item = (String, Vec<u8>)>,
        ) -> Result<(), FileStoreError> {
            self.files.write_files(dirs, files)
        }
        fn rename_files(&self, moves: &[(String, String)]) -> Result<(), FileStoreError> {
            self.files.rename_files(moves)
        }
    }

    /// The manifests as committed, read one by one (no checkpoint involved).
    fn manifests_on_disk(store: &LocalFiles) -> Vec<RunManifest> {
        store
            .list("clean/_manifest")
            .expect("list")
            .into_iter()
            .map(|e| serde_json::from_slice(&store.read(&e.path).expect("read")).expect("json"))
            .collect()
    }

    #[test]
    fn checkpoints_replace_reading_every_manifest_and_answer_the_same() {
        let dir = tempfile::tempdir().expect("tempdir");
        let local = LocalFiles::new(dir.path());
        let store = Observed::new(local.clone(), false);
        let runs = CHECKPOINT_EVERY + 6;
        for i in 0..runs as u32 {
            let data: String = (i * 10..i * 10 + 10).map(raw_line).collect();
            local
                .write_atomic(&format!("raw/b{i:03}.tsv"), data.as_bytes())
                .expect("write raw");
            let s = clean_all(&store, CleanConfig::default());
            assert_eq!(s.report.rows_out, 10, "run {i}");
            let checkpoints = local.list("clean/_checkpoints").expect("list").len();
            assert_eq!(
                checkpoints,
                usize::from(i as usize + 1 >= CHECKPOINT_EVERY),
                "run {i}"
            );
        }
        let truth = manifests_on_disk(&local);
        assert_eq!(truth.len(), runs);

        // One checkpoint read and the 6 manifests committed after it.
        store.reads.lock().expect("lock").clear();
        assert_eq!(committed_runs(&store, "clean").expect("runs"), truth);
        let reads = std::mem::take(&mut *store.reads.lock().expect("lock"));
        let manifests = reads.iter().filter(|p| p.contains("/_manifest/")).count();
        let checkpoints = reads
            .iter()
            .filter(|p| p.contains("/_checkpoints/"))
            .count();
        assert_eq!((manifests, checkpoints), (6, 1), "{reads:?}");

        // A manifest removed by hand is gone, although the checkpoint has it.
        let gone = local.list("clean/_manifest").expect("list")[0].path.clone();
        local.remove_all(&gone).expect("remove manifest");
        let truth = manifests_on_disk(&local);
        assert_eq!(committed_runs(&store, "clean").expect("runs"), truth);

        // An unreadable checkpoint is skipped: every manifest is read instead.
        let ckpt = local.list("clean/_checkpoints").expect("list")[0]
            .path
            .clone();
        local.write_atomic(&ckpt, b"{not json").expect("corrupt");
        store.reads.lock().expect("lock").clear();
        assert_eq!(committed_runs(&store, "clean").expect("runs"), truth);
        let reads = std::mem::take(&mut *store.reads.lock().expect("lock"));
        let manifests = reads.iter().filter(|p| p.contains("/_manifest/")).count();
        assert_eq!(manifests, runs - 1);

        // Cleaning goes on from the manifests: only the raw file of the run
        // whose manifest was removed counts as not cleaned.
        let again = clean_all(&store, CleanConfig::default());
        assert!(again.run.is_some());
        assert_eq!(
            (again.raw_files, again.already_cleaned),
            (1, runs as u64 - 1)
        );
    }

    /// What the last of a series of runs did: its summary, the Parquet
    /// files it read, its manifest and the order ids it kept (sorted); and
    /// the manifests of the runs before it, in order.
    struct LastRun {
        summary: CleanRunSummary,
        read: Vec<String>,
        manifest: RunManifest,
        kept: Vec<i64>,
        earlier: Vec<RunManifest>,
    }

    /// Commits one run per block of ids in `blocks`, then cleans `new` (each
    /// from its own raw file), in a fresh local store seen through
    /// [`Observed`].
    fn runs_then(
        blocks: &[std::ops::Range<u32>],
        new: std::ops::Range<u32>,
        old_manifests: bool,
    ) -> LastRun {
        let dir = tempfile::tempdir().expect("tempdir");
        let local = LocalFiles::new(dir.path());
        let store = Observed::new(local.clone(), old_manifests);
        let clean = |i: usize, ids: std::ops::Range<u32>| {
            let data: String = ids.map(raw_line).collect();
            local
                .write_atomic(&format!("raw/b{i}.tsv"), data.as_bytes())
                .expect("write raw");
            clean_all(&store, CleanConfig::default())
        };
        for (i, ids) in blocks.iter().enumerate() {
            let s = clean(i, ids.clone());
            assert_eq!(s.report.rows_out, ids.len() as u64);
        }
        // In block order (manifests are listed in run id order).
        let mut earlier = committed_runs(&local, "clean").expect("runs");
        earlier.sort_by_key(|m| m.raw_files.clone());
        store.parquet_reads();
        let summary = clean(blocks.len(), new);
        let read = store.parquet_reads();
        let run = summary.run.clone().expect("a run");
        let manifest = committed_runs(&local, "clean")
            .expect("runs")
            .into_iter()
            .find(|m| m.run == run)
            .expect("the last run's manifest");
        let mut kept: Vec<i64> = Vec::new();
        for path in &manifest.parquet_files {
            let df = ParquetReader::new(Cursor::new(local.read(path).expect("read")))
                .finish()
                .expect("parquet");
            let ids = df
                .column("order_id")
                .expect("ids")
                .i64()
                .expect("i64")
                .clone();
            kept.extend(ids.iter().flatten());
        }
        kept.sort_unstable();
        LastRun {
            summary,
            read,
            manifest,
            kept,
            earlier,
        }
    }

    /// The Parquet files of the `which` runs of `runs`, sorted.
    fn files_of(runs: &[RunManifest], which: &[usize]) -> Vec<String> {
        let mut files: Vec<String> = which
            .iter()
            .flat_map(|i| runs[*i].parquet_files.clone())
            .collect();
        files.sort();
        files
    }

    /// Runs the series with ranged manifests and with manifests of an older
    /// version (all runs read): the outcomes must be the same. Returns the
    /// ranged one.
    fn same_as_reading_everything(
        blocks: &[std::ops::Range<u32>],
        new: std::ops::Range<u32>,
    ) -> LastRun {
        let pruned = runs_then(blocks, new.clone(), false);
        let everything = runs_then(blocks, new, true);
        let all: Vec<usize> = (0..blocks.len()).collect();
        assert_eq!(everything.read, files_of(&everything.earlier, &all));
        let outcome = |s: &CleanRunSummary| {
            let r = &s.report;
            (
                s.run.clone(),
                s.cross_run_duplicates,
                (r.rows_in, r.rows_out, r.dropped.clone(), r.fixed.clone()),
            )
        };
        assert_eq!(outcome(&pruned.summary), outcome(&everything.summary));
        assert_eq!(pruned.kept, everything.kept);
        assert_eq!(pruned.manifest, everything.manifest);
        pruned
    }

    const BLOCKS: [std::ops::Range<u32>; 4] = [100..110, 200..210, 300..310, 400..410];

    #[test]
    fn manifests_record_the_range_of_the_ids_kept() {
        let last = runs_then(&BLOCKS[..2], 150..160, false);
        let range = |min: &str, max: &str| {
            Some(IdRange {
                min: min.into(),
                max: max.into(),
            })
        };
        assert_eq!(last.earlier[0].order_ids, range("100", "109"));
        assert_eq!(last.earlier[1].order_ids, range("200", "209"));
        assert_eq!(last.manifest.order_ids, range("150", "159"));
        // Byte order, not numeric order: "1000" < "999".
        assert_eq!(
            IdRange::of([Some("999"), None, Some("1000"), Some("99")]),
            range("1000", "999")
        );
        assert_eq!(IdRange::of([None]), None);
        // Manifests of older versions have no range.
        let old: RunManifest = serde_json::from_str(
            r#"{"run": "r", "shard": {"index": 0, "count": 1}, "raw_files": [],
                "parquet_files": [], "partitions": {}, "report": "x", "rows_out": 0}"#,
        )
        .expect("old manifest");
        assert_eq!(old.order_ids, None);
    }

    #[test]
    fn a_rerun_of_seen_ids_drops_them_all() {
        let last = same_as_reading_everything(&BLOCKS, 200..210);
        assert_eq!(last.summary.cross_run_duplicates, 10);
        assert_eq!(last.summary.report.rows_out, 0);
        assert_eq!(last.summary.report.dropped["duplicate_order_id"], 10);
        assert!(last.summary.report.is_consistent());
        assert!(last.kept.is_empty());
        assert_eq!(last.manifest.order_ids, None);
        assert_eq!(last.read, files_of(&last.earlier, &[1]));
    }

    #[test]
    fn only_runs_whose_ids_overlap_are_read() {
        let last = same_as_reading_everything(&BLOCKS, 205..215);
        assert_eq!(last.read, files_of(&last.earlier, &[1]));
        assert_eq!(last.summary.cross_run_duplicates, 5);
        assert_eq!(last.summary.report.rows_out, 5);
        assert_eq!(last.kept, (210..215).collect::<Vec<i64>>());

        // Ids beyond every earlier run: nothing is read, nothing dropped.
        let last = same_as_reading_everything(&BLOCKS, 500..510);
        assert!(last.read.is_empty(), "{:?}", last.read);
        assert_eq!(last.summary.cross_run_duplicates, 0);
        assert_eq!(last.summary.report.rows_out, 10);
    }

    #[test]
    fn ids_straddling_two_runs_read_both() {
        let last = same_as_reading_everything(&BLOCKS, 305..405);
        assert_eq!(last.read, files_of(&last.earlier, &[2, 3]));
        assert_eq!(last.summary.cross_run_duplicates, 10);
        assert_eq!(last.summary.report.rows_out, 90);
        let expected: Vec<i64> = (310..400).collect();
        assert_eq!(last.kept, expected);
    }

    #[test]
    fn staging_names_parse() {
        assert_eq!(
            parse_staging("2-3-0123456789abcdef-00ff"),
            Some((Shard { index: 2, count: 3 }, "0123456789abcdef"))
        );
        assert_eq!(parse_staging("0-1-run"), None);
        assert_eq!(parse_staging("x-1-run-a"), None);
    }
}
