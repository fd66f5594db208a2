//! The pipeline stages as Kubernetes-Job-friendly subcommands: `produce`,
//! `sink`, `clean` on HDFS URLs and `load`.
//!
//! Every stage takes its service addresses from flags or the environment
//! (`KAFKA_BOOTSTRAP`, `HDFS_URL`, `HBASE_THRIFT`), logs through `tracing`,
//! retries transient failures with exponential backoff (stages are idempotent:
//! the sink resumes from its committed files, clean from its manifest, load
//! rewrites the same cells), fails with a clear message once `--deadline` has
//! passed, fails at once on a permanent error (see [`crate::retry`]: a path that
//! is not a directory, a corrupt file, a malformed flag), and prints a JSON
//! summary as the last line of standard output,
//! also written to `--summary-file` (the pod's termination message).

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ecom_jobs::generate::{GenerateConfig, Generator};
use ecom_jobs::incremental::{clean_next_run, committed_runs, IncrementalSummary, Shard};
use ecom_jobs::load::{load_files, put_report, LoadConfig, LoadInput};
use ecom_jobs::produce::{produce_paced, Pacing};
use ecom_jobs::sink::{run_sink, SinkConfig, SinkMode};
use ecom_jobs::store::hbase::{HbaseConfig, HbaseTables};
use ecom_jobs::store::hdfs::HdfsFiles;
use ecom_jobs::store::kafka::{kafka_properties, KafkaConfig, KafkaLog};
use ecom_jobs::store::{FileStore, LocalFiles, MessageLog};
use serde_json::{json, Value};

use crate::progress::{bytes_bar, rows_bar};
use crate::retry::{self, classify, ErrorClass, Permanent};
use crate::thrift_wire::ThriftWire;

/// Parses `90s`, `10m`, `1h`, `500ms` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a duration like 90s, 10m, 1h or 500ms"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m, h)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

/// Flags every stage shares.
#[derive(Debug, Clone, clap::Args)]
pub struct StageCommon {
    /// Also write the JSON summary to this file (a Kubernetes pod's termination
    /// message). Default: /dev/termination-log when it is writable, else none.
    #[arg(long, env = "ECOM_SUMMARY_FILE")]
    pub summary_file: Option<PathBuf>,
    /// Fail with a clear message if the stage has not finished after this long
    /// (retries included), e.g. 90s, 10m, 1h. A continuous `sink` (without
    /// --until-caught-up) has no end: there it bounds a streak of failures.
    #[arg(long, env = "ECOM_DEADLINE", default_value = "30m", value_parser = parse_duration)]
    pub deadline: Duration,
    /// Attempts of the whole stage on a transient failure (each resumes where
    /// the last stopped), with exponential backoff from 1 s to 30 s. A permanent
    /// error (a missing input, a path that is not a directory, a permission
    /// refused, a corrupt file, a malformed flag) fails the stage at once.
    #[arg(long, env = "ECOM_ATTEMPTS", default_value_t = 5)]
    pub attempts: u32,
    /// Timeout of one call to a service (Kafka metadata/delivery, HDFS RPC,
    /// HBase I/O); a call is retried within the deadline.
    #[arg(long, env = "ECOM_CALL_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub call_timeout: Duration,
}

/// Where a stage stands against its deadline.
struct Clock {
    start: Instant,
    deadline: Duration,
}

impl Clock {
    fn remaining(&self) -> Duration {
        self.deadline.saturating_sub(self.start.elapsed())
    }
    /// The call timeout, never beyond the deadline (at least 1 s).
    fn call(&self, timeout: Duration) -> Duration {
        timeout.min(self.remaining()).max(Duration::from_secs(1))
    }
}

fn summary_path(common: &StageCommon) -> Option<PathBuf> {
    if let Some(p) = &common.summary_file {
        return (!p.as_os_str().is_empty()).then(|| p.clone());
    }
    let default = Path::new("/dev/termination-log");
    std::fs::OpenOptions::new()
        .append(true)
        .open(default)
        .ok()
        .map(|_| default.to_path_buf())
}

