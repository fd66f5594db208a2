//! Tests on the real one-node cluster (`scripts/services.sh up node`, then
//! `scripts/cluster-up.sh`): containerd runs the pods, the real Job controller creates them,
//! the scheduler places them, the kubelet writes their termination messages, kube-proxy and
//! CoreDNS serve the Services, the garbage collector removes what a pipeline owned. The
//! operator runs as a pod installed from the chart in namespace `ecom`, with the image
//! `ecom:dev` built by the project's Dockerfile and loaded onto the node.
//!
//! Run by `make node-test` (part of `make test`) on a fresh API server; every test is named
//! `real_node_*` so `make itest` can leave them out. They share the node and run one at a time.

mod common;

use std::collections::BTreeSet;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::kube::*;
use common::{ecom_ok, service_env};
use ecom_jobs::store::hbase::{HbaseConfig, HbaseTables};
use ecom_jobs::store::hdfs::HdfsFiles;
use ecom_jobs::store::{FileStore, TableStore};
use ecom_operator::crd::{EcomPipeline, EcomPipelineStatus};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{json, Value};

/// The namespace `scripts/cluster-up.sh` installs the chart into.
const NS: &str = "ecom";
/// The image `scripts/cluster-up.sh` built and loaded onto the node.
const IMAGE: &str = "ecom:dev";

/// Polls `f` every second until it gives `Some`, for at most `timeout`.
async fn wait_long<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// What the cluster shows of a namespace when a wait fails.
fn describe(ns: &str) -> String {
    let out = Command::new(service_env("KUBECTL"))
        .args(["-n", ns, "get", "ecp,jobs,pods,deploy,svc", "-o", "wide"])
        .env("KUBECONFIG", service_env("KUBECONFIG"))
        .output();
    match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
        Err(e) => format!("kubectl get: {e}"),
    }
}

/// A fresh namespace; its `default` ServiceAccount comes from the real controller-manager.
async fn node_namespace(client: &Client, prefix: &str) -> String {
    let ns = create_namespace(client, prefix).await;
    let sa: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    wait_long(
        "the default ServiceAccount (controller-manager)",
        Duration::from_secs(60),
        || async { sa.get_opt("default").await.ok().flatten() },
    )
    .await;
    ns
}

/// Deletes a test's namespace (its pipelines' finalizers run first); does not wait.
async fn delete_namespace(client: &Client, ns: &str) {
    let _ = Api::<Namespace>::all(client.clone())
        .delete(ns, &DeleteParams::default())
        .await;
}

