//! Phase one of cleaning: one block of raw lines parsed into typed polars
//! columns, without a per-field allocation.
//!
//! Structural problems (encoding, field count) are counted here, because a
//! line that has them has no columns to speak of. Every grammar that matters
//! (amount, ids, timestamp) is parsed here too, known categorical values are
//! normalised, and the bounds are checked (amount range, allow-lists), so the
//! polars plan only combines flags and values.

use std::borrow::Cow;

use polars::prelude::*;

use super::CleanConfig;
use crate::record::{
    checked_cents, col as c, parse_amount, parse_id, parse_java_double, trim_terminator,
    valid_timestamp, COLUMNS, FIELD_COUNT, HEADER,
};
use crate::rules::{Fix, Rule};

/// Counts of lines that never reach the polars plan.
#[derive(Debug, Default, Clone, Copy)]
pub struct LineCounts {
    /// Data rows (structural drops included; header and blank lines excluded).
    pub rows_in: u64,
    /// Header lines.
    pub header_lines: u64,
    /// Blank lines.
    pub blank_lines: u64,
    /// Dropped as invalid UTF-8.
    pub invalid_utf8: u64,
    /// Dropped for too few fields.
    pub too_few_fields: u64,
    /// Dropped for too many fields.
    pub too_many_fields: u64,
}

impl LineCounts {
    /// The structural drops as (rule, count).
    pub fn drops(&self) -> [(Rule, u64); 3] {
        [
            (Rule::InvalidUtf8, self.invalid_utf8),
            (Rule::TooFewFields, self.too_few_fields),
            (Rule::TooManyFields, self.too_many_fields),
        ]
    }
}

/// Column builders of one block. Checks that no enabled rule or output needs
/// (ids in `--seed-compat`, timestamps, amount range or allow-lists with their
/// rule off) are skipped and their columns filled with `true` at the end.
struct Columns {
    /// Every text column but `amount` (its parsed value is the output).
    text: Vec<StringChunkedBuilder>,
    amount: PrimitiveChunkedBuilder<Float64Type>,
    missing: BooleanChunkedBuilder,
    ids: Option<IdColumns>,
    ts_ok: Option<BooleanChunkedBuilder>,
    /// `amount` within `--max-amount` (or not a number: another rule's).
    amount_ok: Option<BooleanChunkedBuilder>,
    /// Category, payment method (after the typo fixes) and status in their allow-lists.
    known: [Option<BooleanChunkedBuilder>; 3],
    normalized: BooleanChunkedBuilder,
}

/// Names of the allow-list flags, in [`CATEGORICAL`] order.
const KNOWN_FLAGS: [&str; 3] = ["category_ok", "payment_ok", "status_ok"];
/// The categorical columns, in [`KNOWN_FLAGS`] order.
const CATEGORICAL: [usize; 3] = [c::CATEGORY, c::PAYMENT_METHOD, c::STATUS];
/// The allow-list rule of each categorical column, in [`CATEGORICAL`] order.
const KNOWN_RULES: [Rule; 3] = [
    Rule::UnknownCategory,
    Rule::UnknownPaymentMethod,
    Rule::UnknownStatus,
];

/// A flag column, `true` throughout when its check was skipped.
fn flag_column(name: &str, builder: Option<BooleanChunkedBuilder>, height: usize) -> Column {
    match builder {
        Some(b) => b.finish().into_column(),
        None => Column::new_scalar(
            name.into(),
            Scalar::new(DataType::Boolean, AnyValue::Boolean(true)),
            height,
        ),
    }
}

/// Parsed order and user ids and whether both parsed.
struct IdColumns {
    order_num: PrimitiveChunkedBuilder<Int64Type>,
    user_num: PrimitiveChunkedBuilder<Int64Type>,
    id_ok: BooleanChunkedBuilder,
}