/// Prints the summary as the last stdout line and writes the summary file (shortened to what
/// the kubelet keeps of a termination message, see [`crate::termination`]).
fn emit(common: &StageCommon, summary: &Value) {
    let line = summary.to_string();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
    if let Some(path) = summary_path(common) {
        if let Err(e) = std::fs::write(&path, crate::termination::message(summary)) {
            tracing::warn!(file = %path.display(), error = %e, "cannot write the summary file");
        }
    }
}

/// What `--deadline` bounds for a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Budget {
    /// The whole stage, retries included; a watchdog ends a call stuck past it.
    WholeRun,
    /// Only a streak of failures (a continuous stage has no natural end): an
    /// attempt that ran longer than the deadline before it failed starts a
    /// fresh budget of time and attempts.
    FailureStreak,
}

/// Runs a stage body with retries of transient failures, a deadline watchdog
/// and the JSON summary.
fn run_stage(
    stage: &'static str,
    common: &StageCommon,
    retry: bool,
    body: impl FnMut(&Clock, u32) -> Result<Value>,
) -> Result<()> {
    run_stage_with(stage, common, retry, Budget::WholeRun, body)
}

/// [`run_stage`] with an explicit [`Budget`] for `--deadline`.
fn run_stage_with(
    stage: &'static str,
    common: &StageCommon,
    retry: bool,
    budget: Budget,
    mut body: impl FnMut(&Clock, u32) -> Result<Value>,
) -> Result<()> {
    let mut clock = Clock {
        start: Instant::now(),
        deadline: common.deadline,
    };
    let finished = Arc::new(AtomicBool::new(false));
    if budget == Budget::WholeRun {
        // The watchdog: a call stuck past the deadline still ends the stage.
        let finished = finished.clone();
        let common = common.clone();
        let grace = Duration::from_secs(5);
        std::thread::spawn(move || {
            std::thread::sleep(common.deadline + grace);
            if !finished.load(Ordering::SeqCst) {
                let error = format!(
                    "{stage}: deadline of {:?} exceeded (the last attempt was still waiting on a service)",
                    common.deadline
                );
                tracing::error!(stage, "{error}");
                emit(
                    &common,
                    &json!({"stage": stage, "ok": false, "error": error}),
                );
                eprintln!("error: {error}");
                std::process::exit(2);
            }
        });
    }
    let mut backoff = Duration::from_secs(1);
    let mut attempt = 1;
    let mut attempts_total = 0;
    loop {
        let attempt_start = Instant::now();
        attempts_total += 1;
        let result = body(&clock, attempt);
        if result.is_err()
            && budget == Budget::FailureStreak
            && attempt_start.elapsed() > common.deadline
        {
            // It ran well for a long time before failing: a new streak begins.
            clock.start = attempt_start;
            attempt = 1;
            backoff = Duration::from_secs(1);
        }
        match result {
            Ok(mut summary) => {
                finished.store(true, Ordering::SeqCst);
                if let Value::Object(m) = &mut summary {
                    m.insert("stage".into(), json!(stage));
                    m.insert("ok".into(), json!(true));
                    m.insert("attempts".into(), json!(attempts_total));
                    m.insert(
                        "elapsed_ms".into(),
                        json!(clock.start.elapsed().as_millis() as u64),
                    );
                }
                emit(common, &summary);
                return Ok(());
            }
            Err(e) => {
                let permanent = retry && classify(&e) == ErrorClass::Permanent;
                let out_of_time = clock.remaining() <= backoff;
                if permanent || !retry || attempt >= common.attempts.max(1) || out_of_time {
                    finished.store(true, Ordering::SeqCst);
                    let why = if permanent && attempt == 1 {
                        " (permanent error, not retried)".to_string()
                    } else if permanent {
                        format!(" (permanent error on attempt {attempt}, not retried)")
                    } else if out_of_time && retry {
                        format!(" (deadline of {:?} reached)", common.deadline)
                    } else if retry {
                        format!(" (after {attempt} attempts)")
                    } else {
                        String::new()
                    };
                    let error = format!("{}{why}", retry::message(&e));
                    emit(
                        common,
                        &json!({"stage": stage, "ok": false, "attempts": attempts_total, "error": error}),
                    );
                    bail!("{stage} failed: {error}");
                }
                tracing::warn!(stage, attempt, error = %retry::message(&e), retry_in = ?backoff, "stage failed, retrying");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(30));
                attempt += 1;
            }
        }
    }
}

