//! Fixtures shared by unit tests: resources as the API server would store them.

use crate::crd::EcomPipeline;

/// The batch example (`tests/fixtures/example.yaml`).
pub fn example() -> EcomPipeline {
    serde_yaml::from_str(include_str!("../tests/fixtures/example.yaml")).expect("fixture parses")
}

/// The example as a validated streaming pipeline with `shards` shards, suspended or not.
pub fn streaming(shards: i32, suspend: bool) -> crate::validate::Pipeline {
    let mut obj = example();
    obj.spec.mode = crate::crd::Mode::Streaming;
    obj.spec.suspend = suspend;
    obj.spec.streaming = Some(crate::crd::StreamingSpec {
        shards,
        ..crate::crd::StreamingSpec::default()
    });
    crate::validate::validate(&obj).expect("valid")
}
