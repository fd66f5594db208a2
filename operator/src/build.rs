//! Builders: pure functions from a validated [`Pipeline`] to the objects the operator applies
//! (a Job per stage, the stream StatefulSet of streaming mode in [`stream`], the dashboard
//! Deployment and Service, the cleanup Job). They only read their arguments, so golden tests
//! can pin every field.
//!
//! The stage containers' arguments are rendered from the typed commands of
//! [`ecom_contract::command`] and their environment uses the names of [`ecom_contract::env`]:
//! the Kafka and HBase addresses (with the Thrift server's wire), Kafka security as
//! `--kafka-property` librdkafka settings except the credentials, which come from the Secret
//! (`secretKeyRef`; never in the args, which the process list shows), the deadline slightly
//! below the Job's `activeDeadlineSeconds`, the clean's run-size limit (see
//! [`clean_max_run_bytes`]) and `--shard INDEX/COUNT` in Indexed Jobs. HDFS addresses travel
//! in the `hdfs://` URLs of the flags. Each stage prints a typed summary
//! ([`ecom_contract::summary`]) as its last line of standard output and writes it to the
//! termination-message file (`/dev/termination-log`), where the operator reads the counts.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    HTTPGetAction, KeyToPath, ObjectFieldSelector, PersistentVolumeClaimVolumeSource,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile,
    SecretKeySelector, SecretVolumeSource, SecurityContext, Service, ServicePort, ServiceSpec,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use ecom_contract::command::{self, Command, ProduceSource, SinkEnd};
use ecom_contract::env as names;

use crate::crd::{CleanStageSpec, ResourceAmounts, Resources, MIN_MAX_RUN_BYTES};
use crate::meta::{Stage, ANNOTATION_EXEC_HASH, LABEL_COMPONENT, LABEL_STAGE_KEY};
use crate::validate::Pipeline;

/// Where the stage containers keep scratch files (an emptyDir).
pub const WORK_DIR: &str = "/work";
/// Where a `source.file` volume is mounted in the producer.
pub const SOURCE_DIR: &str = "/data";
/// Where the Kafka CA certificate Secret is mounted.
pub const KAFKA_TLS_DIR: &str = "/etc/ecom/kafka-tls";
/// Non-root user of every container.
const RUN_AS: i64 = 65532;
/// Annotation: the generation a Job was built for.
pub const ANNOTATION_GENERATION: &str = "pipelines.ecom-pipeline.io/generation";

pub mod stream;

/// Per-Job choices the plan makes (not in the spec).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JobOptions {
    /// Create or keep the Job suspended (`spec.suspend`).
    pub suspend: bool,
}

/// Name of a stage's Job: `<pipeline>-<stage>-<stage key>`.
pub fn job_name(p: &Pipeline, stage: Stage) -> String {
    p.owner
        .child_name(&format!("{stage}-{}", p.stage_key(stage)))
}

/// Name of the dashboard Deployment and Service.
pub fn dashboard_name(p: &Pipeline) -> String {
    p.owner.child_name("dashboard")
}

/// Name of the cleanup Job the finalizer runs with `cleanupPolicy: Delete`.
pub fn cleanup_job_name(p: &Pipeline) -> String {
    p.owner
        .child_name(&format!("cleanup-{}", p.stage_key(Stage::Load)))
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value.into()),
        value_from: None,
    }
}

fn secret_env(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.to_string(),
                key: key.to_string(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
    }
}

fn quantities(a: &Option<ResourceAmounts>) -> Option<BTreeMap<String, Quantity>> {
    let a = a.as_ref()?;
    let mut m = BTreeMap::new();
    if let Some(cpu) = &a.cpu {
        m.insert("cpu".to_string(), Quantity(cpu.clone()));
    }
    if let Some(mem) = &a.memory {
        m.insert("memory".to_string(), Quantity(mem.clone()));
    }
    Some(m).filter(|m| !m.is_empty())
}

fn resources(r: &Option<Resources>) -> Option<ResourceRequirements> {
    let r = r.as_ref()?;
    Some(ResourceRequirements {
        requests: quantities(&r.requests),
        limits: quantities(&r.limits),
        claims: None,
    })
}

fn container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_string()]),
            add: None,
        }),
        ..SecurityContext::default()
    }
}