/// Logs progress every 10 s (for pods without a terminal).
struct Ticker {
    stage: &'static str,
    start: Instant,
    last: Instant,
    done: u64,
}

impl Ticker {
    fn new(stage: &'static str) -> Self {
        let now = Instant::now();
        Ticker {
            stage,
            start: now,
            last: now,
            done: 0,
        }
    }
    fn add(&mut self, n: u64, unit: &str) {
        self.done += n;
        if self.last.elapsed() >= Duration::from_secs(10) {
            self.last = Instant::now();
            let rate = self.done as f64 / self.start.elapsed().as_secs_f64().max(1e-9);
            tracing::info!(
                stage = self.stage,
                done = self.done,
                unit,
                per_second = rate as u64,
                "progress"
            );
        }
    }
}

/// A file store and the directory inside it for `url`: `hdfs://host:port/dir`
/// on HDFS (store at the cluster root), anything else a local directory.
pub fn open_store(url: &str, timeout: Duration) -> Result<(Box<dyn FileStore>, String)> {
    if url.starts_with("hdfs://") {
        let (authority, path) = ecom_jobs::store::hdfs::split_url(url)
            .ok_or_else(|| Permanent(format!("{url}: expected hdfs://host:port/path")))?;
        let store = HdfsFiles::open(&authority, timeout)
            .with_context(|| format!("connecting to HDFS at {authority}"))?;
        Ok((Box::new(store), path))
    } else {
        let abs = std::path::absolute(url).with_context(|| format!("resolving path {url}"))?;
        Ok((
            Box::new(LocalFiles::new("/")),
            abs.to_string_lossy().into_owned(),
        ))
    }
}

/// Whether `url` names HDFS.
fn is_remote(url: &str) -> bool {
    url.starts_with("hdfs://")
}

// ------------------------------------------------------------------------------------------
// produce

/// Flags of `ecom produce`.
#[derive(Debug, clap::Args)]
pub struct ProduceArgs {
    /// TSV file to send (the Kaggle file or `ecom generate` output; `-` for
    /// standard input). Header and blank lines are skipped.
    #[arg(
        long,
        conflicts_with = "generate_rows",
        required_unless_present = "generate_rows"
    )]
    input: Option<String>,
    /// Generate this many rows on the fly instead of reading a file.
    #[arg(long)]
    generate_rows: Option<u64>,
    /// Seed of generated rows.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Dirty fraction of generated rows.
    #[arg(long, default_value_t = 0.05)]
    dirty_rate: f64,
    /// Write the generator's ground truth (JSON) here.
    #[arg(long)]
    truth: Option<PathBuf>,
    /// Kafka topic (created if missing).
    #[arg(long, env = "ECOM_TOPIC")]
    topic: String,
    /// Kafka bootstrap servers.
    #[arg(long, env = "KAFKA_BOOTSTRAP")]
    kafka_bootstrap: String,
    /// Partitions of the topic when it is created.
    #[arg(long, default_value_t = 3)]
    partitions: u32,
    /// Replication factor of the topic when it is created.
    #[arg(long, default_value_t = 1)]
    replication: u32,
    /// Producer `linger.ms`: how long librdkafka waits to fill a batch.
    #[arg(long, default_value_t = 20)]
    linger_ms: u32,
    /// Producer `batch.size` in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    batch_bytes: u32,
    /// Producer compression: none, gzip, snappy, lz4, zstd.
    #[arg(long, default_value = "lz4")]
    compression: String,
    /// Send at most this many records per second.
    #[arg(long, conflicts_with = "replay")]
    rate: Option<f64>,
    /// Replay the records' timestamps, SPEED times faster than real time.
    #[arg(long, value_name = "SPEED")]
    replay: Option<f64>,
    /// Extra librdkafka property KEY=VALUE (repeatable), e.g. security.protocol=SASL_PLAINTEXT.
    ///
    /// Secrets are refused here (the command line is visible in the process list) and read
    /// from the environment instead: KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD set
    /// sasl.username and sasl.password; ECOM_KAFKA_PROPERTY_<NAME> sets any property <name>
    /// (upper case, `_` for `.`; e.g. ECOM_KAFKA_PROPERTY_SSL_KEY_PASSWORD). The environment
    /// wins over this flag. The operator passes Secrets this way (secretKeyRef).
    #[arg(long = "kafka-property", value_name = "KEY=VALUE")]
    kafka_properties: Vec<String>,
    #[command(flatten)]
    common: StageCommon,
}

