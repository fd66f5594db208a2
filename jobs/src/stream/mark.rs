//! The mark a streaming shard writes after each micro-batch: what is visible and how late.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::StreamError;
use crate::incremental::Shard;
use crate::load::{LoadConfig, AGG_FAMILY};
use crate::store::table::scan_prefix;
use crate::store::{Cells, Row, Table, TableStore};

/// Row-key prefix of the streaming marks in the aggregates table: `stream/{index}-{count}`.
pub const MARK_PREFIX: &str = "stream/";
/// Row-key prefix of the shards' logs of loaded runs: `streamlog/{index}-{count}/{seq:012}`
/// (seq from 1). A reader that has seen a shard's entries up to `n` reads the entries after
/// `n` up to the mark's `batches`, and only those files' aggregates rows: no rescan.
pub const LOG_PREFIX: &str = "streamlog/";

/// One run a streaming shard loaded: what became visible with it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogEntry {
    /// The run.
    pub run: String,
    /// The ids of its files' aggregates rows (`batch/{id}`).
    pub files: Vec<String>,
    /// The id of its quality report row (`report/{id}`).
    pub report: String,
    /// Clean rows loaded.
    pub rows: u64,
    /// When it was loaded, ms since the epoch.
    pub loaded_at_ms: i64,
    /// Milliseconds from its oldest record reaching Kafka to it being loaded (unknown for a
    /// run loaded after a restart).
    pub lag_ms: Option<u64>,
}

impl LogEntry {
    /// The row key of entry `seq` of the shard `shard_key` (`{index}-{count}`).
    pub fn key(shard_key: &str, seq: u64) -> String {
        format!("{LOG_PREFIX}{shard_key}/{seq:012}")
    }

    /// Entries `from..=to` of the shard `shard_key`, in order.
    pub fn read_range(
        table: &dyn Table,
        shard_key: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<LogEntry>, StreamError> {
        if from > to {
            return Ok(Vec::new());
        }
        let start = Self::key(shard_key, from);
        let stop = Self::key(shard_key, to + 1);
        let rows = table.scan(start.as_bytes(), stop.as_bytes(), (to - from + 1) as usize)?;
        rows.iter()
            .map(|r| {
                let what = String::from_utf8_lossy(&r.key).into_owned();
                let json = r
                    .cells
                    .get(&format!("{AGG_FAMILY}:json"))
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                serde_json::from_slice(json).map_err(|source| StreamError::Json { what, source })
            })
            .collect()
    }
}

/// One shard's progress, rewritten after every micro-batch (JSON in `agg:json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamMark {
    /// The shard, `INDEX/COUNT`.
    pub shard: String,
    /// Runs this shard loaded over its whole life: its log's entries `1..=batches`.
    pub batches: u64,
    /// Records read.
    pub records: u64,
    /// Clean rows loaded.
    pub rows: u64,
    /// Per partition, the offset after the last record that is visible.
    pub offsets: BTreeMap<u32, u64>,
    /// When the last micro-batch became visible (or the shard started), ms since the epoch.
    pub committed_at_ms: i64,
    /// Milliseconds from the oldest record of the last micro-batch reaching Kafka to the
    /// batch being visible: the end-to-end lag.
    pub lag_ms: Option<u64>,
}

impl StreamMark {
    /// The row key of `shard`'s mark.
    pub fn key(shard: Shard) -> String {
        format!("{MARK_PREFIX}{}", Self::shard_key(shard))
    }

    /// `{index}-{count}`: the shard in row keys.
    pub fn shard_key(shard: Shard) -> String {
        format!("{}-{}", shard.index, shard.count)
    }

    /// Every shard's mark, by shard key (`{index}-{count}`).
    pub fn read_all(table: &dyn Table) -> Result<BTreeMap<String, StreamMark>, StreamError> {
        let mut out = BTreeMap::new();
        for r in scan_prefix(table, MARK_PREFIX.as_bytes(), 4096)? {
            let key = String::from_utf8_lossy(&r.key).into_owned();
            let Some(json) = r.cells.get(&format!("{AGG_FAMILY}:json")) else {
                continue;
            };
            let mark: StreamMark =
                serde_json::from_slice(json).map_err(|source| StreamError::Json {
                    what: key.clone(),
                    source,
                })?;
            out.insert(key[MARK_PREFIX.len()..].to_string(), mark);
        }
        Ok(out)
    }

    /// Appends `entry` to `shard`'s log as entry `batches + 1` (after any entry a crash left
    /// beyond the mark), and counts it.
    pub fn log(
        &mut self,
        tables: &dyn TableStore,
        cfg: &LoadConfig,
        shard: Shard,
        entry: &LogEntry,
    ) -> Result<(), StreamError> {
        let table = tables.table(&cfg.agg_table())?;
        let shard_key = Self::shard_key(shard);
        let key = LogEntry::key(&shard_key, self.batches + 1);
        let json = serde_json::to_vec(entry).map_err(|source| StreamError::Json {
            what: key.clone(),
            source,
        })?;
        let mut cells = Cells::new();
        cells.insert(format!("{AGG_FAMILY}:json"), json);
        table.put(&[Row {
            key: key.into_bytes(),
            cells,
        }])?;
        self.batches += 1;
        Ok(())
    }

    /// Moves `batches` past log entries a crash wrote after the mark was last saved.
    pub fn skip_unmarked(
        &mut self,
        tables: &dyn TableStore,
        cfg: &LoadConfig,
        shard: Shard,
    ) -> Result<(), StreamError> {
        let table = tables.table(&cfg.agg_table())?;
        let shard_key = Self::shard_key(shard);
        while table
            .get(LogEntry::key(&shard_key, self.batches + 1).as_bytes())?
            .is_some()
        {
            self.batches += 1;
        }
        Ok(())
    }

    /// `shard`'s mark, if it has one.
    pub fn read(
        tables: &dyn TableStore,
        cfg: &LoadConfig,
        shard: Shard,
    ) -> Result<Option<StreamMark>, StreamError> {
        let key = Self::key(shard);
        let row = tables.table(&cfg.agg_table())?.get(key.as_bytes())?;
        let Some(json) = row.and_then(|r| r.cells.get(&format!("{AGG_FAMILY}:json")).cloned())
        else {
            return Ok(None);
        };
        serde_json::from_slice(&json)
            .map(Some)
            .map_err(|source| StreamError::Json { what: key, source })
    }

    /// Writes the mark.
    pub fn put(&self, tables: &dyn TableStore, cfg: &LoadConfig) -> Result<(), StreamError> {
        let shard: Shard = self.shard.parse()?;
        let key = Self::key(shard);
        let json = serde_json::to_vec(self).map_err(|source| StreamError::Json {
            what: key.clone(),
            source,
        })?;
        let mut cells = Cells::new();
        cells.insert(format!("{AGG_FAMILY}:json"), json);
        tables.table(&cfg.agg_table())?.put(&[Row {
            key: key.into_bytes(),
            cells,
        }])?;
        Ok(())
    }
}
