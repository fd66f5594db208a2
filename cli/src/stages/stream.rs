//! `ecom stream`: the continuous streaming stage, one process per shard.

use std::time::Duration;

use anyhow::Result;
use ecom_contract::command::flag;
use ecom_contract::env;
use ecom_contract::summary::{StageName, StreamDetail};
use ecom_jobs::load::LoadConfig;
use ecom_jobs::runtime::{parse_duration, signal, Budget, StageOptions, Ticker};
use ecom_jobs::store::kafka::KafkaTail;
use ecom_jobs::stream::{run_stream, StreamConfig, StreamStores};

use super::{
    claim_dir, claim_table, kafka_config, open_store, resolve_shard, run_stage, StageCommon,
    TableArgs,
};
use crate::RuleArgs;

/// Flags of `ecom stream`.
#[derive(Debug, clap::Args)]
pub struct StreamArgs {
    /// Kafka topic to consume.
    #[arg(long = flag::TOPIC, env = env::TOPIC)]
    topic: String,
    /// Kafka bootstrap servers.
    #[arg(long, env = env::KAFKA_BOOTSTRAP)]
    kafka_bootstrap: String,
    /// Directory of the raw files (`hdfs://host:port/path` or local): each micro-batch
    /// commits one file per partition, named by its offsets, as `ecom sink` does.
    #[arg(long = flag::RAW)]
    raw: String,
    /// Clean directory (`hdfs://host:port/path` or local): one committed run per
    /// micro-batch, as `ecom clean` writes them.
    #[arg(long = flag::CLEAN)]
    clean: String,
    #[command(flatten)]
    tables: TableArgs,
    /// This process's share of the topic's partitions: INDEX/COUNT (INDEX defaults to
    /// $JOB_COMPLETION_INDEX). Each partition belongs to one shard.
    #[arg(long = flag::SHARD, value_name = "INDEX/COUNT")]
    shard: Option<String>,
    /// How long a record waits at most before its micro-batch commits (e.g. 1s, 500ms).
    #[arg(long = flag::BATCH_INTERVAL, default_value = "1s", value_parser = parse_duration)]
    batch_interval: Duration,
    /// Records one micro-batch takes at most.
    #[arg(long = flag::MAX_BATCH_RECORDS, default_value_t = 200_000)]
    max_batch_records: usize,
    /// Order ids of recent micro-batches held in memory for the duplicate check (about 60
    /// bytes each); an id older than those is looked up in the fact table only if it falls
    /// in the id range of an older run.
    #[arg(long, default_value_t = 2_000_000)]
    memory_ids: usize,
    /// Stop after this long (e.g. 90s, 10m), commit what is held and exit 0, as on SIGTERM.
    #[arg(long, value_parser = parse_duration)]
    run_for: Option<Duration>,
    /// Skip records deleted (by retention) before they were read, logging and counting them
    /// (`offset_gaps`, `skipped_offsets`), instead of failing with the partition and the
    /// offsets expected and found.
    #[arg(long = flag::SKIP_OFFSET_GAPS)]
    skip_offset_gaps: bool,
    /// Extra librdkafka property KEY=VALUE (repeatable); secrets come from the environment
    /// (see `ecom produce --help`).
    #[arg(long = flag::KAFKA_PROPERTY, value_name = "KEY=VALUE")]
    kafka_properties: Vec<String>,
    #[command(flatten)]
    rules: RuleArgs,
    /// Runs until SIGTERM/Ctrl-C (or --run-for); --deadline and --attempts bound a streak of
    /// failures (reaching Kafka, HDFS or HBase again after an error).
    #[command(flatten)]
    common: StageCommon,
}

/// `ecom stream`.
pub fn stream(args: StreamArgs) -> Result<()> {
    let shard = resolve_shard(args.shard.as_deref())?;
    let clean = args.rules.config()?;
    let stop = signal::stop_flag(args.run_for);
    let opts = StageOptions {
        budget: Budget::FailureStreak,
        ..args.common.options(StageName::Stream)
    };
    run_stage(&opts, |clock, _| {
        let timeout = clock.call(args.common.call_timeout);
        let (raw, raw_dir) = open_store(&args.raw, timeout)?;
        let (out, clean_dir) = open_store(&args.clean, timeout)?;
        let concurrency = 4;
        let (tables, place) = args.tables.open(clock, timeout, concurrency)?;
        let me = args.common.identity.owner();
        claim_dir(me.as_ref(), raw.as_ref(), &raw_dir, &args.raw)?;
        claim_dir(me.as_ref(), out.as_ref(), &clean_dir, &args.clean)?;
        claim_table(me.as_ref(), tables.as_ref(), &args.tables.table, &place)?;
        let kafka = kafka_config(
            &args.kafka_bootstrap,
            &args.topic,
            &args.kafka_properties,
            timeout,
        )?;
        let mut tail = KafkaTail::open(kafka)?;
        let cfg = StreamConfig {
            topic: args.topic.clone(),
            raw_dir,
            clean_dir,
            clean: clean.clone(),
            load: LoadConfig {
                table: args.tables.table.clone(),
                salt_buckets: args.tables.salt_buckets,
                ..LoadConfig::default()
            },
            shard,
            batch_interval: args.batch_interval,
            max_batch_records: args.max_batch_records,
            max_run_bytes: 256 << 20,
            load_concurrency: concurrency,
            memory_ids: args.memory_ids,
            skip_offset_gaps: args.skip_offset_gaps,
        };
        let stores = StreamStores {
            raw: raw.as_ref(),
            out: out.as_ref(),
            tables: tables.as_ref(),
        };
        let mut ticker = Ticker::new("stream");
        let s = run_stream(&mut tail, stores, &cfg, &stop, |b| {
            tracing::info!(
                records = b.records,
                rows = b.rows,
                duplicates = b.cross_batch_duplicates,
                lag_ms = b.lag_ms,
                raw_ms = b.raw_ms,
                clean_ms = b.clean_ms,
                dedup_ms = b.dedup_ms,
                looked_up = b.looked_up,
                load_ms = b.load_ms,
                "micro-batch committed"
            );
            ticker.add(b.records, "records");
        })?;
        Ok(StreamDetail {
            topic: args.topic.clone(),
            shard: shard.to_string(),
            resumed_from: s
                .resumed_from
                .iter()
                .map(|(p, o)| (p.to_string(), *o))
                .collect(),
            recovered_runs: s.recovered_runs,
            recovered_files: s.recovered_files,
            batches: s.batches,
            records: s.records,
            rows: s.rows,
            cross_batch_duplicates: s.cross_batch_duplicates,
            max_lag_ms: s.max_lag_ms,
            offset_gaps: s.offset_gaps,
            skipped_offsets: s.skipped_offsets,
        })
    })?;
    Ok(())
}
