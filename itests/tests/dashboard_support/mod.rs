//! Helpers of the dashboard's browser and live tests: the browser set-up, an
//! `ecom` dashboard process, the node driver, and an oracle that recomputes
//! every panel from the clean Parquet files in plain Rust.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use ecom_jobs::calendar::{civil_from_days, days_from_civil};

/// The repository root (the parent of `itests/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("itests has a parent")
        .to_path_buf()
}

/// Runs `scripts/browser-setup.sh` (idempotent: chromium, `npm ci`).
pub fn browser_setup(repo: &Path) {
    let status = Command::new("bash")
        .arg(repo.join("scripts/browser-setup.sh"))
        .status()
        .expect("run scripts/browser-setup.sh");
    assert!(status.success(), "scripts/browser-setup.sh failed");
}

/// The `ecom` binary named by `ECOM_BIN`.
pub fn ecom_bin() -> String {
    match std::env::var("ECOM_BIN") {
        Ok(v) if !v.trim().is_empty() => v,
        _ => panic!(
            "ECOM_BIN is not set: build ecom (cargo build --release --locked --bin ecom) and set \
             ECOM_BIN to it, or run `make itest`"
        ),
    }
}

/// A running `ecom demo` or `ecom dashboard`, killed on drop.
pub struct Server {
    child: Child,
    /// `http://HOST:PORT/`.
    pub url: String,
}

/// Old name kept for the browser test.
pub type Demo = Server;

impl Server {
    /// `ecom demo ARGS --port 0`, waiting (up to 5 minutes) for the dashboard address.
    pub fn start(args: &[&str]) -> Server {
        let mut all = vec!["demo", "--port", "0"];
        all.extend_from_slice(args);
        Server::spawn(&all, Duration::from_secs(300))
    }

    /// Runs `ecom ARGS` and waits for its `dashboard: http://...` line on standard error.
    pub fn spawn(args: &[&str], wait: Duration) -> Server {
        let mut child = Command::new(ecom_bin())
            .args(args)
            .env("ECOM_SUMMARY_FILE", "/dev/null")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start ecom {args:?}: {e}"));
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if !sent {
                    if let Some(rest) = line.split("http://").nth(1) {
                        let addr = rest.split('/').next().unwrap_or_default().to_string();
                        let _ = tx.send(format!("http://{addr}/"));
                        sent = true;
                        continue;
                    }
                }
                eprintln!("[ecom] {line}");
            }
        });
        match rx.recv_timeout(wait) {
            Ok(url) => Server { child, url },
            Err(_) => {
                let _ = child.kill();
                panic!("ecom {args:?} did not print its dashboard address within {wait:?}");
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `node tests/browser/SCRIPT ARGS` and parses its JSON standard output.
pub fn run_node(repo: &Path, script: &str, args: &[&str]) -> Value {
    let out = Command::new("node")
        .arg(repo.join("tests/browser").join(script))
        .args(args)
        .current_dir(repo.join("tests/browser"))
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("run node {script}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "node {script} failed:\n{stdout}");
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("output of {script}: {e}: {last}"))
}

/// One clean row.
#[derive(Debug, Clone)]
pub struct Row {
    pub order_id: u64,
    pub user_id: u64,
    pub category: String,
    pub cents: i64,
    pub payment: String,
    pub status: String,
    pub timestamp: String,
    /// Seconds since the epoch, reading the timestamp as UTC.
    pub epoch: i64,
}

/// Which rows a query selects.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub category: Option<String>,
    pub status: Option<String>,
    pub payment: Option<String>,
    /// Inclusive start, seconds since the epoch.
    pub from: Option<i64>,
    /// Exclusive end.
    pub to: Option<i64>,
}

impl Filter {
    pub fn keeps(&self, r: &Row) -> bool {
        self.category.as_ref().is_none_or(|c| &r.category == c)
            && self.status.as_ref().is_none_or(|s| &r.status == s)
            && self.payment.as_ref().is_none_or(|p| &r.payment == p)
            && self.from.is_none_or(|f| r.epoch >= f)
            && self.to.is_none_or(|t| r.epoch < t)
    }
}

/// Orders and revenue of a group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub orders: u64,
    pub cents: i64,
}

