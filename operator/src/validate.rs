//! Validation: an `EcomPipeline` as read from the API becomes a typed [`Pipeline`] or a list
//! of field errors. Pure. The CRD schema refuses most bad specs already; this repeats the
//! cross-field rules so objects stored before a schema change are caught too.

use std::fmt;

use kube::ResourceExt;
use serde_json::json;

use crate::crd::{
    EcomPipeline, EcomPipelineSpec, KafkaProtocol, Mode, ServiceType, MIN_MAX_RUN_BYTES,
};
use crate::meta::{short_hash, Owner, Stage};

/// Errors of validation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec breaks one or more rules.
    #[error("EcomPipeline {resource} is invalid: {}", join(.errors))]
    Invalid {
        /// `namespace/name` of the resource.
        resource: String,
        /// Every broken rule.
        errors: Vec<FieldError>,
    },
    /// The object lacks metadata the API server always sets.
    #[error("EcomPipeline {resource} has no {field}")]
    MissingMetadata {
        /// `namespace/name` of the resource.
        resource: String,
        /// The missing field.
        field: &'static str,
    },
}

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A broken rule at a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field, e.g. `spec.hdfs.cleanPath`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// A validated pipeline: the spec with its derived values.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    /// The owning resource.
    pub owner: Owner,
    /// `metadata.generation`.
    pub generation: i64,
    /// The spec (defaults applied by the API server).
    pub spec: EcomPipelineSpec,
    /// `hdfs://namenode:port/raw/path`.
    pub raw_url: String,
    /// `hdfs://namenode:port/clean/path`.
    pub clean_url: String,
    /// `host:port` of the HBase Thrift server.
    pub thrift: String,
    keys: [String; 4],
}

impl Pipeline {
    /// Key of a stage's data: a hash of what defines the stage's output, chained from the
    /// upstream stage, so a change re-runs the stage and everything after it, and nothing
    /// before it. Execution settings (image, resources, limits) are not part of it.
    pub fn stage_key(&self, stage: Stage) -> &str {
        &self.keys[stage as usize]
    }

    /// Hash of a stage's execution settings (for load also the Thrift transport and
    /// protocol); a failed Job with other settings is replaced.
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
        };
        let v = json!([s.image, s.image_pull_policy, s.kafka.security, settings]);
        short_hash(v.to_string().as_bytes())
    }

    /// The run key summarising all stage keys (shown in status).
    pub fn run_key(&self) -> &str {
        self.stage_key(Stage::Load)
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
    let errors = check(&name, &obj.spec);
    if !errors.is_empty() {
        return Err(Error::Invalid { resource, errors });
    }
    let spec = obj.spec.clone();
    let hdfs = spec.hdfs.url.trim_end_matches('/');
    let raw_url = format!("{hdfs}{}", spec.hdfs.raw_path);
    let clean_url = format!("{hdfs}{}", spec.hdfs.clean_path);
    let thrift = format!("{}:{}", spec.hbase.thrift_host, spec.hbase.thrift_port);
    let keys = stage_keys(&spec, &raw_url, &clean_url, &thrift);
    Ok(Pipeline {
        owner: Owner {
            name,
            namespace,
            uid,
        },
        generation: obj.metadata.generation.unwrap_or(0),
        spec,
        raw_url,
        clean_url,
        thrift,
        keys,
    })
}

