//! Golden tests of every builder: the whole built object, owner references and labels
//! included, compared as JSON with `tests/golden/<name>.json`.
//! Regenerate after an intended change with `UPDATE_GOLDEN=1 cargo test -p ecom-operator`.

use std::path::PathBuf;

use ecom_operator::build::stream::{self, StreamShape};
use ecom_operator::build::{self, JobOptions};
use ecom_operator::crd::{EcomPipeline, Mode, StreamingSpec, ThriftProtocol, ThriftTransport};
use ecom_operator::meta::Stage;
use ecom_operator::validate::{validate, Pipeline};
use serde::Serialize;

fn fixture(name: &str) -> EcomPipeline {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/{name}.yaml"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn pipeline(name: &str) -> Pipeline {
    validate(&fixture(name)).expect("fixture is valid")
}

/// The example in streaming mode with the default streaming settings but two shards.
fn streaming() -> Pipeline {
    let mut obj = fixture("example");
    obj.spec.mode = Mode::Streaming;
    obj.spec.streaming = Some(StreamingSpec {
        shards: 2,
        ..StreamingSpec::default()
    });
    validate(&obj).expect("valid")
}

fn golden(name: &str, value: &impl Serialize) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/{name}.json"));
    let actual = serde_json::to_string_pretty(value).expect("serializes") + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} is missing: run with UPDATE_GOLDEN=1", path.display()));
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        let show = |s: &str| {
            s.lines()
                .skip(line.saturating_sub(3))
                .take(7)
                .collect::<Vec<_>>()
                .join("\n")
        };
        panic!(
            "{name} differs from {} at line {}:\n--- expected\n{}\n--- actual\n{}\n(UPDATE_GOLDEN=1 regenerates)",
            path.display(),
            line + 1,
            show(&expected),
            show(&actual)
        );
    }
}

#[test]
fn produce_job_with_generated_source() {
    golden(
        "job-produce-generated",
        &build::stage_job(&pipeline("example"), Stage::Produce, JobOptions::default()),
    );
}

#[test]
fn sink_job_gated_until_produce_succeeds() {
    let opts = JobOptions { suspend: true };
    golden(
        "job-sink-gated",
        &build::stage_job(&pipeline("example"), Stage::Sink, opts),
    );
}

#[test]
fn clean_and_load_jobs() {
    let p = pipeline("example");
    golden(
        "job-clean",
        &build::stage_job(&p, Stage::Clean, JobOptions::default()),
    );
    golden(
        "job-load",
        &build::stage_job(&p, Stage::Load, JobOptions::default()),
    );
}

#[test]
fn produce_and_sink_jobs_with_file_source_sasl_and_tls() {
    let p = pipeline("secure-parallel");
    golden(
        "job-produce-file-sasl-tls",
        &build::stage_job(&p, Stage::Produce, JobOptions::default()),
    );
    golden(
        "job-sink-sasl-tls",
        &build::stage_job(&p, Stage::Sink, JobOptions::default()),
    );
    // The credentials reach the container only as Secret-backed env, never as args.
    for stage in [Stage::Produce, Stage::Sink] {
        let job = build::stage_job(&p, stage, JobOptions::default());
        let c = &job
            .spec
            .and_then(|s| s.template.spec)
            .expect("pod spec")
            .containers[0];
        let args = c.args.clone().unwrap_or_default().join(" ");
        assert!(!args.contains("sasl.password"), "{stage}: {args}");
        assert!(!args.contains("sasl.username"), "{stage}: {args}");
        for var in ["KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"] {
            let e = c
                .env
                .iter()
                .flatten()
                .find(|e| e.name == var)
                .unwrap_or_else(|| panic!("{stage}: no {var}"));
            assert!(e.value.is_none(), "{stage}: {var} has a literal value");
            let secret = e
                .value_from
                .as_ref()
                .and_then(|v| v.secret_key_ref.as_ref());
            assert!(secret.is_some(), "{stage}: {var} not from a Secret");
        }
    }
}

/// `ECOM_CLEAN_MAX_RUN_BYTES` of the clean container: `maxRunBytes` when set, else a fifth
/// of the clean pods' memory limit above 128 MiB.
#[test]
fn clean_jobs_with_max_run_bytes() {
    let env = |job: &k8s_openapi::api::batch::v1::Job| {
        job.spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .and_then(|pod| pod.containers[0].env.clone())
            .unwrap_or_default()
            .into_iter()
            .find(|e| e.name == "ECOM_CLEAN_MAX_RUN_BYTES")
            .and_then(|e| e.value)
    };
    let explicit = build::stage_job(
        &pipeline("clean-max-run-bytes"),
        Stage::Clean,
        JobOptions::default(),
    );
    assert_eq!(env(&explicit).as_deref(), Some("268435456"));
    golden("job-clean-max-run-bytes", &explicit);
    let mut obj = fixture("clean-max-run-bytes");
    obj.spec.stages.clean.max_run_bytes = None;
    let derived = validate(&obj).expect("valid");
    let derived = build::stage_job(&derived, Stage::Clean, JobOptions::default());
    // A fifth of the 2Gi limit above 128 MiB: 384 MiB.
    assert_eq!(env(&derived).as_deref(), Some("402653184"));
    golden("job-clean-memory-limit", &derived);
    // Without a limit, no environment variable: the clean takes all its input in one run.
    let plain = build::stage_job(&pipeline("example"), Stage::Clean, JobOptions::default());
    assert_eq!(env(&plain), None);
}