fn pod_security() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(RUN_AS),
        run_as_group: Some(RUN_AS),
        fs_group: Some(RUN_AS),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_string(),
            localhost_profile: None,
        }),
        ..PodSecurityContext::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.to_string(),
        mount_path: path.to_string(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.to_string(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }
}

/// A container running `ecom <args>` with the common settings.
fn ecom_container(p: &Pipeline, name: &str, args: Vec<String>, env: Vec<EnvVar>) -> Container {
    Container {
        name: name.to_string(),
        image: Some(p.spec.image.clone()),
        image_pull_policy: Some(p.spec.image_pull_policy.as_str().to_string()),
        command: Some(vec!["ecom".to_string()]),
        args: Some(args),
        env: Some(env),
        security_context: Some(container_security()),
        termination_message_policy: Some("FallbackToLogsOnError".to_string()),
        volume_mounts: Some(vec![
            mount("work", WORK_DIR, false),
            mount("tmp", "/tmp", false),
        ]),
        ..Container::default()
    }
}

/// Environment every container of the pipeline gets.
pub(crate) fn common_env() -> Vec<EnvVar> {
    vec![env(names::RUST_LOG, "info")]
}

/// The pipeline's identity, which the stages that write storage mark it with (and `ecom
/// purge` checks).
pub(crate) fn identity_env(p: &Pipeline) -> [EnvVar; 2] {
    [
        env(names::PIPELINE_UID, p.owner.uid.clone()),
        env(
            names::PIPELINE,
            format!("{}/{}", p.owner.namespace, p.owner.name),
        ),
    ]
}

/// HBase Thrift address, transport and protocol as environment variables (`ecom load`,
/// `ecom dashboard` and `ecom purge` read them).
fn hbase_env(p: &Pipeline) -> [EnvVar; 3] {
    [
        env(names::HBASE_THRIFT, p.thrift.clone()),
        env(
            names::HBASE_THRIFT_TRANSPORT,
            p.spec.hbase.thrift_transport.as_str(),
        ),
        env(
            names::HBASE_THRIFT_PROTOCOL,
            p.spec.hbase.thrift_protocol.as_str(),
        ),
    ]
}

/// Kafka address and the security Secrets as environment variables.
fn kafka_env(p: &Pipeline) -> Vec<EnvVar> {
    let mut v = vec![env(names::KAFKA_BOOTSTRAP, p.spec.kafka.bootstrap.clone())];
    if let Some(sasl) = p.spec.kafka.security.as_ref().and_then(|s| s.sasl.as_ref()) {
        v.push(secret_env(
            names::KAFKA_SASL_USERNAME,
            &sasl.secret_name,
            &sasl.username_key,
        ));
        v.push(secret_env(
            names::KAFKA_SASL_PASSWORD,
            &sasl.secret_name,
            &sasl.password_key,
        ));
    }
    v
}

/// Kafka security as librdkafka properties (`--kafka-property KEY=VALUE`). The credentials
/// are not among them: the stage reads `KAFKA_SASL_USERNAME` and `KAFKA_SASL_PASSWORD` from
/// its Secret-backed environment ([`kafka_env`]).
fn kafka_properties(p: &Pipeline) -> Vec<(String, String)> {
    let Some(sec) = &p.spec.kafka.security else {
        return Vec::new();
    };
    let mut props = vec![(s("security.protocol"), s(sec.protocol.as_str()))];
    if let Some(sasl) = &sec.sasl {
        props.push((s("sasl.mechanism"), s(sasl.mechanism.as_str())));
    }
    if let Some(tls) = &sec.tls {
        props.push((
            s("ssl.ca.location"),
            format!("{KAFKA_TLS_DIR}/{}", tls.ca_key),
        ));
    }
    props
}

/// A count from the validated spec (never negative there) as the flag's unsigned type.
fn unsigned<T: TryFrom<i64> + Default>(n: impl Into<i64>) -> T {
    T::try_from(n.into()).unwrap_or_default()
}

