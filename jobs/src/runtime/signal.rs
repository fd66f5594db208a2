//! Stopping on SIGTERM or Ctrl-C: a continuous stage commits what it holds and exits 0, as
//! Kubernetes asks of a pod being deleted; the dashboard drains its connections.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// A flag a continuous stage polls between batches: set on SIGTERM or Ctrl-C, and after
/// `run_for` when given.
pub fn stop_flag(run_for: Option<Duration>) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        std::thread::spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => {
                    rt.block_on(shutdown());
                    tracing::info!("stop requested, committing and exiting");
                    stop.store(true, Ordering::SeqCst);
                }
                Err(e) => tracing::warn!(error = %e, "cannot listen for SIGTERM"),
            }
        });
    }
    if let Some(run_for) = run_for {
        let stop = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(run_for);
            tracing::info!(?run_for, "run time elapsed, committing and exiting");
            stop.store(true, Ordering::SeqCst);
        });
    }
    stop
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_is_set_when_the_run_time_is_over() {
        let stop = stop_flag(Some(Duration::from_millis(10)));
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while !stop.load(Ordering::SeqCst) && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(stop.load(Ordering::SeqCst));
    }
}
