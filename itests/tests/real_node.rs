//! Tests on the real one-node cluster (`scripts/services.sh up node`, then
//! `scripts/cluster-up.sh`): containerd runs the pods, the real Job controller creates them,
//! the scheduler places them, the kubelet writes their termination messages, kube-proxy and
//! CoreDNS serve the Services, the garbage collector removes what a pipeline owned. The
//! operator runs as a pod installed from the chart in namespace `ecom`, with the image
//! `ecom:dev` built by the project's Dockerfile and loaded onto the node. These tests' pipelines
//! use the harness's Kafka, HDFS and HBase at the node address, which the tests can inspect
//! and break; `real_node_user_path.rs` runs the quick start on the chart's own services.
//!
//! Run by `make node-test` (part of `make test`) on a fresh API server; every test is named
//! `real_node_*` so `make itest` can leave them out. They share the node and run one at a time.

mod common;
mod node_support;

use std::process::Command;
use std::time::Duration;

use common::kube::*;
use common::service_env;
use ecom_jobs::store::hbase::{HbaseConfig, HbaseTables};
use ecom_jobs::store::TableStore;
use ecom_operator::crd::EcomPipeline;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, PostParams};
use kube::ResourceExt;
use node_support::*;
use serde_json::json;

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
    assert_eq!(load.state.as_str(), "Failed", "{load:?}");
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
    assert_eq!(clean.state.as_str(), "Failed", "{clean:?}");
    let message = clean.message.clone().unwrap_or_default();
    assert!(message.contains("OOMKilled"), "{message}");
    delete_namespace(&client, &ns).await;
}

/// A typo in a service address, as a first-time user makes it (`ecom-kafak`): the produce
/// stage fails, and its status names the address and why it failed (the name does not
/// resolve), from the pod's termination message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_node_address_typo_is_named_in_status() {
    let client = client().await;
    let ns = node_namespace(&client, "node-typo").await;
    let api: Api<EcomPipeline> = Api::namespaced(client.clone(), &ns);
    let manifest = node_pipeline(
        "typo",
        json!({
            "kafka": {"bootstrap": "ecom-kafak:9092"},
            "stages": {"produce": {"backoffLimit": 0}},
            "dashboard": {"enabled": false}
        }),
    );
    create(&api, &manifest).await.expect("create pipeline");
    let status = wait_stage(&api, "typo", "produce", "Failed", Duration::from_secs(300)).await;
    let message = status.stages["produce"].message.clone().unwrap_or_default();
    assert!(message.contains("ecom-kafak:9092"), "{message}");
    assert!(message.contains("Failed to resolve"), "{message}");
    delete_namespace(&client, &ns).await;
}

/// A pipeline naming an image the node does not have: its first stage's pod cannot start, and
/// the stage and the `Ingested` condition say so with the kubelet's reason and message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_node_missing_image_is_named_in_status() {
    let client = client().await;
    let ns = node_namespace(&client, "node-image").await;
    let api: Api<EcomPipeline> = Api::namespaced(client.clone(), &ns);
    let manifest = node_pipeline(
        "noimage",
        json!({"image": "ecom:no-such-tag", "dashboard": {"enabled": false}}),
    );
    create(&api, &manifest).await.expect("create pipeline");
    let status = wait_status(
        &api,
        "noimage",
        "waiting on its image",
        Duration::from_secs(180),
        |s| {
            s.stages
                .get("produce")
                .and_then(|st| st.message.as_deref())
                .is_some_and(|m| m.contains("ErrImageNeverPull"))
        },
    )
    .await;
    let produce = &status.stages["produce"];
    assert_eq!(produce.state.as_str(), "Running", "{produce:?}");
    let message = produce.message.clone().unwrap_or_default();
    assert!(message.contains("ecom:no-such-tag"), "{message}");
    let ingested = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ingested")
        .expect("Ingested condition");
    assert!(
        ingested.message.contains("ErrImageNeverPull"),
        "{ingested:?}"
    );
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
            (st.state.as_str() == "Running" || st.state.as_str() == "Succeeded").then_some(())
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
