//! The pipeline stages of `ecom` on the real services: generate -> produce ->
//! sink -> clean -> load, checked against the generator's ground truth, plus
//! the fault tests (sink killed mid-run, produce repeated, unreachable services).
//!
//! Needs the services (`make services-up`, `eval "$(scripts/services.sh env)"`)
//! and the binary in `ECOM_BIN` (`make itest` builds it and sets both).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use ecom_jobs::aggregates::Aggregates;
use ecom_jobs::incremental::{committed_runs, MANIFEST_DIR};
use ecom_jobs::load::{row_key, AGG_FAMILY, REPORT_PREFIX};
use ecom_jobs::store::table::scan_prefix;
use ecom_jobs::store::{FileStore, TableStore};
use polars::prelude::*;

/// Every visible file under `dir` (the manifest directory and each `date=`
/// partition), with its length.
fn list_tree(store: &dyn FileStore, dir: &str) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = Vec::new();
    let mut subdirs = vec![dir.to_string(), format!("{dir}/{MANIFEST_DIR}")];
    for run in committed_runs(store, dir).expect("manifests") {
        for p in &run.parquet_files {
            subdirs.push(
                p.rsplit_once('/')
                    .map(|(d, _)| d.to_string())
                    .unwrap_or_default(),
            );
        }
    }
    subdirs.sort();
    subdirs.dedup();
    for d in subdirs {
        out.extend(
            store
                .list(&d)
                .expect("list")
                .into_iter()
                .map(|e| (e.path, e.len)),
        );
    }
    out
}

