//! Unit tests of the sink: exactly once through crashes, rolling, offset gaps.

use super::*;
use crate::store::files::testing::FailingRenames;
use crate::store::{LocalFiles, LocalLog, Message};

fn cfg(roll_rows: usize) -> SinkConfig {
    SinkConfig {
        topic: "tx".into(),
        dir: "raw".into(),
        roll_rows,
        roll_bytes: 1 << 20,
        roll_interval_ms: 0,
        skip_offset_gaps: false,
    }
}

fn fill(log: &mut LocalLog, range: std::ops::Range<u32>) {
    let msgs: Vec<Message> = range
        .map(|i| Message {
            key: i.to_string().into_bytes(),
            value: format!("{i}\tline").into_bytes(),
        })
        .collect();
    log.append(&msgs).expect("append");
    log.flush().expect("flush");
}

/// The committed files hold the lines of messages `0..n`, each once.
fn assert_every_line_once(files: &LocalFiles, n: u32) {
    let mut expected: Vec<String> = (0..n).map(|i| format!("{i}\tline")).collect();
    expected.sort();
    assert_eq!(all_lines(files), expected);
}

/// The committed file names under `raw`.
fn committed(files: &LocalFiles) -> Vec<RawFileName> {
    files
        .list("raw")
        .expect("list")
        .iter()
        .filter_map(|e| RawFileName::parse(e.path.rsplit('/').next().unwrap_or("")))
        .collect()
}

fn all_lines(files: &LocalFiles) -> Vec<String> {
    let mut lines: Vec<String> = files
        .list("raw")
        .expect("list")
        .iter()
        .flat_map(|e| {
            String::from_utf8(files.read(&e.path).expect("read"))
                .expect("utf8")
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    lines.sort();
    lines
}

#[test]
fn names_round_trip_and_sort() {
    let n = RawFileName {
        topic: "a+b".into(),
        partition: 2,
        first: 9,
        last: 10,
    };
    assert_eq!(RawFileName::parse(&n.render()), Some(n));
    assert_eq!(RawFileName::parse("x+1+5+4.tsv"), None);
    assert_eq!(RawFileName::parse("junk.tsv"), None);
}

#[test]
fn resumes_without_loss_or_duplicates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = LocalLog::open(dir.path().join("log"), 3).expect("log");
    let files = LocalFiles::new(dir.path().join("files"));
    fill(&mut log, 0..500);
    let first = sink_until_caught_up(&mut log, &files, &cfg(64), |_| {}).expect("sink");
    assert_eq!(first.records, 500);
    // A crash after the rename but before anything else: nothing to redo.
    let again = sink_until_caught_up(&mut log, &files, &cfg(64), |_| {}).expect("sink");
    assert_eq!(again.records, 0);
    // A crash that left a temporary file behind: it is ignored and overwritten.
    files
        .write_atomic(
            "raw/.tx+0+00000000000000000500+00000000000000000600.tsv.1.tmp",
            b"junk",
        )
        .expect("tmp");
    fill(&mut log, 500..800);
    let more = sink_until_caught_up(&mut log, &files, &cfg(64), |_| {}).expect("sink");
    assert_eq!(more.records, 300);
    assert_every_line_once(&files, 800);
}

#[test]
fn rolls_by_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = LocalLog::open(dir.path().join("log"), 1).expect("log");
    let files = LocalFiles::new(dir.path().join("files"));
    fill(&mut log, 0..100);
    let c = SinkConfig {
        roll_bytes: 100,
        ..cfg(1000)
    };
    let s = sink_until_caught_up(&mut log, &files, &c, |_| {}).expect("sink");
    assert_eq!(s.records, 100);
    let listed = files.list("raw").expect("list");
    let total: u64 = listed.iter().map(|e| e.len).sum();
    assert_eq!(s.files as usize, listed.len());
    assert!(
        s.files >= total.div_ceil(100),
        "{} files for {total} bytes",
        s.files
    );
    for e in &listed {
        assert!(e.len <= 100, "{} is {} bytes", e.path, e.len);
    }
}

#[test]
fn a_crash_between_rename_rounds_leaves_each_partition_a_prefix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = LocalLog::open(dir.path().join("log"), 3).expect("log");
    fill(&mut log, 0..900);
    // 50 rows a file: the first outbox holds 8 files, 3 of partitions 0 and 1 and 2 of
    // partition 2, renamed in 3 rounds; only the first round gets through.
    let crashing = FailingRenames::new(LocalFiles::new(dir.path().join("files")), |_, call| {
        call >= 1
    });
    let err = sink_until_caught_up(&mut log, &crashing, &cfg(50), |_| {}).expect_err("crash");
    assert!(err.to_string().contains("injected crash"), "{err}");
    let files = LocalFiles::new(dir.path().join("files"));
    let landed = committed(&files);
    // Round 0 only: each partition's first file, starting at offset 0.
    assert_eq!(landed.len(), 3, "{landed:?}");
    for p in 0..3 {
        let mine: Vec<&RawFileName> = landed.iter().filter(|f| f.partition == p).collect();
        assert_eq!(mine.len(), 1, "partition {p}: {landed:?}");
        assert_eq!(mine[0].first, 0, "partition {p}: {landed:?}");
    }
    // The restarted sink writes the rest: every message exactly once.
    let rest = sink_until_caught_up(&mut log, &files, &cfg(50), |_| {}).expect("sink");
    assert_eq!(
        rest.records,
        900 - landed.iter().map(|f| f.last + 1).sum::<u64>()
    );
    assert_every_line_once(&files, 900);
}