fn kafka_config(
    bootstrap: &str,
    topic: &str,
    properties: &[String],
    timeout: Duration,
) -> Result<KafkaConfig> {
    let mut cfg = KafkaConfig::new(bootstrap, topic);
    cfg.timeout = timeout;
    // Secrets (KAFKA_SASL_PASSWORD, ECOM_KAFKA_PROPERTY_*) come from the environment.
    let env = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
    cfg.extra = kafka_properties(properties, env)?;
    Ok(cfg)
}

/// Generated rows as a byte stream.
struct GenReader {
    generator: Generator,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for GenReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.buf.len() {
            self.buf.clear();
            self.pos = 0;
            while self.buf.len() < 1 << 16 && self.generator.next_line(&mut self.buf) {}
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Progress of `ecom produce`, passed on every [`Pending::EVERY`] lines: reading the
/// clock for the bar and the ticker on every line cost more than parsing it.
#[derive(Default)]
struct Pending {
    lines: u64,
    bytes: u64,
}

impl Pending {
    const EVERY: u64 = 4096;

    /// Counts a line of `n` bytes; every [`Self::EVERY`] lines, returns and resets the count.
    fn add(&mut self, n: u64) -> Option<(u64, u64)> {
        self.lines += 1;
        self.bytes += n;
        (self.lines >= Self::EVERY).then(|| {
            let done = std::mem::take(self);
            (done.lines, done.bytes)
        })
    }
}

/// `ecom produce`.
pub fn produce(args: ProduceArgs) -> Result<()> {
    // Not retried as a whole: a second attempt would send records twice. The
    // idempotent producer retries inside librdkafka until the call timeout.
    run_stage("produce", &args.common, false, |clock, _| {
        let mut cfg = kafka_config(
            &args.kafka_bootstrap,
            &args.topic,
            &args.kafka_properties,
            clock.call(args.common.call_timeout),
        )?;
        cfg.partitions = args.partitions;
        cfg.replication = args.replication;
        cfg.linger_ms = args.linger_ms;
        cfg.batch_bytes = args.batch_bytes;
        cfg.compression = args.compression.clone();
        let mut log = KafkaLog::open_or_create(cfg)?;
        let pacing = Pacing {
            rate: args.rate,
            replay: args.replay,
        };
        let mut ticker = Ticker::new("produce");
        let started = Instant::now();
        let (summary, name) = if let Some(rows) = args.generate_rows {
            let generator = Generator::new(GenerateConfig {
                rows,
                seed: args.seed,
                dirty_rate: args.dirty_rate,
                ..Default::default()
            })?;
            let mut reader = BufReader::with_capacity(
                1 << 20,
                GenReader {
                    generator,
                    buf: Vec::new(),
                    pos: 0,
                },
            );
            let bar = rows_bar("produce", rows);
            let name = format!("generated({rows} rows, seed {})", args.seed);
            let mut pending = Pending::default();
            let s = produce_paced(&mut reader, &name, &mut log, pacing, |n| {
                if let Some((lines, bytes)) = pending.add(n) {
                    bar.inc(lines);
                    ticker.add(bytes, "bytes");
                }
            })?;
            bar.finish_and_clear();
            if let Some(path) = &args.truth {
                let truth = serde_json::to_vec_pretty(reader.get_ref().generator.truth())?;
                std::fs::write(path, truth)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            (s, name)
        } else {
            let input = args.input.clone().unwrap_or_default();
            let (reader, size): (Box<dyn Read>, u64) = if input == "-" {
                (Box::new(std::io::stdin()), 0)
            } else {
                let f = File::open(&input).with_context(|| format!("opening {input}"))?;
                let size = f.metadata().map(|m| m.len()).unwrap_or(0);
                (Box::new(f), size)
            };
            let bar = bytes_bar("produce", size);
            let mut pending = Pending::default();
            let s = produce_paced(
                BufReader::with_capacity(1 << 20, reader),
                &input,
                &mut log,
                pacing,
                |n| {
                    if let Some((_, bytes)) = pending.add(n) {
                        bar.inc(bytes);
                        ticker.add(bytes, "bytes");
                    }
                },
            )?;
            bar.finish_and_clear();
            (s, input)
        };
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        let (delivered, failed) = log.delivered();
        tracing::info!(records = summary.records, delivered, failed, "produce done");
        Ok(json!({
            "input": name,
            "topic": args.topic,
            "bootstrap": args.kafka_bootstrap,
            "partitions": log.partitions(),
            "records": summary.records,
            "delivered": delivered,
            "failed": failed,
            "bytes": summary.bytes,
            "header_lines": summary.header_lines,
            "blank_lines": summary.blank_lines,
            "records_per_second": (summary.records as f64 / secs).round(),
        }))
    })
}

// ------------------------------------------------------------------------------------------
// sink

/// Flags of `ecom sink`.
#[derive(Debug, clap::Args)]
pub struct SinkArgs {
    /// Kafka topic to consume.
    #[arg(long, env = "ECOM_TOPIC")]
    topic: String,
    /// Directory of the raw files: `hdfs://host:port/path` or a local directory.
    #[arg(long)]
    output: String,
    /// Kafka bootstrap servers.
    #[arg(long, env = "KAFKA_BOOTSTRAP")]
    kafka_bootstrap: String,
    /// Stop once the end offsets seen at start are written (batch Jobs); then
    /// --deadline bounds the whole run, retries included. Without it the sink
    /// is continuous: it runs until SIGTERM/Ctrl-C (or --run-for), then commits
    /// what it holds and exits 0; --deadline and --attempts then bound only a
    /// streak of failures (reaching Kafka/HDFS again after an error), and an
    /// attempt that ran longer than --deadline before failing starts afresh.
    #[arg(long)]
    until_caught_up: bool,
    /// Continuous mode only: stop after this long (e.g. 90s, 10m), commit what
    /// is held and exit 0, as on SIGTERM.
    #[arg(long, conflicts_with = "until_caught_up", value_parser = parse_duration)]
    run_for: Option<Duration>,
    /// Records per raw file at most.
    #[arg(long, default_value_t = 100_000)]
    roll_rows: usize,
    /// Bytes per raw file at most.
    #[arg(long, default_value_t = 128 << 20)]
    roll_bytes: usize,
    /// Commit a file this long after its first record even if not full
    /// (0: off, which keeps file boundaries deterministic across restarts).
    #[arg(long, default_value = "0", value_parser = parse_duration)]
    roll_interval: Duration,
    /// Extra librdkafka property KEY=VALUE (repeatable), e.g. security.protocol=SASL_PLAINTEXT.
    ///
    /// Secrets are refused here (the command line is visible in the process list) and read
    /// from the environment instead: KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD set
    /// sasl.username and sasl.password; ECOM_KAFKA_PROPERTY_<NAME> sets any property <name>
    /// (upper case, `_` for `.`; e.g. ECOM_KAFKA_PROPERTY_SSL_KEY_PASSWORD). The environment
    /// wins over this flag. The operator passes Secrets this way (secretKeyRef).
    #[arg(long = "kafka-property", value_name = "KEY=VALUE")]
    kafka_properties: Vec<String>,
    #[command(flatten)]
    common: StageCommon,
}

/// `ecom sink`.
pub fn sink(args: SinkArgs) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    if !args.until_caught_up {
        let stop = stop.clone();
        std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(crate::demo::shutdown_signal());
                tracing::info!("stop requested, committing and exiting");
                stop.store(true, Ordering::SeqCst);
            }
        });
    }
    if let Some(run_for) = args.run_for {
        let stop = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(run_for);
            tracing::info!(?run_for, "--run-for elapsed, committing and exiting");
            stop.store(true, Ordering::SeqCst);
        });
    }
    let budget = if args.until_caught_up {
        Budget::WholeRun
    } else {
        Budget::FailureStreak
    };
    run_stage_with("sink", &args.common, true, budget, |clock, _| {
        let timeout = clock.call(args.common.call_timeout);
        let (files, dir) = open_store(&args.output, timeout)?;
        let cfg = kafka_config(
            &args.kafka_bootstrap,
            &args.topic,
            &args.kafka_properties,
            timeout,
        )?;
        let mut log = KafkaLog::open(cfg)?;
        let sink_cfg = SinkConfig {
            topic: args.topic.clone(),
            dir: dir.clone(),
            roll_rows: args.roll_rows,
            roll_bytes: args.roll_bytes,
            roll_interval_ms: args.roll_interval.as_millis() as u64,
        };
        let mode = if args.until_caught_up {
            SinkMode::UntilCaughtUp
        } else {
            SinkMode::Continuous
        };
        let mut ticker = Ticker::new("sink");
        let started = Instant::now();
        let summary = run_sink(&mut log, files.as_ref(), &sink_cfg, mode, &stop, |n| {
            ticker.add(n, "records")
        })?;
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        tracing::info!(
            records = summary.records,
            files = summary.files,
            "sink done"
        );
        Ok(json!({
            "topic": args.topic,
            "output": files.describe(&dir),
            "records": summary.records,
            "files": summary.files,
            "resumed_from": summary.resumed_from,
            "records_per_second": (summary.records as f64 / secs).round(),
        }))
    })
}

