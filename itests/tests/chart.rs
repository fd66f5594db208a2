//! The Helm chart (`charts/ecom-pipeline`) and the example manifests against the real
//! kube-apiserver of the services harness (RBAC on, service-account tokens):
//! `helm lint` and `helm template` for the default, kind and production values; a server-side
//! dry-run of every rendered object and every manifest (the CRD first); restricted Pod
//! Security of every pod template; the chart's CRD against `crds/`; the rendered RBAC checked
//! in both directions with SubjectAccessReviews and a SelfSubjectRulesReview; Helm install,
//! upgrade and uninstall. The operator running from the chart, with its ServiceAccount, is
//! tested on the real node (`real_node_user_path.rs`).
//!
//! Needs `KUBECONFIG`, `KUBECTL`, `HELM`, `KAFKA_BOOTSTRAP`, `HDFS_URL`, `HBASE_THRIFT` (from
//! `eval "$(scripts/services.sh env)"`) and the `ecom` binary (`ECOM_BIN`).
//!
//! The helpers are in `chart_support/` (a module of this one test binary).

mod chart_support;
mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use chart_support::dry_run::{pods_of, service_monitor_crd};
use chart_support::rbac::{
    allowed, apply_objects, as_rules, client_from, forbidden, needed_in_pipeline_namespace,
    needed_in_release_namespace, own_rules, p, token_kubeconfig,
};
use chart_support::{
    container, crd_json, documents, ensure_namespace, find, helm, kind_of, kubectl_in, name_of,
    numbers_as_floats, render, render_text, repo, run, server_version, to_yaml_stream, values_sets,
    CHART, CRD_NAME,
};
use common::kube::{client, install_crd, namespace, unique};
use common::service_env;
use ecom_operator::crd::EcomPipeline;
use kube::api::{Api, ListParams};
use serde_json::{json, Value};

// ------------------------------------------------------------------------------------------
// Lint, render, shape.

