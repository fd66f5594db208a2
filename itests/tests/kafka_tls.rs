//! Kafka over TLS on the harness's secured broker (`kafka-sasl`): `ecom produce` and `ecom
//! sink` through its SSL listener and through its SASL_SSL listener with SCRAM-SHA-512, both
//! trusting the harness's test CA (`KAFKA_TLS_CA`), put every record exactly once into the raw
//! files on HDFS. A CA that did not sign the broker's certificate fails produce on its first
//! attempt with an error naming TLS, the certificate verification and the broker, instead of
//! waiting out its call timeout. The same through the operator: the CA and the SCRAM
//! credentials come from Secrets, the kubelet stand-in runs the produce and sink Jobs with the
//! Secrets resolved (the CA file mounted), and a wrong CA in the Secret shows as the
//! pipeline's `StageFailed` status naming the certificate verification.
//!
//! Needs the services (`make services-up`, `eval "$(scripts/services.sh env)"`) and the
//! binary in `ECOM_BIN` (`make itest` builds it and sets both).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ::kube::api::{Api, PostParams};
use ::kube::Client;
use common::kube::*;
use common::*;
use ecom_jobs::record::HEADER;
use ecom_jobs::store::FileStore;
use k8s_openapi::api::core::v1::Secret;
use serde_json::json;

/// How a test reaches one secured listener: its address, and the `--kafka-property`
/// arguments and environment (the SCRAM credentials) of the stages.
struct Listener {
    bootstrap: String,
    properties: Vec<String>,
    env: Vec<(&'static str, String)>,
}

impl Listener {
    /// The SSL listener, trusting the CA file `ca`.
    fn ssl(ca: &str) -> Listener {
        Listener {
            bootstrap: service_env("KAFKA_SSL_BOOTSTRAP"),
            properties: vec![
                "security.protocol=SSL".into(),
                format!("ssl.ca.location={ca}"),
            ],
            env: Vec::new(),
        }
    }

    /// The SASL_SSL listener with SCRAM-SHA-512, trusting the CA file `ca`; the credentials
    /// in the environment, as the operator passes them from a Secret.
    fn scram(ca: &str) -> Listener {
        Listener {
            bootstrap: service_env("KAFKA_SASL_SSL_BOOTSTRAP"),
            properties: vec![
                "security.protocol=SASL_SSL".into(),
                format!("sasl.mechanism={}", service_env("KAFKA_SASL_SSL_MECHANISM")),
                format!("ssl.ca.location={ca}"),
            ],
            env: vec![
                ("KAFKA_SASL_USERNAME", service_env("KAFKA_SCRAM_USER")),
                ("KAFKA_SASL_PASSWORD", service_env("KAFKA_SCRAM_PASSWORD")),
            ],
        }
    }

    /// `ecom ARGS` on this listener.
    fn command(&self, args: &[&str]) -> Command {
        let mut full: Vec<&str> = args.to_vec();
        full.extend(["--kafka-bootstrap", &self.bootstrap]);
        for p in &self.properties {
            full.extend(["--kafka-property", p]);
        }
        let mut c = ecom_cmd(&full);
        c.envs(self.env.iter().map(|(k, v)| (*k, v.as_str())));
        c
    }

    /// Runs `ecom ARGS` on this listener, which must succeed; its JSON summary.
    fn run_ok(&self, args: &[&str]) -> serde_json::Value {
        let out = self.command(args).output().expect("run ecom");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "ecom {args:?} on {} failed:\n{}\n{stdout}",
            self.bootstrap,
            String::from_utf8_lossy(&out.stderr)
        );
        let last = stdout.lines().last().unwrap_or_default();
        let v: serde_json::Value =
            serde_json::from_str(last).unwrap_or_else(|e| panic!("summary of {args:?}: {e}"));
        assert_eq!(v["ok"], true, "{v}");
        v
    }
}