// ------------------------------------------------------------------------------------------
// clean (HDFS)

/// Stage flags of `ecom clean` used when its input or output is an HDFS URL.
#[derive(Debug, clap::Args)]
pub struct CleanStageArgs {
    /// Process only this share of the raw files: INDEX/COUNT (INDEX defaults
    /// to $JOB_COMPLETION_INDEX, set by Kubernetes Indexed Jobs). Files of one
    /// Kafka partition always go to the same shard.
    #[arg(long, value_name = "INDEX/COUNT")]
    pub shard: Option<String>,
    /// Raw input bytes one run takes at most (at least one file). A run holds
    /// its clean rows in memory, about 4 bytes for each raw byte, so this
    /// bounds the memory; with more pending, runs are committed one after
    /// another until none is left. Default: no limit (one run).
    #[arg(long, env = "ECOM_CLEAN_MAX_RUN_BYTES", value_name = "BYTES")]
    pub max_run_bytes: Option<u64>,
    #[command(flatten)]
    pub common: StageCommon,
}

/// Resolves `--shard` (`INDEX/COUNT` or `COUNT` alone, with INDEX from `JOB_COMPLETION_INDEX`).
pub fn resolve_shard(flag: Option<&str>) -> Result<Shard> {
    let index = std::env::var("JOB_COMPLETION_INDEX").ok();
    match (flag, index) {
        (None, _) => Ok(Shard::default()),
        (Some(s), _) if s.contains('/') && !s.starts_with('/') => Ok(s.parse()?),
        (Some(s), Some(i)) => Ok(format!("{i}/{}", s.trim_start_matches('/')).parse()?),
        (Some(s), None) => {
            bail!("--shard {s}: give INDEX/COUNT, or COUNT with JOB_COMPLETION_INDEX set")
        }
    }
}

