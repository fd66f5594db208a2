//! `ecom load`: committed clean runs into HBase.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use ecom_contract::command::flag;
use ecom_contract::env;
use ecom_contract::summary::{LoadDetail, StageName};
use ecom_jobs::load::{load_committed, LoadConfig};
use ecom_jobs::runtime::Ticker;

use super::{open_store, open_tables, per_second, resolve_shard, run_stage, StageCommon};
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
    /// HBase Thrift 1 server, host:port (`--store` wins).
    #[arg(long, env = env::HBASE_THRIFT, required_unless_present = "store")]
    hbase_thrift: Option<String>,
    /// An embedded store file instead of HBase (created if missing), which `ecom dashboard
    /// --store FILE` serves: the one-machine path after a local `ecom clean`.
    #[arg(long, value_name = "FILE")]
    store: Option<PathBuf>,
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
        let (tables, place) = open_tables(
            args.store.as_deref(),
            args.hbase_thrift.as_deref(),
            &args.thrift_wire,
            clock,
            timeout,
            args.concurrency,
        )?;
        let cfg = LoadConfig {
            table: args.table.clone(),
            salt_buckets: args.salt_buckets,
            batch_rows: args.batch_rows,
        };
        let bar = rows_bar("load", 0);
        let mut ticker = Ticker::new("load");
        let started = Instant::now();
        let loaded = load_committed(
            files.as_ref(),
            &dir,
            tables.as_ref(),
            &cfg,
            shard,
            args.concurrency,
            |rows| bar.set_length(rows),
            |n| {
                bar.inc(n);
                ticker.add(n, "rows");
            },
        )?;
        bar.finish_and_clear();
        let summary = &loaded.summary;
        tracing::info!(rows = summary.rows, files = summary.files, "load done");
        Ok(LoadDetail {
            input: files.describe(&dir),
            table: args.table.clone(),
            agg_table: cfg.agg_table(),
            thrift: place,
            shard: shard.to_string(),
            runs: loaded.runs,
            partitions: loaded.partitions,
            files: summary.files,
            rows: summary.rows,
            rows_per_second: per_second(summary.rows, started.elapsed().as_secs_f64()),
        })
    })?;
    Ok(())
}