/// One test for every values file: `helm lint` and `helm template` are cheap, and keeping
/// each setup's expectations side by side shows how the setups differ.
#[test]
fn chart_lints_and_renders_every_values_file() {
    for (setup, values) in values_sets() {
        let mut args = vec!["lint", "--strict", CHART];
        for v in &values {
            args.extend(["-f", v.as_str()]);
        }
        let out = helm(&args);
        assert!(out.contains("0 chart(s) failed"), "{setup}: {out}");
    }

    // Default: the operator only, cluster-wide, hardened, NetworkPolicies on (their content:
    // chart_support/policy.rs); the CRD kept on uninstall.
    let objs = render("ecom-pipeline", "ecom", &[], &[]);
    let kinds: BTreeSet<&str> = objs.iter().map(kind_of).collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "ClusterRole",
            "ClusterRoleBinding",
            "CustomResourceDefinition",
            "Deployment",
            "NetworkPolicy",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount"
        ])
    );
    let crd = find(&objs, "CustomResourceDefinition", CRD_NAME);
    assert_eq!(
        crd["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );
    let op = find(&objs, "Deployment", "ecom-pipeline-operator");
    let pod = &op["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(pod["serviceAccountName"], "ecom-pipeline-operator");
    let c = container(op, "operator");
    let sc = &c["securityContext"];
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert!(c["resources"]["requests"]["memory"].is_string(), "{c}");
    assert!(c["resources"]["limits"]["memory"].is_string(), "{c}");
    assert_eq!(c["image"], "ghcr.io/ecom-pipeline/ecom:0.1.0");
    let sa = find(&objs, "ServiceAccount", "ecom-pipeline-operator");
    assert_eq!(sa["automountServiceAccountToken"], false);
    let svc = find(&objs, "Service", "ecom-pipeline-operator-metrics");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "metrics");

    // Kind: the development services with readiness probes and small requests.
    let objs = render(
        "ecom-pipeline",
        "ecom",
        &[format!("{CHART}/values-kind.yaml")],
        &[],
    );
    for (deployment, containers) in [
        ("ecom-kafka", vec!["kafka"]),
        ("ecom-hdfs-namenode", vec!["namenode"]),
        ("ecom-hdfs-datanode", vec!["datanode"]),
        ("ecom-hbase", vec!["master", "thrift"]),
    ] {
        let d = find(&objs, "Deployment", deployment);
        for name in containers {
            let c = container(d, name);
            assert!(c["readinessProbe"].is_object(), "{deployment}/{name}");
            let mem = c["resources"]["requests"]["memory"]
                .as_str()
                .unwrap_or_else(|| panic!("{deployment}/{name} memory request"));
            let mib: u64 = mem.trim_end_matches("Mi").parse().unwrap_or(u64::MAX);
            assert!(mib <= 1024, "{deployment}/{name} requests {mem}");
        }
    }
    for svc in ["ecom-kafka", "ecom-hdfs-namenode", "ecom-hbase"] {
        find(&objs, "Service", svc);
    }
    let op = find(&objs, "Deployment", "ecom-pipeline-operator");
    assert_eq!(container(op, "operator")["image"], "ecom:dev");
    assert_eq!(container(op, "operator")["imagePullPolicy"], "Never");

    // Production: two replicas, one namespace (Roles only), NetworkPolicies, ServiceMonitor.
    let objs = render(
        "ecom-pipeline",
        "ecom",
        &[format!("{CHART}/values-production.yaml")],
        &[],
    );
    let kinds: BTreeSet<&str> = objs.iter().map(kind_of).collect();
    assert!(!kinds.contains("ClusterRole"), "{kinds:?}");
    assert!(!kinds.contains("ClusterRoleBinding"), "{kinds:?}");
    assert!(kinds.contains("NetworkPolicy") && kinds.contains("ServiceMonitor"));
    let role = find(&objs, "Role", "ecom-pipeline-operator");
    assert_eq!(role["metadata"]["namespace"], "analytics");
    let binding = find(&objs, "RoleBinding", "ecom-pipeline-operator");
    assert_eq!(binding["metadata"]["namespace"], "analytics");
    assert_eq!(binding["roleRef"]["kind"], "Role");
    let op = find(&objs, "Deployment", "ecom-pipeline-operator");
    assert_eq!(op["spec"]["replicas"], 2);
    assert!(container(op, "operator")["args"]
        .as_array()
        .expect("args")
        .contains(&json!("--namespace=analytics")));
    assert!(objs.iter().all(|o| !name_of(o).starts_with("ecom-kafka")));

    // Switches: no CRD, no RBAC, no metrics Service, no NetworkPolicies.
    let objs = render(
        "ecom-pipeline",
        "ecom",
        &[],
        &[
            "crds.install=false".into(),
            "rbac.create=false".into(),
            "metrics.service.enabled=false".into(),
            "networkPolicy.enabled=false".into(),
        ],
    );
    let kinds: BTreeSet<&str> = objs.iter().map(kind_of).collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["Deployment", "ServiceAccount"]),
        "{kinds:?}"
    );
}

#[test]
fn values_schema_rejects_bad_values() {
    let version = server_version();
    for (set, expected) in [
        ("image.pullPolicy=Sometimes", "pullPolicy"),
        ("operator.replicas=-1", "replicas"),
        ("operator.watchNamespace=Not_A_Namespace", "watchNamespace"),
        ("devInfra.kafka.clusterId=short", "clusterId"),
        ("operator.unknownKey=1", "unknownKey"),
        // Egress to every address, or a rule that would render without `to`.
        ("networkPolicy.apiServer.cidrs={0.0.0.0/0}", "cidrs"),
        ("networkPolicy.apiServer.cidrs=null", "apiServer"),
        ("networkPolicy.dns.to=null", "dns"),
        (
            "networkPolicy.services[0].name=kafka,networkPolicy.services[0].ports={9092}",
            "services",
        ),
        (
            "networkPolicy.services[0].name=kafka,networkPolicy.services[0].ports={9092},networkPolicy.services[0].cidrs={::/0}",
            "services",
        ),
        ("networkPolicy.metricsFrom[0].anything=1", "metricsFrom"),
        // A pattern the comma-joined variable could not carry.
        ("operator.allowedSecrets[0]=a\\,b", "allowedSecrets"),
    ] {
        let out = Command::new(service_env("HELM"))
            .args([
                "template",
                "x",
                CHART,
                "--kube-version",
                &version,
                "--set",
                set,
            ])
            .current_dir(repo())
            .output()
            .expect("helm");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{set} accepted");
        assert!(err.contains(expected), "{set}: {err}");
    }
}

