//! The cluster quick start of README, step by step, on the real one-node cluster:
//! `scripts/cluster-up.sh` installed the chart with `values-kind.yaml` (the operator and the
//! development Kafka, HDFS and HBase as pods, only the image names local) into namespace
//! `ecom` under enforced restricted Pod Security. This test applies the examples unchanged,
//! waits with `kubectl wait`, browses the dashboard through `kubectl port-forward`, watches the
//! streaming example grow, deletes, uninstalls the release and installs it again.
//!
//! Run by `make node-test` after the other `real_node*` tests; it leaves the release installed
//! and no pipeline behind. Screenshots land in `test-output/node/`.

mod common;
mod dashboard_support;
mod node_support;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use common::kube::*;
use common::service_env;
use dashboard_support::{browser_setup, repo_root, run_node};
use ecom_jobs::store::hbase::{HbaseConfig, HbaseTables};
use ecom_jobs::store::hdfs::HdfsFiles;
use ecom_jobs::store::{FileStore, TableStore};
use ecom_operator::crd::EcomPipeline;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Service};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams};
use kube::{Client, ResourceExt};
use node_support::*;
use serde_json::Value;

/// The Helm release `scripts/cluster-up.sh` installs.
const RELEASE: &str = "ecom-pipeline";
/// The Deployments of that release with `values-kind.yaml`.
const DEPLOYMENTS: [&str; 5] = [
    "ecom-hbase",
    "ecom-hdfs-datanode",
    "ecom-hdfs-namenode",
    "ecom-kafka",
    "ecom-pipeline-operator",
];

