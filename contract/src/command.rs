//! The stages' command lines: flag names, and typed invocations the operator renders into a
//! container's `args`. The binary declares its flags with the names in [`flag`], so a flag
//! renamed on one side is renamed on both; a test parses every golden Job's arguments with the
//! binary's own parser.

use crate::env;

/// Subcommands of `ecom` the operator runs.
pub mod subcommand {
    /// `ecom produce`.
    pub const PRODUCE: &str = "produce";
    /// `ecom sink`.
    pub const SINK: &str = "sink";
    /// `ecom clean`.
    pub const CLEAN: &str = "clean";
    /// `ecom load`.
    pub const LOAD: &str = "load";
    /// `ecom dashboard`.
    pub const DASHBOARD: &str = "dashboard";
    /// `ecom purge`.
    pub const PURGE: &str = "purge";
    /// `ecom stream`.
    pub const STREAM: &str = "stream";
}

/// Long flag names (without the leading `--`).
pub mod flag {
    /// Input file, directory or URL.
    pub const INPUT: &str = "input";
    /// Output directory or URL.
    pub const OUTPUT: &str = "output";
    /// Kafka topic.
    pub const TOPIC: &str = "topic";
    /// Partitions of a topic produce creates.
    pub const PARTITIONS: &str = "partitions";
    /// Replication factor of a topic produce creates.
    pub const REPLICATION: &str = "replication";
    /// Rows produce generates instead of reading a file.
    pub const GENERATE_ROWS: &str = "generate-rows";
    /// Seed of generated rows.
    pub const SEED: &str = "seed";
    /// Dirty fraction of generated rows.
    pub const DIRTY_RATE: &str = "dirty-rate";
    /// Records per second produce sends at most.
    pub const RATE: &str = "rate";
    /// A librdkafka property `KEY=VALUE` (repeatable).
    pub const KAFKA_PROPERTY: &str = "kafka-property";
    /// Seconds after which the sink commits a file that is not full.
    pub const ROLL_INTERVAL: &str = "roll-interval";
    /// The sink stops once it has written the end offsets seen at start.
    pub const UNTIL_CAUGHT_UP: &str = "until-caught-up";
    /// `INDEX/COUNT` share of the files (clean, load).
    pub const SHARD: &str = "shard";
    /// HBase fact table.
    pub const TABLE: &str = "table";
    /// Row-key salt buckets.
    pub const SALT_BUCKETS: &str = "salt-buckets";
    /// Dashboard listen address.
    pub const HOST: &str = "host";
    /// Dashboard listen port.
    pub const PORT: &str = "port";
    /// An HDFS directory purge deletes (repeatable).
    pub const PATH: &str = "path";
    /// The raw directory of the streaming stage.
    pub const RAW: &str = "raw";
    /// The clean directory of the streaming stage.
    pub const CLEAN: &str = "clean";
    /// How long a record waits at most before its micro-batch commits.
    pub const BATCH_INTERVAL: &str = "batch-interval";
    /// Records one micro-batch takes at most.
    pub const MAX_BATCH_RECORDS: &str = "max-batch-records";
    /// The largest amount cleaning keeps (clean, stream, demo).
    pub const MAX_AMOUNT: &str = "max-amount";
    /// The categories cleaning knows, comma-separated (clean, stream, demo).
    pub const CATEGORIES: &str = "categories";
    /// The payment methods cleaning knows, comma-separated (clean, stream, demo).
    pub const PAYMENT_METHODS: &str = "payment-methods";
    /// The statuses cleaning knows, comma-separated (clean, stream, demo).
    pub const STATUSES: &str = "statuses";
    /// Skip and count records retention deleted before they were read, instead of failing
    /// (sink, stream).
    pub const SKIP_OFFSET_GAPS: &str = "skip-offset-gaps";
}

/// Where produce takes its records from.
#[derive(Debug, Clone, PartialEq)]
pub enum ProduceSource {
    /// Rows generated on the fly.
    Generated {
        /// Data rows.
        rows: u64,
        /// Seed: the same seed gives the same rows.
        seed: u64,
        /// Fraction of rows with one kind of dirt.
        dirty_rate: f64,
        /// Records per second at most.
        rate_per_second: Option<f64>,
    },
    /// A TSV file (with or without the header) at this path in the container.
    File(String),
}

