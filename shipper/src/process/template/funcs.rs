//! The template's values and functions.
//!
//! - Go's builtins: `and`, `or`, `not`, `eq`, `ne`, `lt`, `le`, `gt`, `ge`, `len`, `index`,
//!   `print`, `println`, `printf`, `html`, `urlquery`.
//! - Promtail's: `ToLower`, `ToUpper`, `Replace`, `Trim`, `TrimLeft`, `TrimRight`, `TrimPrefix`,
//!   `TrimSuffix`, `TrimSpace`, `Hash` (SHA3-256 hex of its two arguments joined), `Sha2Hash`
//!   (SHA-256 hex, likewise), `regexReplaceAll`, `regexReplaceAllLiteral`.
//! - sprig's: `default`, `empty`, `coalesce`, `ternary`, `trim`, `trimAll`, `trimPrefix`,
//!   `trimSuffix`, `upper`, `lower`, `title`, `replace`, `contains`, `hasPrefix`, `hasSuffix`,
//!   `quote`, `squote`, `cat`, `trunc`, `repeat`, `substr`, `nospace`, `indent`, `nindent`,
//!   `b64enc`, `b64dec`, `toJson`, `toString`, `sha256sum`, `regexMatch`, `regexFind`, `add`,
//!   `add1`, `sub`, `mul`, `div`, `mod`, `max`, `min`, `atoi`, `int`, `int64`.

use super::format::{fmt_v, go_quote, printf, to_json};
pub(super) use super::value::{Val, MAX_RESULT};
use super::Data;
use base64::Engine;
use regex::Regex;
use std::borrow::Cow;
use std::fmt::Write;

macro_rules! funcs {
    ($($name:literal => $f:ident ($min:expr, $max:expr),)*) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(super) enum Func { $($f,)* }
        const FUNCS: &[(&str, Func, usize, Option<usize>)] = &[$(($name, Func::$f, $min, $max),)*];
    };
}

funcs! {
    "and" => And(1, None), "or" => Or(1, None), "not" => Not(1, Some(1)),
    "eq" => Eq(1, None), "ne" => Ne(2, Some(2)), "lt" => Lt(2, Some(2)), "le" => Le(2, Some(2)),
    "gt" => Gt(2, Some(2)), "ge" => Ge(2, Some(2)), "len" => Len(1, Some(1)), "index" => Index(1, None),
    "print" => Print(0, None), "println" => Println(0, None), "printf" => Printf(1, None),
    "html" => Html(0, None), "urlquery" => UrlQuery(0, None),
    "ToLower" => ToLower(1, Some(1)), "ToUpper" => ToUpper(1, Some(1)), "Replace" => Replace(4, Some(4)),
    "Trim" => Trim(2, Some(2)), "TrimLeft" => TrimLeft(2, Some(2)), "TrimRight" => TrimRight(2, Some(2)),
    "TrimPrefix" => TrimPrefix(2, Some(2)), "TrimSuffix" => TrimSuffix(2, Some(2)),
    "TrimSpace" => TrimSpace(1, Some(1)), "Hash" => Hash(2, Some(2)), "Sha2Hash" => Sha2Hash(2, Some(2)),
    "regexReplaceAll" => RegexReplaceAll(3, Some(3)), "regexReplaceAllLiteral" => RegexReplaceAllLiteral(3, Some(3)),
    "default" => Default(1, None), "empty" => Empty(1, Some(1)), "coalesce" => Coalesce(0, None),
    "ternary" => Ternary(3, Some(3)), "trim" => SprigTrim(1, Some(1)), "trimAll" => TrimAll(2, Some(2)),
    "trimPrefix" => SprigTrimPrefix(2, Some(2)), "trimSuffix" => SprigTrimSuffix(2, Some(2)),
    "upper" => Upper(1, Some(1)), "lower" => Lower(1, Some(1)), "title" => Title(1, Some(1)),
    "replace" => SprigReplace(3, Some(3)), "contains" => Contains(2, Some(2)),
    "hasPrefix" => HasPrefix(2, Some(2)), "hasSuffix" => HasSuffix(2, Some(2)),
    "quote" => Quote(0, None), "squote" => Squote(0, None), "cat" => Cat(0, None),
    "trunc" => Trunc(2, Some(2)), "repeat" => Repeat(2, Some(2)), "substr" => Substr(3, Some(3)),
    "nospace" => Nospace(1, Some(1)), "indent" => Indent(2, Some(2)), "nindent" => Nindent(2, Some(2)),
    "b64enc" => B64Enc(1, Some(1)), "b64dec" => B64Dec(1, Some(1)), "toJson" => ToJson(1, Some(1)),
    "toString" => ToString(1, Some(1)), "sha256sum" => Sha256Sum(1, Some(1)),
    "regexMatch" => RegexMatch(2, Some(2)), "regexFind" => RegexFind(2, Some(2)),
    "add" => Add(0, None), "add1" => Add1(1, Some(1)), "sub" => Sub(2, Some(2)), "mul" => Mul(1, None),
    "div" => Div(2, Some(2)), "mod" => Mod(2, Some(2)), "max" => Max(1, None), "min" => Min(1, None),
    "atoi" => Atoi(1, Some(1)), "int" => Int(1, Some(1)), "int64" => Int64(1, Some(1)),
}

