//! Cleaning checked against the generator's ground truth and a hand-written
//! fixture of the seed's semantics.

use std::collections::BTreeMap;
use std::io::Cursor;

use ecom_jobs::clean::{clean_to_memory, CleanConfig, Cleaner, QualityReport, SharedBuf};
use ecom_jobs::generate::{Expected, GenerateConfig, Generator, GroundTruth};
use ecom_jobs::rules::{Fix, Rule};
use polars::prelude::*;

fn generate(rows: u64, dirty_rate: f64, seed: u64) -> (Vec<u8>, GroundTruth) {
    let mut out = Vec::new();
    let truth = Generator::new(GenerateConfig {
        rows,
        seed,
        dirty_rate,
        ..Default::default()
    })
    .expect("config")
    .write_all(&mut out, "memory")
    .expect("generate");
    (out, truth)
}

fn clean(cfg: CleanConfig, data: &[u8], chunk_rows: usize) -> (QualityReport, DataFrame) {
    let buf = SharedBuf::default();
    let mut cleaner = Cleaner::new(cfg, buf.clone(), "memory")
        .expect("cleaner")
        .with_chunk_rows(chunk_rows);
    cleaner
        .clean_reader(data, "input.tsv", |_| {})
        .expect("clean");
    let report = cleaner.finish().expect("finish");
    let df = ParquetReader::new(Cursor::new(buf.take()))
        .finish()
        .expect("parquet");
    // The stored type of the timestamps: a Parquet timestamp in full mode, else text.
    assert_eq!(
        df.column("timestamp").expect("timestamp").dtype(),
        &ecom_jobs::clean::timestamp::stored_type(&cfg_of(&report))
    );
    let df = ecom_jobs::clean::timestamp::to_text(df).expect("text");
    // The report's column aggregates are those of the rows written.
    let profile = ecom_jobs::clean::profile::profile(&df).expect("profile");
    assert_same_profiles(&report.columns, &profile);
    (report, df)
}

/// The configuration a report was made with, as far as the stored types go.
fn cfg_of(report: &QualityReport) -> CleanConfig {
    CleanConfig {
        seed_compat: report.mode == "seed_compat",
        ..Default::default()
    }
}

/// Equal profiles, sums of amounts to within rounding (they are added in another order).
fn assert_same_profiles(
    a: &BTreeMap<String, ecom_contract::summary::ColumnProfile>,
    b: &BTreeMap<String, ecom_contract::summary::ColumnProfile>,
) {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, p) in a {
        let q = &b[name];
        assert_eq!(
            (p.non_null, &p.min, &p.max, &p.values),
            (q.non_null, &q.min, &q.max, &q.values),
            "{name}"
        );
        match (p.sum, q.sum) {
            (Some(x), Some(y)) => assert!(
                (x - y).abs() <= 1e-6 * x.abs().max(1.0),
                "{name}: {x} vs {y}"
            ),
            (x, y) => assert_eq!(x, y, "{name}"),
        }
    }
    assert_eq!(a["order_id"].non_null, a["timestamp"].non_null);
}

/// Compares a report with the truth; rules and fixes absent from the truth must be zero.
fn assert_matches(report: &QualityReport, expected: &Expected) {
    assert_eq!(report.rows_in, expected.rows_in, "rows_in");
    assert_eq!(report.rows_out, expected.rows_out, "rows_out");
    let nonzero = |m: &BTreeMap<String, u64>| -> BTreeMap<String, u64> {
        m.iter()
            .filter(|(_, v)| **v > 0)
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    };
    assert_eq!(nonzero(&report.dropped), expected.dropped, "dropped");
    assert_eq!(nonzero(&report.fixed), expected.fixed, "fixed");
    assert!(
        report.is_consistent(),
        "rows_in = rows_out + dropped: {report:?}"
    );
}

#[test]
fn every_dirt_kind_matches_the_ground_truth() {
    let (data, truth) = generate(60_000, 0.4, 7);
    for d in ecom_jobs::generate::Dirt::ALL {
        assert!(
            truth.dirt.get(d.name()).copied().unwrap_or(0) > 1000,
            "{d:?} under-produced"
        );
    }
    let (report, df) = clean(CleanConfig::default(), &data, 16_384);
    assert_matches(&report, &truth.full);
    assert_eq!(df.height() as u64, truth.full.rows_out);
    assert_eq!(report.header_lines, 1);

    // Every surviving value is canonical and the revenue is exact.
    let amount = df.column("amount").expect("amount").f64().expect("f64");
    let cents: i64 = amount
        .iter()
        .map(|a| (a.expect("no null") * 100.0).round() as i64)
        .sum();
    assert_eq!(cents, truth.clean_revenue_cents);
    let pay = df
        .column("payment_method")
        .expect("col")
        .str()
        .expect("str");
    for v in pay.iter() {
        let v = v.expect("no null");
        assert!(ecom_jobs::record::PAYMENT_METHODS.contains(&v), "{v}");
    }
    let cats = df.column("category").expect("col").str().expect("str");
    for v in cats.iter() {
        assert!(ecom_jobs::record::CATEGORIES.contains(&v.expect("no null")));
    }
    let ids = df.column("order_id").expect("col").i64().expect("i64");
    let unique: std::collections::HashSet<i64> = ids.iter().map(|v| v.expect("id")).collect();
    assert_eq!(unique.len(), df.height(), "order ids are unique");
}

