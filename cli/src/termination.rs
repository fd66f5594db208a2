//! The stage summary as a pod's termination message. The kubelet keeps at most 4096 bytes of
//! a container's termination-message file and drops the rest, which would cut the JSON line
//! the operator reads its counts from. A summary over that size is written without its lists
//! and long texts (the counts stay), and as just the counts the operator reads (integers under
//! dotted keys, whole fields up to the limit) if that is still too long.

use serde_json::{Map, Value};

/// Bytes of a termination message the kubelet keeps.
pub const MAX_TERMINATION_MESSAGE: usize = 4096;

/// Texts longer than this are left out of a shortened summary.
const MAX_KEPT_TEXT: usize = 128;

/// The JSON line to write to the termination-message file for `summary`: the whole summary
/// when it fits in [`MAX_TERMINATION_MESSAGE`] bytes, else a shortened one that does.
pub fn message(summary: &Value) -> String {
    let line = summary.to_string();
    if line.len() <= MAX_TERMINATION_MESSAGE {
        return line;
    }
    let short = without_lists(summary).to_string();
    if short.len() <= MAX_TERMINATION_MESSAGE {
        return short;
    }
    // What the operator reads of a summary (its integers under dotted keys), and `ok`.
    let mut numbers: Map<String, Value> = ecom_operator::observe::summary_counts(summary)
        .into_iter()
        .map(|(k, v)| (k, Value::from(v)))
        .collect();
    if let Some(ok) = summary.get("ok") {
        numbers.insert("ok".to_string(), ok.clone());
    }
    let mut line = Value::Object(numbers).to_string();
    // Only a summary with hundreds of counters gets here; keep what fits, whole fields only.
    while line.len() > MAX_TERMINATION_MESSAGE {
        let Some(cut) = line[..line.len() - 1].rfind(',') else {
            return "{}".to_string();
        };
        line.truncate(cut);
        line.push('}');
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_short_summary_is_written_whole() {
        let s = json!({"ok": true, "rows_in": 10, "inputs": ["a", "b"], "stage": "clean"});
        assert_eq!(message(&s), s.to_string());
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
        let m = message(&s);
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
    fn hundreds_of_counters_are_cut_at_a_whole_field() {
        let mut counters = Map::new();
        for i in 0..1000 {
            counters.insert(format!("counter_{i:04}"), json!(i));
        }
        let s = json!({"ok": true, "counters": counters});
        let m = message(&s);
        assert!(m.len() <= MAX_TERMINATION_MESSAGE, "{}", m.len());
        let back: Value = serde_json::from_str(&m).expect("valid JSON");
        let kept = back.as_object().expect("object");
        assert!(kept.len() > 100, "{}", kept.len());
        assert_eq!(back["counters.counter_0000"], 0);
    }
}
