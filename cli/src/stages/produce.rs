//! `ecom produce`: TSV records (a file or generated rows) into a Kafka topic.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use ecom_contract::command::flag;
use ecom_contract::env;
use ecom_contract::summary::{ProduceDetail, StageName};
use ecom_jobs::generate::{GenerateConfig, Generator};
use ecom_jobs::produce::{produce_paced, Pacing};
use ecom_jobs::runtime::{Retry, StageOptions, Ticker};
use ecom_jobs::store::kafka::KafkaLog;
use ecom_jobs::store::MessageLog;

use super::{kafka_config, per_second, run_stage, StageCommon};
use crate::progress::{bytes_bar, rows_bar};

/// Flags of `ecom produce`.
#[derive(Debug, clap::Args)]
pub struct ProduceArgs {
    /// TSV file to send (the Kaggle file or `ecom generate` output; `-` for
    /// standard input). Header and blank lines are skipped.
    #[arg(
        long = flag::INPUT,
        conflicts_with = "generate_rows",
        required_unless_present = "generate_rows"
    )]
    input: Option<String>,
    /// Generate this many rows on the fly instead of reading a file.
    #[arg(long = flag::GENERATE_ROWS)]
    generate_rows: Option<u64>,
    /// Seed of generated rows.
    #[arg(long = flag::SEED, default_value_t = 42)]
    seed: u64,
    /// Dirty fraction of generated rows.
    #[arg(long = flag::DIRTY_RATE, default_value_t = 0.05)]
    dirty_rate: f64,
    /// Timestamps of generated rows: spread over 90 days, constant, or `now` (the time each
    /// row is sent: a live feed).
    #[arg(long, value_enum, default_value = "spread", requires = "generate_rows")]
    timestamps: crate::Timestamps,
    /// Write the generator's ground truth (JSON) here.
    #[arg(long)]
    truth: Option<PathBuf>,
    /// Kafka topic (created if missing).
    #[arg(long = flag::TOPIC, env = env::TOPIC)]
    topic: String,
    /// Kafka bootstrap servers.
    #[arg(long, env = env::KAFKA_BOOTSTRAP)]
    kafka_bootstrap: String,
    /// Partitions of the topic when it is created.
    #[arg(long = flag::PARTITIONS, default_value_t = 3)]
    partitions: u32,
    /// Replication factor of the topic when it is created.
    #[arg(long = flag::REPLICATION, default_value_t = 1)]
    replication: u32,
    /// Producer `linger.ms`: how long librdkafka waits to fill a batch.
    #[arg(long, default_value_t = 20)]
    linger_ms: u32,
    /// Producer `batch.size` in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    batch_bytes: u32,
    /// Producer compression: none, gzip, snappy, lz4, zstd.
    #[arg(long, default_value = "lz4")]
    compression: String,
    /// Send at most this many records per second.
    #[arg(long = flag::RATE, conflicts_with = "replay")]
    rate: Option<f64>,
    /// Replay the records' timestamps, SPEED times faster than real time.
    #[arg(long, value_name = "SPEED")]
    replay: Option<f64>,
    /// Extra librdkafka property KEY=VALUE (repeatable), e.g. security.protocol=SASL_PLAINTEXT.
    /// A record (key and line) over message.max.bytes (default 1000000) less 36 bytes of
    /// framing is skipped and counted (`oversize_records`), not sent; keep that setting at
    /// most the topic's max.message.bytes.
    ///
    /// Secrets are refused here (the command line is visible in the process list) and read
    /// from the environment instead: KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD set
    /// sasl.username and sasl.password; ECOM_KAFKA_PROPERTY_<NAME> sets any property <name>
    /// (upper case, `_` for `.`; e.g. ECOM_KAFKA_PROPERTY_SSL_KEY_PASSWORD). The environment
    /// wins over this flag. The operator passes Secrets this way (secretKeyRef).
    #[arg(long = flag::KAFKA_PROPERTY, value_name = "KEY=VALUE")]
    kafka_properties: Vec<String>,
    #[command(flatten)]
    common: StageCommon,
}

