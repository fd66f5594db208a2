//! Kubernetes helpers of the operator tests, on the real kube-apiserver of the services
//! harness: client, CRD install, namespaces, polling, the `ecom operator` process, and a
//! kubelet + Job-controller stand-in, either writing given termination messages
//! ([`finish_job`]) or really running a Job's container command locally with the same args and
//! env against the real services ([`run_pod_locally`]), Secrets resolved like the kubelet does
//! ([`pod_secrets`]: `secretKeyRef` variables, `secret` volumes mapped to a scratch directory).
//!
//! Why a stand-in remains beside the real node (`real_node*.rs`, run by `make node-test` on
//! the harness's one-node cluster): these tests run first, on the API server alone (no
//! controller-manager, no kubelet), where a test decides what each pod "did" and when:
//! scripted termination messages and Job conditions (a failed stage, a suspended Job, two
//! operator replicas racing for a Job, a restart between two reconciles) that the real Job
//! controller would overwrite and a real pod could not be made to produce on cue, and a
//! cleanup Job held back while the test looks at the resource being deleted (the finalizer
//! test; the cleanup itself then runs locally against the real services), and the TLS tests
//! (`kafka_tls.rs`: produce and sink Jobs run locally with their Secrets resolved, the CA file
//! mounted, and a wrong CA's failure written back as the pod's termination message). Every
//! other pipeline that runs its stages for real runs them on the node: the quick start,
//! secured Kafka over SASL_PLAINTEXT, streaming cycles, failures, kills (`real_node*.rs`),
//! together with what only a real node shows
//! (scheduling, the Job controller's indexes, backoff, OOMKilled, termination messages as the
//! kubelet cuts them, DNS, Services, port-forward, garbage collection).
//!
//! Needs `KUBECONFIG` (from `eval "$(scripts/services.sh env)"`) and the `ecom` binary:
//! `ECOM_BIN`, or `$CARGO_TARGET_DIR/release/ecom`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ::kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use ::kube::{Client, ResourceExt};
use ecom_operator::crd::{EcomPipeline, EcomPipelineStatus};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::{json, Value};

use super::service_env;

/// How long [`wait_for`] polls.
pub const WAIT: Duration = Duration::from_secs(40);

pub fn ecom_bin() -> PathBuf {
    if let Ok(p) = std::env::var("ECOM_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| format!("{}/.cache/ecom-pipeline/target", service_env("HOME")));
    let p = PathBuf::from(target).join("release/ecom");
    assert!(
        p.is_file(),
        "{} missing: build it with `cargo build --release --bin ecom` or set ECOM_BIN",
        p.display()
    );
    p
}

pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() % 100_000_000)
        .unwrap_or(0);
    format!(
        "{prefix}-{t}-{}-{}",
        std::process::id() % 1000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub async fn client() -> Client {
    let kubeconfig = service_env("KUBECONFIG");
    Client::try_default()
        .await
        .unwrap_or_else(|e| panic!("kube client from KUBECONFIG={kubeconfig}: {e}"))
}

/// Applies the CRD (server-side) and waits until it is Established and served.
pub async fn install_crd(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = ecom_operator::crd();
    let name = crd.name_any();
    crds.patch(
        &name,
        &PatchParams::apply("ecom-itests").force(),
        &Patch::Apply(&crd),
    )
    .await
    .unwrap_or_else(|e| panic!("apply CRD {name}: {e}"));
    wait_for("CRD established", || async {
        let c = crds.get(&name).await.ok()?;
        c.status?
            .conditions?
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
            .then_some(())
    })
    .await;
    let any: Api<EcomPipeline> = Api::all(client.clone());
    wait_for("EcomPipelines served", || async {
        any.list(&ListParams::default().limit(1))
            .await
            .ok()
            .map(|_| ())
    })
    .await;
}

/// Creates a namespace named `prefix` and a unique suffix; returns its name.
pub async fn create_namespace(client: &Client, prefix: &str) -> String {
    let ns = unique(prefix);
    let api: Api<Namespace> = Api::all(client.clone());
    let obj: Namespace =
        serde_json::from_value(json!({"metadata": {"name": ns}})).expect("namespace");
    api.create(&PostParams::default(), &obj)
        .await
        .unwrap_or_else(|e| panic!("create namespace {ns}: {e}"));
    ns
}

/// A fresh namespace with the `default` ServiceAccount (made here unless a controller-manager
/// made it first).
pub async fn namespace(client: &Client, prefix: &str) -> String {
    let ns = create_namespace(client, prefix).await;
    let sa: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    let obj: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "default"}})).expect("sa");
    match sa.create(&PostParams::default(), &obj).await {
        Ok(_) => {}
        // A controller-manager (the real node's, when it runs) made it first.
        Err(::kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("create ServiceAccount in {ns}: {e}"),
    }
    ns
}

