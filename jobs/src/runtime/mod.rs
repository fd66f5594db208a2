//! The stage runtime every `ecom` stage runs in: attempts with exponential backoff on
//! transient failures (decided by [`crate::retry`]), a deadline with a watchdog for calls
//! stuck past it, and a typed [`Summary`] printed as the last line of standard output and
//! written to the pod's termination message ([`report`]); stopping on SIGTERM ([`signal`]).
//!
//! Stages are idempotent (the sink resumes from its committed files, clean from its manifest,
//! load rewrites the same cells), so an attempt resumes where the last one stopped.

pub mod clock;
pub mod report;
pub mod signal;
pub mod ticker;

use std::error::Error as StdError;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ecom_contract::summary::{StageName, Summary};
use serde::Serialize;

pub use clock::{parse_duration, BadDuration, Clock};
pub use ticker::Ticker;

use crate::incremental::Shard;
use crate::retry::{classify, ErrorClass};

/// What `--deadline` bounds for a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// The whole stage, retries included; a watchdog ends a call stuck past it.
    WholeRun,
    /// Only a streak of failures (a continuous stage has no natural end): an attempt that ran
    /// longer than the deadline before it failed starts a fresh budget of time and attempts.
    FailureStreak,
}

/// Whether a failed attempt may be followed by another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Transient failures are retried (the stage is idempotent).
    Transient,
    /// Never (a second attempt would repeat side effects, as produce's records).
    Never,
}

/// Where the summary goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// Standard output, and this termination-message file when given.
    Print {
        /// The file (see [`report::summary_path`]).
        file: Option<PathBuf>,
    },
    /// Nowhere: the caller has the returned summary.
    Silent,
}

/// How a stage runs.
#[derive(Debug, Clone)]
pub struct StageOptions {
    /// The stage.
    pub stage: StageName,
    /// `--deadline`.
    pub deadline: Duration,
    /// `--attempts` (at least one is made).
    pub attempts: u32,
    /// Whether failures are retried.
    pub retry: Retry,
    /// What the deadline bounds.
    pub budget: Budget,
    /// The wait after the first failure; it doubles up to 30 s.
    pub first_backoff: Duration,
    /// Where the summary goes.
    pub report: Report,
}

impl StageOptions {
    /// A stage whose deadline bounds the whole run, retried, printing its summary.
    pub fn new(stage: StageName, deadline: Duration, attempts: u32) -> Self {
        StageOptions {
            stage,
            deadline,
            attempts,
            retry: Retry::Transient,
            budget: Budget::WholeRun,
            first_backoff: Duration::from_secs(1),
            report: Report::Print { file: None },
        }
    }
}

/// What the runtime needs of a stage's error: its class and a one-line message.
pub trait StageFailure {
    /// Whether another attempt can succeed.
    fn class(&self) -> ErrorClass;
    /// The error and its causes on one line.
    fn message(&self) -> String;
}

impl StageFailure for Box<dyn StdError + Send + Sync + 'static> {
    fn class(&self) -> ErrorClass {
        classify(self.as_ref())
    }
    fn message(&self) -> String {
        let first: &(dyn StdError + 'static) = self.as_ref();
        chain_message(std::iter::successors(Some(first), |&e| e.source()))
    }
}

/// Errors and their causes on one line, each text once: this crate's errors print their
/// source in their own message and also expose it as the cause, so a cause already contained
/// in the text so far is left out.
pub fn chain_message<'a>(chain: impl Iterator<Item = &'a (dyn StdError + 'static)>) -> String {
    let mut out = String::new();
    for cause in chain {
        let text = cause.to_string();
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// A stage that failed for good; its summary has been reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageFailed {
    /// The stage.
    pub stage: StageName,
    /// Why, with how the retries ended.
    pub error: String,
}

impl fmt::Display for StageFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed: {}", self.stage.as_str(), self.error)
    }
}

impl StdError for StageFailed {}

/// Reports `summary` as `report` says.
fn report<T: Serialize>(report: &Report, summary: &Summary<T>) {
    if let Report::Print { file } = report {
        match serde_json::to_value(summary) {
            Ok(v) => report::emit(&v, file.as_deref()),
            Err(e) => tracing::error!(error = %e, "cannot serialise the stage summary"),
        }
    }
}

/// A failed stage's summary.
fn failed(stage: StageName, attempts: u32, error: String) -> Summary<()> {
    Summary {
        stage: Some(stage),
        ok: false,
        attempts,
        elapsed_ms: None,
        error: Some(error),
        detail: None,
    }
}