/// Polls pipeline `name` until `done` holds for its status; returns that status. On timeout
/// the panic shows the last status and what the namespace holds.
async fn wait_status(
    api: &Api<EcomPipeline>,
    name: &str,
    what: &str,
    timeout: Duration,
    done: impl Fn(&EcomPipelineStatus) -> bool,
) -> EcomPipelineStatus {
    let deadline = Instant::now() + timeout;
    loop {
        let status = status_of(api, name).await;
        if let Some(s) = status.as_ref().filter(|s| done(s)) {
            return s.clone();
        }
        if Instant::now() >= deadline {
            panic!(
                "{name}: not {what} after {timeout:?}; status: {}\n{}",
                serde_json::to_string_pretty(&status).unwrap_or_default(),
                describe(&api_namespace(api))
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Waits until pipeline `name` has condition `type_` with status `status`.
async fn wait_condition(
    api: &Api<EcomPipeline>,
    name: &str,
    type_: &str,
    status: &str,
    timeout: Duration,
) -> EcomPipelineStatus {
    wait_status(api, name, &format!("{type_}={status}"), timeout, |s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == type_ && c.status == status)
    })
    .await
}

/// Waits until stage `stage` of pipeline `name` is in `state`.
async fn wait_stage(
    api: &Api<EcomPipeline>,
    name: &str,
    stage: &str,
    state: &str,
    timeout: Duration,
) -> EcomPipelineStatus {
    wait_status(api, name, &format!("{stage} {state}"), timeout, |s| {
        s.stages.get(stage).map(|st| st.state.as_str()) == Some(state)
    })
    .await
}

fn api_namespace(api: &Api<EcomPipeline>) -> String {
    api.resource_url()
        .split('/')
        .skip_while(|p| *p != "namespaces")
        .nth(1)
        .unwrap_or(NS)
        .to_string()
}

/// Pods of `ns` with `label=value`.
async fn pods_with(client: &Client, ns: &str, selector: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(selector))
        .await
        .expect("list pods")
        .items
}

/// `kubectl port-forward` to `target` in `ns`, on a free local port; killed on drop.
struct PortForward {
    child: Child,
    port: u16,
}

impl PortForward {
    fn start(ns: &str, target: &str, remote: u16) -> PortForward {
        let port = free_port();
        let mut child = Command::new(service_env("KUBECTL"))
            .args(["-n", ns, "port-forward", "--address", "127.0.0.1", target])
            .arg(format!("{port}:{remote}"))
            .env("KUBECONFIG", service_env("KUBECONFIG"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("kubectl port-forward {target}: {e}"));
        // It prints "Forwarding from ..." once it listens, then a line per connection: the
        // pipe is drained until kubectl exits (a closed pipe would end it at its next line).
        let mut stdout = BufReader::new(child.stdout.take().expect("port-forward stdout"));
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .expect("read port-forward output");
        assert!(
            line.contains("Forwarding from"),
            "kubectl port-forward {target} did not start: {line:?}"
        );
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        PortForward { child, port }
    }

    /// GET `path` through the forward (a few tries: the first stream may still be opening).
    async fn get(&self, path: &str) -> (u16, String) {
        let port = self.port;
        let path = path.to_string();
        wait_long(
            &format!("GET {path} through port-forward"),
            Duration::from_secs(30),
            || {
                let path = path.clone();
                async move {
                    tokio::task::spawn_blocking(move || http_get(port, &path))
                        .await
                        .ok()
                        .flatten()
                }
            },
        )
        .await
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Deletes the Kafka topic, the HDFS directory and the HBase tables a pipeline of an earlier
/// run may have left on the harness's servers (they outlive the API server's storage).
async fn purge_backends(topic: &str, hdfs_dir: &str, table: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::ClientConfig;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", service_env("KAFKA_BOOTSTRAP"))
        .create()
        .expect("Kafka admin client");
    let _ = admin.delete_topics(&[topic], &AdminOptions::new()).await;
    let url = format!("{}{hdfs_dir}", service_env("HDFS_URL"));
    ecom_ok(&["purge", "--path", &url, "--table", table]);
}

/// The cluster's own machinery: the node is Ready, a pod resolves Services through CoreDNS
/// and connects through their ClusterIPs (kube-proxy), `kubectl logs` reads it back, and
/// `kubectl port-forward` reaches both the operator's pod and its metrics Service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_node_dns_services_logs_and_port_forward() {
    let client = client().await;
    let node = service_env("ECOM_NODE_NAME");
    let nodes = kubectl(&[
        "get",
        "node",
        &node,
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
    ]);
    assert_eq!(nodes.trim(), "True", "node {node} is not Ready");

    let ns = node_namespace(&client, "node-dns").await;
    let script = "set -e; getent hosts kubernetes.default.svc.cluster.local; \
                  getent hosts ecom-kafka.ecom.svc.cluster.local; \
                  exec 3<>/dev/tcp/ecom-kafka.ecom.svc.cluster.local/9092; echo connected-kafka; \
                  exec 4<>/dev/tcp/kubernetes.default/443; echo connected-apiserver";
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "probe"},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "probe", "image": IMAGE, "imagePullPolicy": "Never",
                "command": ["bash", "-c", script],
                "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}}
            }]
        }
    }))
    .expect("pod");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create probe pod");
    let phase = wait_long(
        "the probe pod to finish",
        Duration::from_secs(120),
        || async {
            let p = pods.get("probe").await.ok()?;
            let phase = p.status?.phase?;
            matches!(phase.as_str(), "Succeeded" | "Failed").then_some(phase)
        },
    )
    .await;
    let logs = kubectl(&["-n", &ns, "logs", "probe"]);
    assert_eq!(phase, "Succeeded", "probe pod failed; its log:\n{logs}");
    let services: Api<Service> = Api::namespaced(client.clone(), NS);
    let kafka_ip = services
        .get("ecom-kafka")
        .await
        .expect("Service ecom-kafka")
        .spec
        .and_then(|s| s.cluster_ip)
        .expect("ClusterIP");
    assert!(
        logs.lines().any(|l| l.starts_with(&format!("{kafka_ip} "))),
        "CoreDNS gave ecom-kafka's ClusterIP {kafka_ip}:\n{logs}"
    );
    assert!(
        logs.contains("10.96.0.1 "),
        "kubernetes.default resolved:\n{logs}"
    );
    assert!(logs.contains("connected-kafka"), "{logs}");
    assert!(logs.contains("connected-apiserver"), "{logs}");

    // The operator's pod and its metrics Service, through the kubelet's port-forward.
    let operator = pods_with(&client, NS, "app.kubernetes.io/component=operator").await;
    let operator_pod = operator
        .iter()
        .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .unwrap_or_else(|| panic!("no running operator pod in {NS}\n{}", describe(NS)));
    let to_pod = PortForward::start(NS, &format!("pod/{}", operator_pod.name_any()), 8080);
    let (code, body) = to_pod.get("/healthz").await;
    assert_eq!(code, 200, "{body}");
    let to_service = PortForward::start(NS, "svc/ecom-pipeline-operator-metrics", 8080);
    let (code, body) = to_service.get("/metrics").await;
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("# TYPE"),
        "Prometheus text from the operator pod: {body}"
    );
    let operator_log = kubectl(&["-n", NS, "logs", &operator_pod.name_any()]);
    assert!(
        !operator_log.trim().is_empty(),
        "kubectl logs of the operator pod is empty"
    );

    delete_namespace(&client, &ns).await;
}

