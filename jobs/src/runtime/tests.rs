use std::cell::Cell;
use std::io;

use super::*;
use crate::retry::Permanent;

type BoxError = Box<dyn StdError + Send + Sync + 'static>;

fn quiet(attempts: u32) -> StageOptions {
    StageOptions {
        first_backoff: Duration::from_millis(1),
        report: Report::Silent,
        ..StageOptions::new(StageName::Load, Duration::from_secs(60), attempts)
    }
}

fn transient() -> BoxError {
    Box::new(io::Error::new(io::ErrorKind::ConnectionRefused, "refused"))
}

#[test]
fn a_transient_failure_is_retried_and_the_summary_counts_attempts() {
    let calls = Cell::new(0);
    let summary = run_stage(&quiet(5), |_, attempt| {
        calls.set(calls.get() + 1);
        if attempt < 3 {
            Err(transient())
        } else {
            Ok(attempt)
        }
    })
    .expect("third attempt succeeds");
    assert_eq!(calls.get(), 3);
    assert_eq!(summary.attempts, 3);
    assert_eq!(summary.detail, Some(3));
    assert!(summary.ok);
    assert_eq!(summary.stage, Some(StageName::Load));
}

#[test]
fn a_permanent_failure_is_not_retried() {
    let calls = Cell::new(0);
    let err = run_stage(&quiet(5), |_, _| -> Result<(), BoxError> {
        calls.set(calls.get() + 1);
        Err(Box::new(Permanent("no such table".into())))
    })
    .expect_err("permanent");
    assert_eq!(calls.get(), 1);
    assert_eq!(err.error, "no such table (permanent error, not retried)");
    assert_eq!(
        err.to_string(),
        "load failed: no such table (permanent error, not retried)"
    );
}

#[test]
fn attempts_run_out() {
    let calls = Cell::new(0);
    let err = run_stage(&quiet(2), |_, _| -> Result<(), BoxError> {
        calls.set(calls.get() + 1);
        Err(transient())
    })
    .expect_err("out of attempts");
    assert_eq!(calls.get(), 2);
    assert_eq!(err.error, "refused (after 2 attempts)");
}

#[test]
fn a_stage_that_must_not_repeat_runs_once() {
    let opts = StageOptions {
        retry: Retry::Never,
        ..quiet(5)
    };
    let calls = Cell::new(0);
    let err = run_stage(&opts, |_, _| -> Result<(), BoxError> {
        calls.set(calls.get() + 1);
        Err(transient())
    })
    .expect_err("not retried");
    assert_eq!((calls.get(), err.error.as_str()), (1, "refused"));
}

#[test]
fn the_deadline_stops_the_retries() {
    let opts = StageOptions {
        deadline: Duration::from_millis(50),
        first_backoff: Duration::from_millis(200),
        ..quiet(100)
    };
    let err = run_stage(&opts, |_, _| -> Result<(), BoxError> { Err(transient()) })
        .expect_err("out of time");
    assert!(
        err.error.ends_with("(deadline of 50ms reached)"),
        "{}",
        err.error
    );
}

#[test]
fn a_long_healthy_run_starts_a_fresh_failure_streak() {
    let opts = StageOptions {
        deadline: Duration::from_millis(200),
        budget: Budget::FailureStreak,
        ..quiet(2)
    };
    // The first three attempts run past the deadline before failing: each failure is the
    // first of a new streak, so the next call is that streak's second attempt. The fourth
    // fails fast, the second failure of its streak, and uses up the two attempts.
    let calls = Cell::new(0);
    let err = run_stage(&opts, |clock, attempt| -> Result<(), BoxError> {
        calls.set(calls.get() + 1);
        assert_eq!(attempt, if calls.get() == 1 { 1 } else { 2 });
        if calls.get() <= 3 {
            // A fresh streak has its whole deadline ahead (not spent by the long attempt).
            assert!(
                clock.remaining() > Duration::from_millis(100),
                "{:?}",
                clock.remaining()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        Err(transient())
    })
    .expect_err("fails fast at the end");
    assert_eq!(calls.get(), 4);
    assert!(err.error.starts_with("refused"), "{}", err.error);
}

#[test]
fn a_chain_is_printed_once_per_text() {
    #[derive(Debug)]
    struct Wrap(io::Error);
    impl fmt::Display for Wrap {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "listing /x: {}", self.0)
        }
    }
    impl StdError for Wrap {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }
    let e: BoxError = Box::new(Wrap(io::Error::new(
        io::ErrorKind::NotADirectory,
        "Not a directory",
    )));
    assert_eq!(e.message(), "listing /x: Not a directory");
    assert_eq!(e.class(), ErrorClass::Permanent);
}

#[test]
fn shards_resolve() {
    assert_eq!(resolve_shard(None, Some("3")), Ok(Shard::default()));
    assert_eq!(
        resolve_shard(Some("2/4"), None),
        Ok(Shard { index: 2, count: 4 })
    );
    assert_eq!(
        resolve_shard(Some("4"), Some("1")),
        Ok(Shard { index: 1, count: 4 })
    );
    assert!(resolve_shard(Some("4/4"), None).is_err());
    let err = resolve_shard(Some("4"), None).expect_err("no index");
    assert!(err.0.contains("JOB_COMPLETION_INDEX"), "{err}");
}