impl Func {
    pub(super) fn lookup(name: &str) -> Option<Func> {
        FUNCS.iter().find(|f| f.0 == name).map(|f| f.1)
    }

    pub(super) fn name(self) -> &'static str {
        FUNCS.iter().find(|f| f.1 == self).map_or("?", |f| f.0)
    }

    /// The least and most arguments it takes (`None`: any number).
    pub(super) fn arity(self) -> (usize, Option<usize>) {
        FUNCS.iter().find(|f| f.1 == self).map_or((0, None), |f| (f.2, f.3))
    }

    /// Its first argument is a regular expression.
    pub(super) fn takes_regex(self) -> bool {
        matches!(
            self,
            Func::RegexReplaceAll | Func::RegexReplaceAllLiteral | Func::RegexMatch | Func::RegexFind
        )
    }
}

type R<'a> = Result<Val<'a>, String>;

fn s<'a>(v: impl Into<Cow<'a, str>>) -> R<'a> {
    Ok(Val::Str(v.into()))
}

/// A string argument (Go refuses anything else where a function takes a string).
fn str_arg<'v>(v: &'v Val<'_>) -> Result<&'v str, String> {
    match v {
        Val::Str(s) => Ok(s),
        Val::Nil => Err("invalid value; expected string".into()),
        v => Err(format!("expected string; found {}", v.type_name())),
    }
}

fn int_arg(v: &Val<'_>) -> Result<i64, String> {
    match v {
        Val::Int(i) => Ok(*i),
        Val::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Ok(*f as i64),
        v => Err(format!("expected integer; found {}", v.type_name())),
    }
}

/// The part of a string argument `f` keeps, borrowed when the argument is.
fn keep<'a>(v: &Val<'a>, f: impl FnOnce(&str) -> &str) -> R<'a> {
    match v {
        Val::Str(Cow::Borrowed(b)) => s(f(b)),
        v => s(f(str_arg(v)?).to_owned()),
    }
}

/// Go's `strings.ToUpper` / `ToLower`: one character for one (`ß` stays `ß`); the argument itself
/// when nothing changes.
fn recase<'a>(v: &Val<'a>, upper: bool) -> R<'a> {
    let t = str_arg(v)?;
    let map = |c: char| -> char {
        if upper {
            let mut u = c.to_uppercase();
            match (u.next(), u.next()) {
                (Some(x), None) => x,
                _ => c,
            }
        } else {
            c.to_lowercase().next().unwrap_or(c)
        }
    };
    if t.chars().all(|c| map(c) == c) {
        return Ok(v.clone());
    }
    if t.is_ascii() {
        return s(if upper {
            t.to_ascii_uppercase()
        } else {
            t.to_ascii_lowercase()
        });
    }
    s(t.chars().map(map).collect::<String>())
}

/// sprig's conversion to a string (`<nil>` for nil).
fn strval<'v>(v: &'v Val<'_>, data: &Data) -> Cow<'v, str> {
    match v {
        Val::Str(s) => Cow::Borrowed(s),
        v => {
            let mut o = String::new();
            fmt_v(v, data, &mut o);
            Cow::Owned(o)
        }
    }
}

