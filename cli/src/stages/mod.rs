//! The pipeline stages as Kubernetes-Job-friendly subcommands: `produce`, `sink`, `clean` on
//! store URLs and `load`.
//!
//! Every stage takes its service addresses from flags or the environment (the names in
//! [`ecom_contract::env`]), logs through `tracing` and runs in [`ecom_jobs::runtime`]:
//! transient failures retried with exponential backoff, a clear failure once `--deadline` has
//! passed or at once on a permanent error, and a typed summary
//! ([`ecom_contract::summary`]) as the last line of standard output, also written to
//! `--summary-file` (the pod's termination message).

mod clean;
mod load;
mod produce;
mod sink;
mod stream;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use ecom_contract::env;
use ecom_contract::summary::{StageName, Summary};
use ecom_jobs::incremental::Shard;
use ecom_jobs::load::{LoadConfig, AGG_FAMILY};
use ecom_jobs::owner::{self, Owner};
use ecom_jobs::retry::ErrorClass;
use ecom_jobs::runtime::{self, parse_duration, Clock, Report, StageFailure, StageOptions};
use ecom_jobs::store::hbase::{HbaseConfig, HbaseTables};
use ecom_jobs::store::hdfs::HdfsFiles;
use ecom_jobs::store::kafka::{kafka_properties, KafkaConfig};
use ecom_jobs::store::{EmbeddedTables, FileStore, LocalFiles, TableStore};
use serde::Serialize;

use crate::retry::{self, Permanent};

pub use clean::{clean_stage, CleanStageArgs};
pub use load::{load, LoadArgs};
pub use produce::{produce, ProduceArgs};
pub use sink::{sink, SinkArgs};
pub use stream::{stream, StreamArgs};

/// Flags every stage shares.
#[derive(Debug, Clone, clap::Args)]
pub struct StageCommon {
    /// Also write the JSON summary to this file (a Kubernetes pod's termination
    /// message). Default: /dev/termination-log when it is writable, else none.
    #[arg(long, env = env::SUMMARY_FILE)]
    pub summary_file: Option<PathBuf>,
    /// Fail with a clear message if the stage has not finished after this long
    /// (retries included), e.g. 90s, 10m, 1h. A continuous `sink` (without
    /// --until-caught-up) has no end: there it bounds a streak of failures.
    #[arg(long, env = env::DEADLINE, default_value = "30m", value_parser = parse_duration)]
    pub deadline: Duration,
    /// Attempts of the whole stage on a transient failure (each resumes where
    /// the last stopped), with exponential backoff from 1 s to 30 s. A permanent
    /// error (a missing input, a path that is not a directory, a permission
    /// refused, a corrupt file, a malformed flag) fails the stage at once.
    #[arg(long, env = env::ATTEMPTS, default_value_t = 5)]
    pub attempts: u32,
    /// Timeout of one call to a service (Kafka metadata/delivery, HDFS RPC,
    /// HBase I/O); a call is retried within the deadline.
    #[arg(long, env = env::CALL_TIMEOUT, default_value = "30s", value_parser = parse_duration)]
    pub call_timeout: Duration,
    #[command(flatten)]
    pub identity: PipelineIdentity,
}

impl StageCommon {
    /// How `stage` runs with these flags (retried, the deadline bounding the whole run).
    fn options(&self, stage: StageName) -> StageOptions {
        StageOptions {
            report: Report::Print {
                file: runtime::report::summary_path(self.summary_file.as_deref()),
            },
            ..StageOptions::new(stage, self.deadline, self.attempts)
        }
    }
}

/// An `anyhow` error as the runtime sees it: classified by its chain's typed errors.
struct Failure(anyhow::Error);

impl StageFailure for Failure {
    fn class(&self) -> ErrorClass {
        retry::classify(&self.0)
    }
    fn message(&self) -> String {
        retry::message(&self.0)
    }
}

/// Runs a stage body in [`ecom_jobs::runtime::run_stage`]; its summary has been printed.
fn run_stage<T: Serialize>(
    opts: &StageOptions,
    mut body: impl FnMut(&Clock, u32) -> Result<T>,
) -> Result<Summary<T>> {
    Ok(runtime::run_stage(opts, |clock, attempt| {
        body(clock, attempt).map_err(Failure)
    })?)
}

