//! `ecom purge`: deletes a pipeline's HDFS paths and HBase tables; what the
//! operator's finalizer runs under `cleanupPolicy: Delete`.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use ecom_contract::command::flag;
use ecom_contract::env;
use ecom_contract::summary::{PurgeDetail, StageName, Summary};
use ecom_jobs::load::LoadConfig;
use ecom_jobs::owner::{self, Mark, Owner};
use ecom_jobs::store::hbase::{HbaseConfig, HbaseTables};
use ecom_jobs::store::hdfs::{split_url, HdfsFiles};
use ecom_jobs::store::{FileStore, TableError, TableStore};

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
    #[command(flatten)]
    identity: crate::stages::PipelineIdentity,
    /// Give up on each service after this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout_secs: u64,
}

/// Why a place marked `mark` is not `me`'s to delete (`None`: it is, or there is nothing).
fn not_mine(mark: &Mark, me: &Owner, exists: bool) -> Option<String> {
    match mark {
        Mark::Owner(o) if o.uid == me.uid => None,
        Mark::Owner(o) => Some(format!(
            "it belongs to EcomPipeline {} (uid {})",
            o.name, o.uid
        )),
        Mark::None if exists => Some(format!(
            "it carries no pipeline's identity, so not that of {} (uid {})",
            me.name, me.uid
        )),
        Mark::None => None,
    }
}

/// Deletes what the flags name; prints a JSON summary as the last line. Run for a pipeline
/// (`ECOM_PIPELINE_UID` set), it deletes only directories and tables marked as that
/// pipeline's and keeps, naming them, the others.
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
    // Run for a pipeline, only what carries its identity goes; by hand, what the flags name.
    let me = args.identity.owner();
    let mut removed_paths = Vec::new();
    let mut kept = Vec::new();
    for (authority, dir, url) in targets {
        let store = HdfsFiles::open(&authority, timeout)
            .with_context(|| format!("connecting to HDFS at {authority}"))?;
        if let Some(me) = &me {
            let mark = owner::dir_mark(&store, &dir, &url)?;
            if let Some(why) = not_mine(&mark, me, store.exists(&dir)?) {
                tracing::warn!(%url, "kept: {why}");
                kept.push(format!("{url}: {why}"));
                continue;
            }
        }
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
        let place = format!("table {table} on {addr}");
        let why = match &me {
            None => None,
            Some(me) => match tables.table(&agg) {
                Ok(t) => not_mine(&owner::table_mark(t.as_ref(), &place)?, me, true),
                // No aggregates table: nothing of this pipeline's was loaded there.
                Err(TableError::NoTable(_)) => {
                    let fact = match tables.table(table) {
                        Ok(_) => true,
                        Err(TableError::NoTable(_)) => false,
                        Err(e) => return Err(e).with_context(|| format!("reading {place}")),
                    };
                    not_mine(&Mark::None, me, fact)
                }
                Err(e) => return Err(e).with_context(|| format!("reading {place}")),
            },
        };
        match why {
            Some(why) => {
                tracing::warn!(%table, "kept: {why}");
                kept.push(format!("{place}: {why}"));
            }
            None => {
                for name in [table.clone(), agg] {
                    tables
                        .drop_table(&name)
                        .with_context(|| format!("dropping table {name} on {addr}"))?;
                    tracing::info!(table = %name, "dropped (if it existed)");
                    dropped_tables.push(name);
                }
            }
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
            kept,
        }),
    };
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}
