//! Checkpoints of a clean output's run manifests.
//!
//! A streaming deployment commits a clean run every few minutes, forever, and
//! every run (and every load) needs all committed manifests. Reading each one
//! costs a NameNode and a DataNode round trip, so that cost would grow with the
//! whole history. A checkpoint is one file, `_checkpoints/COUNT-RUN.json`,
//! holding the manifests committed up to a point; a reader takes those from it
//! and reads only the manifests committed since.
//!
//! The checkpoint is a cache; `_manifest/` stays the record. A cached manifest
//! is used only while a manifest of that run with the same size is listed, so a
//! run whose manifest was removed is not returned, and a checkpoint that cannot
//! be read is skipped (with a warning) in favour of the manifests themselves.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{join, IncrementalError, RunManifest, MANIFEST_DIR};
use crate::store::FileStore;

/// Directory of the checkpoints, beside `_manifest/`.
pub const CHECKPOINT_DIR: &str = "_checkpoints";
/// Committed manifests outside the newest checkpoint that make the run
/// committing the next one write a new checkpoint.
pub const CHECKPOINT_EVERY: usize = 64;
/// Checkpoints kept, the newest; older ones are removed by the writer. More
/// than one, so a reader that listed the previous newest can still read it.
const CHECKPOINTS_KEPT: usize = 2;

/// One cached manifest and the size of its file when it was cached.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cached {
    len: u64,
    manifest: RunManifest,
}

/// The file: run id -> cached manifest.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Checkpoint {
    runs: BTreeMap<String, Cached>,
}

/// The committed runs of a clean output, and what reading them took.
#[derive(Debug, Default)]
pub struct Committed {
    /// Every committed run, in manifest name order.
    pub runs: Vec<RunManifest>,
    /// Manifest file sizes, by run id (what a new checkpoint records).
    lens: BTreeMap<String, u64>,
    /// Manifests read one by one (not in the newest checkpoint).
    pub uncovered: usize,
}

impl Committed {
    /// Adds a run just committed (its manifest file is `len` bytes); `checkpointed`: a
    /// checkpoint holding it was written.
    pub fn record(&mut self, run: RunManifest, len: u64, checkpointed: bool) {
        self.lens.insert(run.run.clone(), len);
        self.runs.push(run);
        self.uncovered = if checkpointed { 0 } else { self.uncovered + 1 };
    }
}

/// Every committed run of `clean_dir`: from the newest checkpoint where it
/// still matches the listing, the rest from their manifests.
pub fn read_committed(
    files: &dyn FileStore,
    clean_dir: &str,
) -> Result<Committed, IncrementalError> {
    let listed: Vec<(String, u64)> = files
        .list(&join(clean_dir, MANIFEST_DIR))?
        .into_iter()
        .filter(|e| e.path.ends_with(".json"))
        .map(|e| (e.path, e.len))
        .collect();
    let mut cached = if listed.is_empty() {
        Checkpoint::default()
    } else {
        newest(files, clean_dir)
    };
    let mut slots: Vec<Option<RunManifest>> = Vec::with_capacity(listed.len());
    let mut to_read = Vec::new();
    let mut lens = BTreeMap::new();
    for (path, len) in &listed {
        let id = run_id(path);
        lens.insert(id.to_string(), *len);
        match cached.runs.remove(id) {
            Some(c) if c.len == *len => slots.push(Some(c.manifest)),
            _ => {
                slots.push(None);
                to_read.push(path.clone());
            }
        }
    }
    let mut fresh = Vec::with_capacity(to_read.len());
    for (path, bytes) in to_read.iter().zip(files.read_files(&to_read)) {
        let manifest: RunManifest =
            serde_json::from_slice(&bytes?).map_err(|source| IncrementalError::Json {
                file: files.describe(path),
                source,
            })?;
        fresh.push(manifest);
    }
    let mut fresh = fresh.into_iter();
    let runs = slots
        .into_iter()
        .filter_map(|s| s.or_else(|| fresh.next()))
        .collect();
    Ok(Committed {
        runs,
        lens,
        uncovered: to_read.len(),
    })
}

/// The run id a manifest path names (`.../_manifest/RUN.json`).
fn run_id(path: &str) -> &str {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.strip_suffix(".json").unwrap_or(name)
}

/// The newest readable checkpoint's runs (empty if none).
fn newest(files: &dyn FileStore, clean_dir: &str) -> Checkpoint {
    let dir = join(clean_dir, CHECKPOINT_DIR);
    let newest = match files.list(&dir) {
        Ok(entries) => entries
            .into_iter()
            .map(|e| e.path)
            .filter(|p| p.ends_with(".json"))
            .max(),
        Err(e) => {
            tracing::warn!(error = %e, dir = %files.describe(&dir), "cannot list the manifest checkpoints, reading every manifest");
            None
        }
    };
    let Some(path) = newest else {
        return Checkpoint::default();
    };
    let read = files
        .read(&path)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice::<Checkpoint>(&b).map_err(|e| e.to_string()));
    read.unwrap_or_else(|error| {
        tracing::warn!(%error, file = %files.describe(&path), "skipping an unreadable manifest checkpoint");
        Checkpoint::default()
    })
}

/// Writes a checkpoint of `committed` plus the run just committed (`run`,
/// whose manifest file is `len` bytes), then removes all but the newest
/// [`CHECKPOINTS_KEPT`] checkpoints.
pub fn write(
    files: &dyn FileStore,
    clean_dir: &str,
    committed: &Committed,
    run: &RunManifest,
    len: u64,
) -> Result<(), IncrementalError> {
    let mut checkpoint = Checkpoint::default();
    // Every committed run was listed with its size; the new run's is `len`.
    let listed = committed
        .runs
        .iter()
        .filter_map(|m| committed.lens.get(&m.run).map(|&len| (m, len)));
    for (m, len) in listed.chain([(run, len)]) {
        checkpoint.runs.insert(
            m.run.clone(),
            Cached {
                len,
                manifest: m.clone(),
            },
        );
    }
    let dir = join(clean_dir, CHECKPOINT_DIR);
    let path = join(
        &dir,
        &format!("{:010}-{}.json", checkpoint.runs.len(), run.run),
    );
    let bytes = serde_json::to_vec(&checkpoint).map_err(|source| IncrementalError::Json {
        file: files.describe(&path),
        source,
    })?;
    files.write_atomic(&path, &bytes)?;
    let mut all: Vec<String> = files
        .list(&dir)?
        .into_iter()
        .map(|e| e.path)
        .filter(|p| p.ends_with(".json"))
        .collect();
    all.sort();
    let old = all.len().saturating_sub(CHECKPOINTS_KEPT);
    for p in &all[..old] {
        files.remove_all(p)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_of_manifest_paths() {
        assert_eq!(run_id("clean/_manifest/0123abcd.json"), "0123abcd");
        assert_eq!(run_id("0123abcd.json"), "0123abcd");
    }
}
