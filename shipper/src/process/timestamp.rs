//! The `timestamp` stage: the line's time from an extracted value, in the formats Promtail takes.
//!
//! - `RFC3339` / `RFC3339Nano`: our fixed-position parser (crate::parse), as for CRI lines.
//! - `Unix`, `UnixMs`, `UnixUs`, `UnixNs`: an integer count, optionally with a fraction
//!   (`1700000000.123`; Promtail takes a fraction only for `Unix`, here every unit does).
//! - Go's named layouts (`ANSIC`, `RFC1123Z`, `Stamp`, `DateTime`, …) and any Go reference layout
//!   (`2006-01-02 15:04:05.000`, `02/Jan/2006:15:04:05 -0700`, `Jan _2 15:04:05`).
//!
//! A Go layout is compiled once, in `new`, into a list of fields and literals, and each value is
//! read with Go's own rules (`time.Parse`): `_2` takes a space-padded day, `.999` an optional
//! fraction, a run of spaces matches any run of spaces, a fraction after the seconds is taken even
//! when the layout has none, the whole value must be used. The civil time is then placed with the
//! value's offset, else in `location` (default UTC; ambiguous or skipped local times resolve as
//! jiff's "compatible" does). A zone abbreviation (`MST`) is only trusted when it is UTC/GMT or one
//! that `location` uses (at that time, else around it: `CET` in July, as Go reads it); otherwise
//! the value fails, where Go would silently read it as UTC, hours off. A layout without a year takes the current one, a December time read in
//! January the previous one (Promtail's rule); a layout without a date at all takes today, or
//! yesterday when that would be more than 12 hours ahead.

use super::config::TimestampConfig;
use super::Line;
use crate::parse::{days_from_civil, days_in_month, parse_rfc3339};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::Timestamp;

/// What the stage did to a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsOutcome {
    /// The line's timestamp was set.
    Set,
    /// The source value was not extracted: the line keeps its timestamp.
    Missing,
    /// The value matched none of the formats: the line keeps its timestamp.
    Failed,
}

/// The `timestamp` stage, with its formats compiled.
#[derive(Debug)]
pub struct TimestampStage {
    source: String,
    /// `format`, then `fallback_formats`, tried in order.
    formats: Vec<Format>,
    /// The location of layouts without an offset; `None` is UTC (plain arithmetic).
    tz: Option<TimeZone>,
    skip: bool,
}

#[derive(Debug)]
enum Format {
    Rfc3339,
    /// A count of this many nanoseconds.
    Unix(i64),
    Layout(Vec<Item>),
}

/// Go's named layouts (time package constants). RFC3339 and the Unix counts are handled apart.
const NAMED: &[(&str, &str)] = &[
    ("ANSIC", "Mon Jan _2 15:04:05 2006"),
    ("UnixDate", "Mon Jan _2 15:04:05 MST 2006"),
    ("RubyDate", "Mon Jan 02 15:04:05 -0700 2006"),
    ("RFC822", "02 Jan 06 15:04 MST"),
    ("RFC822Z", "02 Jan 06 15:04 -0700"),
    ("RFC850", "Monday, 02-Jan-06 15:04:05 MST"),
    ("RFC1123", "Mon, 02 Jan 2006 15:04:05 MST"),
    ("RFC1123Z", "Mon, 02 Jan 2006 15:04:05 -0700"),
    ("Kitchen", "3:04PM"),
    ("Stamp", "Jan _2 15:04:05"),
    ("StampMilli", "Jan _2 15:04:05.000"),
    ("StampMicro", "Jan _2 15:04:05.000000"),
    ("StampNano", "Jan _2 15:04:05.000000000"),
    ("DateTime", "2006-01-02 15:04:05"),
    ("DateOnly", "2006-01-02"),
    ("TimeOnly", "15:04:05"),
];

