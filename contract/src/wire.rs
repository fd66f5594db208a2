//! How the HBase Thrift server speaks: the CRD's `hbase.thriftTransport` and
//! `hbase.thriftProtocol`, the binary's `--hbase-transport` and `--hbase-protocol` (and their
//! environment variables), and the client's settings are these two enums. Both must match
//! the server's flags, which it does not announce.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Transport of the HBase Thrift server (how messages are delimited on the wire).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum ThriftTransport {
    /// The server's default: a plain byte stream.
    #[default]
    Buffered,
    /// Length-prefixed frames (server flag -f/--framed).
    Framed,
}

/// Protocol of the HBase Thrift server (how values are encoded).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum ThriftProtocol {
    /// The server's default binary protocol.
    #[default]
    Binary,
    /// The compact protocol (server flag -c/--compact).
    Compact,
}

/// A value of one of the wire enums that is not one of its spellings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownValue {
    /// What was given.
    pub given: String,
    /// The accepted spellings.
    pub expected: &'static [&'static str],
}

impl fmt::Display for UnknownValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not one of {}",
            self.given,
            self.expected.join(", ")
        )
    }
}

impl std::error::Error for UnknownValue {}

/// The spellings of a wire enum, shared by `as_str`, `FromStr` and `Display`.
macro_rules! spelled {
    ($ty:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];
            /// Every spelling, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            /// The spelling on the wire, in flags and in environment variables.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $text),+
                }
            }
        }

        impl FromStr for $ty {
            type Err = UnknownValue;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str().eq_ignore_ascii_case(s.trim()))
                    .ok_or_else(|| UnknownValue {
                        given: s.to_string(),
                        expected: Self::NAMES,
                    })
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

spelled!(ThriftTransport {
    Buffered => "buffered",
    Framed => "framed",
});
spelled!(ThriftProtocol {
    Binary => "binary",
    Compact => "compact",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip_through_text_and_serde() {
        for t in ThriftTransport::ALL {
            assert_eq!(t.as_str().parse::<ThriftTransport>(), Ok(*t));
            let json = serde_json::to_string(t).expect("serialise");
            assert_eq!(json, format!("\"{}\"", t.as_str()));
        }
        for p in ThriftProtocol::ALL {
            assert_eq!(p.to_string().parse::<ThriftProtocol>(), Ok(*p));
        }
        assert_eq!("Framed".parse(), Ok(ThriftTransport::Framed));
    }

    #[test]
    fn an_unknown_spelling_names_the_choices() {
        let err = "json".parse::<ThriftProtocol>().expect_err("unknown");
        assert_eq!(err.to_string(), "\"json\" is not one of binary, compact");
    }
}
