//! One clean run: listing the pending raw files, cleaning them, dropping ids earlier runs
//! kept, partitioning by date, writing and committing.

use super::*;

/// How many of `pending` (in path order) one run takes: files while their sizes
/// add up to at most `max_bytes`, and always the first.
pub(super) fn run_share(pending: &[FileEntry], max_bytes: u64) -> usize {
    crate::chunks::by_size(pending, max_bytes, |e| e.len)
        .first()
        .map_or(0, |run| run.len())
}

/// The order ids of a frame's `order_id` column, as text.
pub(super) fn order_id_text(df: &DataFrame) -> PolarsResult<Column> {
    df.column("order_id")
        .and_then(|c| c.cast(&DataType::String))
}

/// The order ids in `new` that committed runs already kept (as text), read
/// from the Parquet files of only the runs whose [`IdRange`] overlaps `new`
/// (and of runs with no range: manifests of older versions).
pub(super) fn kept_ids(
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
pub(super) struct Partitioned {
    df: DataFrame,
    groups: Vec<(String, Vec<IdxSize>)>,
    removed: u64,
    kept: Option<IdRange>,
}

/// Drops a run's clean rows whose order id (`ids`, as text, whose range is
/// `all`) is in `seen`, and groups the rest by the date of their timestamp.
/// The partitions themselves are cut out later ([`take_rows`]), in parallel
/// with their encoding.
pub(super) fn partition_run(
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
pub(super) fn take_rows(
    df: &DataFrame,
    idx: Vec<IdxSize>,
    name: &str,
) -> Result<DataFrame, IncrementalError> {
    df.take(&IdxCa::from_vec("idx".into(), idx))
        .map_err(|source| IncrementalError::Parquet {
            file: name.to_string(),
            source,
        })
}

/// Encodes one partition as Snappy Parquet.
pub(super) fn encode(mut df: DataFrame, name: &str) -> Result<Vec<u8>, IncrementalError> {
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

/// Cuts each `(path, rows)` partition out of `df` and encodes it on the rayon
/// pool, writing the files as they come, with `small` (already encoded) first,
/// in one [`FileStore::write_files`] batch.
pub(super) fn encode_and_write(
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
    progress: impl FnMut(u64),
) -> Result<CleanRunSummary, IncrementalError> {
    let (out, clean_dir, shard) = (run_cfg.out, run_cfg.clean_dir.as_str(), run_cfg.shard);
    let mut committed = checkpoint::read_committed(out, clean_dir)?;
    sweep_staging(out, clean_dir, &committed.runs, shard)?;
    let done: HashSet<&str> = committed
        .runs
        .iter()
        .flat_map(|r| r.raw_files.iter().map(String::as_str))
        .collect();
    let mut already_cleaned = 0;
    let mut pending = Vec::new();
    for entry in run_cfg.list_raw()? {
        if !shard.owns(&raw_shard_key(&entry.path)) {
            continue;
        }
        if done.contains(entry.path.as_str()) {
            already_cleaned += 1;
        } else {
            pending.push(entry);
        }
    }
    if pending.is_empty() {
        tracing::info!(shard = %shard, "no new raw files");
        return Ok(CleanRunSummary {
            shard: shard.to_string(),
            already_cleaned,
            ..Default::default()
        });
    }
    // In path order: the store lists it so.
    let take = run_share(&pending, run_cfg.max_run_bytes);
    let pending_after = (pending.len() - take) as u64;
    let pending: Vec<String> = pending.into_iter().take(take).map(|e| e.path).collect();
    let runs = committed.runs.clone();
    let mut known = CommittedRuns {
        files: out,
        runs: &runs,
    };
    let (mut summary, _) =
        commit_run(run_cfg, pending, None, &mut committed, &mut known, progress)?;
    summary.already_cleaned = already_cleaned;
    summary.pending_after = pending_after;
    Ok(summary)
}

/// Where a run looks up the order ids earlier runs kept, to drop them as duplicates.
pub trait KnownIds {
    /// Which of `ids` (whose range is `range`) an earlier committed run kept.
    fn kept(
        &mut self,
        ids: &StringChunked,
        range: &IdRange,
    ) -> Result<HashSet<String>, IncrementalError>;

    /// Learns the ids a run kept (range `range`), once it is committed.
    fn committed(&mut self, _kept: &StringChunked, _range: Option<&IdRange>) {}
}

/// The ids in the Parquet files of committed runs (only runs whose [`IdRange`] overlaps).
pub struct CommittedRuns<'a> {
    /// Store of the clean directory.
    pub files: &'a dyn FileStore,
    /// The committed runs.
    pub runs: &'a [RunManifest],
}

impl KnownIds for CommittedRuns<'_> {
    fn kept(
        &mut self,
        _ids: &StringChunked,
        range: &IdRange,
    ) -> Result<HashSet<String>, IncrementalError> {
        if self.runs.is_empty() {
            return Ok(HashSet::new());
        }
        kept_ids(self.files, self.runs, range)
    }
}

/// Cleans `pending` (raw file paths of `run_cfg.raw`, in order; `held`: their bytes, when the
/// caller has them, else they are read) as one run and commits it in `run_cfg.clean_dir`,
/// dropping ids `known` says earlier runs kept. `committed` (the
/// runs committed before) gains the new run, and decides when a manifest checkpoint is due.
/// Returns the run's summary and manifest.
pub fn commit_run(
    run_cfg: &CleanRun,
    pending: Vec<String>,
    held: Option<Vec<Vec<u8>>>,
    committed: &mut Committed,
    known: &mut dyn KnownIds,
    mut progress: impl FnMut(u64),
) -> Result<(CleanRunSummary, RunManifest), IncrementalError> {
    let (raw, out, clean_dir) = (run_cfg.raw, run_cfg.out, run_cfg.clean_dir.as_str());
    let (cfg, shard) = (run_cfg.cfg.clone(), run_cfg.shard);
    let started = Instant::now();
    let mut summary = CleanRunSummary {
        shard: shard.to_string(),
        ..Default::default()
    };
    let shard_text = shard.to_string();
    let mut key: Vec<&str> = vec![&shard_text];
    key.extend(pending.iter().map(String::as_str));
    let run = fnv_hex(&key);
    let report_path = join(clean_dir, &format!("report-{run}.json"));
    let run_name = out.describe(&join(clean_dir, &format!("date=*/part-{run}.parquet")));
    tracing::info!(run = %run, files = pending.len(), shard = %shard, "cleaning new raw files");

    let dedup = cfg.rule_on(Rule::DuplicateOrderId);
    let mut cleaner = Cleaner::in_memory(cfg, &run_name);
    // A file that is not TSV stops the cleaning; the rest are still looked at, so the
    // error names them all.
    let mut refused: Vec<(String, &'static str)> = Vec::new();
    let mut clean_file = |path: &str, data: &[u8]| -> Result<(), IncrementalError> {
        let name = raw.describe(path);
        if let Some(why) = not_tsv(path, data) {
            refused.push((name, why));
        } else if refused.is_empty() {
            cleaner.clean_reader(data, &name, &mut progress)?;
        }
        Ok(())
    };
    match held {
        Some(held) => {
            for (path, data) in pending.iter().zip(held) {
                clean_file(path, &data)?;
            }
        }
        None => {
            for (path, data) in pending.iter().zip(raw.read_files(&pending)) {
                clean_file(path, &data?)?;
            }
        }
    }
    if !refused.is_empty() {
        return Err(IncrementalError::NotTsv { files: refused });
    }
    let (mut report, clean_rows) = cleaner.finish_frames()?;
    let cleaned = started.elapsed();
    let pe = |source| IncrementalError::Parquet {
        file: run_name.clone(),
        source,
    };
    let ids = order_id_text(&clean_rows).map_err(pe)?;
    let ids = ids.str().map_err(pe)?;
    let new_ids = IdRange::of(ids.iter());
    let seen = match &new_ids {
        Some(new) if dedup => known.kept(ids, new)?,
        _ => HashSet::new(),
    };
    let mut split = partition_run(clean_rows, ids, new_ids, &seen, &run_name)?;
    if split.removed > 0 {
        report.columns = crate::clean::profile::profile(&split.df).map_err(pe)?;
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
    let kept_ids = order_id_text(&split.df)
        .and_then(|c| c.str().cloned())
        .map_err(|source| IncrementalError::Parquet {
            file: run_name.clone(),
            source,
        })?;
    // On disk, the timestamps in their stored type (grouping by date used the text).
    split.df = crate::clean::timestamp::to_stored(split.df, &run_cfg.cfg).map_err(pe)?;
    let mut written = started.elapsed();
    let attempt = (|| -> Result<(), IncrementalError> {
        encode_and_write(out, &dirs, small, &split.df, parts)?;
        written = started.elapsed();
        out.rename_files(&moves)?;
        // The commit.
        out.rename_files(&[(staged_manifest, manifest_path.clone())])?;
        Ok(())
    })();
    drop(split.df);
    if let Err(e) = attempt {
        abandon(out, clean_dir, &committed.runs, shard, &manifest_path);
        return Err(e);
    }
    if let Err(e) = out.remove_all(&staging) {
        tracing::warn!(error = %e, "could not remove the staging directory (the next run sweeps it)");
    }
    // `_staging` itself goes only when empty, in one step of the store, so a
    // directory another shard's attempt creates meanwhile is never taken.
    if let Err(e) = out.remove_empty_dir(&join(clean_dir, STAGING_DIR)) {
        tracing::warn!(error = %e, "could not remove the empty staging directory");
    }
    // The run is committed; a checkpoint only saves later runs reading time.
    let mut checkpointed = false;
    if committed.uncovered + 1 >= CHECKPOINT_EVERY {
        match checkpoint::write(out, clean_dir, committed, &manifest, manifest_len) {
            Ok(()) => checkpointed = true,
            Err(e) => {
                tracing::warn!(error = %e, "could not write a manifest checkpoint (the next run tries again)")
            }
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
    known.committed(&kept_ids, manifest.order_ids.as_ref());
    committed.record(manifest.clone(), manifest_len, checkpointed);
    Ok((summary, manifest))
}

/// After a failed attempt: removes its staging directory and the files it had moved into
/// place, unless its manifest made it (a commit whose answer was lost), in the way
/// [`sweep_staging`] removes a crashed attempt's (every staging directory of the shard
/// first, so no attempt can still commit). Best effort: what fails here is logged and
/// left to the next run's sweep.
fn abandon(
    out: &dyn FileStore,
    clean_dir: &str,
    runs: &[RunManifest],
    shard: Shard,
    manifest_path: &str,
) {
    match out.exists(manifest_path) {
        Ok(false) => {}
        Ok(true) => {
            tracing::warn!(manifest = %out.describe(manifest_path), "the run committed although a step reported an error")
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot tell whether the failed run committed; its files are left to the next run's sweep");
            return;
        }
    }
    match sweep_staging(out, clean_dir, runs, shard) {
        Ok(n) => tracing::info!(swept = n, "removed the failed run's temporary files"),
        Err(e) => {
            tracing::warn!(error = %e, "could not remove the failed run's temporary files (the next run sweeps them)")
        }
    }
    if let Err(e) = out.remove_empty_dir(&join(clean_dir, STAGING_DIR)) {
        tracing::warn!(error = %e, "could not remove the empty staging directory");
    }
}

pub(super) fn to_json<T: Serialize>(
    out: &dyn FileStore,
    file: &str,
    value: &T,
) -> Result<Vec<u8>, IncrementalError> {
    serde_json::to_vec_pretty(value).map_err(|source| IncrementalError::Json {
        file: out.describe(file),
        source,
    })
}
