//! Incremental, sharded cleaning of a raw directory in a [`FileStore`] (HDFS).
//!
//! A run cleans the raw files that no committed run has cleaned yet and writes
//! its rows partitioned by the date of their timestamp, Hive style:
//! `date=YYYY-MM-DD/part-{run}.parquet` (rows whose timestamp has no date go
//! to `date=__HIVE_DEFAULT_PARTITION__`), plus `report-{run}.json` in the
//! clean directory. It then commits by moving its manifest into
//! `_manifest/{run}.json` (the raw files it consumed and the Parquet files it
//! wrote). Readers (the loader) only trust files named by a manifest, so a
//! crash before the commit leaves nothing visible. Every file is first written
//! into the attempt's own directory under [`STAGING_DIR`]; the next run of the
//! shard sweeps what a failed attempt left ([`sweep_staging`]), and a retry
//! (same pending files, same run id) rewrites the same paths. Re-running with
//! no new raw file writes nothing.
//!
//! Duplicates across runs: an `order_id` already kept by a committed run is
//! dropped under `duplicate_order_id` (the same rule the cleaner applies
//! within a run), so re-producing the same input adds no row downstream. Each
//! manifest records the smallest and largest id its run kept ([`IdRange`]),
//! so a run reads the ids of only the committed runs whose range overlaps its
//! own (and of manifests without a range, written by older versions).
//!
//! Sharding: `--shard INDEX/COUNT` gives each shard the raw files whose
//! `topic+partition` hashes to it. Records are keyed by order id, so all copies
//! of an order id are in one partition and therefore in one shard: N shards
//! drop exactly the duplicates one run would.

use std::collections::{BTreeMap, HashSet};
use std::io::Cursor;
use std::time::{Duration, Instant};

use polars::prelude::*;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::clean::{CleanConfig, CleanError, Cleaner};
use crate::rules::Rule;
use crate::sink::RawFileName;
use crate::store::files::FileEntry;
use crate::store::log::partition_for;
use crate::store::{FileStore, FileStoreError};

mod checkpoint;
#[cfg(test)]
mod failed_runs;
mod manifest;
mod run;
mod shard;
mod staging;
#[cfg(test)]
mod tests;

pub use checkpoint::{read_committed, Committed, CHECKPOINT_DIR, CHECKPOINT_EVERY};
pub use manifest::*;
pub use run::*;
pub use shard::*;
pub use staging::*;

/// Directory of run manifests inside the clean directory.
pub const MANIFEST_DIR: &str = "_manifest";
/// Partition value of rows whose timestamp holds no `YYYY-MM-DD` date (the
/// name Hive and Spark read back as null).
pub const NO_DATE: &str = "__HIVE_DEFAULT_PARTITION__";

/// Errors of incremental cleaning, naming the file involved.
#[derive(Debug, thiserror::Error)]
pub enum IncrementalError {
    /// The file store failed.
    #[error("file store: {0}")]
    Files(#[from] FileStoreError),
    /// Cleaning failed.
    #[error(transparent)]
    Clean(#[from] CleanError),
    /// A Parquet file could not be read or written.
    #[error("parquet {file}: {source}")]
    Parquet {
        /// The file.
        file: String,
        /// The polars error.
        source: PolarsError,
    },
    /// A manifest or report could not be encoded or decoded.
    #[error("manifest or report {file}: {source}")]
    Json {
        /// The file.
        file: String,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// Looking up the ids earlier runs kept in the serving table failed.
    #[error("looking up earlier order ids: {0}")]
    Table(#[from] crate::store::TableError),
    /// A `--shard` value that is not `INDEX/COUNT` with `INDEX < COUNT`.
    #[error("invalid shard {0:?}: expected INDEX/COUNT with 0 <= INDEX < COUNT")]
    BadShard(String),
    /// Input files that are not tab-separated text (their bytes would all count as
    /// dropped rows): nothing was committed.
    #[error(
        "{} input file(s) are not tab-separated text, nothing was cleaned: {}; move them out \
         of the input directory",
        files.len(),
        files.iter().map(|(f, why)| format!("{f} ({why})")).collect::<Vec<_>>().join(", ")
    )]
    NotTsv {
        /// Each file and why it is not TSV.
        files: Vec<(String, &'static str)>,
    },
}

/// Bytes of a raw file's start looked at to tell TSV from other files.
const SNIFF_BYTES: usize = 64 << 10;

/// Why the start of a raw file shows it is not tab-separated text (`None`: it may be).
/// Files the sink wrote ([`RawFileName`]) hold records as they were sent and are never
/// refused: a bad record is a dropped row, counted under its rule.
pub fn not_tsv(name: &str, data: &[u8]) -> Option<&'static str> {
    let file = name.rsplit('/').next().unwrap_or(name);
    if RawFileName::parse(file).is_some() {
        return None;
    }
    let head = &data[..data.len().min(SNIFF_BYTES)];
    const MAGIC: [(&[u8], &str); 6] = [
        (b"PAR1", "Parquet"),
        (b"\x1f\x8b", "gzip"),
        (b"PK\x03\x04", "zip"),
        (b"BZh", "bzip2"),
        (b"\x28\xb5\x2f\xfd", "zstd"),
        (b"\xfd7zXZ\x00", "xz"),
    ];
    if let Some((_, kind)) = MAGIC.iter().find(|(m, _)| head.starts_with(m)) {
        return Some(kind);
    }
    if memchr::memchr(0, head).is_some() {
        return Some("binary: a NUL byte in its first 64 KiB");
    }
    let blank = head.iter().all(|b| b.is_ascii_whitespace());
    if !blank && memchr::memchr(b'\t', head).is_none() {
        return Some("no tab in its first 64 KiB");
    }
    None
}

pub(super) fn fnv_hex(parts: &[&str]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain([0u8]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

pub(super) fn join(dir: &str, name: &str) -> String {
    format!("{}/{name}", dir.trim_end_matches('/'))
}
