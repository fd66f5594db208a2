//! The transaction record model and the one raw-line parser every stage shares.
//!
//! A raw line is tab-separated with seven fields in [`COLUMNS`] order. Parsing never
//! panics: each structural problem (field count, encoding) is classified as a
//! [`LineProblem`] so the cleaner can count it under its own rule.

use std::borrow::Cow;

/// Column names, in file order.
pub const COLUMNS: [&str; 7] = [
    "order_id",
    "user_id",
    "category",
    "amount",
    "payment_method",
    "status",
    "timestamp",
];

/// Number of fields in a well-formed line.
pub const FIELD_COUNT: usize = COLUMNS.len();

/// Index of each column in a line.
pub mod col {
    /// `order_id`: the HBase row key.
    pub const ORDER_ID: usize = 0;
    /// `user_id`.
    pub const USER_ID: usize = 1;
    /// `category`.
    pub const CATEGORY: usize = 2;
    /// `amount`.
    pub const AMOUNT: usize = 3;
    /// `payment_method`.
    pub const PAYMENT_METHOD: usize = 4;
    /// `status`.
    pub const STATUS: usize = 5;
    /// `timestamp`.
    pub const TIMESTAMP: usize = 6;
}

/// The header line of the original file (without line terminator).
pub const HEADER: &str = "order_id\tuser_id\tcategory\tamount\tpayment_method\tstatus\ttimestamp";

/// Known categories, in the original's order of frequency.
pub const CATEGORIES: [&str; 7] = [
    "Electronics",
    "Clothing",
    "Home & Kitchen",
    "Books",
    "Beauty",
    "Sports",
    "Toys",
];
/// Known payment methods (correct spellings).
pub const PAYMENT_METHODS: [&str; 4] = ["Credit Card", "Debit Card", "PayPal", "Cash"];
/// Known order statuses.
pub const STATUSES: [&str; 4] = ["Pending", "Shipped", "Delivered", "Cancelled"];
/// The payment typos of the original data and their corrections.
pub const PAYMENT_TYPOS: [(&str, &str); 2] =
    [("Credit Car", "Credit Card"), ("Debit Car", "Debit Card")];

/// A structural problem that makes a raw line unusable as a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LineProblem {
    /// Fewer than seven tab-separated fields.
    TooFewFields(usize),
    /// More than seven tab-separated fields.
    TooManyFields(usize),
    /// The line is not valid UTF-8.
    InvalidUtf8,
}

/// What one raw line turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line<'a> {
    /// An empty line (only a terminator): carries no data.
    Blank,
    /// The header line.
    Header,
    /// Seven fields (possibly with problems in their values).
    Fields([&'a str; FIELD_COUNT]),
    /// A line with a structural problem.
    Problem(LineProblem),
}

/// Strips one trailing `\n` and then one trailing `\r` (CRLF tolerance).
pub fn trim_terminator(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Splits a raw line (terminator optional) into its seven fields.
///
/// Checks, in order: blank, UTF-8 validity, field count, header.
pub fn parse_line(raw: &[u8]) -> Line<'_> {
    let line = trim_terminator(raw);
    if line.is_empty() {
        return Line::Blank;
    }
    let Ok(text) = std::str::from_utf8(line) else {
        return Line::Problem(LineProblem::InvalidUtf8);
    };
    split_fields(text)
}

/// Splits valid text into fields, classifying the field count.
pub fn split_fields(text: &str) -> Line<'_> {
    let mut fields = [""; FIELD_COUNT];
    let mut n = 0usize;
    for part in text.split('\t') {
        if n < FIELD_COUNT {
            fields[n] = part;
        }
        n += 1;
    }
    match n.cmp(&FIELD_COUNT) {
        std::cmp::Ordering::Less => Line::Problem(LineProblem::TooFewFields(n)),
        std::cmp::Ordering::Greater => Line::Problem(LineProblem::TooManyFields(n)),
        std::cmp::Ordering::Equal if text == HEADER => Line::Header,
        std::cmp::Ordering::Equal => Line::Fields(fields),
    }
}

