//! Stage behaviours on the real one-node cluster that once ran on the kubelet stand-in of
//! `common::kube`: Kafka credentials from a Secret resolved by the kubelet (the harness's
//! SASL broker), a wrong password failing with the broker's words, and streaming mode's
//! producer Job beside the stream StatefulSet, resharded without two shard counts running at
//! once. The pipelines use the harness's servers at the node address; the operator is the
//! chart's pod.
//!
//! Run by `make node-test` with the other `real_node*` tests, one at a time.

mod common;
mod node_support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};

use common::kube::*;
use common::service_env;
use ecom_jobs::store::hbase::{HbaseConfig, HbaseTables};
use ecom_jobs::store::TableStore;
use ecom_operator::crd::EcomPipeline;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Container, Secret};
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use node_support::*;
use serde_json::{json, Value};

async fn secret(client: &Client, ns: &str, name: &str, user: &str, password: &str) {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let obj: Secret = serde_json::from_value(json!({
        "metadata": {"name": name},
        "stringData": {"username": user, "password": password}
    }))
    .expect("secret");
    api.create(&PostParams::default(), &obj)
        .await
        .unwrap_or_else(|e| panic!("create Secret {ns}/{name}: {e}"));
}

/// A pipeline on the harness's SASL broker, credentials from Secret `secret`.
fn secured(name: &str, secret: &str, rows: u64, extra: Value) -> Value {
    let mut v = node_pipeline(
        name,
        json!({
            "kafka": {
                "bootstrap": service_env("KAFKA_SASL_BOOTSTRAP"),
                "partitions": 2,
                "security": {"protocol": "SASL_PLAINTEXT", "sasl": {"mechanism": "PLAIN", "secretName": secret}}
            },
            "source": {"generated": {"rows": rows, "seed": 5, "dirtyRate": 0.0}},
            "stages": {"clean": {"parallelism": 1}, "load": {"parallelism": 1}},
            "dashboard": {"enabled": false}
        }),
    );
    merge(&mut v["spec"], &extra);
    v
}

fn container_of(job: &Job) -> Container {
    job.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|s| s.containers[0].clone())
        .expect("container")
}

/// The Job of `stage` of pipeline `instance`, once the operator created it.
async fn job_of(client: &Client, ns: &str, instance: &str, stage: &str) -> Job {
    let api: Api<Job> = Api::namespaced(client.clone(), ns);
    let selector =
        format!("app.kubernetes.io/instance={instance},app.kubernetes.io/component={stage}");
    wait_long(
        &format!("the {stage} Job of {instance}"),
        Duration::from_secs(120),
        || async {
            let lp = kube::api::ListParams::default().labels(&selector);
            api.list(&lp).await.ok()?.items.into_iter().next()
        },
    )
    .await
}

/// The password is nowhere in the Jobs, only a reference to the Secret; the kubelet resolves
/// it, and every stage runs through the SASL broker to Ready with the generated counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_node_secured_kafka_gets_credentials_from_the_secret() {
    let client = client().await;
    let ns = node_namespace(&client, "node-sasl").await;
    let api: Api<EcomPipeline> = Api::namespaced(client.clone(), &ns);
    let password = service_env("KAFKA_SASL_PASSWORD");
    let user = service_env("KAFKA_SASL_USER");
    secret(&client, &ns, "ecom-kafka-creds", &user, &password).await;
    let rows = 2000u64;
    create(
        &api,
        &secured("secure", "ecom-kafka-creds", rows, json!({})),
    )
    .await
    .expect("create pipeline");

    for stage in ["produce", "sink"] {
        let job = job_of(&client, &ns, "secure", stage).await;
        let c = container_of(&job);
        let spec = serde_json::to_string(&c).expect("json");
        assert!(!spec.contains(&password), "{}: {spec}", job.name_any());
        let args = c.args.clone().unwrap_or_default().join(" ");
        assert!(args.contains("security.protocol=SASL_PLAINTEXT"), "{args}");
        assert!(args.contains("sasl.mechanism=PLAIN"), "{args}");
        assert!(!args.contains("sasl.password"), "{args}");
        let env = c.env.clone().unwrap_or_default();
        let sk = env
            .iter()
            .find(|e| e.name == "KAFKA_SASL_PASSWORD")
            .and_then(|e| e.value_from.as_ref())
            .and_then(|v| v.secret_key_ref.as_ref())
            .expect("KAFKA_SASL_PASSWORD from a secretKeyRef");
        assert_eq!(
            (sk.name.as_str(), sk.key.as_str()),
            ("ecom-kafka-creds", "password")
        );
    }

    let status = wait_condition(&api, "secure", "Ready", "True", Duration::from_secs(600)).await;
    let counts = status.counts.expect("counts");
    assert_eq!(counts.produced, Some(rows as i64), "{counts:?}");
    assert_eq!(counts.sunk, Some(rows as i64), "{counts:?}");
    assert_eq!(counts.clean_input, Some(rows as i64), "{counts:?}");
    let loaded = counts.loaded.expect("loaded");
    assert!(loaded > 0 && loaded <= rows as i64, "{counts:?}");
    assert_eq!(counts.cleaned, Some(loaded), "{counts:?}");
    delete_namespace(&client, &ns).await;
}