// The whole pipeline once against real services (minutes), checked stage by stage against
// the generator's truth: one scenario, each stage reads what the last one wrote.
#[test]
fn pipeline_end_to_end_matches_ground_truth() {
    let run = Run::new("e2e");
    let (input, truth) = run.generate(&["--rows", "200000", "--dirty-rate", "0.2", "--seed", "7"]);

    let produced = ecom_json(&run.produce_args(&input));
    assert_eq!(produced["records"], 200_000, "{produced}");
    assert_eq!(produced["delivered"], 200_000, "{produced}");

    let sunk = ecom_json(&run.sink_args(20_000));
    assert_eq!(sunk["records"], 200_000, "{sunk}");
    // Records in the raw files on HDFS = records produced.
    assert_eq!(line_count(&run.raw_files()), 200_000);

    let cleaned = ecom_json(&run.clean_args());
    let report = &cleaned["report"];
    assert_eq!(report["rows_in"], truth.full.rows_in, "{cleaned}");
    assert_eq!(report["rows_out"], truth.full.rows_out, "{cleaned}");
    for (rule, n) in &truth.full.dropped {
        assert_eq!(report["dropped"][rule], *n, "rule {rule}: {cleaned}");
    }
    for (fix, n) in &truth.full.fixed {
        assert_eq!(report["fixed"][fix], *n, "fix {fix}: {cleaned}");
    }
    // The clean output is partitioned by date: every file under
    // `date=YYYY-MM-DD/`, holding only rows of that date, as the manifest says.
    let store = run.hdfs_store();
    let clean_dir = format!("{}/clean", run.base);
    let runs = committed_runs(&store, &clean_dir).expect("manifests");
    assert_eq!(runs.len(), 1, "{runs:?}");
    let manifest = &runs[0];
    assert!(manifest.partitions.len() > 1, "{:?}", manifest.partitions);
    assert_eq!(
        manifest.partitions.values().sum::<u64>(),
        truth.full.rows_out
    );
    assert_eq!(manifest.parquet_files.len(), manifest.partitions.len());
    let listing_before = list_tree(&store, &clean_dir);
    for (path, (date, rows)) in manifest.parquet_files.iter().zip(&manifest.partitions) {
        let suffix = format!("{clean_dir}/date={date}/part-{}.parquet", manifest.run);
        assert_eq!(path, &suffix);
        let df = ParquetReader::new(std::io::Cursor::new(store.read(path).expect("read")))
            .finish()
            .and_then(ecom_jobs::clean::timestamp::to_text)
            .expect("parquet");
        assert_eq!(df.height() as u64, *rows, "{path}");
        let ts = df
            .column("timestamp")
            .expect("ts")
            .str()
            .expect("str")
            .clone();
        assert!(
            ts.iter()
                .all(|t| t.is_some_and(|t| t.starts_with(date.as_str()))),
            "{path}"
        );
    }
    assert!(store
        .exists(&format!("{clean_dir}/report-{}.json", manifest.run))
        .expect("report"));
    // Re-running on the same input changes nothing.
    let again = ecom_json(&run.clean_args());
    assert!(again["run"].is_null(), "{again}");
    assert_eq!(list_tree(&store, &clean_dir), listing_before);

    let loaded = ecom_json(&run.load_args());
    assert_eq!(loaded["rows"], truth.full.rows_out, "{loaded}");

    // HBase row count = clean rows.
    assert_eq!(run.fact_row_count(), truth.full.rows_out);

    // Sampled rows: HBase = clean Parquet = source line, field by field.
    let clean = run.clean_rows();
    assert_eq!(clean.len() as u64, truth.full.rows_out);
    let source = std::fs::read(&input).expect("read input");
    let mut by_id: BTreeMap<&[u8], Vec<Vec<&[u8]>>> = BTreeMap::new();
    for line in source.split(|b| *b == b'\n') {
        let fields: Vec<&[u8]> = line.split(|b| *b == b'\t').collect();
        by_id.entry(fields[0]).or_default().push(fields);
    }
    let fact = run.hbase().table(&run.table).expect("fact table");
    let mut checked = 0;
    for row in clean.iter().step_by(997) {
        let key = row_key(&row.order_id, 16);
        let got = fact
            .get(key.as_bytes())
            .expect("get")
            .unwrap_or_else(|| panic!("row {key} missing in HBase"));
        let cell = |c: &str| String::from_utf8_lossy(&got.cells[c]).into_owned();
        assert_eq!(cell("order_details:user_id"), row.user_id, "{key}");
        assert_eq!(cell("order_details:category"), row.category, "{key}");
        let amount: f64 = cell("order_details:amount").parse().expect("amount");
        assert_eq!(amount, row.amount, "{key}");
        assert_eq!(cell("payment_info:payment_method"), row.payment, "{key}");
        assert_eq!(cell("status_info:status"), row.status, "{key}");
        assert_eq!(cell("timestamp_info:timestamp"), row.timestamp, "{key}");
        let sources = by_id
            .get(row.order_id.as_bytes())
            .unwrap_or_else(|| panic!("order {} not in the source", row.order_id));
        let norm = |b: &[u8]| {
            let s = String::from_utf8_lossy(b).trim().to_lowercase();
            match s.as_str() {
                "credit car" => "credit card".to_string(),
                "debit car" => "debit card".to_string(),
                _ => s,
            }
        };
        let matches = sources.iter().any(|f| {
            f.len() == 7
                && norm(f[1]) == row.user_id
                && norm(f[2]) == row.category.to_lowercase()
                && String::from_utf8_lossy(f[3]).trim().parse::<f64>().ok() == Some(row.amount)
                && norm(f[4]) == row.payment.to_lowercase()
                && norm(f[5]) == row.status.to_lowercase()
                && f[6] == row.timestamp.as_bytes()
        });
        assert!(
            matches,
            "row {key}: {row:?} matches none of its source lines"
        );
        checked += 1;
    }
    assert!(checked >= 150, "only {checked} rows sampled");

    // Aggregates in HBase = a recomputation from the clean Parquet.
    let stored = run.stored_aggregates();
    let mut expected = Aggregates::default();
    for r in &clean {
        expected
            .add(&r.category, r.amount, &r.payment, &r.status, &r.timestamp)
            .expect("clean rows add up");
    }
    assert_eq!(stored, expected);
    assert_eq!(stored.total.revenue_cents, truth.clean_revenue_cents);

    // Loading again writes the same cells: counts unchanged.
    ecom_json(&run.load_args());
    assert_eq!(run.fact_row_count(), truth.full.rows_out);
    run.cleanup();
}

#[test]
fn sink_killed_mid_run_resumes_to_identical_files() {
    let run = Run::new("kill");
    run.produce_generated(200_000, &["--dirty-rate", "0.1"]);
    // Reference: an uninterrupted sink into another directory.
    let reference = format!("{}/{}/reference", run.hdfs, run.base);
    ecom_json(&[
        "sink",
        "--topic",
        &run.topic,
        "--output",
        &reference,
        "--until-caught-up",
        "--roll-rows",
        "2000",
    ]);
    // The sink under test is killed with SIGKILL once some files are committed.
    let raw_dir = format!("{}/raw", run.base);
    let store = run.hdfs_store();
    let mut killed_at = 0;
    for attempt in 0..3 {
        let mut child = ecom_cmd(&run.sink_args(2000))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn sink");
        let started = Instant::now();
        let before = store.list(&raw_dir).expect("list").len();
        loop {
            let n = store.list(&raw_dir).expect("list").len();
            if n > before + 5 || started.elapsed() > Duration::from_secs(60) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill().expect("SIGKILL sink");
        let _ = child.wait();
        killed_at = store.list(&raw_dir).expect("list").len();
        eprintln!("attempt {attempt}: sink killed with {killed_at} of 100 files committed");
        if killed_at >= 90 {
            break;
        }
    }
    assert!(
        killed_at < 100,
        "the sink finished before it could be killed"
    );
    let resumed = ecom_json(&run.sink_args(2000));
    assert!(
        resumed["records"].as_u64().expect("records") > 0,
        "{resumed}"
    );
    let got = run.raw_files();
    let want = run.files("reference");
    assert_eq!(got.len(), want.len());
    for ((gn, gd), (wn, wd)) in got.iter().zip(&want) {
        assert_eq!(gn, wn);
        assert!(
            gd == wd,
            "content of {gn} differs from the uninterrupted run"
        );
    }
    assert_eq!(line_count(&got), 200_000);
    run.cleanup();
}

#[test]
fn continuous_sink_runs_past_its_deadline_and_stops_on_run_for() {
    // A continuous sink is not bound by --deadline (it has no end): with a 2 s
    // deadline it keeps consuming for --run-for 8s, commits what it holds
    // (records produced while it runs included) and exits 0.
    let run = Run::new("cont");
    run.produce_generated(3000, &[]);
    let raw = run.raw_url();
    let started = Instant::now();
    let child = spawn_ecom(&[
        "sink",
        "--topic",
        &run.topic,
        "--output",
        &raw,
        "--deadline",
        "2s",
        "--run-for",
        "8s",
    ]);
    std::thread::sleep(Duration::from_secs(3));
    run.produce_generated(2000, &["--seed", "9"]);
    let (summary, _) = wait_ecom(child);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(8),
        "stopped after {elapsed:?}"
    );
    assert_eq!(summary["records"], 5000, "{summary}");
    assert_eq!(line_count(&run.raw_files()), 5000);
    run.cleanup();
}

