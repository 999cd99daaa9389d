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
use super::go_layout::{layout_items, month_day_of, parse_unix, read, Fields, Item};
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

#[cfg(test)]
#[path = "timestamp_tests.rs"]
mod tests;
