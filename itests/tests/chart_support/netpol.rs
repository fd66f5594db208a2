//! Reading the chart's NetworkPolicies and allow-lists: which egress rules could admit every
//! address, whether a selector matches a pod's labels, the pods the operator builds for the
//! example pipelines, and the allow-lists' glob patterns.

use std::collections::BTreeMap;

use ecom_operator::build::stream::{statefulset, StreamShape};
use ecom_operator::build::{cleanup_job, dashboard_deployment, stage_job, JobOptions};
use ecom_operator::crd::{EcomPipeline, Mode};
use ecom_operator::meta::Stage;
use serde_json::Value;

use super::{documents, kind_of, name_of, repo};

/// The NetworkPolicies of `objs` by name.
pub fn policies(objs: &[Value]) -> BTreeMap<&str, &Value> {
    objs.iter()
        .filter(|o| kind_of(o) == "NetworkPolicy")
        .map(|o| (name_of(o), o))
        .collect()
}

/// The list `key` (`ingress` or `egress`) of a policy's spec; empty when absent.
pub fn rules<'a>(policy: &'a Value, key: &str) -> &'a [Value] {
    policy["spec"][key].as_array().map_or(&[], Vec::as_slice)
}

/// Why each egress rule of `policy` could admit every address: a rule without `to` (or with
/// an empty one), an empty peer, or an ipBlock of a /0 range. Empty when every rule is narrow.
pub fn open_egress(policy: &Value) -> Vec<String> {
    let name = name_of(policy);
    let mut why = Vec::new();
    for (i, rule) in rules(policy, "egress").iter().enumerate() {
        let to = rule["to"].as_array().map_or(&[][..], Vec::as_slice);
        if to.is_empty() {
            why.push(format!("{name}: egress rule {i} has no `to`: {rule}"));
        }
        for peer in to {
            if peer.as_object().is_none_or(|m| m.is_empty()) {
                why.push(format!("{name}: egress rule {i} has an empty peer: {rule}"));
            }
            if let Some(cidr) = peer["ipBlock"]["cidr"].as_str() {
                if cidr.ends_with("/0") {
                    why.push(format!("{name}: egress rule {i} admits {cidr}"));
                }
            }
        }
    }
    why
}

/// `(protocol, port)` of each port of a rule.
pub fn ports(rule: &Value) -> Vec<(String, Value)> {
    rule["ports"]
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .map(|p| {
            (
                p["protocol"].as_str().unwrap_or("TCP").to_string(),
                p["port"].clone(),
            )
        })
        .collect()
}

