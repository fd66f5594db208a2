//! The continuous streaming stage: one long-running process per shard that tails the
//! shard's Kafka partitions and, every few seconds, commits a micro-batch all the way to
//! the serving table.
//!
//! A micro-batch goes through the same steps as the batch Jobs, in order, each committed
//! under the batch's identity:
//!
//! 1. its records are written as raw files named by their offset ranges (the sink's
//!    layout: the committed names are where every partition resumes);
//! 2. those files are cleaned as one run, committed by its manifest (the run id is the hash
//!    of its raw files, so a retry rewrites the same paths);
//! 3. the run's Parquet files are loaded into the fact table and the aggregates (row keys
//!    from order ids, aggregates rows per file: rewriting them is idempotent), and its
//!    quality report is recorded;
//! 4. the shard's [`StreamMark`] row says what is visible and how late it became visible.
//!
//! Offsets are checked as the sink checks them: records deleted before they were read (a
//! partition's first record above the offset it resumes from, or a record past the next
//! one expected) fail the stage, unless [`StreamConfig::skip_offset_gaps`]: then they are
//! skipped, logged and counted, and the batch's raw file is cut at the gap.
//!
//! A crash anywhere is repaired on start ([`run_stream`]): committed runs of the shard whose
//! aggregates rows are missing are loaded, committed raw files no run has cleaned are
//! cleaned and loaded, and the partitions resume after the committed raw files. So no record
//! is lost and none is counted twice.
//!
//! Duplicates across batches are found by [`StreamIds`]: the ids of recent runs in memory,
//! older runs by their id ranges, and only ids inside an older range looked up in the fact
//! table, so a batch's check does not grow with the number of earlier batches.

mod known;
mod mark;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::clean::{CleanConfig, QualityReport};
use crate::incremental::{
    commit_run, raw_shard_key, read_committed, sweep_staging, CleanRun, Committed,
    IncrementalError, RawInput, RunManifest, Shard,
};
use crate::load::{load_files, put_report, LoadConfig, LoadError, LoadInput, AGG_PREFIX};
use crate::sink::{resume_offsets, write_held, RawFileName, Sealed, SinkConfig, SinkError};
use crate::store::{
    FileStore, FileStoreError, Gaps, LogError, Polled, TableError, TableStore, Tail,
};

pub use known::{Intervals, StreamIds};
pub use mark::{LogEntry, StreamMark, LOG_PREFIX, MARK_PREFIX};

/// Errors of the streaming stage, naming the topic, file or table involved.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// Reading the topic failed.
    #[error("reading topic {topic}: {source}")]
    Log {
        /// The topic.
        topic: String,
        /// The log error.
        source: LogError,
    },
    /// The raw or clean file store failed.
    #[error("file store: {0}")]
    Files(#[from] FileStoreError),
    /// Writing the raw files failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// Cleaning or committing a run failed.
    #[error(transparent)]
    Clean(#[from] IncrementalError),
    /// Loading a run failed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The serving table failed.
    #[error("serving table: {0}")]
    Table(#[from] TableError),
    /// A quality report or mark could not be encoded or decoded.
    #[error("{what}: {source}")]
    Json {
        /// The file or row.
        what: String,
        /// The JSON error.
        source: serde_json::Error,
    },
}

/// How the stage streams.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// The topic.
    pub topic: String,
    /// Directory of the raw files (the sink's layout).
    pub raw_dir: String,
    /// The clean directory (runs, reports, `_manifest/`).
    pub clean_dir: String,
    /// Cleaning rules.
    pub clean: CleanConfig,
    /// Tables and row keys.
    pub load: LoadConfig,
    /// This process's share of the partitions.
    pub shard: Shard,
    /// How long a record waits at most before its micro-batch commits.
    pub batch_interval: Duration,
    /// Records one micro-batch takes at most.
    pub max_batch_records: usize,
    /// Raw bytes one run of the start-up catch-up takes at most.
    pub max_run_bytes: u64,
    /// Table writers of a load.
    pub load_concurrency: usize,
    /// Order ids of recent runs held in memory for the duplicate check (about 60 bytes each).
    pub memory_ids: usize,
    /// Skip (log and count) records deleted before they were read instead of failing.
    pub skip_offset_gaps: bool,
}

/// Where the stage reads and writes.
#[derive(Clone, Copy)]
pub struct StreamStores<'a> {
    /// Store of the raw files.
    pub raw: &'a dyn FileStore,
    /// Store of the clean directory.
    pub out: &'a dyn FileStore,
    /// The serving tables.
    pub tables: &'a dyn TableStore,
}