/// The Kafka CA Secret volume and its mount, when TLS trust is configured.
fn kafka_tls_volume(p: &Pipeline) -> Option<(Volume, VolumeMount)> {
    let tls = p.spec.kafka.security.as_ref()?.tls.as_ref()?;
    let volume = Volume {
        name: "kafka-tls".to_string(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(tls.ca_secret_name.clone()),
            items: Some(vec![KeyToPath {
                key: tls.ca_key.clone(),
                path: tls.ca_key.clone(),
                mode: None,
            }]),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    };
    Some((volume, mount("kafka-tls", KAFKA_TLS_DIR, true)))
}

/// Bytes of a Kubernetes memory quantity: an integer or decimal fraction with an optional
/// suffix, binary (`Ki` to `Ei`), decimal (`k`, `M` to `E`) or an exponent (`e9`). Fractions
/// of a byte round up, as Kubernetes does. `None` for anything else (milli, micro, garbage)
/// or above `u64::MAX`.
pub fn memory_bytes(quantity: &str) -> Option<u64> {
    let q = quantity.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let multiplier: u128 = match suffix {
        "" => 1,
        "k" => 1000,
        "M" => 1000u128.pow(2),
        "G" => 1000u128.pow(3),
        "T" => 1000u128.pow(4),
        "P" => 1000u128.pow(5),
        "E" => 1000u128.pow(6),
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "Pi" => 1 << 50,
        "Ei" => 1 << 60,
        _ => {
            let exponent: u32 = suffix
                .strip_prefix(['e', 'E'])
                .filter(|e| !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()))?
                .parse()
                .ok()?;
            10u128.checked_pow(exponent)?
        }
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return None;
    }
    // The digits as one integer, scaled back by the fraction's length (rounding up).
    let digits: u128 = format!("{whole}{fraction}").parse().ok()?;
    let scale = 10u128.checked_pow(u32::try_from(fraction.len()).ok()?)?;
    let bytes = digits.checked_mul(multiplier)?.div_ceil(scale);
    u64::try_from(bytes).ok()
}

/// `ECOM_CLEAN_MAX_RUN_BYTES` of the clean pods: `maxRunBytes` if set, else a fifth of their
/// memory limit above 128 MiB (at least 1 MiB) if it is set and parses, else none (no
/// limit). Measured on 5M rows, a run's peak is about 110 MB plus 3.5 bytes per raw byte,
/// so this keeps the peak near 70-80 % of the limit.
pub fn clean_max_run_bytes(clean: &CleanStageSpec) -> Option<u64> {
    /// What a clean pod uses before it holds any rows (measured about 110 MB).
    const CLEAN_BASE_MEMORY: u64 = 128 << 20;
    if let Some(explicit) = clean.max_run_bytes {
        return u64::try_from(explicit).ok();
    }
    let limit = clean
        .resources
        .as_ref()?
        .limits
        .as_ref()?
        .memory
        .as_deref()?;
    let floor = u64::try_from(MIN_MAX_RUN_BYTES).ok()?;
    let above_base = memory_bytes(limit)?.saturating_sub(CLEAN_BASE_MEMORY);
    Some((above_base / 5).max(floor))
}

fn s(v: impl ToString) -> String {
    v.to_string()
}

