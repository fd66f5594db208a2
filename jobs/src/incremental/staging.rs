//! Where an attempt writes before its commit, and the sweeping of what a crashed attempt
//! left there.

use super::*;

/// Directory of the runs' temporary files inside the clean directory. Each
/// attempt of a run writes into its own subdirectory,
/// `{shard index}-{shard count}-{run}-{attempt}`, and moves the files into
/// place from there, so the leftovers of a crashed attempt are one listing away.
pub const STAGING_DIR: &str = "_staging";
/// The run's manifest inside its staging directory, before the commit.
pub(super) const STAGED_MANIFEST: &str = "manifest.json";
/// The run's report inside its staging directory.
pub(super) const STAGED_REPORT: &str = "report.json";
/// Staging directories of other shards are swept once untouched this long: a
/// crashed attempt whose shard layout never runs again (a live attempt
/// touches its directory within its deadline).
pub(super) const STALE_STAGING: Duration = Duration::from_secs(24 * 3600);

/// The shard and run of a staging directory name.
pub(super) fn parse_staging(name: &str) -> Option<(Shard, &str)> {
    let mut parts = name.splitn(4, '-');
    let index = parts.next()?.parse().ok()?;
    let count = parts.next()?.parse().ok()?;
    let run = parts.next()?;
    parts.next()?;
    Some((Shard { index, count }, run))
}

/// The staged manifest of an uncommitted attempt, if it was written whole.
/// Files are moved into place only after it is closed, so without it there is
/// nothing in place to remove.
pub(super) fn staged_manifest(
    out: &dyn FileStore,
    staging: &str,
    run: &str,
) -> Option<RunManifest> {
    let path = join(staging, STAGED_MANIFEST);
    let parsed = out
        .read(&path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice::<RunManifest>(&b).map_err(|e| e.to_string()));
    match parsed {
        Ok(m) if m.run == run => Some(m),
        Ok(_) => None,
        // Missing, or still open under the crashed writer's lease: the attempt
        // never got to move files.
        Err(e) => {
            tracing::debug!(file = %out.describe(&path), error = %e, "no whole staged manifest");
            None
        }
    }
}

/// Removes the leftovers of attempts that can no longer commit: staging
/// directories of this shard (an earlier attempt that crashed or failed), of
/// committed runs, and stale ones; plus the files an uncommitted attempt had
/// already moved into place. Returns how many staging directories went.
///
/// Safe against a live attempt of the same shard: its staging directory goes
/// first, which makes its commit (a rename out of it) fail, and files are
/// removed only if its manifest is still absent after that.
pub fn sweep_staging(
    out: &dyn FileStore,
    clean_dir: &str,
    runs: &[RunManifest],
    shard: Shard,
) -> Result<u64, IncrementalError> {
    let committed: HashSet<&str> = runs.iter().map(|r| r.run.as_str()).collect();
    let mut swept = 0;
    for dir in out.list_dirs(&join(clean_dir, STAGING_DIR))? {
        let name = dir.path.rsplit('/').next().unwrap_or(&dir.path);
        let Some((owner, run)) = parse_staging(name) else {
            continue;
        };
        let done = committed.contains(run);
        let stale = dir
            .modified
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age > STALE_STAGING);
        if !(done || owner == shard || stale) {
            continue;
        }
        let placed = if done {
            None
        } else {
            staged_manifest(out, &dir.path, run)
        };
        out.remove_all(&dir.path)?;
        let mut removed = 0;
        if let Some(m) = placed {
            if !out.exists(&manifest_path(clean_dir, run))? {
                let own = |f: &&String| {
                    f.ends_with(&format!("/part-{run}.parquet"))
                        || f.ends_with(&format!("/report-{run}.json"))
                };
                for f in m.parquet_files.iter().chain([&m.report]).filter(own) {
                    out.remove_all(f)?;
                    removed += 1;
                }
            }
        }
        tracing::info!(staging = %out.describe(&dir.path), committed = done, removed_in_place = removed, "swept leftovers of an earlier attempt");
        swept += 1;
    }
    Ok(swept)
}

/// A name for this attempt of a run, unique across processes and retries.
pub(super) fn attempt_id() -> String {
    crate::store::files::unique_token()
}