/// One committed micro-batch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchDone {
    /// Records read from the topic.
    pub records: u64,
    /// Clean rows loaded.
    pub rows: u64,
    /// Rows dropped as duplicates of an earlier batch.
    pub cross_batch_duplicates: u64,
    /// Milliseconds from the oldest record's broker timestamp to the batch being visible.
    pub lag_ms: Option<u64>,
    /// Milliseconds writing the raw files.
    pub raw_ms: u64,
    /// Milliseconds cleaning and committing the run (the duplicate lookup included).
    pub clean_ms: u64,
    /// Milliseconds of the duplicate check alone.
    pub dedup_ms: u64,
    /// Ids the duplicate check looked up in the fact table.
    pub looked_up: u64,
    /// Milliseconds loading the run and writing the mark.
    pub load_ms: u64,
}

/// What a streaming run did until it stopped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamSummary {
    /// Partitions this shard read, and the offset each resumed from.
    pub resumed_from: BTreeMap<u32, u64>,
    /// Runs committed before a crash and loaded on start.
    pub recovered_runs: u64,
    /// Raw files committed before a crash and cleaned on start.
    pub recovered_files: u64,
    /// Micro-batches committed.
    pub batches: u64,
    /// Records read.
    pub records: u64,
    /// Clean rows loaded.
    pub rows: u64,
    /// Rows dropped as duplicates of an earlier batch.
    pub cross_batch_duplicates: u64,
    /// Largest lag of a batch, milliseconds.
    pub max_lag_ms: Option<u64>,
    /// Gaps skipped in the partitions' offsets (with `skip_offset_gaps`).
    #[serde(default)]
    pub offset_gaps: u64,
    /// Offsets skipped over those gaps: records deleted before they were read.
    #[serde(default)]
    pub skipped_offsets: u64,
}

/// The partitions of a topic of `partitions` that `shard` owns (the raw files of one
/// partition belong to one shard, as in the clean Jobs).
pub fn owned_partitions(topic: &str, partitions: u32, shard: Shard) -> Vec<u32> {
    (0..partitions)
        .filter(|p| shard.owns(&format!("{topic}+{p}")))
        .collect()
}

/// Milliseconds since the epoch.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// One shard's streaming state.
struct Streamer<'a> {
    stores: StreamStores<'a>,
    cfg: &'a StreamConfig,
    sink: SinkConfig,
    committed: Committed,
    known: StreamIds,
    mark: StreamMark,
    summary: StreamSummary,
}

/// The clean runs of the stage: its raw directory into its clean directory.
fn clean_run<'a>(stores: StreamStores<'a>, cfg: &StreamConfig) -> CleanRun<'a> {
    CleanRun {
        raw: stores.raw,
        input: RawInput::Dir(cfg.raw_dir.clone()),
        out: stores.out,
        clean_dir: cfg.clean_dir.clone(),
        cfg: cfg.clean.clone(),
        shard: cfg.shard,
        max_run_bytes: cfg.max_run_bytes,
    }
}

