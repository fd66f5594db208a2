//! Comparing two answers of the API: numbers within a relative tolerance,
//! everything else exactly.

use serde_json::Value;

/// Whether two answers are equal, numbers within a relative `1e-9` (means
/// and deviations are computed in different orders); `skip` names keys
/// whose values are not compared (e.g. `last_update`).
pub fn approx_eq(a: &Value, b: &Value, skip: &[&str]) -> Result<(), String> {
    fn go(a: &Value, b: &Value, path: &str, skip: &[&str]) -> Result<(), String> {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => {
                let (x, y) = (
                    x.as_f64().unwrap_or(f64::NAN),
                    y.as_f64().unwrap_or(f64::NAN),
                );
                if (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0) {
                    Ok(())
                } else {
                    Err(format!("{path}: {x} != {y}"))
                }
            }
            (Value::Array(x), Value::Array(y)) => {
                if x.len() != y.len() {
                    return Err(format!("{path}: {} items != {}", x.len(), y.len()));
                }
                x.iter()
                    .zip(y)
                    .enumerate()
                    .try_for_each(|(i, (x, y))| go(x, y, &format!("{path}[{i}]"), skip))
            }
            (Value::Object(x), Value::Object(y)) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    if skip.contains(&k.as_str()) {
                        continue;
                    }
                    match (x.get(k), y.get(k)) {
                        (Some(x), Some(y)) => go(x, y, &format!("{path}.{k}"), skip)?,
                        _ => return Err(format!("{path}.{k}: present on one side only")),
                    }
                }
                Ok(())
            }
            _ if a == b => Ok(()),
            _ => Err(format!("{path}: {a} != {b}")),
        }
    }
    go(a, b, "$", skip)
}
