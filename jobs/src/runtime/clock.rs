//! Where a stage stands against its deadline, and how durations are written.

use std::fmt;
use std::time::{Duration, Instant};

/// A duration flag or variable that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadDuration(pub String);

impl fmt::Display for BadDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadDuration {}

/// Parses `90s`, `10m`, `1h`, `500ms` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, BadDuration> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let bad = |why: String| BadDuration(format!("{s:?}: {why}"));
    let n: f64 = num
        .parse()
        .map_err(|_| bad("expected a duration like 90s, 10m, 1h or 500ms".into()))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(bad(format!("unknown unit {unit:?} (ms, s, m, h)"))),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| bad("out of range".into()))
}

/// A stage's deadline as its attempts see it.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub(crate) start: Instant,
    pub(crate) deadline: Duration,
}

impl Clock {
    /// A clock whose deadline is `deadline` from now.
    pub fn new(deadline: Duration) -> Self {
        Clock {
            start: Instant::now(),
            deadline,
        }
    }

    /// Time left before the deadline.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_sub(self.start.elapsed())
    }

    /// The timeout of one service call: `timeout`, never beyond the deadline, at least 1 s.
    pub fn call(&self, timeout: Duration) -> Duration {
        timeout.min(self.remaining()).max(Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration(" 3 "), Ok(Duration::from_secs(3)));
        let err = parse_duration("3 weeks").expect_err("a unit nobody knows");
        assert!(err.0.contains("unknown unit"), "{err}");
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("1e400").is_err());
    }

    #[test]
    fn a_call_never_outlives_the_deadline_but_gets_a_second() {
        let clock = Clock::new(Duration::from_secs(10));
        assert!(clock.call(Duration::from_secs(30)) <= Duration::from_secs(10));
        assert_eq!(clock.call(Duration::from_secs(2)), Duration::from_secs(2));
        let spent = Clock::new(Duration::ZERO);
        assert_eq!(spent.remaining(), Duration::ZERO);
        assert_eq!(spent.call(Duration::from_secs(30)), Duration::from_secs(1));
    }
}