/// `--shard` resolved, INDEX from `ECOM_SHARD_INDEX` (a StatefulSet's pod index) or
/// `JOB_COMPLETION_INDEX` (an Indexed Job's) when only COUNT is given.
pub fn resolve_shard(flag: Option<&str>) -> Result<Shard> {
    let index = std::env::var(env::SHARD_INDEX)
        .or_else(|_| std::env::var(env::JOB_COMPLETION_INDEX))
        .ok();
    Ok(runtime::resolve_shard(flag, index.as_deref()).map_err(|e| Permanent(e.0))?)
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

/// Where the serving tables are: the flags `ecom load` and `ecom stream` share.
#[derive(Debug, clap::Args)]
pub struct TableArgs {
    /// Fact table (created with its four column families if missing); the aggregates (and
    /// the streaming marks) go to TABLE_agg.
    #[arg(long = ecom_contract::command::flag::TABLE, env = env::TABLE, default_value = "ecommerce")]
    pub table: String,
    /// HBase Thrift 1 server, host:port (`--store` wins).
    #[arg(long, env = env::HBASE_THRIFT, required_unless_present = "store")]
    pub hbase_thrift: Option<String>,
    /// An embedded store file instead of HBase (created if missing), which `ecom dashboard
    /// --store FILE` serves: the one-machine path after a local `ecom clean`.
    #[arg(long, value_name = "FILE")]
    pub store: Option<PathBuf>,
    #[command(flatten)]
    pub thrift_wire: crate::thrift_wire::ThriftWire,
    /// Salt buckets of row keys (`SS-ORDERID`); 0 for plain order ids.
    #[arg(long = ecom_contract::command::flag::SALT_BUCKETS, default_value_t = 16)]
    pub salt_buckets: u32,
}

impl TableArgs {
    /// The serving tables: the embedded store file, or HBase over Thrift with `concurrency`
    /// connections; and a description of which.
    fn open(
        &self,
        clock: &Clock,
        timeout: Duration,
        concurrency: usize,
    ) -> Result<(Box<dyn TableStore>, String)> {
        match (&self.store, &self.hbase_thrift) {
            (Some(file), _) => Ok((
                Box::new(EmbeddedTables::open(file)?),
                file.display().to_string(),
            )),
            (None, Some(addr)) => {
                let mut hcfg = self.thrift_wire.apply(HbaseConfig::new(addr));
                hcfg.io_timeout = timeout.min(Duration::from_secs(30));
                hcfg.deadline = clock.remaining();
                hcfg.connections = concurrency.max(1);
                Ok((Box::new(HbaseTables::new(hcfg)), addr.clone()))
            }
            (None, None) => Err(Permanent(format!(
                "give --hbase-thrift HOST:PORT (or {}) or --store FILE",
                env::HBASE_THRIFT
            ))
            .into()),
        }
    }
}

/// The pipeline a stage runs for: set by the operator, absent when a stage is run by hand.
#[derive(Debug, Clone, clap::Args)]
pub struct PipelineIdentity {
    /// UID of the EcomPipeline this stage runs for: the HDFS directories and the HBase
    /// table the stage writes are marked as that pipeline's, and those another pipeline
    /// marked are refused. Unset: no marks are read or written.
    #[arg(long, env = env::PIPELINE_UID)]
    pub pipeline_uid: Option<String>,
    /// `namespace/name` of that EcomPipeline (written into the marks, for messages).
    #[arg(long, env = env::PIPELINE, requires = "pipeline_uid")]
    pub pipeline: Option<String>,
}

impl PipelineIdentity {
    /// The owner the flags name, if any.
    pub fn owner(&self) -> Option<Owner> {
        let uid = self.pipeline_uid.clone().filter(|u| !u.is_empty())?;
        Some(Owner {
            uid,
            name: self.pipeline.clone().unwrap_or_else(|| "?".to_string()),
        })
    }
}

/// Marks directory `dir` of `store` (named `url`) as the stage's pipeline's, when the stage
/// runs for one; fails when another pipeline marked it.
pub fn claim_dir(me: Option<&Owner>, store: &dyn FileStore, dir: &str, url: &str) -> Result<()> {
    if let Some(me) = me {
        owner::claim_dir(store, dir, url, me)?;
    }
    Ok(())
}

/// Marks `table` (through its aggregates table, created if missing) as the stage's
/// pipeline's, when the stage runs for one; fails when another pipeline marked it.
pub fn claim_table(
    me: Option<&Owner>,
    tables: &dyn TableStore,
    table: &str,
    place: &str,
) -> Result<()> {
    if let Some(me) = me {
        let agg = LoadConfig {
            table: table.to_string(),
            ..LoadConfig::default()
        }
        .agg_table();
        tables.ensure_table(&agg, &[AGG_FAMILY])?;
        owner::claim_table(
            tables.table(&agg)?.as_ref(),
            &format!("table {table} on {place}"),
            me,
        )?;
    }
    Ok(())
}

/// Whether `url` names HDFS.
fn is_remote(url: &str) -> bool {
    url.starts_with("hdfs://")
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

/// Records (or rows) per second over `secs`.
fn per_second(n: u64, secs: f64) -> f64 {
    (n as f64 / secs.max(1e-9)).round()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_resolve() {
        assert_eq!(
            resolve_shard(Some("2/4")).ok(),
            Some(Shard { index: 2, count: 4 })
        );
        assert!(resolve_shard(Some("4/4")).is_err());
    }
}
