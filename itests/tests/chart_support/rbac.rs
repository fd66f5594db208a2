//! The RBAC checks' data and probes: the permissions the operator needs and a sample of those it
//! must not have, SubjectAccessReviews, and the rules a ServiceAccount's token holds.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use k8s_openapi::api::authorization::v1::{
    SelfSubjectRulesReview, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use kube::Client;
use serde_json::{json, Value};

use super::{kind_of, kubectl_in, run, to_yaml_stream};
use crate::common::kube::unique;
use crate::common::service_env;

/// One permission: verb, API group, resource (with subresource), optional name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Perm {
    verb: &'static str,
    group: &'static str,
    resource: &'static str,
    sub: &'static str,
    name: &'static str,
}

/// Permission `verb` on `resource` of API group `group`.
pub const fn p(verb: &'static str, group: &'static str, resource: &'static str) -> Perm {
    Perm {
        verb,
        group,
        resource,
        sub: "",
        name: "",
    }
}

const PIPELINES: &str = "pipelines.ecom-pipeline.io";

/// What the operator's reconcile does in a pipeline namespace (see operator/src/controller.rs,
/// apply.rs, observe.rs).
pub fn needed_in_pipeline_namespace() -> Vec<Perm> {
    let mut v = vec![
        p("get", PIPELINES, "ecompipelines"),
        p("list", PIPELINES, "ecompipelines"),
        p("watch", PIPELINES, "ecompipelines"),
        p("patch", PIPELINES, "ecompipelines"),
        Perm {
            sub: "status",
            ..p("patch", PIPELINES, "ecompipelines")
        },
        Perm {
            sub: "finalizers",
            ..p("update", PIPELINES, "ecompipelines")
        },
        p("list", "", "pods"),
        // Read before every apply and delete: the operator touches only what it controls.
        p("get", "", "services"),
        p("list", "", "services"),
        p("watch", "", "services"),
        p("create", "", "services"),
        p("patch", "", "services"),
        p("delete", "", "services"),
        p("create", "events.k8s.io", "events"),
        p("patch", "events.k8s.io", "events"),
    ];
    for verb in ["get", "list", "watch", "create", "patch", "delete"] {
        v.push(p(verb, "batch", "jobs"));
        v.push(p(verb, "apps", "statefulsets"));
        v.push(p(verb, "apps", "deployments"));
    }
    v
}

/// Leader election in the release namespace.
pub fn needed_in_release_namespace(lease: &'static str) -> Vec<Perm> {
    vec![
        p("create", "coordination.k8s.io", "leases"),
        Perm {
            name: lease,
            ..p("get", "coordination.k8s.io", "leases")
        },
        Perm {
            name: lease,
            ..p("update", "coordination.k8s.io", "leases")
        },
    ]
}

/// A sample of what neither the operator nor a stage pod may do.
pub fn forbidden() -> Vec<Perm> {
    vec![
        p("get", "", "secrets"),
        p("list", "", "secrets"),
        p("watch", "", "secrets"),
        p("get", "", "configmaps"),
        p("create", "", "configmaps"),
        p("create", "", "pods"),
        p("delete", "", "pods"),
        p("get", "", "pods"),
        Perm {
            sub: "exec",
            ..p("create", "", "pods")
        },
        Perm {
            sub: "log",
            ..p("get", "", "pods")
        },
        Perm {
            sub: "token",
            ..p("create", "", "serviceaccounts")
        },
        p("update", "batch", "jobs"),
        p("deletecollection", "batch", "jobs"),
        p("update", "apps", "deployments"),
        p("update", "apps", "statefulsets"),
        Perm {
            sub: "scale",
            ..p("update", "apps", "statefulsets")
        },
        p("deletecollection", "apps", "statefulsets"),
        p("create", "apps", "daemonsets"),
        p("create", "apps", "replicasets"),
        p("create", PIPELINES, "ecompipelines"),
        p("delete", PIPELINES, "ecompipelines"),
        p("update", PIPELINES, "ecompipelines"),
        Perm {
            sub: "status",
            ..p("update", PIPELINES, "ecompipelines")
        },
        p(
            "delete",
            "apiextensions.k8s.io",
            "customresourcedefinitions",
        ),
        p(
            "update",
            "apiextensions.k8s.io",
            "customresourcedefinitions",
        ),
        p("create", "rbac.authorization.k8s.io", "rolebindings"),
        p("create", "rbac.authorization.k8s.io", "clusterroles"),
        p("escalate", "rbac.authorization.k8s.io", "roles"),
        p("bind", "rbac.authorization.k8s.io", "clusterroles"),
        p("impersonate", "", "serviceaccounts"),
        p("list", "", "nodes"),
        p("create", "", "namespaces"),
        p("delete", "", "namespaces"),
        p("create", "", "persistentvolumeclaims"),
        p("create", "networking.k8s.io", "networkpolicies"),
        p("create", "", "events"),
        p("delete", "events.k8s.io", "events"),
        p("delete", "coordination.k8s.io", "leases"),
        p("list", "coordination.k8s.io", "leases"),
        Perm {
            name: "someone-elses-lease",
            ..p("update", "coordination.k8s.io", "leases")
        },
    ]
}

