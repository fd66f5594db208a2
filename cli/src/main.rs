//! `ecom`: the one binary of ecom-pipeline.

mod dashboard_cmd;
mod demo;
mod operator_cmd;
mod progress;
mod purge_cmd;
mod retry;
mod stages;
mod thrift_wire;

#[cfg(test)]
mod golden_args;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use ecom_contract::command::flag;
use ecom_jobs::clean::CleanConfig;
use ecom_jobs::generate::{Dirt, GenerateConfig, Generator, TimestampMode};
use ecom_jobs::rules::{Fix, Rule};

/// One allocator for every command: polars frees and re-allocates large column
/// buffers per block, which jemalloc serves without page faults.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Real-time e-commerce analytics pipeline: generate, clean, load and explore
/// transaction data, on one machine (embedded) or on Kafka, HDFS and HBase.
#[derive(Debug, Parser)]
#[command(name = "ecom", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write deterministic transaction data (TSV with header) with controllable dirt.
    Generate(GenerateArgs),
    /// Clean raw TSV into date-partitioned Parquet runs plus data-quality reports, committed
    /// in a manifest (on HDFS or local files alike).
    Clean(CleanArgs),
    /// Run the whole pipeline on embedded stand-ins and serve the dashboard.
    Demo(demo::DemoArgs),
    /// Serve the analytics dashboard from HBase (or an embedded demo store).
    Dashboard(dashboard_cmd::DashboardArgs),
    /// Delete a pipeline's HDFS paths and HBase tables (the operator's cleanup Job).
    Purge(purge_cmd::PurgeArgs),
    /// Send TSV records (a file or generated rows) to a Kafka topic.
    Produce(stages::ProduceArgs),
    /// Copy a Kafka topic into raw TSV files on HDFS, exactly once.
    Sink(stages::SinkArgs),
    /// Load clean Parquet from HDFS into HBase (fact table and aggregates).
    Load(stages::LoadArgs),
    /// The continuous streaming stage: Kafka to raw files, clean runs and HBase in
    /// micro-batches every few seconds, exactly once.
    Stream(stages::StreamArgs),
    /// Print the CustomResourceDefinition of EcomPipeline (YAML) for `kubectl apply -f -`.
    Crd,
    /// Run the Kubernetes operator: reconcile EcomPipelines into stage Jobs and a dashboard.
    Operator(operator_cmd::OperatorArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Timestamps {
    /// Ascending over about 90 days.
    Spread,
    /// Every row at one instant.
    Constant,
    /// The wall-clock time each row is made (a live feed).
    Now,
}

impl Timestamps {
    /// The generator's mode.
    pub fn mode(self) -> TimestampMode {
        match self {
            Timestamps::Spread => TimestampMode::Spread,
            Timestamps::Constant => TimestampMode::Constant,
            Timestamps::Now => TimestampMode::Now,
        }
    }
}

#[derive(Debug, clap::Args)]
struct GenerateArgs {
    /// Number of data rows (the header line is extra).
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Seed: the same seed and flags always give the same bytes.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Fraction of rows with one kind of dirt, split evenly over the kinds without --rate.
    #[arg(long, default_value_t = 0.05)]
    dirty_rate: f64,
    /// Per-kind dirt fraction, e.g. `--rate invalid_utf8=0.01` (repeatable). Kinds:
    /// missing_field, unparseable_amount, credit_card_typo, debit_card_typo,
    /// nonpositive_amount, unparseable_timestamp, duplicate_order_id, case_variant,
    /// too_few_fields, too_many_fields, invalid_utf8.
    #[arg(long = "rate", value_name = "KIND=FRACTION")]
    rates: Vec<String>,
    /// How timestamps advance from row to row.
    #[arg(long, value_enum, default_value = "spread")]
    timestamps: Timestamps,
    /// Leave out the header line.
    #[arg(long)]
    no_header: bool,
    /// Output file, or `-` for standard output.
    #[arg(long, default_value = "-")]
    out: String,
    /// Also write the ground truth (what cleaning must drop and fix) as JSON to this file.
    #[arg(long)]
    truth: Option<PathBuf>,
    /// Print the ground truth as JSON on standard error.
    #[arg(long)]
    print_truth: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct CleanArgs {
    /// Raw TSV: a directory of files (read in name order; the sink's on HDFS, or local), or
    /// one local file. Only files no committed run has cleaned yet are read.
    #[arg(long = ecom_contract::command::flag::INPUT)]
    input: String,
    /// Clean directory (`hdfs://host:port/path` or local): each run writes
    /// date=YYYY-MM-DD/part-RUN.parquet per date and report-RUN.json, and commits in
    /// OUTPUT/_manifest/ (what `ecom load` reads).
    #[arg(long = ecom_contract::command::flag::OUTPUT)]
    output: String,
    #[command(flatten)]
    rules: RuleArgs,
    #[command(flatten)]
    stage: stages::CleanStageArgs,
}

/// The cleaning rules of `ecom clean`, `ecom stream` and `ecom demo`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct RuleArgs {
    /// Reproduce the seed's Spark step exactly: its null drop and typo fixes only (no
    /// amount range, no allow-lists), and its output schema: ids and `timestamp` as text
    /// (without it, ids are integers and `timestamp` a Parquet timestamp).
    #[arg(long)]
    pub seed_compat: bool,
    /// Switch a drop rule off (repeatable): invalid_utf8, too_few_fields,
    /// too_many_fields, missing_field, unparseable_amount, unparseable_id,
    /// nonpositive_amount, amount_out_of_range, unparseable_timestamp, unknown_category,
    /// unknown_payment_method, unknown_status, duplicate_order_id.
    #[arg(long = "disable-rule", value_name = "RULE")]
    pub disable_rules: Vec<String>,
    /// Switch a fix off (repeatable): credit_card_typo, debit_card_typo, normalized_value.
    #[arg(long = "disable-fix", value_name = "FIX")]
    pub disable_fixes: Vec<String>,
    /// Drop rows whose amount is beyond this, either sign (rule amount_out_of_range): a
    /// plain decimal, at most 1000000000. The default keeps every sum of cents exact.
    #[arg(
        long = flag::MAX_AMOUNT,
        value_name = "AMOUNT",
        default_value = "1000000",
        value_parser = parse_max_amount
    )]
    pub max_amount: i64,
    /// The categories a row may have, comma-separated (rule unknown_category; case and
    /// whitespace variants are normalised to them). Default: the seed's seven.
    #[arg(long = flag::CATEGORIES, value_name = "LIST", value_delimiter = ',')]
    pub categories: Option<Vec<String>>,
    /// The payment methods a row may have once the typo fixes ran, comma-separated (rule
    /// unknown_payment_method). Default: Credit Card, Debit Card, PayPal, Cash.
    #[arg(long = flag::PAYMENT_METHODS, value_name = "LIST", value_delimiter = ',')]
    pub payment_methods: Option<Vec<String>>,
    /// The statuses a row may have, comma-separated (rule unknown_status). Default:
    /// Pending, Shipped, Delivered, Cancelled.
    #[arg(long = flag::STATUSES, value_name = "LIST", value_delimiter = ',')]
    pub statuses: Option<Vec<String>>,
}