/// `ecom produce`: records into a Kafka topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Produce {
    /// The records.
    pub source: ProduceSource,
    /// Topic, created if missing.
    pub topic: String,
    /// Partitions of the topic when it is created.
    pub partitions: u32,
    /// Replication factor of the topic when it is created.
    pub replication: u32,
    /// librdkafka properties (never secrets: those come from the environment).
    pub kafka_properties: Vec<(String, String)>,
}

/// When the sink stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkEnd {
    /// Once the end offsets seen at start are written (batch).
    UntilCaughtUp,
    /// Never (streaming); a file is committed at the latest this many seconds after its
    /// first record.
    Continuous {
        /// Seconds.
        roll_interval_secs: u32,
    },
}

/// `ecom sink`: a Kafka topic into raw files on HDFS, exactly once.
#[derive(Debug, Clone, PartialEq)]
pub struct Sink {
    /// Topic.
    pub topic: String,
    /// `hdfs://host:port/dir` of the raw files.
    pub output: String,
    /// When it stops.
    pub end: SinkEnd,
    /// librdkafka properties.
    pub kafka_properties: Vec<(String, String)>,
}

/// `ecom clean` on HDFS: the raw files not cleaned yet into clean Parquet runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clean {
    /// `hdfs://host:port/dir` of the raw files.
    pub input: String,
    /// `hdfs://host:port/dir` of the clean runs.
    pub output: String,
    /// Pods of an Indexed Job sharing the files (each takes its completion index).
    pub shards: Option<u32>,
}

/// `ecom load`: committed clean runs into HBase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Load {
    /// `hdfs://host:port/dir` of the clean runs.
    pub input: String,
    /// Fact table.
    pub table: String,
    /// Row-key salt buckets.
    pub salt_buckets: u32,
    /// Pods of an Indexed Job sharing the files.
    pub shards: Option<u32>,
}

/// `ecom stream`: one shard of the continuous streaming stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    /// Topic.
    pub topic: String,
    /// `hdfs://host:port/dir` of the raw files.
    pub raw: String,
    /// `hdfs://host:port/dir` of the clean runs.
    pub clean: String,
    /// Fact table.
    pub table: String,
    /// Row-key salt buckets.
    pub salt_buckets: u32,
    /// Milliseconds a record waits at most before its micro-batch commits.
    pub batch_interval_ms: u32,
    /// Records one micro-batch takes at most.
    pub max_batch_records: u32,
    /// Shards; each pod takes its index from [`env::SHARD_INDEX`].
    pub shards: u32,
    /// librdkafka properties.
    pub kafka_properties: Vec<(String, String)>,
}

/// `ecom dashboard` reading HBase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dashboard {
    /// Listen address.
    pub host: String,
    /// Listen port.
    pub port: u16,
    /// Fact table.
    pub table: String,
}

/// `ecom purge`: a pipeline's HDFS directories and HBase tables deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purge {
    /// `hdfs://host:port/dir` directories.
    pub paths: Vec<String>,
    /// Fact table (its aggregates table goes with it).
    pub table: String,
}

/// One invocation of `ecom`.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `ecom produce`.
    Produce(Produce),
    /// `ecom sink`.
    Sink(Sink),
    /// `ecom clean`.
    Clean(Clean),
    /// `ecom load`.
    Load(Load),
    /// `ecom dashboard`.
    Dashboard(Dashboard),
    /// `ecom purge`.
    Purge(Purge),
    /// `ecom stream`.
    Stream(Stream),
}

/// Arguments under construction.
struct Args(Vec<String>);

impl Args {
    fn new(subcommand: &str) -> Self {
        Args(vec![subcommand.to_string()])
    }
    fn value(&mut self, flag: &str, value: impl ToString) -> &mut Self {
        self.0.push(format!("--{flag}"));
        self.0.push(value.to_string());
        self
    }
    fn switch(&mut self, flag: &str) -> &mut Self {
        self.0.push(format!("--{flag}"));
        self
    }
    fn kafka(&mut self, properties: &[(String, String)]) -> &mut Self {
        for (k, v) in properties {
            self.value(flag::KAFKA_PROPERTY, format!("{k}={v}"));
        }
        self
    }
    /// `--shard $(JOB_COMPLETION_INDEX)/COUNT`: the kubelet substitutes the variable.
    fn shards(&mut self, shards: Option<u32>) -> &mut Self {
        if let Some(count) = shards {
            let index = env::JOB_COMPLETION_INDEX;
            self.value(flag::SHARD, format!("$({index})/{count}"));
        }
        self
    }
}