/// The README's path on the local node: `manifests/pipeline-batch.yaml`, unchanged, applied
/// in the chart's namespace; every stage runs as pods of real Jobs (clean and load as Indexed
/// Jobs of 2, each pod with its own completion index), the pipeline reaches Ready with the
/// ground truth's counts, the dashboard answers through `kubectl port-forward svc/...` with
/// the same figures, and `kubectl delete ecp` leaves nothing of the pipeline behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_node_batch_example_reaches_ready_through_real_pods() {
    let client = client().await;
    let api: Api<EcomPipeline> = Api::namespaced(client.clone(), NS);
    if api.get_opt("demo").await.ok().flatten().is_some() {
        let _ = api.delete("demo", &DeleteParams::default()).await;
        wait_long("an earlier demo gone", Duration::from_secs(180), || async {
            api.get_opt("demo").await.ok()?.is_none().then_some(())
        })
        .await;
    }
    purge_backends("ecom-demo", "/ecom/demo", "ecom_demo").await;
    let manifest = format!(
        "{}/../manifests/pipeline-batch.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let started = Instant::now();
    kubectl(&["-n", NS, "apply", "-f", &manifest]);
    let status = wait_condition(&api, "demo", "Ready", "True", Duration::from_secs(900)).await;
    eprintln!("demo Ready {:.0?} after apply", started.elapsed());

    let truth = ground_truth(200_000, 42, 0.05);
    let full = &truth["full"];
    let counts = status.counts.clone().expect("counts");
    assert_eq!(counts.produced, Some(200_000), "{counts:?}");
    assert_eq!(counts.sunk, Some(200_000), "{counts:?}");
    assert_eq!(counts.clean_input, full["rows_in"].as_i64(), "{counts:?}");
    assert_eq!(counts.cleaned, full["rows_out"].as_i64(), "{counts:?}");
    assert_eq!(counts.loaded, full["rows_out"].as_i64(), "{counts:?}");
    for (rule, expected) in full["dropped"].as_object().expect("dropped") {
        assert_eq!(
            counts.dropped.get(rule).copied(),
            expected.as_i64(),
            "{rule}"
        );
    }

    // Each clean and load pod was created by the Job controller with its own index.
    for stage in ["clean", "load"] {
        let pods = pods_with(
            &client,
            NS,
            &format!("app.kubernetes.io/instance=demo,app.kubernetes.io/component={stage}"),
        )
        .await;
        let indexes: BTreeSet<String> = pods
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded"))
            .filter_map(|p| {
                p.annotations()
                    .get("batch.kubernetes.io/job-completion-index")
                    .cloned()
            })
            .collect();
        assert_eq!(
            indexes,
            BTreeSet::from(["0".to_string(), "1".to_string()]),
            "{stage}: succeeded pods' completion indexes\n{}",
            describe(NS)
        );
        for p in &pods {
            let node = p.spec.as_ref().and_then(|s| s.node_name.clone());
            assert_eq!(
                node.as_deref(),
                Some(service_env("ECOM_NODE_NAME").as_str())
            );
        }
    }
    assert_eq!(status.stages["clean"].succeeded, 2);
    assert_eq!(status.stages["load"].succeeded, 2);

    // The dashboard Deployment's pod, through the Service.
    let dashboard = PortForward::start(NS, "svc/demo-dashboard", 8080);
    let (code, body) = dashboard.get("/api/summary").await;
    assert_eq!(code, 200, "{body}");
    let summary: Value = serde_json::from_str(&body).expect("summary JSON");
    assert_eq!(
        summary["orders"].as_i64(),
        full["rows_out"].as_i64(),
        "{summary}"
    );
    assert_eq!(
        summary["rows_in"].as_i64(),
        full["rows_in"].as_i64(),
        "{summary}"
    );
    drop(dashboard);

    // Delete: the finalizer's cleanup Job runs, then the garbage collector removes the rest.
    api.delete("demo", &DeleteParams::default())
        .await
        .expect("delete ecp demo");
    wait_long("ecp/demo gone", Duration::from_secs(300), || async {
        api.get_opt("demo").await.ok()?.is_none().then_some(())
    })
    .await;
    let selector = "app.kubernetes.io/instance=demo";
    wait_long(
        "every Job, pod, Deployment and Service of demo removed",
        Duration::from_secs(180),
        || async {
            let lp = ListParams::default().labels(selector);
            let jobs = Api::<Job>::namespaced(client.clone(), NS)
                .list(&lp)
                .await
                .ok()?;
            let pods = Api::<Pod>::namespaced(client.clone(), NS)
                .list(&lp)
                .await
                .ok()?;
            let deps = Api::<Deployment>::namespaced(client.clone(), NS)
                .list(&lp)
                .await
                .ok()?;
            let svcs = Api::<Service>::namespaced(client.clone(), NS)
                .list(&lp)
                .await
                .ok()?;
            (jobs.items.is_empty()
                && pods.items.is_empty()
                && deps.items.is_empty()
                && svcs.items.is_empty())
            .then_some(())
        },
    )
    .await;
    // The cleanup Job dropped the tables and deleted the HDFS paths.
    let tables = HbaseTables::new(HbaseConfig::new(service_env("HBASE_THRIFT")));
    for name in ["ecom_demo", "ecom_demo_agg"] {
        assert!(
            tables.table(name).is_err(),
            "{name} was dropped by the cleanup"
        );
    }
    // The HDFS client runs its own runtime: off the test's.
    tokio::task::spawn_blocking(|| {
        let files =
            HdfsFiles::open(&service_env("HDFS_URL"), Duration::from_secs(60)).expect("HDFS");
        for dir in ["/ecom/demo/raw", "/ecom/demo/clean"] {
            assert!(
                !files.exists(dir).expect("exists"),
                "{dir} was deleted by the cleanup"
            );
        }
    })
    .await
    .expect("HDFS check");
}