impl TimestampStage {
    pub fn new(cfg: &TimestampConfig) -> Result<TimestampStage, String> {
        if cfg.source.is_empty() {
            return Err("timestamp stage needs a source (the extracted value holding the time)".into());
        }
        if cfg.format.is_empty() {
            return Err("timestamp stage needs a format".into());
        }
        let formats = std::iter::once(&cfg.format)
            .chain(&cfg.fallback_formats)
            .map(|f| compile(f))
            .collect::<Result<Vec<_>, _>>()?;
        let tz = match cfg.location.as_deref() {
            None | Some("UTC") => None,
            Some("Local") => Some(TimeZone::try_system().map_err(|e| format!("timestamp stage: location Local: {e}"))?),
            Some(name) => Some(TimeZone::get(name).map_err(|e| {
                format!("timestamp stage: unknown location {name:?} (an IANA name such as Europe/Berlin): {e}")
            })?),
        };
        let skip = match cfg.action_on_failure.as_deref() {
            None | Some("fudge") => false,
            Some("skip") => true,
            Some(other) => {
                return Err(format!(
                    "timestamp stage: action_on_failure must be fudge or skip, not {other:?}"
                ))
            }
        };
        Ok(TimestampStage {
            source: cfg.source.clone(),
            formats,
            tz,
            skip,
        })
    }

    /// Whether a failure is to go uncounted (`action_on_failure: skip`).
    pub fn action_skip(&self) -> bool {
        self.skip
    }

    /// Sets the line's timestamp (unix nanoseconds) from the source value.
    pub fn apply(&self, line: &mut Line) -> TsOutcome {
        let Some(value) = line.extracted.get(&self.source) else { return TsOutcome::Missing };
        match self.parse(value, None) {
            Some(ns) => {
                line.ts_ns = ns;
                TsOutcome::Set
            }
            None => TsOutcome::Failed,
        }
    }

    /// The value in unix nanoseconds by the first format that reads it. `now` (default: the clock)
    /// completes layouts without a year or date.
    fn parse(&self, value: &str, now: Option<Timestamp>) -> Option<i64> {
        self.formats.iter().find_map(|f| match f {
            Format::Rfc3339 => parse_rfc3339(value.as_bytes()),
            Format::Unix(unit) => parse_unix(value, *unit),
            Format::Layout(items) => {
                let fields = read(items, value.as_bytes())?;
                self.place(&fields, now.unwrap_or_else(Timestamp::now))
            }
        })
    }

    /// The instant of parsed fields, in unix nanoseconds.
    fn place(&self, f: &Fields, now: Timestamp) -> Option<i64> {
        let utc = TimeZone::UTC;
        let tz = self.tz.as_ref().unwrap_or(&utc);
        let mut hour = f.hour;
        match f.pm {
            Some(true) if hour < 12 => hour += 12,
            Some(false) if hour == 12 => hour = 0,
            _ => {}
        }
        let time = i64::from(hour * 3600 + f.minute * 60 + f.second);
        if f.year.is_none() && f.month.is_none() && f.day.is_none() && f.yday.is_none() {
            // A time of day alone: today, or yesterday when today's would be well ahead of now.
            let d = tz.to_datetime(now);
            let days = days_from_civil(i64::from(d.year()), d.month() as u32, d.day() as u32);
            let ns = self.instant(f, days, time)?;
            let now_ns = i64::try_from(now.as_nanosecond()).unwrap_or(i64::MAX);
            if ns.saturating_sub(now_ns) > 12 * 3600 * 1_000_000_000 {
                return self.instant(f, days - 1, time);
            }
            return Some(ns);
        }
        let year = f.year.unwrap_or_else(|| {
            let d = tz.to_datetime(now);
            let year = i64::from(d.year());
            if f.month == Some(12) && d.month() == 1 {
                year - 1
            } else {
                year
            }
        });
        let (month, day) = match f.yday {
            Some(yday) => {
                let (m, d) = month_day_of(year, yday)?;
                (f.month.is_none_or(|x| x == m) && f.day.is_none_or(|x| x == d)).then_some((m, d))?
            }
            None => (f.month.unwrap_or(1), f.day.unwrap_or(1)),
        };
        if day < 1 || day > days_in_month(year, month) {
            return None;
        }
        self.instant(f, days_from_civil(year, month, day), time)
    }