/// `ecom clean` on HDFS URLs (or any store URL): incremental, manifest-tracked.
pub fn clean_remote(
    input: &str,
    output: &str,
    cfg: ecom_jobs::clean::CleanConfig,
    stage: &CleanStageArgs,
) -> Result<()> {
    let shard = resolve_shard(stage.shard.as_deref())?;
    let mut totals = CleanTotals::default();
    run_stage("clean", &stage.common, true, |clock, _| {
        let timeout = clock.call(stage.common.call_timeout);
        let (raw, raw_dir) = open_store(input, timeout)?;
        let (out, clean_dir) = open_store(output, timeout)?;
        let mut ticker = Ticker::new("clean");
        let limit = stage.max_run_bytes.unwrap_or(u64::MAX);
        // Runs until none is pending; runs committed by an earlier attempt stay
        // counted, and an attempt resumes after them.
        loop {
            let s = clean_next_run(
                raw.as_ref(),
                &raw_dir,
                out.as_ref(),
                &clean_dir,
                cfg.clone(),
                shard,
                limit,
                |n| ticker.add(n, "bytes"),
            )?;
            let more = s.run.is_some() && s.pending_after > 0;
            tracing::info!(run = ?s.run, rows_in = s.report.rows_in, rows_out = s.report.rows_out, pending_after = s.pending_after, "clean run done");
            totals.add(s);
            if !more {
                break;
            }
        }
        let mut v = totals.to_json()?;
        if let Value::Object(m) = &mut v {
            m.insert("input".into(), json!(raw.describe(&raw_dir)));
            m.insert("output".into(), json!(out.describe(&clean_dir)));
        }
        Ok(v)
    })
}

