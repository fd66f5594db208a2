//! The dashboard API on real HBase: a dirty 200,000-row dataset goes
//! through produce -> sink -> clean -> load on the real services, then
//! `ecom dashboard --hbase-thrift` answers every endpoint under a set of
//! filters exactly like the polars recomputation from the clean Parquet
//! (`ecom_testkit::Oracle`), including the drill-down and the CSV
//! export, which read their rows from the HBase fact table. The load writes
//! through the default Thrift server (buffered, binary); the dashboard reads
//! through the harness's framed and compact one (`HBASE_THRIFT_FRAMED`), so
//! every read path is also checked on that wire (`dashboard_live` reads
//! through the default server).
//!
//! Needs the services (`make services-up`, `eval "$(scripts/services.sh env)"`)
//! and the binary in `ECOM_BIN`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::*;
use ecom_jobs::incremental::committed_runs;
use ecom_jobs::store::FileStore;
use ecom_testkit::Oracle;
use serde_json::Value;

/// `GET path`: (status, body).
fn get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(120)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8(raw).expect("utf8");
    let (head, body) = text.split_once("\r\n\r\n").expect("headers");
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "unexpected chunked answer to {path}"
    );
    (head[9..12].parse().expect("status"), body.to_string())
}

/// `GET path` of a streamed answer (the CSV export): asked over HTTP/1.0, so the
/// body ends with the connection instead of being chunked. (status, body).
fn get_stream(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(300)))
        .expect("timeout");
    write!(s, "GET {path} HTTP/1.0\r\nHost: t\r\n\r\n").expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8(raw).expect("utf8");
    let (head, body) = text.split_once("\r\n\r\n").expect("headers");
    (head[9..12].parse().expect("status"), body.to_string())
}

/// Kills the dashboard when the test ends, passing or not.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Numbers equal within a relative 1e-9, everything else exactly.
fn same(a: &Value, b: &Value, path: &str) {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().expect("f64"), y.as_f64().expect("f64"));
            assert!(
                (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
                "{path}: {x} != {y}"
            );
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{path}: lengths");
            for (i, (x, y)) in x.iter().zip(y).enumerate() {
                same(x, y, &format!("{path}[{i}]"));
            }
        }
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys()) {
                if k == "last_update" {
                    continue;
                }
                same(&x[k], &y[k], &format!("{path}.{k}"));
            }
        }
        _ => assert_eq!(a, b, "{path}"),
    }
}

/// One long scenario on purpose: the pipeline runs once against real Kafka, HDFS and HBase
/// (minutes), then every endpoint is compared with the oracle's answer from the same Parquet.
#[test]
fn dashboard_on_hbase_matches_recomputation() {
    let run = Run::new("dapi");
    let input = run.tmp.path().join("in.tsv");
    ecom_ok(&[
        "generate",
        "--rows",
        "200000",
        "--dirty-rate",
        "0.05",
        "--seed",
        "23",
        "--out",
        input.to_str().expect("utf8"),
    ]);
    ecom_json(&run.produce_args(input.to_str().expect("utf8")));
    ecom_json(&run.sink_args(50_000));
    ecom_json(&run.clean_args());
    let loaded = ecom_json(&run.load_args());
    assert!(loaded["rows"].as_u64().unwrap_or(0) > 180_000, "{loaded}");

    // The clean Parquet and reports, copied locally for the recomputation.
    let store = run.hdfs_store();
    let local = run.tmp.path().join("clean");
    for r in committed_runs(&store, &format!("{}/clean", run.base)).expect("manifests") {
        let dir = local.join(&r.run);
        std::fs::create_dir_all(&dir).expect("mkdir");
        for (i, p) in r.parquet_files.iter().enumerate() {
            let bytes = store.read(p).expect("read parquet");
            std::fs::write(dir.join(format!("part-{i:04}.parquet")), bytes).expect("write");
        }
        let report = store.read(&r.report).expect("read report");
        std::fs::write(dir.join("report.json"), report).expect("write report");
    }

    let mut child = ecom_cmd(&[
        "dashboard",
        "--hbase-thrift",
        &service_env("HBASE_THRIFT_FRAMED"),
        "--hbase-transport",
        "framed",
        "--hbase-protocol",
        "compact",
        "--table",
        &run.table,
        "--port",
        "0",
    ])
    .stderr(Stdio::piped())
    .stdout(Stdio::null())
    .spawn()
    .expect("start dashboard");
    let stderr = child.stderr.take().expect("stderr");
    let server = Server(child);
    let mut addr = String::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.expect("stderr line");
        if let Some(rest) = line.strip_prefix("dashboard: http://") {
            addr = rest.trim_end_matches('/').to_string();
            break;
        }
    }
    assert!(!addr.is_empty(), "the dashboard did not start");

    let mut queries = Vec::new();
    for f in [
        "",
        "category=Books",
        "payment=Cash,PayPal",
        "status=Cancelled",
        "from=2024-01-20&to=2024-02-10T06:00:00Z",
        "from=2024-01-20&to=2024-02-10&category=Electronics&payment=Credit+Card&status=Delivered",
    ] {
        for e in [
            "kpis",
            "categories",
            "status",
            "category-status",
            "payments",
            "top-users",
            "histogram",
            "timeseries",
            "orders",
        ] {
            queries.push(format!("/api/{e}?{f}"));
        }
    }
    queries.extend(
        [
            "/api/orders?page=3&page_size=200&status=Pending",
            "/api/histogram?bins=50&category=Toys",
            "/api/timeseries?bucket=week",
            "/api/top-users?limit=100&from=2024-02-01&to=2024-03-01",
            "/api/health",
        ]
        .map(String::from),
    );
    // The CSV export: every filtered row, read from the fact table in batches.
    let exports = [
        "/api/orders?format=csv&all=true&category=Books&status=Delivered",
        "/api/orders?format=csv&all=true&from=2024-02-01&to=2024-02-15&payment=Cash",
    ];
    queries.extend(exports.map(String::from));
    let oracle = Oracle::from_dir(&local).expect("oracle");
    let expected: Vec<Value> = queries
        .iter()
        .map(|q| {
            oracle
                .answer(q)
                .unwrap_or_else(|e| panic!("oracle on {q}: {e}"))
        })
        .collect();
    assert_eq!(expected.len(), queries.len());
    assert!(expected[0]["orders"].as_u64().unwrap_or(0) > 180_000);

    for (q, want) in queries.iter().zip(&expected) {
        if let Some(csv) = want.as_str() {
            let (status, body) = get_stream(&addr, q);
            assert_eq!(status, 200, "{q}: {body}");
            assert!(
                body.lines().count() > 1_000,
                "{q}: {} lines",
                body.lines().count()
            );
            if body != csv {
                let at = body.lines().zip(csv.lines()).position(|(a, b)| a != b);
                panic!(
                    "{q}: export differs from the recomputation at line {at:?} ({} vs {} lines)",
                    body.lines().count(),
                    csv.lines().count()
                );
            }
            continue;
        }
        let (status, body) = get(&addr, q);
        assert_eq!(status, 200, "{q}: {body}");
        let got: Value = serde_json::from_str(&body).expect("api json");
        same(&got, want, q);
    }
    let (status, body) = get(&addr, "/api/kpis?to=2024-01-01T00:30:00Z");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("to") && body.contains("00:30"), "{body}");
    drop(server);
    run.cleanup();
}