/// A pipeline on the harness's servers (reached by the pods at the node address) in its own
/// namespace, with the image on the node.
fn node_pipeline(name: &str, extra: Value) -> Value {
    let suffix = unique("n").replace('-', "");
    let mut v = real_pipeline(
        name,
        "node",
        &suffix,
        json!({"image": IMAGE, "imagePullPolicy": "Never"}),
    );
    merge(&mut v["spec"], &extra);
    v
}

/// A load pod that exits non-zero goes through the Job's backoff (two pods here), and the
/// pipeline's status names the stage, the Job's reason and how the last pod ended, with its
/// termination message as the kubelet recorded it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_node_failed_stage_names_reason_and_termination_message() {
    let client = client().await;
    let ns = node_namespace(&client, "node-fail").await;
    let api: Api<EcomPipeline> = Api::namespaced(client.clone(), &ns);
    // HBase Thrift pointed at Kafka's port: the broker hangs up on Thrift calls, which the
    // load classifies as a wire mismatch (permanent) and exits 1 at once.
    let kafka_port: i64 = service_env("KAFKA_BOOTSTRAP")
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("Kafka port");
    let manifest = node_pipeline(
        "fails",
        json!({
            "source": {"generated": {"rows": 2000, "seed": 5, "dirtyRate": 0.1}},
            "hbase": {"thriftPort": kafka_port},
            "stages": {"load": {"parallelism": 1, "backoffLimit": 1}},
            "dashboard": {"enabled": false}
        }),
    );
    create(&api, &manifest).await.expect("create pipeline");
    let status = wait_stage(&api, "fails", "load", "Failed", Duration::from_secs(600)).await;
    let load = &status.stages["load"];
    assert_eq!(load.state, "Failed", "{load:?}");
    let message = load.message.clone().unwrap_or_default();
    assert!(message.starts_with("BackoffLimitExceeded"), "{message}");
    assert!(message.contains("Error (exit code 1)"), "{message}");
    assert!(
        message.contains(&format!(":{kafka_port}")),
        "the termination message names the address: {message}"
    );
    let cond = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Loaded")
        .expect("Loaded condition");
    assert!(cond.message.contains("load failed"), "{cond:?}");
    assert!(cond.message.contains("exit code 1"), "{cond:?}");
    let failed_pods = pods_with(&client, &ns, "app.kubernetes.io/component=load")
        .await
        .into_iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed"))
        .count();
    assert_eq!(
        failed_pods,
        2,
        "backoffLimit 1: two pods\n{}",
        describe(&ns)
    );
    delete_namespace(&client, &ns).await;
}

