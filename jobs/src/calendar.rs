//! Dates of the proleptic Gregorian calendar and the data's `YYYY-MM-DD HH:MM:SS` times
//! (no time zone), as days and seconds since 1970-01-01: one implementation for the
//! generator, the cleaner, the producer's replay and the dashboard.

/// Days in a month (`0` for a month outside 1..=12).
pub fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a date (years counted from March, so that the leap day ends
/// them, in eras of 400 years).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let year_of_era = y.rem_euclid(400);
    let month_from_march = (i64::from(m) + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(d) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date (year, month, day) of days since 1970-01-01: the inverse of
/// [`days_from_civil`].
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let d = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let m = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    (year_of_era + era * 400 + i64::from(m <= 2), m, d)
}

/// Seconds since 1970-01-01 00:00:00 of a valid `YYYY-MM-DD HH:MM:SS` (digits, separators,
/// months, days of the month, hours, minutes and seconds all checked); `None` otherwise.
pub fn seconds_of(ts: &[u8]) -> Option<i64> {
    let b = ts;
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let n = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let (y, mo, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (h, mi, s) = (n(11..13)?, n(14..16)?, n(17..19)?);
    let valid = (1..=12).contains(&mo)
        && d >= 1
        && d <= days_in_month(y, mo)
        && h < 24
        && mi < 60
        && s < 60;
    valid.then(|| days_from_civil(i64::from(y), mo, d) * 86_400 + i64::from(h * 3600 + mi * 60 + s))
}

/// Writes `YYYY-MM-DD HH:MM:SS` of seconds since 1970-01-01 00:00:00 into `out` (appended).
pub fn write_time(seconds: i64, out: &mut String) {
    use std::fmt::Write as _;
    let (days, s) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    // Writing into a String cannot fail.
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        s / 3600,
        s % 3600 / 60,
        s % 60
    );
}

/// `YYYY-MM-DD HH:MM:SS` of seconds since 1970-01-01 00:00:00.
pub fn format_time(seconds: i64) -> String {
    let mut out = String::with_capacity(19);
    write_time(seconds, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_convert_both_ways_across_leap_days_and_centuries() {
        assert_eq!(seconds_of(b"1970-01-01 00:00:00"), Some(0));
        assert_eq!(seconds_of(b"1969-12-31 23:59:59"), Some(-1));
        assert_eq!(seconds_of(b"2024-01-01 00:00:00"), Some(1_704_067_200));
        assert_eq!(seconds_of(b"2024-03-01 01:02:03"), Some(1_709_254_923));
        for t in [
            "2000-02-29 12:34:56",
            "1900-02-28 23:59:59",
            "1900-03-01 00:00:00",
            "2024-12-31 23:59:59",
            "0001-01-01 00:00:00",
            "9999-12-31 23:59:59",
        ] {
            let s = seconds_of(t.as_bytes()).expect(t);
            assert_eq!(format_time(s), t);
        }
        // Every day of four centuries, in order, one day apart.
        let mut day = seconds_of(b"1800-01-01 00:00:00").expect("start");
        for _ in 0..146_097 {
            let t = format_time(day);
            assert_eq!(seconds_of(t.as_bytes()), Some(day), "{t}");
            day += 86_400;
        }
        assert_eq!(format_time(day), "2200-01-01 00:00:00");
        for bad in [
            "2023-02-29 00:00:00",
            "2024-13-01 00:00:00",
            "2024-01-01 24:00:00",
            "2023-1-01 00:00:00",
            "2024-01-01T00:00:00",
            "garbage",
        ] {
            assert_eq!(seconds_of(bad.as_bytes()), None, "{bad}");
        }
    }
}
