//! Reads and merges the per-file aggregates and quality reports.

use std::collections::BTreeMap;

use ecom_jobs::aggregates::Aggregates;
use ecom_jobs::clean::QualityReport;
use ecom_jobs::load::{AGG_FAMILY, AGG_PREFIX, REPORT_PREFIX};
use ecom_jobs::store::table::scan_prefix;
use ecom_jobs::store::{Table, TableError};

/// Errors reading the aggregates.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The table failed.
    #[error(transparent)]
    Table(#[from] TableError),
    /// The blocking read task failed.
    #[error("reading aggregates: {0}")]
    Task(String),
    /// A stored document did not decode.
    #[error("aggregates row {key}: {source}")]
    Decode {
        /// The row key.
        key: String,
        /// The JSON error.
        source: serde_json::Error,
    },
}

/// Everything the dashboard shows, merged.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Merged aggregates of every loaded file.
    pub aggregates: Aggregates,
    /// Rows in per cleaning run, summed.
    pub rows_in: u64,
    /// Rows out per cleaning run, summed.
    pub rows_out: u64,
    /// Dropped per rule, summed.
    pub dropped: BTreeMap<String, u64>,
    /// Fixed per fix, summed.
    pub fixed: BTreeMap<String, u64>,
    /// Loaded files.
    pub files: u64,
}

const MAX_ROWS: usize = 1_000_000;

fn decode<T: serde::de::DeserializeOwned>(
    table: &dyn Table,
    prefix: &str,
) -> Result<Vec<T>, ReadError> {
    let cell = format!("{AGG_FAMILY}:json");
    scan_prefix(table, prefix.as_bytes(), MAX_ROWS)?
        .into_iter()
        .filter_map(|row| {
            let key = String::from_utf8_lossy(&row.key).into_owned();
            row.cells.get(&cell).map(|v| {
                serde_json::from_slice(v).map_err(|source| ReadError::Decode { key, source })
            })
        })
        .collect()
}

/// Reads the current snapshot.
pub fn snapshot(table: &dyn Table) -> Result<Snapshot, ReadError> {
    let mut snap = Snapshot::default();
    for agg in decode::<Aggregates>(table, AGG_PREFIX)? {
        snap.aggregates.merge(&agg);
        snap.files += 1;
    }
    for report in decode::<QualityReport>(table, REPORT_PREFIX)? {
        snap.rows_in += report.rows_in;
        snap.rows_out += report.rows_out;
        for (k, v) in report.dropped {
            *snap.dropped.entry(k).or_default() += v;
        }
        for (k, v) in report.fixed {
            *snap.fixed.entry(k).or_default() += v;
        }
    }
    Ok(snap)
}