/// The Job of `stage` (one of [`Stage::ALL`]; the stream stage is [`stream::statefulset`]).
pub fn stage_job(p: &Pipeline, stage: Stage, opts: JobOptions) -> Job {
    let spec = &p.spec;
    let streaming = p.is_streaming();
    let mut volumes = vec![empty_dir("work"), empty_dir("tmp")];
    let mut env = common_env();
    let mut extra_mounts = Vec::new();
    let (settings_resources, backoff_limit, deadline, parallelism) = match stage {
        Stage::Produce => (
            &spec.stages.produce.resources,
            spec.stages.produce.backoff_limit,
            spec.stages.produce.active_deadline_seconds,
            1,
        ),
        Stage::Sink => (
            &spec.stages.sink.resources,
            spec.stages.sink.backoff_limit,
            spec.stages.sink.active_deadline_seconds,
            1,
        ),
        Stage::Clean => (
            &spec.stages.clean.resources,
            spec.stages.clean.backoff_limit,
            spec.stages.clean.active_deadline_seconds,
            spec.stages.clean.parallelism,
        ),
        // Not a Job: built as the load would be if asked (the plan never does).
        Stage::Load | Stage::Stream => (
            &spec.stages.load.resources,
            spec.stages.load.backoff_limit,
            spec.stages.load.active_deadline_seconds,
            spec.stages.load.parallelism,
        ),
    };
    let shards = (parallelism > 1).then(|| unsigned(parallelism));
    let command = match stage {
        Stage::Produce => {
            env.extend(kafka_env(p));
            let src = &spec.source;
            // The schema admits exactly one source: the file, else the generated data.
            let source = if let Some(f) = &src.file {
                volumes.push(Volume {
                    name: "source".to_string(),
                    persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                        claim_name: f.claim_name.clone(),
                        read_only: Some(true),
                    }),
                    ..Volume::default()
                });
                extra_mounts.push(mount("source", SOURCE_DIR, true));
                ProduceSource::File(format!("{SOURCE_DIR}/{}", f.path))
            } else {
                let g = src.generated.clone().unwrap_or_default();
                ProduceSource::Generated {
                    rows: unsigned(g.rows),
                    seed: unsigned(g.seed),
                    dirty_rate: g.dirty_rate,
                    rate_per_second: g.rate_per_second,
                }
            };
            Command::Produce(command::Produce {
                source,
                topic: p.topic.clone(),
                partitions: unsigned(spec.kafka.partitions),
                replication: unsigned(spec.kafka.replication_factor),
                kafka_properties: kafka_properties(p),
            })
        }
        Stage::Sink => {
            env.extend(kafka_env(p));
            env.extend(identity_env(p));
            Command::Sink(command::Sink {
                topic: p.topic.clone(),
                output: p.raw_url.clone(),
                end: SinkEnd::UntilCaughtUp,
                kafka_properties: kafka_properties(p),
            })
        }
        Stage::Clean => {
            env.extend(identity_env(p));
            if let Some(bytes) = clean_max_run_bytes(&spec.stages.clean) {
                env.push(self::env(names::CLEAN_MAX_RUN_BYTES, s(bytes)));
            }
            Command::Clean(command::Clean {
                input: p.raw_url.clone(),
                output: p.clean_url.clone(),
                shards,
            })
        }
        Stage::Load | Stage::Stream => {
            env.extend(hbase_env(p));
            env.extend(identity_env(p));
            Command::Load(command::Load {
                input: p.clean_url.clone(),
                table: p.table.clone(),
                salt_buckets: unsigned(spec.hbase.salt_buckets),
                shards,
            })
        }
    };
    if shards.is_some() {
        env.push(EnvVar {
            name: names::JOB_COMPLETION_INDEX.to_string(),
            value: None,
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    api_version: None,
                    field_path: "metadata.annotations['batch.kubernetes.io/job-completion-index']"
                        .to_string(),
                }),
                ..EnvVarSource::default()
            }),
        });
    }
    let args = command.args();
    if matches!(stage, Stage::Produce | Stage::Sink) {
        if let Some((volume, m)) = kafka_tls_volume(p) {
            volumes.push(volume);
            extra_mounts.push(m);
        }
    }
    let mut container = ecom_container(p, stage.as_str(), args, env);
    container.resources = resources(settings_resources);
    if let Some(mounts) = container.volume_mounts.as_mut() {
        mounts.extend(extra_mounts);
    }
    // The producer of a streaming pipeline may run for long (paced): it has no deadline.
    let deadline = (!(streaming && stage == Stage::Produce)).then_some(deadline);
    if let Some(d) = deadline {
        // The stage gives up with a clear message shortly before Kubernetes would kill it.
        let own = (d - d / 20).max(1);
        if let Some(env) = container.env.as_mut() {
            env.push(self::env(names::DEADLINE, format!("{own}s")));
        }
    }

    let name = job_name(p, stage);
    let mut meta = p.owner.child_meta(name, stage.as_str());
    let mut labels = meta.labels.take().unwrap_or_default();
    labels.insert(LABEL_STAGE_KEY.to_string(), p.stage_key(stage).to_string());
    meta.labels = Some(labels.clone());
    meta.annotations = Some(BTreeMap::from([
        (ANNOTATION_EXEC_HASH.to_string(), p.exec_hash(stage)),
        (ANNOTATION_GENERATION.to_string(), p.generation.to_string()),
    ]));
    let indexed = parallelism > 1;
    Job {
        metadata: meta,
        spec: Some(JobSpec {
            backoff_limit: Some(backoff_limit),
            active_deadline_seconds: deadline,
            ttl_seconds_after_finished: Some(spec.ttl_seconds_after_finished),
            suspend: Some(opts.suspend),
            completion_mode: Some(if indexed { "Indexed" } else { "NonIndexed" }.to_string()),
            completions: Some(parallelism),
            parallelism: Some(parallelism),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(hardened_pod(container, volumes, Some("Never"))),
            },
            ..JobSpec::default()
        }),
        status: None,
    }
}

