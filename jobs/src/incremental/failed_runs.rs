//! Failed runs and bad input: a failed attempt's temporary files, files that are not TSV.

use super::tests::{clean_all, partition_files, raw_line};
use super::*;
use crate::store::files::testing::FailingRenames;
use crate::store::LocalFiles;

#[test]
fn a_failed_attempt_removes_its_temporary_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalFiles::new(dir.path());
    let data: String = (1..9).map(raw_line).collect();
    store
        .write_atomic("raw/a.tsv", data.as_bytes())
        .expect("write raw");
    let cfg = CleanConfig::default();
    // The commit fails (the process lives on), then, in a second attempt, the move of the
    // partitions into place.
    for fails_on in [MANIFEST_DIR, "date="] {
        let failing =
            FailingRenames::erring(store.clone(), move |moves: &[(String, String)], _| {
                moves.iter().any(|(_, to)| to.contains(fails_on))
            });
        let err = clean_incremental(
            &failing,
            "raw",
            &failing,
            "clean",
            cfg.clone(),
            Shard::default(),
            |_| {},
        )
        .expect_err("the rename fails");
        assert!(err.to_string().contains("injected crash"), "{err}");
        assert!(committed_runs(&store, "clean").expect("runs").is_empty());
        assert!(
            !store.exists("clean/_staging").expect("exists"),
            "{fails_on}: staging left behind"
        );
        assert_eq!(partition_files(&store), Vec::<String>::new(), "{fails_on}");
        let reports: Vec<FileEntry> = store.list("clean").expect("list");
        assert!(reports.is_empty(), "{fails_on}: {reports:?}");
    }
    // The next run commits as if nothing had happened.
    let s = clean_all(&store, cfg);
    assert_eq!(s.report.rows_out, 8);
}

#[test]
fn files_that_are_not_tsv_are_named_and_nothing_is_committed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalFiles::new(dir.path());
    let data: String = (1..9).map(raw_line).collect();
    store
        .write_atomic("raw/a.tsv", data.as_bytes())
        .expect("write raw");
    store
        .write_atomic("raw/report-1.json", b"{\n  \"rows_in\": 8\n}\n")
        .expect("write json");
    store
        .write_atomic("raw/part-1.parquet", b"PAR1\x15\x04garbage")
        .expect("write parquet");
    let err = clean_incremental(
        &store,
        "raw",
        &store,
        "clean",
        CleanConfig::default(),
        Shard::default(),
        |_| {},
    )
    .expect_err("not TSV");
    let text = err.to_string();
    assert!(
        text.contains("raw/report-1.json (no tab in its first 64 KiB)")
            && text.contains("raw/part-1.parquet (Parquet)")
            && !text.contains("a.tsv"),
        "{text}"
    );
    assert_eq!(
        crate::retry::classify(&err),
        crate::retry::ErrorClass::Permanent
    );
    assert!(committed_runs(&store, "clean").expect("runs").is_empty());

    // A file the sink wrote is records, whatever they hold: a junk record is a dropped row.
    store.remove_all("raw/report-1.json").expect("remove");
    store.remove_all("raw/part-1.parquet").expect("remove");
    store
        .write_atomic(
            "raw/tx+0+00000000000000000000+00000000000000000000.tsv",
            b"\x00junk without a tab\n",
        )
        .expect("write sink file");
    let s = clean_all(&store, CleanConfig::default());
    assert_eq!((s.report.rows_in, s.report.rows_out), (9, 8));
    assert_eq!(s.report.dropped["too_few_fields"], 1);
}

#[test]
fn the_tsv_sniff_knows_text_from_other_files() {
    assert_eq!(not_tsv("raw/a.tsv", b"1\t2\t3\n"), None);
    assert_eq!(not_tsv("raw/empty.tsv", b""), None);
    assert_eq!(not_tsv("raw/blank.tsv", b"\n\r\n"), None);
    assert_eq!(
        not_tsv("raw/a.json", b"{\"a\": 1}"),
        Some("no tab in its first 64 KiB")
    );
    assert_eq!(not_tsv("raw/x", b"PAR1...."), Some("Parquet"));
    assert_eq!(not_tsv("raw/x.gz", b"\x1f\x8b\x08\x00"), Some("gzip"));
    assert_eq!(
        not_tsv("raw/x.bin", b"1\t2\x00"),
        Some("binary: a NUL byte in its first 64 KiB")
    );
    // A tab after the first 64 KiB does not count.
    let mut late = vec![b'x'; 70 << 10];
    late.push(b'\t');
    assert!(not_tsv("raw/late.tsv", &late).is_some());
    // Sink files are never refused.
    assert_eq!(
        not_tsv(
            "raw/t+1+00000000000000000005+00000000000000000009.tsv",
            b"PAR1"
        ),
        None
    );
}