#[test]
fn seed_compat_matches_the_ground_truth() {
    let (data, truth) = generate(40_000, 0.4, 11);
    let cfg = CleanConfig {
        seed_compat: true,
        ..Default::default()
    };
    let (report, df) = clean(cfg, &data, 10_000);
    assert_matches(&report, &truth.seed_compat);
    assert_eq!(df.height() as u64, truth.seed_compat.rows_out);
}

#[test]
fn chunk_size_does_not_change_the_result() {
    let (data, _) = generate(20_000, 0.3, 3);
    let (a, da) = clean(CleanConfig::default(), &data, 777);
    let (b, db) = clean(CleanConfig::default(), &data, 1 << 20);
    assert_eq!(
        (a.rows_out, &a.dropped, &a.fixed),
        (b.rows_out, &b.dropped, &b.fixed)
    );
    assert!(da.equals(&db));
}

#[test]
fn rules_and_fixes_can_be_switched_off() {
    let (data, truth) = generate(20_000, 0.3, 5);
    let mut cfg = CleanConfig::default();
    cfg.disabled_rules.insert(Rule::DuplicateOrderId);
    cfg.disabled_fixes.insert(Fix::CreditCardTypo);
    let (report, _) = clean(cfg.clone(), &data, 4096);
    assert!(!report.dropped.contains_key("duplicate_order_id"));
    assert!(!report.fixed.contains_key("credit_card_typo"));
    let dups = truth.full.dropped["duplicate_order_id"];
    let typos = truth.full.fixed["credit_card_typo"];
    // An unfixed `Credit Car` is no known payment method: the allow-list drops it.
    assert_eq!(report.dropped["unknown_payment_method"], typos);
    assert_eq!(report.rows_out, truth.full.rows_out + dups - typos);
    assert!(report.is_consistent(), "{report:?}");

    // With the allow-list off too, the typos are kept as they are.
    cfg.disabled_rules.insert(Rule::UnknownPaymentMethod);
    let (report, df) = clean(cfg, &data, 4096);
    assert!(!report.dropped.contains_key("unknown_payment_method"));
    assert_eq!(report.rows_out, truth.full.rows_out + dups);
    let pay = df
        .column("payment_method")
        .expect("col")
        .str()
        .expect("str");
    let kept = pay.iter().filter(|v| *v == Some("Credit Car")).count() as u64;
    assert_eq!(kept, typos);
}

/// Every seed rule on a hand-written file: which rows survive, and with what values.
#[test]
fn seed_compat_fixture() {
    let rows: Vec<&[u8]> = vec![
        b"order_id\tuser_id\tcategory\tamount\tpayment_method\tstatus\ttimestamp\r\n",
        b"1\t10\tBooks\t12.5\tCredit Car\tPending\t2024-01-01 00:00:00\r\n", // typo fixed
        b"2\t10\tBooks\t7\tDebit Car\tShipped\t2024-01-01 00:00:01\n",       // typo fixed
        b"3\t10\t\t7\tCash\tShipped\t2024-01-01 00:00:02\n", // empty -> null -> dropped
        b"4\t10\tToys\tabc\tCash\tShipped\t2024-01-01 00:00:03\n", // amount null -> dropped
        b"5\t10\tToys\n",                                    // too few -> nulls -> dropped
        b"6\t10\tToys\t3\tCash\tShipped\t2024-01-01 00:00:04\textra\n", // too many: extra dropped, row kept
        b"7\t10\tTo\xffys\t3\tCash\tShipped\t2024-01-01 00:00:05\n",    // lossy utf-8, kept
        b"8\t10\tToys\t-3\tcredit car\tShipped\tnot a time\n",          // kept unchanged
        b"1\t10\tBooks\t12.5\tCash\tPending\t2024-01-01 00:00:00\n",    // duplicate id, kept
        b"9\t10\tToys\t 1e3 \tPayPal\tShipped\t2024-01-01 00:00:06\n",  // Java double grammar
        b"10\t10\tToys\t12,5\tPayPal\tShipped\t2024-01-01 00:00:07\n",  // not a double -> dropped
        b"11\t10\tToys\tNaN\tPayPal\tShipped\t2024-01-01 00:00:08\n",   // na.drop() drops NaN
        b"\n",                                                          // blank line
    ];
    let data: Vec<u8> = rows.concat();
    let cfg = CleanConfig {
        seed_compat: true,
        ..Default::default()
    };
    let (report, bytes) = clean_to_memory(
        cfg,
        [("fixture.tsv".to_string(), data.as_slice())],
        "mem",
        |_| {},
    )
    .expect("clean");
    let df = ParquetReader::new(Cursor::new(bytes))
        .finish()
        .expect("parquet");
    assert_eq!(report.rows_in, 12);
    assert_eq!(report.rows_out, 7);
    assert_eq!(report.dropped["missing_field"], 1);
    assert_eq!(report.dropped["unparseable_amount"], 3);
    assert_eq!(report.dropped["too_few_fields"], 1);
    assert_eq!(report.fixed["credit_card_typo"], 1);
    assert_eq!(report.fixed["debit_card_typo"], 1);
    assert_eq!(report.blank_lines, 1);
    let col = |n: &str| -> Vec<String> {
        df.column(n)
            .expect("col")
            .cast(&DataType::String)
            .expect("cast")
            .str()
            .expect("str")
            .iter()
            .map(|v| v.unwrap_or("<null>").to_string())
            .collect()
    };
    assert_eq!(col("order_id"), ["1", "2", "6", "7", "8", "1", "9"]);
    assert_eq!(
        col("payment_method"),
        [
            "Credit Card",
            "Debit Card",
            "Cash",
            "Cash",
            "credit car",
            "Cash",
            "PayPal"
        ]
    );
    assert_eq!(col("category")[3], "To\u{fffd}ys");
    assert_eq!(
        col("amount"),
        ["12.5", "7.0", "3.0", "3.0", "-3.0", "12.5", "1000.0"]
    );
    assert_eq!(col("timestamp")[4], "not a time");
}

