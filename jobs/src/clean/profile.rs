//! The report's column aggregates ([`ColumnProfile`]) of clean rows: count, bounds, the sum
//! of amounts and the rows per value of the text columns of few values.

use std::collections::BTreeMap;

use ecom_contract::summary::{Bound, ColumnProfile, PROFILE_MAX_VALUES};
use polars::prelude::*;

/// The profile of every column of `df` (clean rows, timestamps as text).
pub fn profile(df: &DataFrame) -> PolarsResult<BTreeMap<String, ColumnProfile>> {
    let mut out = BTreeMap::new();
    for column in df.columns() {
        let series = column.as_materialized_series();
        let p = match series.dtype() {
            DataType::Int64 => integers(series.i64()?),
            DataType::Float64 => decimals(series.f64()?),
            DataType::String => texts(series.str()?),
            _ => continue,
        };
        out.insert(column.name().to_string(), p);
    }
    Ok(out)
}

fn integers(c: &Int64Chunked) -> ColumnProfile {
    ColumnProfile {
        non_null: (c.len() - c.null_count()) as u64,
        min: c.min().map(Bound::Int),
        max: c.max().map(Bound::Int),
        ..ColumnProfile::default()
    }
}

fn decimals(c: &Float64Chunked) -> ColumnProfile {
    let non_null = (c.len() - c.null_count()) as u64;
    ColumnProfile {
        non_null,
        min: c.min().map(Bound::Float),
        max: c.max().map(Bound::Float),
        sum: (non_null > 0).then(|| c.sum().unwrap_or(0.0)),
        ..ColumnProfile::default()
    }
}

/// Bounds (text order, which is time order for `YYYY-MM-DD HH:MM:SS`) and, while there are at
/// most [`PROFILE_MAX_VALUES`] of them, rows per value (looked up in a short list: the clean
/// columns have a handful of values).
fn texts(c: &StringChunked) -> ColumnProfile {
    let mut counts: Option<Vec<(&str, u64)>> = Some(Vec::new());
    let (mut min, mut max): (Option<&str>, Option<&str>) = (None, None);
    let mut non_null = 0u64;
    for v in c.iter().flatten() {
        non_null += 1;
        if min.is_none_or(|m| v < m) {
            min = Some(v);
        }
        if max.is_none_or(|m| v > m) {
            max = Some(v);
        }
        if let Some(list) = &mut counts {
            if let Some((_, n)) = list.iter_mut().find(|(k, _)| *k == v) {
                *n += 1;
            } else if list.len() < PROFILE_MAX_VALUES {
                list.push((v, 1));
            } else {
                counts = None;
            }
        }
    }
    ColumnProfile {
        non_null,
        min: min.map(|m| Bound::Text(m.to_string())),
        max: max.map(|m| Bound::Text(m.to_string())),
        sum: None,
        values: counts.map(|l| l.into_iter().map(|(k, n)| (k.to_string(), n)).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_give_bounds_sums_and_capped_value_counts() {
        let many: Vec<String> = (0..=PROFILE_MAX_VALUES).map(|i| format!("v{i}")).collect();
        let n = many.len();
        let df = df!(
            "order_id" => (0..n as i64).map(|i| Some(i * 3)).collect::<Vec<_>>(),
            "amount" => (0..n).map(|i| if i == 0 { None } else { Some(i as f64 / 4.0) }).collect::<Vec<_>>(),
            "status" => (0..n).map(|i| if i % 2 == 0 { "a" } else { "b" }).collect::<Vec<_>>(),
            "many" => many,
        )
        .expect("frame");
        let p = profile(&df).expect("profile");
        let id = &p["order_id"];
        assert_eq!(id.non_null, n as u64);
        assert_eq!(
            (id.min.clone(), id.max.clone()),
            (Some(Bound::Int(0)), Some(Bound::Int(3 * (n as i64 - 1))))
        );
        let amount = &p["amount"];
        assert_eq!(amount.non_null, n as u64 - 1);
        let expected: f64 = (1..n).map(|i| i as f64 / 4.0).sum();
        assert_eq!(amount.sum, Some(expected));
        assert_eq!(amount.min, Some(Bound::Float(0.25)));
        let status = p["status"].values.clone().expect("counts");
        assert_eq!(status.values().sum::<u64>(), n as u64);
        assert_eq!(p["status"].min, Some(Bound::Text("a".into())));
        assert_eq!(p["many"].values, None, "past the cap");
        assert_eq!(p["many"].non_null, n as u64);
        // Merging two halves gives the profile of the whole.
        let (a, b) = (df.slice(0, 10), df.slice(10, n));
        let (mut pa, pb) = (profile(&a).expect("a"), profile(&b).expect("b"));
        for (name, q) in &pb {
            pa.get_mut(name).expect("column").merge(q);
        }
        assert_eq!(pa["order_id"], p["order_id"]);
        assert_eq!(pa["status"], p["status"]);
        assert_eq!(pa["many"], p["many"]);
    }
}