fn stage_keys(spec: &EcomPipelineSpec, raw: &str, clean: &str, thrift: &str) -> [String; 4] {
    let k = &spec.kafka;
    let produce = json!([
        "produce",
        spec.run_id,
        spec.source,
        k.bootstrap,
        k.topic,
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
    let load = json!(["load", clean_key, thrift, h.table, h.salt_buckets]);
    let load = short_hash(load.to_string().as_bytes());
    [produce, sink, clean_key, load]
}

fn is_dns_label(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && !name.ends_with('-')
}

fn nested(a: &str, b: &str) -> bool {
    a == b || b.starts_with(&format!("{a}/")) || a.starts_with(&format!("{b}/"))
}

/// Every broken rule of `spec` (and of the resource name).
pub fn check(name: &str, spec: &EcomPipelineSpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut err = |path: &str, message: &str| {
        errors.push(FieldError {
            path: path.to_string(),
            message: message.to_string(),
        })
    };
    if !is_dns_label(name) {
        err(
            "metadata.name",
            "must be a DNS-1035 label (lower-case letters, digits, '-', starting with a letter)",
        );
    }
    if spec.image.trim().is_empty() {
        err("spec.image", "must not be empty");
    }
    if spec.streaming.is_some() && spec.mode != Mode::Streaming {
        err("spec.streaming", "requires mode: streaming");
    }
    let src = &spec.source;
    let sources = [
        src.generated.is_some(),
        src.file.is_some(),
        src.url.is_some(),
    ];
    if sources.iter().filter(|s| **s).count() != 1 {
        err(
            "spec.source",
            "exactly one of source.generated, source.file or source.url must be set",
        );
    }
    if let Some(g) = &src.generated {
        if !(0.0..=1.0).contains(&g.dirty_rate) {
            err("spec.source.generated.dirtyRate", "must be between 0 and 1");
        }
        if g.rows < 1 {
            err("spec.source.generated.rows", "must be at least 1");
        }
        if g.rate_per_second
            .is_some_and(|r| !(r > 0.0 && r.is_finite()))
        {
            err(
                "spec.source.generated.ratePerSecond",
                "must be a positive number",
            );
        }
    }
    if let Some(f) = &src.file {
        if f.path.starts_with('/') || f.path.split('/').any(|p| p == "..") {
            err(
                "spec.source.file.path",
                "must be relative to the volume and not contain '..'",
            );
        }
    }
    if !spec.kafka.bootstrap.contains(':') {
        err("spec.kafka.bootstrap", "must be a host:port list");
    }
    if spec.kafka.partitions < 1 {
        err("spec.kafka.partitions", "must be at least 1");
    }
    if let Some(sec) = &spec.kafka.security {
        let sasl = matches!(
            sec.protocol,
            KafkaProtocol::SASL_PLAINTEXT | KafkaProtocol::SASL_SSL
        );
        if sasl != sec.sasl.is_some() {
            err(
                "spec.kafka.security.sasl",
                "sasl is required exactly when protocol is SASL_PLAINTEXT or SASL_SSL",
            );
        }
        let tls = matches!(sec.protocol, KafkaProtocol::SSL | KafkaProtocol::SASL_SSL);
        if sec.tls.is_some() && !tls {
            err(
                "spec.kafka.security.tls",
                "tls requires protocol SSL or SASL_SSL",
            );
        }
    }
    let h = &spec.hdfs;
    if !h.url.starts_with("hdfs://") {
        err("spec.hdfs.url", "must start with hdfs://");
    }
    for (path, value) in [
        ("spec.hdfs.rawPath", &h.raw_path),
        ("spec.hdfs.cleanPath", &h.clean_path),
    ] {
        if !value.starts_with('/') {
            err(path, "must be an absolute path");
        }
    }
    if nested(&h.raw_path, &h.clean_path) {
        err(
            "spec.hdfs.cleanPath",
            "rawPath and cleanPath must be different and not inside each other",
        );
    }
    if !(1..=65535).contains(&spec.hbase.thrift_port) {
        err("spec.hbase.thriftPort", "must be between 1 and 65535");
    }
    for (path, p) in [
        (
            "spec.stages.clean.parallelism",
            spec.stages.clean.parallelism,
        ),
        ("spec.stages.load.parallelism", spec.stages.load.parallelism),
    ] {
        if !(1..=64).contains(&p) {
            err(path, "must be between 1 and 64");
        }
    }
    if spec
        .stages
        .clean
        .max_run_bytes
        .is_some_and(|b| b < MIN_MAX_RUN_BYTES)
    {
        err(
            "spec.stages.clean.maxRunBytes",
            "must be at least 1048576 (1 MiB)",
        );
    }
    let d = &spec.dashboard;
    if d.node_port.is_some() && d.service_type == ServiceType::ClusterIP {
        err(
            "spec.dashboard.nodePort",
            "nodePort requires serviceType NodePort or LoadBalancer",
        );
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{ThriftProtocol, ThriftTransport};
    use crate::test_support::{example, example_spec};

    #[test]
    fn example_is_valid_and_keys_are_stable() {
        let p = validate(&example()).expect("valid");
        assert_eq!(p.raw_url, "hdfs://namenode:9000/ecom/raw");
        assert_eq!(p.thrift, "hbase-thrift:9090");
        let again = validate(&example()).expect("valid");
        assert_eq!(p.stage_key(Stage::Load), again.stage_key(Stage::Load));
    }

    #[test]
    fn a_downstream_change_keeps_upstream_keys() {
        let a = validate(&example()).expect("valid");
        let mut obj = example();
        obj.spec.hbase.table = "other".into();
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
    fn clean_max_run_bytes_below_one_mib_is_refused() {
        let mut spec = example_spec();
        spec.stages.clean.max_run_bytes = Some(MIN_MAX_RUN_BYTES);
        assert!(check("demo", &spec).is_empty());
        spec.stages.clean.max_run_bytes = Some(MIN_MAX_RUN_BYTES - 1);
        let errors = check("demo", &spec);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, "spec.stages.clean.maxRunBytes");
        assert!(errors[0].message.contains("at least 1048576"), "{errors:?}");
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
    fn errors_name_the_field() {
        let mut spec = example_spec();
        spec.hdfs.clean_path = "/ecom/raw/clean".into();
        spec.source.url = Some("https://example.com/x.tsv".into());
        spec.dashboard.node_port = Some(30080);
        let paths: Vec<_> = check("Bad.Name", &spec)
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(
            paths,
            [
                "metadata.name",
                "spec.source",
                "spec.hdfs.cleanPath",
                "spec.dashboard.nodePort"
            ]
        );
        let mut obj = example();
        obj.spec = spec;
        let msg = validate(&obj).expect_err("invalid").to_string();
        assert!(
            msg.contains("EcomPipeline shop/demo is invalid: spec.source: exactly one"),
            "{msg}"
        );
    }
}