/// The data lines of a TSV file as produce sends them (header and blank lines skipped),
/// sorted.
fn data_lines(path: &str) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).expect("read the input");
    let mut lines: Vec<Vec<u8>> = bytes
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty() && *l != HEADER.as_bytes())
        .map(<[u8]>::to_vec)
        .collect();
    lines.sort();
    lines
}

/// Every line of the raw files (name, content), sorted.
fn raw_lines(files: &[(String, Vec<u8>)]) -> Vec<Vec<u8>> {
    let mut lines: Vec<Vec<u8>> = files
        .iter()
        .flat_map(|(_, data)| data.split(|b| *b == b'\n'))
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    lines.sort();
    lines
}

/// Generates an input with duplicates and dirty rows, produces it through `listener`, sinks
/// the topic to HDFS through it, and checks that the raw files hold exactly the input's data
/// lines: none lost, none twice.
fn produce_and_sink_exactly_once(run: &Run, listener: &Listener) {
    let (input, _) = run.generate(&["--rows", "5000", "--seed", "19", "--dirty-rate", "0.2"]);
    let expected = data_lines(&input);
    let produced =
        listener.run_ok(&[&run.produce_args(&input)[..], &["--partitions", "3"]].concat());
    assert_eq!(produced["records"], expected.len() as u64, "{produced}");
    assert_eq!(produced["delivered"], expected.len() as u64, "{produced}");
    assert_eq!(
        produced["bootstrap"],
        listener.bootstrap.as_str(),
        "{produced}"
    );
    let sunk = listener.run_ok(&run.sink_args(1500));
    assert_eq!(sunk["records"], expected.len() as u64, "{sunk}");
    let raw = run.raw_files();
    assert!(raw.len() >= 3, "{} raw files", raw.len());
    assert!(
        raw_lines(&raw) == expected,
        "the raw files differ from the input"
    );
    // A second sink finds nothing new: no record is written twice.
    let again = listener.run_ok(&run.sink_args(1500));
    assert_eq!(again["records"], 0, "{again}");
    assert_eq!(raw_lines(&run.raw_files()).len(), expected.len());
}

#[test]
fn produce_and_sink_through_the_tls_listener_deliver_every_record_once() {
    let run = Run::new("tls");
    produce_and_sink_exactly_once(&run, &Listener::ssl(&service_env("KAFKA_TLS_CA")));
    run.cleanup();
}

#[test]
fn produce_and_sink_through_sasl_ssl_with_scram_deliver_every_record_once() {
    let run = Run::new("scram");
    produce_and_sink_exactly_once(&run, &Listener::scram(&service_env("KAFKA_TLS_CA")));
    run.cleanup();
}

