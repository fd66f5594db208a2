//! The bounds cleaning checks, on hand-written rows: the amount range (`--max-amount`) and
//! the allow-lists of categories, payment methods and statuses, their order among the other
//! rules, and what `--seed-compat` does with them.

use std::io::Cursor;

use ecom_jobs::clean::{clean_to_memory, CleanConfig, QualityReport};
use ecom_jobs::rules::{Fix, Rule, DEFAULT_MAX_AMOUNT_CENTS};
use polars::prelude::*;

/// Cleans `lines` (a header is added) and returns the report and the kept rows' order ids
/// and the named column, as text.
fn clean_lines(cfg: CleanConfig, lines: &[&str]) -> (QualityReport, DataFrame) {
    let mut data = String::from(ecom_jobs::record::HEADER);
    data.push('\n');
    for l in lines {
        data.push_str(l);
        data.push('\n');
    }
    let (report, bytes) = clean_to_memory(
        cfg,
        [("bounds.tsv".to_string(), data.as_bytes())],
        "mem",
        |_| {},
    )
    .expect("clean");
    assert!(report.is_consistent(), "{report:?}");
    let df = ParquetReader::new(Cursor::new(bytes))
        .finish()
        .expect("parquet");
    (report, df)
}

/// Column `name` of `df` as text.
fn column(df: &DataFrame, name: &str) -> Vec<String> {
    df.column(name)
        .expect("column")
        .cast(&DataType::String)
        .expect("cast")
        .str()
        .expect("str")
        .iter()
        .map(|v| v.unwrap_or("<null>").to_string())
        .collect()
}

/// A row with order id `id`, the given category, amount, payment and status.
fn row(id: u32, category: &str, amount: &str, payment: &str, status: &str) -> String {
    format!("{id}\t7\t{category}\t{amount}\t{payment}\t{status}\t2024-01-01 10:00:00")
}

fn dropped(report: &QualityReport, rule: Rule) -> u64 {
    report.dropped.get(rule.name()).copied().unwrap_or(0)
}

#[test]
fn amounts_beyond_the_maximum_are_dropped_either_way() {
    let lines = [
        row(1, "Books", "1000000", "Cash", "Pending"), // the maximum: kept
        row(2, "Books", "1000000.01", "Cash", "Pending"), // one cent over
        row(3, "Books", "99999999999999999", "Cash", "Pending"), // the review's row
        row(4, "Books", "1000000.004", "Cash", "Pending"), // rounds to the maximum: kept
        row(5, "Books", "12.5", "Cash", "Pending"),
        row(6, "Books", "-99999999999999999", "Cash", "Pending"), // nonpositive first
    ];
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let (report, df) = clean_lines(CleanConfig::default(), &lines);
    assert_eq!(column(&df, "order_id"), ["1", "4", "5"]);
    assert_eq!(dropped(&report, Rule::AmountOutOfRange), 2, "{report:?}");
    assert_eq!(dropped(&report, Rule::NonpositiveAmount), 1, "{report:?}");
    assert_eq!(report.rows_out, 3);

    // With the nonpositive rule off, a huge negative amount is out of range; a small one is
    // kept.
    let mut cfg = CleanConfig::default();
    cfg.disabled_rules.insert(Rule::NonpositiveAmount);
    let more = [
        row(7, "Books", "-99999999999999999", "Cash", "Pending"),
        row(8, "Books", "-5", "Cash", "Pending"),
    ];
    let more: Vec<&str> = more.iter().map(String::as_str).collect();
    let (report, df) = clean_lines(cfg, &more);
    assert_eq!(column(&df, "order_id"), ["8"]);
    assert_eq!(dropped(&report, Rule::AmountOutOfRange), 1, "{report:?}");

    // A lower maximum, in cents.
    let cfg = CleanConfig {
        max_amount_cents: 1250,
        ..Default::default()
    };
    let (report, df) = clean_lines(cfg, &lines);
    assert_eq!(column(&df, "order_id"), ["5"]);
    assert_eq!(dropped(&report, Rule::AmountOutOfRange), 4, "{report:?}");

    // Switched off: every positive amount is kept.
    let mut cfg = CleanConfig::default();
    cfg.disabled_rules.insert(Rule::AmountOutOfRange);
    let (report, df) = clean_lines(cfg, &lines);
    assert_eq!(column(&df, "order_id"), ["1", "2", "3", "4", "5"]);
    assert!(!report.dropped.contains_key("amount_out_of_range"));
    assert_eq!(DEFAULT_MAX_AMOUNT_CENTS, 100_000_000);
}