impl Columns {
    fn new(cfg: &CleanConfig, capacity: usize, parse_ids: bool) -> Self {
        let flag =
            |name: &str, on: bool| on.then(|| BooleanChunkedBuilder::new(name.into(), capacity));
        Columns {
            text: TEXT_COLUMNS
                .iter()
                .map(|&i| StringChunkedBuilder::new(COLUMNS[i].into(), capacity))
                .collect(),
            amount: PrimitiveChunkedBuilder::new("amount_value".into(), capacity),
            missing: BooleanChunkedBuilder::new("missing".into(), capacity),
            ids: parse_ids.then(|| IdColumns {
                order_num: PrimitiveChunkedBuilder::new("order_num".into(), capacity),
                user_num: PrimitiveChunkedBuilder::new("user_num".into(), capacity),
                id_ok: BooleanChunkedBuilder::new("id_ok".into(), capacity),
            }),
            ts_ok: flag("ts_ok", cfg.rule_on(Rule::UnparseableTimestamp)),
            amount_ok: flag("amount_ok", cfg.rule_on(Rule::AmountOutOfRange)),
            known: [0, 1, 2].map(|i| flag(KNOWN_FLAGS[i], cfg.rule_on(KNOWN_RULES[i]))),
            normalized: BooleanChunkedBuilder::new("normalized".into(), capacity),
        }
    }

    fn finish(self, height: usize) -> PolarsResult<DataFrame> {
        let mut columns: Vec<Column> = self
            .text
            .into_iter()
            .map(|b| b.finish().into_column())
            .collect();
        columns.push(self.amount.finish().into_column());
        columns.push(self.missing.finish().into_column());
        match self.ids {
            Some(ids) => {
                columns.push(ids.order_num.finish().into_column());
                columns.push(ids.user_num.finish().into_column());
                columns.push(ids.id_ok.finish().into_column());
            }
            None => {
                for name in ["order_num", "user_num"] {
                    columns.push(Column::full_null(name.into(), height, &DataType::Int64));
                }
                columns.push(Column::new_scalar(
                    "id_ok".into(),
                    Scalar::new(DataType::Boolean, AnyValue::Boolean(true)),
                    height,
                ));
            }
        }
        columns.push(flag_column("ts_ok", self.ts_ok, height));
        columns.push(flag_column("amount_ok", self.amount_ok, height));
        for (name, builder) in KNOWN_FLAGS.into_iter().zip(self.known) {
            columns.push(flag_column(name, builder, height));
        }
        columns.push(self.normalized.finish().into_column());
        DataFrame::new(height, columns)
    }
}

/// The fields kept as text columns, in output order: all but `amount`, which
/// only matters as its parsed value.
const TEXT_COLUMNS: [usize; 6] = [
    c::ORDER_ID,
    c::USER_ID,
    c::CATEGORY,
    c::PAYMENT_METHOD,
    c::STATUS,
    c::TIMESTAMP,
];

/// The known values of a categorical column (its allow-list).
fn known_values(cfg: &CleanConfig, column: usize) -> &[String] {
    match column {
        c::CATEGORY => &cfg.categories,
        c::PAYMENT_METHOD => &cfg.payment_methods,
        _ => &cfg.statuses,
    }
}

/// The value to store for a categorical field, and whether it was normalised: a
/// case or whitespace variant of a known value becomes that value.
fn categorical<'a>(known: &'a [String], value: &'a str, normalize: bool) -> (&'a str, bool) {
    if !normalize || value.is_empty() || known.iter().any(|k| k == value) {
        return (value, false);
    }
    let trimmed = value.trim();
    match known.iter().find(|k| k.eq_ignore_ascii_case(trimmed)) {
        Some(canon) => (canon.as_str(), true),
        None => (value, false),
    }
}

/// The payment method a stored value ends as once the typo fixes that are on ran (the
/// polars plan applies them; the allow-list is checked against their result).
fn fixed_payment<'a>(cfg: &CleanConfig, value: &'a str) -> &'a str {
    match value {
        "Credit Car" if cfg.fix_on(Fix::CreditCardTypo) => "Credit Card",
        "Debit Car" if cfg.fix_on(Fix::DebitCardTypo) => "Debit Card",
        other => other,
    }
}

/// Whether an amount's magnitude in cents is within `max_cents` (an amount with no
/// cents representation is not).
fn amount_within(amount: f64, max_cents: i64) -> bool {
    checked_cents(amount).is_some_and(|cents| cents.unsigned_abs() <= max_cents.unsigned_abs())
}