/// KPI figures of a selection.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub orders: u64,
    pub cents: i64,
    pub min: i64,
    pub max: i64,
    /// Sorted amounts in cents.
    pub sorted: Vec<i64>,
}

impl Stats {
    pub fn revenue(&self) -> f64 {
        self.cents as f64 / 100.0
    }

    pub fn mean(&self) -> f64 {
        self.revenue() / self.orders as f64
    }

    /// (population, sample) standard deviation in currency units.
    pub fn std(&self) -> (f64, f64) {
        let n = self.sorted.len() as f64;
        let mean = self.mean();
        let ss: f64 = self
            .sorted
            .iter()
            .map(|&c| (c as f64 / 100.0 - mean).powi(2))
            .sum();
        ((ss / n).sqrt(), (ss / (n - 1.0)).sqrt())
    }

    /// The values between which any usual definition of the `p` quantile lies.
    pub fn quantile_interval(&self, p: f64) -> (f64, f64) {
        let n = self.sorted.len();
        let pos = p * (n - 1) as f64;
        let lo = self.sorted[(pos.floor() as usize).saturating_sub(1)];
        let hi = self.sorted[((pos.ceil() as usize) + 1).min(n - 1)];
        (lo as f64 / 100.0, hi as f64 / 100.0)
    }
}

/// The clean data and its report, recomputed from the Parquet files.
pub struct CleanData {
    pub rows: Vec<Row>,
    pub rows_in: u64,
    pub rows_out: u64,
    pub dropped: Value,
    pub fixed: Value,
}

impl CleanData {
    /// Reads every `*.parquet` under `dir` and every quality report (`report.json`, a run's
    /// `report-RUN.json`), summing the reports of runs.
    pub fn read(dir: &Path) -> CleanData {
        let mut rows = Vec::new();
        let mut parquet = Vec::new();
        let mut reports = Vec::new();
        collect(dir, &mut parquet, &mut reports);
        parquet.sort();
        for p in &parquet {
            rows.extend(read_parquet(&std::fs::read(p).expect("read parquet")));
        }
        let mut rows_in = 0;
        let mut rows_out = 0;
        let mut dropped = BTreeMap::<String, u64>::new();
        let mut fixed = BTreeMap::<String, u64>::new();
        for r in &reports {
            let v: Value = serde_json::from_slice(&std::fs::read(r).expect("read report"))
                .expect("report json");
            rows_in += v["rows_in"].as_u64().expect("rows_in");
            rows_out += v["rows_out"].as_u64().expect("rows_out");
            for (map, key) in [(&mut dropped, "dropped"), (&mut fixed, "fixed")] {
                for (k, n) in v[key].as_object().expect(key) {
                    *map.entry(k.clone()).or_default() += n.as_u64().unwrap_or_default();
                }
            }
        }
        CleanData {
            rows,
            rows_in,
            rows_out,
            dropped: serde_json::to_value(dropped).expect("json"),
            fixed: serde_json::to_value(fixed).expect("json"),
        }
    }

