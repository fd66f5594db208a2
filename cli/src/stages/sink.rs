//! `ecom sink`: a Kafka topic into raw files, exactly once.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use ecom_contract::command::flag;
use ecom_contract::env;
use ecom_contract::summary::{SinkDetail, StageName};
use ecom_jobs::runtime::{parse_duration, signal, Budget, StageOptions, Ticker};
use ecom_jobs::sink::{run_sink, SinkConfig, SinkMode};
use ecom_jobs::store::kafka::KafkaLog;

use super::{claim_dir, kafka_config, open_store, per_second, run_stage, StageCommon};

/// Flags of `ecom sink`.
#[derive(Debug, clap::Args)]
pub struct SinkArgs {
    /// Kafka topic to consume.
    #[arg(long = flag::TOPIC, env = env::TOPIC)]
    topic: String,
    /// Directory of the raw files: `hdfs://host:port/path` or a local directory.
    #[arg(long = flag::OUTPUT)]
    output: String,
    /// Kafka bootstrap servers.
    #[arg(long, env = env::KAFKA_BOOTSTRAP)]
    kafka_bootstrap: String,
    /// Stop once the end offsets seen at start are written (batch Jobs); then
    /// --deadline bounds the whole run, retries included. Without it the sink
    /// is continuous: it runs until SIGTERM/Ctrl-C (or --run-for), then commits
    /// what it holds and exits 0; --deadline and --attempts then bound only a
    /// streak of failures (reaching Kafka/HDFS again after an error), and an
    /// attempt that ran longer than --deadline before failing starts afresh.
    #[arg(long = flag::UNTIL_CAUGHT_UP)]
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
    #[arg(long = flag::ROLL_INTERVAL, default_value = "0", value_parser = parse_duration)]
    roll_interval: Duration,
    /// Skip records deleted (by retention) before the sink read them, logging and counting
    /// them (`offset_gaps`, `skipped_offsets`), instead of failing with the partition and
    /// the offsets expected and found.
    #[arg(long = flag::SKIP_OFFSET_GAPS)]
    skip_offset_gaps: bool,
    /// Extra librdkafka property KEY=VALUE (repeatable); secrets come from the environment
    /// (see `ecom produce --help`).
    #[arg(long = flag::KAFKA_PROPERTY, value_name = "KEY=VALUE")]
    kafka_properties: Vec<String>,
    #[command(flatten)]
    common: StageCommon,
}

/// `ecom sink`.
pub fn sink(args: SinkArgs) -> Result<()> {
    // A batch sink ends by itself (and a signal ends the process); a continuous one stops on
    // SIGTERM, Ctrl-C or --run-for, committing what it holds.
    let stop = if args.until_caught_up {
        Arc::new(AtomicBool::new(false))
    } else {
        signal::stop_flag(args.run_for)
    };
    let opts = StageOptions {
        budget: if args.until_caught_up {
            Budget::WholeRun
        } else {
            Budget::FailureStreak
        },
        ..args.common.options(StageName::Sink)
    };
    run_stage(&opts, |clock, _| {
        let timeout = clock.call(args.common.call_timeout);
        let (files, dir) = open_store(&args.output, timeout)?;
        claim_dir(
            args.common.identity.owner().as_ref(),
            files.as_ref(),
            &dir,
            &args.output,
        )?;
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
            skip_offset_gaps: args.skip_offset_gaps,
        };
        let mode = if args.until_caught_up {
            SinkMode::UntilCaughtUp
        } else {
            SinkMode::Continuous
        };
        let mut ticker = Ticker::new("sink");
        let started = Instant::now();
        let summary = run_sink(&mut log, files.as_ref(), &sink_cfg, mode, &stop, |n| {
            ticker.add(n, "records");
        })?;
        tracing::info!(
            records = summary.records,
            files = summary.files,
            skipped_offsets = summary.skipped_offsets,
            "sink done"
        );
        Ok(SinkDetail {
            topic: args.topic.clone(),
            output: files.describe(&dir),
            records: summary.records,
            files: summary.files,
            resumed_from: summary
                .resumed_from
                .iter()
                .map(|(partition, offset)| (partition.to_string(), *offset))
                .collect(),
            offset_gaps: summary.offset_gaps,
            skipped_offsets: summary.skipped_offsets,
            records_per_second: per_second(summary.records, started.elapsed().as_secs_f64()),
        })
    })?;
    Ok(())
}
