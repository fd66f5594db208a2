//! Reads the aggregates table (per-file summaries, cube parts and quality
//! reports) into a [`Snapshot`], and refreshes it incrementally: files that
//! appear are merged in, a file rewritten with different content or removed
//! triggers a full rebuild.

use std::collections::BTreeMap;

use ecom_jobs::aggregates::{Aggregates, Cube, CubeError};
use ecom_jobs::clean::QualityReport;
use ecom_jobs::load::{AGG_FAMILY, AGG_PREFIX, CUBE_PREFIX, REPORT_PREFIX};
use ecom_jobs::store::table::scan_prefix;
use ecom_jobs::store::{Row, Table, TableError};
use ecom_jobs::stream::{LogEntry, StreamError, StreamMark};

use crate::model::Model;

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
    /// A cube part did not decode.
    #[error(transparent)]
    Cube(#[from] CubeError),
    /// A streaming mark or log entry did not read or decode.
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// A file's cube parts are missing.
    #[error("aggregates of {file}: {found} cube parts stored, {expected} expected")]
    MissingParts {
        /// The file id.
        file: String,
        /// Parts found.
        found: usize,
        /// Parts announced in its `batch/` row.
        expected: usize,
    },
}

/// Everything the dashboard shows, merged.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Bumped whenever the loaded data changes.
    pub version: u64,
    /// Merged cells.
    pub model: Model,
    /// Merged per-file summaries.
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
    /// Latest load time of a file (RFC 3339).
    pub last_update: Option<String>,
    /// Salt buckets of the fact table's row keys (from the loader).
    pub salt_buckets: u32,
    /// The streaming shards' marks, by shard (`{index}-{count}`), as last read.
    pub stream: BTreeMap<String, StreamMark>,
    /// Fingerprint of each loaded file's summary (detects rewrites).
    seen: BTreeMap<String, Vec<u8>>,
}

/// How fresh the streamed data is, from the shards' marks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Freshness {
    /// The largest end-to-end lag of the shards' last micro-batches: milliseconds from a
    /// record reaching Kafka to it being visible here.
    pub lag_ms: Option<u64>,
    /// When a shard last committed a micro-batch (RFC 3339, milliseconds).
    pub committed_at: String,
    /// Runs the shards have loaded in all.
    pub batches: u64,
    /// Streaming shards.
    pub shards: u64,
}

impl Snapshot {
    /// The freshness of streamed data; `None` when no streaming shard has written a mark.
    pub fn freshness(&self) -> Option<Freshness> {
        let latest = self.stream.values().max_by_key(|m| m.committed_at_ms)?;
        Some(Freshness {
            lag_ms: self.stream.values().filter_map(|m| m.lag_ms).max(),
            committed_at: crate::time::rfc3339_ms(latest.committed_at_ms),
            batches: self.stream.values().map(|m| m.batches).sum(),
            shards: self.stream.len() as u64,
        })
    }
}

const MAX_ROWS: usize = 10_000_000;

fn cell<'a>(row: &'a Row, name: &str) -> Option<&'a [u8]> {
    row.cells
        .get(&format!("{AGG_FAMILY}:{name}"))
        .map(Vec::as_slice)
}

fn text(row: &Row, name: &str) -> Option<String> {
    cell(row, name).map(|v| String::from_utf8_lossy(v).into_owned())
}

fn decode<T: serde::de::DeserializeOwned>(row: &Row) -> Option<Result<T, ReadError>> {
    let key = String::from_utf8_lossy(&row.key).into_owned();
    cell(row, "json")
        .map(|v| serde_json::from_slice(v).map_err(|source| ReadError::Decode { key, source }))
}

/// Reads the cube of one file.
fn read_cube(table: &dyn Table, file: &str, expected: usize) -> Result<Cube, ReadError> {
    let prefix = format!("{CUBE_PREFIX}{file}/");
    let rows = scan_prefix(table, prefix.as_bytes(), MAX_ROWS)?;
    let mut cube = Cube::default();
    let mut found = 0;
    for row in &rows {
        if let Some(bytes) = cell(row, "cube") {
            cube.merge_part(bytes, &String::from_utf8_lossy(&row.key))?;
            found += 1;
        }
    }
    if found != expected {
        return Err(ReadError::MissingParts {
            file: file.to_string(),
            found,
            expected,
        });
    }
    Ok(cube)
}

