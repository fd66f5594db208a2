//! The fact table, opened when first needed: a dashboard can start before the pipeline's
//! first load creates the table (streaming mode starts both at once), and the drill-down
//! then comes on by itself instead of staying off until a restart.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ecom_jobs::store::Table;

/// Opens the fact table; an error names why it is not there.
pub type OpenFact = Arc<dyn Fn() -> Result<Arc<dyn Table>, String> + Send + Sync>;

/// How often an absent fact table is looked for again, at most.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// The fact table, or how to open it.
#[derive(Clone)]
pub struct FactTable {
    open: Option<OpenFact>,
    state: Arc<Mutex<Slot>>,
}

struct Slot {
    table: Option<Arc<dyn Table>>,
    tried: Option<Instant>,
}

impl FactTable {
    /// A table already open.
    pub fn ready(table: Arc<dyn Table>) -> FactTable {
        FactTable {
            open: None,
            state: Arc::new(Mutex::new(Slot {
                table: Some(table),
                tried: None,
            })),
        }
    }

    /// A table opened by `open` when first needed (and looked for again at most once a
    /// second while it is absent).
    pub fn lazy(open: OpenFact) -> FactTable {
        FactTable {
            open: Some(open),
            state: Arc::new(Mutex::new(Slot {
                table: None,
                tried: None,
            })),
        }
    }

    /// The table, if open or openable now.
    pub fn get(&self) -> Option<Arc<dyn Table>> {
        let mut slot = self.state.lock().ok()?;
        if let Some(t) = &slot.table {
            return Some(Arc::clone(t));
        }
        let open = self.open.as_ref()?;
        if slot.tried.is_some_and(|t| t.elapsed() < RETRY_EVERY) {
            return None;
        }
        slot.tried = Some(Instant::now());
        match open() {
            Ok(t) => {
                tracing::info!("the fact table is there: the drill-down is on");
                slot.table = Some(Arc::clone(&t));
                Some(t)
            }
            Err(e) => {
                tracing::debug!(error = %e, "no fact table yet");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecom_jobs::store::{EmbeddedTables, TableStore};

    #[test]
    fn a_table_created_after_start_is_opened_when_asked_for() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Arc::new(EmbeddedTables::open(dir.path().join("db")).expect("db"));
        let s = Arc::clone(&store);
        let fact = FactTable::lazy(Arc::new(move || {
            s.table("facts").map_err(|e| e.to_string())
        }));
        assert!(fact.get().is_none(), "not created yet");
        store.ensure_table("facts", &["f"]).expect("create");
        // Looked for again at most once a second.
        assert!(fact.get().is_none());
        std::thread::sleep(RETRY_EVERY);
        assert!(fact.get().is_some());
    }
}