/// The summary of one `ecom clean` on a store: its runs merged into one
/// summary (`run` the last), and their ids in order.
#[derive(Default)]
struct CleanTotals {
    summary: Option<IncrementalSummary>,
    runs: Vec<String>,
}

impl CleanTotals {
    fn add(&mut self, s: IncrementalSummary) {
        self.runs.extend(s.run.clone());
        match &mut self.summary {
            Some(total) => total.merge(s),
            None => self.summary = Some(s),
        }
    }

    /// The merged summary's fields plus `runs`.
    fn to_json(&self) -> Result<Value> {
        let mut v = serde_json::to_value(self.summary.clone().unwrap_or_default())?;
        if let Value::Object(m) = &mut v {
            m.insert("runs".into(), json!(self.runs));
        }
        Ok(v)
    }
}

/// Whether `ecom clean` should run as the incremental store stage.
pub fn clean_is_remote(input: &Path, output: &Path) -> bool {
    is_remote(&input.to_string_lossy()) || is_remote(&output.to_string_lossy())
}

// ------------------------------------------------------------------------------------------
// load

/// Flags of `ecom load`.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// Clean directory written by `ecom clean` (`hdfs://host:port/path` or local):
    /// the `date=YYYY-MM-DD/part-RUN.parquet` files of the runs committed in its
    /// manifest (`_manifest/`) are loaded, nothing else.
    #[arg(long)]
    input: String,
    /// Fact table (created with its four column families if missing); the
    /// aggregates go to TABLE_agg.
    #[arg(long, env = "ECOM_TABLE", default_value = "ecommerce")]
    table: String,
    /// HBase Thrift 1 server, host:port.
    #[arg(long, env = "HBASE_THRIFT")]
    hbase_thrift: String,
    #[command(flatten)]
    thrift_wire: ThriftWire,
    /// Salt buckets of row keys (`SS-ORDERID`); 0 for plain order ids.
    #[arg(long, default_value_t = 16)]
    salt_buckets: u32,
    /// Rows per mutateRows call.
    #[arg(long, default_value_t = 2000)]
    batch_rows: usize,
    /// mutateRows calls in flight at once (one Thrift connection each); the
    /// Parquet is read and cut into batches on another thread meanwhile, with
    /// at most about twice this many batches in memory.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Process only this share of the clean files: INDEX/COUNT (INDEX defaults
    /// to $JOB_COMPLETION_INDEX).
    #[arg(long, value_name = "INDEX/COUNT")]
    shard: Option<String>,
    #[command(flatten)]
    common: StageCommon,
}

