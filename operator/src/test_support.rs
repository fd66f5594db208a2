//! Fixtures shared by unit tests: resources as the API server would store them.

use crate::crd::EcomPipeline;

/// The batch example (`tests/fixtures/example.yaml`).
pub fn example() -> EcomPipeline {
    serde_yaml::from_str(include_str!("../tests/fixtures/example.yaml")).expect("fixture parses")
}
