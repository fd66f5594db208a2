//! What a stage reports when it ends: a JSON object on the last line of standard output,
//! also written to the pod's termination message, where the operator reads its counts.
//!
//! Every summary is a [`Summary`] of one stage's detail ([`ProduceDetail`], [`SinkDetail`],
//! [`CleanDetail`], [`LoadDetail`], [`PurgeDetail`]). Fields default when absent, so a
//! summary shortened to fit a termination message still deserialises.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The stage a summary is of.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum StageName {
    /// `ecom produce`.
    Produce,
    /// `ecom sink`.
    Sink,
    /// `ecom clean`.
    Clean,
    /// `ecom load`.
    Load,
    /// `ecom purge`.
    Purge,
    /// `ecom stream`.
    Stream,
}

impl StageName {
    /// The subcommand's name.
    pub fn as_str(self) -> &'static str {
        match self {
            StageName::Produce => "produce",
            StageName::Sink => "sink",
            StageName::Clean => "clean",
            StageName::Load => "load",
            StageName::Purge => "purge",
            StageName::Stream => "stream",
        }
    }
}

/// A stage's summary: how it ended, and what it did (`detail`, absent when it failed).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Summary<T> {
    /// The stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<StageName>,
    /// Whether it succeeded.
    #[serde(default)]
    pub ok: bool,
    /// Attempts made (retries of transient failures included).
    #[serde(default)]
    pub attempts: u32,
    /// Wall-clock time of a successful run, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elapsed_ms: Option<u64>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What it did, when it succeeded.
    #[serde(flatten)]
    pub detail: Option<T>,
}

impl<T: DeserializeOwned> Summary<T> {
    /// The summary on the last non-empty line of `text` (a termination message, or a stage's
    /// standard output); `None` when that line is not a JSON object of this shape.
    pub fn from_last_line(text: &str) -> Option<Self> {
        let line = text.lines().rev().find(|l| !l.trim().is_empty())?;
        serde_json::from_str(line.trim()).ok()
    }
}

/// `ecom produce`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct ProduceDetail {
    /// The file read, or a description of the generated rows.
    pub input: String,
    /// Topic.
    pub topic: String,
    /// Bootstrap servers.
    pub bootstrap: String,
    /// Partitions of the topic.
    pub partitions: u32,
    /// Records sent.
    pub records: u64,
    /// Records the broker acknowledged.
    pub delivered: u64,
    /// Records the broker refused.
    pub failed: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Header lines skipped.
    pub header_lines: u64,
    /// Blank lines skipped.
    pub blank_lines: u64,
    /// Records skipped because they are larger than the producer accepts (key and value over
    /// `max_record_bytes`); the others were sent.
    pub oversize_records: u64,
    /// Bytes of the lines of those records.
    pub oversize_bytes: u64,
    /// The largest record (key and value) sent: Kafka's `message.max.bytes` less the
    /// record's framing.
    pub max_record_bytes: u64,
    /// Records per second over the run.
    pub records_per_second: f64,
}

/// `ecom sink`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct SinkDetail {
    /// Topic.
    pub topic: String,
    /// Where the raw files went.
    pub output: String,
    /// Records written in this run.
    pub records: u64,
    /// Files committed in this run.
    pub files: u64,
    /// Offset each partition resumed from.
    pub resumed_from: BTreeMap<String, u64>,
    /// Gaps skipped in the partitions' offsets (`--skip-offset-gaps`; without it a gap fails
    /// the sink).
    pub offset_gaps: u64,
    /// Offsets skipped over those gaps: records deleted (by retention) before they were read.
    pub skipped_offsets: u64,
    /// Records per second over the run.
    pub records_per_second: f64,
}

