//! Go's reference layouts (`2006-01-02 15:04:05.000`, `02/Jan/2006:15:04:05 -0700`), for the
//! `timestamp` stage: a layout compiled into fields and literals, and a value read with Go's own
//! rules (`time.Parse`); see [`super::timestamp`].

use crate::parse::days_in_month;

/// The parts of a Go layout: literal text and reference elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Item {
    Lit(Vec<u8>),
    Std(Std),
}

/// Go's reference elements (time/format.go), by what they read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Std {
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

pub(super) fn layout_items(mut l: &[u8]) -> Vec<Item> {
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
pub(super) struct Fields<'a> {
    pub(super) year: Option<i64>,
    pub(super) month: Option<u32>,
    pub(super) day: Option<u32>,
    pub(super) yday: Option<u32>,
    pub(super) hour: u32,
    pub(super) minute: u32,
    pub(super) second: u32,
    pub(super) nanos: u32,
    /// `Some(true)` for PM.
    pub(super) pm: Option<bool>,
    /// Seconds east of UTC.
    pub(super) offset: Option<i64>,
    pub(super) abbrev: Option<&'a [u8]>,
}

/// Go's names; the short ones are their first three letters.
const MONTHS: &str = "January February March April May June July August September October November December";
const DAYS: &str = "Sunday Monday Tuesday Wednesday Thursday Friday Saturday";

/// Reads `v` by the layout, as Go's `time.Parse` does; `None` if it does not fit exactly.
pub(super) fn read<'a>(items: &[Item], v: &'a [u8]) -> Option<Fields<'a>> {
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
pub(super) fn parse_unix(v: &str, unit: i64) -> Option<i64> {
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
pub(super) fn month_day_of(year: i64, yday: u32) -> Option<(u32, u32)> {
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
