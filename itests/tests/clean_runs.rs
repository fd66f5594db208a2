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

/// Runs `ecom` expecting a failure after one attempt; returns its summary's error.
fn clean_error(args: &[&str]) -> String {
    let out = ecom_cmd(args).output().expect("run ecom");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "ecom {args:?} succeeded:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("summary json");
    assert_eq!(
        (&v["ok"], &v["attempts"]),
        (&false.into(), &1.into()),
        "{v}"
    );
    v["error"].as_str().unwrap_or_default().to_string()
}

#[test]
fn overlapping_directories_and_files_that_are_not_tsv_are_refused_on_hdfs() {
    let run = Run::new("cleanrefuse");
    let (input, truth) = run.generate(&["--rows", "2000", "--seed", "17"]);
    let store = run.hdfs_store();
    let raw_dir = format!("{}/raw", run.base);
    store
        .write_atomic(
            &format!("{raw_dir}/part-0.tsv"),
            &std::fs::read(&input).expect("read input"),
        )
        .expect("write raw");
    let raw = run.raw_url();
    // The same directory (written another way), and an output inside the input.
    let same = raw.replace("/raw", "/x/../raw/");
    for (output, relation) in [
        (same.as_str(), "they are the same directory"),
        (&*format!("{raw}/clean"), "the output is inside the input"),
    ] {
        let error = clean_error(&["clean", "--input", &raw, "--output", output]);
        assert!(
            error.contains(&format!("--input {raw}"))
                && error.contains(&format!("--output {output}"))
                && error.contains(relation),
            "{error}"
        );
    }
    assert_eq!(
        store.list_dirs(&raw_dir).expect("list"),
        vec![],
        "nothing written"
    );

    // A quality report and a Parquet file in the raw directory: named, nothing cleaned.
    store
        .write_atomic(
            &format!("{raw_dir}/report-1.json"),
            b"{\n  \"rows_in\": 1\n}\n",
        )
        .expect("write json");
    store
        .write_atomic(
            &format!("{raw_dir}/part-1.parquet"),
            b"PAR1\x15\x04 junk PAR1",
        )
        .expect("write parquet");
    let error = clean_error(&run.clean_args());
    assert!(
        error.contains("report-1.json (no tab in its first 64 KiB)")
            && error.contains("part-1.parquet (Parquet)")
            && !error.contains("part-0.tsv"),
        "{error}"
    );
    let clean_dir = format!("{}/clean", run.base);
    assert!(committed_runs(&store, &clean_dir).expect("runs").is_empty());
    // Moved away, the TSV file cleans as usual.
    store
        .remove_all(&format!("{raw_dir}/report-1.json"))
        .expect("rm");
    store
        .remove_all(&format!("{raw_dir}/part-1.parquet"))
        .expect("rm");
    let cleaned = ecom_json(&run.clean_args());
    assert_eq!(
        cleaned["report"]["rows_out"], truth.full.rows_out,
        "{cleaned}"
    );
    run.cleanup();
}

#[test]
fn a_failed_clean_run_leaves_no_temporary_files_on_hdfs() {
    let run = Run::new("cleanfail");
    let (input, truth) = run.generate(&["--rows", "3000", "--seed", "19"]);
    let store = run.hdfs_store();
    store
        .write_atomic(
            &format!("{}/raw/part-0.tsv", run.base),
            &std::fs::read(&input).expect("read input"),
        )
        .expect("write raw");
    let raw = run.raw_url();
    let url = |dir: &str| format!("{}{}/{dir}", run.hdfs, run.base);
    // A first output tells the run id and its partitions (both depend on the input only).
    let first = ecom_json(&["clean", "--input", &raw, "--output", &url("first")]);
    let run_id = first["run"].as_str().expect("run id").to_string();
    let manifest = &committed_runs(&store, &format!("{}/first", run.base)).expect("runs")[0];
    assert!(manifest.parquet_files.len() > 2, "{manifest:?}");
    // In the second output, a non-empty directory where a partition file goes: moving the
    // run's files into place fails there.
    let (date, _) = manifest.partitions.iter().nth(1).expect("a partition");
    let second = format!("{}/second", run.base);
    let blocker = format!("{second}/date={date}/part-{run_id}.parquet");
    store
        .write_atomic(&format!("{blocker}/in-the-way"), b"x")
        .expect("write blocker");
    let error = clean_error(&[
        "clean",
        "--input",
        &raw,
        "--output",
        &url("second"),
        "--attempts",
        "1",
    ]);
    eprintln!("clean failed as expected: {error}");
    assert!(committed_runs(&store, &second).expect("runs").is_empty());
    // Nothing of the attempt is left: no staging directory, no partition file, no report.
    let staging = format!("{second}/{}", ecom_jobs::incremental::STAGING_DIR);
    assert_eq!(store.list_dirs(&staging).expect("staging"), vec![]);
    assert_eq!(store.list_hidden(&second).expect("hidden"), vec![]);
    assert_eq!(store.list(&second).expect("list"), vec![], "no report left");
    for dir in store.list_dirs(&second).expect("dirs") {
        let files = store.list(&dir.path).expect("list");
        assert!(
            files.iter().all(|f| !f.path.contains(&run_id)),
            "{}: {files:?}",
            dir.path
        );
    }
    // The next run commits the same rows as the first output.
    let again = ecom_json(&["clean", "--input", &raw, "--output", &url("second")]);
    assert_eq!(again["report"]["rows_out"], truth.full.rows_out, "{again}");
    run.cleanup();
}
