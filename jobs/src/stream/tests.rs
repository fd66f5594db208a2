//! The streaming stage on the embedded stores: micro-batches reach the tables exactly once,
//! through restarts at every step and re-sent records.

use std::io::Cursor;

use super::*;
use crate::generate::{GenerateConfig, Generator, GroundTruth};
use crate::load::AGG_FAMILY;
use crate::store::table::scan_prefix;
use crate::store::{EmbeddedTables, LocalFiles, LocalLog, LogTail, MessageLog};

/// A tail that raises `stop` once it has nothing more to hand out.
struct UntilEnd<'a, L = LocalLog> {
    inner: LogTail<L>,
    stop: &'a AtomicBool,
    /// Records per poll at most (several micro-batches out of a small log).
    per_poll: usize,
}

impl<L: MessageLog> Tail for UntilEnd<'_, L> {
    fn partitions(&self) -> u32 {
        self.inner.partitions()
    }
    fn assign(&mut self, positions: &BTreeMap<u32, u64>) -> Result<(), LogError> {
        self.inner.assign(positions)
    }
    fn watermarks(&self, partition: u32) -> Result<(u64, u64), LogError> {
        self.inner.watermarks(partition)
    }
    fn poll(&mut self, max: usize, _wait: Duration) -> Result<Vec<Polled>, LogError> {
        let got = self.inner.poll(max.min(self.per_poll), Duration::ZERO)?;
        if got.is_empty() {
            self.stop.store(true, Ordering::Relaxed);
        }
        Ok(got)
    }
}

/// `rows` generated lines (no header) and their truth.
fn generate(rows: u64, seed: u64) -> (Vec<u8>, GroundTruth) {
    let g = Generator::new(GenerateConfig {
        rows,
        seed,
        header: false,
        ..Default::default()
    })
    .expect("generator");
    let mut data = Vec::new();
    let truth = g.write_all(&mut data, "memory").expect("generate");
    (data, truth)
}

struct Fixture {
    dir: tempfile::TempDir,
    files: LocalFiles,
    tables: EmbeddedTables,
    cfg: StreamConfig,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = LocalFiles::new(dir.path());
    let tables = EmbeddedTables::open(dir.path().join("tables.redb")).expect("tables");
    let cfg = StreamConfig {
        topic: "tx".into(),
        raw_dir: "raw".into(),
        clean_dir: "clean".into(),
        clean: CleanConfig::default(),
        load: LoadConfig::default(),
        shard: Shard::default(),
        batch_interval: Duration::ZERO,
        max_batch_records: 700,
        max_run_bytes: 1 << 20,
        load_concurrency: 2,
        memory_ids: 1_000,
        skip_offset_gaps: false,
    };
    Fixture {
        dir,
        files,
        tables,
        cfg,
    }
}

impl Fixture {
    /// Appends `rows` generated rows (seed `seed`) to the topic's local log.
    fn produce(&self, rows: u64, seed: u64) -> GroundTruth {
        let (lines, truth) = generate(rows, seed);
        self.append(&lines);
        truth
    }

    /// Appends raw lines to the topic's local log.
    fn append(&self, lines: &[u8]) {
        let mut log = self.log();
        crate::produce::produce(Cursor::new(lines), "generated", &mut log, |_| {})
            .expect("produce");
    }

    fn log(&self) -> LocalLog {
        LocalLog::open(self.dir.path().join("log"), 3).expect("log")
    }

    fn stream(&self) -> StreamSummary {
        self.stream_deleted(Vec::new()).expect("stream")
    }

    /// Streams the log without the records of `deleted` (partition, offsets).
    fn stream_deleted(
        &self,
        deleted: Vec<(u32, std::ops::Range<u64>)>,
    ) -> Result<StreamSummary, StreamError> {
        let stop = AtomicBool::new(false);
        let log = crate::store::log::testing::Deleted {
            log: self.log(),
            deleted,
        };
        let mut tail = UntilEnd {
            inner: LogTail::new(log),
            stop: &stop,
            per_poll: 500,
        };
        let stores = StreamStores {
            raw: &self.files,
            out: &self.files,
            tables: &self.tables,
        };
        run_stream(&mut tail, stores, &self.cfg, &stop, |_| {})
    }