    /// Unix nanoseconds of day `days` (since 1970-01-01) at `time` seconds, placed by the value's
    /// offset or abbreviation, else in the location.
    fn instant(&self, f: &Fields, days: i64, time: i64) -> Option<i64> {
        let local = days.checked_mul(86_400)?.checked_add(time)?;
        let secs = match (f.offset, f.abbrev, &self.tz) {
            (Some(off), ..) => local - off,
            (None, Some(abbrev), _) => self.with_abbrev(local, abbrev)?,
            (None, None, None) => local,
            (None, None, Some(tz)) => local - local_offset(tz, local)?.0,
        };
        secs.checked_mul(1_000_000_000)?.checked_add(i64::from(f.nanos))
    }

    /// Unix seconds of local time `local` in a zone named by the abbreviation `abbrev`: UTC/GMT,
    /// or what the location calls itself at that time (CET vs CEST), or else the offset the
    /// location used under that name at its nearest transitions (Go's fallback: `CET` in July).
    fn with_abbrev(&self, local: i64, abbrev: &[u8]) -> Option<i64> {
        if abbrev == b"UTC" || abbrev == b"GMT" {
            return Some(local);
        }
        let tz = self.tz.as_ref()?;
        let (first, second) = local_offset(tz, local)?;
        let named = |ts: Timestamp| tz.to_offset_info(ts).abbreviation().as_bytes() == abbrev;
        if let Some(secs) = [first, second]
            .into_iter()
            .map(|off| local - off)
            .find(|&secs| Timestamp::from_second(secs).is_ok_and(named))
        {
            return Some(secs);
        }
        let at = Timestamp::from_second(local - first).ok()?;
        let mut near = tz.preceding(at).take(4).chain(tz.following(at).take(4));
        let t = near.find(|t| t.abbreviation().as_bytes() == abbrev)?;
        Some(local - i64::from(t.offset().seconds()))
    }
}

/// The offsets (seconds east of UTC) `tz` may give local time `local` (seconds since 1970-01-01T00
/// local): the one jiff's "compatible" rule picks first, the other side of a gap or fold second.
fn local_offset(tz: &TimeZone, local: i64) -> Option<(i64, i64)> {
    let dt = TimeZone::UTC.to_datetime(Timestamp::from_second(local).ok()?);
    Some(match tz.to_ambiguous_timestamp(dt).offset() {
        AmbiguousOffset::Unambiguous { offset } => (offset.seconds().into(), offset.seconds().into()),
        AmbiguousOffset::Gap { before, after } | AmbiguousOffset::Fold { before, after } => {
            (before.seconds().into(), after.seconds().into())
        }
    })
}

fn compile(format: &str) -> Result<Format, String> {
    match format {
        "RFC3339" | "RFC3339Nano" => return Ok(Format::Rfc3339),
        "Unix" => return Ok(Format::Unix(1_000_000_000)),
        "UnixMs" => return Ok(Format::Unix(1_000_000)),
        "UnixUs" => return Ok(Format::Unix(1_000)),
        "UnixNs" => return Ok(Format::Unix(1)),
        _ => {}
    }
    // `rfc3339` would compile as a Go layout (its 3s read hours) that no real value fits.
    let names = ["RFC3339", "RFC3339Nano", "Unix", "UnixMs", "UnixUs", "UnixNs"];
    if let Some(name) = names
        .iter()
        .chain(NAMED.iter().map(|(n, _)| n))
        .find(|n| n.eq_ignore_ascii_case(format) && **n != format)
    {
        return Err(format!(
            "timestamp stage: unknown format {format:?}: did you mean {name}? (names are case-sensitive)"
        ));
    }
    let layout = NAMED.iter().find(|(n, _)| *n == format).map_or(format, |(_, l)| l);
    let items = layout_items(layout.as_bytes());
    if !items.iter().any(|i| matches!(i, Item::Std(_))) {
        return Err(format!(
            "timestamp stage: {format:?} is not a timestamp format: use RFC3339, RFC3339Nano, Unix, UnixMs, UnixUs, \
             UnixNs, a Go name such as RFC1123Z, or a Go layout like 2006-01-02 15:04:05"
        ));
    }
    Ok(Format::Layout(items))
}