/// Labels selecting the dashboard pods.
fn dashboard_selector(p: &Pipeline) -> BTreeMap<String, String> {
    let mut m = p.owner.selector_labels();
    m.insert(LABEL_COMPONENT.to_string(), "dashboard".to_string());
    m
}

/// The dashboard Deployment (`ecom dashboard` reading the HBase table).
pub fn dashboard_deployment(p: &Pipeline) -> Deployment {
    let d = &p.spec.dashboard;
    let args = Command::Dashboard(command::Dashboard {
        host: s("0.0.0.0"),
        port: unsigned(d.port),
        table: p.table.clone(),
    })
    .args();
    let mut env = common_env();
    env.extend(hbase_env(p));
    let mut c = ecom_container(p, "dashboard", args, env);
    c.resources = resources(&d.resources);
    c.termination_message_policy = None;
    c.ports = Some(vec![ContainerPort {
        name: Some("http".to_string()),
        container_port: d.port,
        protocol: Some("TCP".to_string()),
        ..ContainerPort::default()
    }]);
    let probe = |period| Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/api/status".to_string()),
            port: IntOrString::String("http".to_string()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        ..Probe::default()
    };
    c.readiness_probe = Some(probe(5));
    c.liveness_probe = Some(probe(20));
    let labels = p.owner.labels("dashboard");
    Deployment {
        metadata: p.owner.child_meta(dashboard_name(p), "dashboard"),
        spec: Some(DeploymentSpec {
            replicas: Some(d.replicas),
            selector: LabelSelector {
                match_labels: Some(dashboard_selector(p)),
                match_expressions: None,
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(hardened_pod(
                    c,
                    vec![empty_dir("work"), empty_dir("tmp")],
                    None,
                )),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}

/// A pod of one container with the project's hardening: no service-account
/// token, no service links, the restricted security context.
fn hardened_pod(
    container: Container,
    volumes: Vec<Volume>,
    restart_policy: Option<&str>,
) -> PodSpec {
    PodSpec {
        restart_policy: restart_policy.map(str::to_string),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        security_context: Some(pod_security()),
        containers: vec![container],
        volumes: Some(volumes),
        ..PodSpec::default()
    }
}

/// The dashboard Service.
pub fn dashboard_service(p: &Pipeline) -> Service {
    let d = &p.spec.dashboard;
    Service {
        metadata: p.owner.child_meta(dashboard_name(p), "dashboard"),
        spec: Some(ServiceSpec {
            type_: Some(d.service_type.as_str().to_string()),
            selector: Some(dashboard_selector(p)),
            ports: Some(vec![ServicePort {
                name: Some("http".to_string()),
                port: d.port,
                target_port: Some(IntOrString::String("http".to_string())),
                node_port: d.node_port,
                protocol: Some("TCP".to_string()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// The Job that deletes the pipeline's HDFS paths and HBase table (`ecom purge`), run by the
/// finalizer with `cleanupPolicy: Delete`.
pub fn cleanup_job(p: &Pipeline) -> Job {
    let spec = &p.spec;
    let args = Command::Purge(command::Purge {
        paths: vec![p.raw_url.clone(), p.clean_url.clone()],
        table: p.table.clone(),
    })
    .args();
    let mut env = common_env();
    env.extend(hbase_env(p));
    env.extend(identity_env(p));
    let container = ecom_container(p, "cleanup", args, env);
    let labels = p.owner.labels("cleanup");
    Job {
        metadata: p.owner.child_meta(cleanup_job_name(p), "cleanup"),
        spec: Some(JobSpec {
            backoff_limit: Some(3),
            active_deadline_seconds: Some(600),
            ttl_seconds_after_finished: Some(spec.ttl_seconds_after_finished),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(hardened_pod(
                    container,
                    vec![empty_dir("work"), empty_dir("tmp")],
                    Some("Never"),
                )),
            },
            ..JobSpec::default()
        }),
        status: None,
    }
}

/// How to reach the dashboard from a workstation.
pub fn port_forward_command(p: &Pipeline) -> String {
    let port = p.spec.dashboard.port;
    format!(
        "kubectl -n {} port-forward svc/{} {port}:{port}",
        p.owner.namespace,
        dashboard_name(p)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::example;
    use crate::validate::validate;

    #[test]
    fn memory_quantities_in_bytes() {
        for (q, bytes) in [
            ("1Gi", Some(1_073_741_824)),
            ("512Mi", Some(536_870_912)),
            ("1G", Some(1_000_000_000)),
            ("1500M", Some(1_500_000_000)),
            ("2048", Some(2048)),
            ("64Ki", Some(65_536)),
            ("2k", Some(2000)),
            ("1Ti", Some(1 << 40)),
            ("0.5Gi", Some(536_870_912)),
            ("1.5G", Some(1_500_000_000)),
            (".5Ki", Some(512)),
            ("1e9", Some(1_000_000_000)),
            ("1E", Some(1_000_000_000_000_000_000)),
            ("16Ei", None),
            ("", None),
            (".", None),
            ("Gi", None),
            ("1.2.3", None),
            ("500m", None),
            ("1K", None),
            ("1gi", None),
            ("-1Gi", None),
            ("lots", None),
        ] {
            assert_eq!(memory_bytes(q), bytes, "{q:?}");
        }
    }

    fn clean(limit: Option<&str>, explicit: Option<i64>) -> CleanStageSpec {
        CleanStageSpec {
            resources: limit.map(|m| Resources {
                requests: None,
                limits: Some(ResourceAmounts {
                    cpu: None,
                    memory: Some(m.to_string()),
                }),
            }),
            max_run_bytes: explicit,
            ..CleanStageSpec::default()
        }
    }

    #[test]
    fn max_run_bytes_is_explicit_else_a_fifth_of_the_memory_limit_above_128_mib() {
        assert_eq!(
            clean_max_run_bytes(&clean(Some("2Gi"), None)),
            Some(((2048 - 128) << 20) / 5)
        );
        assert_eq!(
            clean_max_run_bytes(&clean(Some("1G"), None)),
            Some((1_000_000_000 - (128 << 20)) / 5)
        );
        assert_eq!(
            clean_max_run_bytes(&clean(Some("2Gi"), Some(268_435_456))),
            Some(268_435_456)
        );
        assert_eq!(
            clean_max_run_bytes(&clean(None, Some(268_435_456))),
            Some(268_435_456)
        );
        assert_eq!(clean_max_run_bytes(&clean(None, None)), None);
        assert_eq!(clean_max_run_bytes(&clean(Some("lots"), None)), None);
        // A tiny limit still gives the smallest allowed run.
        assert_eq!(
            clean_max_run_bytes(&clean(Some("2Mi"), None)),
            Some(1 << 20)
        );
        let requests_only = CleanStageSpec {
            resources: Some(Resources {
                requests: Some(ResourceAmounts {
                    cpu: None,
                    memory: Some("1Gi".to_string()),
                }),
                limits: None,
            }),
            ..CleanStageSpec::default()
        };
        assert_eq!(clean_max_run_bytes(&requests_only), None);
    }

    #[test]
    fn only_the_clean_container_gets_max_run_bytes() {
        let max_run_env = |p: &Pipeline, stage| {
            let job = stage_job(p, stage, JobOptions::default());
            let pod = job.spec.and_then(|s| s.template.spec).expect("pod spec");
            pod.containers[0]
                .env
                .iter()
                .flatten()
                .find(|e| e.name == names::CLEAN_MAX_RUN_BYTES)
                .and_then(|e| e.value.clone())
        };
        let mut obj = example();
        let p = validate(&obj).expect("valid");
        assert_eq!(max_run_env(&p, Stage::Clean), None);
        obj.spec.stages.clean = clean(Some("4Gi"), None);
        obj.spec.stages.load.resources = clean(Some("4Gi"), None).resources;
        let derived = validate(&obj).expect("valid");
        assert_eq!(
            max_run_env(&derived, Stage::Clean).as_deref(),
            Some("832149913")
        );
        assert_eq!(max_run_env(&derived, Stage::Load), None);
        obj.spec.stages.clean.max_run_bytes = Some(268_435_456);
        let explicit = validate(&obj).expect("valid");
        assert_eq!(
            max_run_env(&explicit, Stage::Clean).as_deref(),
            Some("268435456")
        );
        // How the input is split into runs does not change the result.
        for s in Stage::ALL {
            assert_eq!(p.stage_key(s), explicit.stage_key(s), "{s}");
        }
        assert_ne!(
            derived.exec_hash(Stage::Clean),
            explicit.exec_hash(Stage::Clean)
        );
    }
}
