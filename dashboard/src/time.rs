//! Hours since the epoch (UTC): parsing, formatting and time buckets.

pub use ecom_jobs::calendar::{civil_from_days, days_from_civil};

use crate::query::{Bucket, QueryError};

fn digits(s: &str) -> Option<i64> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

fn date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (digits(&s[..4])?, digits(&s[5..7])?, digits(&s[8..10])?);
    let (m, d) = (u32::try_from(m).ok()?, u32::try_from(d).ok()?);
    if !(1..=12).contains(&m) || d == 0 {
        return None;
    }
    let days = days_from_civil(y, m, d);
    // Reject 2023-02-30 and the like: the date must round-trip.
    (civil_from_days(days) == (y, m, d)).then_some(days)
}

/// Parses `YYYY-MM-DDTHH:MM:SSZ` or `YYYY-MM-DD` into hours since the epoch;
/// the instant must be a whole hour.
pub fn parse_instant(name: &str, s: &str) -> Result<i64, QueryError> {
    let err = |why: &str| {
        QueryError(format!(
            "parameter {name}: {s:?} {why} (expected YYYY-MM-DD or YYYY-MM-DDTHH:00:00Z, UTC, whole hours)"
        ))
    };
    if s.len() == 10 {
        return date(s).map(|d| d * 24).ok_or_else(|| err("is not a date"));
    }
    let b = s.as_bytes();
    if b.len() != 20 || b[10] != b'T' || b[13] != b':' || b[16] != b':' || b[19] != b'Z' {
        return Err(err("is not an instant"));
    }
    let days = date(&s[..10]).ok_or_else(|| err("is not a valid date"))?;
    let (h, mi, se) = (
        digits(&s[11..13]).ok_or_else(|| err("has a bad hour"))?,
        digits(&s[14..16]).ok_or_else(|| err("has bad minutes"))?,
        digits(&s[17..19]).ok_or_else(|| err("has bad seconds"))?,
    );
    if h > 23 || mi > 59 || se > 59 {
        return Err(err("is not a valid time"));
    }
    if mi != 0 || se != 0 {
        return Err(err("is not on a whole hour"));
    }
    Ok(days * 24 + h)
}

/// Hours since the epoch of a data timestamp's hour (`YYYY-MM-DD HH...`).
pub fn hour_of_text(ts: &str) -> Option<i64> {
    let days = date(ts.get(..10)?)?;
    if ts.as_bytes().get(10) != Some(&b' ') {
        return None;
    }
    let h = digits(ts.get(11..13)?)?;
    (h <= 23).then_some(days * 24 + h)
}

/// `YYYY-MM-DDTHH:00:00Z` of an hour.
pub fn format_hour(hour: i64) -> String {
    let (y, m, d) = civil_from_days(hour.div_euclid(24));
    format!("{y:04}-{m:02}-{d:02}T{:02}:00:00Z", hour.rem_euclid(24))
}

/// The start of the bucket holding `hour`.
pub fn bucket_start(bucket: Bucket, hour: i64) -> i64 {
    let day = hour.div_euclid(24);
    match bucket {
        Bucket::Auto | Bucket::Hour => hour,
        Bucket::Day => day * 24,
        // 1970-01-01 was a Thursday: Monday-based weekday is (day + 3) mod 7.
        Bucket::Week => (day - (day + 3).rem_euclid(7)) * 24,
        Bucket::Month => {
            let (y, m, _) = civil_from_days(day);
            days_from_civil(y, m, 1) * 24
        }
    }
}

/// The start of the bucket after the one starting at `start`.
pub fn bucket_next(bucket: Bucket, start: i64) -> i64 {
    match bucket {
        Bucket::Auto | Bucket::Hour => start + 1,
        Bucket::Day => start + 24,
        Bucket::Week => start + 24 * 7,
        Bucket::Month => {
            let (y, m, _) = civil_from_days(start.div_euclid(24));
            let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            days_from_civil(y, m, 1) * 24
        }
    }
}