/// `ecom stream` (the summary of a streaming run that stopped).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct StreamDetail {
    /// Topic.
    pub topic: String,
    /// The shard, `INDEX/COUNT`.
    pub shard: String,
    /// Partition (as text) -> the offset it resumed from.
    pub resumed_from: BTreeMap<String, u64>,
    /// Runs committed before a restart and loaded on start.
    pub recovered_runs: u64,
    /// Raw files committed before a restart and cleaned on start.
    pub recovered_files: u64,
    /// Micro-batches committed.
    pub batches: u64,
    /// Records read.
    pub records: u64,
    /// Clean rows loaded.
    pub rows: u64,
    /// Rows dropped as duplicates of an earlier micro-batch.
    pub cross_batch_duplicates: u64,
    /// Largest end-to-end lag of a micro-batch, milliseconds.
    pub max_lag_ms: Option<u64>,
    /// Gaps skipped in the partitions' offsets (`--skip-offset-gaps`).
    pub offset_gaps: u64,
    /// Offsets skipped over those gaps: records deleted before they were read.
    pub skipped_offsets: u64,
}

/// The data-quality report of one cleaning run. `rows_in = rows_out + Σ dropped`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct QualityReport {
    /// `full` or `seed_compat`.
    pub mode: String,
    /// Data rows read (header and blank lines excluded).
    pub rows_in: u64,
    /// Rows written.
    pub rows_out: u64,
    /// Rows dropped per rule (every enabled rule is listed, zero included).
    pub dropped: BTreeMap<String, u64>,
    /// Rows fixed per fix (every enabled fix is listed).
    pub fixed: BTreeMap<String, u64>,
    /// Header lines skipped.
    pub header_lines: u64,
    /// Empty lines skipped (they carry no data).
    pub blank_lines: u64,
    /// Inputs, in the order they were read.
    pub input_files: Vec<String>,
    /// Outputs written.
    pub output_files: Vec<String>,
    /// Wall-clock time of the run.
    pub elapsed_ms: u64,
    /// Aggregates of each clean column (by name), so that a reader of the clean layer can
    /// check what it reads against what the cleaner wrote.
    pub columns: BTreeMap<String, ColumnProfile>,
}

/// Distinct values a [`ColumnProfile`] counts at most; a column with more has no `values`.
pub const PROFILE_MAX_VALUES: usize = 64;

/// A value bound of a column: an integer, a decimal or a text (timestamps as
/// `YYYY-MM-DD HH:MM:SS`).
#[derive(Debug, Clone, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Bound {
    /// An integer (ids in full mode).
    Int(i64),
    /// A decimal (amounts).
    Float(f64),
    /// A text (ids in seed-compat mode, timestamps).
    Text(String),
}

/// Aggregates of one clean column.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ColumnProfile {
    /// Rows with a value.
    pub non_null: u64,
    /// The smallest value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<Bound>,
    /// The largest value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<Bound>,
    /// The sum of a decimal column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sum: Option<f64>,
    /// Rows per value of a text column of few values (at most [`PROFILE_MAX_VALUES`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<BTreeMap<String, u64>>,
}

impl ColumnProfile {
    /// Adds `other` (the same column of more rows) to this profile.
    pub fn merge(&mut self, other: &ColumnProfile) {
        let first = self.non_null == 0;
        self.non_null += other.non_null;
        let pick = |a: &mut Option<Bound>, b: &Option<Bound>, smaller: bool| {
            if let Some(b) = b {
                let replace = match a {
                    None => true,
                    Some(a) if smaller => b < a,
                    Some(a) => b > a,
                };
                if replace {
                    *a = Some(b.clone());
                }
            }
        };
        pick(&mut self.min, &other.min, true);
        pick(&mut self.max, &other.max, false);
        self.sum = match (self.sum, other.sum) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        self.values = match (self.values.take(), &other.values) {
            (Some(mut a), Some(b)) => {
                for (v, n) in b {
                    *a.entry(v.clone()).or_default() += n;
                }
                (a.len() <= PROFILE_MAX_VALUES).then_some(a)
            }
            // A side past the cap (or a text column on one side only) has no counts to add.
            (None, Some(b)) if first => Some(b.clone()),
            _ => None,
        };
    }
}

impl QualityReport {
    /// Whether the counts add up.
    pub fn is_consistent(&self) -> bool {
        self.rows_in == self.rows_out + self.dropped.values().sum::<u64>()
    }