#[test]
fn a_batch_sink_writes_full_files_a_few_at_a_time_in_offset_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = LocalLog::open(dir.path().join("log"), 2).expect("log");
    let files = LocalFiles::new(dir.path().join("files"));
    fill(&mut log, 0..1000);
    let mut reported = Vec::new();
    let s = sink_until_caught_up(&mut log, &files, &cfg(40), |n| reported.push(n)).expect("sink");
    assert_eq!(s.records, 1000);
    assert_eq!(reported.iter().sum::<u64>(), 1000);
    assert_eq!(s.files as usize, reported.len());
    let names = committed(&files);
    assert_eq!(names.len() as u64, s.files);
    // Each partition's files tile its offsets from 0 without a gap.
    for p in 0..2 {
        let mut next = 0;
        for f in names.iter().filter(|f| f.partition == p) {
            assert_eq!(f.first, next, "{names:?}");
            next = f.last + 1;
        }
        assert!(next > 0);
    }
    assert_every_line_once(&files, 1000);
}

/// A one-partition log of 600 records (`0\tline` to `599\tline`) with `deleted` gone.
fn with_deleted(
    dir: &std::path::Path,
    deleted: &[(u64, u64)],
) -> crate::store::log::testing::Deleted<LocalLog> {
    let mut log = LocalLog::open(dir.join("log"), 1).expect("log");
    fill(&mut log, 0..600);
    crate::store::log::testing::Deleted {
        log,
        deleted: deleted.iter().map(|&(from, to)| (0, from..to)).collect(),
    }
}

#[test]
fn records_deleted_before_they_were_read_fail_the_sink_naming_the_offsets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = LocalFiles::new(dir.path().join("files"));
    // Retention removed the first 100 records before the sink ever ran.
    let mut log = with_deleted(dir.path(), &[(0, 100)]);
    let err = sink_until_caught_up(&mut log, &files, &cfg(64), |_| {}).expect_err("a gap");
    let text = err.to_string();
    assert!(
        text.contains("topic tx")
            && text.contains("partition 0")
            && text.contains("expected offset 0, found 100"),
        "{text}"
    );
    assert!(matches!(
        &err,
        SinkError::Log {
            source: LogError::OffsetGap {
                partition: 0,
                expected: 0,
                found: 100
            },
            ..
        }
    ));
    assert_eq!(
        crate::retry::classify(&err),
        crate::retry::ErrorClass::Permanent
    );
    assert!(committed(&files).is_empty(), "nothing written");

    // A hole in the middle, found while reading: the files before it are kept.
    let mut log = with_deleted(&dir.path().join("second"), &[(250, 300)]);
    let err = sink_until_caught_up(&mut log, &files, &cfg(50), |_| {}).expect_err("a gap");
    assert!(
        err.to_string().contains("expected offset 250, found 300"),
        "{err}"
    );
    let landed = committed(&files);
    assert!(landed.iter().all(|f| f.last < 250), "{landed:?}");
}

#[test]
fn skipped_gaps_are_counted_and_cut_the_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = LocalFiles::new(dir.path().join("files"));
    let mut log = with_deleted(dir.path(), &[(0, 100), (250, 300)]);
    let c = SinkConfig {
        skip_offset_gaps: true,
        ..cfg(1000)
    };
    let s = sink_until_caught_up(&mut log, &files, &c, |_| {}).expect("sink");
    assert_eq!((s.records, s.offset_gaps, s.skipped_offsets), (450, 2, 150));
    assert_eq!(s.resumed_from[&0], 100, "{s:?}");
    // Each file a contiguous range: one before the hole, one after.
    let names: Vec<(u64, u64)> = committed(&files)
        .iter()
        .map(|f| (f.first, f.last))
        .collect();
    assert_eq!(names, [(100, 249), (300, 599)]);
    let mut expected: Vec<String> = (100..250)
        .chain(300..600)
        .map(|i| format!("{i}\tline"))
        .collect();
    expected.sort();
    assert_eq!(all_lines(&files), expected);
    // Nothing more: a rerun resumes at the end and skips nothing.
    let again = sink_until_caught_up(&mut log, &files, &c, |_| {}).expect("sink");
    assert_eq!((again.records, again.skipped_offsets), (0, 0));
}

#[test]
fn a_partition_that_ends_before_the_committed_offsets_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = LocalFiles::new(dir.path().join("files"));
    // Files of a topic of the same name that had more records (since recreated).
    files
        .write_atomic(
            "raw/tx+0+00000000000000000000+00000000000000000999.tsv",
            b"x\n",
        )
        .expect("write");
    let mut log = with_deleted(dir.path(), &[]);
    for skip in [false, true] {
        let c = SinkConfig {
            skip_offset_gaps: skip,
            ..cfg(64)
        };
        let err = sink_until_caught_up(&mut log, &files, &c, |_| {}).expect_err("beyond");
        assert!(
            err.to_string()
                .contains("reach offset 1000 but the partition ends at 600"),
            "{err}"
        );
    }
}
