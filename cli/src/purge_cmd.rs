//! `ecom purge`: deletes a pipeline's HDFS paths and HBase tables; what the
//! operator's finalizer runs under `cleanupPolicy: Delete`.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use ecom_contract::command::flag;
use ecom_contract::env;
use ecom_contract::summary::{PurgeDetail, StageName, Summary};
use ecom_jobs::load::LoadConfig;
use ecom_jobs::store::hbase::{HbaseConfig, HbaseTables};
use ecom_jobs::store::hdfs::{split_url, HdfsFiles};
use ecom_jobs::store::FileStore;

use crate::thrift_wire::ThriftWire;

/// Flags of `ecom purge`.
#[derive(Debug, clap::Args)]
pub struct PurgeArgs {
    /// An HDFS directory to delete with everything below it, as
    /// `hdfs://host:port/dir` (repeatable; the filesystem root is refused).
    #[arg(long = flag::PATH, value_name = "URL")]
    paths: Vec<String>,
    /// Fact table to drop, together with its aggregates table (`<table>_agg`).
    #[arg(long = flag::TABLE)]
    table: Option<String>,
    /// HBase Thrift server `host:port` (needed with --table).
    #[arg(long, env = env::HBASE_THRIFT)]
    hbase_thrift: Option<String>,
    #[command(flatten)]
    thrift_wire: ThriftWire,
    /// Give up on each service after this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout_secs: u64,
}

/// Deletes what the flags name; prints a JSON summary as the last line.
pub fn run(args: PurgeArgs) -> Result<()> {
    let started = std::time::Instant::now();
    let timeout = Duration::from_secs(args.timeout_secs);
    // Refuse every bad path before deleting anything.
    let mut targets = Vec::new();
    for url in &args.paths {
        let Some((authority, dir)) = split_url(url) else {
            bail!("--path {url}: expected hdfs://host:port/dir");
        };
        if dir.trim_matches('/').is_empty() {
            bail!("--path {url}: refusing to delete the filesystem root");
        }
        targets.push((authority, dir, url.clone()));
    }
    let mut removed_paths = Vec::new();
    for (authority, dir, url) in targets {
        let store = HdfsFiles::open(&authority, timeout)
            .with_context(|| format!("connecting to HDFS at {authority}"))?;
        store
            .remove_all(&dir)
            .with_context(|| format!("deleting {url}"))?;
        tracing::info!(%url, "deleted");
        removed_paths.push(url);
    }
    let mut dropped_tables = Vec::new();
    if let Some(table) = &args.table {
        let Some(addr) = &args.hbase_thrift else {
            bail!("--table {table} needs --hbase-thrift HOST:PORT (or HBASE_THRIFT)");
        };
        let mut cfg = args.thrift_wire.apply(HbaseConfig::new(addr.clone()));
        cfg.deadline = timeout;
        let tables = HbaseTables::new(cfg);
        let agg = LoadConfig {
            table: table.clone(),
            ..Default::default()
        }
        .agg_table();
        for name in [table.clone(), agg] {
            tables
                .drop_table(&name)
                .with_context(|| format!("dropping table {name} on {addr}"))?;
            tracing::info!(table = %name, "dropped (if it existed)");
            dropped_tables.push(name);
        }
    }
    let summary = Summary {
        stage: Some(StageName::Purge),
        ok: true,
        attempts: 1,
        elapsed_ms: Some(started.elapsed().as_millis() as u64),
        error: None,
        detail: Some(PurgeDetail {
            paths: removed_paths,
            tables: dropped_tables,
        }),
    };
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}
