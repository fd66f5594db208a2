//! `ecom dashboard`: serves the dashboard from HBase (through its Thrift
//! server) or from an embedded store written by `ecom demo`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use ecom_dashboard::AppState;
use ecom_jobs::load::LoadConfig;
use ecom_jobs::store::hbase::{HbaseConfig, HbaseTables};
use ecom_jobs::store::{EmbeddedTables, TableStore};

/// Flags of `ecom dashboard`.
#[derive(Debug, clap::Args)]
pub struct DashboardArgs {
    /// HBase Thrift server `host:port` to read the aggregates from.
    #[arg(long, env = "HBASE_THRIFT", conflicts_with = "store")]
    hbase_thrift: Option<String>,
    /// Embedded store file (`DATA_DIR/store.redb` of `ecom demo`) instead of HBase.
    #[arg(long)]
    store: Option<PathBuf>,
    /// Fact table whose aggregates (`<table>_agg`) are shown.
    #[arg(long, env = "ECOM_TABLE", default_value = "ecommerce")]
    table: String,
    /// Address to listen on (0.0.0.0 inside a container).
    #[arg(long, env = "ECOM_DASHBOARD_HOST", default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Port to listen on.
    #[arg(long, env = "ECOM_DASHBOARD_PORT", default_value_t = 8080)]
    port: u16,
}

/// Serves until Ctrl-C or SIGTERM.
pub fn run(args: DashboardArgs) -> Result<()> {
    let agg = LoadConfig {
        table: args.table.clone(),
        ..Default::default()
    }
    .agg_table();
    let aggregates = match (&args.hbase_thrift, &args.store) {
        (Some(addr), _) => {
            let tables = HbaseTables::new(HbaseConfig::new(addr.clone()));
            tables
                .table(&agg)
                .with_context(|| format!("opening table {agg} on HBase Thrift server {addr}"))?
        }
        (None, Some(path)) => EmbeddedTables::open(path)
            .and_then(|t| t.table(&agg))
            .with_context(|| format!("opening table {agg} in {}", path.display()))?,
        (None, None) => bail!("give --hbase-thrift HOST:PORT (or HBASE_THRIFT) or --store FILE"),
    };
    let addr = SocketAddr::new(args.host, args.port);
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(ecom_dashboard::serve(
        addr,
        AppState { aggregates },
        |bound| tracing::info!(%bound, table = %agg, "dashboard listening"),
        crate::demo::shutdown_signal(),
    ))?;
    Ok(())
}
