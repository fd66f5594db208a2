//! Apply: every write of the operator to owned objects, through server-side apply with one
//! field manager (plus the few targeted patches server-side apply cannot express safely).

use std::fmt::Debug;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PropagationPolicy};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;

use crate::crd::{EcomPipeline, EcomPipelineStatus, GROUP, KIND, VERSION};
use crate::meta::FIELD_MANAGER;

/// Errors of writes to the API server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Server-side apply of an object failed.
    #[error("applying {kind} {namespace}/{name}: {source}")]
    Apply {
        /// Kind of the object.
        kind: String,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// A patch failed.
    #[error("patching {kind} {namespace}/{name}: {source}")]
    Patch {
        /// Kind of the object.
        kind: String,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// A delete failed.
    #[error("deleting {kind} {namespace}/{name}: {source}")]
    Delete {
        /// Kind of the object.
        kind: String,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// A short label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Apply { .. } => "apply",
            Error::Patch { .. } => "patch",
            Error::Delete { .. } => "delete",
        }
    }
}

fn kind_of<K: Resource<DynamicType = ()>>() -> String {
    K::kind(&()).into_owned()
}

/// Server-side applies `obj` (forcing conflicts: the operator owns what it builds).
pub async fn apply<K>(client: &Client, obj: &K) -> Result<K, Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Serialize
        + DeserializeOwned
        + Clone
        + Debug,
{
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let api: Api<K> = Api::namespaced(client.clone(), &namespace);
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await
    .map_err(|source| Error::Apply {
        kind: kind_of::<K>(),
        namespace,
        name,
        source,
    })
}

/// Sets `spec.suspend` of a Job (a merge patch: re-applying the whole Job could touch its
/// immutable pod template).
pub async fn set_job_suspend(
    client: &Client,
    namespace: &str,
    name: &str,
    suspend: bool,
) -> Result<(), Error> {
    let api: Api<Job> = Api::namespaced(client.clone(), namespace);
    let patch = json!({"spec": {"suspend": suspend}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
        .map_err(|source| Error::Patch {
            kind: "Job".into(),
            namespace: namespace.into(),
            name: name.into(),
            source,
        })
}

/// Deletes an object (and, for Jobs, their pods in the background); absent is fine.
pub async fn delete<K>(client: &Client, namespace: &str, name: &str) -> Result<(), Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + DeserializeOwned
        + Clone
        + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    match api.delete(name, &dp).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(source) => Err(Error::Delete {
            kind: kind_of::<K>(),
            namespace: namespace.into(),
            name: name.into(),
            source,
        }),
    }
}

/// Writes the status subresource of an `EcomPipeline` (server-side apply).
pub async fn status(
    client: &Client,
    namespace: &str,
    name: &str,
    status: &EcomPipelineStatus,
) -> Result<(), Error> {
    let api: Api<EcomPipeline> = Api::namespaced(client.clone(), namespace);
    let patch = json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": KIND,
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map(|_| ())
    .map_err(|source| Error::Patch {
        kind: format!("{KIND} status"),
        namespace: namespace.into(),
        name: name.into(),
        source,
    })
}
