//! RFC 3339 timestamps to unix nanoseconds.
//!
//! Every CRI line and every docker record carries one, so this runs once per line; a general date
//! library would cost more than the rest of the line. The layout is fixed except for the fraction
//! and the offset, so we read digits at known positions and check ranges ourselves:
//!
//! `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`
//!
//! Accepted: `T`/`t` separator, `Z`/`z`, any number of fraction digits (nanoseconds keep the
//! first nine, as runtimes never write more), second 60 (a leap second, counted as the next
//! minute's second 0). Anything else, or a time outside the `i64` nanosecond range
//! (1677-09-21 … 2262-04-11), is rejected with `None` so the caller can fall back to "now".

const NANOS_PER_SEC: i64 = 1_000_000_000;

/// Parses an RFC 3339 timestamp to nanoseconds since the unix epoch.
pub(crate) fn parse_rfc3339(s: &[u8]) -> Option<i64> {
    let year = digits(s, 0, 4)?;
    let month = digits(s, 5, 2)?;
    let day = digits(s, 8, 2)?;
    let hour = digits(s, 11, 2)?;
    let minute = digits(s, 14, 2)?;
    let second = digits(s, 17, 2)?;
    let separators_ok = s.get(4) == Some(&b'-')
        && s.get(7) == Some(&b'-')
        && matches!(s.get(10), Some(b'T' | b't'))
        && s.get(13) == Some(&b':')
        && s.get(16) == Some(&b':');
    if !separators_ok
        || !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(i64::from(year), month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }

    let mut pos = 19;
    let mut nanos: i64 = 0;
    if s.get(pos) == Some(&b'.') {
        pos += 1;
        let digits_start = pos;
        let mut scale = NANOS_PER_SEC;
        while let Some(&b) = s.get(pos) {
            if !b.is_ascii_digit() {
                break;
            }
            if scale > 1 {
                scale /= 10;
                nanos += i64::from(b - b'0') * scale;
            }
            pos += 1;
        }
        if pos == digits_start {
            return None;
        }
    }

    let offset_secs: i64 = match s.get(pos..)? {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), rest @ ..] if rest.len() == 5 && rest.get(2) == Some(&b':') => {
            let oh = digits(rest, 0, 2)?;
            let om = digits(rest, 3, 2)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let off = i64::from(oh * 3600 + om * 60);
            if *sign == b'-' {
                -off
            } else {
                off
            }
        }
        _ => return None,
    };

    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_secs;
    // Borrow one second for negative times so the product stays in range down to `i64::MIN`.
    if secs < 0 && nanos > 0 {
        (secs + 1)
            .checked_mul(NANOS_PER_SEC)?
            .checked_add(nanos - NANOS_PER_SEC)
    } else {
        secs.checked_mul(NANOS_PER_SEC)?.checked_add(nanos)
    }
}

/// Reads `len` ASCII digits at `at` as a number; `None` if any is missing or not a digit.
#[inline(always)]
fn digits(s: &[u8], at: usize, len: usize) -> Option<u32> {
    let field = s.get(at..at.checked_add(len)?)?;
    field.iter().try_fold(0u32, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
    })
}

/// Whether `year` (proleptic Gregorian) has a February 29th. Shared with the `timestamp` stage.
pub(crate) fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