/// Lossy, Spark-like reading of a line: invalid UTF-8 becomes U+FFFD, missing
/// trailing fields become `None`, extra fields are dropped. Used by the seed
/// compatible cleaning mode.
pub fn parse_line_permissive(raw: &[u8]) -> Option<[Option<String>; FIELD_COUNT]> {
    let line = trim_terminator(raw);
    if line.is_empty() {
        return None;
    }
    let text: Cow<'_, str> = String::from_utf8_lossy(line);
    if text == HEADER {
        return None;
    }
    let mut fields: [Option<String>; FIELD_COUNT] = Default::default();
    for (slot, part) in fields.iter_mut().zip(text.split('\t')) {
        *slot = Some(part.to_string());
    }
    Some(fields)
}

/// Returns the canonical spelling of a known category, payment method or status
/// when `value` differs from it only by case or surrounding whitespace.
pub fn canonical_value(column: usize, value: &str) -> Option<&'static str> {
    let known: &[&'static str] = match column {
        col::CATEGORY => &CATEGORIES,
        col::PAYMENT_METHOD => &PAYMENT_METHODS,
        col::STATUS => &STATUSES,
        _ => return None,
    };
    let trimmed = value.trim();
    known
        .iter()
        .copied()
        .find(|k| k.eq_ignore_ascii_case(trimmed))
}

/// Checks a `YYYY-MM-DD HH:MM:SS` timestamp, calendar included.
pub fn valid_timestamp(ts: &str) -> bool {
    crate::calendar::seconds_of(ts.as_bytes()).is_some()
}

/// Powers of ten that are exact in an `f64`.
const EXACT_POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// `digits` or `digits.digits` (optionally `-`), at most 15 digits in all: the
/// integer of its digits and the power of ten are both exact in an `f64`, so one
/// division is the correctly rounded value, the same `str::parse` gives. `None`
/// for anything else (the caller's general path decides).
fn fast_decimal(s: &str) -> Option<f64> {
    let (negative, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s.as_bytes()[1..]),
        _ => (false, s.as_bytes()),
    };
    if body.is_empty() || body.len() > 16 {
        return None;
    }
    let mut mantissa: u64 = 0;
    let mut digits = 0usize;
    let mut point: Option<usize> = None;
    for (i, &b) in body.iter().enumerate() {
        match b {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(b - b'0');
                digits += 1;
            }
            b'.' if point.is_none() && i > 0 && i + 1 < body.len() => point = Some(i),
            _ => return None,
        }
    }
    if digits > 15 {
        return None;
    }
    let scale = point.map_or(0, |p| body.len() - p - 1);
    let value = mantissa as f64 / EXACT_POW10[scale];
    Some(if negative { -value } else { value })
}

/// Parses a decimal the way Java's `Double.parseDouble` (and so Spark's CSV
/// reader) accepts it: surrounding whitespace, sign, digits, fraction, exponent,
/// an optional `d`/`f` suffix, and `NaN`/`Infinity`/`Inf`. `None` when it does not parse.
pub fn parse_java_double(s: &str) -> Option<f64> {
    if let Some(v) = fast_decimal(s) {
        return Some(v);
    }
    let t = s.trim_matches(|c: char| c <= ' ');
    match t {
        "NaN" => return Some(f64::NAN),
        "Inf" | "Infinity" | "+Infinity" => return Some(f64::INFINITY),
        "-Inf" | "-Infinity" => return Some(f64::NEG_INFINITY),
        _ => {}
    }
    let t = t.strip_suffix(['d', 'D', 'f', 'F']).unwrap_or(t);
    let body = t.strip_prefix(['+', '-']).unwrap_or(t);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |p: &str| p.bytes().all(|c| c.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) {
        return None;
    }
    if let Some(e) = exponent {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        if e.is_empty() || !digits(e) {
            return None;
        }
    }
    t.parse::<f64>().ok()
}

