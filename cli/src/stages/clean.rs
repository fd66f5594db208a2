//! `ecom clean` on store URLs: incremental, manifest-tracked runs.

use std::path::Path;

use anyhow::Result;
use ecom_contract::command::flag;
use ecom_contract::env;
use ecom_contract::summary::{CleanDetail, CleanRunSummary, StageName};
use ecom_jobs::incremental::clean_next_run;
use ecom_jobs::runtime::Ticker;

use super::{is_remote, open_store, resolve_shard, run_stage, StageCommon};

/// Stage flags of `ecom clean` used when its input or output is an HDFS URL.
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

/// `ecom clean` on HDFS URLs (or any store URL): incremental, manifest-tracked.
pub fn clean_remote(
    input: &str,
    output: &str,
    cfg: ecom_jobs::clean::CleanConfig,
    stage: &CleanStageArgs,
) -> Result<()> {
    let shard = resolve_shard(stage.shard.as_deref())?;
    let mut detail = CleanDetail::default();
    let mut merged: Option<CleanRunSummary> = None;
    run_stage(&stage.common.options(StageName::Clean), |clock, _| {
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
                |n| {
                    ticker.add(n, "bytes");
                },
            )?;
            let more = s.run.is_some() && s.pending_after > 0;
            tracing::info!(run = ?s.run, rows_in = s.report.rows_in, rows_out = s.report.rows_out, pending_after = s.pending_after, "clean run done");
            detail.runs.extend(s.run.clone());
            match &mut merged {
                Some(total) => total.merge(s),
                None => merged = Some(s),
            }
            if !more {
                break;
            }
        }
        let total = merged.clone().unwrap_or_default();
        Ok(CleanDetail {
            input: raw.describe(&raw_dir),
            output: out.describe(&clean_dir),
            runs: detail.runs.clone(),
            files: total.report.output_files.len() as u64,
            total,
        })
    })?;
    Ok(())
}

/// Whether `ecom clean` should run as the incremental store stage.
pub fn clean_is_remote(input: &Path, output: &Path) -> bool {
    is_remote(&input.to_string_lossy()) || is_remote(&output.to_string_lossy())
}
