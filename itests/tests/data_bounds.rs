//! Data bounds on the real services: rows with amounts beyond `--max-amount`, unknown
//! categories, payment methods and statuses, and a line over Kafka's message size go
//! through produce, sink, clean and load; each is dropped or skipped and counted, and the
//! figures in HBase equal a recomputation from the clean rows. `--seed-compat` keeps such
//! amounts as the seed does, and the load then fails naming the file rather than store a
//! wrapped sum.
//!
//! Needs the services (`make services-up`, `eval "$(scripts/services.sh env)"`)
//! and `ECOM_BIN`.

mod common;

use std::collections::BTreeSet;

use common::*;
use ecom_jobs::aggregates::Aggregates;
use ecom_jobs::load::{AGG_FAMILY, AGG_PREFIX};
use ecom_jobs::record::{checked_cents, CATEGORIES, HEADER, PAYMENT_METHODS, STATUSES};
use ecom_jobs::store::table::scan_prefix;
use ecom_jobs::store::{FileStore, TableStore};

/// A raw line.
fn line(id: u64, category: &str, amount: &str, payment: &str, status: &str, ts: &str) -> String {
    format!("{id}\t5\t{category}\t{amount}\t{payment}\t{status}\t{ts}")
}

/// Runs `ecom` expecting a failure; returns its summary.
fn ecom_failed(args: &[&str]) -> serde_json::Value {
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
    v
}

// One scenario (about a minute): generated rows plus hand-made bad ones, stage by stage.
#[test]
fn bad_rows_are_dropped_or_skipped_counted_and_never_corrupt_the_sums() {
    let run = Run::new("bounds");
    let (generated, truth) =
        run.generate(&["--rows", "20000", "--dirty-rate", "0.1", "--seed", "31"]);
    let day = "2024-01-15 10:00:00";
    let bad = [
        // The review's rows: two amounts whose cents saturate, in one category and hour.
        line(
            90_000_001,
            "Books",
            "99999999999999999",
            "Cash",
            "Delivered",
            day,
        ),
        line(
            90_000_002,
            "Books",
            "99999999999999999",
            "PayPal",
            "Shipped",
            day,
        ),
        line(90_000_003, "Toys", "1000000.01", "Cash", "Pending", day),
        // Unknown values, one a spreadsheet formula.
        line(90_000_005, "Garden", "10.5", "Cash", "Pending", day),
        line(
            90_000_006,
            "=HYPERLINK(\"http://x\")",
            "10",
            "Cash",
            "Pending",
            day,
        ),
        line(90_000_007, "Books", "10", "Bitcoin", "Pending", day),
        line(90_000_008, "Books", "10", "Cash", "Lost", day),
    ];
    let kept = [
        line(90_000_004, "Toys", "1000000", "Cash", "Pending", day), // the maximum
        line(90_000_009, "Books", "20", "Credit Car", "Pending", day), // fixed, then known
    ];
    // Over Kafka's message size (1,000,000 bytes by default): skipped by produce.
    let oversize = line(
        90_000_010,
        &"x".repeat(1_200_000),
        "10",
        "Cash",
        "Pending",
        day,
    );
    let mut input = std::fs::read(&generated).expect("read generated");
    for l in bad.iter().chain(&kept).chain([&oversize]) {
        input.extend_from_slice(l.as_bytes());
        input.push(b'\n');
    }
    let path = run.tmp.path().join("bounds.tsv");
    std::fs::write(&path, &input).expect("write input");
    let path = path.to_str().expect("utf8").to_string();

    let sent = truth.full.rows_in + (bad.len() + kept.len()) as u64;
    let produced = ecom_json(&run.produce_args(&path));
    assert_eq!(produced["oversize_records"], 1, "{produced}");
    assert_eq!(
        produced["oversize_bytes"],
        oversize.len() as u64 + 1,
        "{produced}"
    );
    assert_eq!(produced["max_record_bytes"], 1_000_000 - 36, "{produced}");
    assert_eq!(produced["records"], sent, "{produced}");
    assert_eq!(produced["delivered"], sent, "{produced}");
    assert_eq!(produced["failed"], 0, "{produced}");

    // Delivered once: the topic holds exactly the records sent.
    let sunk = ecom_json(&run.sink_args(5_000));
    assert_eq!(sunk["records"], sent, "{sunk}");
    assert_eq!(sunk["skipped_offsets"], 0, "{sunk}");
    assert_eq!(line_count(&run.raw_files()) as u64, sent);

    let cleaned = ecom_json(&run.clean_args());
    let report = &cleaned["report"];
    assert_eq!(report["rows_in"], sent, "{cleaned}");
    assert_eq!(report["rows_out"], truth.full.rows_out + 2, "{cleaned}");
    for (rule, n) in [
        ("amount_out_of_range", 3),
        ("unknown_category", 2),
        ("unknown_payment_method", 1),
        ("unknown_status", 1),
    ] {
        let generated = truth.full.dropped.get(rule).copied().unwrap_or(0);
        assert_eq!(report["dropped"][rule], generated + n, "{rule}: {cleaned}");
    }
    for (rule, n) in &truth.full.dropped {
        if !rule.starts_with("unknown_") && rule != "amount_out_of_range" {
            assert_eq!(report["dropped"][rule], *n, "{rule}: {cleaned}");
        }
    }
    assert_eq!(
        report["fixed"]["credit_card_typo"],
        truth.full.fixed["credit_card_typo"] + 1,
        "{cleaned}"
    );

    let loaded = ecom_json(&run.load_args());
    assert_eq!(loaded["rows"], truth.full.rows_out + 2, "{loaded}");
    assert_eq!(run.fact_row_count(), truth.full.rows_out + 2);

    // HBase's aggregates = a recomputation from the clean rows.
    let clean = run.clean_rows();
    let mut expected = Aggregates::default();
    for r in &clean {
        expected
            .add(&r.category, r.amount, &r.payment, &r.status, &r.timestamp)
            .expect("clean rows add up");
    }
    let stored = run.stored_aggregates();
    assert_eq!(stored, expected);
    let extra: i64 = [1_000_000.0, 20.0]
        .iter()
        .map(|a| checked_cents(*a).expect("cents"))
        .sum();
    assert_eq!(
        stored.total.revenue_cents,
        truth.clean_revenue_cents + extra
    );
    assert_eq!(
        stored.max_cents,
        Some(100_000_000),
        "the largest amount kept"
    );
    let books: i64 = clean
        .iter()
        .filter(|r| r.category == "Books")
        .map(|r| checked_cents(r.amount).expect("cents"))
        .sum();
    assert_eq!(stored.by_category["Books"].revenue_cents, books);
    let known = |values: &[&str], got: Vec<&String>| {
        let allowed: BTreeSet<&str> = values.iter().copied().collect();
        got.iter().all(|v| allowed.contains(v.as_str()))
    };
    assert!(known(&CATEGORIES, stored.by_category.keys().collect()));
    assert!(known(&PAYMENT_METHODS, stored.by_payment.keys().collect()));
    assert!(known(&STATUSES, stored.by_status.keys().collect()));
    run.cleanup();
}

