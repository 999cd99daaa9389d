//! Tests of timestamp.rs: every named format, Go layouts, locations, failures, config errors.

use super::*;
use crate::parse::StreamKind;
use crate::process::go_layout::Std;
use bytes::Bytes;
use std::sync::Arc;

fn stage(format: &str, location: Option<&str>) -> TimestampStage {
    TimestampStage::new(&TimestampConfig {
        source: "ts".into(),
        format: format.into(),
        location: location.map(Into::into),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{format}: {e}"))
}

/// Unix nanoseconds of an RFC 3339 time, by jiff (an independent parser).
fn ns(rfc3339: &str) -> i64 {
    let ts: Timestamp = rfc3339.parse().unwrap_or_else(|e| panic!("{rfc3339}: {e}"));
    i64::try_from(ts.as_nanosecond()).expect("in range")
}

/// Format, location, value, "now", expected time (RFC 3339) or `None` for a failure.
type Case = (
    &'static str,
    Option<&'static str>,
    &'static str,
    &'static str,
    Option<&'static str>,
);

const NOW: &str = "2024-06-15T10:00:00Z";

#[rustfmt::skip]
const CASES: &[Case] = &[
    ("RFC3339", None, "2024-05-01T12:34:56Z", NOW, Some("2024-05-01T12:34:56Z")),
    ("RFC3339", None, "2024-05-01T12:34:56.5+02:00", NOW, Some("2024-05-01T10:34:56.5Z")),
    ("RFC3339", None, "2024-05-01 12:34:56Z", NOW, None),
    ("RFC3339Nano", None, "2024-05-01T12:34:56.123456789Z", NOW, Some("2024-05-01T12:34:56.123456789Z")),
    ("Unix", None, "1700000000", NOW, Some("2023-11-14T22:13:20Z")),
    ("Unix", None, "1700000000.123", NOW, Some("2023-11-14T22:13:20.123Z")),
    ("Unix", None, "1700000000.1234567891", NOW, Some("2023-11-14T22:13:20.123456789Z")),
    ("Unix", None, "-1.5", NOW, Some("1969-12-31T23:59:58.5Z")),
    ("Unix", None, "+17", NOW, Some("1970-01-01T00:00:17Z")),
    ("Unix", None, "1700000000.", NOW, None),
    ("Unix", None, ".5", NOW, None),
    ("Unix", None, "1.7e9", NOW, None),
    ("Unix", None, " 17", NOW, None),
    ("Unix", None, "", NOW, None),
    ("Unix", None, "-", NOW, None),
    ("Unix", None, "99999999999", NOW, None),
    ("UnixMs", None, "1700000000123", NOW, Some("2023-11-14T22:13:20.123Z")),
    ("UnixMs", None, "1700000000123.5", NOW, Some("2023-11-14T22:13:20.1235Z")),
    ("UnixUs", None, "1700000000123456", NOW, Some("2023-11-14T22:13:20.123456Z")),
    ("UnixNs", None, "1700000000123456789", NOW, Some("2023-11-14T22:13:20.123456789Z")),
    ("UnixNs", None, "9223372036854775808", NOW, None),
    ("UnixNs", None, "1x", NOW, None),
    ("ANSIC", None, "Wed May  1 12:34:56 2024", NOW, Some("2024-05-01T12:34:56Z")),
    ("ANSIC", None, "Wed May 11 12:34:56 2024", NOW, Some("2024-05-11T12:34:56Z")),
    ("ANSIC", None, "wed MAY 1 12:34:56 2024", NOW, Some("2024-05-01T12:34:56Z")),
    ("UnixDate", None, "Wed May  1 12:34:56 UTC 2024", NOW, Some("2024-05-01T12:34:56Z")),
    ("UnixDate", None, "Wed May  1 12:34:56 PST 2024", NOW, None),
    ("UnixDate", Some("America/Los_Angeles"), "Wed May  1 12:34:56 PDT 2024", NOW, Some("2024-05-01T19:34:56Z")),
    ("UnixDate", Some("America/Los_Angeles"), "Wed Jan 10 12:00:00 PST 2024", NOW, Some("2024-01-10T20:00:00Z")),
    ("RubyDate", None, "Wed May 01 12:34:56 -0700 2024", NOW, Some("2024-05-01T19:34:56Z")),
    ("RFC822", None, "01 May 24 12:34 GMT", NOW, Some("2024-05-01T12:34:00Z")),
    ("RFC822", None, "01 May 70 12:34 UTC", NOW, Some("1970-05-01T12:34:00Z")),
    ("RFC822Z", None, "01 May 24 12:34 +0530", NOW, Some("2024-05-01T07:04:00Z")),
    ("RFC850", None, "Wednesday, 01-May-24 12:34:56 UTC", NOW, Some("2024-05-01T12:34:56Z")),
    ("RFC1123", None, "Wed, 01 May 2024 12:34:56 GMT", NOW, Some("2024-05-01T12:34:56Z")),
    ("RFC1123", Some("Europe/Berlin"), "Wed, 01 May 2024 12:34:56 CEST", NOW, Some("2024-05-01T10:34:56Z")),
    ("RFC1123", Some("Europe/Berlin"), "Wed, 01 May 2024 12:34:56 CET", NOW, Some("2024-05-01T11:34:56Z")),
    ("RFC1123", Some("Europe/Berlin"), "Wed, 01 May 2024 12:34:56 EST", NOW, None),
    ("RFC1123Z", None, "Wed, 01 May 2024 12:34:56 -0000", NOW, Some("2024-05-01T12:34:56Z")),
    ("RFC1123Z", None, "Wed, 01 May 2024 12:34:56 0000", NOW, None),
    ("Kitchen", None, "3:04PM", NOW, Some("2024-06-15T15:04:00Z")),
    ("Kitchen", None, "11:30PM", NOW, Some("2024-06-14T23:30:00Z")),
    ("Kitchen", None, "9:30AM", NOW, Some("2024-06-15T09:30:00Z")),
    ("Kitchen", None, "13:04PM", NOW, None),
    ("Stamp", None, "May  1 12:34:56", NOW, Some("2024-05-01T12:34:56Z")),
    ("StampMilli", None, "May  1 12:34:56.789", NOW, Some("2024-05-01T12:34:56.789Z")),
    ("StampMilli", None, "May  1 12:34:56.78", NOW, None),
    ("StampMicro", None, "May  1 12:34:56.000789", NOW, Some("2024-05-01T12:34:56.000789Z")),
    ("StampNano", None, "May  1 12:34:56.000000789", NOW, Some("2024-05-01T12:34:56.000000789Z")),
    ("DateTime", None, "2024-05-01 12:34:56", NOW, Some("2024-05-01T12:34:56Z")),
    ("DateOnly", None, "2024-05-01", NOW, Some("2024-05-01T00:00:00Z")),
    ("TimeOnly", Some("Europe/Berlin"), "11:00:00", NOW, Some("2024-06-15T09:00:00Z")),
    // Go layouts.
    ("2006-01-02 15:04:05", None, "2024-05-01 12:34:56", NOW, Some("2024-05-01T12:34:56Z")),
    ("2006-01-02 15:04:05", None, "2024-05-01 12:34:56.789", NOW, Some("2024-05-01T12:34:56.789Z")),
    ("2006-01-02 15:04:05", None, "2024-05-01 12:34:56,5", NOW, Some("2024-05-01T12:34:56.5Z")),
    ("2006-01-02 15:04:05", None, "2024-05-01 12:34:56 ", NOW, None),
    ("2006-01-02 15:04:05", None, "2024-05-01 12:34", NOW, None),
    ("2006-01-02 15:04:05", None, "2024-13-01 12:34:56", NOW, None),
    ("2006-01-02 15:04:05", None, "2023-02-29 12:34:56", NOW, None),
    ("2006-01-02 15:04:05", None, "2024-02-29 24:00:00", NOW, None),
    ("2006-01-02 15:04:05", None, "2024-02-29 23:59:60", NOW, None),
    ("2006-01-02 15:04:05", None, "2024-02-29 23:59:59", NOW, Some("2024-02-29T23:59:59Z")),
    ("2006-01-02 15:04:05", None, "2024-5-1 12:34:56", NOW, None),
    ("2006-1-2 15:4:5", None, "2024-5-1 2:3:4", NOW, Some("2024-05-01T02:03:04Z")),
    ("2006-01-02T15:04:05.000Z07:00", None, "2024-05-01T12:34:56.123Z", NOW, Some("2024-05-01T12:34:56.123Z")),
    ("2006-01-02T15:04:05.000Z07:00", None, "2024-05-01T12:34:56.123+05:30", NOW, Some("2024-05-01T07:04:56.123Z")),
    ("2006-01-02T15:04:05.000Z07:00", None, "2024-05-01T12:34:56.12Z", NOW, None),
    ("2006-01-02T15:04:05.000Z07:00", None, "2024-05-01T12:34:56.123+0530", NOW, None),
    ("2006-01-02T15:04:05.999999999Z07:00", None, "2024-05-01T12:34:56-07:00", NOW, Some("2024-05-01T19:34:56Z")),
    ("2006-01-02 15:04:05.999", None, "2024-05-01 12:34:56.5", NOW, Some("2024-05-01T12:34:56.5Z")),
    ("2006-01-02 15:04:05,000", None, "2024-05-01 12:34:56,789", NOW, Some("2024-05-01T12:34:56.789Z")),
    ("02/Jan/2006:15:04:05 -0700", None, "01/May/2024:12:34:56 +0200", NOW, Some("2024-05-01T10:34:56Z")),
    ("02/Jan/2006:15:04:05 -0700", None, "01/May/2024:12:34:56 +02:00", NOW, None),
    ("Jan _2 15:04:05", None, "May  1 12:34:56", NOW, Some("2024-05-01T12:34:56Z")),
    ("Jan _2 15:04:05", None, "Dec 31 23:59:59", "2025-01-01T00:00:05Z", Some("2024-12-31T23:59:59Z")),
    ("Jan _2 15:04:05", Some("Europe/Berlin"), "Jan  1 00:00:01", "2024-12-31T23:00:05Z", Some("2024-12-31T23:00:01Z")),
    ("Jan _2 15:04:05", None, "Feb 29 12:00:00", "2023-03-01T00:00:00Z", None),
    ("02.01.2006 15:04", None, "01.05.2024 12:34", NOW, Some("2024-05-01T12:34:00Z")),
    ("2006-01-02 03:04:05 PM", None, "2024-05-01 01:34:56 PM", NOW, Some("2024-05-01T13:34:56Z")),
    ("2006-01-02 03:04:05 PM", None, "2024-05-01 12:00:00 AM", NOW, Some("2024-05-01T00:00:00Z")),
    ("2006-01-02 03:04:05 pm", None, "2024-05-01 12:00:00 pm", NOW, Some("2024-05-01T12:00:00Z")),
    ("2006-002 15:04", None, "2024-061 00:00", NOW, Some("2024-03-01T00:00:00Z")),
    ("2006-002 15:04", None, "2023-366 00:00", NOW, None),
    ("20060102T150405Z0700", None, "20240501T123456-0130", NOW, Some("2024-05-01T14:04:56Z")),
    ("2006-01-02 15:04:05 -07", None, "2024-05-01 12:34:56 +03", NOW, Some("2024-05-01T09:34:56Z")),
    ("2006-01-02 15:04:05 -07:00:00", None, "2024-05-01 12:34:56 +00:00:30", NOW, Some("2024-05-01T12:34:26Z")),
    ("January 2, 2006 at 3:04pm (MST)", None, "May 1, 2024 at 1:04pm (GMT+2)", NOW, Some("2024-05-01T11:04:00Z")),
    ("Monday 2006-01-02", None, "friday 2024-05-01", NOW, Some("2024-05-01T00:00:00Z")),
    ("_2006", None, "_2024", NOW, Some("2024-01-01T00:00:00Z")),
    // A location places times without an offset, and only those.
    ("2006-01-02 15:04:05", Some("Europe/Berlin"), "2024-07-01 12:00:00", NOW, Some("2024-07-01T10:00:00Z")),
    ("2006-01-02 15:04:05", Some("Europe/Berlin"), "2024-01-15 12:00:00", NOW, Some("2024-01-15T11:00:00Z")),
    ("2006-01-02 15:04:05", Some("Europe/Berlin"), "2024-03-31 02:30:00", NOW, Some("2024-03-31T01:30:00Z")),
    ("2006-01-02 15:04:05", Some("Europe/Berlin"), "2024-10-27 02:30:00", NOW, Some("2024-10-27T00:30:00Z")),
    ("2006-01-02 15:04:05 -0700", Some("Europe/Berlin"), "2024-07-01 12:00:00 +0000", NOW, Some("2024-07-01T12:00:00Z")),
    ("2006-01-02 15:04:05", None, "1600-01-01 00:00:00", NOW, None),
];

#[test]
fn formats() {
    let mut failures = Vec::new();
    for &(format, location, value, now, want) in CASES {
        let got = stage(format, location).parse(value, Some(now.parse().expect("now")));
        if got != want.map(ns) {
            failures.push(format!("{format} {location:?} {value:?}: got {got:?}, want {want:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn apply_and_fallbacks() {
    let st = TimestampStage::new(&TimestampConfig {
        source: "ts".into(),
        format: "RFC3339".into(),
        fallback_formats: vec!["UnixMs".into(), "02/Jan/2006:15:04:05 -0700".into()],
        action_on_failure: Some("skip".into()),
        ..Default::default()
    })
    .expect("valid");
    assert!(st.action_skip());
    let mut l = Line::new(7, Bytes::from_static(b"x"), StreamKind::Stdout, 0);
    assert_eq!(st.apply(&mut l), TsOutcome::Missing);
    let name: Arc<str> = Arc::from("ts");
    for (value, want) in [
        ("2024-05-01T12:34:56Z", TsOutcome::Set),
        ("1700000000123", TsOutcome::Set),
        ("01/May/2024:12:34:56 +0200", TsOutcome::Set),
        ("yesterday", TsOutcome::Failed),
    ] {
        l.ts_ns = 7;
        l.extracted.set(&name, value);
        assert_eq!(st.apply(&mut l), want, "{value}");
        assert_eq!(l.ts_ns != 7, want == TsOutcome::Set, "{value}");
    }
    l.extracted.set(&name, "1700000000123");
    st.apply(&mut l);
    assert_eq!(l.ts_ns, 1_700_000_000_123_000_000);
    // A layout without a year uses the clock's year.
    let mut l = Line::new(7, Bytes::from_static(b"x"), StreamKind::Stdout, 0);
    l.extracted.set(&name, "Jun 15 10:00:00");
    assert_eq!(stage("Stamp", None).apply(&mut l), TsOutcome::Set);
    let year_now = Timestamp::now().to_zoned(TimeZone::UTC).year();
    assert!(
        matches!(Timestamp::from_nanosecond(l.ts_ns.into()).map(|t| t.to_zoned(TimeZone::UTC).year()), Ok(y) if y == year_now || y == year_now - 1)
    );
}

#[test]
fn config_errors() {
    let cfg = |format: &str, location: Option<&str>, action: Option<&str>| TimestampConfig {
        source: "ts".into(),
        format: format.into(),
        location: location.map(Into::into),
        action_on_failure: action.map(Into::into),
        ..Default::default()
    };
    let cases = [
        (cfg("rfc3339", None, None), "did you mean RFC3339?"),
        (cfg("unixms", None, None), "did you mean UnixMs?"),
        (cfg("YYYY-MM-DD hh:mm:ss", None, None), "is not a timestamp format"),
        (cfg("", None, None), "needs a format"),
        (
            cfg("RFC3339", Some("Mars/Olympus"), None),
            "unknown location \"Mars/Olympus\"",
        ),
        (cfg("RFC3339", None, Some("drop")), "fudge or skip"),
        (
            TimestampConfig {
                source: String::new(),
                ..cfg("RFC3339", None, None)
            },
            "needs a source",
        ),
        (
            TimestampConfig {
                fallback_formats: vec!["nope".into()],
                ..cfg("Unix", None, None)
            },
            "\"nope\"",
        ),
    ];
    for (c, want) in cases {
        let err = TimestampStage::new(&c).expect_err(want);
        assert!(err.contains(want), "{want}: {err}");
    }
    for ok in [
        cfg("RFC3339", Some("UTC"), Some("fudge")),
        cfg("Unix", Some("America/New_York"), Some("skip")),
    ] {
        assert!(TimestampStage::new(&ok).is_ok());
    }
}

#[test]
fn layouts_compile_like_go() {
    use crate::process::go_layout::Std::*;
    let items = layout_items(b"2006-01-02T15:04:05.000Z07:00");
    let stds: Vec<Std> = items
        .iter()
        .filter_map(|i| if let Item::Std(s) = i { Some(*s) } else { None })
        .collect();
    let iso = Offset {
        iso: true,
        colon: true,
        minutes: true,
        seconds: false,
    };
    assert_eq!(
        stds,
        [
            LongYear,
            NumMonth(true),
            Day(true),
            Hour,
            Minute(true),
            Second(true),
            Frac(Some(3)),
            iso
        ]
    );
    // "Janet" is not a month, `.01` before a digit is not a fraction, a lone Z is a literal.
    let items = layout_items(b"Janet 2006.012 Z");
    assert_eq!(
        items.iter().filter(|i| matches!(i, Item::Std(_))).count(),
        3,
        "{items:?}"
    );
    assert_eq!(items.first(), Some(&Item::Lit(b"Janet ".to_vec())));
}

proptest::proptest! {
    /// Differential: times written by jiff read back to the same instant, with an offset or in a
    /// location (there jiff's "compatible" choice is the reference for gaps and folds).
    #[test]
    fn agrees_with_jiff(secs in -2_000_000_000i64..7_000_000_000, nanos in 0i32..1_000_000_000, off_min in -1080i32..1080, berlin: bool) {
        let ts = Timestamp::new(secs, nanos).expect("in range");
        let (text, st, want) = if berlin {
            let tz = TimeZone::get("Europe/Berlin").expect("tzdata");
            let dt = tz.to_datetime(ts);
            let want = tz.to_ambiguous_timestamp(dt).compatible().expect("resolves");
            (dt.strftime("%Y-%m-%d %H:%M:%S%.f").to_string(), stage("2006-01-02 15:04:05.999999999", Some("Europe/Berlin")), want)
        } else {
            let zone = jiff::tz::Offset::from_seconds(off_min * 60).expect("offset").to_time_zone();
            let text = ts.to_zoned(zone).strftime("%d/%b/%Y:%H:%M:%S%.f %:z").to_string();
            (text, stage("02/Jan/2006:15:04:05.999999999 Z07:00", None), ts)
        };
        proptest::prop_assert_eq!(st.parse(&text, None), i64::try_from(want.as_nanosecond()).ok(), "{}", text);
    }

    #[test]
    fn never_panics(value in ".{0,40}", layout in "[0-9A-Za-z_ :.,/+-]{0,30}") {
        for format in ["RFC3339", "Unix", "UnixNs", "ANSIC", "RFC1123", "2006-01-02 15:04:05.999 -07:00", "Jan _2 3:04PM MST"] {
            let _ = stage(format, Some("Europe/Berlin")).parse(&value, None);
        }
        let cfg = TimestampConfig { source: "ts".into(), format: layout, ..Default::default() };
        if let Ok(st) = TimestampStage::new(&cfg) {
            let _ = st.parse(&value, None);
        }
    }
}