impl Streamer<'_> {
    /// Loads a committed run: its Parquet files, then its report, then its entry in the
    /// shard's log.
    /// `oldest`: the broker timestamp of the run's oldest record, when known.
    fn load_run(&mut self, run: &RunManifest, oldest: Option<i64>) -> Result<u64, StreamError> {
        let out = self.stores.out;
        let inputs: Vec<LoadInput> = run
            .parquet_files
            .iter()
            .map(|p| LoadInput {
                agg_key: out.describe(p),
                path: p.clone(),
            })
            .collect();
        let loaded = load_files(
            out,
            &inputs,
            self.stores.tables,
            &self.cfg.load,
            self.cfg.load_concurrency,
            |_| {},
        )?;
        let file = out.describe(&run.report);
        let report: QualityReport =
            serde_json::from_slice(&out.read(&run.report)?).map_err(|source| {
                StreamError::Json {
                    what: file.clone(),
                    source,
                }
            })?;
        put_report(self.stores.tables, &self.cfg.load, &file, &report)?;
        let entry = LogEntry {
            run: run.run.clone(),
            files: inputs.into_iter().map(|i| i.agg_key).collect(),
            report: file,
            rows: loaded.rows,
            loaded_at_ms: now_ms(),
            lag_ms: oldest.map(|t| (now_ms() - t).max(0) as u64),
        };
        self.mark
            .log(self.stores.tables, &self.cfg.load, self.cfg.shard, &entry)?;
        self.mark.rows += loaded.rows;
        Ok(loaded.rows)
    }

    /// Cleans `pending` raw files (with their bytes if held) as one run, commits and loads it.
    fn clean_and_load(
        &mut self,
        pending: Vec<String>,
        held: Option<Vec<Vec<u8>>>,
        oldest: Option<i64>,
    ) -> Result<(u64, u64, Duration, Duration), StreamError> {
        let started = Instant::now();
        let run_cfg = clean_run(self.stores, self.cfg);
        let (summary, manifest) = commit_run(
            &run_cfg,
            pending,
            held,
            &mut self.committed,
            &mut self.known,
            |_| {},
        )?;
        let cleaned = started.elapsed();
        let rows = self.load_run(&manifest, oldest)?;
        Ok((
            rows,
            summary.cross_run_duplicates,
            cleaned,
            started.elapsed() - cleaned,
        ))
    }

    /// Repairs what a crash left: loads committed runs of this shard that are not loaded,
    /// cleans and loads committed raw files that no run has cleaned.
    fn recover(&mut self, owned: &[u32]) -> Result<(), StreamError> {
        let (out, clean_dir, shard) = (self.stores.out, &self.cfg.clean_dir, self.cfg.shard);
        sweep_staging(out, clean_dir, &self.committed.runs, shard)?;
        // Temporary raw files of this shard's partitions: a writer killed before its rename.
        for tmp in self.stores.raw.list_hidden(&self.cfg.raw_dir)? {
            let name = tmp.path.rsplit('/').next().unwrap_or(&tmp.path);
            let raw_name = name
                .strip_prefix('.')
                .and_then(|n| n.strip_suffix(".tmp"))
                .and_then(|n| n.rsplit_once('.'))
                .and_then(|(n, _pid)| RawFileName::parse(n));
            if raw_name.is_some_and(|f| f.topic == self.cfg.topic && owned.contains(&f.partition)) {
                tracing::info!(file = %self.stores.raw.describe(&tmp.path), "removing a temporary raw file left by a crash");
                self.stores.raw.remove_all(&tmp.path)?;
            }
        }
        let agg = self.stores.tables.table(&self.cfg.load.agg_table())?;
        let mine: Vec<RunManifest> = self
            .committed
            .runs
            .iter()
            .filter(|r| r.shard == shard)
            .cloned()
            .collect();
        let keys: Vec<Vec<u8>> = mine
            .iter()
            .flat_map(|r| r.parquet_files.iter())
            .map(|p| format!("{AGG_PREFIX}{}", out.describe(p)).into_bytes())
            .collect();
        let mut present = agg.get_many(&keys)?.into_iter().map(|r| r.is_some());
        for run in &mine {
            let loaded = run
                .parquet_files
                .iter()
                .fold(true, |all, _| present.next().unwrap_or(false) && all);
            if !loaded {
                tracing::info!(run = %run.run, "loading a run committed before a restart");
                self.load_run(run, None)?;
                self.summary.recovered_runs += 1;
            }
        }
        let done: HashSet<&str> = self
            .committed
            .runs
            .iter()
            .flat_map(|r| r.raw_files.iter().map(String::as_str))
            .collect();
        let owned_keys: HashSet<String> = owned
            .iter()
            .map(|p| format!("{}+{p}", self.cfg.topic))
            .collect();
        let pending: Vec<crate::store::files::FileEntry> = self
            .stores
            .raw
            .list(&self.cfg.raw_dir)?
            .into_iter()
            .filter(|e| owned_keys.contains(&raw_shard_key(&e.path)))
            .filter(|e| !done.contains(e.path.as_str()))
            .collect();
        drop(done);
        self.summary.recovered_files = pending.len() as u64;
        for run in crate::chunks::by_size(&pending, self.cfg.max_run_bytes, |e| e.len) {
            let paths: Vec<String> = run.iter().map(|e| e.path.clone()).collect();
            tracing::info!(
                files = paths.len(),
                "cleaning raw files committed before a restart"
            );
            let (rows, dups, _, _) = self.clean_and_load(paths, None, None)?;
            self.summary.rows += rows;
            self.summary.cross_batch_duplicates += dups;
        }
        Ok(())
    }

    /// Commits one micro-batch: raw files, clean run, load, mark.
    fn commit(&mut self, batch: Vec<Polled>) -> Result<BatchDone, StreamError> {
        let started = Instant::now();
        let oldest = batch.iter().filter_map(|p| p.timestamp_ms).min();
        let records = batch.len() as u64;
        // Each partition's records, in offset order, as one raw file per contiguous range
        // (a skipped gap cuts it).
        let mut parts: BTreeMap<u32, Vec<Sealed>> = BTreeMap::new();
        for p in batch {
            let files = parts.entry(p.partition).or_default();
            let contiguous = files
                .last()
                .is_some_and(|f| f.name.last.checked_add(1) == Some(p.offset));
            if !contiguous {
                files.push(Sealed {
                    name: RawFileName {
                        topic: self.cfg.topic.clone(),
                        partition: p.partition,
                        first: p.offset,
                        last: p.offset,
                    },
                    records: 0,
                    data: Vec::new(),
                });
            }
            let Some(file) = files.last_mut() else {
                continue;
            };
            file.name.last = p.offset;
            file.records += 1;
            file.data.extend_from_slice(&p.value);
            file.data.push(b'\n');
            self.mark.offsets.insert(p.partition, p.offset + 1);
        }
        let parts: Vec<Sealed> = parts.into_values().flatten().collect();
        let mut held: Vec<(String, Vec<u8>)> = parts
            .iter()
            .map(|s| {
                (
                    format!("{}/{}", self.cfg.raw_dir, s.name.render()),
                    s.data.clone(),
                )
            })
            .collect();
        held.sort_by(|a, b| a.0.cmp(&b.0));
        write_held(self.stores.raw, &self.sink, parts)?;
        let raw_done = started.elapsed();
        let (paths, data): (Vec<String>, Vec<Vec<u8>>) = held.into_iter().unzip();
        let (rows, dups, clean, load) = self.clean_and_load(paths, Some(data), oldest)?;
        let dedup = self.known.took;
        let committed_at = now_ms();
        let lag_ms = oldest.map(|t| (committed_at - t).max(0) as u64);
        self.mark.records += records;
        self.mark.committed_at_ms = committed_at;
        self.mark.lag_ms = lag_ms;
        self.mark.put(self.stores.tables, &self.cfg.load)?;
        let done = BatchDone {
            records,
            rows,
            cross_batch_duplicates: dups,
            lag_ms,
            raw_ms: raw_done.as_millis() as u64,
            clean_ms: clean.as_millis() as u64,
            dedup_ms: dedup.as_millis() as u64,
            looked_up: self.known.looked_up as u64,
            load_ms: (load + (started.elapsed() - raw_done - clean - load)).as_millis() as u64,
        };
        let s = &mut self.summary;
        s.batches += 1;
        s.records += records;
        s.rows += rows;
        s.cross_batch_duplicates += dups;
        s.max_lag_ms = s.max_lag_ms.max(lag_ms);
        Ok(done)
    }
}

