//! `ecom clean --max-run-bytes` on real HDFS: with a byte limit per run, one
//! command commits several runs one after another, and together they keep
//! exactly the rows, per-rule counts and fixes of one unlimited run over the
//! same raw files (duplicates across the runs included).
//!
//! Needs the services (`make services-up`, `eval "$(scripts/services.sh env)"`)
//! and `ECOM_BIN`.

mod common;

use common::*;
use ecom_jobs::incremental::committed_runs;
use ecom_jobs::store::FileStore;

/// The clean rows of every committed run under `dir` (an HDFS path of `run`),
/// as comparable text, sorted.
fn kept_rows(run: &Run, dir: &str) -> Vec<String> {
    let store = run.hdfs_store();
    let mut rows: Vec<String> = committed_runs(&store, dir)
        .expect("manifests")
        .iter()
        .flat_map(|r| r.parquet_files.clone())
        .flat_map(|p| parquet_rows(store.read(&p).expect("read parquet")))
        .map(|r| format!("{r:?}"))
        .collect();
    rows.sort();
    rows
}

#[test]
fn byte_limited_runs_keep_what_one_run_keeps() {
    let run = Run::new("cleanruns");
    let (input, truth) = run.generate(&["--rows", "40000", "--seed", "5", "--dirty-rate", "0.05"]);
    // Four raw files of about 10,000 lines each (header in the first only),
    // the last ending with records of the first.
    let text = std::fs::read(&input).expect("read input");
    let lines: Vec<&[u8]> = text.split_inclusive(|b| *b == b'\n').collect();
    let raw = run.tmp.path().join("raw");
    std::fs::create_dir(&raw).expect("raw dir");
    let per_file = lines.len().div_ceil(4);
    let mut sizes = Vec::new();
    for (i, chunk) in lines.chunks(per_file).enumerate() {
        let mut bytes = chunk.concat();
        if i == 3 {
            // 50 records of the first file again: each is dropped, as a
            // duplicate of a row kept by an earlier run or by its own rule.
            bytes.extend(lines[1..51].concat());
        }
        sizes.push(bytes.len() as u64);
        std::fs::write(raw.join(format!("part-{i}.tsv")), bytes).expect("write raw");
    }
    assert_eq!(sizes.len(), 4);
    let raw = raw.to_str().expect("utf8").to_string();

    let url = |dir: &str| format!("{}{}/{dir}", run.hdfs, run.base);
    let one = ecom_json(&["clean", "--input", &raw, "--output", &url("one")]);
    // Room for one file and a half: every run takes one file.
    let limit = (sizes.iter().max().expect("sizes") * 3 / 2).to_string();
    let clean_limited = || {
        ecom_json(&[
            "clean",
            "--input",
            &raw,
            "--output",
            &url("many"),
            "--max-run-bytes",
            &limit,
        ])
    };
    let many = clean_limited();

    assert_eq!(one["runs"].as_array().map(Vec::len), Some(1), "{one}");
    assert_eq!(many["runs"].as_array().map(Vec::len), Some(4), "{many}");
    assert_eq!(many["raw_files"], 4, "{many}");
    assert_eq!(many["run"], many["runs"][3], "{many}");
    for field in ["rows_in", "rows_out", "dropped", "fixed", "header_lines"] {
        assert_eq!(
            many["report"][field], one["report"][field],
            "{field}: {many}"
        );
    }
    assert_eq!(
        one["report"]["rows_out"].as_u64(),
        Some(truth.full.rows_out),
        "{one}"
    );
    // Duplicates of ids kept by an earlier run were dropped across runs.
    assert!(
        many["cross_run_duplicates"].as_u64().unwrap_or(0) > 0,
        "{many}"
    );
    assert_eq!(
        committed_runs(&run.hdfs_store(), &format!("{}/many", run.base))
            .expect("manifests")
            .len(),
        4
    );
    let (a, b) = (
        kept_rows(&run, &format!("{}/one", run.base)),
        kept_rows(&run, &format!("{}/many", run.base)),
    );
    assert_eq!(a.len() as u64, truth.full.rows_out);
    assert!(a == b, "the runs kept other rows than one run");

    // Nothing left: a rerun commits nothing.
    let again = clean_limited();
    assert_eq!(again["runs"].as_array().map(Vec::len), Some(0), "{again}");
    assert_eq!(again["already_cleaned"], 4, "{again}");
}