pub(crate) fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400; // [0, 399]
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 }; // March = 0
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Expected values computed with `date -u -d <ts> +%s%N` (GNU coreutils).
    #[test]
    fn known_values() {
        let cases: &[(&str, i64)] = &[
            ("1970-01-01T00:00:00Z", 0),
            ("2026-11-24T10:00:00.123456789Z", 1_795_514_400_123_456_789),
            ("2016-10-06T00:17:09.669794202+01:00", 1_475_709_429_669_794_202),
            ("2000-02-29T23:59:59.999999999-05:30", 951_888_599_999_999_999),
            ("1969-12-31T23:59:59.5Z", -500_000_000),
            ("2024-12-31T23:59:59Z", 1_735_689_599_000_000_000),
            ("2100-03-01T00:00:00Z", 4_107_542_400_000_000_000),
            ("1900-01-01T00:00:00Z", -2_208_988_800_000_000_000),
            ("2262-04-11T23:47:16.854775807Z", i64::MAX),
            ("1677-09-21T00:12:43.145224192Z", i64::MIN),
            ("2026-11-24t10:00:00.1z", 1_795_514_400_100_000_000),
            ("2026-11-24T10:00:00.123456789123Z", 1_795_514_400_123_456_789),
            ("2026-11-24T10:00:00+00:00", 1_795_514_400_000_000_000),
            ("2026-11-24T10:00:00.000001-00:00", 1_795_514_400_000_001_000),
            ("2016-12-31T23:59:60Z", 1_483_228_800_000_000_000),
        ];
        for &(s, want) in cases {
            assert_eq!(parse_rfc3339(s.as_bytes()), Some(want), "{s}");
        }
    }

    #[test]
    fn rejects_invalid() {
        let cases = [
            "",
            "2026-11-24",
            "2026-11-24T10:00:00",
            "2026-11-24T10:00:00.Z",
            "2026-11-24T10:00:00.123",
            "2026-11-24 10:00:00Z",
            "2026/11/24T10:00:00Z",
            "2026-13-24T10:00:00Z",
            "2026-00-24T10:00:00Z",
            "2026-02-29T10:00:00Z",
            "2100-02-29T10:00:00Z",
            "2026-04-31T10:00:00Z",
            "2026-11-00T10:00:00Z",
            "2026-11-24T24:00:00Z",
            "2026-11-24T10:60:00Z",
            "2026-11-24T10:00:61Z",
            "2026-11-24T10:00:00+24:00",
            "2026-11-24T10:00:00+01:60",
            "2026-11-24T10:00:00+0100",
            "2026-11-24T10:00:00+01:00:00",
            "2026-11-24T10:00:00ZZ",
            "2026-11-24T10:00:00Z ",
            "+026-11-24T10:00:00Z",
            "2026-1a-24T10:00:00Z",
            "2262-04-11T23:47:16.854775808Z",
            "1677-09-21T00:12:43.145224191Z",
            "9999-12-31T23:59:59Z",
            "0000-01-01T00:00:00Z",
        ];
        for s in cases {
            assert_eq!(parse_rfc3339(s.as_bytes()), None, "{s:?}");
        }
    }

    /// Reference: days counted by walking years and months, no clever arithmetic.
    fn naive_days(year: u32, month: u32, day: u32) -> i64 {
        let mut days: i64 = 0;
        for y in 1970..year {
            days += if is_leap(i64::from(y)) { 366 } else { 365 };
        }
        for y in year..1970 {
            days -= if is_leap(i64::from(y)) { 366 } else { 365 };
        }
        for m in 1..month {
            days += i64::from(days_in_month(i64::from(year), m));
        }
        days + i64::from(day) - 1
    }

    proptest! {
        #[test]
        fn matches_reference(
            year in 1700u32..2260, month in 1u32..=12, day in 1u32..=31,
            hour in 0u32..24, minute in 0u32..60, second in 0u32..60,
            nanos in 0u32..1_000_000_000, off_min in -1439i32..=1439,
        ) {
            prop_assume!(day <= days_in_month(i64::from(year), month));
            let sign = if off_min < 0 { '-' } else { '+' };
            let off = off_min.unsigned_abs();
            let s = format!(
                "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{nanos:09}{sign}{:02}:{:02}",
                off / 60, off % 60,
            );
            let secs = naive_days(year, month, day) * 86_400
                + i64::from(hour * 3600 + minute * 60 + second)
                - i64::from(off_min) * 60;
            prop_assert_eq!(parse_rfc3339(s.as_bytes()), Some(secs * NANOS_PER_SEC + i64::from(nanos)));
        }

        #[test]
        fn never_panics(s in proptest::collection::vec(any::<u8>(), 0..48)) {
            let _ = parse_rfc3339(&s);
        }
    }
}