#[test]
fn seed_compat_keeps_huge_amounts_and_the_load_fails_rather_than_wrap() {
    let run = Run::new("boundsseed");
    let day = "2024-02-01 09:00:00";
    let mut raw = format!("{HEADER}\n");
    // Each fits 64-bit cents; their sum does not.
    for (id, amount) in [
        (1, "50000000000000000"),
        (2, "50000000000000000"),
        (3, "12.5"),
    ] {
        raw.push_str(&line(id, "Books", amount, "Cash", "Pending", day));
        raw.push('\n');
    }
    let store = run.hdfs_store();
    store
        .write_atomic(&format!("{}/raw/seed.tsv", run.base), raw.as_bytes())
        .expect("write raw");
    let mut args = run.clean_args();
    args.push("--seed-compat");
    let cleaned = ecom_json(&args);
    assert_eq!(
        cleaned["report"]["rows_out"], 3,
        "the seed keeps them: {cleaned}"
    );
    assert!(
        cleaned["report"]["dropped"]
            .get("amount_out_of_range")
            .is_none(),
        "{cleaned}"
    );

    let failed = ecom_failed(&run.load_args());
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("cannot be represented")
            && error.contains("date=2024-02-01/part-")
            && error.contains("(permanent error, not retried)"),
        "{error}"
    );
    // No aggregates row holds a wrapped or saturated sum: the file has none at all.
    let agg = run
        .hbase()
        .table(&format!("{}_agg", run.table))
        .expect("agg table");
    let stored: Vec<Aggregates> = scan_prefix(&*agg, AGG_PREFIX.as_bytes(), 1_000)
        .expect("scan")
        .iter()
        .map(|row| serde_json::from_slice(&row.cells[&format!("{AGG_FAMILY}:json")]).expect("json"))
        .collect();
    assert!(stored.is_empty(), "aggregates rows were stored: {stored:?}");
    run.cleanup();
}