    /// Rows of the fact table, and the orders the aggregates rows add up to.
    fn counts(&self) -> (usize, u64) {
        let fact = self.tables.table("ecommerce").expect("fact");
        let rows = scan_prefix(&*fact, b"", usize::MAX).expect("scan").len();
        let agg = self.tables.table("ecommerce_agg").expect("agg");
        let orders = scan_prefix(&*agg, AGG_PREFIX.as_bytes(), usize::MAX)
            .expect("scan agg")
            .iter()
            .map(|r| {
                let json = &r.cells[&format!("{AGG_FAMILY}:json")];
                serde_json::from_slice::<crate::aggregates::Aggregates>(json)
                    .expect("aggregates")
                    .total
                    .orders
            })
            .sum();
        (rows, orders)
    }

    fn mark(&self) -> StreamMark {
        StreamMark::read(&self.tables, &self.cfg.load, self.cfg.shard)
            .expect("read mark")
            .expect("a mark")
    }
}

#[test]
fn micro_batches_load_every_clean_row_once() {
    let f = fixture();
    let truth = f.produce(3_000, 7);
    let s = f.stream();
    assert_eq!(s.records, 3_000);
    assert!(s.batches >= 5, "several micro-batches: {s:?}");
    assert_eq!(s.rows, truth.full.rows_out);
    assert_eq!(
        f.counts(),
        (truth.full.rows_out as usize, truth.full.rows_out)
    );
    let mark = f.mark();
    assert_eq!(
        (mark.batches, mark.records, mark.rows),
        (s.batches, 3_000, s.rows)
    );
    // The shard's log names every loaded file once, in order.
    let agg = f.tables.table("ecommerce_agg").expect("agg");
    let entries = LogEntry::read_range(&*agg, "0-1", 1, mark.batches).expect("log");
    assert_eq!(entries.len() as u64, mark.batches);
    let mut logged: Vec<String> = entries.iter().flat_map(|e| e.files.clone()).collect();
    assert_eq!(entries.iter().map(|e| e.rows).sum::<u64>(), s.rows);
    logged.sort();
    let mut stored: Vec<String> = scan_prefix(&*agg, AGG_PREFIX.as_bytes(), usize::MAX)
        .expect("scan")
        .iter()
        .map(|r| String::from_utf8_lossy(&r.key[AGG_PREFIX.len()..]).into_owned())
        .collect();
    stored.sort();
    assert_eq!(logged, stored);
    assert_eq!(
        StreamMark::read_all(&*agg)
            .expect("marks")
            .keys()
            .collect::<Vec<_>>(),
        ["0-1"]
    );
    let log = f.log();
    for p in 0..3 {
        assert_eq!(mark.offsets[&p], log.end_offset(p).expect("end"));
    }
    // Nothing new: a restart commits nothing and resumes at the end.
    let again = f.stream();
    assert_eq!(
        (again.batches, again.recovered_runs, again.recovered_files),
        (0, 0, 0)
    );
    assert_eq!(f.counts().0, truth.full.rows_out as usize);
}

#[test]
fn records_sent_again_are_dropped_as_duplicates_of_earlier_batches() {
    let f = fixture();
    let truth = f.produce(2_000, 9);
    f.stream();
    // The same rows again (a producer retrying everything).
    f.produce(2_000, 9);
    let s = f.stream();
    assert_eq!(s.records, 2_000);
    assert_eq!(s.rows, 0);
    assert_eq!(s.cross_batch_duplicates, truth.full.rows_out);
    assert_eq!(
        f.counts(),
        (truth.full.rows_out as usize, truth.full.rows_out)
    );
}

