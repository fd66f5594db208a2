//! `ecom demo`: generate (or take the user's `--input` file) -> produce -> sink -> clean ->
//! load on the embedded stand-ins (local log, local files, embedded table store), then the
//! dashboard.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use ecom_dashboard::fact::FactTable;
use ecom_dashboard::AppState;
use ecom_jobs::generate::{GenerateConfig, Generator};
use ecom_jobs::incremental::{CleanRun, RawInput, Shard};
use ecom_jobs::load::{load_committed, LoadConfig};
use ecom_jobs::produce::produce;
use ecom_jobs::sink::{sink_until_caught_up, SinkConfig};
use ecom_jobs::store::{EmbeddedTables, LocalFiles, LocalLog, TableStore};

use crate::progress::{bytes_bar, rows_bar};

/// Flags of `ecom demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Run on this file instead of generated data: the transactions as tab-separated values
    /// with a header line (the Kaggle export DATASET.md describes, or `ecom generate` output).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["rows", "seed", "dirty_rate"])]
    input: Option<PathBuf>,
    /// Rows to generate.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Seed of the generated data.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Fraction of dirty rows in the generated data.
    #[arg(long, default_value_t = 0.05)]
    dirty_rate: f64,
    /// Partitions of the embedded message log.
    #[arg(long, default_value_t = 3)]
    partitions: u32,
    /// Where the demo keeps its data; re-running replaces the pipeline state
    /// in it (the generated input is reused when its parameters match).
    #[arg(long, default_value = "ecom-demo-data")]
    data_dir: PathBuf,
    /// Dashboard address.
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Dashboard port (0: any free port).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Run the pipeline, print the report and exit without serving.
    #[arg(long)]
    no_serve: bool,
    /// The cleaning rules (`--seed-compat`: the seed's Spark semantics only).
    #[command(flatten)]
    rules: crate::RuleArgs,
}

const TOPIC: &str = "transactions";
const RAW_DIR: &str = "raw/transactions";
const CLEAN_DIR: &str = "clean";

/// Generates the input unless an identical one is already there.
fn ensure_input(dir: &Path, cfg: &GenerateConfig) -> Result<PathBuf> {
    let input = dir.join("input");
    let data = input.join("transactions.tsv");
    let params = input.join("params.json");
    let wanted = serde_json::to_string(cfg)?;
    if data.exists() && fs::read_to_string(&params).ok().as_deref() == Some(wanted.as_str()) {
        tracing::info!(file = %data.display(), "reusing generated input");
        return Ok(data);
    }
    fs::create_dir_all(&input).with_context(|| format!("creating {}", input.display()))?;
    let bar = rows_bar("generate", cfg.rows);
    let tmp = input.join(".transactions.tsv.tmp");
    let mut w = BufWriter::with_capacity(
        1 << 20,
        File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
    );
    let mut generator = Generator::new(cfg.clone())?;
    let mut buf = Vec::with_capacity(1 << 20);
    buf.extend_from_slice(ecom_jobs::record::HEADER.as_bytes());
    buf.push(b'\n');
    let mut n = 0u64;
    while generator.next_line(&mut buf) {
        n += 1;
        if buf.len() >= 1 << 20 {
            w.write_all(&buf)?;
            buf.clear();
            bar.set_position(n);
        }
    }
    w.write_all(&buf)?;
    w.flush()?;
    bar.finish_and_clear();
    fs::rename(&tmp, &data).with_context(|| format!("renaming into {}", data.display()))?;
    fs::write(&params, wanted).with_context(|| format!("writing {}", params.display()))?;
    let truth = serde_json::to_string_pretty(generator.truth())?;
    fs::write(input.join("truth.json"), truth)?;
    Ok(data)
}

/// The user's `--input` file, refused with its cause unless it is a readable regular file.
fn user_input(file: &Path) -> Result<PathBuf> {
    let meta = fs::metadata(file).with_context(|| format!("--input {}", file.display()))?;
    if !meta.is_file() {
        anyhow::bail!("--input {}: not a regular file", file.display());
    }
    File::open(file).with_context(|| format!("--input {}: opening", file.display()))?;
    Ok(file.to_path_buf())
}

