//! `ecom clean`: incremental, manifest-committed runs, on HDFS or local files alike.
//!
//! Input and output must not overlap (the same directory, or one inside the other, once
//! resolved): a run would read its own output as raw files, or write over its input.

use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};
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
        refuse_overlap(input, output)?;
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

/// Where a store URL points, comparable with another: the HDFS authority (lower case,
/// port 8020 when none is given) or empty for a local path, and the path's components
/// (`.` and `..` resolved; a local path absolute, its symbolic links resolved as far as
/// it exists).
fn location(url: &str) -> Result<(String, Vec<String>)> {
    if is_remote(url) {
        let (authority, path) = ecom_jobs::store::hdfs::split_url(url)
            .ok_or_else(|| Permanent(format!("{url}: expected hdfs://host:port/path")))?;
        let mut authority = authority.to_ascii_lowercase();
        let host = authority.trim_start_matches("hdfs://");
        let has_port = host
            .rsplit_once(':')
            .is_some_and(|(_, port)| port.parse::<u16>().is_ok());
        if !has_port {
            authority.push_str(":8020");
        }
        let mut parts: Vec<String> = Vec::new();
        for part in path.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                p => parts.push(p.to_string()),
            }
        }
        return Ok((authority, parts));
    }
    let abs = std::path::absolute(url).with_context(|| format!("resolving path {url}"))?;
    let mut lexical = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                lexical.pop();
            }
            Component::CurDir => {}
            c => lexical.push(c),
        }
    }
    // The longest part that exists, with its links resolved, then the rest as written.
    let mut existing = lexical.clone();
    let mut rest = Vec::new();
    let resolved = loop {
        if let Ok(real) = existing.canonicalize() {
            break real;
        }
        match existing.file_name() {
            Some(name) => {
                rest.push(name.to_os_string());
                existing.pop();
            }
            None => break existing,
        }
    };
    let full = rest.iter().rev().fold(resolved, |p, name| p.join(name));
    let parts = full
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    Ok((String::new(), parts))
}

/// Fails, naming both, when `input` and `output` are the same directory or one is inside
/// the other.
fn refuse_overlap(input: &str, output: &str) -> Result<()> {
    let (a_store, a) = location(input)?;
    let (b_store, b) = location(output)?;
    if a_store != b_store {
        return Ok(());
    }
    let relation = if a == b {
        "they are the same directory"
    } else if b.starts_with(&a) {
        "the output is inside the input"
    } else if a.starts_with(&b) {
        "the input is inside the output"
    } else {
        return Ok(());
    };
    Err(Permanent(format!(
        "--{} {input} and --{} {output} overlap: {relation} (resolved: {}{} and {}{}); a \
         run would clean its own output or write over its input: give directories apart",
        flag::INPUT,
        flag::OUTPUT,
        a_store,
        display(&a),
        b_store,
        display(&b),
    ))
    .into())
}

/// Components as an absolute path.
fn display(parts: &[String]) -> String {
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlap(input: &str, output: &str) -> Option<String> {
        refuse_overlap(input, output).err().map(|e| e.to_string())
    }

    #[test]
    fn overlapping_hdfs_directories_are_refused() {
        let same = overlap("hdfs://NN:8020/ecom/raw", "hdfs://nn:8020/ecom/raw/").expect("same");
        assert!(same.contains("same directory"), "{same}");
        assert!(
            same.contains("hdfs://NN:8020/ecom/raw") && same.contains("hdfs://nn:8020/ecom/raw/"),
            "both named: {same}"
        );
        let inside = overlap("hdfs://nn/ecom/raw", "hdfs://nn:8020/ecom/raw/clean").expect("in");
        assert!(inside.contains("output is inside the input"), "{inside}");
        let outer = overlap(
            "hdfs://nn:8020/ecom/x/../clean/raw",
            "hdfs://nn:8020/ecom/clean",
        )
        .expect("input inside");
        assert!(outer.contains("input is inside the output"), "{outer}");
        // Apart: siblings, a shared name prefix, another cluster, local against HDFS.
        assert_eq!(
            overlap("hdfs://nn:8020/ecom/raw", "hdfs://nn:8020/ecom/clean"),
            None
        );
        assert_eq!(
            overlap("hdfs://nn:8020/ecom/raw", "hdfs://nn:8020/ecom/raw2"),
            None
        );
        assert_eq!(
            overlap("hdfs://nn:8020/ecom", "hdfs://other:8020/ecom"),
            None
        );
        assert_eq!(overlap("hdfs://nn:9000/ecom", "hdfs://nn:8020/ecom"), None);
        assert_eq!(overlap("/ecom/raw", "hdfs://nn:8020/ecom/raw"), None);
    }

    #[test]
    fn overlapping_local_paths_are_refused_through_links_and_dots() {
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path();
        let raw = root.join("raw");
        std::fs::create_dir(&raw).expect("raw");
        let s = |p: &Path| p.to_str().expect("utf8").to_string();
        assert!(overlap(&s(&raw), &s(&raw)).is_some());
        assert!(overlap(&s(&raw), &s(&raw.join("clean"))).is_some());
        assert!(overlap(&s(&raw.join("a/../..")), &s(&raw)).is_some());
        // A symbolic link to the input, and an output below it that does not exist yet.
        let link = root.join("link");
        std::os::unix::fs::symlink(&raw, &link).expect("symlink");
        let err = overlap(&s(&raw), &s(&link.join("new/clean"))).expect("through the link");
        assert!(err.contains("output is inside the input"), "{err}");
        // A single file input inside the output directory.
        let file = raw.join("data.tsv");
        std::fs::write(&file, "x").expect("file");
        assert!(overlap(&s(&file), &s(&raw)).is_some());
        // Apart.
        assert_eq!(overlap(&s(&raw), &s(&root.join("clean"))), None);
        assert_eq!(overlap(&s(&raw), &s(&root.join("raw-clean"))), None);
    }
}
