//! Helpers of the real-node tests (`real_node*.rs`): long waits, pipeline status waits that
//! show the namespace on timeout, fresh namespaces, and `kubectl port-forward`.

#![allow(dead_code)]

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::kube::*;
use crate::common::service_env;
use ecom_operator::crd::{EcomPipeline, EcomPipelineStatus};
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams};
use kube::Client;
use serde_json::{json, Value};

/// The namespace `scripts/cluster-up.sh` installs the chart into.
pub const NS: &str = "ecom";
/// The image `scripts/cluster-up.sh` built and loaded onto the node.
pub const IMAGE: &str = "ecom:dev";

/// Polls `f` every second until it gives `Some`, for at most `timeout`.
pub async fn wait_long<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// What the cluster shows of a namespace when a wait fails.
pub fn describe(ns: &str) -> String {
    let out = Command::new(service_env("KUBECTL"))
        .args([
            "-n",
            ns,
            "get",
            "ecp,jobs,sts,pods,deploy,svc",
            "-o",
            "wide",
        ])
        .env("KUBECONFIG", service_env("KUBECONFIG"))
        .output();
    match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
        Err(e) => format!("kubectl get: {e}"),
    }
}

/// A fresh namespace; its `default` ServiceAccount comes from the real controller-manager.
pub async fn node_namespace(client: &Client, prefix: &str) -> String {
    let ns = create_namespace(client, prefix).await;
    let sa: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    wait_long(
        "the default ServiceAccount (controller-manager)",
        Duration::from_secs(60),
        || async { sa.get_opt("default").await.ok().flatten() },
    )
    .await;
    ns
}

/// Deletes a test's namespace (its pipelines' finalizers run first); does not wait.
pub async fn delete_namespace(client: &Client, ns: &str) {
    let _ = Api::<Namespace>::all(client.clone())
        .delete(ns, &DeleteParams::default())
        .await;
}

/// Polls pipeline `name` until `done` holds for its status; returns that status. On timeout
/// the panic shows the last status and what the namespace holds.
pub async fn wait_status(
    api: &Api<EcomPipeline>,
    name: &str,
    what: &str,
    timeout: Duration,
    done: impl Fn(&EcomPipelineStatus) -> bool,
) -> EcomPipelineStatus {
    let deadline = Instant::now() + timeout;
    loop {
        let status = status_of(api, name).await;
        if let Some(s) = status.as_ref().filter(|s| done(s)) {
            return s.clone();
        }
        if Instant::now() >= deadline {
            panic!(
                "{name}: not {what} after {timeout:?}; status: {}\n{}",
                serde_json::to_string_pretty(&status).unwrap_or_default(),
                describe(&api_namespace(api))
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Waits until pipeline `name` has condition `type_` with status `status`.
pub async fn wait_condition(
    api: &Api<EcomPipeline>,
    name: &str,
    type_: &str,
    status: &str,
    timeout: Duration,
) -> EcomPipelineStatus {
    wait_status(api, name, &format!("{type_}={status}"), timeout, |s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == type_ && c.status.as_str() == status)
    })
    .await
}

/// Waits until stage `stage` of pipeline `name` is in `state`.
pub async fn wait_stage(
    api: &Api<EcomPipeline>,
    name: &str,
    stage: &str,
    state: &str,
    timeout: Duration,
) -> EcomPipelineStatus {
    wait_status(api, name, &format!("{stage} {state}"), timeout, |s| {
        s.stages.get(stage).map(|st| st.state.as_str()) == Some(state)
    })
    .await
}

pub fn api_namespace(api: &Api<EcomPipeline>) -> String {
    api.resource_url()
        .split('/')
        .skip_while(|p| *p != "namespaces")
        .nth(1)
        .unwrap_or(NS)
        .to_string()
}

/// Pods of `ns` with `label=value`.
pub async fn pods_with(client: &Client, ns: &str, selector: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(selector))
        .await
        .expect("list pods")
        .items
}

/// `kubectl port-forward` to `target` in `ns`, on a free local port; killed on drop.
pub struct PortForward {
    child: Child,
    pub port: u16,
}

impl PortForward {
    pub fn start(ns: &str, target: &str, remote: u16) -> PortForward {
        let port = free_port();
        let mut child = Command::new(service_env("KUBECTL"))
            .args(["-n", ns, "port-forward", "--address", "127.0.0.1", target])
            .arg(format!("{port}:{remote}"))
            .env("KUBECONFIG", service_env("KUBECONFIG"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("kubectl port-forward {target}: {e}"));
        // It prints "Forwarding from ..." once it listens, then a line per connection: the
        // pipe is drained until kubectl exits (a closed pipe would end it at its next line).
        let mut stdout = BufReader::new(child.stdout.take().expect("port-forward stdout"));
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .expect("read port-forward output");
        assert!(
            line.contains("Forwarding from"),
            "kubectl port-forward {target} did not start: {line:?}"
        );
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        PortForward { child, port }
    }

    /// GET `path` through the forward (a few tries: the first stream may still be opening).
    pub async fn get(&self, path: &str) -> (u16, String) {
        let port = self.port;
        let path = path.to_string();
        wait_long(
            &format!("GET {path} through port-forward"),
            Duration::from_secs(30),
            || {
                let path = path.clone();
                async move {
                    tokio::task::spawn_blocking(move || http_get(port, &path))
                        .await
                        .ok()
                        .flatten()
                }
            },
        )
        .await
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A pipeline on the harness's servers (reached by the pods at the node address) in its own
/// namespace, with the image on the node.
pub fn node_pipeline(name: &str, extra: Value) -> Value {
    let suffix = unique("n").replace('-', "");
    let mut v = real_pipeline(
        name,
        "node",
        &suffix,
        json!({"image": IMAGE, "imagePullPolicy": "Never"}),
    );
    merge(&mut v["spec"], &extra);
    v
}
