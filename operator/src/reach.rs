//! Reachability of a pipeline's services, for the status of stages that are running but may
//! be waiting on them: the stages themselves retry within their deadline, and this says what
//! they wait for ("waiting for Kafka at ecom-kafka:9092: connection refused").
//!
//! [`endpoints`] is pure; [`Prober`] resolves and connects (TCP only: a port that accepts is
//! reachable, whatever the service then answers). Short host names are qualified with the
//! pipeline's namespace (`ecom-kafka` → `ecom-kafka.<ns>.svc`), since the stage pods resolve
//! them there and the operator may run in another namespace.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use tokio::net::{lookup_host, TcpStream};

use crate::meta::Stage;
use crate::validate::Pipeline;

/// How long one resolve or one connect may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A service a stage talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    /// A Kafka bootstrap server.
    Kafka,
    /// The HDFS NameNode.
    Hdfs,
    /// The HBase Thrift server.
    HbaseThrift,
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Service::Kafka => "Kafka",
            Service::Hdfs => "the HDFS NameNode",
            Service::HbaseThrift => "the HBase Thrift server",
        })
    }
}

/// One address of a service, as the spec names it and as the operator dials it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// Which service.
    pub service: Service,
    /// `host:port` as written in the spec.
    pub address: String,
    /// Host to resolve: short names qualified with the pipeline's namespace.
    pub host: String,
    /// Port.
    pub port: u16,
}

/// `host:port` split, with `None` when the port is missing or not a number.
fn split_host_port(address: &str) -> Option<(&str, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then_some(())?;
    Some((host, port.parse().ok()?))
}

/// `host` as a pod of namespace `ns` resolves it: a name without a dot other than
/// `localhost` is a Service of that namespace.
fn qualify(host: &str, ns: &str) -> String {
    if host.contains('.') || host.contains(':') || host == "localhost" || ns.is_empty() {
        host.to_string()
    } else {
        format!("{host}.{ns}.svc")
    }
}

fn endpoint(service: Service, address: &str, ns: &str) -> Option<Endpoint> {
    let (host, port) = split_host_port(address)?;
    Some(Endpoint {
        service,
        address: address.to_string(),
        host: qualify(host, ns),
        port,
    })
}

/// The services `stage` of `p` needs, in the order it meets them. An HDFS URL without a
/// port (an HA nameservice, resolved through client configuration) is not probed.
pub fn endpoints(p: &Pipeline, stage: Stage) -> Vec<Endpoint> {
    let spec = &p.spec;
    let ns = p.owner.namespace.as_str();
    let kafka = || {
        spec.kafka
            .bootstrap
            .split(',')
            .filter_map(|a| endpoint(Service::Kafka, a.trim(), ns))
            .collect::<Vec<_>>()
    };
    let hdfs = || {
        let authority = spec.hdfs.url.strip_prefix("hdfs://").unwrap_or_default();
        endpoint(Service::Hdfs, authority, ns).into_iter()
    };
    let thrift = || endpoint(Service::HbaseThrift, &p.thrift, ns).into_iter();
    match stage {
        Stage::Produce => kafka(),
        Stage::Sink => kafka().into_iter().chain(hdfs()).collect(),
        Stage::Clean => hdfs().collect(),
        Stage::Load => hdfs().chain(thrift()).collect(),
        // Kafka is where a stream pod starts; every micro-batch then writes HDFS and HBase.
        Stage::Stream => kafka().into_iter().chain(hdfs()).chain(thrift()).collect(),
    }
}

/// Why `endpoint` could not be reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unreachable {
    /// The host name did not resolve.
    #[error("{service} at {address}: {host} does not resolve ({reason})")]
    Resolve {
        service: Service,
        address: String,
        host: String,
        reason: String,
    },
    /// No resolved address accepted a connection.
    #[error("{service} at {address}: {reason}")]
    Connect {
        service: Service,
        address: String,
        reason: String,
    },
}

/// How a probe failed, before it is named after its endpoint.
#[derive(Debug, Clone)]
enum Failure {
    Resolve(String),
    Connect(String),
}

/// Probes endpoints, each at most once per [`Prober`] (one reconcile).
#[derive(Default)]
pub struct Prober {
    seen: HashMap<(String, u16), Result<(), Failure>>,
}