    fn selected<'a>(&'a self, f: &'a Filter) -> impl Iterator<Item = &'a Row> + 'a {
        self.rows.iter().filter(move |r| f.keeps(r))
    }

    pub fn stats(&self, f: &Filter) -> Stats {
        let mut sorted: Vec<i64> = self.selected(f).map(|r| r.cents).collect();
        sorted.sort_unstable();
        Stats {
            orders: sorted.len() as u64,
            cents: sorted.iter().sum(),
            min: sorted.first().copied().unwrap_or_default(),
            max: sorted.last().copied().unwrap_or_default(),
            sorted,
        }
    }

    pub fn group(&self, f: &Filter, key: impl Fn(&Row) -> String) -> BTreeMap<String, Tally> {
        let mut out = BTreeMap::<String, Tally>::new();
        for r in self.selected(f) {
            let t = out.entry(key(r)).or_default();
            t.orders += 1;
            t.cents += r.cents;
        }
        out
    }

    /// Categories by revenue, largest first (ties by name).
    pub fn categories(&self, f: &Filter) -> Vec<(String, Tally)> {
        let mut v: Vec<(String, Tally)> =
            self.group(f, |r| r.category.clone()).into_iter().collect();
        v.sort_by(|a, b| b.1.cents.cmp(&a.1.cents).then(a.0.cmp(&b.0)));
        v
    }

    /// `(user_id, orders, revenue cents)` by revenue desc, ties by user id asc.
    pub fn top_users(&self, f: &Filter, n: usize) -> Vec<(u64, u64, i64)> {
        let mut by = BTreeMap::<u64, (u64, i64)>::new();
        for r in self.selected(f) {
            let e = by.entry(r.user_id).or_default();
            e.0 += 1;
            e.1 += r.cents;
        }
        let mut v: Vec<(u64, u64, i64)> = by.into_iter().map(|(u, (o, c))| (u, o, c)).collect();
        v.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }

    /// Counts per bin for the given cent edges: `edge[i] <= amount < edge[i + 1]`,
    /// the last bin closed.
    pub fn histogram(&self, f: &Filter, edges: &[i64]) -> Vec<u64> {
        let bins = edges.len() - 1;
        let mut out = vec![0u64; bins];
        for r in self.selected(f) {
            let c = r.cents;
            if let Some(i) = (0..bins).find(|&i| {
                c >= edges[i] && (c < edges[i + 1] || (i == bins - 1 && c == edges[bins]))
            }) {
                out[i] += 1;
            }
        }
        out
    }

    /// The finest bucket giving at most 200 points over the selected rows' span.
    pub fn auto_bucket(&self, f: &Filter) -> &'static str {
        let (Some(first), Some(last)) = (
            self.selected(f).map(|r| r.epoch).min(),
            self.selected(f).map(|r| r.epoch).max(),
        ) else {
            return "hour";
        };
        for b in ["hour", "day", "week"] {
            let n = (bucket_start(last, b) - bucket_start(first, b)) / bucket_len(b) + 1;
            if n <= 200 {
                return b;
            }
        }
        "month"
    }

    /// Bucket start (`YYYY-MM-DDTHH:MM:SSZ`) -> (orders, revenue cents), non-empty buckets.
    pub fn timeseries(&self, f: &Filter, bucket: &str) -> BTreeMap<String, (u64, i64)> {
        let mut out = BTreeMap::<String, (u64, i64)>::new();
        for r in self.selected(f) {
            let e = out.entry(iso(bucket_start(r.epoch, bucket))).or_default();
            e.0 += 1;
            e.1 += r.cents;
        }
        out
    }

    /// One page of the drill-down table, ordered by order id.
    pub fn orders_page(&self, f: &Filter, page: usize, size: usize) -> Vec<Row> {
        let mut v: Vec<&Row> = self.selected(f).collect();
        v.sort_by_key(|r| r.order_id);
        v.into_iter()
            .skip((page - 1) * size)
            .take(size)
            .cloned()
            .collect()
    }

    /// The end (exclusive) of the last hour holding data.
    pub fn last_hour_end(&self) -> i64 {
        let last = self.rows.iter().map(|r| r.epoch).max().expect("rows");
        bucket_start(last, "hour") + 3600
    }
}

fn collect(dir: &Path, parquet: &mut Vec<PathBuf>, reports: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let p = e.expect("dir entry").path();
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // `_manifest/`, `_staging/`, `_checkpoints/` hold bookkeeping, not data.
        if name.starts_with(['_', '.']) {
            continue;
        }
        if p.is_dir() {
            collect(&p, parquet, reports);
        } else if p.extension().is_some_and(|x| x == "parquet") {
            parquet.push(p);
        } else if name == "report.json" || (name.starts_with("report-") && name.ends_with(".json"))
        {
            reports.push(p);
        }
    }
}

