//! Integration tests of the operator against the real kube-apiserver of the services harness,
//! with `ecom operator` running as a process. There is no kubelet or controller-manager: a
//! test-side stand-in (`common::kube`) plays the kubelet and the Job controller, creating each
//! Job's pods and writing pod and Job status (termination messages included) through the API.
//!
//! Needs `KUBECONFIG` (from `eval "$(scripts/services.sh env)"`) and the `ecom` binary:
//! `ECOM_BIN`, or `$CARGO_TARGET_DIR/release/ecom` (`make itest` builds it first).

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use common::kube::*;
use common::{seed_tables, service_env};
use ecom_jobs::owner::{self, Owner};
use ecom_jobs::store::hbase::{HbaseConfig, HbaseTables};
use ecom_jobs::store::hdfs::HdfsFiles;
use ecom_jobs::store::{FileStore, TableStore};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Event as CoreEvent;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::ResourceExt;
use serde_json::{json, Value};

// A table of cases in one namespace: long because every rule of the schema has its case.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_refuses_invalid_pipelines() {
    let (client, ns, api) = pipeline_namespace("ecp-invalid").await;
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "no-source",
            json!({"source": null}),
            "spec.source: Required value",
        ),
        (
            "two-sources",
            json!({"source": {"file": {"claimName": "data", "path": "d.tsv"}}}),
            "exactly one of source.generated or source.file must be set",
        ),
        (
            "zero-partitions",
            json!({"kafka": {"partitions": 0}}),
            "spec.kafka.partitions: Invalid value",
        ),
        (
            "bad-mode",
            json!({"mode": "continuous"}),
            "supported values: \"batch\", \"streaming\"",
        ),
        (
            "dirty-rate",
            json!({"source": {"generated": {"dirtyRate": 1.5}}}),
            "spec.source.generated.dirtyRate",
        ),
        (
            "nested-paths",
            json!({"hdfs": {"cleanPath": "/itest/raw/clean"}}),
            "rawPath and cleanPath must be different and not inside each other",
        ),
        (
            "hdfs-scheme",
            json!({"hdfs": {"url": "http://namenode:9000"}}),
            "spec.hdfs.url: Invalid value",
        ),
        (
            "node-port",
            json!({"dashboard": {"nodePort": 30080}}),
            "nodePort requires serviceType NodePort or LoadBalancer",
        ),
        (
            "sasl-missing",
            json!({"kafka": {"security": {"protocol": "SASL_SSL"}}}),
            "sasl is required exactly when protocol is SASL_PLAINTEXT or SASL_SSL",
        ),
        (
            "tls-plaintext",
            json!({"kafka": {"security": {"tls": {"caSecretName": "ca"}}}}),
            "tls requires protocol SSL or SASL_SSL",
        ),
        (
            "parallelism",
            json!({"stages": {"load": {"parallelism": 100}}}),
            "spec.stages.load.parallelism: Invalid value",
        ),
        (
            "stream-shards",
            json!({"mode": "streaming", "streaming": {"shards": 0}}),
            "spec.streaming.shards: Invalid value",
        ),
        (
            "stream-interval",
            json!({"mode": "streaming", "streaming": {"batchIntervalMs": 50}}),
            "spec.streaming.batchIntervalMs: Invalid value",
        ),
        (
            "stream-batch",
            json!({"mode": "streaming", "streaming": {"maxBatchRecords": 10}}),
            "spec.streaming.maxBatchRecords: Invalid value",
        ),
        (
            "thrift-port",
            json!({"hbase": {"thriftPort": 70000}}),
            "spec.hbase.thriftPort: Invalid value",
        ),
        (
            "cleanup-policy",
            json!({"cleanupPolicy": "Purge"}),
            "supported values: \"Retain\", \"Delete\"",
        ),
        (
            "streaming-in-batch",
            json!({"streaming": {"intervalSeconds": 60}}),
            "spec.streaming requires mode: streaming",
        ),
        (
            "topic-chars",
            json!({"kafka": {"topic": "bad topic!"}}),
            "spec.kafka.topic: Invalid value",
        ),
        (
            "dotted.name",
            json!({}),
            "metadata.name must be a DNS-1035 label",
        ),
        (
            "no-bootstrap",
            json!({"kafka": {"bootstrap": null}}),
            "spec.kafka.bootstrap: Required value",
        ),
        (
            "max-run-bytes",
            json!({"stages": {"clean": {"maxRunBytes": 1000}}}),
            "spec.stages.clean.maxRunBytes: Invalid value",
        ),
        (
            "rate-zero",
            json!({"source": {"generated": {"ratePerSecond": 0}}}),
            "ratePerSecond must be at least 0.001",
        ),
        (
            "empty-image",
            json!({"image": ""}),
            "spec.image: Invalid value",
        ),
        (
            "bootstrap-port",
            json!({"kafka": {"bootstrap": "kafka"}}),
            "spec.kafka.bootstrap: Invalid value",
        ),
        (
            "relative-path",
            json!({"hdfs": {"rawPath": "raw"}}),
            "spec.hdfs.rawPath: Invalid value",
        ),
        (
            "file-dotdot",
            json!({"source": {"generated": null, "file": {"claimName": "c", "path": "a/../b"}}}),
            "path must not contain '..'",
        ),
    ];
    let mut failures = Vec::new();
    for (name, patch, expected) in &cases {
        match create_raw(&client, &ns, &pipeline(name, patch.clone())).await {
            Ok(_) => failures.push(format!("{name}: accepted")),
            Err(kube::Error::Api(s)) if s.code == 422 && s.message.contains(expected) => {}
            Err(e) => failures.push(format!("{name}: expected {expected:?}, got {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // runId may only grow (a transition rule).
    let created = create(&api, &pipeline("runid", json!({"runId": 2})))
        .await
        .expect("valid pipeline");
    let patch = json!({"spec": {"runId": 1}});
    let err = api
        .patch(
            &created.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .expect_err("runId decrease refused");
    assert!(
        err.to_string().contains("runId can only be increased"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_shows_columns_and_explains_fields() {
    let (_, ns, api) = pipeline_namespace("ecp-kubectl").await;
    create_pipeline(&api, "shown", json!({"suspend": true})).await;
    let status = json!({"status": {"phase": "Running", "counts": {"produced": 1000, "loaded": 900},
        "conditions": [{"type": "Ready", "status": "False", "reason": "InProgress", "message": "", "lastTransitionTime": now()}]}});
    api.patch_status("shown", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("status");
    let table = kubectl(&["get", "ecp", "-n", &ns]);
    let header = table_line(&table, 0);
    assert_eq!(
        header,
        ["NAME", "PHASE", "READY", "PRODUCED", "LOADED", "AGE"],
        "{table}"
    );
    let row = table_line(&table, 1);
    assert_eq!(
        &row[..5],
        ["shown", "Running", "False", "1000", "900"],
        "{table}"
    );
    let wide = kubectl(&["get", "ecp", "-n", &ns, "-o", "wide"]);
    assert!(wide.lines().next().unwrap_or("").contains("MODE"), "{wide}");

    // kubectl explain reads the published OpenAPI, which lags the CRD by a moment.
    let explain = wait_for("kubectl explain ecp.spec", || async {
        let out = Command::new(service_env("KUBECTL"))
            .args(["explain", "ecp.spec"])
            .env("KUBECONFIG", service_env("KUBECONFIG"))
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    })
    .await;
    for expected in [
        "Desired state of an e-commerce analytics pipeline",
        "kafka\t<Object> -required-",
        "Kafka connection and topic.",
        "cleanupPolicy",
        "Increase to run the whole pipeline again on purpose",
    ] {
        assert!(
            explain.contains(expected),
            "missing {expected:?} in:\n{explain}"
        );
    }
    let sasl = kubectl(&["explain", "ecp.spec.kafka.security.sasl"]);
    assert!(
        sasl.contains("Secret (in the resource's namespace) holding the username and password."),
        "{sasl}"
    );
}

// One pipeline followed from creation to Ready: each step depends on the one before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_runs_in_order_and_reaches_ready_with_counts() {
    let (client, ns, api) = pipeline_namespace("ecp-ready").await;
    let op = Operator::start(&ns, &unique("op-ready"));
    // Producer and sink first; the sink waits (suspended) for the producer.
    let (produce, sink) = start_pipeline(&client, &ns, "demo").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let all = jobs(&client, &ns).await;
    let stages: BTreeSet<_> = all.values().map(component).collect();
    assert_eq!(
        stages,
        BTreeSet::from(["produce".to_string(), "sink".to_string()])
    );
    assert_eq!(sink.spec.as_ref().and_then(|s| s.suspend), Some(true));
    let owner = &produce.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("EcomPipeline", "demo", Some(true))
    );
    let args = produce
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|s| s.containers[0].args.clone());
    assert!(format!("{args:?}").contains("--generate-rows"), "{args:?}");

    finish_job(
        &client,
        &ns,
        &produce,
        &[r#"{"records":1000,"header_lines":0,"blank_lines":0,"bytes":70000}"#],
        false,
    )
    .await;
    wait_suspended(&client, &ns, &sink, false).await;
    assert!(
        jobs(&client, &ns)
            .await
            .values()
            .all(|j| component(j) != "clean"),
        "clean before the sink finished"
    );
    finish_job(
        &client,
        &ns,
        &sink,
        &[r#"{"records":1000,"files":2,"resumed_from":{"0":0}}"#],
        false,
    )
    .await;

    let clean = wait_job(&client, &ns, "clean").await;
    let cspec = clean.spec.clone().expect("spec");
    assert_eq!(
        (cspec.completion_mode.as_deref(), cspec.completions),
        (Some("Indexed"), Some(2))
    );
    finish_job(
        &client,
        &ns,
        &clean,
        &[
            r#"{"run":"r1","shard":"0/2","report":{"rows_in":600,"rows_out":540,"dropped":{"missing_field":40,"duplicate_order_id":20}}}"#,
            r#"{"run":"r1","shard":"1/2","report":{"rows_in":400,"rows_out":370,"dropped":{"missing_field":30,"duplicate_order_id":0}}}"#,
        ],
        false,
    )
    .await;
    let load = wait_job(&client, &ns, "load").await;
    finish_job(&client, &ns, &load, &[r#"{"rows":910,"files":2}"#], false).await;

    dashboard_available(&client, &ns, "demo-dashboard").await;
    let status = wait_phase(&api, "demo", "Ready").await;
    let counts = status.counts.clone().expect("counts");
    assert_eq!(
        (
            counts.produced,
            counts.sunk,
            counts.clean_input,
            counts.cleaned,
            counts.loaded
        ),
        (Some(1000), Some(1000), Some(1000), Some(910), Some(910))
    );
    assert_eq!(counts.dropped["missing_field"], 70);
    assert_eq!(counts.dropped["duplicate_order_id"], 20);
    for c in [
        "Ingested",
        "Cleaned",
        "Loaded",
        "DashboardAvailable",
        "Ready",
    ] {
        assert_eq!(
            condition(&status, c).map(|c| c.0),
            Some("True".to_string()),
            "{c}: {:?}",
            status.conditions
        );
    }
    assert_eq!(
        condition(&status, "Degraded").map(|c| c.0),
        Some("False".to_string())
    );
    assert_eq!(status.stages["clean"].succeeded, 2);
    let dash = status.dashboard.clone().expect("dashboard status");
    assert_eq!(
        dash.port_forward,
        format!("kubectl -n {ns} port-forward svc/demo-dashboard 8080:8080")
    );
    assert_eq!(status.observed_generation, Some(1));

    let table = kubectl(&["get", "ecp", "-n", &ns]);
    let row = table_line(&table, 1);
    assert_eq!(
        &row[..5],
        ["demo", "Ready", "True", "1000", "910"],
        "{table}"
    );

    // Exactly one Job per stage was ever created.
    assert_eq!(jobs(&client, &ns).await.len(), 4);
    assert_eq!(
        op.metric("ecom_operator_jobs_created_total").await,
        Some(4.0)
    );
    let (code, _) = op.get("/readyz").await.expect("readyz");
    assert_eq!(code, 200);
    assert_eq!(op.get("/healthz").await.map(|r| r.0), Some(200));
    assert_eq!(op.stop().code(), Some(0), "clean exit on SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_stage_degrades_with_an_event() {
    let (client, ns, api) = pipeline_namespace("ecp-fail").await;
    let _op = Operator::start(&ns, &unique("op-fail"));
    create_pipeline(&api, "broken", json!({})).await;
    let produce = wait_job(&client, &ns, "produce").await;
    finish_job(&client, &ns, &produce, &["error: kafka unreachable"], true).await;
    let status = wait_phase(&api, "broken", "Failed").await;
    assert_eq!(
        condition(&status, "Degraded"),
        Some(("True".into(), "StageFailed".into()))
    );
    assert!(status.stages["produce"]
        .message
        .clone()
        .unwrap_or_default()
        .contains("BackoffLimitExceeded"));
    let events: Api<CoreEvent> = Api::namespaced(client.clone(), &ns);
    wait_for("a StageFailed Event", || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("StageFailed") && e.type_.as_deref() == Some("Warning")
            })
            .then_some(())
    })
    .await;
    // No new Job and no retry loop: the failed Job stays the only producer.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let produces = jobs(&client, &ns)
        .await
        .values()
        .filter(|j| component(j) == "produce")
        .count();
    assert_eq!(produces, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_stops_new_jobs() {
    let (client, ns, api) = pipeline_namespace("ecp-suspend").await;
    let _op = Operator::start(&ns, &unique("op-suspend"));
    create_pipeline(&api, "paused", json!({"suspend": true})).await;
    wait_phase(&api, "paused", "Suspended").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        jobs(&client, &ns).await.is_empty(),
        "a suspended pipeline created Jobs"
    );

    let resume = json!({"spec": {"suspend": false}});
    api.patch("paused", &PatchParams::default(), &Patch::Merge(&resume))
        .await
        .expect("resume");
    let produce = wait_job(&client, &ns, "produce").await;
    wait_job(&client, &ns, "sink").await;

    // Suspend mid-run: the running producer is suspended, and its success starts nothing.
    let pause = json!({"spec": {"suspend": true}});
    api.patch("paused", &PatchParams::default(), &Patch::Merge(&pause))
        .await
        .expect("suspend");
    wait_suspended(&client, &ns, &produce, true).await;
    finish_job(&client, &ns, &produce, &[r#"{"records":1000}"#], false).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let all = jobs(&client, &ns).await;
    assert_eq!(all.len(), 2, "{:?}", all.keys());
    let sink = all.values().find(|j| component(j) == "sink").expect("sink");
    assert_eq!(
        sink.spec.as_ref().and_then(|s| s.suspend),
        Some(true),
        "sink stays suspended"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_runs_the_finalizer() {
    let (client, ns, api) = pipeline_namespace("ecp-final").await;
    let _op = Operator::start(&ns, &unique("op-final"));

    // Retain: the finalizer lets go at once.
    create_pipeline(&api, "kept", json!({})).await;
    wait_for("the finalizer", || async {
        let o = api.get("kept").await.ok()?;
        o.finalizers()
            .iter()
            .any(|f| f == "pipelines.ecom-pipeline.io/cleanup")
            .then_some(())
    })
    .await;
    api.delete("kept", &DeleteParams::default())
        .await
        .expect("delete");
    wait_gone(&api, "kept").await;

    // Delete: the real cleanup Job (`ecom purge`) runs first, against the real HDFS and
    // HBase; the resource goes when it succeeded, and the data marked as the pipeline's with
    // it. A path the spec names but another pipeline marked stays, as does an unrelated one.
    let suffix = unique("f").replace('-', "");
    let hdfs_url = service_env("HDFS_URL");
    let thrift = service_env("HBASE_THRIFT");
    let (thrift_host, thrift_port) = thrift_host_port();
    let base = format!("/ecf-{suffix}");
    let table = format!("ecf_{suffix}");
    let keep = format!("/ecf-keep-{suffix}/k.tsv");
    let obj = create_pipeline(
        &api,
        "purged",
        json!({
            "cleanupPolicy": "Delete",
            "hdfs": {"url": hdfs_url, "rawPath": format!("{base}/raw"), "cleanPath": format!("{base}/other/clean")},
            "hbase": {"thriftHost": thrift_host, "thriftPort": thrift_port, "table": table}
        }),
    )
    .await;
    let me = Owner {
        uid: obj.uid().expect("uid"),
        name: format!("{ns}/purged"),
    };
    let other = Owner {
        uid: "another-pipeline".into(),
        name: format!("{ns}/another"),
    };
    {
        let (hdfs_url, thrift, base, table, keep) = (
            hdfs_url.clone(),
            thrift.clone(),
            base.clone(),
            table.clone(),
            keep.clone(),
        );
        let (me, other) = (me.clone(), other.clone());
        tokio::task::spawn_blocking(move || {
            let files = HdfsFiles::open(&hdfs_url, Duration::from_secs(30)).expect("hdfs");
            for path in [
                format!("{base}/raw/a.tsv"),
                format!("{base}/other/clean/_manifest/r.json"),
                keep,
            ] {
                files.write_atomic(&path, b"1\n").expect("write");
            }
            owner::claim_dir(&files, &format!("{base}/raw"), "raw", &me).expect("mark raw");
            owner::claim_dir(&files, &format!("{base}/other/clean"), "clean", &other)
                .expect("mark clean");
            let tables = HbaseTables::new(HbaseConfig::new(thrift));
            seed_tables(&tables, &table);
            let agg = tables.table(&format!("{table}_agg")).expect("agg table");
            owner::claim_table(agg.as_ref(), "table", &me).expect("mark table");
        })
        .await
        .expect("seed data");
    }
    wait_job_of(&client, &ns, "purged", "produce").await;
    api.delete("purged", &DeleteParams::default())
        .await
        .expect("delete");
    let cleanup = wait_job_of(&client, &ns, "purged", "cleanup").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let obj = api.get("purged").await.expect("still there while cleaning");
    assert!(obj.metadata.deletion_timestamp.is_some());
    let message = run_job_locally(&client, &ns, &cleanup).await.join("\n");
    wait_gone(&api, "purged").await;
    let gone = tokio::task::spawn_blocking(move || {
        let files = HdfsFiles::open(&hdfs_url, Duration::from_secs(30)).expect("hdfs");
        let tables = HbaseTables::new(HbaseConfig::new(thrift));
        (
            files.exists(&format!("{base}/raw")).expect("exists"),
            files
                .exists(&format!("{base}/other/clean/_manifest/r.json"))
                .expect("exists"),
            files.exists(&keep).expect("exists"),
            tables.table(&table).is_ok(),
            tables.table(&format!("{table}_agg")).is_ok(),
        )
    })
    .await
    .expect("check data");
    assert_eq!(
        gone,
        (false, true, true, false, false),
        "(raw, another pipeline's clean, unrelated path, table, aggregates table) exist after cleanup: {message}"
    );
    assert!(
        message.contains(&format!(
            "belongs to EcomPipeline {ns}/another (uid another-pipeline)"
        )),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_operator_creates_no_duplicate_job() {
    let (client, ns, api) = pipeline_namespace("ecp-restart").await;
    let op = Operator::start(&ns, &unique("op-restart-a"));
    let (produce, sink) = start_pipeline(&client, &ns, "again").await;
    finish_job(&client, &ns, &produce, &[r#"{"records":1000}"#], false).await;
    wait_suspended(&client, &ns, &sink, false).await;
    finish_job(&client, &ns, &sink, &[r#"{"records":1000}"#], false).await;
    let clean = wait_job(&client, &ns, "clean").await;
    wait_for("status remembers produce", || async {
        let s = status_of(&api, "again").await?;
        (s.stages.get("sink")?.state.as_str() == "Succeeded").then_some(())
    })
    .await;

    // Crash mid-pipeline; meanwhile the finished Jobs are TTL-deleted.
    op.signal("-KILL");
    drop(op);
    let jobs_api: Api<Job> = Api::namespaced(client.clone(), &ns);
    for j in [&produce, &sink] {
        jobs_api
            .delete(&j.name_any(), &DeleteParams::background())
            .await
            .expect("delete finished Job");
    }
    let before: BTreeSet<String> = jobs(&client, &ns).await.into_keys().collect();
    let op = Operator::start(&ns, &unique("op-restart-b"));
    wait_for("the new operator leading", || async {
        (op.metric("ecom_operator_leader").await? == 1.0).then_some(())
    })
    .await;
    wait_for("a reconcile", || async {
        (op.metric("ecom_operator_reconciles_total").await? >= 1.0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after: BTreeSet<String> = jobs(&client, &ns).await.into_keys().collect();
    assert_eq!(
        before, after,
        "the restarted operator created or deleted Jobs"
    );
    finish_job(
        &client,
        &ns,
        &clean,
        &[
            r#"{"report":{"rows_in":500,"rows_out":500}}"#,
            r#"{"report":{"rows_in":500,"rows_out":490}}"#,
        ],
        false,
    )
    .await;
    wait_job(&client, &ns, "load").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let names: Vec<String> = jobs(&client, &ns).await.values().map(component).collect();
    assert_eq!(
        names
            .iter()
            .filter(|c| *c == "produce" || *c == "sink")
            .count(),
        0,
        "{names:?}"
    );
    assert_eq!(names.len(), 2, "{names:?}");
    let s = status_of(&api, "again").await.expect("status");
    assert_eq!(
        s.counts.and_then(|c| c.produced),
        Some(1000),
        "remembered count"
    );
    assert_eq!(
        op.metric("ecom_operator_jobs_created_total").await,
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_never_both_reconcile() {
    let (client, ns, _) = pipeline_namespace("ecp-lease").await;
    let a = Operator::start(&ns, &unique("op-lease-a"));
    let b = Operator::start(&ns, &unique("op-lease-b"));
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let holder = wait_for("a lease holder", || async {
        leases
            .get_opt("ecom-operator")
            .await
            .ok()??
            .spec?
            .holder_identity
    })
    .await;
    let (leader, standby) = if holder == a.identity { (a, b) } else { (b, a) };
    assert_eq!(holder, leader.identity);
    wait_for("leader gauge", || async {
        (leader.metric("ecom_operator_leader").await? == 1.0).then_some(())
    })
    .await;
    assert_eq!(standby.metric("ecom_operator_leader").await, Some(0.0));
    assert_eq!(
        standby.get("/readyz").await.map(|r| r.0),
        Some(200),
        "a standby is ready"
    );

    let (produce, sink) = start_pipeline(&client, &ns, "shared").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        standby.metric("ecom_operator_reconciles_total").await,
        Some(0.0),
        "the standby reconciled"
    );
    assert_eq!(jobs(&client, &ns).await.len(), 2);

    // The leader stops (releasing the lease); the standby takes over and carries on.
    assert_eq!(leader.stop().code(), Some(0));
    wait_for("the standby leading", || async {
        (standby.metric("ecom_operator_leader").await? == 1.0).then_some(())
    })
    .await;
    let holder = leases
        .get("ecom-operator")
        .await
        .expect("lease")
        .spec
        .and_then(|s| s.holder_identity);
    assert_eq!(holder.as_deref(), Some(standby.identity.as_str()));
    finish_job(&client, &ns, &produce, &[r#"{"records":1000}"#], false).await;
    // The sink resumed by the new leader.
    wait_suspended(&client, &ns, &sink, false).await;
    assert_eq!(
        jobs(&client, &ns).await.len(),
        2,
        "no duplicate Job after the takeover"
    );
}