#[test]
fn indexed_clean_and_load_jobs() {
    let p = pipeline("secure-parallel");
    golden(
        "job-clean-indexed",
        &build::stage_job(&p, Stage::Clean, JobOptions::default()),
    );
    golden(
        "job-load-indexed-salted",
        &build::stage_job(&p, Stage::Load, JobOptions::default()),
    );
}

#[test]
fn streaming_producer_and_stream_statefulset() {
    let p = streaming();
    // A paced producer may run long: no deadline in streaming mode.
    golden(
        "job-produce-streaming",
        &build::stage_job(&p, Stage::Produce, JobOptions::default()),
    );
    golden(
        "statefulset-stream",
        &stream::statefulset(&p, StreamShape::desired(&p)),
    );
}

/// Three shards over SASL_SSL: the CA mounted, the credentials only as Secret-backed env,
/// the shard index from the pod index, the streaming settings in the flags.
#[test]
fn stream_statefulset_with_sasl_tls_and_resources() {
    let p = pipeline("streaming-secure");
    let sts = stream::statefulset(&p, StreamShape::desired(&p));
    golden("statefulset-stream-sasl-tls", &sts);
    let spec = sts.spec.expect("spec");
    assert_eq!(spec.replicas, Some(3));
    assert_eq!(spec.pod_management_policy.as_deref(), Some("Parallel"));
    let c = &spec.template.spec.expect("pod spec").containers[0];
    let args = c.args.clone().unwrap_or_default().join(" ");
    assert!(
        args.contains("--batch-interval 500ms --max-batch-records 50000 --shard 3"),
        "{args}"
    );
    assert!(!args.contains("sasl.password"), "{args}");
    let env = |name: &str| {
        c.env
            .iter()
            .flatten()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("no {name}"))
            .clone()
    };
    let index = env("ECOM_SHARD_INDEX").value_from.expect("downward API");
    assert_eq!(
        index.field_ref.map(|f| f.field_path).as_deref(),
        Some("metadata.labels['apps.kubernetes.io/pod-index']")
    );
    for var in ["KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"] {
        let e = env(var);
        assert!(e.value.is_none(), "{var} has a literal value");
        assert!(e.value_from.and_then(|v| v.secret_key_ref).is_some());
    }
    // Suspended: no pod, the same template.
    let mut obj = fixture("streaming-secure");
    obj.spec.suspend = true;
    let suspended = validate(&obj).expect("valid");
    let shape = StreamShape::desired(&suspended);
    assert_eq!(shape.replicas, 0);
    let zero = stream::statefulset(&suspended, shape).spec.expect("spec");
    assert_eq!(zero.replicas, Some(0));
    assert_eq!(
        zero.template,
        stream::statefulset(&p, StreamShape::desired(&p))
            .spec
            .expect("spec")
            .template
    );
}

#[test]
fn dashboard_deployment_and_service() {
    let p = pipeline("example");
    golden("deployment-dashboard", &build::dashboard_deployment(&p));
    golden("service-dashboard", &build::dashboard_service(&p));
    let p = pipeline("secure-parallel");
    golden(
        "deployment-dashboard-secure",
        &build::dashboard_deployment(&p),
    );
    golden("service-dashboard-nodeport", &build::dashboard_service(&p));
}

#[test]
fn cleanup_job() {
    golden(
        "job-cleanup",
        &build::cleanup_job(&pipeline("secure-parallel")),
    );
}

#[test]
fn framed_compact_thrift_reaches_load_dashboard_and_cleanup() {
    let p = pipeline("thrift-framed-compact");
    golden(
        "job-load-framed-compact",
        &build::stage_job(&p, Stage::Load, JobOptions::default()),
    );
    golden(
        "deployment-dashboard-framed-compact",
        &build::dashboard_deployment(&p),
    );
    golden("job-cleanup-framed-compact", &build::cleanup_job(&p));
    // How HBase is reached is not part of the load's key: the same Job name as with the
    // defaults, so a completed load is not run again.
    let mut obj = fixture("thrift-framed-compact");
    obj.spec.hbase.thrift_transport = ThriftTransport::Buffered;
    obj.spec.hbase.thrift_protocol = ThriftProtocol::Binary;
    let defaults = validate(&obj).expect("valid");
    assert_eq!(
        build::job_name(&p, Stage::Load),
        build::job_name(&defaults, Stage::Load)
    );
}

#[test]
fn committed_crd_is_current() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crds/ecompipelines.yaml");
    let actual = ecom_operator::crd_yaml().expect("CRD serializes");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &actual).expect("write CRD");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == actual,
        "{} is stale: run `make crds` (or UPDATE_GOLDEN=1 cargo test -p ecom-operator)",
        path.display()
    );
}

/// `kubectl explain` shows a description for every field of the spec and status.
#[test]
fn every_schema_field_has_a_description() {
    fn walk(path: &str, v: &serde_json::Value, missing: &mut Vec<String>) {
        if let Some(props) = v.get("properties").and_then(|p| p.as_object()) {
            for (k, child) in props {
                let p = format!("{path}.{k}");
                if child.get("description").is_none()
                    && !matches!(k.as_str(), "apiVersion" | "kind" | "metadata")
                {
                    missing.push(p.clone());
                }
                walk(&p, child, missing);
            }
        }
        for key in ["items", "additionalProperties"] {
            if let Some(child) = v.get(key) {
                walk(&format!("{path}[]"), child, missing);
            }
        }
    }
    let crd = serde_json::to_value(ecom_operator::crd()).expect("CRD");
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let mut missing = Vec::new();
    walk("", schema, &mut missing);
    assert!(
        missing.is_empty(),
        "fields without description: {missing:?}"
    );
}
