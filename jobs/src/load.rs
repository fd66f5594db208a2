//! Load: clean Parquet into the serving table, plus the aggregates the
//! dashboard reads (one row per clean file, so re-loading is idempotent).

use std::io::Cursor;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::aggregates::Aggregates;
use crate::clean::QualityReport;
use crate::store::log::partition_for;
use crate::store::{Cells, FileStore, FileStoreError, Row, Table, TableError, TableStore};

/// Column families of the fact table, as in the seed.
pub const FAMILIES: [&str; 4] = [
    "order_details",
    "payment_info",
    "status_info",
    "timestamp_info",
];
/// Family of the aggregates table.
pub const AGG_FAMILY: &str = "agg";
/// Row-key prefix of per-file aggregates in the aggregates table.
pub const AGG_PREFIX: &str = "batch/";
/// Row-key prefix of quality reports in the aggregates table.
pub const REPORT_PREFIX: &str = "report/";

/// Errors of the load stage.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file store failed.
    #[error("clean file store: {0}")]
    Files(#[from] FileStoreError),
    /// The table store failed.
    #[error("serving table: {0}")]
    Table(#[from] TableError),
    /// A Parquet file could not be read.
    #[error("reading clean parquet {file}: {source}")]
    Parquet {
        /// The file.
        file: String,
        /// The polars error.
        source: PolarsError,
    },
    /// JSON encoding failed.
    #[error("encoding aggregates: {0}")]
    Json(#[from] serde_json::Error),
}

/// Where and how to load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadConfig {
    /// Fact table name (`ecommerce`).
    pub table: String,
    /// Salt buckets prefixed to row keys (0: plain order ids).
    pub salt_buckets: u32,
    /// Rows per write batch.
    pub batch_rows: usize,
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            table: "ecommerce".into(),
            salt_buckets: 16,
            batch_rows: 5_000,
        }
    }
}

impl LoadConfig {
    /// The aggregates table that goes with the fact table.
    pub fn agg_table(&self) -> String {
        format!("{}_agg", self.table)
    }
}

/// The row key of an order: `SS-ORDERID` with a two-hex-digit salt that spreads
/// sequential ids over regions, or the plain id when salting is off.
pub fn row_key(order_id: &str, salt_buckets: u32) -> String {
    if salt_buckets == 0 {
        order_id.to_string()
    } else {
        format!(
            "{:02x}-{order_id}",
            partition_for(order_id.as_bytes(), salt_buckets)
        )
    }
}

/// What the load stage did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadSummary {
    /// Rows written to the fact table.
    pub rows: u64,
    /// Clean files loaded.
    pub files: u64,
}

/// The value of a string column at row `i` (empty when null).
fn at(c: &StringChunked, i: usize) -> &str {
    c.get(i).unwrap_or("")
}

fn cell(cells: &mut Cells, name: &str, value: &str) {
    cells.insert(name.to_string(), value.as_bytes().to_vec());
}

/// Loads every clean Parquet file under `clean_dir`, and records `report` (if
/// any) beside the aggregates.
pub fn load_store(
    files: &dyn FileStore,
    clean_dir: &str,
    tables: &dyn TableStore,
    cfg: &LoadConfig,
    report: Option<&QualityReport>,
    progress: impl FnMut(u64) + Send,
) -> Result<LoadSummary, LoadError> {
    let inputs: Vec<LoadInput> = files
        .list(clean_dir)?
        .into_iter()
        .filter(|e| e.path.ends_with(".parquet"))
        .map(|e| LoadInput {
            agg_key: e.path.clone(),
            path: e.path,
        })
        .collect();
    let summary = load_files(files, &inputs, tables, cfg, 1, progress)?;
    if let Some(report) = report {
        put_report(tables, cfg, clean_dir, report)?;
    }
    Ok(summary)
}

/// Records a quality report in the aggregates table under `report/{key}`.
pub fn put_report(
    tables: &dyn TableStore,
    cfg: &LoadConfig,
    key: &str,
    report: &QualityReport,
) -> Result<(), LoadError> {
    let agg_table = tables.table(&cfg.agg_table())?;
    let mut cells = Cells::new();
    cells.insert(format!("{AGG_FAMILY}:json"), serde_json::to_vec(report)?);
    agg_table.put(&[Row {
        key: format!("{REPORT_PREFIX}{key}").into_bytes(),
        cells,
    }])?;
    Ok(())
}

/// One clean Parquet file to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadInput {
    /// Path in the file store.
    pub path: String,
    /// Stable id of the file: its aggregates row is `batch/{agg_key}`.
    pub agg_key: String,
}