/// Rows of one clean Parquet file.
pub fn read_parquet(bytes: &[u8]) -> Vec<Row> {
    crate::common::parquet_rows(bytes.to_vec())
        .into_iter()
        .map(|r| Row {
            order_id: r.order_id.parse().expect("order id"),
            user_id: r.user_id.parse().expect("user id"),
            category: r.category,
            cents: (r.amount * 100.0).round() as i64,
            payment: r.payment,
            status: r.status,
            epoch: epoch_of(&r.timestamp),
            timestamp: r.timestamp,
        })
        .collect()
}

/// `YYYY-MM-DD HH:MM:SS` (or with `T` and `Z`) read as UTC -> seconds since the epoch.
pub fn epoch_of(ts: &str) -> i64 {
    let b = ts.as_bytes();
    let n = |r: std::ops::Range<usize>| -> i64 {
        ts.get(r.clone())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("timestamp {ts}: bad field {r:?}"))
    };
    assert!(b.len() >= 19, "timestamp {ts}");
    let small = |r| u32::try_from(n(r)).unwrap_or_else(|_| panic!("timestamp {ts}"));
    let days = days_from_civil(n(0..4), small(5..7), small(8..10));
    days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)
}

/// Seconds since the epoch -> `YYYY-MM-DDTHH:MM:SSZ`.
pub fn iso(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

fn bucket_len(b: &str) -> i64 {
    match b {
        "hour" => 3600,
        "day" => 86_400,
        "week" => 7 * 86_400,
        other => panic!("no fixed length for bucket {other}"),
    }
}

/// Start of the bucket holding `secs` (weeks start on Monday, months on the 1st).
pub fn bucket_start(secs: i64, b: &str) -> i64 {
    let day = secs.div_euclid(86_400);
    match b {
        "hour" => secs - secs.rem_euclid(3600),
        "day" => day * 86_400,
        "week" => (day - (day + 3).rem_euclid(7)) * 86_400,
        "month" => {
            let (y, m, _) = civil_from_days(day);
            days_from_civil(y, m, 1) * 86_400
        }
        other => panic!("unknown bucket {other}"),
    }
}

/// Two timestamps naming the same instant (space or `T`, with or without `Z`).
pub fn same_instant(a: &str, b: &str) -> bool {
    a.len() >= 19 && b.len() >= 19 && epoch_of(a) == epoch_of(b)
}

/// Percent-encoding as `URLSearchParams` writes it (space as `+`).
pub fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A JSON number of currency units -> cents.
pub fn cents_of(v: &Value) -> i64 {
    (v.as_f64().unwrap_or_else(|| panic!("not a number: {v}")) * 100.0).round() as i64
}

pub fn parse_cents(s: &str) -> i64 {
    (s.trim()
        .parse::<f64>()
        .unwrap_or_else(|e| panic!("amount {s:?}: {e}"))
        * 100.0)
        .round() as i64
}

pub fn money_eq(v: &Value, cents: i64, what: &str) {
    assert_eq!(
        cents_of(v),
        cents,
        "{what}: {v} vs {}",
        cents as f64 / 100.0
    );
}

pub fn close(v: &Value, want: f64, tol: f64, what: &str) {
    let got = v
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: not a number: {v}"));
    assert!((got - want).abs() <= tol, "{what}: {got} vs {want}");
}

/// A small RFC 4180 reader (quoted fields, doubled quotes).
pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

/// The named columns of every data row (after the header line).
pub fn records(table: &[Vec<String>], columns: &[&str]) -> Vec<Vec<String>> {
    let header = &table[0];
    let idx: Vec<usize> = columns
        .iter()
        .map(|c| {
            header
                .iter()
                .position(|h| h == c)
                .unwrap_or_else(|| panic!("CSV has no column {c}: {header:?}"))
        })
        .collect();
    table[1..]
        .iter()
        .map(|r| idx.iter().map(|&i| r[i].clone()).collect())
        .collect()
}
