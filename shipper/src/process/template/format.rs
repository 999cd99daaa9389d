//! Values as Go's `fmt` writes them: `%v`, `printf`'s verbs, `strconv.Quote`, and JSON as
//! `encoding/json` writes it.

use super::value::{Val, MAX_RESULT};
use super::Data;
use std::fmt::Write;

/// An action's value in the output: as `print` writes it, `<no value>` for nil.
pub(super) fn print_action(v: &Val<'_>, data: &Data, out: &mut String) {
    match v {
        Val::Str(s) => out.push_str(s),
        Val::Nil => out.push_str("<no value>"),
        v => fmt_v(v, data, out),
    }
}

/// Go's `%v`.
pub(super) fn fmt_v(v: &Val<'_>, data: &Data, out: &mut String) {
    match v {
        Val::Nil => out.push_str("<nil>"),
        Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Val::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Val::Float(f) => go_float(*f, out),
        Val::Str(s) => out.push_str(s),
        Val::Map => {
            out.push_str("map[");
            for (i, (k, v)) in data.entries().into_iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                out.push_str(v);
            }
            out.push(']');
        }
    }
}

/// Go's shortest `%v` of a float: `1.5`, `100000`, `1e+06`, `1e-05`.
fn go_float(f: f64, out: &mut String) {
    if f.is_nan() {
        return out.push_str("NaN");
    }
    if f.is_infinite() {
        return out.push_str(if f > 0.0 { "+Inf" } else { "-Inf" });
    }
    let e = format!("{f:e}");
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&exp) {
        let _ = write!(out, "{f}");
    } else {
        let _ = write!(out, "{mant}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
}

/// Go's `strconv.Quote`.
pub(super) fn go_quote(t: &str, out: &mut String) {
    out.push('"');
    for c in t.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `encoding/json` as sprig's `toJson` uses it (`<`, `>`, `&` escaped).
pub(super) fn to_json(v: &Val<'_>, data: &Data, out: &mut String) {
    let string = |t: &str, out: &mut String| {
        let j = serde_json::to_string(t).unwrap_or_default();
        for c in j.chars() {
            match c {
                '<' => out.push_str("\\u003c"),
                '>' => out.push_str("\\u003e"),
                '&' => out.push_str("\\u0026"),
                '\u{2028}' => out.push_str("\\u2028"),
                '\u{2029}' => out.push_str("\\u2029"),
                c => out.push(c),
            }
        }
    };
    match v {
        Val::Nil => out.push_str("null"),
        Val::Str(t) => string(t, out),
        Val::Map => {
            out.push('{');
            for (i, (k, v)) in data.entries().into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                string(k, out);
                out.push(':');
                string(v, out);
            }
            out.push('}');
        }
        v => fmt_v(v, data, out),
    }
}

/// Go's `fmt.Sprintf` for the common verbs (`%v %s %d %q %x %X %t %f %e %g %c %o %b %%`), with
/// flags (`-`, `0`, `+`, space), width and precision; mismatches are written as Go writes them.
pub(super) fn printf(format: &str, args: &[Val<'_>], data: &Data, out: &mut String) -> Result<(), String> {
    let mut args = args.iter();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let (mut minus, mut zero, mut plus, mut space) = (false, false, false, false);
        while let Some(&f) = chars.peek() {
            match f {
                '-' => minus = true,
                '0' => zero = true,
                '+' => plus = true,
                ' ' => space = true,
                '#' => {}
                _ => break,
            }
            chars.next();
        }
        let num = |chars: &mut std::iter::Peekable<std::str::Chars>| {
            let mut n: Option<usize> = None;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                n = Some(n.unwrap_or(0).saturating_mul(10).saturating_add(d as usize));
                chars.next();
            }
            n
        };
        let width = num(&mut chars).unwrap_or(0);
        let prec = if chars.peek() == Some(&'.') {
            chars.next();
            Some(num(&mut chars).unwrap_or(0))
        } else {
            None
        };
        if width > MAX_RESULT || prec.is_some_and(|p| p > MAX_RESULT) {
            return Err("printf: width or precision too large".into());
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.next() else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        let mut body = String::new();
        let mut numeric = false;
        match (verb, arg) {
            ('v' | 's', Val::Str(t)) => match prec {
                Some(p) => body.extend(t.chars().take(p)),
                None => body.push_str(t),
            },
            ('v', v) => fmt_v(v, data, &mut body),
            ('d', Val::Int(i)) => {
                numeric = true;
                let _ = write!(body, "{}", i.unsigned_abs());
                sign(&mut body, *i < 0, plus, space);
            }
            ('t', Val::Bool(b)) => body.push_str(if *b { "true" } else { "false" }),
            ('q', Val::Str(t)) => go_quote(t, &mut body),
            ('q', Val::Int(i)) => {
                let c = u32::try_from(*i).ok().and_then(char::from_u32).unwrap_or('\u{FFFD}');
                if c.is_control() {
                    let _ = write!(body, "'\\x{:02x}'", c as u32);
                } else {
                    let _ = write!(body, "'{c}'");
                }
            }
            ('c', Val::Int(i)) => body.push(u32::try_from(*i).ok().and_then(char::from_u32).unwrap_or('\u{FFFD}')),
            ('x' | 'X', Val::Str(t)) => {
                for b in t.bytes() {
                    let _ = if verb == 'x' {
                        write!(body, "{b:02x}")
                    } else {
                        write!(body, "{b:02X}")
                    };
                }
            }
            ('x' | 'X' | 'o' | 'b', Val::Int(i)) => {
                numeric = true;
                let u = i.unsigned_abs();
                let _ = match verb {
                    'x' => write!(body, "{u:x}"),
                    'X' => write!(body, "{u:X}"),
                    'o' => write!(body, "{u:o}"),
                    _ => write!(body, "{u:b}"),
                };
                sign(&mut body, *i < 0, plus, space);
            }
            ('f' | 'F' | 'e' | 'E' | 'g' | 'G', Val::Float(x)) => {
                numeric = true;
                let p = prec.unwrap_or(6);
                match verb {
                    'f' | 'F' => {
                        let _ = write!(body, "{:.*}", p, x.abs());
                    }
                    'e' | 'E' => {
                        let t = format!("{:.*e}", p, x.abs());
                        let (m, e) = t.split_once('e').unwrap_or((&t, "0"));
                        let e: i32 = e.parse().unwrap_or(0);
                        let _ = write!(
                            body,
                            "{m}{}{}{:02}",
                            if verb == 'e' { 'e' } else { 'E' },
                            if e < 0 { '-' } else { '+' },
                            e.abs()
                        );
                    }
                    _ => go_float(x.abs(), &mut body),
                }
                sign(&mut body, *x < 0.0, plus, space);
            }
            (verb, Val::Nil) => {
                let _ = write!(body, "%!{verb}(<nil>)");
            }
            (verb, v) => {
                let _ = write!(body, "%!{verb}({}=", v.type_name());
                fmt_v(v, data, &mut body);
                body.push(')');
            }
        }
        let len = body.chars().count();
        if len >= width {
            out.push_str(&body);
        } else if minus {
            out.push_str(&body);
            out.extend(std::iter::repeat_n(' ', width - len));
        } else if zero && numeric {
            let signed = body.starts_with(['-', '+', ' ']);
            if signed {
                out.push_str(&body[..1]);
            }
            out.extend(std::iter::repeat_n('0', width - len));
            out.push_str(&body[usize::from(signed)..]);
        } else {
            out.extend(std::iter::repeat_n(' ', width - len));
            out.push_str(&body);
        }
    }
    let extra: Vec<&Val> = args.collect();
    if !extra.is_empty() {
        out.push_str("%!(EXTRA ");
        for (i, v) in extra.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "{}=", v.type_name());
            fmt_v(v, data, out);
        }
        out.push(')');
    }
    Ok(())
}

fn sign(body: &mut String, neg: bool, plus: bool, space: bool) {
    if neg {
        body.insert(0, '-');
    } else if plus {
        body.insert(0, '+');
    } else if space {
        body.insert(0, ' ');
    }
}