/// `ecom load`.
pub fn load(args: LoadArgs) -> Result<()> {
    let shard = resolve_shard(args.shard.as_deref())?;
    run_stage("load", &args.common, true, |clock, _| {
        let timeout = clock.call(args.common.call_timeout);
        let (files, dir) = open_store(&args.input, timeout)?;
        let mut hcfg = args.thrift_wire.apply(HbaseConfig::new(&args.hbase_thrift));
        hcfg.io_timeout = timeout.min(Duration::from_secs(30));
        hcfg.deadline = clock.remaining();
        hcfg.connections = args.concurrency.max(1);
        let tables = HbaseTables::new(hcfg);
        let cfg = LoadConfig {
            table: args.table.clone(),
            salt_buckets: args.salt_buckets,
            batch_rows: args.batch_rows,
        };
        // Every date-partition file of every committed run; a shard owns a file
        // by its path, so shards split even a single run's partitions.
        let runs = committed_runs(files.as_ref(), &dir)?;
        let mut inputs: Vec<LoadInput> = Vec::new();
        let mut total = 0;
        for run in &runs {
            // Both in date order: file i holds partition i's rows.
            for (path, rows) in run.parquet_files.iter().zip(run.partitions.values()) {
                if shard.owns(path) {
                    total += rows;
                    inputs.push(LoadInput {
                        agg_key: files.describe(path),
                        path: path.clone(),
                    });
                }
            }
        }
        let bar = rows_bar("load", total);
        let mut ticker = Ticker::new("load");
        let started = Instant::now();
        let summary = load_files(
            files.as_ref(),
            &inputs,
            &tables,
            &cfg,
            args.concurrency,
            |n| {
                bar.inc(n);
                ticker.add(n, "rows");
            },
        )?;
        bar.finish_and_clear();
        // Quality reports are small: every shard records all of them.
        for r in &runs {
            let report: ecom_jobs::clean::QualityReport =
                serde_json::from_slice(&files.read(&r.report)?)
                    .with_context(|| format!("decoding {}", files.describe(&r.report)))?;
            put_report(&tables, &cfg, &files.describe(&r.report), &report)?;
        }
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        tracing::info!(rows = summary.rows, files = summary.files, "load done");
        Ok(json!({
            "input": files.describe(&dir),
            "table": args.table,
            "agg_table": cfg.agg_table(),
            "thrift": args.hbase_thrift,
            "shard": shard.to_string(),
            "runs": runs.len(),
            "partitions": inputs.len(),
            "files": summary.files,
            "rows": summary.rows,
            "rows_per_second": (summary.rows as f64 / secs).round(),
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("3 weeks").is_err());
    }

    #[test]
    fn shards_resolve() {
        assert_eq!(resolve_shard(None).ok(), Some(Shard::default()));
        assert_eq!(
            resolve_shard(Some("2/4")).ok(),
            Some(Shard { index: 2, count: 4 })
        );
        assert!(resolve_shard(Some("4/4")).is_err());
    }
}
