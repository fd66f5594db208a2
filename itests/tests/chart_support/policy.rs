//! Tests of the chart's security defaults (a module of the `chart` test binary): the
//! NetworkPolicies with the default, kind and production values, checked against the pods
//! the chart and the operator really build, and the allow-lists in the operator's environment,
//! checked against the images and Secrets the examples and the node tests use.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use serde_json::{json, Value};

use super::netpol::{
    admits_pod, admitted, glob, manifest_pipeline, open_egress, operator_pods, policies, ports,
    rules, selects, service_addresses,
};
use super::{container, documents, find, kind_of, render, repo, values_sets, CHART};

const OPERATOR: &str = "ecom-pipeline-operator";
const PIPELINES: &str = "ecom-pipeline-pipelines";
const DASHBOARDS: &str = "ecom-pipeline-dashboards";

fn kind_values() -> Vec<String> {
    vec![format!("{CHART}/values-kind.yaml")]
}

fn production_values() -> Vec<String> {
    vec![format!("{CHART}/values-production.yaml")]
}

/// The DNS rule every policy with egress starts with: kube-dns pods of kube-system, port 53.
fn dns_rule() -> Value {
    json!({
        "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
        "to": [{
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}
        }]
    })
}

/// An ingress rule of `port` from `peers`.
fn ingress_from(port: &str, peers: Value) -> Value {
    json!([{"ports": [{"port": port, "protocol": "TCP"}], "from": peers}])
}

/// A values file with `text`, and its path (the file lives as long as the first element).
fn values_file(text: &str) -> (tempfile::NamedTempFile, String) {
    let mut f = tempfile::Builder::new()
        .suffix(".yaml")
        .tempfile()
        .expect("temp values file");
    f.write_all(text.as_bytes()).expect("write values");
    let path = f.path().to_str().expect("UTF-8 path").to_string();
    (f, path)
}

/// Labels of the pod template of Deployment `name`.
fn pod_labels<'a>(objs: &'a [Value], name: &str) -> &'a Value {
    &find(objs, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
}