/// The usual start of an operator test: a client, the CRD installed, a fresh namespace
/// (see [`namespace`]) and the EcomPipelines API of that namespace.
pub async fn pipeline_namespace(prefix: &str) -> (Client, String, Api<EcomPipeline>) {
    let client = client().await;
    install_crd(&client).await;
    let ns = namespace(&client, prefix).await;
    let api = Api::namespaced(client.clone(), &ns);
    (client, ns, api)
}

/// Polls `f` every 200 ms until it gives `Some`, for at most [`WAIT`].
pub async fn wait_for<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An `ecom operator` process; SIGKILLed on drop.
pub struct Operator {
    pub child: Child,
    /// Port of /metrics, /healthz and /readyz on 127.0.0.1.
    pub port: u16,
    /// Identity of this replica in the Lease.
    pub identity: String,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Operator {
    /// Watches `ns` (also the Lease namespace) as the admin of `KUBECONFIG`.
    pub fn start(ns: &str, identity: &str) -> Operator {
        let kubeconfig = PathBuf::from(service_env("KUBECONFIG"));
        Operator::start_with(&kubeconfig, Some(ns), ns, identity)
    }

    /// Watches `watch` (all namespaces when `None`) with the credentials of `kubeconfig`
    /// (e.g. a ServiceAccount token), holding the Lease in `lease_ns`. Its log goes to
    /// `$TMPDIR/<identity>.log`.
    pub fn start_with(
        kubeconfig: &Path,
        watch: Option<&str>,
        lease_ns: &str,
        identity: &str,
    ) -> Operator {
        Operator::start_with_args(kubeconfig, watch, lease_ns, identity, &[])
    }

    /// [`Operator::start_with`] with more flags of `ecom operator`.
    pub fn start_with_args(
        kubeconfig: &Path,
        watch: Option<&str>,
        lease_ns: &str,
        identity: &str,
        extra: &[&str],
    ) -> Operator {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("{identity}.log"));
        let log_file = std::fs::File::create(&log).expect("operator log file");
        let child = Command::new(ecom_bin())
            .args([
                "operator",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--lease-name",
                "ecom-operator",
                "--lease-namespace",
                lease_ns,
                "--identity",
                identity,
                "--lease-duration",
                "4",
                "--renew-every",
                "1",
            ])
            .args(watch.map(|ns| ["--namespace", ns]).into_iter().flatten())
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,ecom_operator=debug")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", ecom_bin().display()));
        Operator {
            child,
            port,
            identity: identity.to_string(),
        }
    }

    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status();
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "operator did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        let port = self.port;
        let path = path.to_string();
        tokio::task::spawn_blocking(move || http_get(port, &path))
            .await
            .ok()
            .flatten()
    }

    pub async fn metric(&self, name: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics").await?;
        body.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.0 GET: status code and body.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((code, body))
}

