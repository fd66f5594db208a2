//! Names of the cleaning rules (drops) and fixes, shared by the generator's
//! ground truth, the cleaner and its report, and the bounds the rules check.

use serde::{Deserialize, Serialize};

use crate::record::{checked_cents, parse_amount};

/// Default largest amount a clean row keeps, in cents: 1,000,000.00, a thousand times the
/// largest amount of the original data (about 1,000). At most that much per row, a 64-bit
/// sum of cents stays exact for 92 billion rows (`i64::MAX / 10^8`), far beyond any run,
/// and a squared amount (the dashboard's variance) fits 128 bits for any count.
pub const DEFAULT_MAX_AMOUNT_CENTS: i64 = 100_000_000;

/// The largest `--max-amount` accepted, in cents: 1,000,000,000.00. Even there a 64-bit sum
/// of cents holds 92 million rows at the maximum; the aggregates check every sum anyway and
/// fail naming the file rather than wrap.
pub const MAX_AMOUNT_CEILING_CENTS: i64 = 100_000_000_000;

/// Parses a `--max-amount` value (a plain decimal such as `1000000` or `2500.50`) into cents:
/// positive and at most [`MAX_AMOUNT_CEILING_CENTS`]; the reason when it is not.
pub fn parse_max_amount(text: &str) -> Result<i64, String> {
    let amount = parse_amount(text)
        .ok_or_else(|| format!("{text:?} is not a plain decimal amount such as 1000000.00"))?;
    let cents = checked_cents(amount).unwrap_or(i64::MAX);
    if cents <= 0 {
        return Err(format!("{text:?} is not above zero"));
    }
    if cents > MAX_AMOUNT_CEILING_CENTS {
        return Err(format!(
            "{text:?} is above the ceiling of {} (sums of cents must stay exact)",
            crate::record::format_amount_cents(MAX_AMOUNT_CEILING_CENTS)
        ));
    }
    Ok(cents)
}

/// A rule that drops a row. Rules are checked in [`Rule::ALL`] order and a
/// dropped row is counted under the first rule it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// The line is not valid UTF-8.
    InvalidUtf8,
    /// Fewer than seven fields.
    TooFewFields,
    /// More than seven fields.
    TooManyFields,
    /// A field is empty (the seed's `na.drop`).
    MissingField,
    /// `amount` does not parse as a number (the seed's typed read made it null).
    UnparseableAmount,
    /// `order_id` or `user_id` is not an unsigned integer.
    UnparseableId,
    /// `amount` is zero or negative.
    NonpositiveAmount,
    /// `amount` is beyond `--max-amount` either way (its magnitude in cents is above it).
    AmountOutOfRange,
    /// `timestamp` is not a valid `YYYY-MM-DD HH:MM:SS`.
    UnparseableTimestamp,
    /// `category` is not in the allow-list (`--categories`).
    UnknownCategory,
    /// `payment_method` (after the typo fixes) is not in the allow-list (`--payment-methods`).
    UnknownPaymentMethod,
    /// `status` is not in the allow-list (`--statuses`).
    UnknownStatus,
    /// An `order_id` seen before in the same run (the first one is kept).
    DuplicateOrderId,
}

impl Rule {
    /// Every rule, in checking order.
    pub const ALL: [Rule; 13] = [
        Rule::InvalidUtf8,
        Rule::TooFewFields,
        Rule::TooManyFields,
        Rule::MissingField,
        Rule::UnparseableAmount,
        Rule::UnparseableId,
        Rule::NonpositiveAmount,
        Rule::AmountOutOfRange,
        Rule::UnparseableTimestamp,
        Rule::UnknownCategory,
        Rule::UnknownPaymentMethod,
        Rule::UnknownStatus,
        Rule::DuplicateOrderId,
    ];

    /// The rules the seed's Spark step applies (everything else is an extra).
    pub const SEED: [Rule; 3] = [
        Rule::TooFewFields,
        Rule::MissingField,
        Rule::UnparseableAmount,
    ];

    /// The snake_case name used in reports and flags.
    pub fn name(self) -> &'static str {
        match self {
            Rule::InvalidUtf8 => "invalid_utf8",
            Rule::TooFewFields => "too_few_fields",
            Rule::TooManyFields => "too_many_fields",
            Rule::MissingField => "missing_field",
            Rule::UnparseableAmount => "unparseable_amount",
            Rule::UnparseableId => "unparseable_id",
            Rule::NonpositiveAmount => "nonpositive_amount",
            Rule::AmountOutOfRange => "amount_out_of_range",
            Rule::UnparseableTimestamp => "unparseable_timestamp",
            Rule::UnknownCategory => "unknown_category",
            Rule::UnknownPaymentMethod => "unknown_payment_method",
            Rule::UnknownStatus => "unknown_status",
            Rule::DuplicateOrderId => "duplicate_order_id",
        }
    }

    /// Parses a name as printed by [`Rule::name`].
    pub fn from_name(name: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.name() == name)
    }
}

/// A fix that rewrites a value and keeps the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fix {
    /// `Credit Car` becomes `Credit Card`.
    CreditCardTypo,
    /// `Debit Car` becomes `Debit Card`.
    DebitCardTypo,
    /// A case or whitespace variant of a known value becomes its canonical spelling.
    NormalizedValue,
}

impl Fix {
    /// Every fix.
    pub const ALL: [Fix; 3] = [
        Fix::CreditCardTypo,
        Fix::DebitCardTypo,
        Fix::NormalizedValue,
    ];

    /// The snake_case name used in reports and flags.
    pub fn name(self) -> &'static str {
        match self {
            Fix::CreditCardTypo => "credit_card_typo",
            Fix::DebitCardTypo => "debit_card_typo",
            Fix::NormalizedValue => "normalized_value",
        }
    }

    /// Parses a name as printed by [`Fix::name`].
    pub fn from_name(name: &str) -> Option<Fix> {
        Fix::ALL.into_iter().find(|f| f.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_amounts_parse_to_cents_within_the_ceiling() {
        assert_eq!(parse_max_amount("1000000"), Ok(DEFAULT_MAX_AMOUNT_CENTS));
        assert_eq!(parse_max_amount("2500.5"), Ok(250_050));
        assert_eq!(parse_max_amount("0.01"), Ok(1));
        assert_eq!(
            parse_max_amount("1000000000.00"),
            Ok(MAX_AMOUNT_CEILING_CENTS)
        );
        for bad in ["0", "-5", "0.00", "1e6", "abc", "", "1000000000.01"] {
            assert!(parse_max_amount(bad).is_err(), "{bad}");
        }
        let err = parse_max_amount("99999999999999999").expect_err("over the ceiling");
        assert!(err.contains("ceiling"), "{err}");
    }

    #[test]
    fn names_round_trip() {
        for rule in Rule::ALL {
            assert_eq!(Rule::from_name(rule.name()), Some(rule));
        }
        for fix in Fix::ALL {
            assert_eq!(Fix::from_name(fix.name()), Some(fix));
        }
        assert_eq!(Rule::from_name("nope"), None);
    }
}