/// A reader that hands out at most `step` bytes per call, like a slow socket.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.data.len().min(self.step).min(out.len());
        out[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn lines_longer_than_a_block_and_short_reads_change_nothing() {
    let (data, truth) = generate(30_000, 0.05, 11);
    // A 9 MiB line (longer than two read blocks) in the middle: one too-few-fields drop.
    let middle = data.len() / 2;
    let middle = middle
        + data[middle..]
            .iter()
            .position(|b| *b == b'\n')
            .expect("eol")
        + 1;
    let mut input = data[..middle].to_vec();
    input.extend(std::iter::repeat_n(b'x', 9 << 20));
    input.push(b'\n');
    input.extend_from_slice(&data[middle..]);

    let cfg = CleanConfig::default();
    let (whole, whole_df) = clean(cfg.clone(), &input, 1 << 20);
    let mut expected = truth.full.clone();
    expected.rows_in += 1;
    *expected.dropped.entry("too_few_fields".into()).or_default() += 1;
    assert_matches(&whole, &expected);

    let buf = SharedBuf::default();
    let mut cleaner = Cleaner::new(cfg, buf.clone(), "memory").expect("cleaner");
    let mut seen = 0u64;
    cleaner
        .clean_reader(
            Trickle {
                data: &input,
                step: 4099,
            },
            "input.tsv",
            |n| seen += n,
        )
        .expect("clean");
    let trickled = cleaner.finish().expect("finish");
    let trickled_df = ParquetReader::new(Cursor::new(buf.take()))
        .finish()
        .and_then(ecom_jobs::clean::timestamp::to_text)
        .expect("parquet");
    assert_eq!(seen, input.len() as u64, "progress counts every byte");
    assert_eq!(
        (
            trickled.rows_in,
            trickled.rows_out,
            &trickled.dropped,
            &trickled.fixed
        ),
        (whole.rows_in, whole.rows_out, &whole.dropped, &whole.fixed)
    );
    assert!(
        trickled_df.equals_missing(&whole_df),
        "same rows, same order"
    );
}

#[test]
fn in_memory_frames_equal_the_parquet_output() {
    let (data, truth) = generate(40_000, 0.05, 5);
    for cfg in [
        CleanConfig::default(),
        CleanConfig {
            seed_compat: true,
            ..Default::default()
        },
    ] {
        let (report, df) = clean(cfg.clone(), &data, 7_000);
        let mut cleaner = Cleaner::in_memory(cfg.clone(), "memory").with_chunk_rows(7_000);
        cleaner
            .clean_reader(data.as_slice(), "input.tsv", |_| {})
            .expect("clean");
        let (frames_report, frames) = cleaner.finish_frames().expect("finish");
        let expected = if cfg.seed_compat {
            &truth.seed_compat
        } else {
            &truth.full
        };
        assert_matches(&frames_report, expected);
        assert_eq!(
            (
                frames_report.rows_out,
                &frames_report.dropped,
                &frames_report.fixed
            ),
            (report.rows_out, &report.dropped, &report.fixed)
        );
        assert_eq!(frames.height() as u64, report.rows_out);
        assert!(frames.equals_missing(&df), "same rows, same order");
        assert_same_profiles(&frames_report.columns, &report.columns);
    }
}
