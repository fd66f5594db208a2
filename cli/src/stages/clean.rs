//! `ecom clean`: incremental, manifest-committed runs, on HDFS or local files alike.

use std::path::Path;

use anyhow::Result;
use ecom_contract::command::flag;
use ecom_contract::env;
use ecom_contract::summary::{CleanDetail, StageName};
use ecom_jobs::incremental::{CleanRun, RawInput};
use ecom_jobs::runtime::Ticker;

use super::{claim_dir, is_remote, open_store, resolve_shard, run_stage, StageCommon};
use crate::retry::Permanent;

/// Stage flags of `ecom clean`.
#[derive(Debug, clap::Args)]
pub struct CleanStageArgs {
    /// Process only this share of the raw files: INDEX/COUNT (INDEX defaults
    /// to $JOB_COMPLETION_INDEX, set by Kubernetes Indexed Jobs). Files of one
    /// Kafka partition always go to the same shard.
    #[arg(long = flag::SHARD, value_name = "INDEX/COUNT")]
    pub shard: Option<String>,
    /// Raw input bytes one run takes at most (at least one file). A run holds
    /// its clean rows in memory, about 4 bytes for each raw byte, so this
    /// bounds the memory; with more pending, runs are committed one after
    /// another until none is left. Default: no limit (one run).
    #[arg(long, env = env::CLEAN_MAX_RUN_BYTES, value_name = "BYTES")]
    pub max_run_bytes: Option<u64>,
    #[command(flatten)]
    pub common: StageCommon,
}

/// `ecom clean`: the raw files not cleaned yet (a directory, or one local file) into clean
/// runs committed in OUTPUT's manifest, on HDFS URLs or local paths alike.
pub fn clean_stage(
    input: &str,
    output: &str,
    cfg: ecom_jobs::clean::CleanConfig,
    stage: &CleanStageArgs,
) -> Result<()> {
    let shard = resolve_shard(stage.shard.as_deref())?;
    run_stage(&stage.common.options(StageName::Clean), |clock, _| {
        let timeout = clock.call(stage.common.call_timeout);
        let (raw, raw_path) = open_store(input, timeout)?;
        let (out, clean_dir) = open_store(output, timeout)?;
        let local = !is_remote(input);
        if local && !Path::new(&raw_path).exists() {
            return Err(Permanent(format!("--input {input}: no such file or directory")).into());
        }
        let local_file = local && Path::new(&raw_path).is_file();
        claim_dir(
            stage.common.identity.owner().as_ref(),
            out.as_ref(),
            &clean_dir,
            output,
        )?;
        let run = CleanRun {
            raw: raw.as_ref(),
            input: if local_file {
                RawInput::File(raw_path.clone())
            } else {
                RawInput::Dir(raw_path.clone())
            },
            out: out.as_ref(),
            clean_dir: clean_dir.clone(),
            cfg: cfg.clone(),
            shard,
            max_run_bytes: stage.max_run_bytes.unwrap_or(u64::MAX),
        };
        let mut ticker = Ticker::new("clean");
        // Runs until none is pending; runs committed by an earlier attempt are found in the
        // manifest, and an attempt resumes after them.
        let (runs, total) = run.clean_pending(
            |n| {
                ticker.add(n, "bytes");
            },
            |s| {
                tracing::info!(run = ?s.run, rows_in = s.report.rows_in, rows_out = s.report.rows_out, pending_after = s.pending_after, "clean run done");
            },
        )?;
        Ok(CleanDetail {
            input: raw.describe(&raw_path),
            output: out.describe(&clean_dir),
            runs,
            files: total.report.output_files.len() as u64,
            total,
        })
    })?;
    Ok(())
}
