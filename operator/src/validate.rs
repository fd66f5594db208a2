//! Validation: an `EcomPipeline` as read from the API becomes a typed [`Pipeline`]. Pure.
//!
//! The rules of a spec live in one place, the CRD schema generated from [`crate::crd`]:
//! OpenAPI ranges, lengths and patterns from `schemars` attributes, and CEL rules
//! (`x-kubernetes-validations`) for what spans fields (exactly one source, SASL and TLS
//! against the protocol, raw and clean paths apart, `nodePort` against the Service type,
//! `streaming` only in streaming mode, a DNS-1035 name, `runId` only growing). The API
//! server refuses a bad spec with the field and the message (a test sends each case to a
//! real kube-apiserver); nothing here says them again. What is left is the conversion:
//! metadata the server always sets, and the derived URLs and stage keys.

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde_json::json;

use crate::crd::{EcomPipeline, EcomPipelineSpec, Mode, StreamingSpec};
use crate::meta::{short_hash, Owner, Stage};

/// Errors of validation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object lacks metadata the API server always sets.
    #[error("EcomPipeline {resource} has no {field}")]
    MissingMetadata {
        /// `namespace/name` of the resource.
        resource: String,
        /// The missing field.
        field: &'static str,
    },
    /// The raw and clean paths (given or defaulted) meet.
    #[error("EcomPipeline {resource}: the raw path {raw} and the clean path {clean} must be different and not inside each other")]
    PathsOverlap {
        /// `namespace/name` of the resource.
        resource: String,
        /// The raw path.
        raw: String,
        /// The clean path.
        clean: String,
    },
}

/// A validated pipeline: the spec with its derived values.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    /// The owning resource.
    pub owner: Owner,
    /// `metadata.generation`.
    pub generation: i64,
    /// `metadata.creationTimestamp`: of two pipelines on the same storage that have not
    /// started, the older keeps it.
    pub created: Option<Timestamp>,
    /// Whether the operator ever started a stage of it (its status lists stages): of two
    /// pipelines on the same storage, one that started keeps it.
    pub started: bool,
    /// The spec (defaults applied by the API server).
    pub spec: EcomPipelineSpec,
    /// `hdfs://namenode:port/raw/path`.
    pub raw_url: String,
    /// `hdfs://namenode:port/clean/path`.
    pub clean_url: String,
    /// `host:port` of the HBase Thrift server.
    pub thrift: String,
    /// The Kafka topic (`spec.kafka.topic` or its default from namespace and name).
    pub topic: String,
    /// The serving table (`spec.hbase.table` or its default from namespace and name).
    pub table: String,
    keys: [String; 5],
}

/// The default HDFS directory of a pipeline's data: `/ecom/<namespace>/<name>`.
pub fn default_data_dir(namespace: &str, name: &str) -> String {
    format!("/ecom/{namespace}/{name}")
}

/// The default Kafka topic of a pipeline: `ecom.<namespace>.<name>` (neither a namespace nor
/// a pipeline name holds a dot, so no two pipelines get the same default).
pub fn default_topic(namespace: &str, name: &str) -> String {
    format!("ecom.{namespace}.{name}")
}

/// The default HBase table of a pipeline: `ecom_<namespace>_<name>` (neither holds `_`).
pub fn default_table(namespace: &str, name: &str) -> String {
    format!("ecom_{namespace}_{name}")
}

impl Pipeline {
    /// Key of a stage's data: a hash of what defines the stage's output, chained from the
    /// upstream stage, so a change re-runs the stage and everything after it, and nothing
    /// before it. Execution settings (image, resources, limits) are not part of it.
    pub fn stage_key(&self, stage: Stage) -> &str {
        &self.keys[stage as usize]
    }

    /// Hash of a stage's execution settings (for load and stream also the Thrift transport
    /// and protocol); a failed Job with other settings is replaced.
    pub fn exec_hash(&self, stage: Stage) -> String {
        let s = &self.spec;
        let settings = match stage {
            Stage::Produce => json!(s.stages.produce),
            Stage::Sink => json!(s.stages.sink),
            Stage::Clean => json!(s.stages.clean),
            Stage::Load => json!([
                s.stages.load,
                s.hbase.thrift_transport,
                s.hbase.thrift_protocol
            ]),
            Stage::Stream => json!([
                self.streaming(),
                s.hbase.thrift_transport,
                s.hbase.thrift_protocol
            ]),
        };
        let v = json!([s.image, s.image_pull_policy, s.kafka.security, settings]);
        short_hash(v.to_string().as_bytes())
    }

    /// The run key summarising all stage keys (shown in status).
    pub fn run_key(&self) -> &str {
        self.stage_key(Stage::Load)
    }