/// One newly loaded file.
struct NewFile {
    key: String,
    fingerprint: Vec<u8>,
    summary: Aggregates,
    cube: Cube,
    loaded_at: Option<String>,
    salt_buckets: u32,
}

/// The file of a `batch/` row with its cube, `None` for a row without aggregates.
fn new_file(
    table: &dyn Table,
    key: String,
    fingerprint: Vec<u8>,
    row: &Row,
) -> Result<Option<NewFile>, ReadError> {
    let Some(agg) = decode::<Aggregates>(row).transpose()? else {
        return Ok(None);
    };
    let parts: usize = text(row, "cube_parts")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    // Rows written before cubes existed carry none: their figures stay
    // out of the panels (re-load the file to add them).
    let cube = if parts > 0 {
        read_cube(table, &key, parts)?
    } else {
        Cube::default()
    };
    let salt = text(row, "salt_buckets")
        .and_then(|t| t.parse().ok())
        .unwrap_or(16);
    Ok(Some(NewFile {
        key,
        fingerprint,
        summary: agg,
        cube,
        loaded_at: text(row, "loaded_at"),
        salt_buckets: salt,
    }))
}

/// A `batch/` row's fingerprint: its summary and cube part count.
fn fingerprint(row: &Row) -> Vec<u8> {
    let mut fp = cell(row, "json").unwrap_or_default().to_vec();
    fp.extend_from_slice(cell(row, "cube_parts").unwrap_or_default());
    fp
}

/// What changed in the table since a snapshot.
pub struct Delta {
    rebuild: bool,
    files: Vec<NewFile>,
    /// Every report (replacing the sums), or with `reports_added` only new ones.
    reports: Vec<QualityReport>,
    reports_added: bool,
    /// The streaming marks now.
    marks: BTreeMap<String, StreamMark>,
}

/// What the streaming shards loaded since `current`, read through their marks and logs
/// alone: the marks, the log entries after the ones `current` has seen, and those entries'
/// files and reports. `None` when that is not enough and [`read_delta`] must rescan: no
/// snapshot yet, no marks, a shard whose count went back (its table was recreated), or a
/// log entry missing.
pub fn read_stream_delta(
    table: &dyn Table,
    current: &Snapshot,
) -> Result<Option<Delta>, ReadError> {
    if current.version == 0 || current.stream.is_empty() {
        return Ok(None);
    }
    let marks = StreamMark::read_all(table)?;
    let mut entries = Vec::new();
    for (shard, mark) in &marks {
        let seen = current.stream.get(shard).map_or(0, |m| m.batches);
        if mark.batches < seen {
            return Ok(None);
        }
        let read = LogEntry::read_range(table, shard, seen + 1, mark.batches)?;
        if read.len() as u64 != mark.batches - seen {
            return Ok(None);
        }
        entries.extend(read);
    }
    let keys: Vec<String> = entries
        .iter()
        .flat_map(|e| e.files.iter())
        .filter(|k| !current.seen.contains_key(*k))
        .cloned()
        .collect();
    let rows = table.get_many(
        &keys
            .iter()
            .map(|k| format!("{AGG_PREFIX}{k}").into_bytes())
            .collect::<Vec<_>>(),
    )?;
    let mut files = Vec::new();
    for (key, row) in keys.into_iter().zip(rows) {
        let Some(row) = row else {
            return Ok(None);
        };
        files.extend(new_file(table, key, fingerprint(&row), &row)?);
    }
    let report_keys: Vec<Vec<u8>> = entries
        .iter()
        .map(|e| format!("{REPORT_PREFIX}{}", e.report).into_bytes())
        .collect();
    let mut reports = Vec::new();
    for row in table.get_many(&report_keys)?.into_iter().flatten() {
        if let Some(r) = decode::<QualityReport>(&row) {
            reports.push(r?);
        }
    }
    Ok(Some(Delta {
        rebuild: false,
        files,
        reports,
        reports_added: true,
        marks,
    }))
}

