//! `ecom dashboard`: serves the dashboard from HBase (through its Thrift
//! server) or from an embedded store written by `ecom demo`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ecom_contract::command::flag;
use ecom_contract::env;
use ecom_dashboard::fact::FactTable;
use ecom_dashboard::{cache, server, AppState, LagProbe, Limits};
use ecom_jobs::load::LoadConfig;
use ecom_jobs::runtime::parse_duration;
use ecom_jobs::store::hbase::{HbaseConfig, HbaseTables};
use ecom_jobs::store::kafka::{KafkaConfig, KafkaLog};
use ecom_jobs::store::{EmbeddedTables, MessageLog, Table, TableStore};

use crate::thrift_wire::ThriftWire;

/// Flags of `ecom dashboard`.
#[derive(Debug, clap::Args)]
pub struct DashboardArgs {
    /// HBase Thrift server `host:port` to read the aggregates from (`--store` wins).
    #[arg(long, env = env::HBASE_THRIFT)]
    hbase_thrift: Option<String>,
    #[command(flatten)]
    thrift_wire: ThriftWire,
    /// Embedded store file (`DATA_DIR/store.redb` of `ecom demo`, or what `ecom load --store`
    /// wrote) instead of HBase.
    #[arg(long)]
    store: Option<PathBuf>,
    /// Fact table whose aggregates (`<table>_agg`) are shown.
    #[arg(long = flag::TABLE, env = env::TABLE, default_value = "ecommerce")]
    table: String,
    /// Address to listen on (0.0.0.0 inside a container).
    #[arg(long = flag::HOST, env = env::DASHBOARD_HOST, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Port to listen on (0: any free port).
    #[arg(long = flag::PORT, env = env::DASHBOARD_PORT, default_value_t = 8080)]
    port: u16,
    /// Kafka bootstrap servers: the health panel then shows produced records
    /// and the consumer lag (records in the topic not yet read by cleaning).
    #[arg(long, requires = "topic")]
    kafka_bootstrap: Option<String>,
    /// Topic of the transactions (with `--kafka-bootstrap`).
    #[arg(long)]
    topic: Option<String>,
    /// How often the aggregates table is polled for new files, milliseconds.
    #[arg(long, default_value_t = 1000)]
    poll_ms: u64,
    /// Also serve `/api/scan-baseline/categories`, which scans the whole fact
    /// table per request (benchmark reference only).
    #[arg(long, hide = true)]
    scan_baseline: bool,
    /// Answers cached per query and data version (0: none, every request
    /// computed; benchmarks).
    #[arg(long, default_value_t = cache::DEFAULT_CACHE_ENTRIES)]
    cache_entries: usize,
    /// Memory the answer cache may hold, MiB (least recently used answers are
    /// evicted past it; 0: no cache).
    #[arg(long, default_value_t = cache::DEFAULT_CACHE_BYTES >> 20)]
    cache_mib: usize,
    /// Connections served at once; past it a new connection is answered 503 and closed.
    #[arg(long, default_value_t = server::DEFAULT_MAX_CONNECTIONS, value_parser = positive_count)]
    max_connections: usize,
    /// Live-update streams (`/api/events`) open at once; past it, 503 (0: none).
    #[arg(long, default_value_t = server::DEFAULT_MAX_SSE_CLIENTS)]
    max_sse_clients: usize,
    /// Time a client has to send a whole request head, counted from when the
    /// connection is ready for a request (also closes idle keep-alive connections).
    #[arg(long, default_value = "10s", value_parser = positive_duration)]
    header_read_timeout: Duration,
    /// A connection on which no byte moves either way for this long is closed.
    #[arg(long, default_value = "60s", value_parser = positive_duration)]
    idle_timeout: Duration,
    /// Time to produce an answer (an export's or event stream's body is not
    /// limited); past it, 503.
    #[arg(long, default_value = "30s", value_parser = positive_duration)]
    request_timeout: Duration,
    /// Answers (and export batches) computed at once; more wait their turn
    /// within the request timeout (default: four per core).
    #[arg(long, value_parser = positive_count)]
    max_computations: Option<usize>,
}

