use super::*;
use crate::store::files::testing::FailingRenames;
use crate::store::LocalFiles;

/// One unsharded run from `raw/` to `clean/` of `store`.
pub(super) fn clean_all(store: &dyn FileStore, cfg: CleanConfig) -> CleanRunSummary {
    clean_incremental(store, "raw", store, "clean", cfg, Shard::default(), |_| {}).expect("clean")
}

pub(super) fn raw_line(id: u32) -> String {
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
                .and_then(crate::clean::timestamp::to_text)
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
                .and_then(crate::clean::timestamp::to_text)
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
/// Whether a rename of `moves` (call `n`) fails.
type FailsWhen = fn(&[(String, String)], usize) -> bool;

fn crash_before_commit(store: &LocalFiles) -> FailingRenames<FailsWhen> {
    FailingRenames::new(store.clone(), |moves: &[(String, String)], _| {
        moves.iter().any(|(_, to)| to.contains(MANIFEST_DIR))
    })
}

/// Parquet files under `clean/date=*/`.
pub(super) fn partition_files(store: &LocalFiles) -> Vec<String> {
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
    crashing.revive();
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
                .and_then(crate::clean::timestamp::to_text)
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
    fn list_hidden(
        &self,
        dir: &str,
    ) -> Result<Vec<crate::store::files::FileEntry>, FileStoreError> {
        self.files.list_hidden(dir)
    }
    fn read(&self, path: &str) -> Result<Vec<u8>, FileStoreError> {
        self.reads.lock().expect("lock").push(path.to_string());
        let data = self.files.read(path)?;
        if !(self.old_manifests && path.contains(MANIFEST_DIR)) {
            return Ok(data);
        }
        let mut manifest: serde_json::Value = serde_json::from_slice(&data).expect("manifest json");
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
    fn list_dirs(&self, dir: &str) -> Result<Vec<crate::store::files::DirEntry>, FileStoreError> {
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
            .and_then(crate::clean::timestamp::to_text)
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