/// Reads what changed since `current` (`None`: everything).
pub fn read_delta(table: &dyn Table, current: Option<&Snapshot>) -> Result<Delta, ReadError> {
    let batches = scan_prefix(table, AGG_PREFIX.as_bytes(), MAX_ROWS)?;
    let mut listed = BTreeMap::new();
    for row in &batches {
        let key = String::from_utf8_lossy(&row.key[AGG_PREFIX.len()..]).into_owned();
        listed.insert(key, (fingerprint(row), row));
    }
    let rebuild = match current {
        None => true,
        Some(s) => s
            .seen
            .iter()
            .any(|(k, fp)| listed.get(k).is_none_or(|(f, _)| f != fp)),
    };
    let mut files = Vec::new();
    for (key, (fp, row)) in listed {
        if !rebuild && current.is_some_and(|s| s.seen.contains_key(&key)) {
            continue;
        }
        files.extend(new_file(table, key, fp, row)?);
    }
    let mut reports = Vec::new();
    for row in scan_prefix(table, REPORT_PREFIX.as_bytes(), MAX_ROWS)? {
        if let Some(r) = decode::<QualityReport>(&row) {
            reports.push(r?);
        }
    }
    Ok(Delta {
        rebuild,
        files,
        reports,
        reports_added: false,
        marks: StreamMark::read_all(table)?,
    })
}

/// Cleaning reports summed: rows in, rows out, dropped per rule, fixed per fix.
type ReportSums = (u64, u64, BTreeMap<String, u64>, BTreeMap<String, u64>);

fn report_sums(reports: &[QualityReport]) -> ReportSums {
    let (mut rows_in, mut rows_out) = (0, 0);
    let (mut dropped, mut fixed) = (BTreeMap::new(), BTreeMap::new());
    for r in reports {
        rows_in += r.rows_in;
        rows_out += r.rows_out;
        for (k, v) in &r.dropped {
            *dropped.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &r.fixed {
            *fixed.entry(k.clone()).or_default() += v;
        }
    }
    (rows_in, rows_out, dropped, fixed)
}

impl Delta {
    /// Whether applying this delta to `current` would change anything (the
    /// refresh takes the snapshot's write lock only then: a waiting writer
    /// holds back every new reader).
    pub fn changes(&self, current: &Snapshot) -> bool {
        if self.rebuild || !self.files.is_empty() || self.marks != current.stream {
            return true;
        }
        if self.reports_added {
            return !self.reports.is_empty();
        }
        let (rows_in, rows_out, dropped, fixed) = report_sums(&self.reports);
        (rows_in, rows_out, &dropped, &fixed)
            != (
                current.rows_in,
                current.rows_out,
                &current.dropped,
                &current.fixed,
            )
    }
}

impl Snapshot {
    /// Applies a delta; returns whether the data changed.
    pub fn apply(&mut self, delta: Delta) -> bool {
        let mut changed = delta.rebuild;
        if delta.rebuild {
            let version = self.version;
            *self = Snapshot {
                version,
                ..Default::default()
            };
        }
        for f in delta.files {
            // A file whose sums cannot be represented is left out, never wrapped, and not
            // marked seen; the model is checked first, and its bound covers every sum the
            // aggregates make of the same rows.
            let merged = self
                .model
                .merge(&f.cube)
                .and_then(|()| self.aggregates.merge(&f.summary));
            if let Err(overflow) = merged {
                tracing::error!(error = %overflow.of(f.key.as_str()), "aggregates of a file left out");
                continue;
            }
            changed = true;
            self.files += 1;
            self.salt_buckets = f.salt_buckets;
            if f.loaded_at > self.last_update {
                self.last_update = f.loaded_at;
            }
            self.seen.insert(f.key, f.fingerprint);
        }
        if delta.marks != self.stream {
            changed = true;
            self.stream = delta.marks;
        }
        let (mut rows_in, mut rows_out, mut dropped, mut fixed) = report_sums(&delta.reports);
        if delta.reports_added {
            rows_in += self.rows_in;
            rows_out += self.rows_out;
            for (k, v) in &self.dropped {
                *dropped.entry(k.clone()).or_default() += v;
            }
            for (k, v) in &self.fixed {
                *fixed.entry(k.clone()).or_default() += v;
            }
        }
        if (rows_in, rows_out, &dropped, &fixed)
            != (self.rows_in, self.rows_out, &self.dropped, &self.fixed)
        {
            changed = true;
            self.rows_in = rows_in;
            self.rows_out = rows_out;
            self.dropped = dropped;
            self.fixed = fixed;
        }
        if changed {
            self.version += 1;
        }
        changed
    }
}

/// Reads the current snapshot from scratch.
pub fn snapshot(table: &dyn Table) -> Result<Snapshot, ReadError> {
    let mut snap = Snapshot::default();
    snap.apply(read_delta(table, None)?);
    Ok(snap)
}