/// The parts of a Go layout: literal text and reference elements.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Lit(Vec<u8>),
    Std(Std),
}

/// Go's reference elements (time/format.go), by what they read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Std {
    LongMonth,
    Month,
    /// `1`, or `01` (`true`: exactly two digits).
    NumMonth(bool),
    LongWeekDay,
    WeekDay,
    /// `2`, or `02`.
    Day(bool),
    UnderDay,
    /// `__2`, or `002`.
    YearDay(bool),
    Hour,
    /// `3`, or `03`.
    Hour12(bool),
    Minute(bool),
    Second(bool),
    LongYear,
    Year,
    /// `PM` (`true`) or `pm`.
    Pm(bool),
    Abbrev,
    /// `-07`, `-0700`, `-07:00`, `-070000`, `-07:00:00`; `Z…` (iso) also takes `Z` for UTC.
    Offset {
        iso: bool,
        colon: bool,
        minutes: bool,
        seconds: bool,
    },
    /// `.000` (exactly that many digits) or `.999` (`None`: any number, or none at all).
    Frac(Option<u8>),
}

/// Go's numeric offsets after their `-` or `Z`, longest first: text, colon, minutes, seconds.
#[rustfmt::skip]
const OFFSETS: [(&str, bool, bool, bool); 5] = [
    ("070000", false, true, true), ("07:00:00", true, true, true), ("0700", false, true, false),
    ("07:00", true, true, false), ("07", false, false, false),
];

/// The reference element starting `l`, and its length (Go's `nextStdChunk`).
fn std_at(l: &[u8]) -> Option<(Std, usize)> {
    let lower_at = |i: usize| l.get(i).is_some_and(u8::is_ascii_lowercase);
    let digit_at = |i: usize| l.get(i).is_some_and(u8::is_ascii_digit);
    Some(match *l.first()? {
        b'J' if l.starts_with(b"January") => (Std::LongMonth, 7),
        b'J' if l.starts_with(b"Jan") && !lower_at(3) => (Std::Month, 3),
        b'M' if l.starts_with(b"Monday") => (Std::LongWeekDay, 6),
        b'M' if l.starts_with(b"Mon") && !lower_at(3) => (Std::WeekDay, 3),
        b'M' if l.starts_with(b"MST") => (Std::Abbrev, 3),
        b'0' => match l.get(1)? {
            b'1' => (Std::NumMonth(true), 2),
            b'2' => (Std::Day(true), 2),
            b'3' => (Std::Hour12(true), 2),
            b'4' => (Std::Minute(true), 2),
            b'5' => (Std::Second(true), 2),
            b'6' => (Std::Year, 2),
            b'0' if l.get(2) == Some(&b'2') => (Std::YearDay(true), 3),
            _ => return None,
        },
        b'1' if l.starts_with(b"15") => (Std::Hour, 2),
        b'1' => (Std::NumMonth(false), 1),
        b'2' if l.starts_with(b"2006") => (Std::LongYear, 4),
        b'2' => (Std::Day(false), 1),
        // `_2006` is a literal `_` before the year.
        b'_' if l.starts_with(b"_2") && !l.starts_with(b"_2006") => (Std::UnderDay, 2),
        b'_' if l.starts_with(b"__2") => (Std::YearDay(false), 3),
        b'3' => (Std::Hour12(false), 1),
        b'4' => (Std::Minute(false), 1),
        b'5' => (Std::Second(false), 1),
        b'P' if l.starts_with(b"PM") => (Std::Pm(true), 2),
        b'p' if l.starts_with(b"pm") => (Std::Pm(false), 2),
        c @ (b'-' | b'Z') => OFFSETS
            .into_iter()
            .find(|(p, ..)| l.get(1..).is_some_and(|r| r.starts_with(p.as_bytes())))
            .map(|(p, colon, minutes, seconds)| {
                (
                    Std::Offset {
                        iso: c == b'Z',
                        colon,
                        minutes,
                        seconds,
                    },
                    1 + p.len(),
                )
            })?,
        b'.' | b',' => {
            let ch = *l.get(1).filter(|c| **c == b'0' || **c == b'9')?;
            let n = l.iter().skip(1).take_while(|c| **c == ch).count();
            if digit_at(1 + n) {
                return None;
            }
            (
                Std::Frac((ch == b'0').then_some(n.min(usize::from(u8::MAX)) as u8)),
                1 + n,
            )
        }
        _ => return None,
    })
}

