//! The operator's side of the contract, checked against the binary's parser: every
//! container of every golden Job, StatefulSet and Deployment the operator renders
//! (`operator/tests/golden/`) must parse as an `ecom` command line, with its environment
//! applied as the flags that read it, and set no variable the binary does not read.

use std::collections::BTreeSet;
use std::path::Path;

use clap::{CommandFactory, Parser};
use ecom_contract::env;
use serde_json::Value;

use crate::Cli;

/// Variables the binary reads itself rather than through a flag.
const READ_DIRECTLY: [&str; 5] = [
    env::KAFKA_SASL_USERNAME,
    env::KAFKA_SASL_PASSWORD,
    env::JOB_COMPLETION_INDEX,
    env::SHARD_INDEX,
    env::RUST_LOG,
];

/// `(subcommand, long flag)` of every argument read from `name`, over all subcommands.
fn flags_reading(cmd: &clap::Command, name: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for sub in cmd.get_subcommands() {
        for arg in sub.get_arguments() {
            if arg.get_env().and_then(|e| e.to_str()) == Some(name) {
                if let Some(long) = arg.get_long() {
                    found.push((sub.get_name().to_string(), long.to_string()));
                }
            }
        }
    }
    found
}

/// The containers of a golden object (Jobs, StatefulSets and Deployments all have a pod
/// template at `spec.template`).
fn containers(object: &Value) -> Vec<&Value> {
    let spec = &object["spec"]["template"]["spec"];
    ["initContainers", "containers"]
        .iter()
        .filter_map(|k| spec[k].as_array())
        .flatten()
        .collect()
}

#[test]
fn every_golden_container_parses_with_the_binarys_flags() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../operator/tests/golden");
    let cli = Cli::command();
    let mut checked = BTreeSet::new();
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .expect("golden directory")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let object: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
        let name = path.display();
        for c in containers(&object) {
            if c["command"] != serde_json::json!(["ecom"]) {
                continue;
            }
            let mut argv: Vec<String> = vec!["ecom".into()];
            for a in c["args"].as_array().expect("args") {
                let a = a.as_str().expect("text");
                argv.push(a.replace(&format!("$({})", env::JOB_COMPLETION_INDEX), "0"));
            }
            let subcommand = argv[1].clone();
            for e in c["env"].as_array().into_iter().flatten() {
                let var = e["name"].as_str().expect("name");
                if READ_DIRECTLY.contains(&var) || var.starts_with(env::KAFKA_PROPERTY_PREFIX) {
                    continue;
                }
                let flags: Vec<String> = flags_reading(&cli, var)
                    .into_iter()
                    .filter(|(sub, _)| *sub == subcommand)
                    .map(|(_, long)| long)
                    .collect();
                assert!(
                    !flags.is_empty(),
                    "{name}: the operator sets {var} for `ecom {subcommand}`, which reads no such variable"
                );
                let value = e["value"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{name}: {var} has no literal value"));
                for long in flags {
                    argv.push(format!("--{long}"));
                    argv.push(value.to_string());
                }
            }
            if let Err(e) = Cli::try_parse_from(&argv) {
                panic!("{name}: {argv:?} does not parse:\n{e}");
            }
            checked.insert(subcommand);
        }
    }
    // Every stage the operator runs was seen.
    assert_eq!(
        checked,
        [
            "clean",
            "dashboard",
            "load",
            "produce",
            "purge",
            "sink",
            "stream"
        ]
        .map(String::from)
        .into_iter()
        .collect()
    );
}