    /// Adds the counts, files and time of `other` (a later run) to this one.
    pub fn merge(&mut self, other: &QualityReport) {
        if self.mode.is_empty() {
            self.mode = other.mode.clone();
        }
        self.rows_in += other.rows_in;
        self.rows_out += other.rows_out;
        for (rule, n) in &other.dropped {
            *self.dropped.entry(rule.clone()).or_default() += n;
        }
        for (fix, n) in &other.fixed {
            *self.fixed.entry(fix.clone()).or_default() += n;
        }
        self.header_lines += other.header_lines;
        self.blank_lines += other.blank_lines;
        self.input_files.extend(other.input_files.iter().cloned());
        self.output_files.extend(other.output_files.iter().cloned());
        self.elapsed_ms += other.elapsed_ms;
        for (name, profile) in &other.columns {
            self.columns.entry(name.clone()).or_default().merge(profile);
        }
    }
}

/// What one incremental cleaning run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CleanRunSummary {
    /// Run id, `None` when there was nothing new to clean.
    pub run: Option<String>,
    /// Shard.
    pub shard: String,
    /// Raw files of this shard already cleaned by earlier runs.
    pub already_cleaned: u64,
    /// Raw files cleaned now.
    pub raw_files: u64,
    /// Rows kept by this run that earlier runs had already kept (dropped).
    pub cross_run_duplicates: u64,
    /// Raw files of this shard left for a later run (beyond the run's byte limit).
    pub pending_after: u64,
    /// The quality report of this run (default when nothing was cleaned).
    pub report: QualityReport,
}

impl CleanRunSummary {
    /// Adds a later run of the same command: its run id and what is left pending
    /// replace this one's (when it cleaned anything), counts and reports add up,
    /// and `already_cleaned` stays what the first run found.
    pub fn merge(&mut self, later: CleanRunSummary) {
        if later.run.is_some() {
            self.run = later.run;
            self.pending_after = later.pending_after;
        }
        self.raw_files += later.raw_files;
        self.cross_run_duplicates += later.cross_run_duplicates;
        self.report.merge(&later.report);
    }
}

/// `ecom clean`: its runs merged (`run` is the last).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct CleanDetail {
    /// Where the raw files were read.
    pub input: String,
    /// Where the runs were committed.
    pub output: String,
    /// Ids of the runs committed, in order.
    pub runs: Vec<String>,
    /// Clean Parquet files the runs committed.
    pub files: u64,
    /// The runs' counts and reports, merged.
    #[serde(flatten)]
    pub total: CleanRunSummary,
}

/// `ecom load`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct LoadDetail {
    /// The clean directory.
    pub input: String,
    /// Fact table.
    pub table: String,
    /// Aggregates table.
    pub agg_table: String,
    /// Where the tables are (a Thrift address, or the embedded store's file).
    pub thrift: String,
    /// `INDEX/COUNT` share of the files.
    pub shard: String,
    /// Committed clean runs found.
    pub runs: u64,
    /// Date partitions of this shard.
    pub partitions: u64,
    /// Files loaded (loading them again rewrites the same cells).
    pub files: u64,
    /// Rows loaded.
    pub rows: u64,
    /// Rows per second over the run.
    pub rows_per_second: f64,
}

/// `ecom purge`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct PurgeDetail {
    /// Directories deleted.
    pub paths: Vec<String>,
    /// Tables dropped (if they existed).
    pub tables: Vec<String>,
    /// Directories and tables kept because they do not carry the pipeline's identity, each
    /// with the reason.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<String>,
}

/// The counts the operator keeps of a stage's run (the `summary` of its status), summed over
/// its shards.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct StageCounts {
    /// Records produced (produce) or written to raw files (sink).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<i64>,
    /// Rows cleaning read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_in: Option<i64>,
    /// Rows cleaning kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_out: Option<i64>,
    /// Rows cleaning dropped, per rule.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dropped: BTreeMap<String, i64>,
    /// Rows loaded into HBase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<i64>,
    /// Files written (sink), committed (clean runs' partitions) or loaded (load).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<i64>,
}

/// A count as the status's integer.
fn count(n: u64) -> Option<i64> {
    Some(i64::try_from(n).unwrap_or(i64::MAX))
}

fn add(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.saturating_add(b)),
        (a, b) => a.or(b),
    }
}