fn layout_items(mut l: &[u8]) -> Vec<Item> {
    let mut items = Vec::new();
    let mut lit = Vec::new();
    while let Some(&c) = l.first() {
        match std_at(l) {
            Some((std, len)) => {
                if !lit.is_empty() {
                    items.push(Item::Lit(std::mem::take(&mut lit)));
                }
                items.push(Item::Std(std));
                l = l.get(len..).unwrap_or_default();
            }
            None => {
                lit.push(c);
                l = l.get(1..).unwrap_or_default();
            }
        }
    }
    if !lit.is_empty() {
        items.push(Item::Lit(lit));
    }
    items
}

/// What a value gave for each field (`None`: the layout has no such field).
#[derive(Debug, Default)]
struct Fields<'a> {
    year: Option<i64>,
    month: Option<u32>,
    day: Option<u32>,
    yday: Option<u32>,
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u32,
    /// `Some(true)` for PM.
    pm: Option<bool>,
    /// Seconds east of UTC.
    offset: Option<i64>,
    abbrev: Option<&'a [u8]>,
}

/// Go's names; the short ones are their first three letters.
const MONTHS: &str = "January February March April May June July August September October November December";
const DAYS: &str = "Sunday Monday Tuesday Wednesday Thursday Friday Saturday";

/// Reads `v` by the layout, as Go's `time.Parse` does; `None` if it does not fit exactly.
fn read<'a>(items: &[Item], v: &'a [u8]) -> Option<Fields<'a>> {
    let mut f = Fields::default();
    let mut v = v;
    for (k, item) in items.iter().enumerate() {
        let std = match item {
            Item::Lit(lit) => {
                v = skip_literal(v, lit)?;
                continue;
            }
            Item::Std(std) => *std,
        };
        match std {
            Std::LongMonth | Std::Month => {
                let (i, rest) = lookup(v, MONTHS, std == Std::Month)?;
                f.month = Some(i as u32 + 1);
                v = rest;
            }
            Std::LongWeekDay | Std::WeekDay => v = lookup(v, DAYS, std == Std::WeekDay)?.1,
            Std::NumMonth(fixed) => f.month = Some(num(&mut v, 2, fixed).filter(|m| (1..=12).contains(m))?),
            Std::Day(fixed) => f.day = Some(num(&mut v, 2, fixed)?),
            Std::UnderDay => {
                if v.first() == Some(&b' ') {
                    v = v.get(1..)?;
                }
                f.day = Some(num(&mut v, 2, false)?);
            }
            Std::YearDay(fixed) => {
                for _ in 0..2 {
                    if !fixed && v.first() == Some(&b' ') {
                        v = v.get(1..)?;
                    }
                }
                f.yday = Some(num(&mut v, 3, fixed)?);
            }
            Std::Hour => f.hour = num(&mut v, 2, false).filter(|h| *h < 24)?,
            Std::Hour12(fixed) => f.hour = num(&mut v, 2, fixed).filter(|h| *h <= 12)?,
            Std::Minute(fixed) => f.minute = num(&mut v, 2, fixed).filter(|m| *m < 60)?,
            Std::Second(fixed) => {
                f.second = num(&mut v, 2, fixed).filter(|s| *s < 60)?;
                // A fraction after the seconds is read even when the layout has none.
                let next = items.get(k + 1..).unwrap_or_default().iter().find_map(|i| match i {
                    Item::Std(s) => Some(*s),
                    Item::Lit(_) => None,
                });
                if !matches!(next, Some(Std::Frac(_))) && matches!(v, [b'.' | b',', b'0'..=b'9', ..]) {
                    f.nanos = fraction(&mut v, None)?;
                }
            }
            Std::LongYear => f.year = Some(i64::from(num(&mut v, 4, true)?)),
            Std::Year => {
                f.year = Some(i64::from(num(&mut v, 2, true)?)).map(|y| if y >= 69 { y + 1900 } else { y + 2000 })
            }
            Std::Pm(upper) => {
                let (am, pm): (&[u8], &[u8]) = if upper { (b"AM", b"PM") } else { (b"am", b"pm") };
                f.pm = Some(v.starts_with(pm));
                if !v.starts_with(am) && !v.starts_with(pm) {
                    return None;
                }
                v = v.get(2..)?;
            }
            Std::Abbrev => read_abbrev(&mut v, &mut f)?,
            Std::Offset {
                iso,
                colon,
                minutes,
                seconds,
            } => {
                if iso && v.first() == Some(&b'Z') {
                    f.offset = Some(0);
                    v = v.get(1..)?;
                } else {
                    f.offset = Some(read_offset(&mut v, colon, minutes, seconds)?);
                }
            }
            Std::Frac(digits) => {
                if digits.is_some() || matches!(v, [b'.' | b',', b'0'..=b'9', ..]) {
                    f.nanos = fraction(&mut v, digits)?;
                }
            }
        }
    }
    v.is_empty().then_some(f)
}