impl Prober {
    /// The first of `endpoints` that cannot be reached, if any.
    pub async fn first_unreachable(&mut self, endpoints: &[Endpoint]) -> Option<Unreachable> {
        for e in endpoints {
            if let Err(u) = self.probe(e).await {
                return Some(u);
            }
        }
        None
    }

    async fn probe(&mut self, e: &Endpoint) -> Result<(), Unreachable> {
        let key = (e.host.clone(), e.port);
        let result = match self.seen.get(&key) {
            Some(r) => r.clone(),
            None => {
                let r = connect(&e.host, e.port).await;
                self.seen.insert(key, r.clone());
                r
            }
        };
        result.map_err(|failure| match failure {
            Failure::Resolve(reason) => Unreachable::Resolve {
                service: e.service,
                address: e.address.clone(),
                host: e.host.clone(),
                reason,
            },
            Failure::Connect(reason) => Unreachable::Connect {
                service: e.service,
                address: e.address.clone(),
                reason,
            },
        })
    }
}

async fn connect(host: &str, port: u16) -> Result<(), Failure> {
    let addrs = match tokio::time::timeout(PROBE_TIMEOUT, lookup_host((host, port))).await {
        Ok(Ok(a)) => a.collect::<Vec<_>>(),
        Ok(Err(e)) => return Err(Failure::Resolve(e.to_string())),
        Err(_) => return Err(Failure::Resolve(format!("no answer in {PROBE_TIMEOUT:?}"))),
    };
    let mut last = Failure::Resolve("no address".to_string());
    for addr in addrs {
        match tokio::time::timeout(PROBE_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => last = Failure::Connect(format!("{addr}: {e}")),
            Err(_) => last = Failure::Connect(format!("{addr}: no answer in {PROBE_TIMEOUT:?}")),
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::example;

    #[test]
    fn short_names_are_qualified_with_the_pipeline_namespace() {
        assert_eq!(qualify("ecom-kafka", "shop"), "ecom-kafka.shop.svc");
        assert_eq!(qualify("kafka.data.svc", "shop"), "kafka.data.svc");
        assert_eq!(qualify("localhost", "shop"), "localhost");
        assert_eq!(qualify("10.0.0.7", "shop"), "10.0.0.7");
        assert_eq!(qualify("::1", "shop"), "::1");
    }

    #[test]
    fn host_port_needs_both() {
        assert_eq!(split_host_port("a:9092"), Some(("a", 9092)));
        assert_eq!(split_host_port("[::1]:9092"), Some(("::1", 9092)));
        assert_eq!(split_host_port("mycluster"), None);
        assert_eq!(split_host_port(":9092"), None);
        assert_eq!(split_host_port("a:x"), None);
    }

    #[test]
    fn each_stage_probes_what_it_talks_to() {
        let p = crate::validate::validate(&example()).expect("valid example");
        let services = |s| {
            endpoints(&p, s)
                .into_iter()
                .map(|e| e.service)
                .collect::<Vec<_>>()
        };
        assert_eq!(services(Stage::Produce), vec![Service::Kafka]);
        assert_eq!(services(Stage::Sink), vec![Service::Kafka, Service::Hdfs]);
        assert_eq!(services(Stage::Clean), vec![Service::Hdfs]);
        assert_eq!(
            services(Stage::Load),
            vec![Service::Hdfs, Service::HbaseThrift]
        );
        assert_eq!(
            services(Stage::Stream),
            vec![Service::Kafka, Service::Hdfs, Service::HbaseThrift]
        );
    }

    #[tokio::test]
    async fn a_closed_port_is_named_and_an_open_one_passes() {
        // A port that was just free: nothing listens on it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let closed = Endpoint {
            service: Service::Kafka,
            address: format!("127.0.0.1:{port}"),
            host: "127.0.0.1".into(),
            port,
        };
        let mut prober = Prober::default();
        let u = prober
            .first_unreachable(std::slice::from_ref(&closed))
            .await;
        let text = u.expect("closed port").to_string();
        assert!(
            text.starts_with(&format!("Kafka at 127.0.0.1:{port}: ")),
            "{text}"
        );

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let open = Endpoint {
            port: listener.local_addr().expect("addr").port(),
            ..closed
        };
        assert_eq!(Prober::default().first_unreachable(&[open]).await, None);
    }
}