    /// Whether the pipeline runs in streaming mode.
    pub fn is_streaming(&self) -> bool {
        self.spec.mode == Mode::Streaming
    }

    /// The streaming settings, their defaults when `spec.streaming` is absent.
    pub fn streaming(&self) -> StreamingSpec {
        self.spec.streaming.clone().unwrap_or_default()
    }
}

/// Validates `obj` into a [`Pipeline`].
pub fn validate(obj: &EcomPipeline) -> Result<Pipeline, Error> {
    let resource = format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any());
    let missing = |field| Error::MissingMetadata {
        resource: resource.clone(),
        field,
    };
    let namespace = obj
        .namespace()
        .ok_or_else(|| missing("metadata.namespace"))?;
    let uid = obj.uid().ok_or_else(|| missing("metadata.uid"))?;
    let name = obj
        .metadata
        .name
        .clone()
        .ok_or_else(|| missing("metadata.name"))?;
    let spec = obj.spec.clone();
    let hdfs = spec.hdfs.url.trim_end_matches('/');
    let dir = default_data_dir(&namespace, &name);
    let raw_path = spec.hdfs.raw_path.clone().unwrap_or(format!("{dir}/raw"));
    let clean_path = spec
        .hdfs
        .clean_path
        .clone()
        .unwrap_or(format!("{dir}/clean"));
    // The schema keeps two given paths apart; a default can still meet a given one.
    if nested(&raw_path, &clean_path) {
        return Err(Error::PathsOverlap {
            resource,
            raw: raw_path,
            clean: clean_path,
        });
    }
    let raw_url = format!("{hdfs}{raw_path}");
    let clean_url = format!("{hdfs}{clean_path}");
    let thrift = format!("{}:{}", spec.hbase.thrift_host, spec.hbase.thrift_port);
    let topic = spec
        .kafka
        .topic
        .clone()
        .unwrap_or_else(|| default_topic(&namespace, &name));
    let table = spec
        .hbase
        .table
        .clone()
        .unwrap_or_else(|| default_table(&namespace, &name));
    let keys = stage_keys(&spec, &topic, &table, [&raw_url, &clean_url, &thrift]);
    Ok(Pipeline {
        owner: Owner {
            name,
            namespace,
            uid,
        },
        generation: obj.metadata.generation.unwrap_or(0),
        created: obj.metadata.creation_timestamp.as_ref().map(|t| t.0),
        started: obj.status.as_ref().is_some_and(|s| !s.stages.is_empty()),
        spec,
        raw_url,
        clean_url,
        thrift,
        topic,
        table,
        keys,
    })
}

/// Whether two absolute paths are equal or one lies inside the other.
pub fn nested(a: &str, b: &str) -> bool {
    let inside = |x: &str, y: &str| x.strip_prefix(y).is_some_and(|rest| rest.starts_with('/'));
    a == b || inside(a, b) || inside(b, a)
}

