//! Cleaning: raw TSV lines in, clean Parquet and a data-quality report out.
//!
//! Input is read in blocks of whole lines (about 4 MiB) that worker threads
//! parse and plan while the next ones are read, in two phases. [`block`] parses
//! each line once: it
//! counts structural problems (encoding, field count), parses the grammars
//! that matter (amount, ids, timestamp) and normalises known values, straight
//! into polars columns. A polars lazy plan then attributes each row to the first
//! rule it fails and applies the payment typo fixes. Blocks are finally
//! de-duplicated on `order_id` across the whole run and appended to Parquet in
//! input order.
//!
//! `seed_compat` reproduces the seed's Spark step: a typed TSV read (Java double
//! grammar for `amount`, lossy UTF-8, extra fields dropped, missing ones null),
//! `na.drop()` (NaN counts as null), and the two payment typo replacements.

use std::collections::{BTreeSet, HashSet};
use std::io::{Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::rules::{Fix, Rule, DEFAULT_MAX_AMOUNT_CENTS};

mod block;
pub mod profile;
mod store;
pub mod timestamp;

use block::LineCounts;
pub use store::{clean_to_memory, SharedBuf};

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
    /// [`Cleaner::finish_frames`] was called on a cleaner that writes Parquet
    /// (built with [`Cleaner::new`]), which keeps no frames.
    #[error(
        "cannot take the clean rows of {output} as frames: this cleaner writes Parquet \
         (built with Cleaner::new); build it with Cleaner::in_memory, or call finish"
    )]
    NotInMemory {
        /// The cleaner's output.
        output: String,
    },
    /// [`Cleaner::finish`] was called on a cleaner that keeps its rows in
    /// memory (built with [`Cleaner::in_memory`]), which would drop them.
    #[error(
        "cannot finish {output} as a Parquet file: this cleaner keeps its rows in memory \
         (built with Cleaner::in_memory); take them with finish_frames"
    )]
    InMemory {
        /// The cleaner's output.
        output: String,
    },
}

/// Which rules and fixes run, and the bounds the rules check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CleanConfig {
    /// Reproduce the seed's Spark semantics exactly (its rules and fixes only).
    pub seed_compat: bool,
    /// Rules switched off.
    pub disabled_rules: BTreeSet<Rule>,
    /// Fixes switched off.
    pub disabled_fixes: BTreeSet<Fix>,
    /// The largest amount kept, in cents ([`Rule::AmountOutOfRange`]).
    pub max_amount_cents: i64,
    /// The known categories: [`Rule::UnknownCategory`] drops any other, and
    /// [`Fix::NormalizedValue`] maps their case and whitespace variants to them.
    pub categories: Vec<String>,
    /// The known payment methods (checked after the typo fixes).
    pub payment_methods: Vec<String>,
    /// The known statuses.
    pub statuses: Vec<String>,
}

impl Default for CleanConfig {
    /// Every rule and fix on; the seed's values and [`DEFAULT_MAX_AMOUNT_CENTS`] as bounds.
    fn default() -> Self {
        let owned = |values: &[&str]| values.iter().map(|v| v.to_string()).collect();
        CleanConfig {
            seed_compat: false,
            disabled_rules: BTreeSet::new(),
            disabled_fixes: BTreeSet::new(),
            max_amount_cents: DEFAULT_MAX_AMOUNT_CENTS,
            categories: owned(&crate::record::CATEGORIES),
            payment_methods: owned(&crate::record::PAYMENT_METHODS),
            statuses: owned(&crate::record::STATUSES),
        }
    }
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

pub use ecom_contract::summary::QualityReport;

/// Lines per block at most (a block is parsed and planned as one polars frame).
pub const DEFAULT_CHUNK_ROWS: usize = 256 * 1024;
/// Bytes per block at most.
const BLOCK_BYTES: usize = 4 << 20;

/// Order ids seen in this run, compact for numeric ids.
#[derive(Default)]
struct SeenIds {
    numeric: HashSet<i64>,
    other: HashSet<String>,
}

/// Where a cleaner's rows go.
enum Sink<W: Write> {
    /// One Parquet file.
    Parquet(Box<polars::io::parquet::write::BatchedWriter<W>>),
    /// Frames kept in memory, in input order.
    Frames(Vec<DataFrame>),
}

/// A streaming cleaner writing one Parquet file (or, with
/// [`Cleaner::in_memory`], keeping its frames).
pub struct Cleaner<W: Write> {
    cfg: CleanConfig,
    chunk_rows: usize,
    seen: SeenIds,
    report: QualityReport,
    sink: Sink<W>,
    output: String,
    started: Instant,
}

impl Cleaner<std::io::Sink> {
    /// A cleaner that keeps the clean rows as frames ([`Cleaner::finish_frames`])
    /// for a caller that splits or writes them itself (named `output` in errors
    /// and the report).
    pub fn in_memory(cfg: CleanConfig, output: &str) -> Self {
        Self::with_sink(cfg, Sink::Frames(Vec::new()), output)
    }