/// Whether a SubjectAccessReview allows `user` (a ServiceAccount) `perm` in namespace `ns`.
pub async fn allowed(admin: &Client, user: &str, perm: &Perm, ns: &str) -> bool {
    let sar = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.to_string()),
            groups: Some(vec![
                "system:serviceaccounts".into(),
                "system:authenticated".into(),
            ]),
            resource_attributes: Some(
                serde_json::from_value(json!({
                    "namespace": ns, "verb": perm.verb, "group": perm.group,
                    "resource": perm.resource, "subresource": perm.sub, "name": perm.name
                }))
                .expect("resource attributes"),
            ),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    let api: Api<SubjectAccessReview> = Api::all(admin.clone());
    api.create(&PostParams::default(), &sar)
        .await
        .expect("SubjectAccessReview")
        .status
        .is_some_and(|s| s.allowed)
}

/// Applies the rendered objects of `kinds` (for real).
pub fn apply_objects(objs: &[Value], kinds: &[&str]) {
    let chosen: Vec<&Value> = objs
        .iter()
        .filter(|o| kinds.contains(&kind_of(o)))
        .collect();
    kubectl_in(
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager",
            "helm",
            "-f",
            "-",
        ],
        &to_yaml_stream(&chosen),
    );
}

/// A kubeconfig that authenticates with a token of ServiceAccount `ns/sa` only.
pub fn token_kubeconfig(ns: &str, sa: &str) -> PathBuf {
    let token = run(
        &service_env("KUBECTL"),
        &["-n", ns, "create", "token", sa, "--duration", "1h"],
        None,
        None,
    );
    let admin: Value = serde_json::from_str(&run(
        &service_env("KUBECTL"),
        &["config", "view", "--raw", "--minify", "-o", "json"],
        None,
        None,
    ))
    .expect("kubeconfig json");
    let cluster = &admin["clusters"][0]["cluster"];
    let kc = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "harness", "cluster": {
            "server": cluster["server"],
            "certificate-authority-data": cluster["certificate-authority-data"]}}],
        "users": [{"name": sa, "user": {"token": token.trim()}}],
        "contexts": [{"name": "sa", "context": {"cluster": "harness", "user": sa, "namespace": ns}}],
        "current-context": "sa"
    });
    let path = std::env::temp_dir().join(format!("{}.kubeconfig", unique(sa)));
    std::fs::write(&path, serde_json::to_vec(&kc).expect("json")).expect("write kubeconfig");
    path
}

/// A client authenticating with `kubeconfig`.
pub async fn client_from(kubeconfig: &Path) -> Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).expect("read kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .expect("kube config");
    Client::try_from(cfg).expect("client")
}

/// Every (verb, group, resource, name) the token of `client` holds in `ns`, without the
/// self-review rules every authenticated user has.
pub async fn own_rules(client: &Client, ns: &str) -> BTreeSet<(String, String, String, String)> {
    let review: SelfSubjectRulesReview =
        serde_json::from_value(json!({"spec": {"namespace": ns}})).expect("review");
    let api: Api<SelfSubjectRulesReview> = Api::all(client.clone());
    let status = api
        .create(&PostParams::default(), &review)
        .await
        .expect("SelfSubjectRulesReview")
        .status
        .expect("status");
    let mut out = BTreeSet::new();
    for r in status.resource_rules {
        for g in r.api_groups.clone().unwrap_or_default() {
            for res in r.resources.clone().unwrap_or_default() {
                if res.starts_with("selfsubject") {
                    continue;
                }
                for v in &r.verbs {
                    let names = r.resource_names.clone().unwrap_or_default();
                    if names.is_empty() {
                        out.insert((v.clone(), g.clone(), res.clone(), String::new()));
                    }
                    for n in names {
                        out.insert((v.clone(), g.clone(), res.clone(), n));
                    }
                }
            }
        }
    }
    out
}

/// `perms` as the rules [`own_rules`] returns.
pub fn as_rules(perms: &[Perm]) -> BTreeSet<(String, String, String, String)> {
    perms
        .iter()
        .map(|p| {
            let res = if p.sub.is_empty() {
                p.resource.to_string()
            } else {
                format!("{}/{}", p.resource, p.sub)
            };
            (
                p.verb.to_string(),
                p.group.to_string(),
                res,
                p.name.to_string(),
            )
        })
        .collect()
}
