//! `ecom operator`: runs the Kubernetes operator (see the `ecom-operator` crate).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use ecom_operator::admit::AllowList;

/// Flags of `ecom operator`.
#[derive(Debug, clap::Args)]
pub struct OperatorArgs {
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "ECOM_OPERATOR_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// Name of the coordination.k8s.io Lease used for leader election.
    #[arg(long, default_value = "ecom-operator")]
    lease_name: String,
    /// Namespace of the Lease (the operator's own namespace in a cluster).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// Identity of this replica in the Lease (default: host name and process id).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Seconds a Lease stays valid without renewal; a standby takes over after that.
    #[arg(long, default_value_t = 15)]
    lease_duration: u64,
    /// Seconds between renewals of the Lease by the leader.
    #[arg(long, default_value_t = 5)]
    renew_every: u64,
    /// EcomPipelines reconciled at once.
    #[arg(long, default_value_t = 4)]
    concurrency: u16,
    /// Probe the Kafka, HDFS and HBase addresses of running stages, and say in their status
    /// which one they wait for. On by default inside a cluster (KUBERNETES_SERVICE_HOST set),
    /// where the operator resolves Service names as the stage pods do.
    #[arg(long, env = "ECOM_PROBE_SERVICES")]
    probe_services: Option<bool>,
    /// Images pipelines may run: comma-separated patterns, `*` matching any run of
    /// characters (e.g. `registry.example/ecom/ecom:*`). Absent: any image (a warning).
    #[arg(long, env = "ECOM_ALLOWED_IMAGES")]
    allowed_images: Option<String>,
    /// Secrets pipelines may read (Kafka SASL credentials, the Kafka CA), by name:
    /// comma-separated patterns as for --allowed-images. Absent: any Secret of the
    /// pipeline's namespace (a warning).
    #[arg(long, env = "ECOM_ALLOWED_SECRETS")]
    allowed_secrets: Option<String>,
}

fn default_identity() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "ecom-operator".to_string());
    format!("{host}-{}", std::process::id())
}

/// Runs the operator until SIGTERM or Ctrl-C.
pub fn run(args: OperatorArgs) -> Result<()> {
    let policy = ecom_operator::admit::Policy {
        images: AllowList::parse("--allowed-images", args.allowed_images.as_deref())?,
        secrets: AllowList::parse("--allowed-secrets", args.allowed_secrets.as_deref())?,
    };
    if policy.images.is_open() {
        tracing::warn!("no --allowed-images: every EcomPipeline may run any image");
    }
    if policy.secrets.is_open() {
        tracing::warn!(
            "no --allowed-secrets: every EcomPipeline may read any Secret of its namespace"
        );
    }
    let cfg = ecom_operator::Config {
        listen: args.listen,
        namespace: args.namespace,
        lease: ecom_operator::LeaseConfig {
            name: args.lease_name,
            namespace: args.lease_namespace,
            identity: args.identity.unwrap_or_else(default_identity),
            duration: Duration::from_secs(args.lease_duration.max(2)),
            renew_every: Duration::from_secs(args.renew_every.max(1)),
        },
        concurrency: args.concurrency.max(1),
        probe_services: args
            .probe_services
            .unwrap_or_else(|| std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()),
        policy,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(ecom_operator::run(cfg))
        .context("the operator stopped")
}
