//! The clean layer's `timestamp` column: text (`YYYY-MM-DD HH:MM:SS`) while rows are cleaned,
//! partitioned and loaded; on disk, in the full-rules mode, a Parquet timestamp (microseconds,
//! no time zone: the data's times carry none), so Spark, DuckDB or pyarrow read a time type
//! and prune on it. `--seed-compat` keeps the seed's text column.

use polars::prelude::*;

use super::CleanConfig;

/// The column's name.
const COLUMN: &str = "timestamp";
const MICROS_PER_SECOND: i64 = 1_000_000;

/// The stored type of `timestamp` in a configuration.
pub fn stored_type(cfg: &CleanConfig) -> DataType {
    if cfg.seed_compat {
        DataType::String
    } else {
        DataType::Datetime(TimeUnit::Microseconds, None)
    }
}

/// `df` with its text `timestamp` column in the stored type of `cfg`. In the full mode every
/// value is valid (rows with another are dropped by a rule); one that is not is an error
/// naming it.
pub fn to_stored(mut df: DataFrame, cfg: &CleanConfig) -> PolarsResult<DataFrame> {
    if cfg.seed_compat {
        return Ok(df);
    }
    let text = df.column(COLUMN)?.str()?.clone();
    let mut micros = Vec::with_capacity(text.len());
    for v in text.iter() {
        micros.push(match v {
            None => None,
            Some(t) => Some(micros_of(t).ok_or_else(|| {
                PolarsError::ComputeError(
                    format!("timestamp {t:?} is not YYYY-MM-DD HH:MM:SS").into(),
                )
            })?),
        });
    }
    let typed = Int64Chunked::from_iter_options(COLUMN.into(), micros.into_iter())
        .into_datetime(TimeUnit::Microseconds, None)
        .into_series();
    df.with_column(typed.into())?;
    Ok(df)
}

/// `df` with a `timestamp` stored as a Parquet timestamp turned back into text; a text
/// column (seed-compat output, or output of versions that wrote text) is left as it is.
pub fn to_text(mut df: DataFrame) -> PolarsResult<DataFrame> {
    let column = df.column(COLUMN)?;
    let per_micro = match column.dtype() {
        DataType::Datetime(TimeUnit::Nanoseconds, _) => Divide::By(1_000),
        DataType::Datetime(TimeUnit::Microseconds, _) => Divide::By(1),
        DataType::Datetime(TimeUnit::Milliseconds, _) => Divide::Times(1_000),
        _ => return Ok(df),
    };
    let physical = column
        .as_materialized_series()
        .to_physical_repr()
        .into_owned();
    let values = physical.i64()?;
    let mut text = StringChunkedBuilder::new(COLUMN.into(), values.len());
    let mut buf = String::with_capacity(19);
    for v in values.iter() {
        match v {
            None => text.append_null(),
            Some(v) => {
                let micros = match per_micro {
                    Divide::By(n) => v.div_euclid(n),
                    Divide::Times(n) => v.saturating_mul(n),
                };
                write_text(micros, &mut buf);
                text.append_value(&buf);
            }
        }
    }
    df.with_column(text.finish().into_series().into())?;
    Ok(df)
}

enum Divide {
    By(i64),
    Times(i64),
}

/// Microseconds since 1970-01-01 00:00:00 of a valid `YYYY-MM-DD HH:MM:SS`.
pub fn micros_of(t: &str) -> Option<i64> {
    crate::calendar::seconds_of(t.as_bytes()).map(|s| s * MICROS_PER_SECOND)
}

/// Writes `YYYY-MM-DD HH:MM:SS` of microseconds since 1970-01-01 00:00:00 (fractions
/// dropped) into `out`, replacing what it held.
fn write_text(micros: i64, out: &mut String) {
    out.clear();
    crate::calendar::write_time(micros.div_euclid(MICROS_PER_SECOND), out);
}

/// `YYYY-MM-DD HH:MM:SS` of microseconds since 1970-01-01 00:00:00 (fractions dropped).
pub fn text_of(micros: i64) -> String {
    let mut out = String::with_capacity(19);
    write_text(micros, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_convert_both_ways_across_leap_days_and_eras() {
        assert_eq!(micros_of("1970-01-01 00:00:00"), Some(0));
        assert_eq!(micros_of("1970-01-02 00:00:01"), Some(86_401_000_000));
        assert_eq!(micros_of("1969-12-31 23:59:59"), Some(-1_000_000));
        // 2024-03-01 is 19,783 days after 1970-01-01.
        assert_eq!(
            micros_of("2024-03-01 00:00:00"),
            Some(19_783 * 86_400_000_000)
        );
        for t in [
            "2000-02-29 12:34:56",
            "1900-02-28 23:59:59",
            "1900-03-01 00:00:00",
            "2024-02-29 00:00:00",
            "2024-12-31 23:59:59",
            "0001-01-01 00:00:00",
            "9999-12-31 23:59:59",
        ] {
            let m = micros_of(t).expect(t);
            assert_eq!(text_of(m), t);
        }
        assert_eq!(micros_of("2023-02-29 00:00:00"), None);
        assert_eq!(micros_of("2023-1-01 00:00:00"), None);
    }

    #[test]
    fn frames_store_typed_times_in_full_mode_and_read_back_as_text() {
        let times = ["2024-01-15 10:23:45", "2023-12-31 23:59:59"];
        let df = df!("timestamp" => times.map(Some).to_vec(), "x" => [1i64, 2]).expect("frame");
        let full = CleanConfig::default();
        let stored = to_stored(df.clone(), &full).expect("stored");
        assert_eq!(
            stored.column("timestamp").expect("ts").dtype(),
            &stored_type(&full)
        );
        // Polars itself reads the stored values as the same wall-clock times.
        let shown = stored
            .column("timestamp")
            .expect("ts")
            .cast(&DataType::String)
            .expect("cast");
        assert_eq!(
            shown.str().expect("text").get(0),
            Some("2024-01-15 10:23:45.000000")
        );
        assert_eq!(to_text(stored).expect("text"), df);
        let compat = CleanConfig {
            seed_compat: true,
            ..CleanConfig::default()
        };
        assert_eq!(to_stored(df.clone(), &compat).expect("compat"), df);
        assert_eq!(to_text(df.clone()).expect("text as is"), df);
        let bad = df!("timestamp" => ["not a time"]).expect("frame");
        let err = to_stored(bad, &full).expect_err("invalid");
        assert!(err.to_string().contains("\"not a time\""), "{err}");
    }
}