fn manifest(name: &str) -> String {
    format!("{}/../manifests/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// `host:port` of Service `name`'s ClusterIP (kube-proxy serves it to this machine too).
fn cluster_address(name: &str, port: u16) -> String {
    let ip = kubectl(&[
        "-n",
        NS,
        "get",
        "svc",
        name,
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    format!("{}:{port}", ip.trim())
}

/// Deletes pipeline `name` if it exists and waits until its finalizer has run.
async fn delete_pipeline(api: &Api<EcomPipeline>, name: &str) {
    if api.get_opt(name).await.ok().flatten().is_none() {
        return;
    }
    let _ = api.delete(name, &DeleteParams::default()).await;
    wait_long(
        &format!("ecp/{name} gone"),
        Duration::from_secs(300),
        || async { api.get_opt(name).await.ok()?.is_none().then_some(()) },
    )
    .await;
}

/// The dashboard's order count through a port-forward, once it answers with one.
async fn dashboard_orders(forward: &PortForward) -> Option<i64> {
    let (code, body) = forward.get("/api/summary").await;
    if code != 200 {
        return None;
    }
    serde_json::from_str::<Value>(&body).ok()?["orders"].as_i64()
}

/// The message of `stage` of pipeline `name` once it contains `needle`.
async fn wait_stage_message(
    api: &Api<EcomPipeline>,
    name: &str,
    stage: &str,
    needle: &str,
) -> String {
    let status = wait_status(
        api,
        name,
        &format!("{stage} saying {needle:?}"),
        Duration::from_secs(180),
        |s| {
            s.stages
                .get(stage)
                .and_then(|st| st.message.as_deref())
                .is_some_and(|m| m.contains(needle))
        },
    )
    .await;
    status.stages[stage].message.clone().unwrap_or_default()
}

/// Opens the dashboard in headless Chromium through `forward`, saves `test-output/node/NAME.png`
/// and returns the panels it read; the page had no errors and fetched nothing elsewhere.
fn browse(forward: &PortForward, name: &str) -> Value {
    let repo = repo_root();
    browser_setup(&repo);
    let out_dir = repo.join("test-output").join("node");
    let url = format!("http://127.0.0.1:{}/", forward.port);
    let result = run_node(
        &repo,
        "snapshot.mjs",
        &[&url, out_dir.to_str().expect("utf8 path"), name],
    );
    for kind in ["console", "pageErrors", "external", "failed"] {
        assert_eq!(
            result["problems"][kind].as_array().map(Vec::len),
            Some(0),
            "{name}: {kind}: {}",
            result["problems"][kind]
        );
    }
    let shot = out_dir.join(format!("{name}.png"));
    let len = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(len > 10_000, "screenshot {}: {len} bytes", shot.display());
    result["panels"].clone()
}

/// Every object of the release, by kind, that still exists.
async fn release_objects(client: &Client) -> Vec<String> {
    let lp = ListParams::default().labels(&format!("app.kubernetes.io/instance={RELEASE}"));
    let mut left = Vec::new();
    macro_rules! collect {
        ($kind:ty, $label:expr) => {
            if let Ok(list) = Api::<$kind>::namespaced(client.clone(), NS).list(&lp).await {
                left.extend(
                    list.items
                        .iter()
                        .map(|o| format!("{}/{}", $label, o.name_any())),
                );
            }
        };
    }
    collect!(Deployment, "deployment");
    collect!(Service, "service");
    collect!(ConfigMap, "configmap");
    collect!(Pod, "pod");
    left
}

// The user's path end to end on the real node (install, apply, browse, stream, uninstall):
// one scenario on purpose, each step needs the one before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_node_user_path_install_apply_browse_stream_uninstall() {
    let client = client().await;
    let api: Api<EcomPipeline> = Api::namespaced(client.clone(), NS);

    // What `helm upgrade --install -f values-kind.yaml` left: restricted Pod Security enforced
    // on the namespace, and the operator and every development service available.
    let ns = Api::<Namespace>::all(client.clone())
        .get(NS)
        .await
        .expect("namespace");
    assert_eq!(
        ns.labels()
            .get("pod-security.kubernetes.io/enforce")
            .map(String::as_str),
        Some("restricted"),
        "namespace {NS} labels: {:?}",
        ns.labels()
    );
    let deployments = Api::<Deployment>::namespaced(client.clone(), NS);
    let lp = ListParams::default().labels(&format!("app.kubernetes.io/instance={RELEASE}"));
    let available: BTreeSet<String> = deployments
        .list(&lp)
        .await
        .expect("list deployments")
        .items
        .iter()
        .filter(|d| d.status.as_ref().and_then(|s| s.available_replicas) == Some(1))
        .map(|d| d.name_any())
        .collect();
    assert_eq!(
        available,
        DEPLOYMENTS.iter().map(|s| s.to_string()).collect(),
        "{}",
        describe(NS)
    );
    delete_pipeline(&api, "demo").await;
    delete_pipeline(&api, "live").await;
    // Fresh development services (their data is in emptyDirs), so an earlier run's topic and
    // files do not add to this run's counts. Kafka stays down for now.
    kubectl(&["-n", NS, "scale", "deployment/ecom-kafka", "--replicas=0"]);
    for name in &DEPLOYMENTS[1..4] {
        kubectl(&[
            "-n",
            NS,
            "rollout",
            "restart",
            &format!("deployment/{name}"),
        ]);
    }
    for name in &DEPLOYMENTS[..4] {
        kubectl(&[
            "-n",
            NS,
            "rollout",
            "status",
            &format!("deployment/{name}"),
            "--timeout=10m",
        ]);
    }
    wait_long("no Kafka pod left", Duration::from_secs(180), || async {
        pods_with(
            &client,
            NS,
            &format!("app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=kafka"),
        )
        .await
        .is_empty()
        .then_some(())
    })
    .await;

    // The batch example, unchanged, applied before Kafka is up: the producer waits, and the
    // status says for what. Then Kafka starts and the pipeline carries on.
    let started = Instant::now();
    kubectl(&["-n", NS, "apply", "-f", &manifest("pipeline-batch.yaml")]);
    let waiting = wait_stage_message(&api, "demo", "produce", "waiting for Kafka").await;
    assert!(
        waiting.contains("waiting for Kafka at ecom-kafka:9092: "),
        "{waiting}"
    );
    let ready = status_of(&api, "demo").await.expect("demo status");
    let in_progress = ready
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready condition");
    assert!(
        in_progress.status.as_str() == "False" && in_progress.message.contains("waiting for Kafka"),
        "{in_progress:?}"
    );
    eprintln!("while Kafka is down: {waiting}");
    kubectl(&["-n", NS, "scale", "deployment/ecom-kafka", "--replicas=1"]);
    kubectl(&[
        "-n",
        NS,
        "wait",
        "ecp/demo",
        "--for=condition=Ready",
        "--timeout=20m",
    ]);
    eprintln!("demo Ready {:.0?} after apply", started.elapsed());
    let status = status_of(&api, "demo").await.expect("demo status");
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
    // The operator did all this with the chart's ServiceAccount: its Events went out, and
    // its log shows no RBAC denial. The stage pods run with no API token at all.
    let reasons: BTreeSet<String> = Api::<Event>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("demo"))
        .filter_map(|e| e.reason)
        .collect();
    assert!(
        reasons.contains("JobsCreated") && reasons.contains("Ready"),
        "{reasons:?}"
    );
    let operator_log = kubectl(&["-n", NS, "logs", &format!("deployment/{RELEASE}-operator")]);
    // An RBAC denial names the ServiceAccount ("... is forbidden: User
    // \"system:serviceaccount:...\" cannot ..."); other 403s (a namespace being deleted) do not.
    let denials: Vec<&str> = operator_log
        .lines()
        .filter(|l| l.contains("is forbidden: User \"system:serviceaccount:"))
        .collect();
    assert!(
        denials.is_empty(),
        "the operator hit RBAC denials:\n{denials:#?}"
    );
    for pod in pods_with(&client, NS, "app.kubernetes.io/instance=demo").await {
        let spec = pod.spec.clone().expect("pod spec");
        let name = pod.name_any();
        assert_eq!(spec.automount_service_account_token, Some(false), "{name}");
        let volumes = spec.volumes.unwrap_or_default();
        assert!(
            volumes.iter().all(|v| v.projected.is_none()),
            "{name} has a projected (token) volume"
        );
    }
    // Each clean and load pod was created by the Job controller with its own index.
    for stage in ["clean", "load"] {
        let selector =
            format!("app.kubernetes.io/instance=demo,app.kubernetes.io/component={stage}");
        let indexes: BTreeSet<String> = pods_with(&client, NS, &selector)
            .await
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
    }

    // The dashboard through `kubectl port-forward svc/demo-dashboard`, by API and in a browser.
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
    let panels = browse(&dashboard, "demo-dashboard");
    assert_eq!(
        panels["kpis"]["orders"].as_i64(),
        full["rows_out"].as_i64(),
        "{}",
        panels["kpis"]
    );
    let by_category: i64 = panels["categories"]
        .as_array()
        .expect("categories")
        .iter()
        .filter_map(|c| c["orders"].as_i64())
        .sum();
    assert_eq!(
        Some(by_category),
        full["rows_out"].as_i64(),
        "orders per category"
    );
    drop(dashboard);

    // The streaming example, unchanged: the dashboard's order count grows while it runs.
    kubectl(&[
        "-n",
        NS,
        "apply",
        "-f",
        &manifest("pipeline-streaming.yaml"),
    ]);
    wait_long(
        "deployment/live-dashboard available",
        Duration::from_secs(300),
        || async {
            let d = deployments.get_opt("live-dashboard").await.ok()??;
            (d.status?.available_replicas? >= 1).then_some(())
        },
    )
    .await;
    let live = PortForward::start(NS, "svc/live-dashboard", 8080);
    let first = wait_long("live orders > 0", Duration::from_secs(420), || async {
        dashboard_orders(&live).await.filter(|n| *n > 0)
    })
    .await;
    let grown = wait_long("live orders growing", Duration::from_secs(300), || async {
        dashboard_orders(&live).await.filter(|n| *n > first)
    })
    .await;
    eprintln!("live dashboard: {first} orders, then {grown}");
    // What streams is the StatefulSet live-stream, its one shard ready; no sink, clean or load Job.
    let sts = Api::<StatefulSet>::namespaced(client.clone(), NS)
        .get("live-stream")
        .await
        .expect("StatefulSet live-stream");
    assert_eq!(
        sts.status.as_ref().and_then(|s| s.ready_replicas),
        Some(1),
        "{}",
        describe(NS)
    );
    let live_jobs = Api::<Job>::namespaced(client.clone(), NS)
        .list(&ListParams::default().labels("app.kubernetes.io/instance=live"))
        .await
        .expect("list Jobs");
    let components: BTreeSet<String> = live_jobs
        .items
        .iter()
        .filter_map(|j| j.labels().get("app.kubernetes.io/component").cloned())
        .collect();
    assert_eq!(
        components,
        BTreeSet::from(["produce".to_string()]),
        "streaming runs only the producer as a Job"
    );
    let live_panels = browse(&live, "live-dashboard");
    assert!(
        live_panels["kpis"]["orders"].as_i64() >= Some(grown),
        "browser saw {} orders after the API saw {grown}",
        live_panels["kpis"]["orders"]
    );
    drop(live);

    // `kubectl delete ecp demo`: the cleanup dropped the tables and the HDFS paths on the
    // chart's services, and the garbage collector removed what the pipeline owned.
    delete_pipeline(&api, "demo").await;
    wait_long(
        "every Job, pod and Service of demo removed",
        Duration::from_secs(180),
        || async {
            let lp = ListParams::default().labels("app.kubernetes.io/instance=demo");
            let jobs = Api::<Job>::namespaced(client.clone(), NS)
                .list(&lp)
                .await
                .ok()?;
            let pods = Api::<Pod>::namespaced(client.clone(), NS)
                .list(&lp)
                .await
                .ok()?;
            let svcs = Api::<Service>::namespaced(client.clone(), NS)
                .list(&lp)
                .await
                .ok()?;
            (jobs.items.is_empty() && pods.items.is_empty() && svcs.items.is_empty()).then_some(())
        },
    )
    .await;
    let tables = HbaseTables::new(HbaseConfig::new(cluster_address("ecom-hbase", 9090)));
    for name in ["ecom_demo", "ecom_demo_agg"] {
        assert!(
            tables.table(name).is_err(),
            "{name} was dropped by the cleanup"
        );
    }
    assert!(
        tables.table("ecom_live").is_ok(),
        "the live pipeline's table exists"
    );
    let hdfs = format!("hdfs://{}", cluster_address("ecom-hdfs-namenode", 8020));
    tokio::task::spawn_blocking(move || {
        let files = HdfsFiles::open(&hdfs, Duration::from_secs(60)).expect("HDFS");
        for dir in ["/ecom/demo/raw", "/ecom/demo/clean"] {
            assert!(
                !files.exists(dir).expect("exists"),
                "{dir} was deleted by the cleanup"
            );
        }
        assert!(
            files.exists("/ecom/live/raw").expect("exists"),
            "live's raw files exist"
        );
    })
    .await
    .expect("HDFS check");

    // `helm uninstall`: the release's objects go; the CRD and the pipelines stay (crds.keep).
    let out = Command::new(service_env("HELM"))
        .args([
            "uninstall",
            RELEASE,
            "--namespace",
            NS,
            "--wait",
            "--timeout",
            "5m",
        ])
        .env("KUBECONFIG", service_env("KUBECONFIG"))
        .output()
        .expect("run helm");
    assert!(
        out.status.success(),
        "helm uninstall: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_long(
        "the release's objects gone",
        Duration::from_secs(180),
        || async { release_objects(&client).await.is_empty().then_some(()) },
    )
    .await;
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    assert!(
        crds.get_opt("ecompipelines.pipelines.ecom-pipeline.io")
            .await
            .expect("get crd")
            .is_some(),
        "the CRD is kept on uninstall"
    );
    assert!(
        api.get_opt("live").await.expect("get ecp").is_some(),
        "ecp/live is kept on uninstall"
    );

    // Installed again (as a user re-runs the quick start), the operator finishes the deletion
    // that waited for it.
    let up = Command::new("bash")
        .arg(format!(
            "{}/../scripts/cluster-up.sh",
            env!("CARGO_MANIFEST_DIR")
        ))
        .output()
        .expect("run cluster-up.sh");
    assert!(
        up.status.success(),
        "cluster-up.sh: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    delete_pipeline(&api, "live").await;
    wait_long(
        "every pod of live removed",
        Duration::from_secs(180),
        || async {
            pods_with(&client, NS, "app.kubernetes.io/instance=live")
                .await
                .is_empty()
                .then_some(())
        },
    )
    .await;
}
