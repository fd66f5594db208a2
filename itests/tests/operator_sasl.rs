//! An EcomPipeline on the SASL-secured Kafka broker of the services harness (`kafka-sasl`):
//! the credentials live in a real Secret, reach the stage containers only as `secretKeyRef`
//! env (resolved from the Secret by the kubelet stand-in of `common::kube`), and a wrong
//! password fails the producer with an error naming the broker and the authentication.
//! Needs `KAFKA_SASL_BOOTSTRAP`, `KAFKA_SASL_USER`, `KAFKA_SASL_PASSWORD` (from
//! `eval "$(scripts/services.sh env)"` with `scripts/services.sh up kafka-sasl`), the other
//! services and the `ecom` binary.

mod common;

use std::time::Duration;

use common::kube::*;
use common::service_env;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
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

/// A pipeline on the SASL broker, credentials from Secret `secret`.
fn secured(name: &str, suffix: &str, secret: &str, rows: u64) -> Value {
    real_pipeline(
        name,
        "eca",
        suffix,
        json!({
            "kafka": {
                "bootstrap": service_env("KAFKA_SASL_BOOTSTRAP"),
                "partitions": 2,
                "security": {"protocol": "SASL_PLAINTEXT", "sasl": {"mechanism": "PLAIN", "secretName": secret}}
            },
            "source": {"generated": {"rows": rows, "seed": 5, "dirtyRate": 0.0}},
            "stages": {"clean": {"parallelism": 1}, "load": {"parallelism": 1}}
        }),
    )
}

fn container_of(job: &Job) -> k8s_openapi::api::core::v1::Container {
    job.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|s| s.containers[0].clone())
        .expect("container")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secured_kafka_pipeline_gets_credentials_from_the_secret() {
    let (client, ns, api) = pipeline_namespace("ecp-sasl").await;
    let _op = Operator::start(&ns, &unique("op-sasl"));
    let password = service_env("KAFKA_SASL_PASSWORD");
    secret(
        &client,
        &ns,
        "kafka-creds",
        &service_env("KAFKA_SASL_USER"),
        &password,
    )
    .await;
    let rows = 2000u64;
    let suffix = unique("a").replace('-', "");
    create(&api, &secured("secure", &suffix, "kafka-creds", rows))
        .await
        .expect("create");

    // The password is nowhere in the Jobs: only a reference to the Secret.
    let produce = wait_job(&client, &ns, "produce").await;
    for job in [&produce, &wait_job(&client, &ns, "sink").await] {
        let c = container_of(job);
        let spec = serde_json::to_string(&c).expect("json");
        assert!(!spec.contains(&password), "{}: {spec}", job.name_any());
        let args = c.args.clone().unwrap_or_default().join(" ");
        assert!(args.contains("security.protocol=SASL_PLAINTEXT"), "{args}");
        assert!(args.contains("sasl.mechanism=PLAIN"), "{args}");
        assert!(!args.contains("sasl.password"), "{args}");
        let env = c.env.clone().unwrap_or_default();
        let pw = env
            .iter()
            .find(|e| e.name == "KAFKA_SASL_PASSWORD")
            .expect("KAFKA_SASL_PASSWORD env");
        let sk = pw
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
            .expect("secretKeyRef");
        assert_eq!(
            (sk.name.as_str(), sk.key.as_str()),
            ("kafka-creds", "password")
        );
    }

    // Play kubelet until Ready: every stage runs for real, Kafka stages on the SASL broker.
    let status = run_until_ready(&client, &ns, "secure", Duration::from_secs(240)).await;
    let counts = status.counts.expect("counts");
    assert_eq!(counts.produced, Some(rows as i64), "{counts:?}");
    assert_eq!(counts.sunk, Some(rows as i64), "{counts:?}");
    assert_eq!(counts.clean_input, Some(rows as i64), "{counts:?}");
    let loaded = counts.loaded.expect("loaded");
    assert!(loaded > 0 && loaded <= rows as i64, "{counts:?}");
    assert_eq!(counts.cleaned, Some(loaded), "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_kafka_password_fails_naming_the_broker_and_authentication() {
    let (client, ns, api) = pipeline_namespace("ecp-sasl-bad").await;
    let _op = Operator::start(&ns, &unique("op-sasl-bad"));
    secret(
        &client,
        &ns,
        "bad-creds",
        &service_env("KAFKA_SASL_USER"),
        "not-the-password",
    )
    .await;
    let suffix = unique("b").replace('-', "");
    let mut manifest = secured("denied", &suffix, "bad-creds", 100);
    // The producer gives up after one call timeout (30 s) within this deadline.
    manifest["spec"]["stages"]["produce"] = json!({"activeDeadlineSeconds": 45, "backoffLimit": 0});
    create(&api, &manifest).await.expect("create");
    let produce = wait_job(&client, &ns, "produce").await;
    let (ok, message) = run_pod_locally(&client, &ns, &produce, 0).await;
    assert!(
        !ok,
        "the producer succeeded with a wrong password: {message}"
    );
    let bootstrap = service_env("KAFKA_SASL_BOOTSTRAP");
    assert!(message.contains(&bootstrap), "{message}");
    assert!(
        message.contains("SASL authentication error")
            && message.contains("Invalid username or password"),
        "{message}"
    );
    assert!(!message.contains("not-the-password"), "{message}");
    finish_job(&client, &ns, &produce, &[&message], true).await;
    let status = wait_phase(&api, "denied", "Failed").await;
    assert_eq!(
        condition(&status, "Degraded").map(|c| c.0),
        Some("True".to_string())
    );
}