impl StageCounts {
    /// The counts of one pod's summary (its last line), read as `stage`'s; `None` when the
    /// text holds no summary.
    pub fn from_message(stage: StageName, text: &str) -> Option<StageCounts> {
        fn detail<T: DeserializeOwned + Default>(text: &str) -> Option<T> {
            Some(
                Summary::<T>::from_last_line(text)?
                    .detail
                    .unwrap_or_default(),
            )
        }
        Some(match stage {
            StageName::Produce => {
                let d: ProduceDetail = detail(text)?;
                StageCounts {
                    records: count(d.records),
                    ..StageCounts::default()
                }
            }
            StageName::Sink => {
                let d: SinkDetail = detail(text)?;
                StageCounts {
                    records: count(d.records),
                    files: count(d.files),
                    ..StageCounts::default()
                }
            }
            StageName::Clean => {
                let d: CleanDetail = detail(text)?;
                let report = &d.total.report;
                StageCounts {
                    rows_in: count(report.rows_in),
                    rows_out: count(report.rows_out),
                    dropped: report
                        .dropped
                        .iter()
                        .filter_map(|(rule, n)| Some((rule.clone(), count(*n)?)))
                        .collect(),
                    files: count(d.files),
                    ..StageCounts::default()
                }
            }
            StageName::Load => {
                let d: LoadDetail = detail(text)?;
                StageCounts {
                    rows: count(d.rows),
                    files: count(d.files),
                    ..StageCounts::default()
                }
            }
            StageName::Purge => {
                detail::<PurgeDetail>(text)?;
                StageCounts::default()
            }
            StageName::Stream => {
                let d: StreamDetail = detail(text)?;
                StageCounts {
                    records: count(d.records),
                    rows: count(d.rows),
                    ..StageCounts::default()
                }
            }
        })
    }

    /// Adds another shard's counts.
    pub fn add(&mut self, other: &StageCounts) {
        self.records = add(self.records, other.records);
        self.rows_in = add(self.rows_in, other.rows_in);
        self.rows_out = add(self.rows_out, other.rows_out);
        self.rows = add(self.rows, other.rows);
        self.files = add(self.files, other.files);
        for (rule, n) in &other.dropped {
            let slot = self.dropped.entry(rule.clone()).or_default();
            *slot = slot.saturating_add(*n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_summary_round_trips_and_gives_its_counts() {
        let mut report = QualityReport {
            rows_in: 10,
            rows_out: 8,
            ..QualityReport::default()
        };
        report.dropped.insert("missing_field".into(), 2);
        let summary = Summary {
            stage: Some(StageName::Clean),
            ok: true,
            attempts: 1,
            elapsed_ms: Some(5),
            error: None,
            detail: Some(CleanDetail {
                input: "hdfs://nn/raw".into(),
                output: "hdfs://nn/clean".into(),
                runs: vec!["r1".into()],
                files: 1,
                total: CleanRunSummary {
                    run: Some("r1".into()),
                    report,
                    ..CleanRunSummary::default()
                },
            }),
        };
        let line = serde_json::to_string(&summary).expect("serialise");
        let value: serde_json::Value = serde_json::from_str(&line).expect("json");
        assert_eq!(value["report"]["rows_in"], 10, "{line}");
        assert_eq!(value["stage"], "clean", "{line}");
        let back = Summary::<CleanDetail>::from_last_line(&format!("a log line\n{line}\n"));
        assert_eq!(back.as_ref(), Some(&summary));
        let counts = StageCounts::from_message(StageName::Clean, &line).expect("counts");
        assert_eq!((counts.rows_in, counts.rows_out), (Some(10), Some(8)));
        assert_eq!(counts.dropped["missing_field"], 2);
    }

    #[test]
    fn a_failure_has_no_detail_and_shards_add_up() {
        let failed: Summary<LoadDetail> =
            serde_json::from_str(r#"{"stage":"load","ok":false,"attempts":3,"error":"gone"}"#)
                .expect("parse");
        assert_eq!(failed.error.as_deref(), Some("gone"));
        let mut total = StageCounts::from_message(StageName::Load, r#"{"rows":5,"files":1}"#)
            .expect("first shard");
        let second = StageCounts::from_message(StageName::Load, r#"{"rows":7,"files":2}"#)
            .expect("second shard");
        total.add(&second);
        assert_eq!((total.rows, total.files), (Some(12), Some(3)));
        assert!(StageCounts::from_message(StageName::Load, "no summary").is_none());
    }
}