/// Number of buckets covering `[lo, hi)`, by arithmetic (nothing is built,
/// whatever the range; a count beyond `usize` saturates).
pub fn bucket_count(bucket: Bucket, lo: i64, hi: i64) -> usize {
    if hi <= lo {
        return 0;
    }
    let first = i128::from(bucket_start(bucket, lo));
    let (lo, hi) = (i128::from(lo), i128::from(hi));
    let n = match bucket {
        Bucket::Auto | Bucket::Hour => hi - lo,
        Bucket::Day => (hi - 1 - first) / 24 + 1,
        Bucket::Week => (hi - 1 - first) / (24 * 7) + 1,
        Bucket::Month => {
            let month = |hour: i128| {
                let (y, m, _) = civil_from_days(i64::try_from(hour.div_euclid(24)).unwrap_or(0));
                i128::from(y) * 12 + i128::from(m)
            };
            month(hi - 1) - month(first) + 1
        }
    };
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// The bucket `auto` picks: the finest giving at most `max_points` points.
pub fn auto_bucket(lo: i64, hi: i64, max_points: usize) -> Bucket {
    [Bucket::Hour, Bucket::Day, Bucket::Week]
        .into_iter()
        .find(|b| bucket_count(*b, lo, hi) <= max_points)
        .unwrap_or(Bucket::Month)
}

/// Milliseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn rfc3339_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let text = ecom_jobs::generate::format_epoch(secs).replacen(' ', "T", 1);
    format!("{text}.{:03}Z", ms.rem_euclid(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_as_rfc3339() {
        assert_eq!(rfc3339_ms(1_704_067_200_123), "2024-01-01T00:00:00.123Z");
        assert_eq!(rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn instants_hours_and_buckets() {
        assert_eq!(parse_instant("from", "1970-01-02"), Ok(24));
        assert_eq!(parse_instant("from", "2024-01-01T05:00:00Z"), Ok(473_357));
        assert!(parse_instant("from", "2023-02-29").is_err());
        assert!(parse_instant("from", "2024-01-01T05:00:01Z").is_err());
        assert!(parse_instant("from", "2024-01-01 05:00:00").is_err());
        assert_eq!(hour_of_text("2024-01-01 05:59:59"), Some(473_357));
        assert_eq!(format_hour(473_357), "2024-01-01T05:00:00Z");
        // 2024-01-03 is a Wednesday; its week starts Monday 2024-01-01.
        let wed = parse_instant("x", "2024-01-03T10:00:00Z").expect("wed");
        assert_eq!(
            format_hour(bucket_start(Bucket::Week, wed)),
            "2024-01-01T00:00:00Z"
        );
        let feb = parse_instant("x", "2024-02-29T10:00:00Z").expect("feb");
        assert_eq!(
            format_hour(bucket_start(Bucket::Month, feb)),
            "2024-02-01T00:00:00Z"
        );
        assert_eq!(
            format_hour(bucket_next(Bucket::Month, bucket_start(Bucket::Month, feb))),
            "2024-03-01T00:00:00Z"
        );
        let jan1 = 473_352;
        assert_eq!(bucket_count(Bucket::Hour, jan1, jan1 + 24 * 90), 2160);
        assert_eq!(bucket_count(Bucket::Day, jan1, jan1 + 24 * 90), 90);
        assert_eq!(bucket_count(Bucket::Month, jan1, jan1 + 24 * 90), 3);
        assert_eq!(auto_bucket(jan1, jan1 + 24 * 90, 200), Bucket::Day);
        assert_eq!(auto_bucket(jan1, jan1 + 100, 200), Bucket::Hour);
    }

    #[test]
    fn bucket_counts_match_the_buckets_built() {
        let jan1 = 473_352;
        for bucket in [Bucket::Hour, Bucket::Day, Bucket::Week, Bucket::Month] {
            for (lo, hi) in [
                (jan1, jan1 + 1),
                (jan1 + 5, jan1 + 24 * 400 + 7),
                (jan1 - 24 * 3 - 1, jan1 + 24 * 31),
                (-24 * 40 - 3, 24 * 40 + 5),
                (jan1, jan1),
            ] {
                let mut built = 0;
                let mut s = bucket_start(bucket, lo);
                while s < hi {
                    built += 1;
                    s = bucket_next(bucket, s);
                }
                assert_eq!(bucket_count(bucket, lo, hi), built, "{bucket:?} {lo}..{hi}");
            }
        }
    }

    #[test]
    fn huge_ranges_are_counted_without_building_them() {
        let lo = parse_instant("from", "0001-01-01").expect("from");
        let hi = parse_instant("to", "9999-12-31").expect("to");
        // About 87.6 million hours, 120,000 months: counted, not allocated.
        assert_eq!(bucket_count(Bucket::Hour, lo, hi), (hi - lo) as usize);
        assert!(bucket_count(Bucket::Hour, lo, hi) > 87_000_000);
        assert_eq!(bucket_count(Bucket::Month, lo, hi), 9999 * 12);
        assert_eq!(
            bucket_count(Bucket::Hour, i64::MIN / 2, i64::MAX / 2),
            i64::MAX as usize
        );
    }
}