    /// Returns the report and the clean rows in input order (one chunk per
    /// block), with [`frame_schema`] columns (timestamps as text). Fails with
    /// [`CleanError::NotInMemory`] on a cleaner built with [`Cleaner::new`].
    pub fn finish_frames(mut self) -> Result<(QualityReport, DataFrame), CleanError> {
        let frames = match std::mem::replace(&mut self.sink, Sink::Frames(Vec::new())) {
            Sink::Frames(frames) => frames,
            Sink::Parquet(_) => {
                return Err(CleanError::NotInMemory {
                    output: self.output,
                })
            }
        };
        let schema = frame_schema(&self.cfg);
        let pe = |source| CleanError::Polars {
            input: self.output.clone(),
            source,
        };
        let mut all = DataFrame::empty_with_schema(&schema);
        for df in &frames {
            all.vstack_mut(df).map_err(pe)?;
        }
        self.report.columns = profile::profile(&all).map_err(pe)?;
        self.report.output_files.push(self.output.clone());
        self.report.elapsed_ms = self.started.elapsed().as_millis() as u64;
        Ok((self.report, all))
    }
}

/// The schema of clean Parquet output for a configuration: ids are integers and `timestamp`
/// a Parquet timestamp in the full mode, text in `--seed-compat` ([`timestamp`]).
pub fn output_schema(cfg: &CleanConfig) -> Schema {
    let mut schema = frame_schema(cfg);
    schema.with_column("timestamp".into(), timestamp::stored_type(cfg));
    schema
}

/// The schema of clean rows in memory ([`Cleaner::finish_frames`]): as
/// [`output_schema`], with `timestamp` as text.
pub fn frame_schema(cfg: &CleanConfig) -> Schema {
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

/// A planned block, or why it could not be planned.
type Planned = PolarsResult<(DataFrame, LineCounts)>;

/// One block of whole lines (`data[range]`) to parse and plan, and where its
/// planned frame goes.
struct Job {
    data: Arc<Vec<u8>>,
    range: std::ops::Range<usize>,
    done: SyncSender<Planned>,
}

/// Blocks parsed and planned at once at most (bounds memory: each holds its raw
/// bytes and its frame).
const IN_FLIGHT: usize = 8;

/// Reads `input` in blocks of whole lines and hands each to `submit` in input
/// order; stops early (without error) when `submit` returns `false`.
fn read_blocks<R: Read>(
    chunk_rows: usize,
    mut input: R,
    name: &str,
    mut progress: impl FnMut(u64),
    mut submit: impl FnMut(Arc<Vec<u8>>, std::ops::Range<usize>) -> bool,
) -> Result<(), CleanError> {
    let mut carry: Vec<u8> = Vec::new();
    loop {
        // `carry` is the previous block's unfinished last line: no line end in it.
        let mut data = std::mem::take(&mut carry);
        data.reserve(BLOCK_BYTES + (1 << 16));
        let (cut, eof) = loop {
            let before = data.len();
            let want = BLOCK_BYTES.saturating_sub(before).max(1 << 16);
            let n = (&mut input)
                .take(want as u64)
                .read_to_end(&mut data)
                .map_err(|source| CleanError::Read {
                    input: name.to_string(),
                    source,
                })?;
            progress(n as u64);
            if n < want {
                break (data.len(), true);
            }
            if let Some(i) = memchr::memrchr(b'\n', &data[before..]) {
                break (before + i + 1, false);
            }
            // One line longer than a block so far: keep reading it.
        };
        carry.extend_from_slice(&data[cut..]);
        data.truncate(cut);
        let ranges = block::split_blocks(&data, chunk_rows, BLOCK_BYTES);
        let data = Arc::new(data);
        for range in ranges {
            if !submit(Arc::clone(&data), range) {
                return Ok(());
            }
        }
        if eof {
            return Ok(());
        }
    }
}

/// Parses and plans jobs until the queue closes.
fn plan_jobs(cfg: &CleanConfig, jobs: &Mutex<Receiver<Job>>) {
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let planned = block::parse_block(cfg, &job.data[job.range.clone()])
            .and_then(|(df, counts)| Ok((plan(cfg, df).collect()?, counts)));
        // The writer is gone when this fails; it reports why.
        let _ = job.done.send(planned);
    }
}

impl<W: Write + Send> Cleaner<W> {
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
        Ok(Self::with_sink(
            cfg,
            Sink::Parquet(Box::new(writer)),
            output,
        ))
    }

