//! Helpers of the pipeline tests: the `ecom` binary, unique names, HDFS and HBase access.

#![allow(dead_code)]

pub mod kube;

use std::io::Cursor;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ecom_jobs::aggregates::Aggregates;
use ecom_jobs::generate::GroundTruth;
use ecom_jobs::incremental::committed_runs;
use ecom_jobs::load::{AGG_FAMILY, AGG_PREFIX};
use ecom_jobs::store::hbase::{HbaseConfig, HbaseTables};
use ecom_jobs::store::hdfs::HdfsFiles;
use ecom_jobs::store::table::scan_prefix;
use ecom_jobs::store::{FileStore, Row, TableStore};
use polars::prelude::*;

/// Value of an environment variable exported by `scripts/services.sh env`.
pub fn service_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => value,
        _ => panic!(
            "environment variable {name} is not set: these tests need the real services (and \
             most of them the ecom binary). Run `make itest`, or `make services-up`, \
             `eval \"$(scripts/services.sh env)\"` and set ECOM_BIN to a release build of ecom."
        ),
    }
}

/// A command running the `ecom` binary named by `ECOM_BIN`.
pub fn ecom_cmd(args: &[&str]) -> Command {
    let mut c = Command::new(service_env("ECOM_BIN"));
    c.args(args).env("ECOM_SUMMARY_FILE", "/dev/null");
    c
}