/// A clean pod over its memory limit is OOMKilled by the kernel, and the status says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_node_oom_killed_clean_is_reported() {
    let client = client().await;
    let ns = node_namespace(&client, "node-oom").await;
    let api: Api<EcomPipeline> = Api::namespaced(client.clone(), &ns);
    let manifest = node_pipeline(
        "oom",
        json!({
            "source": {"generated": {"rows": 200000, "seed": 9, "dirtyRate": 0.05}},
            "stages": {"clean": {
                "parallelism": 1, "backoffLimit": 0, "maxRunBytes": 268435456,
                "resources": {"requests": {"memory": "40Mi"}, "limits": {"memory": "40Mi"}}
            }},
            "dashboard": {"enabled": false}
        }),
    );
    create(&api, &manifest).await.expect("create pipeline");
    let status = wait_stage(&api, "oom", "clean", "Failed", Duration::from_secs(600)).await;
    let clean = &status.stages["clean"];
    assert_eq!(clean.state, "Failed", "{clean:?}");
    let message = clean.message.clone().unwrap_or_default();
    assert!(message.contains("OOMKilled"), "{message}");
    delete_namespace(&client, &ns).await;
}

/// `scripts/services.sh` of this repository with `args`; asserts success, returns stdout.
fn services(args: &[&str]) -> String {
    let script = format!("{}/../scripts/services.sh", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(&script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    assert!(
        out.status.success(),
        "services.sh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The kubelet and the operator's process are SIGKILLed while the clean pods run; the kubelet
/// is started again by `services.sh up node` (containerd and the pods stay), the operator's
/// container is restarted by the kubelet. The pipeline still reaches Ready, and the fact table
/// holds exactly the clean rows: none lost, none twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_node_kubelet_and_operator_killed_mid_run_lose_and_duplicate_nothing() {
    let client = client().await;
    let ns = node_namespace(&client, "node-kill").await;
    let api: Api<EcomPipeline> = Api::namespaced(client.clone(), &ns);
    let (rows, seed, dirty) = (300_000u64, 17u64, 0.1f64);
    let manifest = node_pipeline(
        "kill",
        json!({
            "kafka": {"partitions": 3},
            "source": {"generated": {"rows": rows, "seed": seed, "dirtyRate": dirty}},
            "stages": {"clean": {"parallelism": 2}, "load": {"parallelism": 2}},
            "dashboard": {"enabled": false}
        }),
    );
    let table = manifest["spec"]["hbase"]["table"]
        .as_str()
        .expect("table")
        .to_string();
    create(&api, &manifest).await.expect("create pipeline");
    wait_long(
        "the clean stage running",
        Duration::from_secs(600),
        || async {
            let s = status_of(&api, "kill").await?;
            let st = s.stages.get("clean")?;
            (st.state == "Running" || st.state == "Succeeded").then_some(())
        },
    )
    .await;

    let kubelet = services(&["pid", "kubelet"]);
    let operator = Command::new("pgrep")
        .args(["-f", "ecom operator"])
        .output()
        .expect("pgrep");
    let operator = String::from_utf8_lossy(&operator.stdout).into_owned();
    assert!(
        !operator.trim().is_empty(),
        "no operator process on the node"
    );
    for pid in kubelet
        .split_whitespace()
        .chain(operator.split_whitespace())
    {
        let _ = Command::new("kill").args(["-KILL", pid]).status();
    }
    eprintln!(
        "killed kubelet {} and operator {}",
        kubelet.trim(),
        operator.trim()
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    services(&["up", "node"]);

    let status = wait_condition(&api, "kill", "Ready", "True", Duration::from_secs(900)).await;
    let truth = ground_truth(rows, seed, dirty);
    let kept = truth["full"]["rows_out"].as_i64();
    let counts = status.counts.expect("counts");
    assert_eq!(counts.sunk, Some(rows as i64), "{counts:?}");
    assert_eq!(counts.cleaned, kept, "{counts:?}");
    assert_eq!(counts.loaded, kept, "{counts:?}");
    let tables = HbaseTables::new(HbaseConfig::new(service_env("HBASE_THRIFT")));
    let fact = tables.table(&table).expect("fact table");
    let stored = fact.scan(b"", b"", usize::MAX).expect("scan fact").len() as i64;
    assert_eq!(Some(stored), kept, "rows in {table}");
    delete_namespace(&client, &ns).await;
}
