//! Stage behaviours on the real one-node cluster that once ran on the kubelet stand-in of
//! `common::kube`: Kafka credentials from a Secret resolved by the kubelet (the harness's
//! SASL broker), a wrong password failing with the broker's words, and streaming mode's
//! long-running producer and sink beside clean and load Jobs repeated every cycle. The
//! pipelines use the harness's servers at the node address; the operator is the chart's pod.
//!
//! Run by `make node-test` with the other `real_node*` tests, one at a time.

mod common;
mod node_support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

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
    secret(&client, &ns, "kafka-creds", &user, &password).await;
    let rows = 2000u64;
    create(&api, &secured("secure", "kafka-creds", rows, json!({})))
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
            ("kafka-creds", "password")
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
    secret(&client, &ns, "bad-creds", &user, "not-the-password").await;
    // The producer gives up after one call timeout (30 s) within this deadline.
    let manifest = secured(
        "denied",
        "bad-creds",
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

/// Streaming mode with real pods: the dashboard starts before any data, the producer and the
/// sink keep running (the sink rolls files by time, not "until caught up"), and clean and load
/// Jobs of successive cycles load a growing number of rows, up to exactly the clean rows of the
/// generated data, which is what the fact table then holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_node_streaming_cycles_load_a_growing_count_up_to_the_truth() {
    let client = client().await;
    let ns = node_namespace(&client, "node-stream").await;
    let api: Api<EcomPipeline> = Api::namespaced(client.clone(), &ns);
    // 3000 rows at 100 rows/s: the producer runs for about 30 s, over several 10 s cycles.
    let (rows, seed, dirty, rate) = (3000u64, 29u64, 0.1f64, 100.0f64);
    let manifest = node_pipeline(
        "live",
        json!({
            "mode": "streaming",
            "streaming": {"intervalSeconds": 10},
            "kafka": {"partitions": 2},
            "source": {"generated": {"rows": rows, "seed": seed, "dirtyRate": dirty, "ratePerSecond": rate}},
            "stages": {"clean": {"parallelism": 2}, "load": {"parallelism": 1}}
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

    // The dashboard exists from the start, before any stage succeeded.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    wait_long(
        "the dashboard Deployment",
        Duration::from_secs(60),
        || async { deployments.get_opt("live-dashboard").await.ok()? },
    )
    .await;
    // The operator writes the status after it applies the objects: wait for the first one.
    let early = wait_long("the first status", Duration::from_secs(60), || {
        status_of(&api, "live")
    })
    .await;
    assert!(
        early
            .stages
            .values()
            .all(|s| s.state.as_str() != "Succeeded"),
        "the dashboard should not wait for data: {:?}",
        early.stages
    );
    let sink = job_of(&client, &ns, "live", "sink").await;
    assert_eq!(
        sink.spec.as_ref().and_then(|s| s.suspend),
        Some(false),
        "the streaming sink is not gated on the producer"
    );
    let sink_args = container_of(&sink).args.unwrap_or_default().join(" ");
    assert!(!sink_args.contains("--until-caught-up"), "{sink_args}");
    assert!(sink_args.contains("--roll-interval"), "{sink_args}");

    // Follow the status: the loaded count of each cycle's load Job.
    let mut loads: Vec<(String, i64)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(480);
    let status = loop {
        let s = status_of(&api, "live").await.expect("status");
        assert_ne!(
            s.phase.map(|p| p.as_str()),
            Some("Failed"),
            "{:?}",
            s.stages
        );
        if let (Some(load), Some(loaded)) = (
            s.stages.get("load"),
            s.counts.as_ref().and_then(|c| c.loaded),
        ) {
            let job = load.job.clone().unwrap_or_default();
            if load.state.as_str() == "Succeeded" && loads.last().map(|l| &l.0) != Some(&job) {
                loads.push((job, loaded));
            }
        }
        let produced = s
            .stages
            .get("produce")
            .is_some_and(|p| p.state.as_str() == "Succeeded");
        if produced && loads.last().is_some_and(|l| l.1 == expected) {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "not all {expected} rows loaded within 480 s; loads {loads:?}; status {s:?}\n{}",
            describe(&ns)
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    eprintln!("rows loaded per cycle: {loads:?} (expected in the end: {expected})");
    let counts: Vec<i64> = loads.iter().map(|l| l.1).collect();
    assert!(
        counts.windows(2).all(|w| w[0] <= w[1]),
        "loaded rows went down: {loads:?}"
    );
    let distinct: BTreeSet<i64> = counts.iter().copied().filter(|&n| n > 0).collect();
    assert!(
        distinct.len() >= 2,
        "loaded rows did not grow over two cycles: {loads:?}"
    );
    assert!(
        loads.iter().all(|l| l.0.contains("-c")),
        "cycle Jobs: {loads:?}"
    );
    let c = status.counts.clone().expect("counts");
    assert_eq!(c.produced, Some(rows as i64), "{c:?}");
    assert_eq!(
        status.phase.map(|p| p.as_str()),
        Some("Ready"),
        "{status:?}"
    );
    assert_eq!(
        condition(&status, "Ingested").map(|c| c.0).as_deref(),
        Some("True")
    );
    assert_eq!(
        condition(&status, "DashboardAvailable")
            .map(|c| c.0)
            .as_deref(),
        Some("True")
    );

    // HBase holds exactly those rows.
    let tables = HbaseTables::new(HbaseConfig::new(service_env("HBASE_THRIFT")));
    let fact = tables.table(&table).expect("fact table");
    let stored = fact.scan(b"", b"", usize::MAX).expect("scan").len() as i64;
    assert_eq!(stored, expected);
    delete_namespace(&client, &ns).await;
}
