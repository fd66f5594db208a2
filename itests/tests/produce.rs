//! `ecom produce` on the real Kafka broker: every record delivered once with its
//! order id as key (read back from the topic), a missing topic created with
//! `--partitions`, an existing topic used as it is, and records the broker refuses
//! reported as undelivered with a non-zero exit.
//!
//! Needs the services (`make services-up`, `eval "$(scripts/services.sh env)"`)
//! and the binary in `ECOM_BIN` (`make itest` builds it and sets both).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use ecom_jobs::store::kafka::{KafkaConfig, KafkaLog};
use ecom_jobs::store::MessageLog;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;

fn kafka_config(topic: &str) -> KafkaConfig {
    let mut cfg = KafkaConfig::new(service_env("KAFKA_BOOTSTRAP"), topic);
    cfg.timeout = Duration::from_secs(30);
    cfg
}

/// Creates `topic` with `partitions` and the topic configs `configs`.
fn create_topic(topic: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", service_env("KAFKA_BOOTSTRAP"))
        .create()
        .expect("admin client");
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        new = new.set(k, v);
    }
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results =
        futures::executor::block_on(admin.create_topics([&new], &opts)).expect("create topics");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("create {t}: {e}"));
    }
}

/// Every record of `topic`, as (partition, key, value), in partition and offset order.
fn read_back(topic: &str) -> Vec<(u32, Vec<u8>, Vec<u8>)> {
    let mut log = KafkaLog::open(kafka_config(topic)).expect("open topic");
    let mut out = Vec::new();
    for p in 0..log.partitions() {
        let end = log.end_offset(p).expect("end offset");
        let mut next = 0;
        let started = Instant::now();
        while next < end {
            // A read returns what arrived within the poll timeout, possibly nothing yet.
            let batch = log.read(p, next, 10_000).expect("read");
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "partition {p} stopped at {next} of {end}"
            );
            for (offset, m) in batch {
                assert_eq!(offset, next, "partition {p}");
                next = offset + 1;
                out.push((p, m.key, m.value));
            }
        }
    }
    out
}

/// The data lines of a generated file (header dropped).
fn data_lines(path: &str) -> Vec<Vec<u8>> {
    let text = std::fs::read(path).expect("read input");
    text.split(|b| *b == b'\n')
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

#[test]
fn produce_delivers_every_line_once_keyed_by_order_id_and_reuses_an_existing_topic() {
    let run = Run::new("prod");
    let (input, _) = run.generate(&["--rows", "2500", "--seed", "11"]);
    let lines = data_lines(&input);
    assert_eq!(lines.len(), 2500);

    // The topic is missing: produce creates it with --partitions.
    let first = ecom_json(&[&run.produce_args(&input)[..], &["--partitions", "4"]].concat());
    assert_eq!(first["records"], 2500, "{first}");
    assert_eq!(first["delivered"], 2500, "{first}");
    assert_eq!(first["failed"], 0, "{first}");
    assert_eq!(first["header_lines"], 1, "{first}");
    assert_eq!(first["partitions"], 4, "{first}");

    let records = read_back(&run.topic);
    assert_eq!(records.len(), lines.len());
    let mut partition_of: BTreeMap<Vec<u8>, u32> = BTreeMap::new();
    for (p, key, value) in &records {
        let order_id = value.split(|b| *b == b'\t').next().expect("first field");
        assert_eq!(key.as_slice(), order_id, "key of {value:?}");
        // One order id, one partition: the sink and the sharded clean rely on it.
        assert_eq!(*partition_of.entry(key.clone()).or_insert(*p), *p);
    }
    let mut sent: Vec<&[u8]> = records.iter().map(|(_, _, v)| v.as_slice()).collect();
    let mut expected: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
    sent.sort();
    expected.sort();
    assert_eq!(sent, expected, "every line exactly once, unchanged");
    assert!(
        partition_of
            .values()
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            > 1,
        "records spread over the partitions"
    );

    // The topic exists now: a second run appends to it as it is (the flag does not
    // recreate or resize it).
    let second = ecom_json(&[&run.produce_args(&input)[..], &["--partitions", "2"]].concat());
    assert_eq!(second["delivered"], 2500, "{second}");
    assert_eq!(second["partitions"], 4, "{second}");
    assert_eq!(read_back(&run.topic).len(), 5000);
}

#[test]
fn produce_into_a_topic_created_beforehand_uses_its_partitions() {
    let run = Run::new("prodpre");
    create_topic(&run.topic, 2, &[]);
    let (input, _) = run.generate(&["--rows", "300", "--seed", "12"]);
    let produced = ecom_json(&run.produce_args(&input));
    assert_eq!(produced["delivered"], 300, "{produced}");
    assert_eq!(produced["partitions"], 2, "{produced}");
    let records = read_back(&run.topic);
    assert_eq!(records.len(), 300);
    assert!(records.iter().all(|(p, _, _)| *p < 2));
}

#[test]
fn records_the_broker_refuses_fail_the_run_with_a_count() {
    let run = Run::new("prodbig");
    // The broker refuses any batch over 2 KiB on this topic.
    create_topic(&run.topic, 1, &[("max.message.bytes", "2048")]);
    // Lines of 8 KiB that lz4 cannot shrink much (a simple generator of digits).
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut text = String::new();
    for id in 0..3 {
        let noise: String = (0..8192)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                char::from(b'!' + (state % 90) as u8)
            })
            .collect();
        text.push_str(&format!("{id}\t{noise}\n"));
    }
    let input = run.tmp.path().join("big.tsv");
    std::fs::write(&input, text).expect("write input");
    let input = input.to_str().expect("utf8").to_string();

    let out = ecom_cmd(&run.produce_args(&input))
        .output()
        .expect("run ecom");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "produce succeeded:\n{stdout}");
    let summary: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("summary json");
    assert_eq!(summary["ok"], false, "{summary}");
    let error = summary["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("3 of 3 records not delivered") && error.contains(&run.topic),
        "{error}"
    );
    assert_eq!(
        error.matches("not delivered").count(),
        1,
        "said once: {error}"
    );
    assert!(stderr.contains("not delivered"), "{stderr}");
    eprintln!("produce failed as expected: {error}");
}