/// The first seven tab-separated fields of a line and the total field count,
/// in one pass over the bytes (tabs are ASCII, so every cut is a char boundary).
fn split_tabs(text: &str) -> ([Option<&str>; FIELD_COUNT], usize) {
    let mut fields: [Option<&str>; FIELD_COUNT] = [None; FIELD_COUNT];
    let mut n = 0usize;
    let mut start = 0usize;
    for (i, b) in text.bytes().enumerate() {
        if b == b'\t' {
            if n < FIELD_COUNT {
                fields[n] = text.get(start..i);
            }
            n += 1;
            start = i + 1;
        }
    }
    if n < FIELD_COUNT {
        fields[n] = text.get(start..);
    }
    (fields, n + 1)
}

/// Parses every line of `block` (complete lines; the last may lack `\n`).
pub fn parse_block(cfg: &CleanConfig, block: &[u8]) -> PolarsResult<(DataFrame, LineCounts)> {
    let estimate = block.len() / 64 + 16;
    // Ids are typed output outside seed mode, and feed two rules.
    let parse_ids =
        !cfg.seed_compat || cfg.rule_on(Rule::UnparseableId) || cfg.rule_on(Rule::DuplicateOrderId);
    let mut cols = Columns::new(cfg, estimate, parse_ids);
    let known = CATEGORICAL.map(|column| known_values(cfg, column));
    let mut counts = LineCounts::default();
    let normalize = cfg.fix_on(Fix::NormalizedValue);
    let (drop_utf8, drop_few, drop_many) = (
        cfg.rule_on(Rule::InvalidUtf8),
        cfg.rule_on(Rule::TooFewFields),
        cfg.rule_on(Rule::TooManyFields),
    );
    // One validation of the whole block (the usual case: all valid) instead
    // of one per line; lines are cut at ASCII bytes, so at char boundaries.
    let whole = std::str::from_utf8(block).ok();
    let mut height = 0usize;
    let mut start = 0usize;
    while start < block.len() {
        let end = memchr::memchr(b'\n', &block[start..]).map_or(block.len(), |i| start + i + 1);
        let line = trim_terminator(&block[start..end]);
        let line_start = start;
        start = end;
        if line.is_empty() {
            counts.blank_lines += 1;
            continue;
        }
        let valid = whole.and_then(|w| w.get(line_start..line_start + line.len()));
        let text: Cow<'_, str> = match valid.map_or_else(|| std::str::from_utf8(line), Ok) {
            Ok(t) => Cow::Borrowed(t),
            Err(_) if drop_utf8 => {
                counts.rows_in += 1;
                counts.invalid_utf8 += 1;
                continue;
            }
            Err(_) => String::from_utf8_lossy(line),
        };
        if text == HEADER {
            counts.header_lines += 1;
            continue;
        }
        counts.rows_in += 1;
        let (fields, n) = split_tabs(&text);
        if n < FIELD_COUNT && drop_few {
            counts.too_few_fields += 1;
            continue;
        }
        if n > FIELD_COUNT && drop_many {
            counts.too_many_fields += 1;
            continue;
        }
        height += 1;
        let mut normalized = false;
        for (builder, &i) in cols.text.iter_mut().zip(&TEXT_COLUMNS) {
            let Some(v) = fields[i] else {
                builder.append_null();
                continue;
            };
            let Some(k) = CATEGORICAL.iter().position(|&column| column == i) else {
                builder.append_value(v);
                continue;
            };
            let (out, changed) = categorical(known[k], v, normalize);
            normalized |= changed;
            builder.append_value(out);
            if let Some(flag) = cols.known[k].as_mut() {
                let value = if i == c::PAYMENT_METHOD {
                    fixed_payment(cfg, out)
                } else {
                    out
                };
                flag.append_value(known[k].iter().any(|allowed| allowed == value));
            }
        }
        // An absent field: the missing-field rule's; the allow-list flags stay aligned.
        for (k, flag) in cols.known.iter_mut().enumerate() {
            if let (Some(flag), None) = (flag.as_mut(), fields[CATEGORICAL[k]]) {
                flag.append_value(true);
            }
        }
        // Absent or empty (the seed's typed read makes both null for `na.drop`).
        cols.missing
            .append_value(fields.iter().any(|f| f.is_none_or(str::is_empty)));
        let amount_text = fields[c::AMOUNT].unwrap_or("");
        let amount = if cfg.seed_compat {
            // Spark's na.drop() treats NaN like null.
            parse_java_double(amount_text).filter(|v| !v.is_nan())
        } else {
            parse_amount(amount_text)
        };
        cols.amount.append_option(amount);
        if let Some(amount_ok) = cols.amount_ok.as_mut() {
            amount_ok.append_value(amount.is_none_or(|a| amount_within(a, cfg.max_amount_cents)));
        }
        if let Some(ids) = cols.ids.as_mut() {
            let order = fields[c::ORDER_ID].and_then(parse_id);
            let user = fields[c::USER_ID].and_then(parse_id);
            ids.order_num.append_option(order);
            ids.user_num.append_option(user);
            ids.id_ok.append_value(order.is_some() && user.is_some());
        }
        if let Some(ts_ok) = cols.ts_ok.as_mut() {
            ts_ok.append_value(fields[c::TIMESTAMP].is_some_and(valid_timestamp));
        }
        cols.normalized.append_value(normalized);
    }
    Ok((cols.finish(height)?, counts))
}

