//! The clean layer as other tools read it: `ecom clean` writes a run on real HDFS, then
//! PySpark (reading hdfs:// itself) and DuckDB (its Parquet reader, on the files fetched over
//! WebHDFS) read the run's Parquet files. Each must see the rows, the column types and the
//! per-column aggregates of ecom's quality report: a Parquet timestamp in the full mode,
//! integer ids, and text timestamps with `--seed-compat`.
//!
//! Needs the services (`make services-up`, `eval "$(scripts/services.sh env)"`), `ECOM_BIN`
//! and the interop venv (`scripts/interop-setup.sh`; `ECOM_INTEROP_PYTHON` overrides its
//! Python).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use ecom_jobs::incremental::committed_runs;
use serde_json::{json, Value};

/// The interop venv's Python.
fn python() -> PathBuf {
    if let Ok(p) = std::env::var("ECOM_INTEROP_PYTHON") {
        return PathBuf::from(p);
    }
    let home = std::env::var("HOME").expect("HOME");
    let cache =
        std::env::var("ECOM_CACHE").unwrap_or_else(|_| format!("{home}/.cache/ecom-pipeline"));
    PathBuf::from(cache).join("interop-venv/bin/python")
}

/// What `engine` sees of the HDFS files `paths` (itests/interop/read_clean.py).
fn read_with(engine: &str, paths: &[String]) -> Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop/read_clean.py");
    let place = match engine {
        "spark" => service_env("HDFS_URL"),
        _ => service_env("HDFS_HTTP_URL"),
    };
    let out = Command::new(python())
        .arg(&script)
        .args([engine, place.trim_end_matches('/')])
        .args(paths)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "run {} (scripts/interop-setup.sh makes it): {e}",
                python().display()
            )
        });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{engine} failed: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("{engine}'s answer: {e}: {stdout}\n{stderr}"))
}

/// The Parquet files of the committed runs of the HDFS directory `dir` of `run`.
fn parquet_files(run: &Run, dir: &str) -> Vec<String> {
    let store = run.hdfs_store();
    let files: Vec<String> = committed_runs(&store, &format!("{}/{dir}", run.base))
        .expect("manifests")
        .iter()
        .flat_map(|r| r.parquet_files.clone())
        .map(|p| {
            if p.starts_with('/') {
                p
            } else {
                format!("{}/{dir}/{p}", run.base)
            }
        })
        .collect();
    assert!(!files.is_empty(), "no committed Parquet file under {dir}");
    files
}

/// Checks what an engine saw against ecom's report: rows, each column's type, and the
/// aggregates of every column the report profiles.
fn assert_seen_as_reported(engine: &str, seen: &Value, report: &Value, types: &Value) {
    assert_eq!(seen["rows"], report["rows_out"], "{engine}: rows");
    assert_eq!(&seen["types"], types, "{engine}: column types");
    let profiles = report["columns"].as_object().expect("report columns");
    assert_eq!(profiles.len(), 7, "{report}");
    for (name, want) in profiles {
        let got = &seen["columns"][name];
        for field in ["non_null", "min", "max", "values"] {
            assert_eq!(got[field], want[field], "{engine}: {name}.{field}");
        }
        match (want["sum"].as_f64(), got["sum"].as_f64()) {
            (Some(w), Some(g)) => assert!(
                (w - g).abs() <= 1e-6 * w.abs().max(1.0),
                "{engine}: {name}.sum {g} against {w}"
            ),
            (w, g) => assert_eq!(w, g, "{engine}: {name}.sum"),
        }
    }
}

#[test]
fn pyspark_and_duckdb_read_the_clean_layer_as_ecom_reports_it() {
    let run = Run::new("interop");
    let (input, truth) = run.generate(&["--rows", "30000", "--seed", "13", "--dirty-rate", "0.05"]);
    let url = |dir: &str| format!("{}{}/{dir}", run.hdfs, run.base);

    // Full rules: typed timestamps and ids.
    let full = ecom_json(&["clean", "--input", &input, "--output", &url("full")]);
    let report = &full["report"];
    assert_eq!(report["rows_out"], truth.full.rows_out, "{full}");
    assert_eq!(
        report["columns"]["order_id"]["non_null"],
        truth.full.rows_out
    );
    // The amounts the report sums are the clean revenue of the ground truth.
    let revenue = report["columns"]["amount"]["sum"].as_f64().expect("sum");
    assert!(
        (revenue * 100.0 - truth.clean_revenue_cents as f64).abs() < 1.0,
        "{revenue} against {} cents",
        truth.clean_revenue_cents
    );
    let files = parquet_files(&run, "full");
    let spark = read_with("spark", &files);
    assert_seen_as_reported(
        "PySpark",
        &spark,
        report,
        &json!({
            "order_id": "bigint", "user_id": "bigint", "category": "string", "amount": "double",
            "payment_method": "string", "status": "string", "timestamp": "timestamp_ntz"
        }),
    );
    let duck = read_with("duckdb", &files);
    assert_seen_as_reported(
        "DuckDB",
        &duck,
        report,
        &json!({
            "order_id": "BIGINT", "user_id": "BIGINT", "category": "VARCHAR", "amount": "DOUBLE",
            "payment_method": "VARCHAR", "status": "VARCHAR", "timestamp": "TIMESTAMP"
        }),
    );

    // --seed-compat keeps the seed's text schema.
    let compat = ecom_json(&[
        "clean",
        "--seed-compat",
        "--input",
        &input,
        "--output",
        &url("compat"),
    ]);
    let duck = read_with("duckdb", &parquet_files(&run, "compat"));
    assert_seen_as_reported(
        "DuckDB (--seed-compat)",
        &duck,
        &compat["report"],
        &json!({
            "order_id": "VARCHAR", "user_id": "VARCHAR", "category": "VARCHAR", "amount": "DOUBLE",
            "payment_method": "VARCHAR", "status": "VARCHAR", "timestamp": "VARCHAR"
        }),
    );
}