/// Runs the pipeline stages; returns the embedded table store.
pub fn run_pipeline(args: &DemoArgs) -> Result<(EmbeddedTables, ecom_jobs::clean::QualityReport)> {
    let dir = &args.data_dir;
    let gen_cfg = GenerateConfig {
        rows: args.rows,
        seed: args.seed,
        dirty_rate: args.dirty_rate,
        ..Default::default()
    };
    let input = match &args.input {
        Some(file) => user_input(file)?,
        None => ensure_input(dir, &gen_cfg)?,
    };

    // Replace the previous run's pipeline state so rows are never duplicated.
    for stale in ["log", "files", "store.redb"] {
        let p = dir.join(stale);
        let removed = if p.is_dir() {
            fs::remove_dir_all(&p)
        } else {
            fs::remove_file(&p)
        };
        if let Err(e) = removed {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(e).with_context(|| format!("removing {}", p.display()));
            }
        }
    }

    let size = fs::metadata(&input)?.len();
    let bar = bytes_bar("produce", size);
    let mut log = LocalLog::open(dir.join("log").join(TOPIC), args.partitions)?;
    let reader = BufReader::with_capacity(1 << 20, File::open(&input)?);
    let produced = produce(reader, &input.display().to_string(), &mut log, |n| {
        bar.inc(n)
    })?;
    bar.finish_and_clear();
    tracing::info!(records = produced.records, "produce done");

    let files = LocalFiles::new(dir.join("files"));
    let sink_cfg = SinkConfig {
        topic: TOPIC.into(),
        dir: RAW_DIR.into(),
        roll_rows: 100_000,
        roll_bytes: 64 << 20,
        roll_interval_ms: 0,
        skip_offset_gaps: false,
    };
    let bar = rows_bar("sink", produced.records);
    let sunk = sink_until_caught_up(&mut log, &files, &sink_cfg, |n| bar.inc(n))?;
    bar.finish_and_clear();
    tracing::info!(records = sunk.records, files = sunk.files, "sink done");

    // The same incremental, manifest-committed clean and load the cluster runs on HDFS.
    let bar = bytes_bar("clean", size);
    let run = CleanRun {
        raw: &files,
        input: RawInput::Dir(RAW_DIR.into()),
        out: &files,
        clean_dir: CLEAN_DIR.into(),
        cfg: args.rules.config()?,
        shard: Shard::default(),
        max_run_bytes: u64::MAX,
    };
    let (runs, cleaned) = run.clean_pending(|n| bar.inc(n), |_| {})?;
    bar.finish_and_clear();
    let report = cleaned.report;
    tracing::info!(runs = runs.len(), rows_out = report.rows_out, "clean done");

    let tables = EmbeddedTables::open(dir.join("store.redb"))?;
    let bar = rows_bar("load", report.rows_out);
    let loaded = load_committed(
        &files,
        CLEAN_DIR,
        &tables,
        &LoadConfig::default(),
        Shard::default(),
        1,
        |_| {},
        |n| bar.inc(n),
    )?;
    bar.finish_and_clear();
    tracing::info!(rows = loaded.summary.rows, runs = loaded.runs, "load done");
    Ok((tables, report))
}

/// `ecom demo`.
pub fn run(args: DemoArgs) -> Result<()> {
    let (tables, report) = run_pipeline(&args)?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    if args.no_serve {
        return Ok(());
    }
    let cfg = LoadConfig::default();
    let aggregates = tables.table(&cfg.agg_table())?;
    let fact = tables.table(&cfg.table)?;
    let state = AppState::load(Arc::clone(&aggregates), FactTable::ready(fact))
        .context("reading the aggregates")?;
    let addr = SocketAddr::new(args.host, args.port);
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(ecom_dashboard::serve(
        addr,
        state,
        |bound| {
            eprintln!(
                "dashboard: http://{bound}/  (API: http://{bound}/api/summary; Ctrl-C to stop)"
            )
        },
        ecom_jobs::runtime::signal::shutdown(),
    ))?;
    // Standard error may be gone by now (a closed pipe): never panic over a farewell.
    let _ = writeln!(std::io::stderr(), "dashboard stopped");
    Ok(())
}