/// A wrong password: the producer fails within its deadline, and the status quotes the
/// broker's address and its authentication error, never the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_node_wrong_kafka_password_fails_naming_the_broker_and_authentication() {
    let client = client().await;
    let ns = node_namespace(&client, "node-sasl-bad").await;
    let api: Api<EcomPipeline> = Api::namespaced(client.clone(), &ns);
    let user = service_env("KAFKA_SASL_USER");
    secret(&client, &ns, "ecom-bad-creds", &user, "not-the-password").await;
    // The producer gives up after one call timeout (30 s) within this deadline.
    let manifest = secured(
        "denied",
        "ecom-bad-creds",
        100,
        json!({"stages": {"produce": {"activeDeadlineSeconds": 60, "backoffLimit": 0}}}),
    );
    create(&api, &manifest).await.expect("create pipeline");
    let status = wait_stage(
        &api,
        "denied",
        "produce",
        "Failed",
        Duration::from_secs(300),
    )
    .await;
    let message = status.stages["produce"].message.clone().unwrap_or_default();
    let bootstrap = service_env("KAFKA_SASL_BOOTSTRAP");
    assert!(message.contains(&bootstrap), "{message}");
    assert!(
        message.contains("SASL authentication error")
            && message.contains("Invalid username or password"),
        "{message}"
    );
    assert!(!message.contains("not-the-password"), "{message}");
    assert_eq!(
        condition(&status, "Degraded").map(|c| c.0),
        Some("True".to_string())
    );
    assert_eq!(
        status.phase.map(|p| p.as_str()),
        Some("Failed"),
        "{status:?}"
    );
    delete_namespace(&client, &ns).await;
}

/// The rows of fact table `table` on the harness's HBase (0 while it does not exist).
fn fact_rows(tables: &HbaseTables, table: &str) -> i64 {
    tokio::task::block_in_place(|| {
        tables
            .table(table)
            .and_then(|t| t.scan(b"", b"", usize::MAX))
            .map_or(0, |rows| rows.len() as i64)
    })
}

/// The `--shard` value in the args of a stream pod.
fn shard_arg(pod: &Pod) -> String {
    let args = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.args.clone())
        .unwrap_or_default();
    args.iter()
        .position(|a| a == "--shard")
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_default()
}

/// The `--shard` values of the stream pods of `instance` that exist (terminating included).
async fn running_shard_counts(client: &Client, ns: &str, instance: &str) -> BTreeSet<String> {
    let selector =
        format!("app.kubernetes.io/instance={instance},app.kubernetes.io/component=stream");
    pods_with(client, ns, &selector)
        .await
        .iter()
        .map(shard_arg)
        .collect()
}

/// Only the producer runs as a Job in streaming mode: no sink, clean or load Job exists.
async fn assert_only_the_producer_job(client: &Client, ns: &str) {
    let components: BTreeSet<String> = jobs(client, ns).await.values().map(component).collect();
    assert!(
        components.iter().all(|c| c == "produce"),
        "only the producer runs as a Job in streaming mode: {components:?}"
    );
}

/// Streaming mode with real pods: the producer Job, the stream StatefulSet (two shards, each
/// its pod index) and the dashboard start at once, and no sink, clean or load Job ever
/// exists; the shards become ready and the pipeline Ready while the producer still runs; the
/// fact table's row count grows with the micro-batches and ends at exactly the clean rows of
/// the generated data. Then two shards become one: the old pods stop before the new one
/// starts (never two shard counts at once), and the count stays exact.
/// Restarts of the operator containers of the chart's Deployment.
async fn operator_restarts(client: &Client) -> i32 {
    pods_with(client, NS, "app.kubernetes.io/component=operator")
        .await
        .iter()
        .filter_map(|p| p.status.as_ref()?.container_statuses.as_ref())
        .flatten()
        .map(|c| c.restart_count)
        .sum()
}

