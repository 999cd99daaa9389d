//! Alloy expressions evaluated into the values our config holds. Literals become YAML values;
//! `env("X")` / `sys.env("X")` becomes `${X}` (read when the agent starts), `constants.hostname`
//! `${HOSTNAME}`; `coalesce` and `+` on strings are folded. References to other components are
//! the graph's business (see `lower.rs`), not values.

use super::super::out::literal;
use super::Expr;
use serde_json::{Map, Value};

/// The value of `e`, or why it has none here.
pub fn eval(e: &Expr) -> Result<Value, String> {
    Ok(match e {
        Expr::Null => Value::Null,
        Expr::Bool(b) => Value::Bool(*b),
        Expr::Number(n) => {
            if n.fract() == 0.0 && n.abs() < 9.0e15 {
                Value::from(*n as i64)
            } else {
                serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number)
            }
        }
        Expr::Str(s) => Value::String(literal(s)),
        Expr::Array(items) => Value::Array(items.iter().map(eval).collect::<Result<_, _>>()?),
        Expr::Object(fields) => {
            let mut m = Map::new();
            for (k, v) in fields {
                m.insert(k.clone(), eval(v)?);
            }
            Value::Object(m)
        }
        Expr::Call(f, args) => call(f, args)?,
        Expr::Binary("+", a, b) => match (eval(a)?, eval(b)?) {
            (Value::String(a), Value::String(b)) => Value::String(a + &b),
            (Value::Number(a), Value::Number(b)) => match (a.as_i64(), b.as_i64()) {
                (Some(a), Some(b)) => Value::from(a + b),
                _ => return Err("a sum of non-integers".into()),
            },
            _ => return Err("`+` of values that are not both strings or numbers".into()),
        },
        other => match other.path().as_deref() {
            Some("constants.hostname") => Value::String("${HOSTNAME}".into()),
            Some(p) => return Err(format!("`{p}` is a reference, not a value")),
            None => return Err("an expression shipper convert cannot evaluate".into()),
        },
    })
}

fn call(f: &Expr, args: &[Expr]) -> Result<Value, String> {
    let name = f.path().unwrap_or_default();
    match name.as_str() {
        "env" | "sys.env" => match args {
            [Expr::Str(var)] if valid_var(var) => Ok(Value::String(format!("${{{var}}}"))),
            _ => Err(format!("`{name}` with an argument other than a variable name")),
        },
        "coalesce" => {
            // The first non-empty value; an environment variable falls back to what follows it.
            let vals: Vec<Value> = args.iter().map(eval).collect::<Result<_, _>>()?;
            let mut fallback: Option<String> = None;
            for v in vals.iter().rev() {
                match v {
                    Value::String(s) if s.is_empty() => {}
                    Value::Null => {}
                    Value::String(s) => {
                        fallback = Some(match (env_ref(s), &fallback) {
                            (Some(var), Some(f)) => format!("${{{var}:-{f}}}"),
                            _ => s.clone(),
                        })
                    }
                    other => return Ok(other.clone()),
                }
            }
            Ok(fallback.map_or(Value::String(String::new()), Value::String))
        }
        other => Err(format!("the function `{other}`")),
    }
}

fn valid_var(v: &str) -> bool {
    !v.is_empty()
        && !v.starts_with(|c: char| c.is_ascii_digit())
        && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `X` when `s` is exactly `${X}`.
fn env_ref(s: &str) -> Option<&str> {
    s.strip_prefix("${")?.strip_suffix('}').filter(|v| valid_var(v))
}
