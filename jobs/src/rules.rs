//! Names of the cleaning rules (drops) and fixes, shared by the generator's
//! ground truth, the cleaner and its report.

use serde::{Deserialize, Serialize};

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
    /// `timestamp` is not a valid `YYYY-MM-DD HH:MM:SS`.
    UnparseableTimestamp,
    /// An `order_id` seen before in the same run (the first one is kept).
    DuplicateOrderId,
}

impl Rule {
    /// Every rule, in checking order.
    pub const ALL: [Rule; 9] = [
        Rule::InvalidUtf8,
        Rule::TooFewFields,
        Rule::TooManyFields,
        Rule::MissingField,
        Rule::UnparseableAmount,
        Rule::UnparseableId,
        Rule::NonpositiveAmount,
        Rule::UnparseableTimestamp,
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
            Rule::UnparseableTimestamp => "unparseable_timestamp",
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
