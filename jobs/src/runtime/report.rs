//! Where a stage's summary goes: the last line of standard output, and the pod's
//! termination message.
//!
//! The kubelet keeps at most 4096 bytes of a container's termination-message file and drops
//! the rest, which would cut the JSON line the operator reads its counts from. A summary over
//! that size is written without its lists and long texts (the counts stay); if that is still
//! too long, its largest fields go, biggest first, until it fits.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Bytes of a termination message the kubelet keeps.
pub const MAX_TERMINATION_MESSAGE: usize = 4096;

/// Texts longer than this are left out of a shortened summary.
const MAX_KEPT_TEXT: usize = 128;

/// Fields a shortened summary keeps to the end: how the stage ended.
const ALWAYS_KEPT: [&str; 4] = ["stage", "ok", "attempts", "elapsed_ms"];

/// The kubelet's default termination-message path.
pub const TERMINATION_LOG: &str = "/dev/termination-log";

/// The JSON line to write to the termination-message file for `summary`: the whole summary
/// when it fits in [`MAX_TERMINATION_MESSAGE`] bytes, else a shortened one that does.
pub fn termination_message(summary: &Value) -> String {
    let line = summary.to_string();
    if line.len() <= MAX_TERMINATION_MESSAGE {
        return line;
    }
    let mut short = without_lists(summary);
    let mut line = short.to_string();
    let Value::Object(fields) = &mut short else {
        return line;
    };
    while line.len() > MAX_TERMINATION_MESSAGE {
        let biggest = fields
            .iter()
            .filter(|(k, _)| !ALWAYS_KEPT.contains(&k.as_str()))
            .max_by_key(|(k, v)| (v.to_string().len(), k.len()))
            .map(|(k, _)| k.clone());
        match biggest {
            Some(key) => {
                fields.remove(&key);
            }
            None => break,
        }
        line = Value::Object(fields.clone()).to_string();
    }
    line
}

/// `v` without arrays and without texts over [`MAX_KEPT_TEXT`] bytes, at any depth.
fn without_lists(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| match v {
                    Value::Array(_) => false,
                    Value::String(s) => s.len() <= MAX_KEPT_TEXT,
                    _ => true,
                })
                .map(|(k, v)| (k.clone(), without_lists(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Where the summary is also written: `explicit` when given (an empty path: nowhere), else
/// [`TERMINATION_LOG`] when it is writable (in a pod), else nowhere.
pub fn summary_path(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return (!p.as_os_str().is_empty()).then(|| p.to_path_buf());
    }
    let default = Path::new(TERMINATION_LOG);
    std::fs::OpenOptions::new()
        .append(true)
        .open(default)
        .ok()
        .map(|_| default.to_path_buf())
}

/// Prints `summary` as the last line of standard output and writes its termination message
/// to `file`; a file that cannot be written is logged, not fatal.
pub fn emit(summary: &Value, file: Option<&Path>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{summary}");
    let _ = out.flush();
    if let Some(path) = file {
        if let Err(e) = std::fs::write(path, termination_message(summary)) {
            tracing::warn!(file = %path.display(), error = %e, "cannot write the summary file");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Map};

    #[test]
    fn a_short_summary_is_written_whole() {
        let s = json!({"ok": true, "rows_in": 10, "inputs": ["a", "b"], "stage": "clean"});
        assert_eq!(termination_message(&s), s.to_string());
    }

    #[test]
    fn a_long_summary_keeps_its_counts_and_fits() {
        let files: Vec<String> = (0..400)
            .map(|i| format!("hdfs://nn:9000/raw/part-{i:05}.tsv"))
            .collect();
        let s = json!({
            "ok": true, "stage": "clean", "rows_in": 200000, "rows_out": 192766,
            "dropped": {"missing_field": 904, "too_few_fields": 913},
            "report": {"rows_in": 200000, "inputs": files.clone()},
            "inputs": files, "output": "x".repeat(500)
        });
        assert!(s.to_string().len() > MAX_TERMINATION_MESSAGE);
        let m = termination_message(&s);
        assert!(m.len() <= MAX_TERMINATION_MESSAGE, "{}", m.len());
        let back: Value = serde_json::from_str(&m).expect("valid JSON");
        assert_eq!(
            back,
            json!({
                "ok": true, "stage": "clean", "rows_in": 200000, "rows_out": 192766,
                "dropped": {"missing_field": 904, "too_few_fields": 913},
                "report": {"rows_in": 200000}
            })
        );
    }

    #[test]
    fn the_biggest_fields_go_first_and_the_outcome_stays() {
        let mut offsets = Map::new();
        for i in 0..1000 {
            offsets.insert(format!("{i}"), json!(i * 1000));
        }
        let s = json!({"stage": "sink", "ok": true, "attempts": 1, "records": 5,
                       "resumed_from": offsets});
        let m = termination_message(&s);
        assert!(m.len() <= MAX_TERMINATION_MESSAGE, "{}", m.len());
        let back: Value = serde_json::from_str(&m).expect("valid JSON");
        assert_eq!(
            back,
            json!({"stage": "sink", "ok": true, "attempts": 1, "records": 5})
        );
    }

    #[test]
    fn an_empty_explicit_path_means_no_file() {
        assert_eq!(summary_path(Some(Path::new(""))), None);
        assert_eq!(
            summary_path(Some(Path::new("/tmp/s.json"))),
            Some(PathBuf::from("/tmp/s.json"))
        );
    }
}
