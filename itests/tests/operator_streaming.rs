//! Streaming mode of the operator on the real services: the producer and the sink run as
//! long-lived local processes (the kubelet stand-in of `common::kube`), clean and load Jobs
//! of successive cycles run to completion against the real HDFS and HBase, and the status
//! follows. Needs `KUBECONFIG`, `KAFKA_BOOTSTRAP`, `HDFS_URL`, `HBASE_THRIFT` and the `ecom`
//! binary (see `common::kube`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

use common::kube::*;
use common::service_env;
use ecom_jobs::store::hbase::{HbaseConfig, HbaseTables};
use ecom_jobs::store::TableStore;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Service;
use kube::api::Api;
use kube::ResourceExt;
use serde_json::{json, Value};

fn rows_of(message: &str) -> Option<i64> {
    let v: Value = serde_json::from_str(message.lines().last()?).ok()?;
    v["rows"].as_i64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_pipeline_repeats_clean_and_load_with_growing_counts() {
    let (client, ns, api) = pipeline_namespace("ecp-stream").await;
    let _op = Operator::start(&ns, &unique("op-stream"));
    // 3000 rows at 100 rows/s: the producer runs for about 30 s, over several 10 s cycles.
    let (rows, seed, dirty, rate) = (3000u64, 29u64, 0.1f64, 100.0f64);
    let suffix = unique("s").replace('-', "");
    let thrift = service_env("HBASE_THRIFT");
    let table = format!("ecs_{suffix}");
    let base = format!("/ecs-{suffix}");
    let manifest = real_pipeline(
        "live",
        "ecs",
        &suffix,
        json!({
            "mode": "streaming",
            "streaming": {"intervalSeconds": 10},
            "kafka": {"partitions": 2},
            "source": {"generated": {"rows": rows, "seed": seed, "dirtyRate": dirty, "ratePerSecond": rate}},
            "stages": {"clean": {"parallelism": 2}, "load": {"parallelism": 1}}
        }),
    );
    create(&api, &manifest).await.expect("create");
    let truth = ground_truth(rows, seed, dirty);
    let expected = truth["full"]["rows_out"].as_i64().expect("rows_out");

    // The dashboard exists from the start, before any data is loaded.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    wait_for("the dashboard Deployment and Service", || async {
        deployments.get_opt("live-dashboard").await.ok()??;
        services.get_opt("live-dashboard").await.ok()?
    })
    .await;
    // The operator writes status right after applying the objects: wait for it.
    let early = wait_for("the first status", || status_of(&api, "live")).await;
    assert!(
        early.stages.values().all(|s| s.state != "Succeeded"),
        "the dashboard should not wait for data: {:?}",
        early.stages
    );
    let sink = wait_job(&client, &ns, "sink").await;
    assert_eq!(
        sink.spec.as_ref().and_then(|s| s.suspend),
        Some(false),
        "the streaming sink is not gated on the producer"
    );
    let sink_args = format!(
        "{:?}",
        sink.spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .map(|s| s.containers[0].args.clone())
    );
    assert!(!sink_args.contains("--until-caught-up"), "{sink_args}");
    assert!(sink_args.contains("--roll-interval"), "{sink_args}");
    dashboard_available(&client, &ns, "live-dashboard").await;

    // Play kubelet: producer and sink in the background, clean and load to completion.
    let mut started = BTreeSet::new();
    let mut background: Vec<(Job, LocalPod)> = Vec::new();
    let mut producer_done = false;
    let mut loads: Vec<(String, i64)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        assert!(
            Instant::now() < deadline,
            "no complete load within 300 s; loads so far {loads:?}; status {:?}",
            status_of(&api, "live").await
        );
        if let Some(s) = status_of(&api, "live").await {
            assert_ne!(s.phase.as_deref(), Some("Failed"), "{:?}", s.stages);
        }
        for job in runnable_jobs(&client, &ns, &started).await {
            started.insert(job.name_any());
            let stage = component(&job);
            if stage == "produce" || stage == "sink" {
                let pod = spawn_pod_locally(&client, &ns, &job, 0).await;
                background.push((job, pod));
                continue;
            }
            let messages = run_job_locally(&client, &ns, &job).await;
            if stage == "load" {
                let loaded = rows_of(&messages[0]).expect("rows in the load summary");
                loads.push((job.name_any(), loaded));
            }
        }
        let mut still = Vec::new();
        for (job, mut pod) in background.drain(..) {
            match pod.try_finish() {
                Some((ok, message)) => {
                    assert!(ok, "{} failed:\n{message}", job.name_any());
                    assert_eq!(component(&job), "produce", "the sink stopped: {message}");
                    finish_job(&client, &ns, &job, &[&message], false).await;
                    producer_done = true;
                }
                None => still.push((job, pod)),
            }
        }
        background = still;
        // Done once the producer finished and a cycle loaded everything.
        if producer_done && loads.last().is_some_and(|l| l.1 == expected) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    eprintln!("rows loaded per cycle: {loads:?} (expected in the end: {expected})");
    // Loaded rows grew over the cycles, up to exactly the clean rows of the generated data.
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
    let names: BTreeSet<&str> = loads.iter().map(|l| l.0.as_str()).collect();
    assert_eq!(
        names.len(),
        loads.len(),
        "one load Job per cycle: {loads:?}"
    );
    assert!(
        loads.iter().all(|l| l.0.contains("-c")),
        "cycle Jobs: {loads:?}"
    );
    assert_eq!(counts.last().copied(), Some(expected), "{loads:?}");

    let status = wait_for("the status of the last cycle", || async {
        let s = status_of(&api, "live").await?;
        (s.counts.as_ref()?.loaded == Some(expected)).then_some(s)
    })
    .await;
    let c = status.counts.clone().expect("counts");
    assert_eq!(c.produced, Some(rows as i64), "{c:?}");
    assert!(
        status.cycle.unwrap_or(0) >= loads.len() as i64,
        "cycle {:?} after {} loads",
        status.cycle,
        loads.len()
    );
    assert_eq!(status.phase.as_deref(), Some("Ready"), "{status:?}");
    let by_type: BTreeMap<&str, &str> = status
        .conditions
        .iter()
        .map(|c| (c.type_.as_str(), c.status.as_str()))
        .collect();
    assert_eq!(by_type.get("Ingested"), Some(&"True"), "{by_type:?}");
    assert_eq!(
        by_type.get("DashboardAvailable"),
        Some(&"True"),
        "{by_type:?}"
    );

    // HBase holds exactly those rows.
    let tables = HbaseTables::new(HbaseConfig::new(thrift.clone()));
    let fact = tables.table(&table).expect("fact table");
    let stored = fact.scan(b"", b"", usize::MAX).expect("scan").len() as i64;
    assert_eq!(stored, expected);

    // The sink stops cleanly on SIGTERM (the pod's deletion).
    for (job, pod) in background {
        let (ok, message) = pod.stop().await;
        assert!(ok, "{} on SIGTERM:\n{message}", job.name_any());
    }
    let hdfs = service_env("HDFS_URL");
    let _ = Command::new(ecom_bin())
        .args([
            "purge",
            "--path",
            &format!("{hdfs}{base}"),
            "--table",
            &table,
        ])
        .env("HBASE_THRIFT", &thrift)
        .env("ECOM_SUMMARY_FILE", "/dev/null")
        .output();
}