/// Parses a strict positive-or-negative decimal amount (`123`, `-4.5`, `0.99`).
/// Unlike [`parse_java_double`] it refuses exponents, suffixes, NaN and infinities.
pub fn parse_amount(s: &str) -> Option<f64> {
    if let Some(v) = fast_decimal(s) {
        return Some(v);
    }
    let body = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let ok = !int.is_empty()
        && int.bytes().all(|c| c.is_ascii_digit())
        && frac.bytes().all(|c| c.is_ascii_digit())
        && !(body.contains('.') && frac.is_empty());
    if !ok {
        return None;
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Parses an unsigned integer identifier (`order_id`, `user_id`).
pub fn parse_id(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 18 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Formats an amount as the original data does: at most two decimals, a
/// trailing zero dropped, whole values keep `.0` (`193.7`, `327.35`, `12.0`).
pub fn format_amount_cents(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    let (whole, frac) = (c / 100, c % 100);
    if frac % 10 == 0 {
        format!("{sign}{whole}.{}", frac / 10)
    } else {
        format!("{sign}{whole}.{frac:02}")
    }
}

/// Rounds an amount to whole cents, saturating at the ends of `i64` (NaN gives 0). For
/// amounts cleaning bounded (`--max-amount`); anything else uses [`checked_cents`].
pub fn to_cents(amount: f64) -> i64 {
    (amount * 100.0).round() as i64
}

/// Rounds an amount to whole cents; `None` when it is not finite or its cents do not fit
/// an `i64` (about ±92 million billion).
pub fn checked_cents(amount: f64) -> Option<i64> {
    let cents = (amount * 100.0).round();
    // 2^63 is exact in an f64; every f64 below it converts exactly.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    (cents.is_finite() && (-LIMIT..LIMIT).contains(&cents)).then_some(cents as i64)
}

#[cfg(test)]
mod tests {

    #[test]
    fn fast_decimals_equal_the_general_parse() {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            state >> 33
        };
        let mut checked = 0;
        for _ in 0..200_000 {
            let int_len = (next() % 9) as usize;
            let frac_len = (next() % 9) as usize;
            let digits = |n: usize, next: &mut dyn FnMut() -> u64| -> String {
                (0..n)
                    .map(|_| char::from(b'0' + (next() % 10) as u8))
                    .collect()
            };
            let int = digits(int_len, &mut next);
            let frac = digits(frac_len, &mut next);
            let sign = if next() % 4 == 0 { "-" } else { "" };
            let text = match next() % 3 {
                0 => format!("{sign}{int}"),
                1 => format!("{sign}{int}.{frac}"),
                _ => format!("{sign}{int}.{frac}e{}", next() % 5),
            };
            if let Some(v) = fast_decimal(&text) {
                let general: f64 = text.parse().expect("the fast path took a valid number");
                assert_eq!(v.to_bits(), general.to_bits(), "{text}");
                checked += 1;
            }
            let general = text.parse::<f64>().ok().filter(|_| {
                !text.contains('e')
                    && !text.ends_with('.')
                    && !text.trim_start_matches('-').starts_with('.')
            });
            assert_eq!(
                parse_amount(&text).map(f64::to_bits),
                general.filter(|v| v.is_finite()).map(f64::to_bits),
                "{text}"
            );
        }
        assert!(checked > 50_000, "the fast path was taken {checked} times");
        for (text, want) in [
            ("0.1", 0.1),
            ("-0", -0.0),
            ("999999999999999", 999_999_999_999_999.0),
        ] {
            assert_eq!(
                fast_decimal(text).map(f64::to_bits),
                Some(f64::to_bits(want))
            );
        }
        for text in [
            "",
            "-",
            ".5",
            "5.",
            "1.2.3",
            "+1",
            "1e5",
            "1234567890123456",
            " 1",
        ] {
            assert_eq!(fast_decimal(text), None, "{text:?}");
        }
    }
    use super::*;

    #[test]
    fn parses_seven_fields_with_crlf() {
        let l = parse_line(b"10000000\t5\tBooks\t12.5\tCash\tPending\t2024-01-01 00:00:00\r\n");
        match l {
            Line::Fields(f) => {
                assert_eq!(f[col::ORDER_ID], "10000000");
                assert_eq!(f[col::TIMESTAMP], "2024-01-01 00:00:00");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn classifies_structural_problems() {
        assert_eq!(parse_line(b"\r\n"), Line::Blank);
        assert_eq!(parse_line(HEADER.as_bytes()), Line::Header);
        assert_eq!(
            parse_line(b"1\t2\t3"),
            Line::Problem(LineProblem::TooFewFields(3))
        );
        assert_eq!(
            parse_line(b"1\t2\t3\t4\t5\t6\t7\t8"),
            Line::Problem(LineProblem::TooManyFields(8))
        );
        assert_eq!(
            parse_line(b"1\t2\t\xff\t4\t5\t6\t7"),
            Line::Problem(LineProblem::InvalidUtf8)
        );
    }

    #[test]
    fn permissive_matches_spark_reading() {
        let f = parse_line_permissive(b"1\t2\t\xffx\t4\t5\t6\t7\t8\t9\n").expect("row");
        assert_eq!(f[2].as_deref(), Some("\u{fffd}x"));
        assert_eq!(f[6].as_deref(), Some("7"));
        let f = parse_line_permissive(b"1\t2\t3").expect("row");
        assert_eq!(f[3], None);
        assert!(parse_line_permissive(HEADER.as_bytes()).is_none());
    }

    #[test]
    fn timestamps_are_checked_against_the_calendar() {
        assert!(valid_timestamp("2024-02-29 23:59:59"));
        assert!(!valid_timestamp("2023-02-29 10:00:00"));
        assert!(!valid_timestamp("2024-13-01 10:00:00"));
        assert!(!valid_timestamp("2024-01-01 24:00:00"));
        assert!(!valid_timestamp("2024-01-01T10:00:00"));
        assert!(!valid_timestamp("yesterday"));
    }

    #[test]
    fn java_double_grammar() {
        assert_eq!(parse_java_double(" 12.5 "), Some(12.5));
        assert_eq!(parse_java_double("1e3"), Some(1000.0));
        assert_eq!(parse_java_double("5."), Some(5.0));
        assert_eq!(parse_java_double(".5"), Some(0.5));
        assert_eq!(parse_java_double("2d"), Some(2.0));
        assert!(parse_java_double("NaN").is_some_and(f64::is_nan));
        for bad in [
            "", "abc", "12.3.4", "$4.10", "N/A", "12,50", "inf", "1e", ".",
        ] {
            assert_eq!(parse_java_double(bad), None, "{bad}");
        }
    }

    #[test]
    fn strict_amounts_and_ids() {
        assert_eq!(parse_amount("193.7"), Some(193.7));
        assert_eq!(parse_amount("-4"), Some(-4.0));
        for bad in ["", "1e3", "NaN", "5.", ".5", " 5", "abc"] {
            assert_eq!(parse_amount(bad), None, "{bad}");
        }
        assert_eq!(parse_id("10000000"), Some(10_000_000));
        assert_eq!(parse_id("-1"), None);
    }

    #[test]
    fn amount_formatting_follows_the_original() {
        assert_eq!(format_amount_cents(19370), "193.7");
        assert_eq!(format_amount_cents(32735), "327.35");
        assert_eq!(format_amount_cents(1200), "12.0");
        assert_eq!(format_amount_cents(-505), "-5.05");
        assert_eq!(to_cents(193.7), 19370);
    }

    #[test]
    fn checked_cents_refuses_what_an_i64_cannot_hold() {
        assert_eq!(checked_cents(193.7), Some(19370));
        assert_eq!(checked_cents(-0.004), Some(0));
        assert_eq!(checked_cents(99_999_999_999_999_999.0), None);
        assert_eq!(checked_cents(9.2e16), Some(9_200_000_000_000_000_000));
        assert_eq!(checked_cents(-9.2e16), Some(-9_200_000_000_000_000_000));
        assert_eq!(checked_cents(9.3e16), None);
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e300, -1e300] {
            assert_eq!(checked_cents(bad), None, "{bad}");
        }
        // The saturating conversion turns the same amount into i64::MAX.
        assert_eq!(to_cents(99_999_999_999_999_999.0), i64::MAX);
    }

    #[test]
    fn canonical_values_ignore_case_and_whitespace() {
        assert_eq!(
            canonical_value(col::PAYMENT_METHOD, " paypal "),
            Some("PayPal")
        );
        assert_eq!(canonical_value(col::STATUS, "SHIPPED"), Some("Shipped"));
        assert_eq!(canonical_value(col::PAYMENT_METHOD, "Credit Car"), None);
        assert_eq!(canonical_value(col::AMOUNT, "1"), None);
    }
}