impl Command {
    /// The container's `args` (the command is `ecom`).
    pub fn args(&self) -> Vec<String> {
        let mut a;
        match self {
            Command::Produce(p) => {
                a = Args::new(subcommand::PRODUCE);
                match &p.source {
                    ProduceSource::Generated {
                        rows,
                        seed,
                        dirty_rate,
                        rate_per_second,
                    } => {
                        a.value(flag::GENERATE_ROWS, rows)
                            .value(flag::SEED, seed)
                            .value(flag::DIRTY_RATE, dirty_rate);
                        if let Some(rate) = rate_per_second {
                            a.value(flag::RATE, rate);
                        }
                    }
                    ProduceSource::File(path) => {
                        a.value(flag::INPUT, path);
                    }
                }
                a.value(flag::TOPIC, &p.topic)
                    .value(flag::PARTITIONS, p.partitions)
                    .value(flag::REPLICATION, p.replication)
                    .kafka(&p.kafka_properties);
            }
            Command::Sink(s) => {
                a = Args::new(subcommand::SINK);
                a.value(flag::TOPIC, &s.topic)
                    .value(flag::OUTPUT, &s.output);
                match s.end {
                    SinkEnd::UntilCaughtUp => a.switch(flag::UNTIL_CAUGHT_UP),
                    SinkEnd::Continuous { roll_interval_secs } => {
                        a.value(flag::ROLL_INTERVAL, format!("{roll_interval_secs}s"))
                    }
                };
                a.kafka(&s.kafka_properties);
            }
            Command::Clean(c) => {
                a = Args::new(subcommand::CLEAN);
                a.value(flag::INPUT, &c.input)
                    .value(flag::OUTPUT, &c.output)
                    .shards(c.shards);
            }
            Command::Load(l) => {
                a = Args::new(subcommand::LOAD);
                a.value(flag::INPUT, &l.input)
                    .value(flag::TABLE, &l.table)
                    .value(flag::SALT_BUCKETS, l.salt_buckets)
                    .shards(l.shards);
            }
            Command::Dashboard(d) => {
                a = Args::new(subcommand::DASHBOARD);
                a.value(flag::HOST, &d.host)
                    .value(flag::PORT, d.port)
                    .value(flag::TABLE, &d.table);
            }
            Command::Stream(s) => {
                a = Args::new(subcommand::STREAM);
                a.value(flag::TOPIC, &s.topic)
                    .value(flag::RAW, &s.raw)
                    .value(flag::CLEAN, &s.clean)
                    .value(flag::TABLE, &s.table)
                    .value(flag::SALT_BUCKETS, s.salt_buckets)
                    .value(flag::BATCH_INTERVAL, format!("{}ms", s.batch_interval_ms))
                    .value(flag::MAX_BATCH_RECORDS, s.max_batch_records)
                    .value(flag::SHARD, s.shards)
                    .kafka(&s.kafka_properties);
            }
            Command::Purge(p) => {
                a = Args::new(subcommand::PURGE);
                for path in &p.paths {
                    a.value(flag::PATH, path);
                }
                a.value(flag::TABLE, &p.table);
            }
        }
        a.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sharded_load_renders_its_flags_in_order() {
        let args = Command::Load(Load {
            input: "hdfs://nn:8020/clean".into(),
            table: "t".into(),
            salt_buckets: 4,
            shards: Some(3),
        })
        .args();
        assert_eq!(
            args,
            [
                "load",
                "--input",
                "hdfs://nn:8020/clean",
                "--table",
                "t",
                "--salt-buckets",
                "4",
                "--shard",
                "$(JOB_COMPLETION_INDEX)/3"
            ]
        );
    }

    #[test]
    fn kafka_properties_repeat_the_flag() {
        let args = Command::Sink(Sink {
            topic: "tx".into(),
            output: "hdfs://nn:8020/raw".into(),
            end: SinkEnd::Continuous {
                roll_interval_secs: 30,
            },
            kafka_properties: vec![
                ("security.protocol".into(), "SASL_SSL".into()),
                ("sasl.mechanism".into(), "PLAIN".into()),
            ],
        })
        .args();
        assert_eq!(
            args[5..],
            [
                "--roll-interval",
                "30s",
                "--kafka-property",
                "security.protocol=SASL_SSL",
                "--kafka-property",
                "sasl.mechanism=PLAIN"
            ]
        );
    }
}