/// `--max-amount` in cents.
fn parse_max_amount(text: &str) -> std::result::Result<i64, String> {
    ecom_jobs::rules::parse_max_amount(text)
}

impl RuleArgs {
    /// The cleaner's configuration.
    pub fn config(&self) -> Result<CleanConfig> {
        let disabled_rules = self
            .disable_rules
            .iter()
            .map(|r| {
                Rule::from_name(r).with_context(|| format!("--disable-rule: unknown rule {r:?}"))
            })
            .collect::<Result<BTreeSet<_>>>()?;
        let disabled_fixes = self
            .disable_fixes
            .iter()
            .map(|f| Fix::from_name(f).with_context(|| format!("--disable-fix: unknown fix {f:?}")))
            .collect::<Result<BTreeSet<_>>>()?;
        let defaults = CleanConfig::default();
        Ok(CleanConfig {
            seed_compat: self.seed_compat,
            disabled_rules,
            disabled_fixes,
            max_amount_cents: self.max_amount,
            categories: allow_list(flag::CATEGORIES, &self.categories, defaults.categories)?,
            payment_methods: allow_list(
                flag::PAYMENT_METHODS,
                &self.payment_methods,
                defaults.payment_methods,
            )?,
            statuses: allow_list(flag::STATUSES, &self.statuses, defaults.statuses)?,
        })
    }
}