/// A fresh self-signed CA in `dir` (`other-ca.crt`) that signed nothing the broker serves.
fn unrelated_ca(dir: &Path) -> String {
    let (cert, key) = (dir.join("other-ca.crt"), dir.join("other-ca.key"));
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "1",
        ])
        .args(["-subj", "/CN=not-the-kafka-test-ca", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    cert.display().to_string()
}

/// The error a failed produce reports in its summary, after checking it made one attempt.
fn failed_once(out: &std::process::Output) -> String {
    assert!(!out.status.success(), "produce with a wrong CA succeeded");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    let v: serde_json::Value =
        serde_json::from_str(last).unwrap_or_else(|e| panic!("summary: {e}: {stdout}"));
    assert_eq!(v["ok"], false, "{v}");
    // Permanent: no retry (with a transient error the stage would try 3 times).
    assert_eq!(v["attempts"], 1, "{v}");
    v["error"].as_str().unwrap_or_default().to_string()
}

// The call timeout is long (10 minutes) and 3 attempts are allowed: only the refusal read
// from the TLS handshake ends the run after one attempt, with the typed error. A timeout
// would say "no answer within 600s" (and take 30 minutes).
#[test]
fn a_wrong_ca_fails_produce_at_once_naming_tls_verification_and_the_broker() {
    let run = Run::new("tlsbad");
    let other = unrelated_ca(run.tmp.path());
    for listener in [Listener::ssl(&other), Listener::scram(&other)] {
        let started = Instant::now();
        let args = ["produce", "--generate-rows", "100", "--topic", &run.topic];
        let tuning = [
            "--call-timeout",
            "600s",
            "--attempts",
            "3",
            "--deadline",
            "40m",
        ];
        let out = listener
            .command(&[&args[..], &tuning[..]].concat())
            .output()
            .expect("run ecom");
        let took = started.elapsed();
        let error = failed_once(&out);
        for words in [
            "TLS handshake failed",
            "certificate verify failed",
            "ssl.ca.location",
            listener.bootstrap.as_str(),
        ] {
            assert!(error.contains(words), "{words:?} missing: {error}");
        }
        assert!(!error.contains("no answer within"), "{error}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("certificate verify failed"), "{stderr}");
        println!(
            "wrong CA on {}: failed after {:.2} s (call timeout 600 s)",
            listener.bootstrap,
            took.as_secs_f64()
        );
    }
    // Nothing reached the broker: the topic was never created.
    let right = Listener::ssl(&service_env("KAFKA_TLS_CA"));
    let out = right
        .command(&[
            "sink",
            "--topic",
            &run.topic,
            "--output",
            &run.raw_url(),
            "--until-caught-up",
            "--attempts",
            "1",
            "--call-timeout",
            "5s",
        ])
        .output()
        .expect("run ecom");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("topic does not exist"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    run.cleanup();
}

// ------------------------------------------------------------------------------------------
// Through the operator: the CA and the SCRAM credentials from Secrets.

async fn create_secret(client: &Client, ns: &str, name: &str, data: serde_json::Value) {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let obj: Secret = serde_json::from_value(json!({
        "metadata": {"name": name},
        "stringData": data
    }))
    .expect("secret");
    api.create(&PostParams::default(), &obj)
        .await
        .unwrap_or_else(|e| panic!("create Secret {ns}/{name}: {e}"));
}

/// A pipeline on the harness's services whose Kafka is `security` on `bootstrap`, `rows`
/// generated rows without dirty ones (every line distinct), dashboard off.
fn secured_pipeline(
    name: &str,
    suffix: &str,
    bootstrap: &str,
    security: serde_json::Value,
    rows: u64,
) -> serde_json::Value {
    real_pipeline(
        name,
        "ecp-tls",
        suffix,
        json!({
            "kafka": {"bootstrap": bootstrap, "partitions": 2, "security": security},
            "source": {"generated": {"rows": rows, "seed": 23, "dirtyRate": 0.0}},
            "dashboard": {"enabled": false}
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_pipeline_over_sasl_ssl_takes_the_ca_and_credentials_from_secrets() {
    let (client, ns, api) = pipeline_namespace("ecp-tls").await;
    let ca = std::fs::read_to_string(service_env("KAFKA_TLS_CA")).expect("read the test CA");
    create_secret(&client, &ns, "kafka-ca", json!({"ca.crt": ca})).await;
    let password = service_env("KAFKA_SCRAM_PASSWORD");
    create_secret(
        &client,
        &ns,
        "kafka-scram",
        json!({"username": service_env("KAFKA_SCRAM_USER"), "password": password}),
    )
    .await;
    let _op = Operator::start(&ns, &unique("op-tls"));
    let suffix = unique("s").replace('-', "");
    let rows = 3000u64;
    let manifest = secured_pipeline(
        "scram",
        &suffix,
        &service_env("KAFKA_SASL_SSL_BOOTSTRAP"),
        json!({
            "protocol": "SASL_SSL",
            "sasl": {"mechanism": "SCRAM-SHA-512", "secretName": "kafka-scram"},
            "tls": {"caSecretName": "kafka-ca"}
        }),
        rows,
    );
    let raw_path = manifest["spec"]["hdfs"]["rawPath"]
        .as_str()
        .expect("rawPath")
        .to_string();
    create(&api, &manifest).await.expect("create pipeline");

    let produce = wait_job(&client, &ns, "produce").await;
    let spec = serde_json::to_string(&produce.spec).expect("json");
    assert!(
        !spec.contains(&password),
        "the password is in the Job: {spec}"
    );
    assert!(!spec.contains("BEGIN CERTIFICATE"), "the CA is in the Job");
    assert!(
        spec.contains("ssl.ca.location=/etc/ecom/kafka-tls/ca.crt"),
        "{spec}"
    );
    let messages = run_job_locally(&client, &ns, &produce).await;
    assert!(
        messages[0].contains(&format!("\"delivered\":{rows}")),
        "{messages:?}"
    );
    let sink = wait_job(&client, &ns, "sink").await;
    wait_suspended(&client, &ns, &sink, false).await;
    let messages = run_job_locally(&client, &ns, &sink).await;
    assert!(
        messages[0].contains(&format!("\"records\":{rows}")),
        "{messages:?}"
    );

    // Every generated record exactly once in the raw files.
    let lines = tokio::task::block_in_place(|| {
        let store = ecom_jobs::store::hdfs::HdfsFiles::open(
            &service_env("HDFS_URL"),
            Duration::from_secs(60),
        )
        .expect("connect to HDFS");
        let files: Vec<(String, Vec<u8>)> = store
            .list(&raw_path)
            .expect("list raw")
            .into_iter()
            .map(|e| {
                let data = store.read(&e.path).expect("read raw");
                (e.path, data)
            })
            .collect();
        let dir = raw_path
            .rsplit_once('/')
            .map_or(raw_path.as_str(), |(d, _)| d);
        let _ = store.remove_all(dir);
        raw_lines(&files)
    });
    let mut distinct = lines.clone();
    distinct.dedup();
    assert_eq!(
        (lines.len(), distinct.len()),
        (rows as usize, rows as usize)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_status_names_the_certificate_verification_when_the_ca_secret_is_wrong() {
    let (client, ns, api) = pipeline_namespace("ecp-tlsbad").await;
    let scratch = tempfile::tempdir().expect("tempdir");
    let other = std::fs::read_to_string(unrelated_ca(scratch.path())).expect("read the CA");
    create_secret(&client, &ns, "wrong-ca", json!({"ca.crt": other})).await;
    let _op = Operator::start(&ns, &unique("op-tlsbad"));
    let bootstrap = service_env("KAFKA_SSL_BOOTSTRAP");
    let manifest = secured_pipeline(
        "untrusted",
        &unique("s").replace('-', ""),
        &bootstrap,
        json!({"protocol": "SSL", "tls": {"caSecretName": "wrong-ca"}}),
        100,
    );
    create(&api, &manifest).await.expect("create pipeline");

    let produce = wait_job(&client, &ns, "produce").await;
    let secrets = pod_secrets(&client, &ns).await;
    let (ok, message) = spawn_pod_locally_with(&produce, 0, &secrets).wait().await;
    assert!(!ok, "produce succeeded with a wrong CA: {message}");
    assert!(message.contains("\"attempts\":1"), "{message}");
    finish_job(&client, &ns, &produce, &[&message], true).await;

    let status = wait_phase(&api, "untrusted", "Failed").await;
    assert_eq!(
        condition(&status, "Degraded"),
        Some(("True".into(), "StageFailed".into()))
    );
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready condition");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "StageFailed")
    );
    let stage = status.stages["produce"].message.clone().unwrap_or_default();
    for text in [&ready.message, &stage] {
        for words in [
            "TLS handshake failed",
            "certificate verify failed",
            &bootstrap,
        ] {
            assert!(text.contains(words), "{words:?} missing: {text}");
        }
    }
}
