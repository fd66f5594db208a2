//! Tenancy on the real kube-apiserver, with `ecom operator` running as a process: pipelines
//! get storage of their own by default, the younger of two pipelines on the same storage is
//! refused (and deleting it touches no data), the operator neither changes nor deletes an
//! object it does not control, and its allow-lists hold.
//!
//! Needs `KUBECONFIG` (from `eval "$(scripts/services.sh env)"`) and the `ecom` binary.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::kube::*;
use common::{seed_tables, service_env};
use ecom_jobs::owner::{self, Owner};
use ecom_jobs::store::hbase::{HbaseConfig, HbaseTables};
use ecom_jobs::store::hdfs::HdfsFiles;
use ecom_jobs::store::TableStore;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Event as CoreEvent;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

/// The Ready condition's reason and message of `name`, once its phase is `phase`.
async fn refused(api: &Api<ecom_operator::crd::EcomPipeline>, name: &str, reason: &str) -> String {
    let s = wait_phase(api, name, "Refused").await;
    let ready = s
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready condition");
    assert_eq!(ready.status.as_str(), "False");
    assert_eq!(ready.reason, reason, "{}", ready.message);
    ready.message.clone()
}

/// Names of the Jobs of pipeline `instance`.
async fn jobs_of(client: &Client, ns: &str, instance: &str) -> Vec<String> {
    jobs(client, ns)
        .await
        .into_iter()
        .filter(|(_, j)| {
            j.labels()
                .get("app.kubernetes.io/instance")
                .map(String::as_str)
                == Some(instance)
        })
        .map(|(n, _)| n)
        .collect()
}

/// Waits for an Event with `reason` about the pipeline `name`; returns its note.
async fn event(client: &Client, ns: &str, name: &str, reason: &str) -> String {
    let events: Api<CoreEvent> = Api::namespaced(client.clone(), ns);
    wait_for(&format!("a {reason} Event of {name}"), || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items.into_iter().find_map(|e| {
            (e.reason.as_deref() == Some(reason) && e.involved_object.name.as_deref() == Some(name))
                .then(|| e.message.unwrap_or_default())
        })
    })
    .await
}

fn args_of(job: &k8s_openapi::api::batch::v1::Job) -> Vec<String> {
    job.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.containers.first())
        .and_then(|c| c.args.clone())
        .unwrap_or_default()
}

fn flag(args: &[String], name: &str) -> String {
    let at = args.iter().position(|a| a == name).expect("flag");
    args[at + 1].clone()
}

