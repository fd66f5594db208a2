//! End-to-end checks of the `ecom` binary: generate, clean and a demo whose
//! dashboard API is queried over HTTP.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

fn ecom() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ecom"))
}

fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect to dashboard");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("http response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    (status, body.to_string())
}

fn json(addr: &str, path: &str) -> Value {
    let (status, body) = http_get(addr, path);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// Starts `ecom demo`, waits for the dashboard line, returns the child and address.
fn start_demo(data_dir: &Path, rows: u64) -> (std::process::Child, String, Value) {
    let mut child = ecom()
        .args([
            "demo",
            "--rows",
            &rows.to_string(),
            "--port",
            "0",
            "--dirty-rate",
            "0.2",
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ecom demo");
    let mut stdout = String::new();
    let stderr = child.stderr.take().expect("stderr");
    let mut addr = None;
    let mut lines = BufReader::new(stderr).lines();
    for line in lines.by_ref() {
        let line = line.expect("stderr line");
        if let Some(rest) = line.strip_prefix("dashboard: http://") {
            addr = rest.split('/').next().map(str::to_string);
            break;
        }
    }
    let addr = addr.expect("demo printed its dashboard address");
    // Keep draining stderr so the demo never writes into a closed pipe.
    std::thread::spawn(move || for _ in lines {});
    // The report was printed before the dashboard line.
    let mut out = child.stdout.take().expect("stdout");
    let mut buf = [0u8; 65536];
    while serde_json::from_str::<Value>(&stdout).is_err() {
        let n = out.read(&mut buf).expect("read stdout");
        assert!(n > 0, "stdout closed before the report: {stdout}");
        stdout.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    (child, addr, serde_json::from_str(&stdout).expect("report"))
}

fn stop(mut child: std::process::Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = child.wait().expect("wait");
    assert!(exit.success(), "demo exits cleanly on SIGTERM: {exit:?}");
}

#[test]
fn demo_serves_counts_equal_to_the_quality_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (child, addr, report) = start_demo(dir.path(), 30_000);
    let truth: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("input/truth.json")).expect("truth"),
    )
    .expect("truth json");
    let summary = json(&addr, "/api/summary");
    assert_eq!(summary["orders"], report["rows_out"]);
    assert_eq!(summary["orders"], truth["full"]["rows_out"]);
    assert_eq!(summary["rows_in"], 30_000);
    let revenue = summary["revenue"].as_f64().expect("revenue");
    let expected = truth["clean_revenue_cents"].as_i64().expect("cents") as f64 / 100.0;
    assert!(
        (revenue - expected).abs() < 0.005,
        "{revenue} vs {expected}"
    );
    for (rule, n) in truth["full"]["dropped"].as_object().expect("dropped") {
        assert_eq!(&summary["dropped"][rule], n, "{rule}");
    }
    let cats = json(&addr, "/api/categories");
    let orders: u64 = cats["rows"]
        .as_array()
        .expect("rows array")
        .iter()
        .map(|c| c["orders"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(Some(orders), summary["orders"].as_u64());
    let status = json(&addr, "/api/status");
    assert_eq!(status["rows"].as_array().expect("rows array").len(), 4);
    let (code, page) = http_get(&addr, "/");
    assert_eq!(code, 200);
    assert!(page.contains("ecom-pipeline"));
    stop(child);

    // Re-running on the same data dir replaces the state: no duplicated rows.
    let (child, addr, _) = start_demo(dir.path(), 30_000);
    let again = json(&addr, "/api/summary");
    assert_eq!(again["orders"], summary["orders"]);
    assert_eq!(again["revenue"], summary["revenue"]);
    stop(child);
}

#[test]
fn generate_is_deterministic_and_clean_reports_add_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = dir.path().join("a.tsv");
    let b = dir.path().join("raw/b.tsv");
    for out in [&a, &b] {
        let st = ecom()
            .args([
                "generate",
                "--rows",
                "5000",
                "--seed",
                "9",
                "--dirty-rate",
                "0.3",
                "--out",
            ])
            .arg(out)
            .arg("--truth")
            .arg(dir.path().join("truth.json"))
            .status()
            .expect("generate");
        assert!(st.success());
    }
    assert_eq!(std::fs::read(&a).expect("a"), std::fs::read(&b).expect("b"));
    let out = dir.path().join("clean");
    let run = ecom()
        .args(["clean", "--input"])
        .arg(dir.path().join("raw"))
        .arg("--output")
        .arg(&out)
        .output()
        .expect("clean");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let last = String::from_utf8_lossy(&run.stdout)
        .lines()
        .last()
        .unwrap_or("")
        .to_string();
    let summary: Value = serde_json::from_str(&last).expect("JSON summary as last line");
    assert_eq!(summary["stage"], "clean", "{summary}");
    // One run, committed in the manifest, whose report is the summary's.
    let manifest = committed_manifest(&out);
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(manifest["report"].as_str().expect("report path"))
            .expect("report"),
    )
    .expect("json");
    assert_eq!(summary["report"], report);
    assert_eq!(summary["runs"], serde_json::json!([manifest["run"]]));
    let report = &summary["report"];
    let truth: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("truth.json")).expect("truth"),
    )
    .expect("json");
    assert_eq!(report["rows_out"], truth["full"]["rows_out"]);
    let dropped: u64 = report["dropped"]
        .as_object()
        .expect("map")
        .values()
        .filter_map(Value::as_u64)
        .sum();
    assert_eq!(
        report["rows_in"].as_u64(),
        Some(report["rows_out"].as_u64().unwrap_or(0) + dropped)
    );
    for file in manifest["parquet_files"].as_array().expect("files") {
        assert!(Path::new(file.as_str().expect("path")).exists(), "{file}");
    }
    // Cleaning again finds nothing new: the runs are committed once.
    let raw = dir.path().join("raw");
    let again = stage(&[
        OsStr::new("clean"),
        OsStr::new("--input"),
        raw.as_os_str(),
        OsStr::new("--output"),
        out.as_os_str(),
    ]);
    assert_eq!(again["runs"], serde_json::json!([]), "{again}");
    assert_eq!(again["already_cleaned"], 1, "{again}");

    // Bad input names its cause.
    let bad = ecom()
        .args(["clean", "--input", "/nonexistent/input.tsv", "--output"])
        .arg(&out)
        .output()
        .expect("clean");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("/nonexistent/input.tsv"));
    let bad = ecom()
        .args(["generate", "--rows", "1", "--rate", "bogus=0.1"])
        .output()
        .expect("generate");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("bogus"));
}