#[test]
fn chart_crd_equals_committed_crd() {
    let committed = std::fs::read_to_string(repo().join("crds/ecompipelines.yaml")).expect("crds/");
    let copy = std::fs::read_to_string(repo().join(CHART).join("files/crds/ecompipelines.yaml"))
        .expect("chart copy");
    assert!(
        committed == copy,
        "the chart's CRD copy differs from crds/ecompipelines.yaml: run `make crds`"
    );
    // What the chart installs is that CRD plus Helm's labels and the keep annotation.
    let objs = render("ecom-pipeline", "ecom", &[], &[]);
    let mut rendered = find(&objs, "CustomResourceDefinition", CRD_NAME).clone();
    let meta = rendered["metadata"].as_object_mut().expect("metadata");
    meta.remove("labels");
    meta.remove("annotations");
    let committed = numbers_as_floats(documents(&committed).remove(0));
    // (Helm's YAML round trip writes 604800.0 as 604800: compare numbers by value.)
    assert!(
        numbers_as_floats(rendered) == committed,
        "the chart renders a CRD different from crds/ecompipelines.yaml"
    );
    // And it is what the operator's types generate.
    let generated =
        numbers_as_floats(serde_json::to_value(ecom_operator::crd()).expect("crd json"));
    assert!(
        committed["spec"] == generated["spec"],
        "crds/ecompipelines.yaml is stale: run `make crds`"
    );
}

// ------------------------------------------------------------------------------------------
// Server-side dry-run.

