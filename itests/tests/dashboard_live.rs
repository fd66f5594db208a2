//! Live test of the dashboard on the real services: records stream into Kafka
//! (`ecom produce --rate`) while batches go sink -> clean (HDFS) -> load
//! (HBase over Thrift); the page, open in headless chromium and never
//! reloaded, must show each new batch's totals within 10 seconds of its load
//! finishing, pushed by server-sent events. Prints the measured delays. And the same page
//! over the streaming stage (`ecom stream`): every panel shows the end-to-end lag and when
//! the data last changed, and both move while records stream.

mod common;
mod dashboard_support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dashboard_support::*;
use serde_json::Value;

/// How long after a load finishes the page may take to show it.
const MAX_DELAY: Duration = Duration::from_secs(10);

fn env(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v,
        _ => panic!(
            "{name} is not set: run `make itest`, or `make services-up` and \
             `eval \"$(scripts/services.sh env)\"`, and set ECOM_BIN"
        ),
    }
}

/// Runs a stage; returns its JSON summary (last line of standard output).
fn stage(args: &[&str]) -> Value {
    let out = Command::new(ecom_bin())
        .args(args)
        .env("ECOM_SUMMARY_FILE", "/dev/null")
        .output()
        .unwrap_or_else(|e| panic!("run ecom {args:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ecom {args:?} failed:\n{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("summary of {args:?}: {e}: {last}"))
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis()
}

/// The node driver, spoken to line by line.
struct Page {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Page {
    fn open(repo: &std::path::Path, url: &str, out: &std::path::Path) -> Page {
        let mut child = Command::new("node")
            .arg(repo.join("tests/browser/live.mjs"))
            .args([url, out.to_str().expect("utf8")])
            .current_dir(repo.join("tests/browser"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start node live.mjs");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Page { child, lines }
    }

    fn read(&mut self) -> String {
        self.lines
            .next()
            .expect("live.mjs ended early (see its error above)")
            .expect("read live.mjs")
    }

    fn send(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{line}").expect("write to live.mjs");
        stdin.flush().expect("flush");
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Deletes a test's table and HDFS directory (best effort: the test has passed by then).
fn purge(thrift: &str, table: &str, dir: &str) {
    let _ = Command::new(ecom_bin())
        .args([
            "purge",
            "--hbase-thrift",
            thrift,
            "--table",
            table,
            "--path",
            dir,
        ])
        .env("ECOM_SUMMARY_FILE", "/dev/null")
        .output();
}

/// Sink what the topic holds, clean it incrementally, load it; returns the
/// rows this round's cleaning kept.
fn batch(topic: &str, raw: &str, clean: &str, table: &str) -> u64 {
    stage(&[
        "sink",
        "--topic",
        topic,
        "--output",
        raw,
        "--until-caught-up",
        "--roll-rows",
        "5000",
    ]);
    let cleaned = stage(&["clean", "--input", raw, "--output", clean]);
    let kept = cleaned["rows_out"]
        .as_u64()
        .or_else(|| cleaned["report"]["rows_out"].as_u64())
        .unwrap_or_else(|| panic!("no rows_out in the clean summary: {cleaned}"));
    stage(&["load", "--input", clean, "--table", table]);
    kept
}

/// One browser at a time: the two tests' pages share 2 cores with the services.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

// One scenario on purpose: the page stays open while batches arrive, so each step depends
// on the one before.
#[test]
fn new_batches_show_on_the_open_page_within_ten_seconds() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let repo = repo_root();
    browser_setup(&repo);
    let hdfs = env("HDFS_URL").trim_end_matches('/').to_string();
    let thrift = env("HBASE_THRIFT");
    let id = format!("live{}x{}", std::process::id(), now_ms() % 1_000_000_000);
    let topic = format!("it-{id}");
    let table = format!("it_{id}");
    let raw = format!("{hdfs}/ecom-itests/{id}/raw");
    let clean = format!("{hdfs}/ecom-itests/{id}/clean");

    // Streaming produce for the whole test: 1,500 records a second for 100 s.
    let mut producer = Command::new(ecom_bin())
        .args([
            "produce",
            "--topic",
            &topic,
            "--generate-rows",
            "150000",
            "--rate",
            "1500",
            "--dirty-rate",
            "0",
            "--seed",
            "5",
        ])
        .env("ECOM_SUMMARY_FILE", "/dev/null")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start ecom produce");
    std::thread::sleep(Duration::from_secs(3));

    let mut total = batch(&topic, &raw, &clean, &table);
    assert!(total > 0, "the first batch is empty");

    let server = Server::spawn(
        &[
            "dashboard",
            "--hbase-thrift",
            &thrift,
            "--table",
            &table,
            "--kafka-bootstrap",
            &env("KAFKA_BOOTSTRAP"),
            "--topic",
            &topic,
            "--port",
            "0",
        ],
        Duration::from_secs(60),
    );
    let out_dir = repo.join("test-output").join("browser");
    let mut page = Page::open(&repo, &server.url, &out_dir);
    let ready = page.read();
    assert_eq!(
        ready,
        format!("READY {total}"),
        "the page's first figures are the first batch"
    );

    let mut delays = Vec::new();
    let mut updates_seen = 0;
    for round in 1..=2 {
        std::thread::sleep(Duration::from_secs(3));
        let started = Instant::now();
        let kept = batch(&topic, &raw, &clean, &table);
        let loaded_at = now_ms();
        assert!(kept > 0, "round {round}: no new rows while producing");
        total += kept;
        page.send(&format!("EXPECT {total}"));
        let seen = page.read();
        let parts: Vec<&str> = seen.split_whitespace().collect();
        assert_eq!(parts.first(), Some(&"SEEN"), "{seen}");
        let seen_at: u128 = parts[2].parse().expect("time");
        let updates: u64 = parts[3].parse().expect("updates");
        let delay = Duration::from_millis(seen_at.saturating_sub(loaded_at) as u64);
        println!(
            "live round {round}: {kept} new rows (total {total}), batch took {:.1} s, \
             visible on the page {:.2} s after the load finished (live updates so far: {updates})",
            started.elapsed().as_secs_f64(),
            delay.as_secs_f64()
        );
        assert!(
            delay <= MAX_DELAY,
            "round {round}: the page showed the batch {delay:?} after the load"
        );
        assert!(
            updates > updates_seen,
            "round {round}: no server-sent update"
        );
        updates_seen = updates;
        delays.push(delay);
    }

    page.send("DONE");
    let report: Value = serde_json::from_str(&page.read()).expect("final report");
    assert_eq!(report["navigations"], 1, "the page was reloaded: {report}");
    // While streaming, the health panel shows the consumer lag (a number, not "not streaming").
    assert!(
        report["lag"].is_number(),
        "consumer lag on the page: {report}"
    );
    for kind in ["console", "pageErrors", "external", "failed"] {
        assert_eq!(
            report["problems"][kind].as_array().map(Vec::len),
            Some(0),
            "{kind}: {report}"
        );
    }
    let _ = producer.kill();
    let _ = producer.wait();
    println!(
        "live delays: {:?} (limit {MAX_DELAY:?})",
        delays.iter().map(|d| d.as_millis()).collect::<Vec<_>>()
    );
    drop(page);
    drop(server);
    purge(&thrift, &table, &format!("{hdfs}/ecom-itests/{id}"));
}

// One scenario: the page stays open while the streaming stage commits micro-batches.
#[test]
fn every_panel_shows_the_streaming_lag_and_it_moves() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let repo = repo_root();
    browser_setup(&repo);
    let hdfs = env("HDFS_URL").trim_end_matches('/').to_string();
    let thrift = env("HBASE_THRIFT");
    let id = format!("fresh{}x{}", std::process::id(), now_ms() % 1_000_000_000);
    let topic = format!("it-{id}");
    let table = format!("it_{id}");
    let rows: u64 = 40_000;
    // The topic first (the stage reads an existing one), then the stage, then the page.
    let mut producer = Command::new(ecom_bin())
        .args([
            "produce",
            "--topic",
            &topic,
            "--generate-rows",
            &rows.to_string(),
            "--rate",
            "1000",
            "--dirty-rate",
            "0",
            "--timestamps",
            "now",
        ])
        .env("ECOM_SUMMARY_FILE", "/dev/null")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start ecom produce");
    std::thread::sleep(Duration::from_secs(3));
    let mut stream = Command::new(ecom_bin())
        .args([
            "stream",
            "--topic",
            &topic,
            "--raw",
            &format!("{hdfs}/ecom-itests/{id}/raw"),
            "--clean",
            &format!("{hdfs}/ecom-itests/{id}/clean"),
            "--table",
            &table,
            "--hbase-thrift",
            &thrift,
        ])
        .env("ECOM_SUMMARY_FILE", "/dev/null")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ecom stream");
    // The dashboard once the stage has created its tables and loaded a little.
    std::thread::sleep(Duration::from_secs(4));
    let server = Server::spawn(
        &[
            "dashboard",
            "--hbase-thrift",
            &thrift,
            "--table",
            &table,
            "--port",
            "0",
            "--poll-ms",
            "250",
        ],
        Duration::from_secs(60),
    );
    let out_dir = repo.join("test-output").join("browser");
    let mut page = Page::open(&repo, &server.url, &out_dir);
    let _ready = page.read();
    let fresh = |page: &mut Page| -> Value {
        page.send("FRESH");
        serde_json::from_str(&page.read()).expect("FRESH answer")
    };
    // Wait for a freshness line with a lag on the page.
    let mut first = fresh(&mut page);
    let waited = Instant::now();
    while first["panels"][0]["lagMs"].is_null() {
        assert!(
            waited.elapsed() < Duration::from_secs(30),
            "no lag on the page: {first}"
        );
        std::thread::sleep(Duration::from_millis(500));
        first = fresh(&mut page);
    }
    std::thread::sleep(Duration::from_secs(4));
    let second = fresh(&mut page);
    println!(
        "freshness on the page: {} then {}",
        first["panels"][0], second["panels"][0]
    );
    for snap in [&first, &second] {
        let panels = snap["panels"].as_array().expect("panels");
        assert!(panels.len() >= 8, "{snap}");
        for p in panels {
            let lag = p["lagMs"].as_u64().unwrap_or_else(|| panic!("no lag: {p}"));
            assert!(lag < 60_000, "implausible lag: {p}");
            let text = p["text"].as_str().expect("text");
            assert!(text.starts_with("lag ") && text.contains("changed "), "{p}");
        }
    }
    assert!(
        second["orders"].as_u64() > first["orders"].as_u64(),
        "the orders did not grow while streaming: {first} {second}"
    );
    assert_ne!(
        first["panels"][0]["changed"], second["panels"][0]["changed"],
        "the last change did not move while streaming"
    );
    page.send("DONE");
    let report: Value = serde_json::from_str(&page.read()).expect("final report");
    assert_eq!(report["navigations"], 1, "the page was reloaded: {report}");
    for kind in ["console", "pageErrors", "external", "failed"] {
        assert_eq!(
            report["problems"][kind].as_array().map(Vec::len),
            Some(0),
            "{kind}: {report}"
        );
    }
    let _ = producer.kill();
    let _ = producer.wait();
    let _ = stream.kill();
    let _ = stream.wait();
    drop(page);
    drop(server);
    purge(&thrift, &table, &format!("{hdfs}/ecom-itests/{id}"));
}