#[test]
fn a_restart_loads_committed_runs_and_cleans_committed_raw_files() {
    let f = fixture();
    let (lines, truth) = generate(5_000, 11);
    let cut = lines
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(3_999)
        .map(|(i, _)| i + 1)
        .expect("4000 lines");
    f.append(&lines[..cut]);
    // A crash after raw files were committed: the sink wrote half the log...
    let sink = SinkConfig {
        topic: "tx".into(),
        dir: "raw".into(),
        roll_rows: 300,
        roll_bytes: usize::MAX,
        roll_interval_ms: 0,
        skip_offset_gaps: false,
    };
    let mut log = f.log();
    crate::sink::sink_until_caught_up(&mut log, &f.files, &sink, |_| {}).expect("sink");
    // ...and some of them were cleaned and committed, but never loaded.
    let committed = read_committed(&f.files, "clean").expect("committed");
    assert!(committed.runs.is_empty());
    let run_cfg = CleanRun {
        max_run_bytes: 100_000,
        ..clean_run(
            StreamStores {
                raw: &f.files,
                out: &f.files,
                tables: &f.tables,
            },
            &f.cfg,
        )
    };
    let first = crate::incremental::clean_next_run(&run_cfg, |_| {}).expect("clean");
    assert!(first.pending_after > 0, "some raw files stay uncleaned");
    // A writer killed before its rename left a temporary file.
    let tmp = "raw/.tx+1+00000000000000099990+00000000000000099999.tsv.4242.tmp";
    f.files.write_atomic(tmp, b"partial").expect("tmp");
    // More records arrive after the crash.
    f.append(&lines[cut..]);
    let s = f.stream();
    assert_eq!(s.recovered_runs, 1);
    assert!(s.recovered_files > 0);
    assert_eq!(
        s.records, 1_000,
        "only the records after the committed files are read"
    );
    let expected = truth.full.rows_out;
    assert_eq!(f.counts(), (expected as usize, expected));
    assert!(
        !f.files.exists(tmp).expect("exists"),
        "temporary file swept"
    );
}

#[test]
fn partitions_split_between_shards() {
    let mut seen = Vec::new();
    for index in 0..2 {
        seen.extend(owned_partitions("tx", 5, Shard { index, count: 2 }));
    }
    seen.sort();
    assert_eq!(seen, vec![0, 1, 2, 3, 4]);
}

#[test]
fn records_deleted_before_they_were_read_fail_the_stream_or_are_skipped_and_counted() {
    let mut f = fixture();
    f.produce(3_000, 21);
    let end = f.log().end_offset(0).expect("end");
    assert!(end > 400, "partition 0 holds {end} records");
    // Retention took partition 0's first 20 records; a deletion 50 more in the middle.
    let deleted = vec![(0, 0..20), (0, 200..250)];
    let err = f
        .stream_deleted(deleted.clone())
        .expect_err("a gap fails by default");
    assert!(
        err.to_string()
            .contains("topic tx: partition 0: expected offset 0, found 20"),
        "{err}"
    );
    assert_eq!(f.counts().0, 0, "nothing loaded");

    f.cfg.skip_offset_gaps = true;
    let s = f.stream_deleted(deleted).expect("stream");
    assert_eq!((s.offset_gaps, s.skipped_offsets), (2, 70), "{s:?}");
    assert_eq!(s.records, 3_000 - 70);
    assert_eq!(s.resumed_from[&0], 20);
    // Partition 0's raw files: contiguous ranges that never span a gap.
    let mut ranges: Vec<(u64, u64)> = f
        .files
        .list("raw")
        .expect("list")
        .iter()
        .filter_map(|e| RawFileName::parse(e.path.rsplit('/').next().unwrap_or("")))
        .filter(|n| n.partition == 0)
        .map(|n| (n.first, n.last))
        .collect();
    ranges.sort();
    assert_eq!(ranges.first().map(|r| r.0), Some(20));
    for w in ranges.windows(2) {
        let contiguous = w[1].0 == w[0].1 + 1;
        assert!(contiguous || (w[0].1, w[1].0) == (199, 250), "{ranges:?}");
    }
    assert!(ranges.iter().all(|r| r.1 < 200 || r.0 >= 250), "{ranges:?}");
    assert_eq!(ranges.last().map(|r| r.1), Some(end - 1));
}