    fn with_sink(cfg: CleanConfig, sink: Sink<W>, output: &str) -> Self {
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
        Cleaner {
            cfg,
            chunk_rows: DEFAULT_CHUNK_ROWS,
            seen: SeenIds::default(),
            report,
            sink,
            output: output.to_string(),
            started: Instant::now(),
        }
    }

    /// Changes the lines per block (mainly for tests of block boundaries).
    pub fn with_chunk_rows(mut self, rows: usize) -> Self {
        self.chunk_rows = rows.max(1);
        self
    }

    /// Cleans every line of `input` (named `name` in the report); `progress`
    /// receives the number of bytes consumed as they are.
    ///
    /// Reading (this thread), parsing and planning (one worker per core, a
    /// block each) and de-duplicating and writing (one thread, in input order)
    /// overlap; at most [`IN_FLIGHT`] blocks are held at once.
    pub fn clean_reader<R: Read>(
        &mut self,
        input: R,
        name: &str,
        progress: impl FnMut(u64),
    ) -> Result<(), CleanError> {
        self.report.input_files.push(name.to_string());
        let cfg = self.cfg.clone();
        let chunk_rows = self.chunk_rows;
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let (job_tx, job_rx) = sync_channel::<Job>(IN_FLIGHT);
        let job_rx = Mutex::new(job_rx);
        let (order_tx, order_rx) = sync_channel::<Receiver<Planned>>(IN_FLIGHT);
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| plan_jobs(&cfg, &job_rx));
            }
            let writer = scope.spawn(|| -> Result<(), CleanError> {
                for next in order_rx {
                    let planned = next.recv().unwrap_or_else(|_| {
                        Err(PolarsError::ComputeError(
                            "a block's planning thread stopped without an answer".into(),
                        ))
                    });
                    let (df, counts) = planned.map_err(|source| CleanError::Polars {
                        input: name.to_string(),
                        source,
                    })?;
                    self.finish_block(df, &counts, name)?;
                }
                Ok(())
            });
            let produced = read_blocks(chunk_rows, input, name, progress, |data, range| {
                let (done, next) = sync_channel(1);
                order_tx.send(next).is_ok() && job_tx.send(Job { data, range, done }).is_ok()
            });
            drop(job_tx);
            drop(order_tx);
            let written = writer.join().unwrap_or_else(|_| {
                Err(CleanError::Write {
                    output: name.to_string(),
                    source: std::io::Error::other("the writer thread panicked"),
                })
            });
            // A writer failure explains a reader that stopped early: report it first.
            written.and(produced)
        })
    }

    /// Counts, de-duplicates and writes one planned block.
    fn finish_block(
        &mut self,
        df: DataFrame,
        counts: &LineCounts,
        input: &str,
    ) -> Result<(), CleanError> {
        let pe = |source| CleanError::Polars {
            input: input.to_string(),
            source,
        };
        let r = &mut self.report;
        r.rows_in += counts.rows_in;
        r.header_lines += counts.header_lines;
        r.blank_lines += counts.blank_lines;
        for (rule, n) in counts.drops() {
            if n > 0 {
                *r.dropped.entry(rule.name().into()).or_default() += n;
            }
        }
        let height = df.height();
        if height == 0 {
            return Ok(());
        }
        let reasons = df.column("drop_reason").and_then(|c| c.u32()).map_err(pe)?;
        // Drops per rule code (index 0: kept).
        let mut per_code = [0u64; Rule::ALL.len() + 1];
        let mask = if self.cfg.rule_on(Rule::DuplicateOrderId) {
            let order_text = df.column("order_id").and_then(|c| c.str()).map_err(pe)?;
            let order_num = df.column("order_num").and_then(|c| c.i64()).map_err(pe)?;
            let duplicate = rule_code(Rule::DuplicateOrderId);
            let keep: Vec<bool> = reasons
                .iter()
                .zip(order_num.iter().zip(order_text.iter()))
                .map(|(reason, (num, text))| {
                    let mut code = reason.unwrap_or(KEEP);
                    if code == KEEP && !self.seen.insert(num, text.unwrap_or("")) {
                        code = duplicate;
                    }
                    per_code[code as usize] += 1;
                    code == KEEP
                })
                .collect();
            BooleanChunked::from_slice("keep".into(), &keep)
        } else {
            for arr in reasons.downcast_iter() {
                for &code in arr.values().iter() {
                    per_code[code as usize] += 1;
                }
            }
            reasons.equal(KEEP)
        };
        for (rule, n) in Rule::ALL.into_iter().zip(&per_code[1..]) {
            if *n > 0 {
                *self.report.dropped.entry(rule.name().into()).or_default() += n;
            }
        }
        let (order, user) = if self.cfg.seed_compat {
            (col("order_id"), col("user_id"))
        } else {
            (
                col("order_num").alias("order_id"),
                col("user_num").alias("user_id"),
            )
        };
        let mut out = df
            .filter(&mask)
            .map_err(pe)?
            .lazy()
            .select([
                order,
                user,
                col("category"),
                col("amount_value").alias("amount"),
                col("payment_out").alias("payment_method"),
                col("status"),
                col("timestamp"),
                col("fix_credit"),
                col("fix_debit"),
                col("normalized"),
            ])
            .collect()
            .map_err(pe)?;
        for (fix, name) in [
            (Fix::CreditCardTypo, "fix_credit"),
            (Fix::DebitCardTypo, "fix_debit"),
            (Fix::NormalizedValue, "normalized"),
        ] {
            let n = out
                .drop_in_place(name)
                .and_then(|c| c.bool().map(|b| b.sum().unwrap_or(0)))
                .map_err(pe)?;
            if self.cfg.fix_on(fix) {
                *self.report.fixed.entry(fix.name().into()).or_default() += u64::from(n);
            }
        }
        self.report.rows_out += out.height() as u64;
        out.rechunk_mut();
        match &mut self.sink {
            Sink::Parquet(writer) => {
                let pe = |source| CleanError::Polars {
                    input: self.output.clone(),
                    source,
                };
                for (name, p) in profile::profile(&out).map_err(pe)? {
                    self.report.columns.entry(name).or_default().merge(&p);
                }
                let out = timestamp::to_stored(out, &self.cfg).map_err(pe)?;
                writer.write_batch(&out).map_err(pe)
            }
            Sink::Frames(frames) => {
                frames.push(out);
                Ok(())
            }
        }
    }

    /// Finishes the Parquet file and returns the report. Fails with
    /// [`CleanError::InMemory`] on a cleaner built with [`Cleaner::in_memory`]
    /// (its rows would be lost: take them with [`Cleaner::finish_frames`]).
    pub fn finish(mut self) -> Result<QualityReport, CleanError> {
        match &self.sink {
            Sink::Parquet(writer) => {
                writer.finish().map_err(|source| CleanError::Polars {
                    input: self.output.clone(),
                    source,
                })?;
            }
            Sink::Frames(_) => {
                return Err(CleanError::InMemory {
                    output: self.output,
                })
            }
        }
        self.report.output_files.push(self.output.clone());
        self.report.elapsed_ms = self.started.elapsed().as_millis() as u64;
        Ok(self.report)
    }
}

