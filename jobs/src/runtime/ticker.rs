//! Progress in the log every few seconds, for pods that have no terminal for a bar.

use std::time::{Duration, Instant};

/// Counts what a stage has done and logs it (with the rate) at most every `every`.
pub struct Ticker {
    stage: &'static str,
    every: Duration,
    start: Instant,
    last: Instant,
    done: u64,
}

impl Ticker {
    /// A ticker logging every 10 s.
    pub fn new(stage: &'static str) -> Self {
        Self::every(stage, Duration::from_secs(10))
    }

    /// A ticker logging at most every `every`.
    pub fn every(stage: &'static str, every: Duration) -> Self {
        let now = Instant::now();
        Ticker {
            stage,
            every,
            start: now,
            last: now,
            done: 0,
        }
    }

    /// Counts `n` more `unit`s; returns whether it logged.
    pub fn add(&mut self, n: u64, unit: &str) -> bool {
        self.done += n;
        if self.last.elapsed() < self.every {
            return false;
        }
        self.last = Instant::now();
        let rate = self.done as f64 / self.start.elapsed().as_secs_f64().max(1e-9);
        tracing::info!(
            stage = self.stage,
            done = self.done,
            unit,
            per_second = rate as u64,
            "progress"
        );
        true
    }

    /// Units counted so far.
    pub fn done(&self) -> u64 {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_counts_everything_and_logs_only_when_due() {
        let mut quiet = Ticker::new("t");
        assert!(!quiet.add(5, "rows"));
        assert!(!quiet.add(7, "rows"));
        assert_eq!(quiet.done(), 12);
        let mut chatty = Ticker::every("t", Duration::ZERO);
        assert!(chatty.add(1, "rows"));
        assert!(chatty.add(1, "rows"));
    }
}
