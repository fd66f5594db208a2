//! `ecom load`: committed clean runs into HBase.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ecom_contract::command::flag;
use ecom_contract::env;
use ecom_contract::summary::{LoadDetail, StageName};
use ecom_jobs::incremental::committed_runs;
use ecom_jobs::load::{load_files, put_report, LoadConfig, LoadInput};
use ecom_jobs::runtime::Ticker;
use ecom_jobs::store::hbase::{HbaseConfig, HbaseTables};

use super::{open_store, per_second, resolve_shard, run_stage, StageCommon};
use crate::progress::rows_bar;
use crate::thrift_wire::ThriftWire;

/// Flags of `ecom load`.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// Clean directory written by `ecom clean` (`hdfs://host:port/path` or local):
    /// the `date=YYYY-MM-DD/part-RUN.parquet` files of the runs committed in its
    /// manifest (`_manifest/`) are loaded, nothing else.
    #[arg(long = flag::INPUT)]
    input: String,
    /// Fact table (created with its four column families if missing); the
    /// aggregates go to TABLE_agg.
    #[arg(long = flag::TABLE, env = env::TABLE, default_value = "ecommerce")]
    table: String,
    /// HBase Thrift 1 server, host:port.
    #[arg(long, env = env::HBASE_THRIFT)]
    hbase_thrift: String,
    #[command(flatten)]
    thrift_wire: ThriftWire,
    /// Salt buckets of row keys (`SS-ORDERID`); 0 for plain order ids.
    #[arg(long = flag::SALT_BUCKETS, default_value_t = 16)]
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
    #[arg(long = flag::SHARD, value_name = "INDEX/COUNT")]
    shard: Option<String>,
    #[command(flatten)]
    common: StageCommon,
}

/// `ecom load`.
pub fn load(args: LoadArgs) -> Result<()> {
    let shard = resolve_shard(args.shard.as_deref())?;
    run_stage(&args.common.options(StageName::Load), |clock, _| {
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
        tracing::info!(rows = summary.rows, files = summary.files, "load done");
        Ok(LoadDetail {
            input: files.describe(&dir),
            table: args.table.clone(),
            agg_table: cfg.agg_table(),
            thrift: args.hbase_thrift.clone(),
            shard: shard.to_string(),
            runs: runs.len() as u64,
            partitions: inputs.len() as u64,
            files: summary.files,
            rows: summary.rows,
            rows_per_second: per_second(summary.rows, started.elapsed().as_secs_f64()),
        })
    })?;
    Ok(())
}