/// A valid EcomPipeline manifest (generated source, parallel clean).
pub fn pipeline(name: &str, extra: Value) -> Value {
    let mut v = json!({
        "apiVersion": "pipelines.ecom-pipeline.io/v1alpha1",
        "kind": "EcomPipeline",
        "metadata": {"name": name},
        "spec": {
            "image": "ecom:test",
            "kafka": {"bootstrap": "127.0.0.1:9092", "topic": "transactions"},
            "hdfs": {"url": "hdfs://127.0.0.1:9000", "rawPath": "/itest/raw", "cleanPath": "/itest/clean"},
            "hbase": {"thriftHost": "127.0.0.1"},
            "source": {"generated": {"rows": 1000, "seed": 7, "dirtyRate": 0.1}},
            "stages": {"clean": {"parallelism": 2}}
        }
    });
    merge(&mut v["spec"], &extra);
    v
}

pub fn merge(a: &mut Value, b: &Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                if v.is_null() {
                    a.remove(k);
                } else {
                    merge(a.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (a, b) => *a = b.clone(),
    }
}

/// Creates a manifest as raw JSON (so even specs the Rust types reject reach the API server).
pub async fn create_raw(
    client: &Client,
    ns: &str,
    manifest: &Value,
) -> Result<DynamicObject, ::kube::Error> {
    let ar = ApiResource::erase::<EcomPipeline>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let obj: DynamicObject = serde_json::from_value(manifest.clone()).expect("manifest");
    api.create(&PostParams::default(), &obj).await
}

pub async fn create(
    api: &Api<EcomPipeline>,
    manifest: &Value,
) -> Result<EcomPipeline, ::kube::Error> {
    let obj: EcomPipeline = serde_json::from_value(manifest.clone()).expect("manifest");
    api.create(&PostParams::default(), &obj).await
}

/// Creates [`pipeline`]`(name, {})` in `ns` and waits for its first Jobs: (producer, sink).
pub async fn start_pipeline(client: &Client, ns: &str, name: &str) -> (Job, Job) {
    let api: Api<EcomPipeline> = Api::namespaced(client.clone(), ns);
    create_pipeline(&api, name, json!({})).await;
    let produce = wait_job(client, ns, "produce").await;
    let sink = wait_job(client, ns, "sink").await;
    (produce, sink)
}

/// Creates [`pipeline`]`(name, extra)`, which must be accepted.
pub async fn create_pipeline(api: &Api<EcomPipeline>, name: &str, extra: Value) -> EcomPipeline {
    create(api, &pipeline(name, extra))
        .await
        .unwrap_or_else(|e| panic!("create EcomPipeline {name}: {e}"))
}

/// Host and port of the harness's HBase Thrift server (`HBASE_THRIFT`).
pub fn thrift_host_port() -> (String, i64) {
    let thrift = service_env("HBASE_THRIFT");
    let (host, port) = thrift.rsplit_once(':').expect("HBASE_THRIFT host:port");
    (host.to_string(), port.parse().expect("HBASE_THRIFT port"))
}

/// The `kafka`, `hdfs` and `hbase` parts of a spec on the harness's real services, with
/// names of this run: topic `{prefix}-{suffix}`, HDFS directory `/{prefix}-{suffix}` (its
/// `raw` and `clean`), table `{prefix}_{suffix}`.
pub fn real_services(prefix: &str, suffix: &str) -> Value {
    let (host, port) = thrift_host_port();
    let dir = format!("/{prefix}-{suffix}");
    json!({
        "kafka": {"bootstrap": service_env("KAFKA_BOOTSTRAP"), "topic": format!("{prefix}-{suffix}")},
        "hdfs": {"url": service_env("HDFS_URL"), "rawPath": format!("{dir}/raw"), "cleanPath": format!("{dir}/clean")},
        "hbase": {"thriftHost": host, "thriftPort": port, "table": format!("{prefix}_{suffix}")}
    })
}

/// A [`pipeline`] on the harness's real services (see [`real_services`]), `extra` merged last.
pub fn real_pipeline(name: &str, prefix: &str, suffix: &str, extra: Value) -> Value {
    let mut v = pipeline(name, real_services(prefix, suffix));
    merge(&mut v["spec"], &extra);
    v
}

/// Ground truth of `ecom generate` with these settings (its `--truth` file).
pub fn ground_truth(rows: u64, seed: u64, dirty: f64) -> Value {
    let file = std::env::temp_dir().join(unique("truth"));
    let out = Command::new(ecom_bin())
        .args(["generate", "--rows", &rows.to_string(), "--seed"])
        .args([&seed.to_string(), "--dirty-rate", &dirty.to_string()])
        .args(["--out", "/dev/null", "--truth"])
        .arg(&file)
        .output()
        .expect("ecom generate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = serde_json::from_slice(&std::fs::read(&file).expect("truth")).expect("truth json");
    let _ = std::fs::remove_file(&file);
    v
}

/// Jobs of `ns` by name.
pub async fn jobs(client: &Client, ns: &str) -> BTreeMap<String, Job> {
    let api: Api<Job> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default())
        .await
        .expect("list Jobs")
        .items
        .into_iter()
        .map(|j| (j.name_any(), j))
        .collect()
}

pub fn component(job: &Job) -> String {
    job.labels()
        .get("app.kubernetes.io/component")
        .cloned()
        .unwrap_or_default()
}

/// Waits for the Job of `stage` of the pipeline `instance` and returns it.
pub async fn wait_job_of(client: &Client, ns: &str, instance: &str, stage: &str) -> Job {
    wait_for(&format!("the {stage} Job of {instance}"), || async {
        jobs(client, ns).await.into_values().find(|j| {
            component(j) == stage
                && j.labels()
                    .get("app.kubernetes.io/instance")
                    .map(String::as_str)
                    == Some(instance)
        })
    })
    .await
}

/// Waits for the Job of `stage` and returns it.
pub async fn wait_job(client: &Client, ns: &str, stage: &str) -> Job {
    wait_for(&format!("the {stage} Job"), || async {
        jobs(client, ns)
            .await
            .into_values()
            .find(|j| component(j) == stage)
    })
    .await
}

pub fn now() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

/// The kubelet and Job controller stand-in: creates one pod per completion index of `job`,
/// marks each terminated with `messages[index]` as termination message, and marks the Job
/// Complete (or Failed when `fail` is set).
pub async fn finish_job(client: &Client, ns: &str, job: &Job, messages: &[&str], fail: bool) {
    let name = job.name_any();
    let spec = job.spec.clone().expect("job spec");
    let completions = spec.completions.unwrap_or(1);
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let template = spec.template.clone();
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let t = now();
    for i in 0..completions {
        let mut labels = template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        labels.insert("batch.kubernetes.io/job-name".into(), name.clone());
        labels.insert("job-name".into(), name.clone());
        let mut annotations = BTreeMap::new();
        if indexed {
            annotations.insert(
                "batch.kubernetes.io/job-completion-index".to_string(),
                i.to_string(),
            );
        }
        let pod_name = format!(
            "{name}-{i}-{}",
            unique("p").rsplit('-').next().unwrap_or("0")
        );
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {
                "name": pod_name,
                "labels": labels,
                "annotations": annotations,
                "ownerReferences": [{
                    "apiVersion": "batch/v1", "kind": "Job", "name": name,
                    "uid": job.uid().expect("job uid"), "controller": true, "blockOwnerDeletion": true
                }]
            },
            "spec": template.spec.clone().expect("pod spec"),
        }))
        .expect("pod");
        pods.create(&PostParams::default(), &pod)
            .await
            .unwrap_or_else(|e| panic!("create pod {pod_name}: {e}"));
        let message = messages.get(i as usize).copied().unwrap_or("");
        let container = template
            .spec
            .as_ref()
            .map(|s| s.containers[0].name.clone())
            .unwrap_or_default();
        let (phase, code) = if fail {
            ("Failed", 1)
        } else {
            ("Succeeded", 0)
        };
        let status = json!({"status": {
            "phase": phase,
            "startTime": t,
            "containerStatuses": [{
                "name": container, "image": "ecom:test", "imageID": "", "ready": false,
                "restartCount": 0, "started": false,
                "state": {"terminated": {
                    "exitCode": code, "reason": if fail {"Error"} else {"Completed"},
                    "message": message, "startedAt": t, "finishedAt": t
                }}
            }]
        }});
        pods.patch_status(&pod_name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap_or_else(|e| panic!("pod status {pod_name}: {e}"));
    }
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    let status = if fail {
        json!({"status": {
            "startTime": t, "failed": completions, "active": 0, "ready": 0,
            "conditions": [
                {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit", "lastTransitionTime": t, "lastProbeTime": t},
                {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit", "lastTransitionTime": t, "lastProbeTime": t}
            ]
        }})
    } else {
        let mut s = json!({"status": {
            "startTime": t, "completionTime": t, "succeeded": completions, "active": 0, "ready": 0,
            "conditions": [
                {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods", "lastTransitionTime": t, "lastProbeTime": t},
                {"type": "Complete", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods", "lastTransitionTime": t, "lastProbeTime": t}
            ]
        }});
        if indexed {
            s["status"]["completedIndexes"] = json!(if completions == 1 {
                "0".to_string()
            } else {
                format!("0-{}", completions - 1)
            });
        }
        s
    };
    jobs.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap_or_else(|e| panic!("Job status {name}: {e}"));
}

/// Marks the dashboard Deployment available (the Deployment controller's part).
pub async fn dashboard_available(client: &Client, ns: &str, name: &str) {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let d = wait_for("the dashboard Deployment", || async {
        api.get_opt(name).await.ok().flatten()
    })
    .await;
    let generation = d.metadata.generation.unwrap_or(1);
    let status = json!({"status": {
        "observedGeneration": generation, "replicas": 1, "readyReplicas": 1,
        "availableReplicas": 1, "updatedReplicas": 1
    }});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap_or_else(|e| panic!("Deployment status {name}: {e}"));
}

/// Waits until the pipeline `name` is in `phase`; returns its status then.
pub async fn wait_phase(api: &Api<EcomPipeline>, name: &str, phase: &str) -> EcomPipelineStatus {
    wait_for(&format!("{name} {phase}"), || async {
        let s = status_of(api, name).await?;
        (s.phase.map(|p| p.as_str()) == Some(phase)).then_some(s)
    })
    .await
}

/// Waits until the pipeline `name` is gone (its finalizer let go).
pub async fn wait_gone(api: &Api<EcomPipeline>, name: &str) {
    wait_for(&format!("{name} gone"), || async {
        api.get_opt(name).await.ok()?.is_none().then_some(())
    })
    .await
}

/// Waits until `job`'s `spec.suspend` is `suspended`.
pub async fn wait_suspended(client: &Client, ns: &str, job: &Job, suspended: bool) {
    let name = job.name_any();
    wait_for(&format!("{name} with suspend {suspended}"), || async {
        (jobs(client, ns).await.remove(&name)?.spec?.suspend == Some(suspended)).then_some(())
    })
    .await
}

pub async fn status_of(
    api: &Api<EcomPipeline>,
    name: &str,
) -> Option<ecom_operator::crd::EcomPipelineStatus> {
    api.get(name).await.ok()?.status
}

pub fn condition(
    s: &ecom_operator::crd::EcomPipelineStatus,
    type_: &str,
) -> Option<(String, String)> {
    s.conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.as_str().to_string(), c.reason.clone()))
}

pub fn kubectl(args: &[&str]) -> String {
    let out = Command::new(service_env("KUBECTL"))
        .args(args)
        .env("KUBECONFIG", service_env("KUBECONFIG"))
        .output()
        .unwrap_or_else(|e| panic!("run kubectl: {e}"));
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The words of line `index` of a table printed by kubectl (none past its end).
pub fn table_line(table: &str, index: usize) -> Vec<&str> {
    table
        .lines()
        .nth(index)
        .unwrap_or("")
        .split_whitespace()
        .collect()
}

// ------------------------------------------------------------------------------------------
// The kubelet stand-in that really runs each Job's container (same binary, args and env)
// against the real Kafka, HDFS and HBase.

/// Expands `$(VAR)` references like the kubelet does (`$$` escapes a `$`).
pub fn expand(s: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(t) = tail.strip_prefix("$$") {
            out.push('$');
            rest = t;
        } else if let Some(end) = tail.strip_prefix("$(").and_then(|t| t.find(')')) {
            let name = &tail[2..2 + end];
            match env.get(name) {
                Some(v) => out.push_str(v),
                None => out.push_str(&tail[..3 + end]),
            }
            rest = &tail[3 + end..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// A Job's container running as a local process (same binary, args and env), with its
/// emptyDirs and termination-message file mapped to a scratch directory.
pub struct LocalPod {
    /// The process.
    pub child: Child,
    /// The Job's name.
    pub job: String,
    scratch: PathBuf,
}

impl LocalPod {
    /// (succeeded, termination message) once the process has exited, else `None`.
    pub fn try_finish(&mut self) -> Option<(bool, String)> {
        let status = self.child.try_wait().expect("poll the pod process")?;
        Some(self.outcome(status.success()))
    }

    /// Waits for the process to exit; (succeeded, termination message).
    pub async fn wait(mut self) -> (bool, String) {
        loop {
            if let Some(done) = self.try_finish() {
                return done;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The termination message as the kubelet builds it with `FallbackToLogsOnError`.
    fn outcome(&self, success: bool) -> (bool, String) {
        let read =
            |name: &str| std::fs::read_to_string(self.scratch.join(name)).unwrap_or_default();
        let written = read("termination-log");
        let message = if !written.trim().is_empty() {
            written
        } else if success {
            read("stdout")
                .lines()
                .last()
                .unwrap_or_default()
                .to_string()
        } else {
            let err = read("stderr");
            let lines: Vec<&str> = err.lines().collect();
            lines[lines.len().saturating_sub(20)..].join("\n")
        };
        (success, message)
    }
}

impl Drop for LocalPod {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

/// The Secrets of a namespace as the kubelet stand-in reads them: name -> key -> bytes.
pub type PodSecrets = BTreeMap<String, BTreeMap<String, Vec<u8>>>;

/// Every Secret of `ns`, for [`spawn_pod_locally_with`].
pub async fn pod_secrets(client: &Client, ns: &str) -> PodSecrets {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let list = api
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("list the Secrets of {ns}: {e}"));
    list.items
        .into_iter()
        .map(|s| {
            let data = s.data.clone().unwrap_or_default();
            let keys = data.into_iter().map(|(k, v)| (k, v.0)).collect();
            (s.name_any(), keys)
        })
        .collect()
}

/// The value of `key` of Secret `name`; a missing one fails as the kubelet would refuse to
/// start the container.
fn secret_value<'a>(secrets: &'a PodSecrets, name: &str, key: &str) -> &'a [u8] {
    secrets
        .get(name)
        .and_then(|s| s.get(key))
        .unwrap_or_else(|| panic!("the pod needs key {key} of Secret {name}, which is missing"))
}

/// Starts completion index `index` of `job` as a local process, resolving the container's
/// env like the kubelet: literal values (with `$(VAR)` expansion) and the completion index.
pub fn spawn_pod_locally(job: &Job, index: i32) -> LocalPod {
    spawn_pod_locally_with(job, index, &PodSecrets::new())
}

/// [`spawn_pod_locally`] with `secrets` ([`pod_secrets`]) resolved like the kubelet does:
/// `secretKeyRef` variables get the key's value, and each `secret` volume's items are
/// written to a scratch directory that stands for its mount path in the args and env.
pub fn spawn_pod_locally_with(job: &Job, index: i32, secrets: &PodSecrets) -> LocalPod {
    let spec = job
        .spec
        .clone()
        .and_then(|s| s.template.spec)
        .expect("pod spec");
    let c = spec.containers[0].clone();
    let scratch = std::env::temp_dir().join(unique(&format!("pod-{}", job.name_any())));
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    let summary = scratch.join("termination-log");
    // Secret volumes: (mount path, the scratch directory holding its items).
    let mut mounts: Vec<(String, String)> = Vec::new();
    for m in c.volume_mounts.clone().unwrap_or_default() {
        let Some(source) = spec
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == m.name)
            .and_then(|v| v.secret.clone())
        else {
            continue;
        };
        let name = source
            .secret_name
            .clone()
            .expect("secret volume names its Secret");
        let dir = scratch.join("volumes").join(&m.name);
        std::fs::create_dir_all(&dir).expect("volume dir");
        let items: Vec<(String, String)> = match source.items {
            Some(items) => items.into_iter().map(|i| (i.key, i.path)).collect(),
            None => secrets
                .get(&name)
                .map(|s| s.keys().map(|k| (k.clone(), k.clone())).collect())
                .unwrap_or_default(),
        };
        for (key, path) in items {
            std::fs::write(dir.join(path), secret_value(secrets, &name, &key))
                .expect("write a Secret item");
        }
        mounts.push((m.mount_path, dir.display().to_string()));
    }
    let mounted = |s: String| {
        mounts
            .iter()
            .fold(s, |s, (path, dir)| s.replace(path.as_str(), dir))
    };
    let mut env = BTreeMap::new();
    for e in c.env.clone().unwrap_or_default() {
        let value = if let Some(v) = e.value {
            mounted(expand(&v, &env))
        } else if let Some(from) = e.value_from {
            if from.field_ref.is_some() {
                index.to_string()
            } else if let Some(r) = from.secret_key_ref {
                String::from_utf8(secret_value(secrets, &r.name, &r.key).to_vec())
                    .expect("a Secret value in an env variable is UTF-8")
            } else {
                continue;
            }
        } else {
            continue;
        };
        env.insert(e.name, value);
    }
    env.insert("TMPDIR".into(), scratch.display().to_string());
    env.insert("ECOM_SUMMARY_FILE".into(), summary.display().to_string());
    let args: Vec<String> = c
        .args
        .unwrap_or_default()
        .iter()
        .map(|a| mounted(expand(a, &env)))
        .collect();
    let file = |name: &str| std::fs::File::create(scratch.join(name)).expect("pod log file");
    let child = Command::new(ecom_bin())
        .args(&args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(&env)
        .stdin(Stdio::null())
        .stdout(file("stdout"))
        .stderr(file("stderr"))
        .spawn()
        .expect("run the container command");
    LocalPod {
        child,
        job: job.name_any(),
        scratch,
    }
}

/// Runs completion index `index` of `job` locally to its end; returns (succeeded,
/// termination message).
pub async fn run_pod_locally(job: &Job, index: i32) -> (bool, String) {
    spawn_pod_locally(job, index).wait().await
}

/// Runs every completion index of `job` locally, one after the other, each of which must
/// succeed, with the Secrets of `ns`; then marks the Job complete with their termination
/// messages, which it returns.
pub async fn run_job_locally(client: &Client, ns: &str, job: &Job) -> Vec<String> {
    let n = job.spec.as_ref().and_then(|s| s.completions).unwrap_or(1);
    let secrets = pod_secrets(client, ns).await;
    let mut messages = Vec::new();
    for i in 0..n {
        let (ok, message) = spawn_pod_locally_with(job, i, &secrets).wait().await;
        assert!(ok, "{} index {i} failed:\n{message}", job.name_any());
        messages.push(message);
    }
    let refs: Vec<&str> = messages.iter().map(String::as_str).collect();
    finish_job(client, ns, job, &refs, false).await;
    messages
}