/// Whether a label selector (`matchLabels` only, as the chart writes them) selects `labels`.
pub fn selects(selector: &Value, labels: &Value) -> bool {
    assert!(
        selector.get("matchExpressions").is_none(),
        "the chart writes matchLabels only: {selector}"
    );
    selector["matchLabels"]
        .as_object()
        .is_none_or(|m| m.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// The pod templates the operator builds for the pipeline of `manifest` (a file of
/// `manifests/`), in namespace `ns`: `(what, pod template)` of every stage Job, the cleanup Job,
/// the dashboard and, in streaming mode, the stream StatefulSet.
pub fn operator_pods(manifest: &str, ns: &str) -> Vec<(String, Value)> {
    let mut obj: EcomPipeline =
        serde_json::from_value(manifest_pipeline(manifest)).expect("EcomPipeline parses");
    obj.metadata.namespace = Some(ns.to_string());
    obj.metadata.uid = Some("uid".into());
    let p = ecom_operator::validate::validate(&obj)
        .unwrap_or_else(|e| panic!("manifests/{manifest}: {e}"));
    let template = |v: Value| v["spec"]["template"].clone();
    let json = |v: Result<Value, serde_json::Error>| v.expect("object as JSON");
    let mut pods: Vec<(String, Value)> = Stage::ALL
        .into_iter()
        .map(|s| {
            let job = stage_job(&p, s, JobOptions { suspend: false });
            (
                format!("{s} Job"),
                template(json(serde_json::to_value(job))),
            )
        })
        .collect();
    pods.push((
        "cleanup Job".into(),
        template(json(serde_json::to_value(cleanup_job(&p)))),
    ));
    pods.push((
        "dashboard".into(),
        template(json(serde_json::to_value(dashboard_deployment(&p)))),
    ));
    if obj.spec.mode == Mode::Streaming {
        let sts = statefulset(&p, StreamShape::desired(&p));
        pods.push(("stream".into(), template(json(serde_json::to_value(sts)))));
    }
    pods
}

/// Whether `name` matches the glob `pattern`, where `*` matches any run of characters (`/`
/// and `:` included) and every other character itself: the operator's allow-list rule.
pub fn glob(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // matched[j]: the pattern read so far matches the first j characters of the name.
    let mut matched = vec![false; n.len() + 1];
    matched[0] = true;
    for &c in &p {
        if c == '*' {
            for j in 1..=n.len() {
                matched[j] = matched[j] || matched[j - 1];
            }
        } else {
            for j in (1..=n.len()).rev() {
                matched[j] = matched[j - 1] && n[j - 1] == c;
            }
            matched[0] = false;
        }
    }
    matched[n.len()]
}

/// Whether `name` matches one of the comma-separated `patterns`.
pub fn admitted(patterns: &str, name: &str) -> bool {
    patterns.split(',').any(|p| glob(p, name))
}

/// Whether egress `rule` of a policy in namespace `policy_ns` admits a TCP connection to
/// `port` of a pod labelled `pod_labels` in namespace `pod_ns` (whose only label is the
/// automatic `kubernetes.io/metadata.name`). An ipBlock never counts: pod addresses are unknown.
pub fn admits_pod(
    rule: &Value,
    policy_ns: &str,
    pod_ns: &str,
    pod_labels: &Value,
    port: i64,
) -> bool {
    let port_ok = ports(rule)
        .iter()
        .any(|(proto, p)| proto == "TCP" && p.as_i64() == Some(port));
    let ns_labels = serde_json::json!({"kubernetes.io/metadata.name": pod_ns});
    let peer_ok = rule["to"]
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .filter(|peer| peer.get("ipBlock").is_none())
        .any(|peer| {
            let ns_ok = peer
                .get("namespaceSelector")
                .map_or(pod_ns == policy_ns, |sel| selects(sel, &ns_labels));
            let pod_ok = peer
                .get("podSelector")
                .is_none_or(|sel| selects(sel, pod_labels));
            ns_ok && pod_ok
        });
    port_ok && peer_ok
}

/// The EcomPipeline of `manifests/<manifest>`.
pub fn manifest_pipeline(manifest: &str) -> Value {
    let text = std::fs::read_to_string(repo().join("manifests").join(manifest))
        .unwrap_or_else(|e| panic!("manifests/{manifest}: {e}"));
    documents(&text)
        .into_iter()
        .find(|d| kind_of(d) == "EcomPipeline")
        .unwrap_or_else(|| panic!("no EcomPipeline in manifests/{manifest}"))
}

/// `(host, port)` of the Kafka bootstrap, the NameNode and the Thrift server a pipeline spec
/// names (the first bootstrap server; HDFS on 8020 and Thrift on 9090 unless given).
pub fn service_addresses(spec: &Value) -> Vec<(String, i64)> {
    let split = |addr: &str, default: i64| -> (String, i64) {
        match addr.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().expect("port")),
            None => (addr.to_string(), default),
        }
    };
    let bootstrap = spec["kafka"]["bootstrap"]
        .as_str()
        .expect("kafka.bootstrap");
    let hdfs = spec["hdfs"]["url"].as_str().expect("hdfs.url");
    let hdfs = hdfs.trim_start_matches("hdfs://").trim_end_matches('/');
    vec![
        split(
            bootstrap.split(',').next().expect("a bootstrap server"),
            9092,
        ),
        split(hdfs, 8020),
        (
            spec["hbase"]["thriftHost"]
                .as_str()
                .expect("hbase.thriftHost")
                .to_string(),
            spec["hbase"]["thriftPort"].as_i64().unwrap_or(9090),
        ),
    ]
}