#[test]
fn demo_runs_on_the_users_own_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("export.tsv");
    let truth = generate_export(&file, 4000, 5, 0.3);
    let data = dir.path().join("data");
    let run = |extra: &[&str]| {
        let out = ecom()
            .args(["demo", "--no-serve", "--input"])
            .arg(&file)
            .arg("--data-dir")
            .arg(&data)
            .args(extra)
            .output()
            .expect("demo");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value =
            serde_json::from_slice(&out.stdout).expect("the quality report on stdout");
        report
    };
    let full = run(&[]);
    assert_eq!(full["rows_in"], 4000, "{full}");
    assert_eq!(full["rows_out"], truth["full"]["rows_out"], "{full}");
    assert_eq!(full["mode"], "full");
    // Nothing was generated: the demo read the given file.
    assert!(!data.join("input").exists());
    let compat = run(&["--seed-compat"]);
    assert_eq!(compat["mode"], "seed_compat", "{compat}");
    assert_eq!(
        compat["rows_out"], truth["seed_compat"]["rows_out"],
        "{compat}"
    );

    // A missing file or a directory is refused, naming it.
    for bad in [dir.path().join("missing.tsv"), dir.path().to_path_buf()] {
        let out = ecom()
            .args(["demo", "--no-serve", "--input"])
            .arg(&bad)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .expect("demo");
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&bad.display().to_string()), "{err}");
    }
    // --input and generation flags exclude each other.
    let out = ecom()
        .args(["demo", "--no-serve", "--rows", "10", "--input"])
        .arg(&file)
        .output()
        .expect("demo");
    assert!(!out.status.success());
}

/// The one manifest committed in a clean directory.
fn committed_manifest(clean: &Path) -> Value {
    let manifests: Vec<_> = std::fs::read_dir(clean.join("_manifest"))
        .expect("manifest directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    assert_eq!(manifests.len(), 1, "{manifests:?}");
    serde_json::from_str(&std::fs::read_to_string(&manifests[0]).expect("manifest")).expect("json")
}

/// Runs `ecom` with `args`; its JSON summary (last line of standard output).
fn stage<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(args: &[S]) -> Value {
    // An HBase address left in the environment (as the test harness exports) never wins over
    // `--store`; nothing listens there.
    let out = ecom()
        .args(args)
        .env("HBASE_THRIFT", "127.0.0.1:9")
        .output()
        .expect("ecom");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or("")).expect("summary")
}

#[test]
fn local_clean_then_local_load_fills_the_embedded_table() {
    use ecom_jobs::load::LoadConfig;
    use ecom_jobs::store::table::scan_prefix;
    use ecom_jobs::store::{EmbeddedTables, TableStore};
    let dir = tempfile::tempdir().expect("tempdir");
    let p = |name: &str| dir.path().join(name).into_os_string();
    let file = p("export.tsv");
    let truth = generate_export(Path::new(&file), 3000, 8, 0.2);
    let os = |s: &str| std::ffi::OsString::from(s);
    let clean = p("clean");
    let cleaned = stage(&[&os("clean"), &os("--input"), &file, &os("--output"), &clean]);
    assert_eq!(
        cleaned["report"]["rows_out"], truth["full"]["rows_out"],
        "{cleaned}"
    );
    let store = p("store.redb");
    let load = [&os("load"), &os("--input"), &clean, &os("--store"), &store];
    let loaded = stage(&load);
    assert_eq!(loaded["rows"], truth["full"]["rows_out"], "{loaded}");
    assert_eq!(loaded["runs"], 1, "{loaded}");
    // Loading again rewrites the same cells: the table holds each clean row once.
    let again = stage(&load);
    assert_eq!(again["runs"], 1, "{again}");

    let tables = EmbeddedTables::open(dir.path().join("store.redb")).expect("store");
    let fact = tables
        .table(&LoadConfig::default().table)
        .expect("fact table");
    let rows = scan_prefix(fact.as_ref(), b"", usize::MAX).expect("scan");
    assert_eq!(Some(rows.len() as u64), truth["full"]["rows_out"].as_u64());
}

/// Writes `rows` generated rows (seed, dirty rate) with a header to `file`; returns the
/// generator's ground truth.
fn generate_export(file: &Path, rows: u64, seed: u64, dirty_rate: f64) -> Value {
    let truth = file.with_extension("truth.json");
    let st = ecom()
        .args([
            "generate",
            "--rows",
            &rows.to_string(),
            "--seed",
            &seed.to_string(),
        ])
        .args(["--dirty-rate", &dirty_rate.to_string(), "--out"])
        .arg(file)
        .arg("--truth")
        .arg(&truth)
        .status()
        .expect("generate");
    assert!(st.success());
    serde_json::from_str(&std::fs::read_to_string(&truth).expect("truth")).expect("json")
}