/// Splits `data` into blocks of whole lines, each at most `max_lines` lines and
/// (unless a single line is longer) `max_bytes` bytes; returns their ranges.
pub fn split_blocks(
    data: &[u8],
    max_lines: usize,
    max_bytes: usize,
) -> Vec<std::ops::Range<usize>> {
    let mut blocks = Vec::new();
    let mut start = 0usize;
    while start < data.len() {
        let mut end = start;
        let mut lines = 0usize;
        while end < data.len() && lines < max_lines {
            let next = memchr::memchr(b'\n', &data[end..]).map_or(data.len(), |i| end + i + 1);
            if lines > 0 && next - start > max_bytes {
                break;
            }
            end = next;
            lines += 1;
        }
        blocks.push(start..end);
        start = end;
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_hold_whole_lines() {
        let data = b"a\nbb\nccc\nd";
        let cut = |max_lines, max_bytes| -> Vec<&[u8]> {
            split_blocks(data, max_lines, max_bytes)
                .into_iter()
                .map(|r| &data[r])
                .collect()
        };
        assert_eq!(cut(2, 1 << 20), [&b"a\nbb\n"[..], &b"ccc\nd"[..]]);
        assert_eq!(
            cut(100, 4),
            [&b"a\n"[..], &b"bb\n"[..], &b"ccc\n"[..], &b"d"[..]]
        );
        assert!(split_blocks(b"", 10, 10).is_empty());
    }

    #[test]
    fn splits_on_tabs_only() {
        let (f, n) = split_tabs("a\t\tc d\t");
        assert_eq!(n, 4);
        assert_eq!(&f[..4], [Some("a"), Some(""), Some("c d"), Some("")]);
        assert_eq!(f[4], None);
        let (f, n) = split_tabs("1\t2\t3\t4\t5\t6\t7\t8\t9");
        assert_eq!((n, f[6]), (9, Some("7")));
        assert_eq!(split_tabs("").1, 1);
    }

    #[test]
    fn parses_and_classifies() {
        let cfg = CleanConfig::default();
        let data = format!(
            "{HEADER}\n1\t2\t books \t3.5\tCash\tPending\t2024-01-01 00:00:00\n\n1\t2\n1\t2\t\u{e9}\t4\t5\t6\t7\t8\n"
        );
        let (df, counts) = parse_block(&cfg, data.as_bytes()).expect("parse");
        assert_eq!(df.height(), 1);
        assert_eq!(
            (counts.rows_in, counts.header_lines, counts.blank_lines),
            (3, 1, 1)
        );
        assert_eq!((counts.too_few_fields, counts.too_many_fields), (1, 1));
        let cat = df.column("category").expect("col").str().expect("str");
        assert_eq!(cat.get(0), Some("Books"));
        let norm = df.column("normalized").expect("col").bool().expect("bool");
        assert_eq!(norm.get(0), Some(true));
    }
}
