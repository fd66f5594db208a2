//! The data side of ecom-pipeline: the record model, the generator, cleaning,
//! the storage seams with their embedded backends, and the pipeline stages.

pub mod aggregates;
pub mod calendar;
pub mod chunks;
pub mod clean;
pub mod generate;
pub mod incremental;
pub mod load;
pub mod owner;
pub mod produce;
pub mod record;
pub mod retry;
pub mod rules;
pub mod runtime;
pub mod sink;
pub mod store;
pub mod stream;