/// sprig's (cast's) conversion to an integer: 0 when it is not one.
fn toint(v: &Val<'_>) -> i64 {
    match v {
        Val::Int(i) => *i,
        Val::Float(f) => *f as i64,
        Val::Bool(b) => i64::from(*b),
        Val::Str(s) => parse_int(s).unwrap_or(0),
        Val::Nil | Val::Map => 0,
    }
}

fn parse_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let body = body.strip_suffix(".0").unwrap_or(body);
    let l = body.to_ascii_lowercase();
    let v = if let Some(h) = l.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()?
    } else if let Some(b) = l.strip_prefix("0b") {
        i64::from_str_radix(b, 2).ok()?
    } else if let Some(o) = l.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()?
    } else if l.len() > 1 && l.starts_with('0') {
        i64::from_str_radix(&l[1..], 8).ok()?
    } else {
        l.parse().ok()?
    };
    Some(if neg { v.wrapping_neg() } else { v })
}

/// sprig's `empty`.
fn empty(v: &Val<'_>) -> bool {
    !v.truth()
}

/// The largest char boundary at or before `i`.
fn floor(s: &str, i: usize) -> usize {
    let mut i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Bytes as lower-case hex digits.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut o = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(o, "{b:02x}");
    }
    o
}

fn regex<'r>(pre: Option<&'r Regex>, pattern: &str) -> Result<Cow<'r, Regex>, String> {
    match pre {
        Some(r) => Ok(Cow::Borrowed(r)),
        None => Regex::new(pattern).map(Cow::Owned).map_err(|e| e.to_string()),
    }
}

/// Go's comparison of basic values (`eq` and the ordered ones).
fn compare(a: &Val<'_>, b: &Val<'_>) -> Result<Option<std::cmp::Ordering>, String> {
    Ok(match (a, b) {
        (Val::Str(x), Val::Str(y)) => Some(x.cmp(y)),
        (Val::Int(x), Val::Int(y)) => Some(x.cmp(y)),
        (Val::Float(x), Val::Float(y)) => x.partial_cmp(y),
        (Val::Bool(x), Val::Bool(y)) => Some(x.cmp(y)),
        (Val::Nil, Val::Nil) => Some(std::cmp::Ordering::Equal),
        (Val::Nil, _) | (_, Val::Nil) => None,
        (a, b) => {
            return Err(format!(
                "incompatible types for comparison: {} and {}",
                a.type_name(),
                b.type_name()
            ))
        }
    })
}

fn ordered(a: &Val<'_>, b: &Val<'_>, f: fn(std::cmp::Ordering) -> bool) -> R<'static> {
    if matches!(a, Val::Nil | Val::Bool(_) | Val::Map) || matches!(b, Val::Nil | Val::Bool(_) | Val::Map) {
        return Err("invalid type for comparison".into());
    }
    Ok(Val::Bool(compare(a, b)?.is_some_and(f)))
}

/// Go's `print` (`fmt.Sprint`): a space between operands when neither is a string.
fn sprint(args: &[Val<'_>], data: &Data, out: &mut String) {
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !matches!(a, Val::Str(_)) && !matches!(args[i - 1], Val::Str(_)) {
            out.push(' ');
        }
        fmt_v(a, data, out);
    }
}