impl SeenIds {
    /// Records an id; `false` when it was seen before.
    fn insert(&mut self, numeric: Option<i64>, text: &str) -> bool {
        match numeric {
            Some(n) => self.numeric.insert(n),
            None => self.other.insert(text.to_string()),
        }
    }
}

/// `drop_reason` of a row that passes every rule.
const KEEP: u32 = 0;

/// `drop_reason` of a row dropped by `rule`: its position in [`Rule::ALL`], plus one.
fn rule_code(rule: Rule) -> u32 {
    Rule::ALL
        .iter()
        .position(|r| *r == rule)
        .map_or(KEEP, |i| i as u32 + 1)
}

/// The polars plan that attributes each row to the first rule it fails
/// (`drop_reason`, a [`rule_code`]) and applies the payment typo fixes.
fn plan(cfg: &CleanConfig, df: DataFrame) -> LazyFrame {
    let checks = [
        (col("missing"), Rule::MissingField),
        (col("amount_value").is_null(), Rule::UnparseableAmount),
        (col("id_ok").not(), Rule::UnparseableId),
        (col("amount_value").lt_eq(lit(0.0)), Rule::NonpositiveAmount),
        (col("amount_ok").not(), Rule::AmountOutOfRange),
        (col("ts_ok").not(), Rule::UnparseableTimestamp),
        (col("category_ok").not(), Rule::UnknownCategory),
        (col("payment_ok").not(), Rule::UnknownPaymentMethod),
        (col("status_ok").not(), Rule::UnknownStatus),
    ];
    let arms = checks
        .into_iter()
        .filter(|(_, rule)| cfg.rule_on(*rule))
        .map(|(cond, rule)| (cond, lit(rule_code(rule))))
        .collect();
    // Typos are fixed on the raw payment value; normalisation never maps them.
    let typo = |typo: &str, on: bool| {
        col("payment_method")
            .eq(lit(typo))
            .fill_null(lit(false))
            .and(lit(on))
    };
    let payment = case_chain(
        vec![
            (col("fix_credit"), lit("Credit Card")),
            (col("fix_debit"), lit("Debit Card")),
        ],
        col("payment_method"),
    );
    df.lazy()
        .with_columns([
            case_chain(arms, lit(KEEP))
                .cast(DataType::UInt32)
                .alias("drop_reason"),
            typo("Credit Car", cfg.fix_on(Fix::CreditCardTypo)).alias("fix_credit"),
            typo("Debit Car", cfg.fix_on(Fix::DebitCardTypo)).alias("fix_debit"),
        ])
        .with_column(payment.alias("payment_out"))
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

#[cfg(test)]
mod tests {
    use super::*;

    const LINES: &[u8] = b"1\t7\tBooks\t12.50\tCash\tPending\t2024-01-01 10:00:00\n\
                           2\t7\tBooks\t3.00\tCash\tPending\t2024-01-02 10:00:00\n";

    #[test]
    fn frames_of_a_parquet_cleaner_are_an_error() {
        let mut cleaner =
            Cleaner::new(CleanConfig::default(), std::io::sink(), "out.parquet").expect("cleaner");
        cleaner
            .clean_reader(LINES, "in.tsv", |_| {})
            .expect("clean");
        let err = cleaner
            .finish_frames()
            .expect_err("a Parquet cleaner has no frames");
        assert!(
            matches!(&err, CleanError::NotInMemory { output } if output == "out.parquet"),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains("out.parquet"), "{message}");
        assert!(message.contains("Cleaner::in_memory"), "{message}");

        // The same input through an in-memory cleaner gives its rows.
        let mut cleaner = Cleaner::in_memory(CleanConfig::default(), "memory");
        cleaner
            .clean_reader(LINES, "in.tsv", |_| {})
            .expect("clean");
        let (report, df) = cleaner.finish_frames().expect("frames");
        assert_eq!((report.rows_out, df.height()), (2, 2));
    }

    #[test]
    fn finishing_an_in_memory_cleaner_as_parquet_is_an_error() {
        let mut cleaner = Cleaner::in_memory(CleanConfig::default(), "memory");
        cleaner
            .clean_reader(LINES, "in.tsv", |_| {})
            .expect("clean");
        let err = cleaner.finish().expect_err("its rows would be dropped");
        assert!(
            matches!(&err, CleanError::InMemory { output } if output == "memory"),
            "{err:?}"
        );
        assert!(err.to_string().contains("finish_frames"), "{err}");
    }
}
