//! Wall-clock helpers: nanosecond Unix time and RFC 3339 formatting in UTC.
//!
//! Written by hand (a civil-from-days conversion) so the crate needs no date library.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How the fractional seconds of a timestamp are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TimeStyle {
    /// Go's `time.RFC3339Nano`, which containerd, CRI-O and dockerd use: trailing zeros of
    /// the fraction are trimmed, and a zero fraction is left out
    /// (`2026-11-25T10:00:00.1234Z`, `2026-11-25T10:00:00Z`).
    #[default]
    GoNano,
    /// Always nine digits: `2026-11-25T10:00:00.123456789Z`.
    Fixed9,
    /// Nine digits and a numeric offset: `2026-11-25T10:00:00.123456789+00:00`.
    Offset,
}

/// Nanoseconds since the Unix epoch of `t` (negative before 1970).
pub fn unix_nanos(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}

/// Nanoseconds since the Unix epoch, now.
pub fn now_nanos() -> i64 {
    unix_nanos(SystemTime::now())
}

/// The `SystemTime` of `ns` nanoseconds since the Unix epoch.
pub fn system_time(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

/// `ns` (Unix nanoseconds) as RFC 3339 in UTC, fraction written per `style`.
pub fn format_rfc3339(ns: i64, style: TimeStyle) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let frac = ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut out = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    );
    match style {
        TimeStyle::GoNano => {
            if frac != 0 {
                let digits = format!("{frac:09}");
                out.push('.');
                out.push_str(digits.trim_end_matches('0'));
            }
            out.push('Z');
        }
        TimeStyle::Fixed9 => out.push_str(&format!(".{frac:09}Z")),
        TimeStyle::Offset => out.push_str(&format!(".{frac:09}+00:00")),
    }
    out
}

/// `YYYYMMDD-hhmmss` in UTC: the suffix kubelet gives rotated container logs.
pub fn kubelet_suffix(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

/// (year, month 1..=12, day 1..=31) of the day `days` after 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_795_600_800_123_456_789; // 2026-11-25T10:00:00.123456789Z

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_rfc3339(0, TimeStyle::GoNano), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(T, TimeStyle::Fixed9), "2026-11-25T10:00:00.123456789Z");
        assert_eq!(
            format_rfc3339(T, TimeStyle::Offset),
            "2026-11-25T10:00:00.123456789+00:00"
        );
        assert_eq!(
            format_rfc3339(T - 56_789, TimeStyle::GoNano),
            "2026-11-25T10:00:00.1234Z"
        );
        assert_eq!(
            format_rfc3339(951_782_400_000_000_000, TimeStyle::GoNano),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(format_rfc3339(-1, TimeStyle::Fixed9), "1969-12-31T23:59:59.999999999Z");
        assert_eq!(kubelet_suffix(T), "20261125-100000");
    }

    #[test]
    fn system_time_round_trips() {
        for ns in [0, T, -5] {
            assert_eq!(unix_nanos(system_time(ns)), ns);
        }
    }
}
