//! The clean-to-load contract: each committed run's manifest, which is all the loader
//! trusts, and the range of order ids a run kept.

use super::*;

/// The commit record of one cleaning run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunManifest {
    /// Run id (hash of its raw files and shard).
    pub run: String,
    /// Shard that ran it.
    pub shard: Shard,
    /// Raw files consumed (store paths).
    pub raw_files: Vec<String>,
    /// Clean Parquet written, one per date partition (store paths, in
    /// partition order).
    pub parquet_files: Vec<String>,
    /// Rows written per date partition (`YYYY-MM-DD` or [`NO_DATE`]).
    pub partitions: BTreeMap<String, u64>,
    /// Quality report written (store path).
    pub report: String,
    /// Rows in the Parquet file.
    pub rows_out: u64,
    /// The order ids the run kept, as text; `None` when it kept no row, or
    /// when an older version wrote the manifest (such runs are always read
    /// when de-duplicating).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_ids: Option<IdRange>,
}

/// The smallest and largest of a set of order ids, as text in plain byte
/// order (a total order on any ids: exact for pruning, whatever the ids are).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    /// Smallest id.
    pub min: String,
    /// Largest id.
    pub max: String,
}

impl IdRange {
    /// The range of `ids` (nulls skipped), `None` when there is none.
    pub fn of<'a>(ids: impl IntoIterator<Item = Option<&'a str>>) -> Option<IdRange> {
        let mut range: Option<(&str, &str)> = None;
        for id in ids.into_iter().flatten() {
            range = Some(match range {
                None => (id, id),
                Some((lo, hi)) => (lo.min(id), hi.max(id)),
            });
        }
        range.map(|(lo, hi)| IdRange {
            min: lo.to_string(),
            max: hi.to_string(),
        })
    }

    /// Whether `id` lies in the range.
    pub(super) fn contains(&self, id: &str) -> bool {
        self.min.as_str() <= id && id <= self.max.as_str()
    }

    /// Whether the two ranges share at least one possible id.
    pub(super) fn overlaps(&self, other: &IdRange) -> bool {
        self.min <= other.max && other.min <= self.max
    }
}

pub use ecom_contract::summary::CleanRunSummary;

/// Every committed run of `clean_dir`, in manifest name order (from the
/// newest manifest checkpoint and the manifests committed since it).
pub fn committed_runs(
    files: &dyn FileStore,
    clean_dir: &str,
) -> Result<Vec<RunManifest>, IncrementalError> {
    Ok(checkpoint::read_committed(files, clean_dir)?.runs)
}

/// Store path of a run's manifest.
pub(super) fn manifest_path(clean_dir: &str, run: &str) -> String {
    join(clean_dir, &format!("{MANIFEST_DIR}/{run}.json"))
}