/// A duration flag that must not be zero.
fn positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s).map_err(|e| e.to_string())? {
        d if d.is_zero() => Err(format!("{s:?}: must be longer than zero")),
        d => Ok(d),
    }
}

/// A count flag that must be at least 1.
fn positive_count(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{s:?}: {e}")),
    }
}

impl DashboardArgs {
    /// The server limits the flags give.
    fn limits(&self) -> Limits {
        Limits {
            max_connections: self.max_connections,
            max_sse_clients: self.max_sse_clients,
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
            request_timeout: self.request_timeout,
            max_computations: self
                .max_computations
                .unwrap_or_else(server::default_max_computations),
        }
    }
}

/// The aggregates table and the fact table (opened when it is there).
type Tables = (Arc<dyn Table>, FactTable);

/// Opens the aggregates and fact tables.
fn open_tables(args: &DashboardArgs) -> Result<Tables> {
    let agg = LoadConfig {
        table: args.table.clone(),
        ..Default::default()
    }
    .agg_table();
    // --store wins over an HBASE_THRIFT left in the environment.
    let store: Arc<dyn TableStore> = match (&args.store, &args.hbase_thrift) {
        (Some(path), _) => Arc::new(
            EmbeddedTables::open(path).with_context(|| format!("opening {}", path.display()))?,
        ),
        (None, Some(addr)) => Arc::new(HbaseTables::new(
            args.thrift_wire.apply(HbaseConfig::new(addr.clone())),
        )),
        (None, None) => bail!("give --hbase-thrift HOST:PORT (or HBASE_THRIFT) or --store FILE"),
    };
    let where_ = args
        .store
        .as_ref()
        .map(|p| p.display().to_string())
        .or_else(|| args.hbase_thrift.clone())
        .unwrap_or_default();
    let aggregates = store
        .table(&agg)
        .with_context(|| format!("opening table {agg} in {where_}"))?;
    let fact = match store.table(&args.table) {
        Ok(t) => FactTable::ready(t),
        Err(e) => {
            tracing::warn!(
                table = %args.table,
                error = %e,
                "no fact table yet: the drill-down comes on when it is there"
            );
            let table = args.table.clone();
            FactTable::lazy(Arc::new(move || {
                store.table(&table).map_err(|e| e.to_string())
            }))
        }
    };
    Ok((aggregates, fact))
}

/// A probe of produced records and lag from the topic's end offsets.
fn lag_probe(bootstrap: &str, topic: &str) -> Result<LagProbe> {
    let log = KafkaLog::open(KafkaConfig {
        timeout: Duration::from_secs(5),
        ..KafkaConfig::new(bootstrap, topic)
    })
    .with_context(|| format!("opening topic {topic} on {bootstrap}"))?;
    let log = Mutex::new(log);
    Ok(Arc::new(move |cleaned: u64| {
        let log = log.lock().ok()?;
        let mut produced = 0;
        for p in 0..log.partitions() {
            match log.end_offset(p) {
                Ok(end) => produced += end,
                Err(e) => {
                    tracing::warn!(error = %e, "consumer lag unavailable");
                    return None;
                }
            }
        }
        Some((produced, produced.saturating_sub(cleaned)))
    }))
}

/// Serves until Ctrl-C or SIGTERM.
pub fn run(args: DashboardArgs) -> Result<()> {
    let (aggregates, fact) = open_tables(&args)?;
    let mut state = AppState::load(aggregates, fact)
        .context("reading the aggregates")?
        .with_cache(args.cache_entries, args.cache_mib.saturating_mul(1 << 20));
    state.scan_baseline = args.scan_baseline;
    state.limits = args.limits();
    state.poll = Duration::from_millis(args.poll_ms.max(50));
    if let (Some(bootstrap), Some(topic)) = (&args.kafka_bootstrap, &args.topic) {
        state.lag = Some(lag_probe(bootstrap, topic)?);
    }
    let addr = SocketAddr::new(args.host, args.port);
    let table = args.table.clone();
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(ecom_dashboard::serve(
        addr,
        state,
        |bound| {
            tracing::info!(%bound, %table, "dashboard listening");
            // Tests and scripts read the address from standard error.
            eprintln!("dashboard: http://{bound}/");
        },
        ecom_jobs::runtime::signal::shutdown(),
    ))?;
    Ok(())
}