/// Ends the process once the deadline (and a grace period) has passed without `finished`:
/// a call stuck in a client library still ends the stage, with its summary.
fn spawn_watchdog(opts: &StageOptions, finished: Arc<AtomicBool>) {
    let opts = opts.clone();
    let grace = Duration::from_secs(5);
    std::thread::spawn(move || {
        std::thread::sleep(opts.deadline + grace);
        if !finished.load(Ordering::SeqCst) {
            let error = format!(
                "deadline of {:?} exceeded (the last attempt was still waiting on a service)",
                opts.deadline
            );
            tracing::error!(stage = opts.stage.as_str(), "{error}");
            report(&opts.report, &failed(opts.stage, 0, error.clone()));
            eprintln!("error: {} failed: {error}", opts.stage.as_str());
            std::process::exit(2);
        }
    });
}

/// Runs `body` (given the clock and the attempt number, from 1) until it succeeds, fails
/// permanently, runs out of attempts or out of time; reports and returns the summary.
pub fn run_stage<T, E, F>(opts: &StageOptions, mut body: F) -> Result<Summary<T>, StageFailed>
where
    T: Serialize,
    E: StageFailure,
    F: FnMut(&Clock, u32) -> Result<T, E>,
{
    let started = Instant::now();
    let mut clock = Clock::new(opts.deadline);
    let finished = Arc::new(AtomicBool::new(false));
    if opts.budget == Budget::WholeRun && matches!(opts.report, Report::Print { .. }) {
        spawn_watchdog(opts, finished.clone());
    }
    let retry = opts.retry == Retry::Transient;
    let mut backoff = opts.first_backoff;
    let mut attempt = 1;
    let mut attempts_total = 0;
    loop {
        let attempt_start = Instant::now();
        attempts_total += 1;
        let result = body(&clock, attempt);
        if result.is_err()
            && opts.budget == Budget::FailureStreak
            && attempt_start.elapsed() > opts.deadline
        {
            // It ran well for a long time before failing: a new streak begins now (from the
            // attempt's start, the whole deadline would already be spent).
            clock.start = Instant::now();
            attempt = 1;
            backoff = opts.first_backoff;
        }
        let e = match result {
            Ok(detail) => {
                finished.store(true, Ordering::SeqCst);
                let summary = Summary {
                    stage: Some(opts.stage),
                    ok: true,
                    attempts: attempts_total,
                    elapsed_ms: Some(started.elapsed().as_millis() as u64),
                    error: None,
                    detail: Some(detail),
                };
                report(&opts.report, &summary);
                return Ok(summary);
            }
            Err(e) => e,
        };
        let permanent = retry && e.class() == ErrorClass::Permanent;
        let out_of_time = clock.remaining() <= backoff;
        if permanent || !retry || attempt >= opts.attempts.max(1) || out_of_time {
            finished.store(true, Ordering::SeqCst);
            let why = if permanent && attempt == 1 {
                " (permanent error, not retried)".to_string()
            } else if permanent {
                format!(" (permanent error on attempt {attempt}, not retried)")
            } else if out_of_time && retry {
                format!(" (deadline of {:?} reached)", opts.deadline)
            } else if retry {
                format!(" (after {attempt} attempts)")
            } else {
                String::new()
            };
            let error = format!("{}{why}", e.message());
            let summary = failed(opts.stage, attempts_total, error.clone());
            report(&opts.report, &summary);
            return Err(StageFailed {
                stage: opts.stage,
                error,
            });
        }
        tracing::warn!(stage = opts.stage.as_str(), attempt, error = %e.message(), retry_in = ?backoff, "stage failed, retrying");
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_secs(30));
        attempt += 1;
    }
}

/// A shard flag resolved: `INDEX/COUNT`, or `COUNT` alone with INDEX from `completion_index`
/// (the `JOB_COMPLETION_INDEX` Kubernetes gives each pod of an Indexed Job, or the pod index
/// of a StatefulSet's pod in `ECOM_SHARD_INDEX`); the whole input without a flag.
pub fn resolve_shard(
    flag: Option<&str>,
    completion_index: Option<&str>,
) -> Result<Shard, ShardError> {
    let parse = |s: &str| {
        s.parse::<Shard>()
            .map_err(|e| ShardError(format!("--shard {s}: {e}")))
    };
    match (flag, completion_index) {
        (None, _) => Ok(Shard::default()),
        (Some(s), _) if s.contains('/') && !s.starts_with('/') => parse(s),
        (Some(s), Some(i)) => parse(&format!("{i}/{}", s.trim_start_matches('/'))),
        (Some(s), None) => Err(ShardError(format!(
            "--shard {s}: give INDEX/COUNT, or COUNT with {} or {} set",
            ecom_contract::env::SHARD_INDEX,
            ecom_contract::env::JOB_COMPLETION_INDEX
        ))),
    }
}

/// A `--shard` that names no share of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardError(pub String);

impl fmt::Display for ShardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for ShardError {}

#[cfg(test)]
mod tests;