/// Sends SIGKILL to the `ecom operator` process of the node's pod (a process of this
/// machine, in a container's cgroup).
fn kill_the_operator() {
    let out = std::process::Command::new("pgrep")
        .args(["-f", "ecom operator"])
        .output()
        .expect("pgrep");
    let pids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .is_ok_and(|c| c.contains("kubepods"))
        })
        .map(str::to_string)
        .collect();
    assert!(!pids.is_empty(), "no operator process in a pod");
    for pid in pids {
        let status = std::process::Command::new("kill")
            .args(["-9", &pid])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -9 {pid}");
    }
}

// One scenario on purpose: the resharding needs the loaded pipeline before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_node_streaming_statefulset_is_ready_and_loads_exactly_the_truth_while_resharding() {
    let client = client().await;
    let ns = node_namespace(&client, "node-stream").await;
    let api: Api<EcomPipeline> = Api::namespaced(client.clone(), &ns);
    // 6000 rows at 100 rows/s: the producer runs for about a minute, over many 500 ms
    // batches, long enough for the shards and the dashboard to be ready meanwhile.
    let (rows, seed, dirty, rate) = (6000u64, 29u64, 0.1f64, 100.0f64);
    let manifest = node_pipeline(
        "live",
        json!({
            "mode": "streaming",
            "streaming": {"batchIntervalMs": 500, "shards": 2},
            "kafka": {"partitions": 4},
            "source": {"generated": {"rows": rows, "seed": seed, "dirtyRate": dirty, "ratePerSecond": rate}}
        }),
    );
    let table = manifest["spec"]["hbase"]["table"]
        .as_str()
        .expect("table")
        .to_string();
    create(&api, &manifest).await.expect("create pipeline");
    let expected = ground_truth(rows, seed, dirty)["full"]["rows_out"]
        .as_i64()
        .expect("rows_out");
    let tables = HbaseTables::new(HbaseConfig::new(service_env("HBASE_THRIFT")));

    // The dashboard and the StatefulSet exist from the start, before any data.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    wait_long(
        "the dashboard Deployment",
        Duration::from_secs(60),
        || async { deployments.get_opt("live-dashboard").await.ok()? },
    )
    .await;
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let sts = wait_long(
        "the stream StatefulSet",
        Duration::from_secs(60),
        || async { statefulsets.get_opt("live-stream").await.ok()? },
    )
    .await;
    let spec = sts.spec.clone().expect("spec");
    assert_eq!(spec.replicas, Some(2));
    assert_eq!(spec.pod_management_policy.as_deref(), Some("Parallel"));
    let c = spec
        .template
        .spec
        .as_ref()
        .map(|s| s.containers[0].clone())
        .expect("container");
    let args = c.args.clone().unwrap_or_default().join(" ");
    assert!(args.starts_with("stream "), "{args}");
    assert!(args.contains("--batch-interval 500ms"), "{args}");
    assert!(args.contains("--shard 2"), "{args}");
    let produce = job_of(&client, &ns, "live", "produce").await;
    assert_eq!(
        produce
            .spec
            .as_ref()
            .and_then(|s| s.active_deadline_seconds),
        None,
        "a paced streaming producer has no deadline"
    );

    // Follow the fact table while the producer runs; the pipeline becomes Ready meanwhile.
    // Once rows arrive, the operator is killed with SIGKILL (the kubelet restarts it): the
    // stream is not in its hands, and it takes up its status where it was.
    let restarts_before = operator_restarts(&client).await;
    let mut operator_killed = false;
    let mut counts: Vec<i64> = Vec::new();
    let mut ready_while_producing = false;
    let deadline = Instant::now() + Duration::from_secs(480);
    let status = loop {
        let s = status_of(&api, "live").await.expect("status");
        assert_ne!(
            s.phase.map(|p| p.as_str()),
            Some("Failed"),
            "{:?}",
            s.stages
        );
        let producing = s
            .stages
            .get("produce")
            .is_some_and(|p| p.state.as_str() == "Running");
        if producing && condition(&s, "Ready").map(|c| c.0).as_deref() == Some("True") {
            ready_while_producing = true;
        }
        let n = fact_rows(&tables, &table);
        if counts.last() != Some(&n) {
            counts.push(n);
        }
        if !operator_killed && n > 0 {
            kill_the_operator();
            operator_killed = true;
        }
        let produced = s
            .stages
            .get("produce")
            .is_some_and(|p| p.state.as_str() == "Succeeded");
        if produced
            && n == expected
            && condition(&s, "Ready").map(|c| c.0).as_deref() == Some("True")
        {
            break s;
        }
        assert!(
            n <= expected,
            "more rows than the clean truth ({expected}): {counts:?}"
        );
        assert!(
            Instant::now() < deadline,
            "not all {expected} rows loaded within 480 s; rows seen {counts:?}; status {s:?}\n{}",
            describe(&ns)
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert_only_the_producer_job(&client, &ns).await;
    eprintln!("fact table rows while streaming: {counts:?} (expected in the end: {expected})");
    assert!(
        operator_killed,
        "no row arrived before the producer finished"
    );
    assert!(
        operator_restarts(&client).await > restarts_before,
        "the operator's container was not restarted after SIGKILL"
    );
    assert!(
        counts.windows(2).all(|w| w[0] <= w[1]),
        "loaded rows went down: {counts:?}"
    );
    let distinct: BTreeSet<i64> = counts
        .iter()
        .copied()
        .filter(|&n| n > 0 && n < expected)
        .collect();
    assert!(
        distinct.len() >= 2,
        "the row count did not grow in steps while the producer ran: {counts:?}"
    );
    assert!(
        ready_while_producing,
        "Ready while the producer still sent: {:?}",
        status.conditions
    );
    assert_eq!(
        status.stages.keys().map(String::as_str).collect::<Vec<_>>(),
        ["produce", "stream"]
    );
    let stream = &status.stages["stream"];
    assert_eq!(
        stream.message.as_deref(),
        Some("2/2 shards streaming"),
        "{stream:?}"
    );
    assert_eq!((stream.ready, stream.completions), (Some(2), 2));
    assert_eq!(status.cycle, None);
    let c = status.counts.clone().expect("counts");
    assert_eq!(c.produced, Some(rows as i64), "{c:?}");
    for cond in ["Ingested", "Cleaned", "Loaded", "DashboardAvailable"] {
        assert_eq!(
            condition(&status, cond).map(|c| c.0).as_deref(),
            Some("True"),
            "{cond}: {:?}",
            status.conditions
        );
    }
    // Each shard is its pod index.
    let pods = pods_with(
        &client,
        &ns,
        "app.kubernetes.io/instance=live,app.kubernetes.io/component=stream",
    )
    .await;
    let indexes: BTreeSet<String> = pods
        .iter()
        .filter_map(|p| p.labels().get("apps.kubernetes.io/pod-index").cloned())
        .collect();
    assert_eq!(indexes, BTreeSet::from(["0".to_string(), "1".to_string()]));

    // Two shards become one: never both counts at once, and no row lost or doubled.
    api.patch(
        "live",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"streaming": {"shards": 1}}})),
    )
    .await
    .expect("patch shards");
    let mut seen_messages = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let shard_counts = running_shard_counts(&client, &ns, "live").await;
        assert!(
            shard_counts.len() <= 1,
            "stream pods of two shard counts at once: {shard_counts:?}\n{}",
            describe(&ns)
        );
        let s = status_of(&api, "live").await.expect("status");
        if let Some(m) = s.stages.get("stream").and_then(|st| st.message.clone()) {
            seen_messages.insert(m);
        }
        let sts = statefulsets.get("live-stream").await.expect("StatefulSet");
        let ready = sts.status.as_ref().and_then(|st| st.ready_replicas) == Some(1);
        let one = sts
            .annotations()
            .get("pipelines.ecom-pipeline.io/shards")
            .map(String::as_str)
            == Some("1");
        if one && ready && condition(&s, "Ready").map(|c| c.0).as_deref() == Some("True") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not resharded to 1 within 300 s; messages {seen_messages:?}; status {s:?}\n{}",
            describe(&ns)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!("stream stage messages while resharding: {seen_messages:?}");
    assert!(
        seen_messages
            .iter()
            .any(|m| m.starts_with("resharding from 2 to 1")),
        "{seen_messages:?}"
    );
    let after = running_shard_counts(&client, &ns, "live").await;
    assert_eq!(after, BTreeSet::from(["1".to_string()]));
    // The new shard resumes where the old ones committed: nothing more, nothing less.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(fact_rows(&tables, &table), expected);
    assert_only_the_producer_job(&client, &ns).await;
    delete_namespace(&client, &ns).await;
}
