//! The stream StatefulSet of streaming mode: `ecom stream`, one long-running pod per shard.
//! Each pod takes its shard index from its pod index (`ECOM_SHARD_INDEX`, from the label
//! `apps.kubernetes.io/pod-index` the StatefulSet controller sets) and the count from
//! `--shard COUNT`; it tails that share of the topic's partitions and every
//! `--batch-interval` commits a micro-batch through raw files on HDFS, a clean run and the
//! HBase load, exactly once. On SIGTERM it commits what it holds and exits 0.
//!
//! The shard count is also an annotation ([`ANNOTATION_SHARDS`]): the plan changes it only
//! after every pod of the old count has stopped (see `plan::stream`).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec, StatefulSetUpdateStrategy};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use ecom_contract::command::{Command, Stream};
use ecom_contract::env as names;

use super::{
    common_env, ecom_container, empty_dir, hardened_pod, hbase_env, identity_env, kafka_env,
    kafka_properties, kafka_tls_volume, resources, unsigned,
};
use crate::meta::{
    Stage, ANNOTATION_EXEC_HASH, ANNOTATION_SHARDS, LABEL_COMPONENT, LABEL_STAGE_KEY,
};
use crate::validate::Pipeline;

/// The pod label the StatefulSet controller sets to the pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
/// Seconds a stream pod has to commit what it holds after SIGTERM, before the batch
/// interval is added.
const GRACE_SECONDS: i64 = 30;

/// Replicas and shard count of the StatefulSet: the plan picks them (zero replicas while
/// suspended or while the pods of an old shard count stop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamShape {
    /// `--shard COUNT` of the pods, and the [`ANNOTATION_SHARDS`] annotation.
    pub shards: i32,
    /// `spec.replicas`.
    pub replicas: i32,
}

impl StreamShape {
    /// What the spec asks for: `streaming.shards` pods, none when suspended.
    pub fn desired(p: &Pipeline) -> Self {
        let shards = p.streaming().shards;
        Self {
            shards,
            replicas: if p.spec.suspend { 0 } else { shards },
        }
    }
}

/// Name of the stream StatefulSet (and of its governing Service, which need not exist).
pub fn statefulset_name(p: &Pipeline) -> String {
    p.owner.child_name(Stage::Stream.as_str())
}

/// Labels selecting the stream pods.
fn selector(p: &Pipeline) -> BTreeMap<String, String> {
    let mut m = p.owner.selector_labels();
    m.insert(LABEL_COMPONENT.to_string(), Stage::Stream.to_string());
    m
}

/// `ecom stream ...` of `p` for `shards` shards; the Kafka and HBase addresses come from the
/// environment, the shard index from `ECOM_SHARD_INDEX`.
pub fn args(p: &Pipeline, shards: i32) -> Vec<String> {
    let spec = &p.spec;
    let streaming = p.streaming();
    Command::Stream(Stream {
        topic: p.topic.clone(),
        raw: p.raw_url.clone(),
        clean: p.clean_url.clone(),
        table: p.table.clone(),
        salt_buckets: unsigned(spec.hbase.salt_buckets),
        batch_interval_ms: unsigned(streaming.batch_interval_ms),
        max_batch_records: unsigned(streaming.max_batch_records),
        shards: unsigned(shards),
        kafka_properties: kafka_properties(p),
    })
    .args()
}

/// The stream StatefulSet of `p` with `shape`.
pub fn statefulset(p: &Pipeline, shape: StreamShape) -> StatefulSet {
    let streaming = p.streaming();
    let name = statefulset_name(p);
    let mut env = common_env();
    env.extend(kafka_env(p));
    env.extend(hbase_env(p));
    env.extend(identity_env(p));
    env.push(EnvVar {
        name: names::SHARD_INDEX.to_string(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: None,
                field_path: format!("metadata.labels['{POD_INDEX_LABEL}']"),
            }),
            ..EnvVarSource::default()
        }),
    });
    let mut container = ecom_container(p, Stage::Stream.as_str(), args(p, shape.shards), env);
    container.resources = resources(&streaming.resources);
    let mut volumes = vec![empty_dir("work"), empty_dir("tmp")];
    if let Some((volume, mount)) = kafka_tls_volume(p) {
        volumes.push(volume);
        if let Some(mounts) = container.volume_mounts.as_mut() {
            mounts.push(mount);
        }
    }
    let mut pod = hardened_pod(container, volumes, None);
    // On SIGTERM a pod commits what it holds: at most one batch interval of records.
    let interval = (i64::from(streaming.batch_interval_ms) + 999) / 1000;
    pod.termination_grace_period_seconds = Some(GRACE_SECONDS + interval);

    let key = p.stage_key(Stage::Stream).to_string();
    let mut meta = p.owner.child_meta(name.clone(), Stage::Stream.as_str());
    let mut labels = meta.labels.take().unwrap_or_default();
    labels.insert(LABEL_STAGE_KEY.to_string(), key);
    meta.labels = Some(labels.clone());
    meta.annotations = Some(BTreeMap::from([
        (ANNOTATION_EXEC_HASH.to_string(), p.exec_hash(Stage::Stream)),
        (ANNOTATION_SHARDS.to_string(), shape.shards.to_string()),
    ]));
    StatefulSet {
        metadata: meta,
        spec: Some(StatefulSetSpec {
            replicas: Some(shape.replicas),
            selector: LabelSelector {
                match_labels: Some(selector(p)),
                match_expressions: None,
            },
            service_name: Some(name),
            // Every shard starts and stops at once; a template change still rolls one pod
            // at a time, each ordinal keeping its shard.
            pod_management_policy: Some("Parallel".to_string()),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("RollingUpdate".to_string()),
                rolling_update: None,
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..StatefulSetSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::streaming;

    #[test]
    fn replicas_follow_shards_and_suspend() {
        assert_eq!(
            StreamShape::desired(&streaming(3, false)),
            StreamShape {
                shards: 3,
                replicas: 3
            }
        );
        assert_eq!(
            StreamShape::desired(&streaming(3, true)),
            StreamShape {
                shards: 3,
                replicas: 0
            }
        );
    }

    #[test]
    fn the_shard_count_is_in_the_args_and_the_annotation() {
        let p = streaming(2, false);
        let sts = statefulset(
            &p,
            StreamShape {
                shards: 2,
                replicas: 0,
            },
        );
        let spec = sts.spec.expect("spec");
        assert_eq!(spec.replicas, Some(0));
        assert_eq!(
            sts.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ANNOTATION_SHARDS))
                .map(String::as_str),
            Some("2")
        );
        let args = spec.template.spec.expect("pod").containers[0]
            .args
            .clone()
            .unwrap_or_default();
        let shard = args.iter().position(|a| a == "--shard").expect("--shard");
        assert_eq!(args[shard + 1], "2");
        assert_eq!(args[0], "stream");
    }
}
