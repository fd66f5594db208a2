//! Test support of ecom-pipeline, used only by tests: the dashboard's oracle.
//!
//! [`Oracle`] recomputes every answer of the dashboard's API straight from the
//! clean Parquet files with polars, without the cube or the aggregates table;
//! [`approx_eq`] compares two answers. The oracle parses queries and shapes its
//! answers with the dashboard's own `query` and `panels` types, so this crate
//! depends on ecom-dashboard and ecom-dashboard does not depend on it (its API
//! test against the oracle is `tests/dashboard_api.rs` here).

mod compare;
mod recompute;

pub use compare::approx_eq;
pub use recompute::{Oracle, RecomputeError};
