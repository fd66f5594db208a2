//! Apply: every write of the operator to owned objects, through server-side apply with one
//! field manager (plus the few targeted patches server-side apply cannot express safely).

use std::fmt::Debug;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions, PropagationPolicy};
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
    /// An object of the name the operator would write exists and is not controlled by the
    /// pipeline: the operator neither changes nor deletes it.
    #[error("{kind} {namespace}/{name} exists and is not controlled by this EcomPipeline")]
    NotOwned {
        /// Kind of the object.
        kind: String,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// Reading an object before writing it failed.
    #[error("reading {kind} {namespace}/{name}: {source}")]
    Read {
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
            Error::NotOwned { .. } => "not_owned",
            Error::Read { .. } => "read",
            Error::Delete { .. } => "delete",
        }
    }
}

fn kind_of<K: Resource<DynamicType = ()>>() -> String {
    K::kind(&()).into_owned()
}

/// Whether `obj`'s controller is the pipeline with UID `owner`.
pub fn controlled_by<K: Resource>(obj: &K, owner: &str) -> bool {
    obj.meta().owner_references.as_ref().is_some_and(|refs| {
        refs.iter()
            .any(|r| r.uid == owner && r.controller == Some(true))
    })
}

/// Checks, before anything is written, that the object named `name` of kind `K` is absent
/// or controlled by the pipeline with UID `owner` ([`Error::NotOwned`] otherwise).
pub async fn ensure_controllable<K>(
    client: &Client,
    namespace: &str,
    name: &str,
    owner: &str,
) -> Result<(), Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + DeserializeOwned
        + Clone
        + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let existing = api.get_opt(name).await.map_err(|source| Error::Read {
        kind: kind_of::<K>(),
        namespace: namespace.into(),
        name: name.into(),
        source,
    })?;
    match existing {
        Some(o) if !controlled_by(&o, owner) => Err(Error::NotOwned {
            kind: kind_of::<K>(),
            namespace: namespace.into(),
            name: name.into(),
        }),
        _ => Ok(()),
    }
}

/// Server-side applies `obj`, built for the pipeline with UID `owner`. An object of that
/// name the pipeline does not control is left alone ([`Error::NotOwned`]); what it controls
/// is applied forcing conflicts (the operator owns what it builds).
pub async fn apply<K>(client: &Client, obj: &K, owner: &str) -> Result<K, Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Serialize
        + DeserializeOwned
        + Clone
        + Debug,
{
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    ensure_controllable::<K>(client, &namespace, &name, owner).await?;
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

/// Deletes an object the pipeline with UID `owner` controls (and, for Jobs, their pods in
/// the background). Absent is fine; an object it does not control is left alone and the
/// answer is `false`. The delete is conditional on the UID that was read, so an object
/// replaced meanwhile is not deleted either.
pub async fn delete<K>(
    client: &Client,
    namespace: &str,
    name: &str,
    owner: &str,
) -> Result<bool, Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + DeserializeOwned
        + Clone
        + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let existing = api.get_opt(name).await.map_err(|source| Error::Read {
        kind: kind_of::<K>(),
        namespace: namespace.into(),
        name: name.into(),
        source,
    })?;
    let Some(existing) = existing else {
        return Ok(true);
    };
    if !controlled_by(&existing, owner) {
        tracing::warn!(
            kind = %kind_of::<K>(),
            object = %format!("{namespace}/{name}"),
            "not deleting an object this pipeline does not control"
        );
        return Ok(false);
    }
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        preconditions: existing.meta().uid.clone().map(|uid| Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &dp).await {
        Ok(_) => Ok(true),
        // Gone, or replaced by another object since it was read.
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(s.code == 404),
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
