//! Fixtures shared by unit tests: resources as the API server would store them.

use crate::crd::{EcomPipeline, EcomPipelineSpec};

/// The batch example (`tests/fixtures/example.yaml`).
pub fn example() -> EcomPipeline {
    serde_yaml::from_str(include_str!("../tests/fixtures/example.yaml")).expect("fixture parses")
}

/// The spec of [`example`].
pub fn example_spec() -> EcomPipelineSpec {
    example().spec
}