#[test]
fn producing_twice_leaves_no_duplicates_downstream() {
    let run = Run::new("twice");
    let (input, truth) = run.generate(&["--rows", "50000", "--dirty-rate", "0.2"]);
    let mut total_out = 0;
    for round in 0..2 {
        ecom_json(&run.produce_args(&input));
        let sunk = ecom_json(&run.sink_args(10_000));
        assert_eq!(sunk["records"], 50_000, "round {round}: {sunk}");
        let cleaned = ecom_json(&run.clean_args());
        total_out += cleaned["report"]["rows_out"].as_u64().expect("rows_out");
        if round == 1 {
            // Every record kept the first time is dropped as a cross-run duplicate.
            assert_eq!(
                cleaned["cross_run_duplicates"], truth.full.rows_out,
                "{cleaned}"
            );
            assert_eq!(cleaned["report"]["rows_out"], 0, "{cleaned}");
        }
        ecom_json(&run.load_args());
    }
    assert_eq!(total_out, truth.full.rows_out);
    assert_eq!(run.fact_row_count(), truth.full.rows_out);
    let stored = run.stored_aggregates();
    assert_eq!(stored.total.orders, truth.full.rows_out);
    assert_eq!(stored.total.revenue_cents, truth.clean_revenue_cents);
    run.cleanup();
}

#[test]
fn unreachable_services_fail_clearly_within_the_deadline() {
    let run = Run::new("down");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "produce".into(),
                "--generate-rows".into(),
                "10".into(),
                "--topic".into(),
                run.topic.clone(),
                "--kafka-bootstrap".into(),
                "127.0.0.1:1".into(),
                "--call-timeout".into(),
                "5s".into(),
            ],
            "127.0.0.1:1",
        ),
        (
            vec![
                "sink".into(),
                "--topic".into(),
                run.topic.clone(),
                "--output".into(),
                format!("{}/{}/raw", run.hdfs, run.base),
                "--until-caught-up".into(),
                "--kafka-bootstrap".into(),
                "127.0.0.1:1".into(),
                "--call-timeout".into(),
                "3s".into(),
                "--deadline".into(),
                "10s".into(),
            ],
            "127.0.0.1:1",
        ),
        (
            vec![
                "clean".into(),
                "--input".into(),
                "hdfs://127.0.0.1:1/raw".into(),
                "--output".into(),
                "hdfs://127.0.0.1:1/clean".into(),
                "--call-timeout".into(),
                "3s".into(),
                "--deadline".into(),
                "10s".into(),
            ],
            "127.0.0.1:1",
        ),
        (
            vec![
                "load".into(),
                "--input".into(),
                format!("{}/{}/clean", run.hdfs, run.base),
                "--table".into(),
                run.table.clone(),
                "--hbase-thrift".into(),
                "127.0.0.1:1".into(),
                "--deadline".into(),
                "10s".into(),
            ],
            "127.0.0.1:1",
        ),
    ];
    // The load case needs a committed clean run to get as far as HBase.
    let (input, _) = run.generate(&["--rows", "100"]);
    let raw = run.hdfs_store();
    raw.write_atomic(
        &format!("{}/raw/in.tsv", run.base),
        &std::fs::read(&input).expect("read"),
    )
    .expect("write raw");
    ecom_json(&run.clean_args());
    for (args, address) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let started = Instant::now();
        let out = ecom_cmd(&args).output().expect("run ecom");
        let took = started.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            took < Duration::from_secs(30),
            "{args:?} took {took:?} to fail"
        );
        let last = stdout.lines().last().unwrap_or_default();
        let summary: serde_json::Value = serde_json::from_str(last).expect("summary json");
        assert_eq!(summary["ok"], false);
        let error = summary["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(address) && stderr.contains(address),
            "{args:?}: error does not name {address}: {error}\n{stderr}"
        );
        eprintln!("{} failed after {took:?}: {error}", args[0]);
    }
    run.cleanup();
}