/// The single string argument as it is, otherwise the arguments as `print` writes them.
fn eval_args<'v>(args: &'v [Val<'_>], data: &Data) -> Cow<'v, str> {
    match args {
        [Val::Str(s)] => Cow::Borrowed(s),
        _ => {
            let mut o = String::new();
            sprint(args, data, &mut o);
            Cow::Owned(o)
        }
    }
}

pub(super) fn call<'a>(f: Func, a: &[Val<'a>], re: Option<&Regex>, data: &Data<'a>) -> R<'a> {
    use Func as F;
    let n = a.len();
    match f {
        F::And | F::Or => unreachable!("evaluated lazily by the caller"),
        F::Not => Ok(Val::Bool(!a[0].truth())),
        F::Eq => {
            if n < 2 {
                return Err("missing argument for comparison".into());
            }
            for b in &a[1..] {
                if compare(&a[0], b)? == Some(std::cmp::Ordering::Equal) {
                    return Ok(Val::Bool(true));
                }
            }
            Ok(Val::Bool(false))
        }
        F::Ne => Ok(Val::Bool(compare(&a[0], &a[1])? != Some(std::cmp::Ordering::Equal))),
        F::Lt => ordered(&a[0], &a[1], |o| o.is_lt()),
        F::Le => ordered(&a[0], &a[1], |o| o.is_le()),
        F::Gt => ordered(&a[0], &a[1], |o| o.is_gt()),
        F::Ge => ordered(&a[0], &a[1], |o| o.is_ge()),
        F::Len => match &a[0] {
            Val::Str(s) => Ok(Val::Int(s.len() as i64)),
            Val::Map => Ok(Val::Int(data.entries().len() as i64)),
            v => Err(format!("len of type {}", v.type_name())),
        },
        F::Index => {
            let mut v = a[0].clone();
            for i in &a[1..] {
                v = match (&v, i) {
                    (Val::Map, Val::Str(k)) => data.key(k),
                    (Val::Map, Val::Nil) => Val::Nil,
                    (Val::Str(s), i) => {
                        let i = int_arg(i)?;
                        match usize::try_from(i).ok().and_then(|i| s.as_bytes().get(i)) {
                            Some(b) => Val::Int(i64::from(*b)),
                            None => return Err(format!("index out of range: {i}")),
                        }
                    }
                    (v, _) => return Err(format!("can't index item of type {}", v.type_name())),
                };
            }
            Ok(v)
        }
        F::Print | F::Println => {
            let mut o = String::new();
            if f == F::Print {
                sprint(a, data, &mut o);
            } else {
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        o.push(' ');
                    }
                    fmt_v(v, data, &mut o);
                }
                o.push('\n');
            }
            s(o)
        }
        F::Printf => {
            let mut o = String::new();
            printf(str_arg(&a[0])?, &a[1..], data, &mut o)?;
            s(o)
        }
        F::Html => {
            let t = eval_args(a, data);
            let mut o = String::with_capacity(t.len());
            for c in t.chars() {
                match c {
                    '"' => o.push_str("&#34;"),
                    '\'' => o.push_str("&#39;"),
                    '&' => o.push_str("&amp;"),
                    '<' => o.push_str("&lt;"),
                    '>' => o.push_str("&gt;"),
                    '\0' => o.push('\u{FFFD}'),
                    c => o.push(c),
                }
            }
            s(o)
        }
        F::UrlQuery => {
            let t = eval_args(a, data);
            let mut o = String::with_capacity(t.len());
            for b in t.bytes() {
                match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => o.push(b as char),
                    b' ' => o.push('+'),
                    b => {
                        let _ = write!(o, "%{b:02X}");
                    }
                }
            }
            s(o)
        }
        F::ToLower | F::Lower => recase(&a[0], false),
        F::ToUpper | F::Upper => recase(&a[0], true),
        F::Replace => {
            let (src, old, new, count) = (str_arg(&a[0])?, str_arg(&a[1])?, str_arg(&a[2])?, int_arg(&a[3])?);
            s(match usize::try_from(count) {
                Ok(c) => src.replacen(old, new, c),
                Err(_) => src.replace(old, new),
            })
        }
        F::Trim | F::TrimAll => {
            let (v, set) = if f == F::Trim {
                (&a[0], str_arg(&a[1])?)
            } else {
                (&a[1], str_arg(&a[0])?)
            };
            keep(v, |x| x.trim_matches(|c| set.contains(c)))
        }
        F::TrimLeft => {
            let set = str_arg(&a[1])?;
            keep(&a[0], |x| x.trim_start_matches(|c| set.contains(c)))
        }
        F::TrimRight => {
            let set = str_arg(&a[1])?;
            keep(&a[0], |x| x.trim_end_matches(|c| set.contains(c)))
        }
        F::TrimPrefix | F::SprigTrimPrefix => {
            let (v, p) = if f == F::TrimPrefix {
                (&a[0], str_arg(&a[1])?)
            } else {
                (&a[1], str_arg(&a[0])?)
            };
            keep(v, |x| x.strip_prefix(p).unwrap_or(x))
        }
        F::TrimSuffix | F::SprigTrimSuffix => {
            let (v, p) = if f == F::TrimSuffix {
                (&a[0], str_arg(&a[1])?)
            } else {
                (&a[1], str_arg(&a[0])?)
            };
            keep(v, |x| x.strip_suffix(p).unwrap_or(x))
        }
        F::TrimSpace | F::SprigTrim => keep(&a[0], str::trim),
        F::Hash | F::Sha2Hash => {
            let (x, y) = (str_arg(&a[0])?, str_arg(&a[1])?);
            let digest: Vec<u8> = if f == F::Hash {
                use sha3::Digest;
                let mut h = sha3::Sha3_256::new();
                h.update(x.as_bytes());
                h.update(y.as_bytes());
                h.finalize().to_vec()
            } else {
                let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
                ctx.update(x.as_bytes());
                ctx.update(y.as_bytes());
                ctx.finish().as_ref().to_vec()
            };
            s(hex(&digest))
        }
        F::Sha256Sum => s(hex(ring::digest::digest(
            &ring::digest::SHA256,
            str_arg(&a[0])?.as_bytes(),
        )
        .as_ref())),
        F::RegexReplaceAll | F::RegexReplaceAllLiteral => {
            let (src, repl) = (str_arg(&a[1])?, str_arg(&a[2])?);
            let r = regex(re, str_arg(&a[0])?)?;
            let out = if f == F::RegexReplaceAll {
                r.replace_all(src, repl)
            } else {
                r.replace_all(src, regex::NoExpand(repl))
            };
            s(out.into_owned())
        }
        F::RegexMatch => {
            let src = str_arg(&a[1])?;
            Ok(Val::Bool(regex(re, str_arg(&a[0])?).is_ok_and(|r| r.is_match(src))))
        }
        F::RegexFind => {
            let src = str_arg(&a[1])?;
            let r = regex(re, str_arg(&a[0])?)?;
            s(r.find(src).map_or("", |m| m.as_str()).to_owned())
        }
        F::Default => Ok(match a.get(1) {
            Some(v) if !empty(v) => v.clone(),
            _ => a[0].clone(),
        }),
        F::Empty => Ok(Val::Bool(empty(&a[0]))),
        F::Coalesce => Ok(a.iter().find(|v| !empty(v)).cloned().unwrap_or(Val::Nil)),
        F::Ternary => match &a[2] {
            Val::Bool(b) => Ok(if *b { a[0].clone() } else { a[1].clone() }),
            v => Err(format!("wrong type for value; expected bool; got {}", v.type_name())),
        },
        F::Title => {
            let mut o = String::new();
            let mut prev_sep = true;
            for c in str_arg(&a[0])?.chars() {
                if prev_sep {
                    o.extend(c.to_uppercase());
                } else {
                    o.push(c);
                }
                prev_sep = if c.is_ascii() {
                    !(c.is_ascii_alphanumeric() || c == '_')
                } else {
                    c.is_whitespace()
                };
            }
            s(o)
        }
        F::SprigReplace => s(str_arg(&a[2])?.replace(str_arg(&a[0])?, str_arg(&a[1])?)),
        F::Contains => Ok(Val::Bool(str_arg(&a[1])?.contains(str_arg(&a[0])?))),
        F::HasPrefix => Ok(Val::Bool(str_arg(&a[1])?.starts_with(str_arg(&a[0])?))),
        F::HasSuffix => Ok(Val::Bool(str_arg(&a[1])?.ends_with(str_arg(&a[0])?))),
        F::Quote | F::Squote | F::Cat => {
            let mut o = String::new();
            for (i, v) in a.iter().filter(|v| !matches!(v, Val::Nil)).enumerate() {
                if i > 0 {
                    o.push(' ');
                }
                let t = strval(v, data);
                match f {
                    F::Quote => go_quote(&t, &mut o),
                    F::Squote => {
                        o.push('\'');
                        o.push_str(&t);
                        o.push('\'');
                    }
                    _ => o.push_str(&t),
                }
            }
            s(o)
        }
        F::Trunc => {
            let (c, v) = (int_arg(&a[0])?, &a[1]);
            let len = str_arg(v)?.len() as i64;
            if c < 0 && len + c > 0 {
                keep(v, |x| &x[floor(x, (len + c) as usize)..])
            } else if c >= 0 && len > c {
                keep(v, |x| &x[..floor(x, c as usize)])
            } else {
                Ok(v.clone())
            }
        }
        F::Repeat => {
            let (c, t) = (int_arg(&a[0])?, str_arg(&a[1])?);
            let c = usize::try_from(c).map_err(|_| "negative repeat count".to_string())?;
            if c.saturating_mul(t.len()) > MAX_RESULT {
                return Err("repeat: result too large".into());
            }
            s(t.repeat(c))
        }
        F::Substr => {
            let (start, end, v) = (int_arg(&a[0])?, int_arg(&a[1])?, &a[2]);
            let len = str_arg(v)?.len() as i64;
            let (from, to) = if start < 0 {
                (0, end)
            } else if end < 0 || end > len {
                (start, len)
            } else {
                (start, end)
            };
            if from < 0 || to < 0 || from > to || to > len {
                return Err(format!("slice bounds out of range [{from}:{to}]"));
            }
            keep(v, |x| {
                &x[floor(x, from as usize)..floor(x, to as usize).max(floor(x, from as usize))]
            })
        }
        F::Nospace => s(str_arg(&a[0])?.split_whitespace().collect::<String>()),
        F::Indent | F::Nindent => {
            let (c, t) = (int_arg(&a[0])?, str_arg(&a[1])?);
            let c = usize::try_from(c).unwrap_or(0).min(MAX_RESULT);
            let pad = " ".repeat(c);
            let body = format!("{pad}{}", t.replace('\n', &format!("\n{pad}")));
            s(if f == F::Nindent { format!("\n{body}") } else { body })
        }
        F::B64Enc => s(base64::engine::general_purpose::STANDARD.encode(str_arg(&a[0])?)),
        F::B64Dec => s(
            match base64::engine::general_purpose::STANDARD.decode(str_arg(&a[0])?) {
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(base64::DecodeError::InvalidByte(i, _) | base64::DecodeError::InvalidLastSymbol(i, _)) => {
                    format!("illegal base64 data at input byte {i}")
                }
                Err(base64::DecodeError::InvalidLength(n)) => {
                    format!("illegal base64 data at input byte {}", n / 4 * 4)
                }
                Err(_) => "illegal base64 data at input byte 0".to_string(),
            },
        ),
        F::ToJson => {
            let mut o = String::new();
            to_json(&a[0], data, &mut o);
            s(o)
        }
        F::ToString => s(strval(&a[0], data).into_owned()),
        F::Add => Ok(Val::Int(a.iter().map(toint).fold(0i64, i64::wrapping_add))),
        F::Add1 => Ok(Val::Int(toint(&a[0]).wrapping_add(1))),
        F::Sub => Ok(Val::Int(toint(&a[0]).wrapping_sub(toint(&a[1])))),
        F::Mul => Ok(Val::Int(a.iter().map(toint).fold(1i64, i64::wrapping_mul))),
        F::Div | F::Mod => {
            let (x, y) = (toint(&a[0]), toint(&a[1]));
            if y == 0 {
                return Err("integer divide by zero".into());
            }
            Ok(Val::Int(if f == F::Div {
                x.wrapping_div(y)
            } else {
                x.wrapping_rem(y)
            }))
        }
        F::Max => Ok(Val::Int(a.iter().map(toint).max().unwrap_or(0))),
        F::Min => Ok(Val::Int(a.iter().map(toint).min().unwrap_or(0))),
        F::Atoi => Ok(Val::Int(match &a[0] {
            Val::Str(t) => t.parse().unwrap_or(0),
            v => return Err(format!("expected string; found {}", v.type_name())),
        })),
        F::Int | F::Int64 => Ok(Val::Int(toint(&a[0]))),
    }
}
