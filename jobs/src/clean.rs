//! Cleaning: raw TSV lines in, clean Parquet and a data-quality report out.
//!
//! Two phases per chunk of lines. The line parser of [`crate::record`] classifies
//! structural problems (encoding, field count) and parses the typed values whose
//! grammar matters (amount, ids, timestamp). A polars lazy plan then attributes
//! each row to the first rule it fails, applies the fixes, and the survivors are
//! de-duplicated on `order_id` across the whole run and appended to Parquet.
//!
//! `seed_compat` reproduces the seed's Spark step: a typed TSV read (Java double
//! grammar for `amount`, lossy UTF-8, extra fields dropped, missing ones null),
//! `na.drop()`, and the two payment typo replacements, nothing else.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{BufRead, Write};
use std::time::Instant;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::record::{
    self, parse_amount, parse_id, parse_java_double, trim_terminator, valid_timestamp, COLUMNS,
    FIELD_COUNT, HEADER,
};
use crate::rules::{Fix, Rule};

/// Errors of the cleaner.
#[derive(Debug, thiserror::Error)]
pub enum CleanError {
    /// Reading an input failed.
    #[error("reading {input}: {source}")]
    Read {
        /// The input being read.
        input: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A polars operation failed.
    #[error("cleaning {input} with polars: {source}")]
    Polars {
        /// The input being cleaned.
        input: String,
        /// The polars error.
        source: PolarsError,
    },
    /// Writing the output failed.
    #[error("writing {output}: {source}")]
    Write {
        /// The output being written.
        output: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Which rules and fixes run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanConfig {
    /// Reproduce the seed's Spark semantics exactly (its rules and fixes only).
    pub seed_compat: bool,
    /// Rules switched off.
    pub disabled_rules: BTreeSet<Rule>,
    /// Fixes switched off.
    pub disabled_fixes: BTreeSet<Fix>,
}

impl CleanConfig {
    /// Whether `rule` drops rows in this configuration.
    pub fn rule_on(&self, rule: Rule) -> bool {
        !self.disabled_rules.contains(&rule) && (!self.seed_compat || Rule::SEED.contains(&rule))
    }

    /// Whether `fix` rewrites values in this configuration.
    pub fn fix_on(&self, fix: Fix) -> bool {
        !self.disabled_fixes.contains(&fix) && (!self.seed_compat || fix != Fix::NormalizedValue)
    }

    /// The enabled rules, in checking order.
    pub fn rules(&self) -> Vec<Rule> {
        Rule::ALL.into_iter().filter(|r| self.rule_on(*r)).collect()
    }

    /// The enabled fixes.
    pub fn fixes(&self) -> Vec<Fix> {
        Fix::ALL.into_iter().filter(|f| self.fix_on(*f)).collect()
    }
}

/// The data-quality report of one cleaning run. `rows_in = rows_out + Σ dropped`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
}

impl QualityReport {
    /// Whether the counts add up.
    pub fn is_consistent(&self) -> bool {
        self.rows_in == self.rows_out + self.dropped.values().sum::<u64>()
    }
}

/// Rows per polars chunk (and per Parquet row group).
pub const DEFAULT_CHUNK_ROWS: usize = 256 * 1024;

#[derive(Default)]
struct Chunk {
    fields: [Vec<Option<String>>; FIELD_COUNT],
    amount: Vec<Option<f64>>,
    id_ok: Vec<bool>,
    ts_ok: Vec<bool>,
}

impl Chunk {
    fn len(&self) -> usize {
        self.amount.len()
    }
}

/// Order ids seen in this run, compact for numeric ids.
#[derive(Default)]
struct SeenIds {
    numeric: HashSet<u64>,
    other: HashSet<String>,
}

impl SeenIds {
    fn insert(&mut self, id: &str) -> bool {
        match parse_id(id) {
            Some(n) => self.numeric.insert(n as u64),
            None => self.other.insert(id.to_string()),
        }
    }
}

/// A streaming cleaner writing one Parquet file.
pub struct Cleaner<W: Write> {
    cfg: CleanConfig,
    chunk_rows: usize,
    chunk: Chunk,
    seen: SeenIds,
    report: QualityReport,
    writer: polars::io::parquet::write::BatchedWriter<W>,
    output: String,
    started: Instant,
}

/// The schema of clean Parquet output for a configuration.
pub fn output_schema(cfg: &CleanConfig) -> Schema {
    let id_type = if cfg.seed_compat {
        DataType::String
    } else {
        DataType::Int64
    };
    Schema::from_iter([
        Field::new("order_id".into(), id_type.clone()),
        Field::new("user_id".into(), id_type),
        Field::new("category".into(), DataType::String),
        Field::new("amount".into(), DataType::Float64),
        Field::new("payment_method".into(), DataType::String),
        Field::new("status".into(), DataType::String),
        Field::new("timestamp".into(), DataType::String),
    ])
}

impl<W: Write> Cleaner<W> {
    /// A cleaner writing Parquet to `writer` (named `output` in errors and the report).
    pub fn new(cfg: CleanConfig, writer: W, output: &str) -> Result<Self, CleanError> {
        let schema = output_schema(&cfg);
        let writer = ParquetWriter::new(writer)
            .with_compression(ParquetCompression::Snappy)
            .batched(&schema)
            .map_err(|source| CleanError::Polars {
                input: output.to_string(),
                source,
            })?;
        let mut report = QualityReport {
            mode: if cfg.seed_compat {
                "seed_compat"
            } else {
                "full"
            }
            .into(),
            ..Default::default()
        };
        for r in cfg.rules() {
            report.dropped.insert(r.name().into(), 0);
        }
        for f in cfg.fixes() {
            report.fixed.insert(f.name().into(), 0);
        }
        Ok(Cleaner {
            cfg,
            chunk_rows: DEFAULT_CHUNK_ROWS,
            chunk: Chunk::default(),
            seen: SeenIds::default(),
            report,
            writer,
            output: output.to_string(),
            started: Instant::now(),
        })
    }

    /// Changes the chunk size (mainly for tests of chunk boundaries).
    pub fn with_chunk_rows(mut self, rows: usize) -> Self {
        self.chunk_rows = rows.max(1);
        self
    }

    fn drop_row(&mut self, rule: Rule) {
        *self.report.dropped.entry(rule.name().into()).or_default() += 1;
    }

    /// Cleans every line of `input` (named `name` in the report).
    pub fn clean_reader<R: BufRead>(
        &mut self,
        mut input: R,
        name: &str,
        mut progress: impl FnMut(u64),
    ) -> Result<(), CleanError> {
        self.report.input_files.push(name.to_string());
        let mut line = Vec::with_capacity(256);
        loop {
            line.clear();
            let n = input
                .read_until(b'\n', &mut line)
                .map_err(|source| CleanError::Read {
                    input: name.to_string(),
                    source,
                })?;
            if n == 0 {
                break;
            }
            progress(n as u64);
            self.push_line(&line);
            if self.chunk.len() >= self.chunk_rows {
                self.flush_chunk(name)?;
            }
        }
        self.flush_chunk(name)
    }

    /// Classifies one raw line and queues it for the polars phase.
    pub fn push_line(&mut self, raw: &[u8]) {
        let line = trim_terminator(raw);
        if line.is_empty() {
            self.report.blank_lines += 1;
            return;
        }
        let text = match std::str::from_utf8(line) {
            Ok(t) => std::borrow::Cow::Borrowed(t),
            Err(_) => {
                if self.cfg.rule_on(Rule::InvalidUtf8) {
                    self.report.rows_in += 1;
                    self.drop_row(Rule::InvalidUtf8);
                    return;
                }
                String::from_utf8_lossy(line)
            }
        };
        if text == HEADER {
            self.report.header_lines += 1;
            return;
        }
        self.report.rows_in += 1;
        let count = text.split('\t').count();
        if count < FIELD_COUNT && self.cfg.rule_on(Rule::TooFewFields) {
            return self.drop_row(Rule::TooFewFields);
        }
        if count > FIELD_COUNT && self.cfg.rule_on(Rule::TooManyFields) {
            return self.drop_row(Rule::TooManyFields);
        }
        let mut fields: [Option<&str>; FIELD_COUNT] = [None; FIELD_COUNT];
        for (slot, part) in fields.iter_mut().zip(text.split('\t')) {
            *slot = Some(part);
        }
        let amount_text = fields[record::col::AMOUNT].unwrap_or("");
        let amount = if self.cfg.seed_compat {
            parse_java_double(amount_text)
        } else {
            parse_amount(amount_text)
        };
        let ids_ok = [record::col::ORDER_ID, record::col::USER_ID]
            .iter()
            .all(|c| fields[*c].and_then(parse_id).is_some());
        let ts_ok = fields[record::col::TIMESTAMP].is_some_and(valid_timestamp);
        for (col, value) in self.chunk.fields.iter_mut().zip(fields) {
            col.push(value.map(str::to_string));
        }
        self.chunk.amount.push(amount);
        self.chunk.id_ok.push(ids_ok);
        self.chunk.ts_ok.push(ts_ok);
    }

    /// The polars plan that attributes drops and applies fixes.
    fn plan(&self, df: DataFrame) -> LazyFrame {
        let c = &self.cfg;
        let missing = COLUMNS
            .iter()
            .map(|name| col(*name).is_null().or(col(*name).eq(lit(""))))
            .reduce(|a, b| a.or(b))
            .unwrap_or(lit(false));
        let checks = [
            (missing, Rule::MissingField),
            (col("amount_value").is_null(), Rule::UnparseableAmount),
            (col("id_ok").not(), Rule::UnparseableId),
            (col("amount_value").lt_eq(lit(0.0)), Rule::NonpositiveAmount),
            (col("ts_ok").not(), Rule::UnparseableTimestamp),
        ];
        let arms = checks
            .into_iter()
            .filter(|(_, rule)| c.rule_on(*rule))
            .map(|(cond, rule)| (cond, lit(rule.name())))
            .collect();
        let mut exprs = vec![case_chain(arms, lit("")).alias("drop_reason")];

        let normalize = c.fix_on(Fix::NormalizedValue);
        let mut norm_flags = Vec::new();
        for (name, known) in [
            ("category", &record::CATEGORIES[..]),
            ("payment_method", &record::PAYMENT_METHODS[..]),
            ("status", &record::STATUSES[..]),
        ] {
            let value = if normalize {
                let lowered = col(name).str().strip_chars(lit(NULL)).str().to_lowercase();
                let arms = known
                    .iter()
                    .map(|k| (lowered.clone().eq(lit(k.to_lowercase())), lit(*k)))
                    .collect();
                case_chain(arms, col(name))
            } else {
                col(name)
            };
            norm_flags.push(value.clone().neq(col(name)).fill_null(lit(false)));
            exprs.push(value.alias(format!("{name}_out")));
        }
        exprs.push(
            norm_flags
                .into_iter()
                .reduce(|a, b| a.or(b))
                .unwrap_or(lit(false))
                .alias("fix_normalized"),
        );
        // Typos are fixed on the raw payment value; normalization never maps them.
        let typo = |typo: &str, on: bool| {
            col("payment_method")
                .eq(lit(typo))
                .fill_null(lit(false))
                .and(lit(on))
        };
        exprs.push(typo("Credit Car", c.fix_on(Fix::CreditCardTypo)).alias("fix_credit"));
        exprs.push(typo("Debit Car", c.fix_on(Fix::DebitCardTypo)).alias("fix_debit"));
        let payment = case_chain(
            vec![
                (col("fix_credit"), lit("Credit Card")),
                (col("fix_debit"), lit("Debit Card")),
            ],
            col("payment_method_out"),
        );
        df.lazy()
            .with_columns(exprs)
            .with_column(payment.alias("payment_method_out"))
    }

    fn flush_chunk(&mut self, input: &str) -> Result<(), CleanError> {
        if self.chunk.len() == 0 {
            return Ok(());
        }
        let chunk = std::mem::take(&mut self.chunk);
        let pe = |source| CleanError::Polars {
            input: input.to_string(),
            source,
        };
        let height = chunk.len();
        let mut columns: Vec<Column> = COLUMNS
            .iter()
            .zip(chunk.fields)
            .map(|(name, values)| Column::new((*name).into(), values))
            .collect();
        columns.push(Column::new("amount_value".into(), chunk.amount));
        columns.push(Column::new("id_ok".into(), chunk.id_ok));
        columns.push(Column::new("ts_ok".into(), chunk.ts_ok));
        let df = DataFrame::new(height, columns).map_err(pe)?;
        let df = self.plan(df).collect().map_err(pe)?;

        let reasons = df.column("drop_reason").and_then(|c| c.str()).map_err(pe)?;
        let order_ids = df.column("order_id").and_then(|c| c.str()).map_err(pe)?;
        let flag = |name: &str| -> Result<BooleanChunked, CleanError> {
            Ok(df.column(name).and_then(|c| c.bool()).map_err(pe)?.clone())
        };
        let (f_norm, f_credit, f_debit) = (
            flag("fix_normalized")?,
            flag("fix_credit")?,
            flag("fix_debit")?,
        );
        let dedup = self.cfg.rule_on(Rule::DuplicateOrderId);
        let mut keep = Vec::with_capacity(height);
        let mut dropped: BTreeMap<&str, u64> = BTreeMap::new();
        let mut fixed = [0u64; 3];
        for i in 0..height {
            let reason = reasons.get(i).unwrap_or("");
            if !reason.is_empty() {
                *dropped.entry(reason).or_default() += 1;
                keep.push(false);
                continue;
            }
            if dedup && !self.seen.insert(order_ids.get(i).unwrap_or("")) {
                *dropped.entry(Rule::DuplicateOrderId.name()).or_default() += 1;
                keep.push(false);
                continue;
            }
            keep.push(true);
            for (n, f) in fixed.iter_mut().zip([&f_credit, &f_debit, &f_norm]) {
                *n += u64::from(f.get(i).unwrap_or(false));
            }
        }
        for (rule, n) in dropped {
            *self.report.dropped.entry(rule.to_string()).or_default() += n;
        }
        for (fix, n) in [
            Fix::CreditCardTypo,
            Fix::DebitCardTypo,
            Fix::NormalizedValue,
        ]
        .into_iter()
        .zip(fixed)
        {
            if self.cfg.fix_on(fix) {
                *self.report.fixed.entry(fix.name().into()).or_default() += n;
            }
        }
        let mask = BooleanChunked::from_slice("keep".into(), &keep);
        let kept = df.filter(&mask).map_err(pe)?;
        let id_type = if self.cfg.seed_compat {
            DataType::String
        } else {
            DataType::Int64
        };
        let mut out = kept
            .lazy()
            .select([
                col("order_id").cast(id_type.clone()),
                col("user_id").cast(id_type),
                col("category_out").alias("category"),
                col("amount_value").alias("amount"),
                col("payment_method_out").alias("payment_method"),
                col("status_out").alias("status"),
                col("timestamp"),
            ])
            .collect()
            .map_err(pe)?;
        self.report.rows_out += out.height() as u64;
        out.rechunk_mut();
        self.writer
            .write_batch(&out)
            .map_err(|source| CleanError::Polars {
                input: self.output.clone(),
                source,
            })
    }

    /// Finishes the Parquet file and returns the report.
    pub fn finish(mut self) -> Result<QualityReport, CleanError> {
        self.writer.finish().map_err(|source| CleanError::Polars {
            input: self.output.clone(),
            source,
        })?;
        self.report.output_files.push(self.output.clone());
        self.report.elapsed_ms = self.started.elapsed().as_millis() as u64;
        Ok(self.report)
    }
}

/// `when(c1).then(v1).when(c2).then(v2)…otherwise(default)`; `default` alone when no arm.
fn case_chain(arms: Vec<(Expr, Expr)>, default: Expr) -> Expr {
    let mut arms = arms.into_iter();
    let Some((c0, v0)) = arms.next() else {
        return default;
    };
    let first = when(c0).then(v0);
    let Some((c1, v1)) = arms.next() else {
        return first.otherwise(default);
    };
    let mut chain = first.when(c1).then(v1);
    for (c, v) in arms {
        chain = chain.when(c).then(v);
    }
    chain.otherwise(default)
}

/// Errors of cleaning files held in a [`FileStore`].
#[derive(Debug, thiserror::Error)]
pub enum CleanStoreError {
    /// Cleaning failed.
    #[error(transparent)]
    Clean(#[from] CleanError),
    /// The file store failed.
    #[error("file store: {0}")]
    Files(#[from] crate::store::FileStoreError),
    /// The report could not be encoded.
    #[error("encoding the quality report: {0}")]
    Report(#[from] serde_json::Error),
}

/// Name of the Parquet file a clean run writes in its output directory.
pub const CLEAN_PART: &str = "part-00000.parquet";
/// Name of the quality report beside it.
pub const REPORT_FILE: &str = "report.json";

/// Cleans every raw file under `raw_dir` into `clean_dir/part-00000.parquet` and
/// `clean_dir/report.json`, each written atomically.
pub fn clean_store(
    files: &dyn crate::store::FileStore,
    raw_dir: &str,
    clean_dir: &str,
    cfg: CleanConfig,
    mut progress: impl FnMut(u64),
) -> Result<QualityReport, CleanStoreError> {
    let out_path = format!("{clean_dir}/{CLEAN_PART}");
    let mut inputs = Vec::new();
    for entry in files.list(raw_dir)? {
        inputs.push((files.describe(&entry.path), files.read(&entry.path)?));
    }
    let (report, parquet) = clean_to_memory(
        cfg,
        inputs.iter().map(|(n, d)| (n.clone(), d.as_slice())),
        &files.describe(&out_path),
        &mut progress,
    )?;
    files.write_atomic(&out_path, &parquet)?;
    files.write_atomic(
        &format!("{clean_dir}/{REPORT_FILE}"),
        &serde_json::to_vec_pretty(&report)?,
    )?;
    Ok(report)
}

/// An in-memory Parquet destination whose bytes can be taken after `finish`.
#[derive(Clone, Default)]
pub struct SharedBuf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl SharedBuf {
    /// Takes the bytes written so far.
    pub fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }
}

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("parquet buffer lock poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Cleans `inputs` (name, bytes) into in-memory Parquet; returns the report and the bytes.
pub fn clean_to_memory<'a>(
    cfg: CleanConfig,
    inputs: impl IntoIterator<Item = (String, &'a [u8])>,
    output: &str,
    mut progress: impl FnMut(u64),
) -> Result<(QualityReport, Vec<u8>), CleanError> {
    let buf = SharedBuf::default();
    let mut cleaner = Cleaner::new(cfg, buf.clone(), output)?;
    for (name, data) in inputs {
        cleaner.clean_reader(data, &name, &mut progress)?;
    }
    let report = cleaner.finish()?;
    Ok((report, buf.take()))
}
