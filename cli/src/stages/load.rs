//! `ecom load`: committed clean runs into HBase.

use std::time::Instant;

use anyhow::Result;
use ecom_contract::command::flag;
use ecom_contract::summary::{LoadDetail, StageName};
use ecom_jobs::load::{load_committed, LoadConfig};
use ecom_jobs::runtime::Ticker;

use super::{
    claim_table, open_store, per_second, resolve_shard, run_stage, StageCommon, TableArgs,
};
use crate::progress::rows_bar;

/// Flags of `ecom load`.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// Clean directory written by `ecom clean` (`hdfs://host:port/path` or local):
    /// the `date=YYYY-MM-DD/part-RUN.parquet` files of the runs committed in its
    /// manifest (`_manifest/`) are loaded, nothing else.
    #[arg(long = flag::INPUT)]
    input: String,
    #[command(flatten)]
    tables: TableArgs,
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
        let (tables, place) = args.tables.open(clock, timeout, args.concurrency)?;
        claim_table(
            args.common.identity.owner().as_ref(),
            tables.as_ref(),
            &args.tables.table,
            &place,
        )?;
        let cfg = LoadConfig {
            table: args.tables.table.clone(),
            salt_buckets: args.tables.salt_buckets,
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
            table: args.tables.table.clone(),
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