/// Streams the shard's partitions of `cfg.topic` from `tail` until `stop` is raised, then
/// commits what it holds and returns. `on_batch` sees every committed micro-batch.
pub fn run_stream(
    tail: &mut dyn Tail,
    stores: StreamStores<'_>,
    cfg: &StreamConfig,
    stop: &AtomicBool,
    mut on_batch: impl FnMut(&BatchDone),
) -> Result<StreamSummary, StreamError> {
    let load = &cfg.load;
    stores
        .tables
        .ensure_table(&load.table, &crate::load::FAMILIES)?;
    stores
        .tables
        .ensure_table(&load.agg_table(), &[crate::load::AGG_FAMILY])?;
    let sink = SinkConfig {
        topic: cfg.topic.clone(),
        dir: cfg.raw_dir.clone(),
        roll_rows: usize::MAX,
        roll_bytes: usize::MAX,
        roll_interval_ms: 0,
        skip_offset_gaps: cfg.skip_offset_gaps,
    };
    let owned = owned_partitions(&cfg.topic, tail.partitions(), cfg.shard);
    let committed = read_committed(stores.out, &cfg.clean_dir)?;
    let known = StreamIds::new(
        stores.tables.table(&load.table)?,
        load.salt_buckets,
        &committed.runs,
        cfg.memory_ids,
    );
    let mut streamer = Streamer {
        stores,
        cfg,
        sink,
        committed,
        known,
        mark: StreamMark::read(stores.tables, load, cfg.shard)?.unwrap_or_else(|| StreamMark {
            shard: cfg.shard.to_string(),
            ..Default::default()
        }),
        summary: StreamSummary::default(),
    };
    streamer
        .mark
        .skip_unmarked(stores.tables, load, cfg.shard)?;
    streamer.recover(&owned)?;
    let topic_err = |source| StreamError::Log {
        topic: cfg.topic.clone(),
        source,
    };
    let resume = resume_offsets(stores.raw, &streamer.sink)?;
    let mut gaps = Gaps::default();
    let mut positions: BTreeMap<u32, u64> = BTreeMap::new();
    for &p in &owned {
        let resumed = resume.get(&p).copied().unwrap_or(0);
        let marks = tail.watermarks(p).map_err(topic_err)?;
        let next = gaps
            .start(&cfg.topic, p, resumed, marks, cfg.skip_offset_gaps)
            .map_err(topic_err)?;
        positions.insert(p, next);
    }
    streamer.summary.resumed_from = positions.clone();
    streamer.mark.offsets = positions.clone();
    streamer.mark.committed_at_ms = now_ms();
    streamer.mark.put(stores.tables, load)?;
    tracing::info!(shard = %cfg.shard, partitions = ?owned, resumed_from = ?positions, "streaming");
    tail.assign(&positions).map_err(topic_err)?;
    let mut expected = positions;
    let max = cfg.max_batch_records.max(1);
    let mut batch: Vec<Polled> = Vec::new();
    // When the open batch is due: its first record's arrival (or broker timestamp, if older)
    // plus the interval.
    let mut due: Option<Instant> = None;
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        let now = Instant::now();
        if !batch.is_empty() && (stopping || batch.len() >= max || due.is_some_and(|d| now >= d)) {
            let done = streamer.commit(std::mem::take(&mut batch))?;
            due = None;
            tracing::debug!(?done, "committed micro-batch");
            on_batch(&done);
            continue;
        }
        if stopping {
            streamer.summary.offset_gaps = gaps.gaps;
            streamer.summary.skipped_offsets = gaps.offsets;
            return Ok(streamer.summary);
        }
        let wait = due.map_or(Duration::from_millis(200), |d| {
            d.saturating_duration_since(now)
        });
        let got = tail.poll(max - batch.len(), wait).map_err(topic_err)?;
        for p in &got {
            let next = expected.entry(p.partition).or_insert(p.offset);
            gaps.check(
                &cfg.topic,
                p.partition,
                *next,
                p.offset,
                cfg.skip_offset_gaps,
            )
            .map_err(topic_err)?;
            *next = (*next).max(p.offset + 1);
        }
        if due.is_none() {
            if let Some(first) = got.first() {
                let arrived = Instant::now();
                let age = first.timestamp_ms.map_or(Duration::ZERO, |t| {
                    Duration::from_millis((now_ms() - t).max(0) as u64)
                });
                due = Some(arrived.checked_sub(age).unwrap_or(arrived) + cfg.batch_interval);
            }
        }
        batch.extend(got);
    }
}

#[cfg(test)]
mod tests;