fn stage_keys(
    spec: &EcomPipelineSpec,
    topic: &str,
    table: &str,
    [raw, clean, thrift]: [&str; 3],
) -> [String; 5] {
    let k = &spec.kafka;
    let produce = json!([
        "produce",
        spec.run_id,
        spec.source,
        k.bootstrap,
        topic,
        k.partitions,
        k.replication_factor
    ]);
    let produce = short_hash(produce.to_string().as_bytes());
    let sink = short_hash(
        json!(["sink", produce, raw, spec.mode])
            .to_string()
            .as_bytes(),
    );
    let clean_key = short_hash(json!(["clean", sink, clean]).to_string().as_bytes());
    let h = &spec.hbase;
    // The Thrift transport and protocol say how the load reaches HBase, not what it writes.
    let load = json!(["load", clean_key, thrift, table, h.salt_buckets]);
    let load = short_hash(load.to_string().as_bytes());
    // The stream stage writes what sink, clean and load write, from the produced topic.
    let stream = json!(["stream", produce, raw, clean, thrift, table, h.salt_buckets]);
    let stream = short_hash(stream.to_string().as_bytes());
    [produce, sink, clean_key, load, stream]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{ThriftProtocol, ThriftTransport};
    use crate::test_support::example;

    #[test]
    fn example_is_valid_and_keys_are_stable() {
        let p = validate(&example()).expect("valid");
        assert_eq!(p.raw_url, "hdfs://namenode:9000/ecom/shop/demo/raw");
        assert_eq!(p.clean_url, "hdfs://namenode:9000/ecom/shop/demo/clean");
        assert_eq!(p.table, "ecommerce");
        assert_eq!(p.topic, "transactions");
        assert_eq!(p.thrift, "hbase-thrift:9090");
        let again = validate(&example()).expect("valid");
        assert_eq!(p.stage_key(Stage::Load), again.stage_key(Stage::Load));
    }

    #[test]
    fn a_downstream_change_keeps_upstream_keys() {
        let a = validate(&example()).expect("valid");
        let mut obj = example();
        obj.spec.hbase.table = Some("other".into());
        let b = validate(&obj).expect("valid");
        for s in [Stage::Produce, Stage::Sink, Stage::Clean] {
            assert_eq!(a.stage_key(s), b.stage_key(s), "{s}");
        }
        assert_ne!(a.stage_key(Stage::Load), b.stage_key(Stage::Load));
        obj.spec.run_id += 1;
        let c = validate(&obj).expect("valid");
        for s in Stage::ALL {
            assert_ne!(b.stage_key(s), c.stage_key(s), "{s}");
        }
    }

    #[test]
    fn execution_settings_do_not_change_keys() {
        let a = validate(&example()).expect("valid");
        let mut obj = example();
        obj.spec.image = "other:1".into();
        obj.spec.stages.load.parallelism = 4;
        let b = validate(&obj).expect("valid");
        for s in Stage::ALL {
            assert_eq!(a.stage_key(s), b.stage_key(s));
        }
        assert_ne!(a.exec_hash(Stage::Load), b.exec_hash(Stage::Load));
    }

    #[test]
    fn thrift_wire_changes_no_key_but_replaces_a_failed_load() {
        let a = validate(&example()).expect("valid");
        assert_eq!(a.spec.hbase.thrift_transport, ThriftTransport::Buffered);
        assert_eq!(a.spec.hbase.thrift_protocol, ThriftProtocol::Binary);
        let mut obj = example();
        obj.spec.hbase.thrift_transport = ThriftTransport::Framed;
        obj.spec.hbase.thrift_protocol = ThriftProtocol::Compact;
        let b = validate(&obj).expect("valid");
        assert_eq!(b.spec.hbase.thrift_transport, ThriftTransport::Framed);
        assert_eq!(b.spec.hbase.thrift_protocol, ThriftProtocol::Compact);
        for s in Stage::ALL {
            assert_eq!(a.stage_key(s), b.stage_key(s), "{s}");
        }
        assert_ne!(a.exec_hash(Stage::Load), b.exec_hash(Stage::Load));
        for s in [Stage::Produce, Stage::Sink, Stage::Clean] {
            assert_eq!(a.exec_hash(s), b.exec_hash(s), "{s}");
        }
    }

    #[test]
    fn unknown_thrift_wire_values_are_refused() {
        let text = include_str!("../tests/fixtures/example.yaml");
        let hbase = "    thriftHost: hbase-thrift\n";
        assert!(text.contains(hbase));
        for (field, bad, expected) in [
            ("thriftTransport", "zmq", "`buffered` or `framed`"),
            ("thriftProtocol", "json", "`binary` or `compact`"),
        ] {
            let yaml = text.replace(hbase, &format!("{hbase}    {field}: {bad}\n"));
            let msg = serde_yaml::from_str::<EcomPipeline>(&yaml)
                .expect_err("unknown variant")
                .to_string();
            assert!(msg.contains(&format!("spec.hbase.{field}")), "{msg}");
            assert!(msg.contains(&format!("unknown variant `{bad}`")), "{msg}");
            assert!(msg.contains(expected), "{msg}");
        }
        let yaml = text.replace(
            hbase,
            &format!("{hbase}    thriftTransport: framed\n    thriftProtocol: compact\n"),
        );
        let obj: EcomPipeline = serde_yaml::from_str(&yaml).expect("known variants");
        assert_eq!(obj.spec.hbase.thrift_transport, ThriftTransport::Framed);
        assert_eq!(obj.spec.hbase.thrift_protocol, ThriftProtocol::Compact);
    }

    #[test]
    fn clean_settings_without_max_run_bytes_hash_as_before() {
        // Unset, maxRunBytes is omitted: a clean's exec hash is what it was before the field.
        let before = json!(crate::crd::ParallelStageSpec::default());
        assert_eq!(json!(crate::crd::CleanStageSpec::default()), before);
        let mut obj = example();
        obj.spec.stages.clean.max_run_bytes = Some(268_435_456);
        let a = validate(&example()).expect("valid");
        let b = validate(&obj).expect("valid");
        assert_ne!(a.exec_hash(Stage::Clean), b.exec_hash(Stage::Clean));
        assert_eq!(a.exec_hash(Stage::Load), b.exec_hash(Stage::Load));
    }

    #[test]
    fn missing_metadata_is_named() {
        let mut obj = example();
        obj.metadata.uid = None;
        let msg = validate(&obj).expect_err("no uid").to_string();
        assert_eq!(msg, "EcomPipeline shop/demo has no metadata.uid");
    }
}