/// An allow-list flag's values (`default` when absent); an empty value is refused.
fn allow_list(
    name: &str,
    given: &Option<Vec<String>>,
    default: Vec<String>,
) -> Result<Vec<String>> {
    let Some(values) = given else {
        return Ok(default);
    };
    if values.iter().any(String::is_empty) {
        return Err(retry::Permanent(format!(
            "--{name} {:?}: an empty value (to accept any value, switch the rule off with \
             --disable-rule)",
            values.join(",")
        ))
        .into());
    }
    Ok(values.clone())
}

fn main() -> std::process::ExitCode {
    // Colour codes only for a terminal: not in files, pipes, `kubectl logs` or the
    // termination message the kubelet takes from a failed pod's log.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Generate(args) => generate(args),
        Command::Clean(args) => clean(args),
        Command::Demo(args) => demo::run(args),
        Command::Dashboard(args) => dashboard_cmd::run(args),
        Command::Purge(args) => purge_cmd::run(args),
        Command::Produce(args) => stages::produce(args),
        Command::Sink(args) => stages::sink(args),
        Command::Load(args) => stages::load(args),
        Command::Stream(args) => stages::stream(args),
        Command::Crd => print_crd(),
        Command::Operator(args) => operator_cmd::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", retry::message(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

fn parse_rates(rates: &[String]) -> Result<BTreeMap<Dirt, f64>> {
    rates
        .iter()
        .map(|r| {
            let (kind, value) = r
                .split_once('=')
                .with_context(|| format!("--rate {r}: expected KIND=FRACTION"))?;
            let dirt = Dirt::from_name(kind)
                .with_context(|| format!("--rate {r}: unknown dirt kind {kind:?}"))?;
            let value: f64 = value
                .parse()
                .with_context(|| format!("--rate {r}: {value:?} is not a number"))?;
            Ok((dirt, value))
        })
        .collect()
}

fn generate(args: GenerateArgs) -> Result<()> {
    let cfg = GenerateConfig {
        rows: args.rows,
        seed: args.seed,
        dirty_rate: args.dirty_rate,
        kind_rates: parse_rates(&args.rates)?,
        timestamps: args.timestamps.mode(),
        header: !args.no_header,
    };
    let generator = Generator::new(cfg)?;
    let truth = if args.out == "-" {
        let stdout = std::io::stdout();
        let mut w = BufWriter::with_capacity(1 << 20, stdout.lock());
        generator.write_all(&mut w, "standard output")?
    } else {
        let path = Path::new(&args.out);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent)
                .with_context(|| format!("creating directory {}", parent.display()))?;
        }
        let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        generator.write_all(&mut w, &args.out)?
    };
    let json = serde_json::to_string_pretty(&truth)?;
    if let Some(path) = args.truth {
        fs::write(&path, &json).with_context(|| format!("writing {}", path.display()))?;
    }
    if args.print_truth {
        eprintln!("{json}");
    }
    Ok(())
}

fn clean(args: CleanArgs) -> Result<()> {
    let cfg = args.rules.config()?;
    stages::clean_stage(&args.input, &args.output, cfg, &args.stage)
}

fn print_crd() -> Result<()> {
    let yaml = ecom_operator::crd_yaml().context("serializing the EcomPipeline CRD")?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(yaml.as_bytes())?;
    Ok(())
}
