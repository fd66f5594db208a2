//! Records deleted from a Kafka partition before they were read (what retention does),
//! made for real with the admin API's DeleteRecords: the sink and the streaming stage fail
//! naming the topic, partition and both offsets, and with `--skip-offset-gaps` skip and
//! count them.
//!
//! Needs the services (`make services-up`, `eval "$(scripts/services.sh env)"`)
//! and `ECOM_BIN`.

mod common;

use std::time::Duration;

use common::*;
use ecom_jobs::sink::RawFileName;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// Deletes the records of `topic`'s partition 0 before `offset` (the log start moves there,
/// as retention moves it).
fn delete_records_before(topic: &str, offset: i64) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", service_env("KAFKA_BOOTSTRAP"))
        .create()
        .expect("admin client");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(offset))
        .expect("partition offset");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let done =
        futures::executor::block_on(admin.delete_records(&tpl, &opts)).expect("delete records");
    for e in done.elements() {
        assert!(e.error().is_ok(), "deleting records of {topic}: {e:?}");
    }
}

/// Runs `ecom` expecting a failure; returns its summary's error.
fn ecom_error(args: &[&str]) -> String {
    let out = ecom_cmd(args).output().expect("run ecom");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "ecom {args:?} succeeded:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("summary json");
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["attempts"], 1, "a gap is permanent: {v}");
    v["error"].as_str().unwrap_or_default().to_string()
}

/// The (first, last) offsets of the committed raw files, in name order.
fn raw_ranges(run: &Run) -> Vec<(u64, u64)> {
    run.raw_files()
        .iter()
        .map(|(name, _)| {
            let f = RawFileName::parse(name).expect("raw file name");
            (f.first, f.last)
        })
        .collect()
}

#[test]
fn the_sink_fails_on_deleted_records_and_skips_and_counts_them_when_asked() {
    let run = Run::new("gapsink");
    run.produce_generated(1_000, &["--partitions", "1"]);
    delete_records_before(&run.topic, 300);

    let error = ecom_error(&run.sink_args(400));
    assert!(
        error.contains(&format!("topic {}", run.topic))
            && error.contains("partition 0: expected offset 0, found 300"),
        "{error}"
    );
    assert!(run.raw_files().is_empty(), "nothing written");

    let mut skip = run.sink_args(400);
    skip.push("--skip-offset-gaps");
    let sunk = ecom_json(&skip);
    assert_eq!(sunk["records"], 700, "{sunk}");
    assert_eq!(sunk["offset_gaps"], 1, "{sunk}");
    assert_eq!(sunk["skipped_offsets"], 300, "{sunk}");
    assert_eq!(sunk["resumed_from"]["0"], 300, "{sunk}");
    assert_eq!(raw_ranges(&run), [(300, 699), (700, 999)]);
    assert_eq!(line_count(&run.raw_files()), 700);

    // More records, most deleted before the next run: it resumes at 1000 and finds 1200.
    run.produce_generated(500, &["--seed", "8"]);
    delete_records_before(&run.topic, 1_200);
    let error = ecom_error(&run.sink_args(400));
    assert!(
        error.contains("partition 0: expected offset 1000, found 1200"),
        "{error}"
    );
    let sunk = ecom_json(&skip);
    assert_eq!(
        (&sunk["records"], &sunk["skipped_offsets"]),
        (&300.into(), &200.into()),
        "{sunk}"
    );
    assert_eq!(line_count(&run.raw_files()), 1_000);
    run.cleanup();
}

#[test]
fn the_streaming_stage_fails_on_deleted_records_and_skips_and_counts_them_when_asked() {
    let run = Run::new("gapstream");
    run.produce_generated(800, &["--partitions", "1", "--seed", "13"]);
    delete_records_before(&run.topic, 250);
    let args = run.stream_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let error = ecom_error(&[&args[..], &["--run-for", "20s"]].concat());
    assert!(
        error.contains(&format!("topic {}", run.topic))
            && error.contains("partition 0: expected offset 0, found 250"),
        "{error}"
    );
    assert!(run.raw_files().is_empty(), "nothing written");

    let skip = [&args[..], &["--skip-offset-gaps", "--run-for", "6s"]].concat();
    let summary = ecom_json(&skip);
    assert_eq!(summary["records"], 550, "{summary}");
    assert_eq!(summary["offset_gaps"], 1, "{summary}");
    assert_eq!(summary["skipped_offsets"], 250, "{summary}");
    assert_eq!(summary["resumed_from"]["0"], 250, "{summary}");
    let ranges = raw_ranges(&run);
    assert_eq!(ranges.first().map(|r| r.0), Some(250), "{ranges:?}");
    assert_eq!(ranges.last().map(|r| r.1), Some(799), "{ranges:?}");
    assert_eq!(line_count(&run.raw_files()), 550);
    run.cleanup();
}
