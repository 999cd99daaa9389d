//! `${VAR}` expansion in the config text, like Promtail's `-config.expand-env`.
//!
//! `${VAR}` is replaced by the variable's value; `${VAR:-default}` falls back to `default` when the
//! variable is unset or empty; `$$` is a literal `$`. An unset variable without a default is an error
//! naming the variable and the line, so a typo never silently becomes an empty string.

pub fn expand(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let line = text[..text.len() - rest.len() + pos].matches('\n').count() + 1;
            let end = body
                .find('}')
                .ok_or_else(|| format!("line {line}: `${{` without a closing `}}`"))?;
            let expr = &body[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(format!("line {line}: `${{{expr}}}` is not a valid variable reference"));
            }
            let value = lookup(name);
            match (value.clone().filter(|v| !v.is_empty()), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    let state = if value.is_some() {
                        "is set but empty"
                    } else {
                        "is not set"
                    };
                    return Err(format!(
                        "line {line}: environment variable `{name}` {state}; set it, or write `${{{name}:-default}}`"
                    ));
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::expand;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("loki".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands() {
        assert_eq!(expand("http://${HOST}:3100", env).unwrap(), "http://loki:3100");
        assert_eq!(expand("${NOPE:-x}${EMPTY:-y}", env).unwrap(), "xy");
        assert_eq!(expand("cost $$5 and $HOME", env).unwrap(), "cost $5 and $HOME");
    }

    #[test]
    fn errors_name_the_variable_and_line() {
        let e = expand("a: 1\nb: ${MISSING}\n", env).unwrap_err();
        assert!(e.contains("line 2") && e.contains("MISSING"), "{e}");
        assert!(expand("${", env).unwrap_err().contains("closing"));
        assert!(expand("${1A}", env).unwrap_err().contains("not a valid"));
    }
}