/// Runs `ecom` and asserts success; returns standard output.
pub fn ecom_ok(args: &[&str]) -> String {
    let out = ecom_cmd(args).output().expect("run ecom");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ecom {args:?} failed:\n{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs a stage and returns its JSON summary (the last line of standard output).
pub fn ecom_json(args: &[&str]) -> serde_json::Value {
    let stdout = ecom_ok(args);
    let last = stdout.lines().last().unwrap_or_default();
    let v: serde_json::Value =
        serde_json::from_str(last).unwrap_or_else(|e| panic!("summary of {args:?}: {e}: {last}"));
    assert_eq!(v["ok"], true, "{v}");
    v
}

/// Starts `ecom` with its standard output and error piped, for [`wait_ecom`].
pub fn spawn_ecom(args: &[&str]) -> Child {
    ecom_cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn ecom {args:?}: {e}"))
}

/// Waits for an `ecom` of [`spawn_ecom`] and asserts success; returns its JSON summary (the
/// last line of standard output) and its standard error.
pub fn wait_ecom(child: Child) -> (serde_json::Value, String) {
    let out = child.wait_with_output().expect("wait for ecom");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ecom failed:\n{stderr}\n{stdout}");
    let last = stdout.lines().last().unwrap_or_default();
    let v: serde_json::Value =
        serde_json::from_str(last).unwrap_or_else(|e| panic!("summary: {e}: {last}"));
    assert_eq!(v["ok"], true, "{v}");
    (v, stderr)
}

/// Records (non-empty lines) in raw files as given by [`Run::files`].
pub fn line_count(files: &[(String, Vec<u8>)]) -> usize {
    files
        .iter()
        .map(|(_, data)| {
            data.split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .count()
        })
        .sum()
}

/// A lowercase name fragment unique to this run and call.
pub fn unique_suffix() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock before 1970")
        .as_nanos();
    format!(
        "{}{:x}{}",
        std::process::id(),
        nanos % 0xffff_ffff_ffff,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates the serving table `table` and its aggregates table `{table}_agg`, one row in each,
/// as a loaded pipeline leaves them (for the tests of the cleanup).
pub fn seed_tables(tables: &HbaseTables, table: &str) {
    for (name, family) in [
        (table.to_string(), "order_details"),
        (format!("{table}_agg"), "agg"),
    ] {
        tables.ensure_table(&name, &[family]).expect("create table");
        let row = Row {
            key: b"k".to_vec(),
            cells: [(format!("{family}:q"), b"v".to_vec())]
                .into_iter()
                .collect(),
        };
        tables
            .table(&name)
            .expect("table")
            .put(&[row])
            .expect("put");
    }
}

/// One clean row, as text (amount as a number).
#[derive(Debug, Clone, PartialEq)]
pub struct CleanRow {
    pub order_id: String,
    pub user_id: String,
    pub category: String,
    pub amount: f64,
    pub payment: String,
    pub status: String,
    pub timestamp: String,
}

/// Every row of one clean Parquet file (ids as text, whatever their stored type).
pub fn parquet_rows(bytes: Vec<u8>) -> Vec<CleanRow> {
    let df = ParquetReader::new(Cursor::new(bytes))
        .finish()
        .and_then(ecom_jobs::clean::timestamp::to_text)
        .expect("parquet")
        .lazy()
        .select([
            col("order_id").cast(DataType::String),
            col("user_id").cast(DataType::String),
            col("category"),
            col("amount"),
            col("payment_method"),
            col("status"),
            col("timestamp"),
        ])
        .collect()
        .expect("select");
    let s = |c: &str| df.column(c).expect(c).str().expect(c).clone();
    let (o, u, c, p, st, t) = (
        s("order_id"),
        s("user_id"),
        s("category"),
        s("payment_method"),
        s("status"),
        s("timestamp"),
    );
    let a = df
        .column("amount")
        .expect("amount")
        .f64()
        .expect("f64")
        .clone();
    (0..df.height())
        .map(|i| {
            let g = |x: &StringChunked| x.get(i).unwrap_or_default().to_string();
            CleanRow {
                order_id: g(&o),
                user_id: g(&u),
                category: g(&c),
                amount: a.get(i).expect("clean rows have an amount"),
                payment: g(&p),
                status: g(&st),
                timestamp: g(&t),
            }
        })
        .collect()
}

/// Unique topic, HDFS directory and table of one test.
pub struct Run {
    pub topic: String,
    pub table: String,
    /// HDFS directory of this run (absolute path).
    pub base: String,
    /// `hdfs://host:port`.
    pub hdfs: String,
    pub tmp: tempfile::TempDir,
}

impl Run {
    pub fn new(prefix: &str) -> Run {
        let id = format!("{prefix}{}", unique_suffix());
        Run {
            topic: format!("it-{id}"),
            table: format!("it_{id}"),
            base: format!("/ecom-itests/{id}"),
            hdfs: service_env("HDFS_URL").trim_end_matches('/').to_string(),
            tmp: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn raw_url(&self) -> String {
        format!("{}{}/raw", self.hdfs, self.base)
    }

    pub fn clean_url(&self) -> String {
        format!("{}{}/clean", self.hdfs, self.base)
    }

    pub fn produce_args(&self, input: &str) -> Vec<&str> {
        let input: &'static str = Box::leak(input.to_string().into_boxed_str());
        vec!["produce", "--input", input, "--topic", self.topic.as_str()]
    }

    pub fn sink_args(&self, roll_rows: usize) -> Vec<&str> {
        let raw: &'static str = Box::leak(self.raw_url().into_boxed_str());
        let rows: &'static str = Box::leak(roll_rows.to_string().into_boxed_str());
        vec![
            "sink",
            "--topic",
            self.topic.as_str(),
            "--output",
            raw,
            "--until-caught-up",
            "--roll-rows",
            rows,
        ]
    }

    pub fn clean_args(&self) -> Vec<&str> {
        let raw: &'static str = Box::leak(self.raw_url().into_boxed_str());
        let clean: &'static str = Box::leak(self.clean_url().into_boxed_str());
        vec!["clean", "--input", raw, "--output", clean]
    }

    pub fn load_args(&self) -> Vec<&str> {
        let clean: &'static str = Box::leak(self.clean_url().into_boxed_str());
        vec!["load", "--input", clean, "--table", self.table.as_str()]
    }

    /// `ecom generate` with `args` (e.g. `--rows`, `--seed`) into this run's temporary
    /// directory: the input file's path and its ground truth.
    pub fn generate(&self, args: &[&str]) -> (String, GroundTruth) {
        let path = |name: &str| {
            let p = self.tmp.path().join(name);
            p.to_str().expect("utf8 path").to_string()
        };
        let (input, truth) = (path("in.tsv"), path("truth.json"));
        let out = ["--out", input.as_str(), "--truth", truth.as_str()];
        ecom_ok(&[&["generate"][..], args, &out[..]].concat());
        let truth: GroundTruth =
            serde_json::from_slice(&std::fs::read(&truth).expect("truth")).expect("truth json");
        (input, truth)
    }

    /// `ecom produce --generate-rows rows` (and `args`) into this run's topic; asserts that
    /// every record was delivered and returns the summary.
    pub fn produce_generated(&self, rows: u64, args: &[&str]) -> serde_json::Value {
        let n = rows.to_string();
        let head = ["produce", "--generate-rows", &n, "--topic", &self.topic];
        let v = ecom_json(&[&head[..], args].concat());
        assert_eq!(v["delivered"], rows, "{v}");
        v
    }

    /// The HDFS cluster root as a file store.
    pub fn hdfs_store(&self) -> HdfsFiles {
        HdfsFiles::open(&self.hdfs, Duration::from_secs(60)).expect("connect to HDFS")
    }

    pub fn hbase(&self) -> HbaseTables {
        HbaseTables::new(HbaseConfig::new(service_env("HBASE_THRIFT")))
    }

    /// Files of the directory `dir` of this run (name, content), in name order.
    pub fn files(&self, dir: &str) -> Vec<(String, Vec<u8>)> {
        let store = self.hdfs_store();
        store
            .list(&format!("{}/{dir}", self.base))
            .unwrap_or_else(|e| panic!("list {dir}: {e}"))
            .into_iter()
            .map(|e| {
                let name = e.path.rsplit('/').next().unwrap_or_default().to_string();
                (name, store.read(&e.path).expect("read"))
            })
            .collect()
    }

    /// Raw files of this run (name, content), in name order.
    pub fn raw_files(&self) -> Vec<(String, Vec<u8>)> {
        self.files("raw")
    }

    /// Rows in this run's fact table.
    pub fn fact_row_count(&self) -> u64 {
        let fact = self.hbase().table(&self.table).expect("fact table");
        fact.scan(b"", b"", usize::MAX).expect("scan fact").len() as u64
    }

    /// The aggregates the loader stored for each clean file, merged.
    pub fn stored_aggregates(&self) -> Aggregates {
        let agg_table = self
            .hbase()
            .table(&format!("{}_agg", self.table))
            .expect("agg");
        let mut stored = Aggregates::default();
        for r in scan_prefix(&*agg_table, AGG_PREFIX.as_bytes(), 10_000).expect("scan agg") {
            let a: Aggregates =
                serde_json::from_slice(&r.cells[&format!("{AGG_FAMILY}:json")]).expect("agg json");
            stored.merge(&a).expect("stored aggregates add up");
        }
        stored
    }

    /// Every row of the committed clean Parquet files.
    pub fn clean_rows(&self) -> Vec<CleanRow> {
        let store = self.hdfs_store();
        let mut out = Vec::new();
        let runs = committed_runs(&store, &format!("{}/clean", self.base)).expect("manifests");
        for path in runs.iter().flat_map(|r| &r.parquet_files) {
            let bytes = store.read(path).expect("read parquet");
            out.extend(parquet_rows(bytes));
        }
        out
    }

    /// `ecom stream` on this run's topic, directories and table: 500 ms micro-batches.
    pub fn stream_args(&self) -> Vec<String> {
        [
            "stream",
            "--topic",
            &self.topic,
            "--raw",
            &self.raw_url(),
            "--clean",
            &self.clean_url(),
            "--table",
            &self.table,
            "--batch-interval",
            "500ms",
        ]
        .map(String::from)
        .to_vec()
    }

    /// The (only) streaming shard's mark, once it has one.
    pub fn stream_mark(&self) -> Option<ecom_jobs::stream::StreamMark> {
        let cfg = ecom_jobs::load::LoadConfig {
            table: self.table.clone(),
            ..Default::default()
        };
        ecom_jobs::stream::StreamMark::read(&self.hbase(), &cfg, Default::default())
            .ok()
            .flatten()
    }

    /// Removes the HDFS directory and the tables (the topic stays).
    pub fn cleanup(&self) {
        let store = self.hdfs_store();
        let _ = store.remove_all(&self.base);
        let tables = self.hbase();
        let _ = tables.drop_table(&self.table);
        let _ = tables.drop_table(&format!("{}_agg", self.table));
    }
}