/// Go's `skip`: literal bytes must match; a run of spaces matches any run of spaces.
fn skip_literal<'a>(mut v: &'a [u8], mut lit: &[u8]) -> Option<&'a [u8]> {
    while let Some(&c) = lit.first() {
        if c == b' ' {
            if v.first().is_some_and(|b| *b != b' ') {
                return None;
            }
            lit = trim_spaces(lit);
            v = trim_spaces(v);
            continue;
        }
        if v.first() != Some(&c) {
            return None;
        }
        lit = lit.get(1..)?;
        v = v.get(1..)?;
    }
    Some(v)
}

fn trim_spaces(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|c| **c == b' ').count();
    s.get(n..).unwrap_or_default()
}

/// One of the space-separated `names` (or their first three letters, when `short`) at the start
/// of `v`, ignoring ASCII case: its index and the rest of `v`.
fn lookup<'a>(v: &'a [u8], names: &str, short: bool) -> Option<(usize, &'a [u8])> {
    names.split(' ').enumerate().find_map(|(i, n)| {
        let n = if short { n.get(..3)? } else { n };
        let (head, rest) = v.split_at_checked(n.len())?;
        head.eq_ignore_ascii_case(n.as_bytes()).then_some((i, rest))
    })
}

/// Up to `max` digits (exactly `max` when `fixed`; at least one).
fn num(v: &mut &[u8], max: usize, fixed: bool) -> Option<u32> {
    let n = v.iter().take(max).take_while(|c| c.is_ascii_digit()).count();
    if n == 0 || (fixed && n < max) {
        return None;
    }
    let (digits, rest) = v.split_at_checked(n)?;
    *v = rest;
    Some(digits.iter().fold(0, |acc, d| acc * 10 + u32::from(d - b'0')))
}

