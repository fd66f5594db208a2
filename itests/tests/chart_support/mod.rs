//! Helpers of the chart tests (`chart.rs`): running helm and kubectl against the harness's API
//! server, rendering the chart and finding objects in what it renders. `policy` holds the
//! tests of the chart's NetworkPolicies and allow-lists, `netpol` their helpers.

pub mod dry_run;
pub mod netpol;
mod policy;
pub mod rbac;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use kube::Client;
use serde_json::{json, Value};

use crate::common::service_env;

/// The chart's directory, relative to the repository root.
pub const CHART: &str = "charts/ecom-pipeline";
/// The name of the EcomPipeline CRD.
pub const CRD_NAME: &str = "ecompipelines.pipelines.ecom-pipeline.io";

/// The repository root (the parent of `itests/`).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Runs `program` in the repository root with `KUBECONFIG` (the harness's unless given),
/// feeding it `stdin`; asserts success and returns its standard output.
pub fn run(program: &str, args: &[&str], stdin: Option<&str>, kubeconfig: Option<&Path>) -> String {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(repo())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let kc = kubeconfig.map_or_else(
        || PathBuf::from(service_env("KUBECONFIG")),
        Path::to_path_buf,
    );
    cmd.env("KUBECONFIG", kc);
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("run {program}: {e}"));
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `helm ARGS` against the harness.
pub fn helm(args: &[&str]) -> String {
    run(&service_env("HELM"), args, None, None)
}

/// `kubectl ARGS` against the harness, with `stdin` as its input.
pub fn kubectl_in(args: &[&str], stdin: &str) -> String {
    run(&service_env("KUBECTL"), args, Some(stdin), None)
}

/// `x.y.z` of the API server (helm template needs it for the chart's kubeVersion).
pub fn server_version() -> String {
    let v: Value = serde_json::from_str(&run(
        &service_env("KUBECTL"),
        &["version", "-o", "json"],
        None,
        None,
    ))
    .expect("kubectl version json");
    v["serverVersion"]["gitVersion"]
        .as_str()
        .expect("server gitVersion")
        .trim_start_matches('v')
        .to_string()
}

/// Every YAML document of `text` that is an object.
pub fn documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| {
            let v: serde_yaml::Value = serde::Deserialize::deserialize(d).expect("YAML document");
            serde_json::to_value(v).expect("YAML as JSON")
        })
        .filter(Value::is_object)
        .collect()
}

/// The values files of the three setups the issue names.
pub fn values_sets() -> Vec<(&'static str, Vec<String>)> {
    vec![
        ("default", vec![]),
        ("kind", vec![format!("{CHART}/values-kind.yaml")]),
        (
            "production",
            vec![format!("{CHART}/values-production.yaml")],
        ),
    ]
}

/// `helm template` of the chart: the rendered YAML.
pub fn render_text(release: &str, ns: &str, values: &[String], sets: &[String]) -> String {
    let version = server_version();
    let mut args = vec![
        "template",
        release,
        CHART,
        "--namespace",
        ns,
        "--kube-version",
        &version,
    ];
    for v in values {
        args.extend(["-f", v.as_str()]);
    }
    for s in sets {
        args.extend(["--set", s.as_str()]);
    }
    helm(&args)
}

/// `helm template` of the chart: the rendered objects.
pub fn render(release: &str, ns: &str, values: &[String], sets: &[String]) -> Vec<Value> {
    documents(&render_text(release, ns, values, sets))
}

/// The object's `kind`.
pub fn kind_of(o: &Value) -> &str {
    o["kind"].as_str().unwrap_or_default()
}

/// The object's `metadata.name`.
pub fn name_of(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or_default()
}

/// The object of `kind` named `name` (panics listing the objects when there is none).
pub fn find<'a>(objs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objs.iter()
        .find(|o| kind_of(o) == kind && name_of(o) == name)
        .unwrap_or_else(|| {
            let all: Vec<String> = objs
                .iter()
                .map(|o| format!("{}/{}", kind_of(o), name_of(o)))
                .collect();
            panic!("no {kind}/{name} among {all:?}")
        })
}

/// The objects as one YAML stream.
pub fn to_yaml_stream(objs: &[&Value]) -> String {
    objs.iter()
        .map(|o| serde_yaml::to_string(o).expect("yaml"))
        .collect::<Vec<_>>()
        .join("---\n")
}

/// Creates namespace `name` if missing (optionally with labels).
pub async fn ensure_namespace(client: &Client, name: &str, labels: Value) {
    let api: Api<Namespace> = Api::all(client.clone());
    if api.get_opt(name).await.expect("get namespace").is_some() {
        return;
    }
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}}))
            .expect("namespace");
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => panic!("create namespace {name}: {e}"),
    }
}

/// The container `name` of `deployment`'s pod template.
pub fn container<'a>(deployment: &'a Value, name: &str) -> &'a Value {
    deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("container {name} in {}", name_of(deployment)))
}

/// `v` with every number as a float, so 1 and 1.0 compare equal.
pub fn numbers_as_floats(v: Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64().expect("finite number")),
        Value::Array(a) => Value::Array(a.into_iter().map(numbers_as_floats).collect()),
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, v)| (k, numbers_as_floats(v)))
                .collect(),
        ),
        other => other,
    }
}

/// The EcomPipeline CRD as the API server holds it.
pub fn crd_json() -> Value {
    serde_json::from_str(&run(
        &service_env("KUBECTL"),
        &["get", "crd", CRD_NAME, "-o", "json"],
        None,
        None,
    ))
    .expect("crd json")
}