/// One apiserver session on purpose: the CRDs are installed once, then every rendered
/// object and committed manifest goes through server-side dry-run against them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendered_objects_and_manifests_pass_server_side_dry_run() {
    let client = client().await;
    // The CRD first, for real (the operator's types generate it; `chart_crd_equals_committed_crd`
    // shows the chart's copy is the same): EcomPipelines are validated against it.
    install_crd(&client).await;
    kubectl_in(
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager",
            "ecom-itests",
            "-f",
            "-",
        ],
        &to_yaml_stream(&[&service_monitor_crd()]),
    );
    run(
        &service_env("KUBECTL"),
        &[
            "wait",
            "--for=condition=Established",
            "crd/servicemonitors.monitoring.coreos.com",
            "--timeout=60s",
        ],
        None,
        None,
    );
    let ns = namespace(&client, "chart-dry").await;
    ensure_namespace(&client, "analytics", json!({})).await;
    // Pod Security "restricted", enforced: a Pod that violates it is refused.
    let restricted = unique("chart-pss");
    ensure_namespace(
        &client,
        &restricted,
        json!({"pod-security.kubernetes.io/enforce": "restricted",
               "pod-security.kubernetes.io/enforce-version": "latest"}),
    )
    .await;

    for (setup, values) in values_sets() {
        let text = render_text("ecom-pipeline", &ns, &values, &[]);
        let out = kubectl_in(
            &[
                "apply",
                "--server-side",
                "--force-conflicts",
                "--dry-run=server",
                "-f",
                "-",
            ],
            &text,
        );
        let objs = documents(&text);
        let applied = out.matches("(server dry run)").count();
        assert_eq!(applied, objs.len(), "{setup}: {out}");
        // Every pod the chart would run passes restricted Pod Security (their
        // ServiceAccounts must exist there for the dry-run to reach admission).
        let mut accounts: Vec<Value> = vec![json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "default", "namespace": restricted}})];
        for sa in objs.iter().filter(|o| kind_of(o) == "ServiceAccount") {
            let mut sa = sa.clone();
            sa["metadata"]["namespace"] = json!(restricted);
            accounts.push(sa);
        }
        let refs: Vec<&Value> = accounts.iter().collect();
        kubectl_in(
            &["apply", "--server-side", "--force-conflicts", "-f", "-"],
            &to_yaml_stream(&refs),
        );
        let pods = pods_of(&objs, &restricted);
        assert!(!pods.is_empty());
        let refs: Vec<&Value> = pods.iter().collect();
        let out = kubectl_in(
            &["create", "--dry-run=server", "-f", "-"],
            &to_yaml_stream(&refs),
        );
        assert_eq!(
            out.matches("(server dry run)").count(),
            pods.len(),
            "{setup}: {out}"
        );
    }
    // NetworkPolicies of every shape the values allow are valid objects: services by address
    // range and by peers, no ingress peers at all, a watched namespace.
    let text = render_text(
        "ecom-pipeline",
        &ns,
        &[],
        &[
            "operator.watchNamespace=analytics".into(),
            "networkPolicy.services[0].name=hdfs".into(),
            "networkPolicy.services[0].ports={8020,9866}".into(),
            "networkPolicy.services[0].cidrs={10.20.0.0/16,fd00::/8}".into(),
            "networkPolicy.services[1].name=kafka".into(),
            "networkPolicy.services[1].ports={9093}".into(),
            "networkPolicy.services[1].peers[0].podSelector.matchLabels.app=kafka".into(),
            "networkPolicy.metricsFrom=null".into(),
            "networkPolicy.dashboardFrom=null".into(),
        ],
    );
    let policies: Vec<Value> = documents(&text)
        .into_iter()
        .filter(|o| kind_of(o) == "NetworkPolicy")
        .collect();
    assert_eq!(policies.len(), 3);
    let refs: Vec<&Value> = policies.iter().collect();
    let out = kubectl_in(
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--dry-run=server",
            "-f",
            "-",
        ],
        &to_yaml_stream(&refs),
    );
    assert_eq!(out.matches("(server dry run)").count(), 3, "{out}");

    // The check has teeth: a pod without the hardening is refused in that namespace.
    let bad = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "bad", "namespace": restricted},
        "spec": {"containers": [{"name": "c", "image": "ecom:dev"}]}});
    let out = Command::new(service_env("KUBECTL"))
        .args(["create", "--dry-run=server", "-f", "-"])
        .env("KUBECONFIG", service_env("KUBECONFIG"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin
                .take()
                .expect("stdin")
                .write_all(serde_json::to_string(&bad).expect("json").as_bytes())?;
            c.wait_with_output()
        })
        .expect("kubectl");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("violates PodSecurity \"restricted:latest\""),
        "{err}"
    );

    // Every file of manifests/ (the kind cluster config is read by kind, not the API server).
    let dir = repo().join("manifests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("manifests/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    let mut pipelines = BTreeSet::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("manifest");
        let docs = documents(&text);
        for d in &docs {
            assert!(
                d["metadata"]["namespace"].is_null(),
                "{}: manifests take the namespace from kubectl -n",
                f.display()
            );
            if kind_of(d) == "EcomPipeline" {
                pipelines.insert(d["spec"]["mode"].as_str().unwrap_or("batch").to_string());
                // The operator's own validation accepts it too.
                let p: EcomPipeline =
                    serde_json::from_value(d.clone()).expect("EcomPipeline parses");
                let mut p = p;
                p.metadata.namespace = Some(ns.clone());
                p.metadata.uid = Some("uid".into());
                ecom_operator::validate::validate(&p)
                    .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            }
        }
        let out = kubectl_in(
            &[
                "apply",
                "-n",
                &ns,
                "--server-side",
                "--force-conflicts",
                "--dry-run=server",
                "-f",
                "-",
            ],
            &text,
        );
        assert_eq!(
            out.matches("(server dry run)").count(),
            docs.len(),
            "{}: {out}",
            f.display()
        );
    }
    assert_eq!(
        pipelines,
        BTreeSet::from(["batch".to_string(), "streaming".to_string()])
    );
    let kind = documents(
        &std::fs::read_to_string(dir.join("kind/cluster.yaml")).expect("kind cluster config"),
    )
    .remove(0);
    assert_eq!(
        (kind["apiVersion"].as_str(), kind["kind"].as_str()),
        (Some("kind.x-k8s.io/v1alpha4"), Some("Cluster"))
    );
    assert_eq!(kind["nodes"][0]["role"], "control-plane");

    // NOTES.txt renders against the server and tells how to apply the example and port-forward.
    // (A release name of its own: a chart installed by `make cluster-up` owns the default
    // release's ClusterRole.)
    let release = unique("notes");
    let notes = helm(&[
        "install",
        &release,
        CHART,
        "--namespace",
        &ns,
        "-f",
        &format!("{CHART}/values-kind.yaml"),
        "--set",
        "crds.install=false",
        "--dry-run=server",
    ]);
    assert!(
        notes.contains("kubectl -n") && notes.contains("apply -f manifests/pipeline-batch.yaml"),
        "{notes}"
    );
    assert!(notes.contains("port-forward svc/"), "{notes}");
    // And the security settings: the cluster-wide scope with the advice, the allow-lists, the
    // NetworkPolicies and what they let the pipeline pods reach.
    for line in [
        "RBAC: a ClusterRole",
        "Recommended for production: --set operator.watchNamespace=NAMESPACE",
        "with the Secrets matching ecom-*",
        "may reach DNS and the development services, nothing else.",
    ] {
        assert!(notes.contains(line), "{line}: {notes}");
    }
    let notes = helm(&[
        "install",
        &release,
        CHART,
        "--namespace",
        &ns,
        "-f",
        &format!("{CHART}/values-production.yaml"),
        "--set",
        "crds.install=false",
        "--dry-run=server",
    ]);
    for line in [
        "RBAC: a Role in namespace analytics only",
        "with the Secrets matching ecom-kafka-user, ecom-kafka-ca",
        "may reach DNS and kafka, hdfs, hbase-thrift, nothing else.",
    ] {
        assert!(notes.contains(line), "{line}: {notes}");
    }
}