/// `.123` or `,123` as nanoseconds: exactly `digits` digits, or (`None`) any number of them.
/// Digits beyond the ninth are read and ignored.
fn fraction(v: &mut &[u8], digits: Option<u8>) -> Option<u32> {
    let rest = v.strip_prefix(b".").or_else(|| v.strip_prefix(b","))?;
    let n = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    let n = match digits {
        Some(d) if n < usize::from(d) => return None,
        Some(d) => usize::from(d),
        None => n,
    };
    let (ds, tail) = rest.split_at_checked(n)?;
    *v = tail;
    let nanos = ds.iter().take(9).fold(0, |acc, d| acc * 10 + u32::from(d - b'0'));
    Some(nanos * 10u32.pow(9 - n.min(9) as u32))
}

/// A numeric offset `±hh[[:]mm[[:]ss]]` as Go reads it, in seconds east of UTC.
fn read_offset(v: &mut &[u8], colon: bool, minutes: bool, seconds: bool) -> Option<i64> {
    let (sign, mut rest) = v.split_first()?;
    let mut part = |sep: bool| -> Option<i64> {
        if sep {
            rest = rest.strip_prefix(b":")?;
        }
        num(&mut rest, 2, true).map(i64::from)
    };
    let h = part(false)?;
    let m = if minutes { part(colon)? } else { 0 };
    let s = if seconds { part(colon)? } else { 0 };
    if h > 24 || m > 60 || s > 60 {
        return None;
    }
    let off = h * 3600 + m * 60 + s;
    *v = rest;
    match sign {
        b'+' => Some(off),
        b'-' => Some(-off),
        _ => None,
    }
}

/// A zone abbreviation (`MST`, 3–5 capitals), or `GMT±h`/`UTC`, or a bare `±hh` as Go allows.
fn read_abbrev<'a>(v: &mut &'a [u8], f: &mut Fields<'a>) -> Option<()> {
    if let Some(rest) = v.strip_prefix(b"GMT").or_else(|| v.strip_prefix(b"UTC")) {
        *v = rest;
        if matches!(rest.first(), Some(b'+' | b'-')) {
            let (sign, mut r) = rest.split_first()?;
            let h = i64::from(num(&mut r, 2, false).filter(|h| *h <= 24)?);
            f.offset = Some(if *sign == b'-' { -h * 3600 } else { h * 3600 });
            *v = r;
        } else {
            f.offset = Some(0);
        }
        return Some(());
    }
    if matches!(v.first(), Some(b'+' | b'-')) {
        f.offset = Some(read_offset(v, false, false, false)?);
        return Some(());
    }
    let n = v.iter().take(6).take_while(|c| c.is_ascii_uppercase()).count();
    if !(3..=5).contains(&n) {
        return None;
    }
    let (abbrev, rest) = v.split_at_checked(n)?;
    f.abbrev = Some(abbrev);
    *v = rest;
    Some(())
}

/// A unix count in units of `unit` ns, with an optional sign and fraction, as nanoseconds.
fn parse_unix(v: &str, unit: i64) -> Option<i64> {
    let (neg, body) = match v.as_bytes().first()? {
        b'-' => (true, v.get(1..)?),
        b'+' => (false, v.get(1..)?),
        _ => (false, v),
    };
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) if !f.is_empty() => (i, f),
        Some(_) => return None,
        None => (body, ""),
    };
    if int.is_empty() || int.len() > 30 || !(int.bytes().chain(frac.bytes())).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut n = int.parse::<i128>().ok()?.checked_mul(i128::from(unit))?;
    let mut scale = i128::from(unit);
    for d in frac.bytes().take(9) {
        scale /= 10;
        n = n.checked_add(i128::from(d - b'0') * scale)?;
    }
    i64::try_from(if neg { -n } else { n }).ok()
}

/// Month and day of day-of-year `yday` (1-based).
fn month_day_of(year: i64, yday: u32) -> Option<(u32, u32)> {
    let mut left = yday;
    for month in 1..=12 {
        let n = days_in_month(year, month);
        if (1..=n).contains(&left) {
            return Some((month, left));
        }
        left = left.checked_sub(n)?;
    }
    None
}

#[cfg(test)]
#[path = "timestamp_tests.rs"]
mod tests;