/// The number of the container port named `name` of Deployment `deployment`.
fn container_port(objs: &[Value], deployment: &str, name: &str) -> i64 {
    find(objs, "Deployment", deployment)["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_i64())
        .unwrap_or_else(|| panic!("no port {name} in {deployment}"))
}

/// Whether some egress rule of `policy` admits `port` of that pod.
fn reaches(policy: &Value, pod_ns: &str, labels: &Value, port: i64) -> bool {
    let ns = policy["metadata"]["namespace"].as_str().expect("namespace");
    rules(policy, "egress")
        .iter()
        .any(|r| admits_pod(r, ns, pod_ns, labels, port))
}

/// On with every values file; no egress rule that could admit every address; the pipeline
/// pods never reach 80 or 443; DNS first, to kube-dns only; the operator's API server rule
/// limited to address ranges.
#[test]
fn network_policies_are_on_and_every_egress_rule_is_narrow() {
    let mut failures = Vec::new();
    for (setup, values) in values_sets() {
        let objs = render("ecom-pipeline", "ecom", &values, &[]);
        let pols = policies(&objs);
        assert_eq!(
            pols.keys().copied().collect::<BTreeSet<_>>(),
            BTreeSet::from([DASHBOARDS, OPERATOR, PIPELINES]),
            "{setup}"
        );
        for pol in pols.values() {
            failures.extend(
                open_egress(pol)
                    .into_iter()
                    .map(|w| format!("{setup}: {w}")),
            );
        }
        let (op, pipes, dash) = (pols[OPERATOR], pols[PIPELINES], pols[DASHBOARDS]);
        assert_eq!(op["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        assert_eq!(pipes["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        assert_eq!(dash["spec"]["policyTypes"], json!(["Ingress"]));
        // The pipeline pods accept no connection (the dashboards' own policy opens `http`).
        assert_eq!(pipes["spec"]["ingress"], json!([]), "{setup}");
        for pol in [op, pipes] {
            assert_eq!(rules(pol, "egress")[0], dns_rule(), "{setup}");
        }
        for rule in rules(pipes, "egress") {
            for (proto, port) in ports(rule) {
                if port == json!(80) || port == json!(443) {
                    failures.push(format!("{setup}: pipeline pods reach {proto}/{port}"));
                }
            }
        }
        let api = &rules(op, "egress")[1];
        assert_eq!(
            ports(api)
                .iter()
                .map(|(_, p)| p.clone())
                .collect::<Vec<_>>(),
            vec![json!(443), json!(6443), json!(8443)],
            "{setup}"
        );
        let to = api["to"].as_array().expect("API server peers");
        assert!(
            to.iter()
                .all(|p| p.as_object().is_some_and(|m| m.len() == 1)
                    && p["ipBlock"]["cidr"].is_string()),
            "{setup}: {api}"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // A service listed by address range renders as ipBlocks, narrow as well; the switch works.
    let objs = render(
        "ecom-pipeline",
        "ecom",
        &[],
        &[
            "networkPolicy.services[0].name=hdfs".into(),
            "networkPolicy.services[0].ports={8020,9866}".into(),
            "networkPolicy.services[0].cidrs={10.20.0.0/16}".into(),
        ],
    );
    let pipes = policies(&objs)[PIPELINES];
    assert_eq!(
        rules(pipes, "egress")[1],
        json!({"ports": [{"port": 8020, "protocol": "TCP"}, {"port": 9866, "protocol": "TCP"}],
               "to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}]})
    );
    assert!(open_egress(pipes).is_empty());
    let objs = render(
        "ecom-pipeline",
        "ecom",
        &[],
        &["networkPolicy.enabled=false".into()],
    );
    assert!(policies(&objs).is_empty());
}

/// Default values: ingress from every pod of the cluster (`namespaceSelector: {}`) on the
/// metrics and dashboard ports; the pipeline pods reach DNS only, as nothing is configured;
/// the selectors match the operator pod and every pod the operator builds for the examples.
#[test]
fn network_policy_defaults_select_the_real_pods_and_admit_the_documented_peers() {
    let objs = render("ecom-pipeline", "ecom", &[], &[]);
    let pols = policies(&objs);
    let (op, pipes, dash) = (pols[OPERATOR], pols[PIPELINES], pols[DASHBOARDS]);
    let every_pod = json!([{"namespaceSelector": {}}]);
    assert_eq!(
        op["spec"]["ingress"],
        ingress_from("metrics", every_pod.clone())
    );
    assert_eq!(dash["spec"]["ingress"], ingress_from("http", every_pod));
    assert_eq!(rules(pipes, "egress"), [dns_rule()]);
    // DNS and the API server; probeServices has nothing configured to add.
    assert_eq!(rules(op, "egress").len(), 2);
    let cidrs: Vec<&Value> = rules(op, "egress")[1]["to"]
        .as_array()
        .expect("to")
        .iter()
        .map(|p| &p["ipBlock"]["cidr"])
        .collect();
    assert_eq!(
        cidrs,
        [
            &json!("10.0.0.0/8"),
            &json!("172.16.0.0/12"),
            &json!("192.168.0.0/16")
        ]
    );

    // The operator policy selects the operator pod, whose port `metrics` it opens.
    assert!(selects(
        &op["spec"]["podSelector"],
        pod_labels(&objs, OPERATOR)
    ));
    container_port(&objs, OPERATOR, "metrics");
    // The pipelines policy selects every pod the operator builds, the dashboards policy only
    // the dashboard, which has the port `http` it opens; neither selects the operator.
    for manifest in ["pipeline-batch.yaml", "pipeline-streaming.yaml"] {
        let pods = operator_pods(manifest, "ecom");
        assert!(pods.iter().any(|(what, _)| what == "dashboard"));
        for (what, pod) in pods {
            let labels = &pod["metadata"]["labels"];
            assert!(
                selects(&pipes["spec"]["podSelector"], labels),
                "{manifest} {what}: {labels}"
            );
            let is_dashboard = what == "dashboard";
            assert_eq!(
                selects(&dash["spec"]["podSelector"], labels),
                is_dashboard,
                "{manifest} {what}: {labels}"
            );
            if is_dashboard {
                let http = pod["spec"]["containers"][0]["ports"]
                    .as_array()
                    .expect("dashboard ports")
                    .iter()
                    .any(|p| p["name"] == "http");
                assert!(http, "{manifest}: the dashboard has no port `http`");
            }
        }
    }
    assert!(!selects(
        &pipes["spec"]["podSelector"],
        pod_labels(&objs, OPERATOR)
    ));

    // Probing off: the operator reaches DNS and the API server only, even with devInfra.
    let objs = render(
        "ecom-pipeline",
        "ecom",
        &kind_values(),
        &["operator.probeServices=false".into()],
    );
    assert_eq!(rules(policies(&objs)[OPERATOR], "egress").len(), 2);
    // Empty peer lists admit no one (no rule), never everyone.
    let file = values_file("networkPolicy:\n  metricsFrom: []\n  dashboardFrom: []\n");
    let objs = render("ecom-pipeline", "ecom", std::slice::from_ref(&file.1), &[]);
    let pols = policies(&objs);
    assert_eq!(pols[OPERATOR]["spec"]["ingress"], json!([]));
    assert_eq!(pols[DASHBOARDS]["spec"]["ingress"], json!([]));
}

/// Kind values: the pipeline pods and the operator reach exactly the development services
/// the batch example names (through their Services' target ports) and the DataNode, by pod
/// selector; production values: the namespaces of the external example's addresses, ingress
/// from the monitoring and ingress namespaces, the pipeline policies in the watched namespace.
#[test]
fn network_policies_admit_the_configured_services_of_kind_and_production() {
    let objs = render("ecom-pipeline", "ecom", &kind_values(), &[]);
    let pols = policies(&objs);
    let (op, pipes) = (pols[OPERATOR], pols[PIPELINES]);
    let spec = &manifest_pipeline("pipeline-batch.yaml")["spec"];
    for (host, port) in service_addresses(spec) {
        let svc = find(&objs, "Service", &host);
        let target = svc["spec"]["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .find(|p| p["port"] == port)
            .unwrap_or_else(|| panic!("Service {host} has no port {port}"))["targetPort"]
            .as_str()
            .expect("a named targetPort")
            .to_string();
        let selector = json!({"matchLabels": svc["spec"]["selector"]});
        let backends: Vec<&Value> = objs
            .iter()
            .filter(|o| kind_of(o) == "Deployment")
            .filter(|d| selects(&selector, &d["spec"]["template"]["metadata"]["labels"]))
            .collect();
        assert_eq!(backends.len(), 1, "Service {host}");
        let name = backends[0]["metadata"]["name"].as_str().expect("name");
        let cport = container_port(&objs, name, &target);
        for pol in [pipes, op] {
            assert!(
                reaches(pol, "ecom", pod_labels(&objs, name), cport),
                "{}: {host}:{port} (pod port {cport})",
                pol["metadata"]["name"]
            );
        }
        // Not by accident: a pod of another namespace with the same labels is not admitted.
        assert!(!reaches(pipes, "other", pod_labels(&objs, name), cport));
    }
    let datanode = "ecom-hdfs-datanode";
    let transfer = container_port(&objs, datanode, "transfer");
    assert!(reaches(
        pipes,
        "ecom",
        pod_labels(&objs, datanode),
        transfer
    ));
    // DNS plus one rule per development service, and nothing for the chart's other pods.
    assert_eq!(rules(pipes, "egress").len(), 5);
    assert!(!reaches(pipes, "ecom", pod_labels(&objs, OPERATOR), 8080));
    // A watched namespace elsewhere: the policies follow it, the services stay the release's.
    let objs = render(
        "ecom-pipeline",
        "ecom",
        &kind_values(),
        &["operator.watchNamespace=team-a".into()],
    );
    let pipes = policies(&objs)[PIPELINES];
    assert_eq!(pipes["metadata"]["namespace"], "team-a");
    assert!(reaches(
        pipes,
        "ecom",
        pod_labels(&objs, "ecom-kafka"),
        9092
    ));

    // Production.
    let objs = render("ecom-pipeline", "ecom", &production_values(), &[]);
    let pols = policies(&objs);
    let (op, pipes, dash) = (pols[OPERATOR], pols[PIPELINES], pols[DASHBOARDS]);
    assert_eq!(op["metadata"]["namespace"], "ecom");
    assert_eq!(pipes["metadata"]["namespace"], "analytics");
    assert_eq!(dash["metadata"]["namespace"], "analytics");
    let in_ns = |ns: &str| json!([{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}}]);
    assert_eq!(
        op["spec"]["ingress"],
        ingress_from("metrics", in_ns("monitoring"))
    );
    assert_eq!(
        dash["spec"]["ingress"],
        ingress_from("http", in_ns("ingress"))
    );
    // pipeline-external.yaml's addresses are `...<namespace>.svc...` names: every pod
    // of that namespace on that port is admitted, the same port elsewhere is not.
    let spec = &manifest_pipeline("pipeline-external.yaml")["spec"];
    let addresses = service_addresses(spec);
    for (host, port) in &addresses {
        let labels: Vec<&str> = host.split('.').collect();
        let svc = labels.iter().position(|l| *l == "svc").expect(".svc name");
        let ns = labels[svc - 1];
        for pol in [pipes, op] {
            assert!(reaches(pol, ns, &json!({}), *port), "{host}:{port}");
            assert!(
                !reaches(pol, "analytics", &json!({}), *port),
                "{host}:{port}"
            );
        }
    }
    assert!(reaches(pipes, "hadoop", &json!({}), 9866), "the DataNodes");
    // DNS plus the three services.
    assert_eq!(rules(pipes, "egress").len(), 4);
    assert_eq!(addresses.len(), 3);
}

/// The operator's environment carries both allow-lists, joined with commas and never empty;
/// the images' default follows image.repository; the images and Secrets of the examples and of
/// the node tests pass the lists of the values they run with, and others do not.
#[test]
fn operator_env_carries_the_allow_lists() {
    let env = |values: &[String], sets: &[String]| -> BTreeMap<String, String> {
        let objs = render("ecom-pipeline", "ecom", values, sets);
        let c = container(find(&objs, "Deployment", OPERATOR), "operator");
        let mut m = BTreeMap::new();
        for e in c["env"].as_array().expect("env") {
            if let Some(v) = e.get("value") {
                let v = v.as_str().expect("string value").to_string();
                assert!(!v.is_empty(), "{} is empty", e["name"]);
                m.insert(e["name"].as_str().expect("name").to_string(), v);
            }
        }
        m
    };
    let values = documents(
        &std::fs::read_to_string(repo().join(CHART).join("values.yaml")).expect("values.yaml"),
    )
    .remove(0);
    let repository = values["image"]["repository"].as_str().expect("repository");

    let default = env(&[], &[]);
    assert_eq!(
        default["ECOM_ALLOWED_IMAGES"],
        format!("{repository}:*,{repository}@*")
    );
    assert_eq!(default["ECOM_ALLOWED_SECRETS"], "ecom-*");
    let objs = render("ecom-pipeline", "ecom", &[], &[]);
    let own = container(find(&objs, "Deployment", OPERATOR), "operator")["image"]
        .as_str()
        .expect("image")
        .to_string();
    assert!(admitted(&default["ECOM_ALLOWED_IMAGES"], &own), "{own}");
    assert!(admitted(
        &default["ECOM_ALLOWED_IMAGES"],
        &format!("{repository}@sha256:0123")
    ));
    for other in [
        "busybox:latest".to_string(),
        format!("{repository}-evil:1"),
        format!("x/{repository}:1"),
    ] {
        assert!(
            !admitted(&default["ECOM_ALLOWED_IMAGES"], &other),
            "{other}"
        );
    }
    assert!(!admitted(&default["ECOM_ALLOWED_SECRETS"], "db-password"));

    // Another repository: the default follows. Explicit lists are joined as given.
    let moved = env(&[], &["image.repository=mirror.invalid/team/ecom".into()]);
    assert_eq!(
        moved["ECOM_ALLOWED_IMAGES"],
        "mirror.invalid/team/ecom:*,mirror.invalid/team/ecom@*"
    );
    let explicit = env(
        &[],
        &[
            "operator.allowedImages={a/b:*,c@*}".into(),
            "operator.allowedSecrets={kafka-user,tls-*}".into(),
        ],
    );
    assert_eq!(explicit["ECOM_ALLOWED_IMAGES"], "a/b:*,c@*");
    assert_eq!(explicit["ECOM_ALLOWED_SECRETS"], "kafka-user,tls-*");
    // No Secret list: the variable is left out (the operator refuses an empty value).
    let file = values_file("operator:\n  allowedSecrets: []\n");
    let open = env(std::slice::from_ref(&file.1), &[]);
    assert!(!open.contains_key("ECOM_ALLOWED_SECRETS"), "{open:?}");

    // Kind, with the image the quick start and the node install (scripts/lib/quickstart.sh):
    // the examples' image, and the node tests' images and SASL Secret.
    let node = env(
        &kind_values(),
        &["image.repository=ecom".into(), "image.tag=dev".into()],
    );
    for manifest in ["pipeline-batch.yaml", "pipeline-streaming.yaml"] {
        let image = manifest_pipeline(manifest)["spec"]["image"]
            .as_str()
            .expect("image")
            .to_string();
        assert!(admitted(&node["ECOM_ALLOWED_IMAGES"], &image), "{manifest}");
    }
    for image in ["ecom:dev", "ecom:no-such-tag"] {
        assert!(admitted(&node["ECOM_ALLOWED_IMAGES"], image), "{image}");
    }
    for secret in ["ecom-kafka-creds", "ecom-bad-creds"] {
        assert!(admitted(&node["ECOM_ALLOWED_SECRETS"], secret), "{secret}");
    }
    assert!(!admitted(&node["ECOM_ALLOWED_SECRETS"], "kafka-admin"));

    // Production: the external example's image and both its Secrets, nothing else.
    let prod = env(&production_values(), &[]);
    let spec = &manifest_pipeline("pipeline-external.yaml")["spec"];
    let image = spec["image"].as_str().expect("image");
    assert!(admitted(&prod["ECOM_ALLOWED_IMAGES"], image), "{image}");
    let security = &spec["kafka"]["security"];
    for secret in [
        &security["sasl"]["secretName"],
        &security["tls"]["caSecretName"],
    ] {
        let s = secret.as_str().expect("a Secret name");
        assert!(admitted(&prod["ECOM_ALLOWED_SECRETS"], s), "{s}");
    }
    assert!(!admitted(&prod["ECOM_ALLOWED_SECRETS"], "ecom-other"));
}

/// The test's own glob: `*` spans `/` and `:`, everything else is literal and anchored.
#[test]
fn allow_list_glob_matches_whole_names() {
    assert!(glob("ecom:*", "ecom:dev"));
    assert!(glob("a/*", "a/b/c:d"));
    assert!(glob("*", ""));
    assert!(glob("ecom-*-ca", "ecom-kafka-ca"));
    assert!(!glob("ecom-*-ca", "ecom-kafka-cax"));
    assert!(!glob("ecom:*", "xecom:dev"));
    assert!(!glob("ecom", "ecom:dev"));
}