#[test]
fn unknown_values_are_dropped_after_the_typo_fixes_and_normalisation() {
    let lines = [
        row(1, "Books", "10", "Credit Car", "Pending"), // typo fixed, then known
        row(2, " books ", "10", "PAYPAL", "shipped"),   // normalised, then known
        row(3, "Garden", "10", "Cash", "Pending"),      // unknown category
        row(4, "Books", "10", "Bitcoin", "Pending"),    // unknown payment method
        row(5, "Books", "10", "credit car", "Pending"), // a typo in another case: unknown
        row(6, "Books", "10", "Cash", "Lost"),          // unknown status
        row(7, "=HYPERLINK(\"x\")", "10", "Cash", "Pending"), // unknown category
        row(8, "Garden", "10", "Cash", "Lost"),         // the first failing rule counts
    ];
    let mut lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    // Earlier rules win over the allow-lists.
    let bad_time = "9\t7\tGarden\t10\tCash\tPending\tyesterday";
    let too_big = "10\t7\tGarden\t1e9\tCash\tPending\t2024-01-01 10:00:00";
    let huge = "11\t7\tGarden\t2000000\tCash\tPending\t2024-01-01 10:00:00";
    let empty = "12\t7\tGarden\t10\t\tPending\t2024-01-01 10:00:00";
    lines.extend([bad_time, too_big, huge, empty]);
    let (report, df) = clean_lines(CleanConfig::default(), &lines);
    assert_eq!(column(&df, "order_id"), ["1", "2"]);
    assert_eq!(column(&df, "category"), ["Books", "Books"]);
    assert_eq!(column(&df, "payment_method"), ["Credit Card", "PayPal"]);
    assert_eq!(column(&df, "status"), ["Pending", "Shipped"]);
    assert_eq!(report.fixed["credit_card_typo"], 1);
    assert_eq!(report.fixed["normalized_value"], 1);
    assert_eq!(dropped(&report, Rule::UnknownCategory), 3, "{report:?}");
    assert_eq!(
        dropped(&report, Rule::UnknownPaymentMethod),
        2,
        "{report:?}"
    );
    assert_eq!(dropped(&report, Rule::UnknownStatus), 1, "{report:?}");
    assert_eq!(
        dropped(&report, Rule::UnparseableTimestamp),
        1,
        "{report:?}"
    );
    assert_eq!(dropped(&report, Rule::UnparseableAmount), 1, "{report:?}");
    assert_eq!(dropped(&report, Rule::AmountOutOfRange), 1, "{report:?}");
    assert_eq!(dropped(&report, Rule::MissingField), 1, "{report:?}");
    assert_eq!(report.rows_in, 12);

    // The typo fix off: `Credit Car` is not a known payment method.
    let mut cfg = CleanConfig::default();
    cfg.disabled_fixes.insert(Fix::CreditCardTypo);
    let (report, df) = clean_lines(cfg, &lines[..2]);
    assert_eq!(column(&df, "order_id"), ["2"]);
    assert_eq!(
        dropped(&report, Rule::UnknownPaymentMethod),
        1,
        "{report:?}"
    );
}

#[test]
fn allow_lists_of_your_own_replace_the_seeds_values() {
    let cfg = CleanConfig {
        categories: vec!["Garden".into(), "Books".into()],
        payment_methods: vec!["Bitcoin".into(), "Credit Card".into()],
        statuses: vec!["Lost".into()],
        ..Default::default()
    };
    let lines = [
        row(1, "garden ", "10", "bitcoin", "LOST"), // normalised to the given spellings
        row(2, "Books", "10", "Credit Car", "Lost"), // typo fixed into the list
        row(3, "Toys", "10", "Bitcoin", "Lost"),    // a seed category, not in this list
        row(4, "Books", "10", "Cash", "Lost"),      // a seed method, not in this list
        row(5, "Books", "10", "Bitcoin", "Pending"), // a seed status, not in this list
    ];
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let (report, df) = clean_lines(cfg, &lines);
    assert_eq!(column(&df, "order_id"), ["1", "2"]);
    assert_eq!(column(&df, "category"), ["Garden", "Books"]);
    assert_eq!(column(&df, "payment_method"), ["Bitcoin", "Credit Card"]);
    assert_eq!(column(&df, "status"), ["Lost", "Lost"]);
    for rule in [
        Rule::UnknownCategory,
        Rule::UnknownPaymentMethod,
        Rule::UnknownStatus,
    ] {
        assert_eq!(dropped(&report, rule), 1, "{rule:?}: {report:?}");
    }

    // Each list can be switched off alone.
    let mut cfg = CleanConfig::default();
    cfg.disabled_rules.insert(Rule::UnknownCategory);
    let garden = row(6, "Garden", "10", "Cash", "Pending");
    let (report, df) = clean_lines(cfg, &[garden.as_str()]);
    assert_eq!(column(&df, "category"), ["Garden"]);
    assert!(!report.dropped.contains_key("unknown_category"));
}

#[test]
fn seed_compat_keeps_what_the_seed_keeps_and_lists_no_new_rule() {
    let lines = [
        row(1, "Garden", "99999999999999999", "Bitcoin", "Lost"),
        row(2, "Books", "1e300", "Cash", "Pending"),
        row(3, "Books", "Infinity", "Credit Car", "Pending"),
    ];
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let cfg = CleanConfig {
        seed_compat: true,
        ..Default::default()
    };
    let (report, df) = clean_lines(cfg, &lines);
    assert_eq!(column(&df, "order_id"), ["1", "2", "3"]);
    assert_eq!(column(&df, "payment_method")[2], "Credit Card");
    for rule in [
        Rule::AmountOutOfRange,
        Rule::UnknownCategory,
        Rule::UnknownPaymentMethod,
        Rule::UnknownStatus,
    ] {
        assert!(!report.dropped.contains_key(rule.name()), "{report:?}");
    }

    // Full mode lists every new rule, zero included.
    let (report, _) = clean_lines(CleanConfig::default(), &[]);
    for rule in [
        Rule::AmountOutOfRange,
        Rule::UnknownCategory,
        Rule::UnknownPaymentMethod,
        Rule::UnknownStatus,
    ] {
        assert_eq!(report.dropped.get(rule.name()), Some(&0), "{report:?}");
    }
}