/// Creates the fact and aggregates tables if missing, then loads `inputs`:
/// fact rows in batches of `cfg.batch_rows`, written by `concurrency`
/// threads, and one aggregates row per file, written after all its fact
/// rows. Re-loading a file writes the same cells.
pub fn load_files(
    files: &dyn FileStore,
    inputs: &[LoadInput],
    tables: &dyn TableStore,
    cfg: &LoadConfig,
    concurrency: usize,
    mut progress: impl FnMut(u64) + Send,
) -> Result<LoadSummary, LoadError> {
    tables.ensure_table(&cfg.table, &FAMILIES)?;
    tables.ensure_table(&cfg.agg_table(), &[AGG_FAMILY])?;
    let fact = tables.table(&cfg.table)?;
    let agg_table = tables.table(&cfg.agg_table())?;
    let mut summary = LoadSummary::default();
    for input in inputs {
        let (batches, agg, rows) = read_clean(files, &input.path, cfg)?;
        put_concurrently(&*fact, batches, concurrency, &mut progress)?;
        summary.rows += rows;
        summary.files += 1;
        let mut cells = Cells::new();
        cells.insert(format!("{AGG_FAMILY}:json"), serde_json::to_vec(&agg)?);
        agg_table.put(&[Row {
            key: format!("{AGG_PREFIX}{}", input.agg_key).into_bytes(),
            cells,
        }])?;
    }
    Ok(summary)
}

/// Writes `batches` with `concurrency` threads; the first error stops the rest.
fn put_concurrently(
    table: &dyn Table,
    batches: Vec<Vec<Row>>,
    concurrency: usize,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<(), LoadError> {
    let queue = Mutex::new(batches.into_iter());
    let failed = AtomicBool::new(false);
    let progress = Mutex::new(progress);
    let results: Vec<Result<(), TableError>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..concurrency.max(1))
            .map(|_| {
                scope.spawn(|| -> Result<(), TableError> {
                    loop {
                        if failed.load(Ordering::Relaxed) {
                            return Ok(());
                        }
                        let next = queue.lock().ok().and_then(|mut q| q.next());
                        let Some(batch) = next else {
                            return Ok(());
                        };
                        if let Err(e) = table.put(&batch) {
                            failed.store(true, Ordering::Relaxed);
                            return Err(e);
                        }
                        if let Ok(mut p) = progress.lock() {
                            (*p)(batch.len() as u64);
                        }
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join().unwrap_or_else(|_| {
                    Err(TableError::Remote {
                        address: String::new(),
                        table: String::new(),
                        message: "a load thread panicked".into(),
                    })
                })
            })
            .collect()
    });
    for r in results {
        r?;
    }
    Ok(())
}

/// Reads one clean Parquet file into fact-row batches and its aggregates.
fn read_clean(
    files: &dyn FileStore,
    path: &str,
    cfg: &LoadConfig,
) -> Result<(Vec<Vec<Row>>, Aggregates, u64), LoadError> {
    let name = files.describe(path);
    let pe = |source| LoadError::Parquet {
        file: name.clone(),
        source,
    };
    let bytes = files.read(path)?;
    let df = ParquetReader::new(Cursor::new(bytes))
        .finish()
        .map_err(pe)?;
    let text = df
        .lazy()
        .select([
            col("order_id").cast(DataType::String),
            col("user_id").cast(DataType::String),
            col("category"),
            col("amount"),
            col("amount").cast(DataType::String).alias("amount_text"),
            col("payment_method"),
            col("status"),
            col("timestamp"),
        ])
        .collect()
        .map_err(pe)?;
    let s = |c: &str| text.column(c).and_then(|c| c.str()).map_err(pe);
    let (order, user, cat, amount_text, pay, status, ts) = (
        s("order_id")?,
        s("user_id")?,
        s("category")?,
        s("amount_text")?,
        s("payment_method")?,
        s("status")?,
        s("timestamp")?,
    );
    let amount = text.column("amount").and_then(|c| c.f64()).map_err(pe)?;
    let mut agg = Aggregates::default();
    let batch_rows = cfg.batch_rows.max(1);
    let mut batches = Vec::new();
    let mut batch = Vec::with_capacity(batch_rows);
    for i in 0..text.height() {
        let mut cells = Cells::new();
        cell(&mut cells, "order_details:user_id", at(user, i));
        cell(&mut cells, "order_details:category", at(cat, i));
        cell(&mut cells, "order_details:amount", at(amount_text, i));
        cell(&mut cells, "payment_info:payment_method", at(pay, i));
        cell(&mut cells, "status_info:status", at(status, i));
        cell(&mut cells, "timestamp_info:timestamp", at(ts, i));
        agg.add(
            at(cat, i),
            amount.get(i).unwrap_or(0.0),
            at(pay, i),
            at(status, i),
            at(ts, i),
        );
        batch.push(Row {
            key: row_key(at(order, i), cfg.salt_buckets).into_bytes(),
            cells,
        });
        if batch.len() >= batch_rows {
            batches.push(std::mem::replace(
                &mut batch,
                Vec::with_capacity(batch_rows),
            ));
        }
    }
    if !batch.is_empty() {
        batches.push(batch);
    }
    Ok((batches, agg, text.height() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salted_keys_are_stable_and_spread() {
        assert_eq!(row_key("10000000", 0), "10000000");
        let k = row_key("10000000", 16);
        assert_eq!(k, row_key("10000000", 16));
        assert!(k.ends_with("-10000000") && k.len() == 11, "{k}");
        let salts: std::collections::BTreeSet<String> = (10_000_000..10_000_100)
            .map(|i| row_key(&i.to_string(), 16)[..2].to_string())
            .collect();
        assert!(salts.len() > 8, "{salts:?}");
    }
}
