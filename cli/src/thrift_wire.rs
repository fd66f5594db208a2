//! The `--hbase-transport` and `--hbase-protocol` flags every command that
//! talks to the HBase Thrift server shares.

use clap::{Args, ValueEnum};
use ecom_jobs::store::hbase::{HbaseConfig, ThriftProtocol, ThriftTransport};

/// Transport of the Thrift server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    /// A plain byte stream: the server's default.
    Buffered,
    /// Length-prefixed messages: a server started with -f/--framed (which its
    /// -hsha, -nonblocking and -threadedselector modes require).
    Framed,
}

/// Protocol of the Thrift server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    /// The server's default.
    Binary,
    /// A server started with -c/--compact.
    Compact,
}

/// How to speak to the HBase Thrift server; both must match the server's
/// settings, which it does not announce.
#[derive(Debug, Clone, Args)]
pub struct ThriftWire {
    /// Transport of the HBase Thrift server.
    #[arg(
        long = "hbase-transport",
        env = "HBASE_THRIFT_TRANSPORT",
        value_enum,
        default_value_t = Transport::Buffered
    )]
    pub transport: Transport,
    /// Protocol of the HBase Thrift server.
    #[arg(
        long = "hbase-protocol",
        env = "HBASE_THRIFT_PROTOCOL",
        value_enum,
        default_value_t = Protocol::Binary
    )]
    pub protocol: Protocol,
}

impl ThriftWire {
    /// `cfg` speaking this transport and protocol.
    pub fn apply(&self, cfg: HbaseConfig) -> HbaseConfig {
        let transport = match self.transport {
            Transport::Buffered => ThriftTransport::Buffered,
            Transport::Framed => ThriftTransport::Framed,
        };
        let protocol = match self.protocol {
            Protocol::Binary => ThriftProtocol::Binary,
            Protocol::Compact => ThriftProtocol::Compact,
        };
        cfg.with_wire(transport, protocol)
    }
}
