//! The `--hbase-transport` and `--hbase-protocol` flags every command that talks to the
//! HBase Thrift server shares; their values are [`ecom_contract::wire`]'s, the same the CRD
//! and the operator use.

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::Args;
use ecom_contract::env;
use ecom_contract::wire::{ThriftProtocol, ThriftTransport};
use ecom_jobs::store::hbase::HbaseConfig;

/// How to speak to the HBase Thrift server; both must match the server's
/// settings, which it does not announce.
#[derive(Debug, Clone, Args)]
pub struct ThriftWire {
    /// Transport of the HBase Thrift server: buffered (the server's default), or framed for a
    /// server started with -f/--framed (which its -hsha, -nonblocking and -threadedselector
    /// modes require).
    #[arg(
        long = "hbase-transport",
        env = env::HBASE_THRIFT_TRANSPORT,
        default_value = "buffered",
        value_parser = PossibleValuesParser::new(ThriftTransport::NAMES)
            .try_map(|s| s.parse::<ThriftTransport>())
    )]
    pub transport: ThriftTransport,
    /// Protocol of the HBase Thrift server: binary (the server's default), or compact for a
    /// server started with -c/--compact.
    #[arg(
        long = "hbase-protocol",
        env = env::HBASE_THRIFT_PROTOCOL,
        default_value = "binary",
        value_parser = PossibleValuesParser::new(ThriftProtocol::NAMES)
            .try_map(|s| s.parse::<ThriftProtocol>())
    )]
    pub protocol: ThriftProtocol,
}

impl ThriftWire {
    /// `cfg` speaking this transport and protocol.
    pub fn apply(&self, cfg: HbaseConfig) -> HbaseConfig {
        cfg.with_wire(self.transport, self.protocol)
    }
}