/// Generated rows as a byte stream.
struct GenReader {
    generator: Generator,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for GenReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.buf.len() {
            self.buf.clear();
            self.pos = 0;
            while self.buf.len() < 1 << 16 && self.generator.next_line(&mut self.buf) {}
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Progress of `ecom produce`, passed on every [`Pending::EVERY`] lines: reading the
/// clock for the bar and the ticker on every line cost more than parsing it.
#[derive(Default)]
struct Pending {
    lines: u64,
    bytes: u64,
}

impl Pending {
    const EVERY: u64 = 4096;

    /// Counts a line of `n` bytes; every [`Self::EVERY`] lines, returns and resets the count.
    fn add(&mut self, n: u64) -> Option<(u64, u64)> {
        self.lines += 1;
        self.bytes += n;
        (self.lines >= Self::EVERY).then(|| {
            let done = std::mem::take(self);
            (done.lines, done.bytes)
        })
    }
}

/// `ecom produce`.
pub fn produce(args: ProduceArgs) -> Result<()> {
    // Not retried as a whole: a second attempt would send records twice. The
    // idempotent producer retries inside librdkafka until the call timeout.
    let opts = StageOptions {
        retry: Retry::Never,
        ..args.common.options(StageName::Produce)
    };
    run_stage(&opts, |clock, _| {
        let mut cfg = kafka_config(
            &args.kafka_bootstrap,
            &args.topic,
            &args.kafka_properties,
            clock.call(args.common.call_timeout),
        )?;
        cfg.partitions = args.partitions;
        cfg.replication = args.replication;
        cfg.linger_ms = args.linger_ms;
        cfg.batch_bytes = args.batch_bytes;
        cfg.compression = args.compression.clone();
        let mut log = KafkaLog::open_or_create(cfg)?;
        let pacing = Pacing {
            rate: args.rate,
            replay: args.replay,
        };
        let mut ticker = Ticker::new("produce");
        let started = Instant::now();
        let (summary, name) = if let Some(rows) = args.generate_rows {
            let generator = Generator::new(GenerateConfig {
                rows,
                seed: args.seed,
                dirty_rate: args.dirty_rate,
                timestamps: args.timestamps.mode(),
                ..Default::default()
            })?;
            let mut reader = BufReader::with_capacity(
                1 << 20,
                GenReader {
                    generator,
                    buf: Vec::new(),
                    pos: 0,
                },
            );
            let bar = rows_bar("produce", rows);
            let name = format!("generated({rows} rows, seed {})", args.seed);
            let mut pending = Pending::default();
            let s = produce_paced(&mut reader, &name, &mut log, pacing, |n| {
                if let Some((lines, bytes)) = pending.add(n) {
                    bar.inc(lines);
                    ticker.add(bytes, "bytes");
                }
            })?;
            bar.finish_and_clear();
            if let Some(path) = &args.truth {
                let truth = serde_json::to_vec_pretty(reader.get_ref().generator.truth())?;
                std::fs::write(path, truth)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            (s, name)
        } else {
            let input = args.input.clone().unwrap_or_default();
            let (reader, size): (Box<dyn Read>, u64) = if input == "-" {
                (Box::new(std::io::stdin()), 0)
            } else {
                let f = File::open(&input).with_context(|| format!("opening {input}"))?;
                let size = f.metadata().map(|m| m.len()).unwrap_or(0);
                (Box::new(f), size)
            };
            let bar = bytes_bar("produce", size);
            let mut pending = Pending::default();
            let s = produce_paced(
                BufReader::with_capacity(1 << 20, reader),
                &input,
                &mut log,
                pacing,
                |n| {
                    if let Some((_, bytes)) = pending.add(n) {
                        bar.inc(bytes);
                        ticker.add(bytes, "bytes");
                    }
                },
            )?;
            bar.finish_and_clear();
            (s, input)
        };
        let secs = started.elapsed().as_secs_f64();
        let (delivered, failed) = log.delivered();
        tracing::info!(
            records = summary.records,
            delivered,
            failed,
            oversize = summary.oversize_records,
            "produce done"
        );
        Ok(ProduceDetail {
            input: name,
            topic: args.topic.clone(),
            bootstrap: args.kafka_bootstrap.clone(),
            partitions: log.partitions(),
            records: summary.records,
            delivered,
            failed,
            bytes: summary.bytes,
            header_lines: summary.header_lines,
            blank_lines: summary.blank_lines,
            oversize_records: summary.oversize_records,
            oversize_bytes: summary.oversize_bytes,
            max_record_bytes: log.max_record_bytes().unwrap_or(usize::MAX) as u64,
            records_per_second: per_second(summary.records, secs),
        })
    })?;
    Ok(())
}
