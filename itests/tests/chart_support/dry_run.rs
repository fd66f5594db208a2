//! Objects of the server-side dry-run: a stand-in ServiceMonitor CRD and pods built from the
//! chart's pod templates.

use serde_json::{json, Value};

use super::{kind_of, name_of};

/// A stand-in ServiceMonitor CRD (the harness has no Prometheus Operator): a structural
/// schema of the fields the chart sets, so the dry-run checks their shape and types.
pub fn service_monitor_crd() -> Value {
    let s = |t: &str| json!({"type": t});
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {"kind": "ServiceMonitor", "plural": "servicemonitors", "singular": "servicemonitor", "listKind": "ServiceMonitorList"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {"spec": {
                    "type": "object", "required": ["selector", "endpoints"],
                    "properties": {
                        "selector": {"type": "object", "properties": {"matchLabels": {"type": "object", "additionalProperties": s("string")}}},
                        "namespaceSelector": {"type": "object", "properties": {"matchNames": {"type": "array", "items": s("string")}, "any": s("boolean")}},
                        "endpoints": {"type": "array", "minItems": 1, "items": {"type": "object", "properties": {
                            "port": s("string"), "path": s("string"),
                            "interval": {"type": "string", "pattern": "^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"},
                            "scrapeTimeout": {"type": "string", "pattern": "^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}
                        }}}
                    }
                }}
            }}}]
        }
    })
}

/// Pods built from every pod template of `objs` (Deployments), for a Pod Security check.
pub fn pods_of(objs: &[Value], ns: &str) -> Vec<Value> {
    objs.iter()
        .filter(|o| kind_of(o) == "Deployment")
        .map(|d| {
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("{}-pss", name_of(d)), "namespace": ns,
                             "labels": d["spec"]["template"]["metadata"]["labels"]},
                "spec": d["spec"]["template"]["spec"]
            })
        })
        .collect()
}