// ------------------------------------------------------------------------------------------
// RBAC.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_allows_what_the_operator_needs_and_nothing_more() {
    let admin = client().await;
    install_crd(&admin).await;
    // Cluster-wide (default values): a unique release so the ClusterRole name is ours.
    let ns = namespace(&admin, "chart-rbac").await;
    let other = namespace(&admin, "chart-rbac-other").await;
    let release = unique("rbac");
    let objs = render(&release, &ns, &[], &[]);
    apply_objects(
        &objs,
        &[
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
        ],
    );
    let sa_name = find(
        &objs,
        "ServiceAccount",
        &format!("{release}-ecom-pipeline-operator"),
    )["metadata"]["name"]
        .as_str()
        .expect("sa")
        .to_string();
    let user = format!("system:serviceaccount:{ns}:{sa_name}");
    let stage_user = format!("system:serviceaccount:{other}:default");
    let mut failures = Vec::new();
    for pipeline_ns in [&ns, &other] {
        for perm in needed_in_pipeline_namespace() {
            if !allowed(&admin, &user, &perm, pipeline_ns).await {
                failures.push(format!("operator denied {perm:?} in {pipeline_ns}"));
            }
            if allowed(&admin, &stage_user, &perm, pipeline_ns).await {
                failures.push(format!("stage pods allowed {perm:?} in {pipeline_ns}"));
            }
        }
    }
    for perm in needed_in_release_namespace("ecom-operator") {
        if !allowed(&admin, &user, &perm, &ns).await {
            failures.push(format!("operator denied {perm:?} in {ns}"));
        }
        // The Lease is the release namespace's only.
        if allowed(&admin, &user, &perm, &other).await {
            failures.push(format!("operator allowed {perm:?} in {other}"));
        }
    }
    for perm in forbidden() {
        for n in [&ns, &other] {
            if allowed(&admin, &user, &perm, n).await {
                failures.push(format!("operator allowed {perm:?} in {n}"));
            }
            if allowed(&admin, &stage_user, &perm, n).await {
                failures.push(format!("stage pods allowed {perm:?} in {n}"));
            }
        }
    }
    // Cluster-scoped writes.
    for perm in [
        p("create", "", "namespaces"),
        p("patch", "apiextensions.k8s.io", "customresourcedefinitions"),
        p("create", "rbac.authorization.k8s.io", "clusterrolebindings"),
    ] {
        if allowed(&admin, &user, &perm, "").await {
            failures.push(format!("operator allowed cluster-scoped {perm:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Nothing more: the token's own rules in each namespace are exactly the needed ones.
    let token_client = client_from(&token_kubeconfig(&ns, &sa_name)).await;
    let mut expected = as_rules(&needed_in_pipeline_namespace());
    expected.extend(as_rules(&needed_in_release_namespace("ecom-operator")));
    assert_eq!(own_rules(&token_client, &ns).await, expected);
    assert_eq!(
        own_rules(&token_client, &other).await,
        as_rules(&needed_in_pipeline_namespace())
    );

    // One watched namespace: Roles only, nothing anywhere else.
    let watched = namespace(&admin, "chart-rbac-watched").await;
    let release = unique("rbacns");
    let objs = render(
        &release,
        &ns,
        &[],
        &[format!("operator.watchNamespace={watched}")],
    );
    assert!(objs.iter().all(|o| kind_of(o) != "ClusterRole"));
    apply_objects(&objs, &["ServiceAccount", "Role", "RoleBinding"]);
    let sa_name = format!("{release}-ecom-pipeline-operator");
    let token_client = client_from(&token_kubeconfig(&ns, &sa_name)).await;
    assert_eq!(
        own_rules(&token_client, &watched).await,
        as_rules(&needed_in_pipeline_namespace())
    );
    assert_eq!(
        own_rules(&token_client, &ns).await,
        as_rules(&needed_in_release_namespace("ecom-operator"))
    );
    assert!(own_rules(&token_client, &other).await.is_empty());
}

// ------------------------------------------------------------------------------------------
// Helm itself: install, upgrade (the CRD follows the chart), uninstall (the CRD stays).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_upgrade_updates_the_crd_and_uninstall_keeps_it() {
    let admin = client().await;
    install_crd(&admin).await;
    // The CRD is shared with the other tests: touch it only when the chart's copy is what the
    // operator's types generate.
    let copy = std::fs::read_to_string(repo().join(CHART).join("files/crds/ecompipelines.yaml"))
        .expect("chart copy");
    let generated =
        numbers_as_floats(serde_json::to_value(ecom_operator::crd()).expect("crd json"));
    assert!(
        numbers_as_floats(documents(&copy).remove(0))["spec"] == generated["spec"],
        "the chart's CRD is stale: run `make crds`"
    );
    let ns = namespace(&admin, "chart-helm").await;
    let release = unique("helm");
    // Adopt the existing CRD into this release (as `helm install` over an existing CRD needs).
    run(
        &service_env("KUBECTL"),
        &[
            "label",
            "--overwrite",
            "crd",
            CRD_NAME,
            "app.kubernetes.io/managed-by=Helm",
        ],
        None,
        None,
    );
    run(
        &service_env("KUBECTL"),
        &[
            "annotate",
            "--overwrite",
            "crd",
            CRD_NAME,
            &format!("meta.helm.sh/release-name={release}"),
            &format!("meta.helm.sh/release-namespace={ns}"),
        ],
        None,
        None,
    );
    let watch = format!("operator.watchNamespace={ns}");
    let helm_release = |extra: &[&str]| {
        let mut args = vec![
            "upgrade",
            "--install",
            release.as_str(),
            CHART,
            "--namespace",
            ns.as_str(),
            "--set",
            watch.as_str(),
        ];
        args.extend_from_slice(extra);
        helm(&args)
    };
    helm_release(&[]);
    let crd = crd_json();
    assert_eq!(
        crd["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );
    assert_eq!(
        crd["metadata"]["labels"]["app.kubernetes.io/instance"],
        json!(release)
    );
    // An upgrade changes the CRD (a file in crds/ would never be touched again).
    helm_release(&["--set", "crds.keep=false"]);
    assert!(
        crd_json()["metadata"]["annotations"]["helm.sh/resource-policy"].is_null(),
        "helm upgrade did not update the CRD"
    );
    helm_release(&["--set", "crds.keep=true"]);
    assert_eq!(
        crd_json()["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );
    let status = helm(&["status", release.as_str(), "--namespace", ns.as_str()]);
    assert!(status.contains("REVISION: 3"), "{status}");
    // Uninstall: the operator's objects go, the CRD and the pipelines stay.
    let out = helm(&["uninstall", release.as_str(), "--namespace", ns.as_str()]);
    assert!(out.contains("kept due to the resource policy"), "{out}");
    assert_eq!(crd_json()["metadata"]["name"], CRD_NAME);
    let any: Api<EcomPipeline> = Api::all(admin.clone());
    any.list(&ListParams::default().limit(1))
        .await
        .expect("EcomPipelines still served");
    let left = run(
        &service_env("KUBECTL"),
        &[
            "-n",
            &ns,
            "get",
            "deployments,serviceaccounts,roles",
            "-o",
            "name",
        ],
        None,
        None,
    );
    assert!(!left.contains("ecom-pipeline-operator"), "{left}");
}