// One scenario: the refusal, the delete that must not touch the older pipeline's data and the
// defaults that avoid the conflict build on the same two pipelines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_younger_of_two_pipelines_on_one_table_is_refused_and_its_delete_keeps_the_data() {
    let (client, ns, api) = pipeline_namespace("ecp-tenancy").await;
    let _op = Operator::start(&ns, &unique("op-tenancy"));
    let suffix = unique("t").replace('-', "");
    let table = format!("tenancy_{suffix}");
    let thrift = service_env("HBASE_THRIFT");
    let (thrift_host, thrift_port) = thrift_host_port();
    {
        let (thrift, table) = (thrift.clone(), table.clone());
        tokio::task::spawn_blocking(move || {
            seed_tables(&HbaseTables::new(HbaseConfig::new(thrift)), &table)
        })
        .await
        .expect("seed the older pipeline's table");
    }
    let hbase = json!({"thriftHost": thrift_host, "thriftPort": thrift_port, "table": table});
    create_pipeline(
        &api,
        "older",
        json!({"hbase": hbase, "hdfs": {"rawPath": "/tenancy/older/raw", "cleanPath": "/tenancy/older/clean"}}),
    )
    .await;
    wait_job_of(&client, &ns, "older", "produce").await;
    wait_for("older's status lists its stages", || async {
        let s = status_of(&api, "older").await?;
        (!s.stages.is_empty()).then_some(())
    })
    .await;
    // Another topic and other paths, but the same table: refused, with the reason.
    create_pipeline(
        &api,
        "younger",
        json!({
            "cleanupPolicy": "Delete",
            "kafka": {"topic": "other"},
            "hbase": hbase,
            "hdfs": {"rawPath": "/tenancy/younger/raw", "cleanPath": "/tenancy/younger/clean"}
        }),
    )
    .await;
    let message = refused(&api, "younger", "StorageInUse").await;
    assert!(
        message.starts_with(&format!(
            "HBase table {table} on {thrift_host}:{thrift_port}"
        )),
        "{message}"
    );
    assert!(
        message.contains(&format!("EcomPipeline {ns}/older")),
        "{message}"
    );
    assert!(jobs_of(&client, &ns, "younger").await.is_empty());
    event(&client, &ns, "younger", "StorageInUse").await;

    // Deleting the refused pipeline (cleanupPolicy Delete) runs no cleanup Job: the table
    // stays, and so do the older pipeline's Jobs.
    let older_jobs = jobs_of(&client, &ns, "older").await;
    api.delete("younger", &DeleteParams::default())
        .await
        .expect("delete");
    wait_gone(&api, "younger").await;
    let note = event(&client, &ns, "younger", "CleanupSkipped").await;
    assert!(note.contains("kept"), "{note}");
    assert!(jobs_of(&client, &ns, "younger").await.is_empty());
    assert_eq!(jobs_of(&client, &ns, "older").await, older_jobs);
    let kept = {
        let (thrift, table) = (thrift.clone(), table.clone());
        tokio::task::spawn_blocking(move || {
            let tables = HbaseTables::new(HbaseConfig::new(thrift));
            let fact = tables.table(&table).expect("the table is still there");
            fact.scan(b"", b"", 10).expect("scan").len()
        })
        .await
        .expect("read the table")
    };
    assert!(kept > 0, "the older pipeline's rows are gone");

    // Left to their defaults, topic, paths and table differ per pipeline: no conflict.
    for name in ["first", "second"] {
        create_pipeline(
            &api,
            name,
            json!({"kafka": {"topic": null}, "hdfs": {"rawPath": null, "cleanPath": null}, "hbase": {"table": null}}),
        )
        .await;
    }
    for name in ["first", "second"] {
        let produce = wait_job_of(&client, &ns, name, "produce").await;
        assert_eq!(
            flag(&args_of(&produce), "--topic"),
            format!("ecom.{ns}.{name}")
        );
        let sink = wait_job_of(&client, &ns, name, "sink").await;
        assert_eq!(
            flag(&args_of(&sink), "--output"),
            format!("hdfs://127.0.0.1:9000/ecom/{ns}/{name}/raw")
        );
        let s = status_of(&api, name).await.expect("status");
        assert_ne!(s.phase.map(|p| p.as_str()), Some("Refused"), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_neither_changes_nor_deletes_what_it_does_not_control() {
    let (client, ns, api) = pipeline_namespace("ecp-owned").await;
    let _op = Operator::start(&ns, &unique("op-owned"));
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let foreign = |name: &str| -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"owner": "someone-else"}},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "c", "image": "someone-else:1"}]}
                }
            }
        }))
        .expect("deployment")
    };
    for name in ["shown-dashboard", "hidden-dashboard"] {
        deployments
            .create(&PostParams::default(), &foreign(name))
            .await
            .unwrap_or_else(|e| panic!("create {name}: {e}"));
    }
    // Dashboard enabled (streaming mode applies it at once): the pipeline is refused rather
    // than the Deployment taken over.
    // Each pipeline on storage of its own (the defaults derived from its name), so neither
    // is refused for the other's.
    let own_storage = |extra: serde_json::Value| {
        let mut v = json!({
            "kafka": {"topic": null},
            "hdfs": {"rawPath": null, "cleanPath": null}
        });
        merge(&mut v, &extra);
        v
    };
    create_pipeline(&api, "shown", own_storage(json!({"mode": "streaming"}))).await;
    let message = refused(&api, "shown", "NotOwned").await;
    assert!(
        message.starts_with("Deployment shown-dashboard exists and does not belong"),
        "{message}"
    );
    // Refused before anything was written: no Job, no StatefulSet.
    assert_eq!(jobs_of(&client, &ns, "shown").await, Vec::<String>::new());
    let sets: Api<k8s_openapi::api::apps::v1::StatefulSet> = Api::namespaced(client.clone(), &ns);
    assert!(sets.get_opt("shown-stream").await.expect("read").is_none());
    // Dashboard disabled: the pipeline runs and the Deployment of that name stays.
    create_pipeline(
        &api,
        "hidden",
        own_storage(json!({"dashboard": {"enabled": false}})),
    )
    .await;
    wait_job_of(&client, &ns, "hidden", "produce").await;
    // A few reconciles (each Job change triggers one) have passed by the time the sink exists.
    wait_job_of(&client, &ns, "hidden", "sink").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    for name in ["shown-dashboard", "hidden-dashboard"] {
        let d = deployments.get(name).await.expect("still there");
        assert_eq!(
            d.labels().get("owner").map(String::as_str),
            Some("someone-else")
        );
        let image = d
            .spec
            .and_then(|s| s.template.spec)
            .map(|s| s.containers[0].image.clone());
        assert_eq!(image, Some(Some("someone-else:1".to_string())), "{name}");
        let managers: Vec<String> = d
            .metadata
            .managed_fields
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| m.manager)
            .collect();
        assert!(
            !managers.iter().any(|m| m == "ecom-operator"),
            "{name} managed by {managers:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_and_secrets_outside_the_allow_lists_are_refused() {
    let (client, ns, api) = pipeline_namespace("ecp-allow").await;
    let kubeconfig = PathBuf::from(service_env("KUBECONFIG"));
    let _op = Operator::start_with_args(
        &kubeconfig,
        Some(&ns),
        &ns,
        &unique("op-allow"),
        &[
            "--allowed-images",
            "ecom:*,registry.example/ecom/ecom@*",
            "--allowed-secrets",
            "ecom-*",
        ],
    );
    create_pipeline(&api, "other-image", json!({"image": "someone/miner:1"})).await;
    let message = refused(&api, "other-image", "NotAllowed").await;
    assert_eq!(
        message,
        "spec.image someone/miner:1 is not allowed by this operator (allowed: ecom:*,registry.example/ecom/ecom@*)"
    );
    let sasl = |secret: &str| {
        json!({"kafka": {"security": {
            "protocol": "SASL_PLAINTEXT",
            "sasl": {"secretName": secret}
        }}})
    };
    create_pipeline(&api, "other-secret", sasl("db-admin")).await;
    let message = refused(&api, "other-secret", "NotAllowed").await;
    assert!(
        message.starts_with(
            "spec.kafka.security.sasl.secretName db-admin is not allowed by this operator"
        ),
        "{message}"
    );
    assert!(jobs_of(&client, &ns, "other-image").await.is_empty());
    assert!(jobs_of(&client, &ns, "other-secret").await.is_empty());
    // Within the lists the pipeline runs.
    create_pipeline(&api, "allowed", sasl("ecom-kafka")).await;
    wait_job_of(&client, &ns, "allowed", "produce").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_refuses_a_directory_another_pipeline_marked() {
    let hdfs_url = service_env("HDFS_URL");
    let dir = format!("/tenancy-marked-{}", unique("d"));
    {
        let (hdfs_url, dir) = (hdfs_url.clone(), dir.clone());
        tokio::task::spawn_blocking(move || {
            let files = HdfsFiles::open(&hdfs_url, Duration::from_secs(30)).expect("hdfs");
            let first = Owner {
                uid: "uid-first".into(),
                name: "shop/first".into(),
            };
            owner::claim_dir(&files, &dir, &dir, &first).expect("mark");
        })
        .await
        .expect("mark the directory");
    }
    let url = format!("{hdfs_url}{dir}");
    let out = std::process::Command::new(ecom_bin())
        .args([
            "sink",
            "--topic",
            "unused",
            "--output",
            &url,
            "--until-caught-up",
        ])
        .args(["--kafka-bootstrap", &service_env("KAFKA_BOOTSTRAP")])
        .env("ECOM_PIPELINE_UID", "uid-second")
        .env("ECOM_PIPELINE", "shop/second")
        .env("ECOM_ATTEMPTS", "5")
        .output()
        .expect("ecom sink");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    let summary: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("summary")).expect("summary json");
    // Refused at once (a permanent error): one attempt, the owner named.
    assert_eq!(summary["attempts"], 1, "{summary}");
    let error = summary["error"].as_str().expect("error");
    assert!(
        error.contains(&format!(
            "{url} belongs to EcomPipeline shop/first (uid uid-first), not to shop/second (uid uid-second)"
        )),
        "{error}"
    );
    assert!(
        error.contains(&format!("remove {url}/.ecom-owner")),
        "{error}"
    );
}
