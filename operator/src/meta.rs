//! Object metadata shared by every built object: names, labels, owner references and the
//! stable hash behind stage keys. One place, so no builder repeats it.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::crd::{GROUP, KIND, VERSION};

/// Field manager of every server-side apply of the operator.
pub const FIELD_MANAGER: &str = "ecom-operator";
/// Finalizer that runs the cleanup policy before the resource goes away.
pub const FINALIZER: &str = "pipelines.ecom-pipeline.io/cleanup";
/// Label: the `EcomPipeline` an object belongs to.
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
/// Label: the part of the pipeline (a stage, `stream`, `dashboard` or `cleanup`).
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
/// Label: the stage key of a Job or of the stream StatefulSet.
pub const LABEL_STAGE_KEY: &str = "pipelines.ecom-pipeline.io/stage-key";
/// Annotation: hash of a workload's execution settings (image, resources, limits); a failed
/// Job whose settings changed is replaced.
pub const ANNOTATION_EXEC_HASH: &str = "pipelines.ecom-pipeline.io/exec-hash";
/// Annotation of the stream StatefulSet: the shard count (`--shard COUNT`) its pods run
/// with. When it differs from the desired count, the StatefulSet is scaled to zero before
/// the new count starts, so no two pods ever own the same partition.
pub const ANNOTATION_SHARDS: &str = "pipelines.ecom-pipeline.io/shards";
/// Longest name of an `EcomPipeline` whose child names need no shortening.
const MAX_BASE: usize = 40;

/// A stage of the pipeline: the four Jobs in run order, then the streaming stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// Source to Kafka.
    Produce,
    /// Kafka to raw files on HDFS.
    Sink,
    /// Raw files to clean Parquet.
    Clean,
    /// Clean Parquet to HBase.
    Load,
    /// Streaming mode: Kafka to raw files, clean runs and HBase in micro-batches, one
    /// long-running pod per shard (a StatefulSet, not a Job).
    Stream,
}

impl Stage {
    /// The stages run as Jobs, in run order (batch mode runs all four; streaming mode only
    /// produce, beside the [`Stage::Stream`] StatefulSet).
    pub const ALL: [Stage; 4] = [Stage::Produce, Stage::Sink, Stage::Clean, Stage::Load];

    /// Lower-case name: the `ecom` subcommand, the status key and the label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Produce => "produce",
            Stage::Sink => "sink",
            Stage::Clean => "clean",
            Stage::Load => "load",
            Stage::Stream => "stream",
        }
    }

    /// The stage named `s`.
    pub fn from_name(s: &str) -> Option<Stage> {
        Stage::ALL
            .into_iter()
            .chain([Stage::Stream])
            .find(|st| st.as_str() == s)
    }

    /// The stage as its summaries name it.
    pub fn summary_name(self) -> ecom_contract::summary::StageName {
        use ecom_contract::summary::StageName;
        match self {
            Stage::Produce => StageName::Produce,
            Stage::Sink => StageName::Sink,
            Stage::Clean => StageName::Clean,
            Stage::Load => StageName::Load,
            Stage::Stream => StageName::Stream,
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The owning `EcomPipeline` as built objects need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.uid`.
    pub uid: String,
}

impl Owner {
    /// The controller owner reference every built object carries.
    pub fn reference(&self) -> OwnerReference {
        OwnerReference {
            api_version: format!("{GROUP}/{VERSION}"),
            kind: KIND.to_string(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    /// Labels selecting every object of this pipeline.
    pub fn selector_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(LABEL_INSTANCE.to_string(), self.name.clone())])
    }

    /// Recommended labels of an object of component `component`.
    pub fn labels(&self, component: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                "app.kubernetes.io/name".to_string(),
                "ecom-pipeline".to_string(),
            ),
            (LABEL_INSTANCE.to_string(), self.name.clone()),
            (LABEL_COMPONENT.to_string(), component.to_string()),
            (
                "app.kubernetes.io/part-of".to_string(),
                "ecom-pipeline".to_string(),
            ),
            (
                "app.kubernetes.io/managed-by".to_string(),
                FIELD_MANAGER.to_string(),
            ),
        ])
    }

    /// Metadata of a child object: name, namespace, labels and owner reference.
    pub fn child_meta(&self, name: String, component: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(self.labels(component)),
            owner_references: Some(vec![self.reference()]),
            ..ObjectMeta::default()
        }
    }

    /// Name of a child object: `<pipeline>-<suffix>`, a DNS-1035 label of at most 63
    /// characters (long pipeline names are shortened and given a hash).
    pub fn child_name(&self, suffix: &str) -> String {
        let base = if self.name.len() <= MAX_BASE {
            self.name.clone()
        } else {
            let hash = short_hash(self.name.as_bytes());
            let cut: String = self.name.chars().take(MAX_BASE - 9).collect();
            format!("{}-{hash}", cut.trim_end_matches('-'))
        };
        format!("{base}-{suffix}")
    }
}

/// 64-bit FNV-1a: a hash that never changes between Rust releases or platforms.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The first 8 hex digits of [`fnv1a`].
pub fn short_hash(bytes: &[u8]) -> String {
    format!("{:016x}", fnv1a(bytes))[..8].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(name: &str) -> Owner {
        Owner {
            name: name.into(),
            namespace: "ns".into(),
            uid: "u".into(),
        }
    }

    #[test]
    fn child_names_are_short_dns_labels() {
        assert_eq!(owner("demo").child_name("dashboard"), "demo-dashboard");
        let long = "a".repeat(60);
        let n = owner(&long).child_name("produce-0123abcd-c12");
        assert!(n.len() <= 63, "{n}");
        assert_ne!(
            owner(&long).child_name("x"),
            owner(&format!("{long}b")).child_name("x")
        );
    }

    #[test]
    fn hash_is_stable() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(short_hash(b"a"), "af63dc4c");
    }
}
