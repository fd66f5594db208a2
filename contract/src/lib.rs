//! The one contract between the operator and the `ecom` binary.
//!
//! The operator builds each stage's command line and environment from the types here
//! ([`command`], [`env`]); the binary declares its flags with the same names, and a test
//! parses every golden Job's command line with the binary's own parser. Each stage prints
//! a typed [`summary`] that the operator deserialises for its status counts. The Thrift
//! [`wire`] settings are defined once for the CRD, the flags and the HBase client.
//!
//! The crate has no heavy dependencies (serde, and schemars behind the `schema` feature),
//! so both sides take it without pulling the other's.

pub mod command;
pub mod env;
pub mod summary;
pub mod wire;