// One scenario (about a minute): the stage is killed with SIGKILL three times while the
// producer sends, then runs to the end; every count is checked against the truth.
#[test]
fn streaming_stage_killed_mid_batch_loads_every_clean_row_exactly_once() {
    let run = Run::new("stream");
    let rows = 60_000u64;
    let (input, truth) = run.generate(&["--rows", "60000", "--dirty-rate", "0.2", "--seed", "5"]);
    // Paced: the stage's restarts meet records still arriving.
    let producer = spawn_ecom(&[&run.produce_args(&input)[..], &["--rate", "8000"]].concat());
    let args = run.stream_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut rng = 0x9e37_79b9_u64;
    for kill in 0..3 {
        let mut child = ecom_cmd(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn stream");
        // Some committed micro-batches first, then a moment within the next batch.
        let before = run.stream_mark().map_or(0, |m| m.batches);
        let started = Instant::now();
        while run.stream_mark().is_none_or(|m| m.batches < before + 2)
            && started.elapsed() < Duration::from_secs(60)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(rng % 700));
        child.kill().expect("SIGKILL stream");
        let _ = child.wait();
        eprintln!("stream killed ({kill}) after {:?}", started.elapsed());
    }
    let (produced, _) = wait_ecom(producer);
    assert_eq!(produced["delivered"], rows, "{produced}");
    // The last run catches up; SIGTERM once its own mark (written at its start, then after
    // each micro-batch) covers every record.
    let before = run.stream_mark().map_or(0, |m| m.committed_at_ms);
    let child = spawn_ecom(&args);
    let started = Instant::now();
    while run
        .stream_mark()
        .is_none_or(|m| m.committed_at_ms <= before || m.offsets.values().sum::<u64>() < rows)
    {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the stream did not catch up: {:?}",
            run.stream_mark()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let (summary, _) = wait_ecom(child);
    eprintln!("last run: {summary}");

    // Every record in exactly one committed raw file: per partition, contiguous ranges from 0.
    let raw = run.raw_files();
    assert_eq!(line_count(&raw), rows as usize);
    let mut next: BTreeMap<u32, u64> = BTreeMap::new();
    for (name, _) in &raw {
        let f = ecom_jobs::sink::RawFileName::parse(name).expect("raw file name");
        let n = next.entry(f.partition).or_default();
        assert_eq!(f.first, *n, "{name} overlaps or leaves a gap");
        *n = f.last + 1;
    }
    // No leftovers: staging directories of killed attempts are swept, no temporary raw file.
    let store = run.hdfs_store();
    let staging = format!("{}/clean/{}", run.base, ecom_jobs::incremental::STAGING_DIR);
    assert!(store.list_dirs(&staging).unwrap_or_default().is_empty());
    let raw_dir = format!("{}/raw", run.base);
    assert_eq!(store.list_hidden(&raw_dir).expect("list raw"), vec![]);
    // The table and the aggregates hold the clean rows once.
    assert_eq!(run.fact_row_count(), truth.full.rows_out);
    let agg = run.stored_aggregates();
    assert_eq!(agg.total.orders, truth.full.rows_out);
    assert_eq!(agg.total.revenue_cents, truth.clean_revenue_cents);
    // The quality reports add up to the truth: every record cleaned once.
    let agg_table = run
        .hbase()
        .table(&format!("{}_agg", run.table))
        .expect("agg table");
    let (mut rows_in, mut rows_out) = (0, 0);
    let mut dropped: BTreeMap<String, u64> = BTreeMap::new();
    for r in scan_prefix(&*agg_table, REPORT_PREFIX.as_bytes(), 100_000).expect("reports") {
        let report: ecom_jobs::clean::QualityReport =
            serde_json::from_slice(&r.cells[&format!("{AGG_FAMILY}:json")]).expect("report");
        rows_in += report.rows_in;
        rows_out += report.rows_out;
        for (rule, n) in report.dropped {
            *dropped.entry(rule).or_default() += n;
        }
    }
    assert_eq!((rows_in, rows_out), (rows, truth.full.rows_out));
    for (rule, n) in &truth.full.dropped {
        assert_eq!(dropped.get(rule).copied().unwrap_or(0), *n, "rule {rule}");
    }
    run.cleanup();
}
