//! The Kubernetes operator of ecom-pipeline: the `EcomPipeline` custom resource and the
//! controller that reconciles it into ordered stage Jobs (batch mode) or a producer Job and a
//! stream StatefulSet (streaming mode), and a dashboard.
//!
//! Reconcile runs in phases, each in its own module: [`validate`] (spec to a typed value),
//! [`plan`] and [`build`] (pure functions returning every desired object), [`apply`]
//! (server-side apply with one field manager) and [`status`] (conditions and counts from the
//! observed Jobs, StatefulSet and pods).

pub mod admit;
pub mod apply;
pub mod build;
pub mod controller;
pub mod crd;
pub mod leader;
pub mod meta;
pub mod metrics;
pub mod observe;
pub mod plan;
pub mod reach;
pub mod status;
pub mod validate;

pub use controller::{run, Config};
pub use leader::LeaseConfig;

#[cfg(test)]
mod test_support;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, ValidationRule,
};
use kube::CustomResourceExt;

/// The CustomResourceDefinition of `EcomPipeline`, with the rule on `metadata.name` that
/// keeps every child name a valid DNS label.
pub fn crd() -> CustomResourceDefinition {
    let mut crd = crd::EcomPipeline::crd();
    for version in &mut crd.spec.versions {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            schema
                .x_kubernetes_validations
                .get_or_insert_with(Vec::new)
                .push(ValidationRule {
                    rule: "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 63".to_string(),
                    message: Some(
                        "metadata.name must be a DNS-1035 label: lower-case letters, digits and '-', starting with a letter, at most 63 characters".to_string(),
                    ),
                    ..ValidationRule::default()
                });
        }
    }
    crd
}

/// The CustomResourceDefinition of `EcomPipeline` as YAML (what `ecom crd` prints).
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(&crd())
}
