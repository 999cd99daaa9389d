//! Helm's `tpl` on config text kept in chart values (Alloy's `alloy.configMap.content`, Promtail's
//! `config.file` and snippets): `{{ .Values.a.b }}` with `quote`, `default`, `toYaml`, `nindent`,
//! `tpl`…, `if`/`with`/`else`/`end` are rendered from the same values; `.Release.Namespace` and
//! `.Release.Name` from the Application, or a `${RELEASE_NAMESPACE}` / `${RELEASE_NAME}`
//! placeholder; anything else (`include`, `range`, a value the file does not hold) becomes a
//! `${VAR}` placeholder with a report line saying what it stood for.

use super::report::Report;
use super::tpl_syntax::{lex, parse, split_top, terms, Node};
use serde_json::Value;

/// Where a placeholder goes when it stands in an Alloy string: replaced by `${VAR}` once lowered.
pub const HOLE_START: char = '\u{E000}';
pub const HOLE_END: char = '\u{E001}';

/// What the rendering knows besides the values.
pub struct Ctx<'a> {
    pub values: &'a Value,
    /// The Application's destination namespace and release name, when converting one.
    pub namespace: Option<&'a str>,
    pub release: Option<&'a str>,
    /// Placeholders go into Alloy syntax (`env("X")` or a string hole) rather than YAML (`${X}`).
    pub alloy: bool,
}

/// `text` rendered as the chart's `tpl` would, placeholders where it cannot be (their variables
/// added to `holes`); `at` names the value in the report. Text without `{{` is returned as it is.
pub fn render(text: &str, ctx: &Ctx, at: &str, holes: &mut Vec<String>, report: &mut Report) -> Result<String, String> {
    if !text.contains("{{") {
        return Ok(text.to_string());
    }
    let tokens = lex(text).map_err(|e| format!("value {at}: {e}"))?;
    let mut pos = 0;
    let nodes = parse(&tokens, &mut pos, false).map_err(|e| format!("value {at}: {e}"))?;
    let mut r = Renderer {
        ctx,
        at,
        report,
        seen: Vec::new(),
        holes: 0,
        depth: 0,
    };
    let mut out = String::new();
    r.nodes(&nodes, ctx.values, &mut out);
    for (_, var) in r.seen {
        if !var.is_empty() && var != "RELEASE_NAMESPACE" && !holes.contains(&var) {
            holes.push(var);
        }
    }
    Ok(out)
}

struct Renderer<'a, 'r> {
    ctx: &'a Ctx<'a>,
    at: &'a str,
    report: &'r mut Report,
    /// Expressions reported already, with their placeholder.
    seen: Vec<(String, String)>,
    holes: usize,
    depth: usize,
}

/// Why an expression has no value here.
enum Why {
    /// A `.Values` path the values do not hold.
    Missing(String),
    Release(&'static str),
    Other(String),
}

impl Renderer<'_, '_> {
    fn nodes(&mut self, nodes: &[Node], dot: &Value, out: &mut String) {
        for n in nodes {
            match n {
                Node::Text(s) => out.push_str(s),
                Node::Out(e) => match self.pipeline(e, dot) {
                    Ok(v) => match printed(&v) {
                        Some(s) => {
                            self.note(e, Ok(&s));
                            out.push_str(&s)
                        }
                        None => self.hole(e, Why::Other("a map or list printed as Go prints it".into()), out),
                    },
                    Err(why) => self.hole(e, why, out),
                },
                Node::Cond(with, branches) => {
                    for (cond, body) in branches {
                        let v = match cond {
                            None => Value::Bool(true),
                            Some(c) => match self.pipeline(c, dot) {
                                Ok(v) => v,
                                Err(Why::Missing(p)) => {
                                    self.report.not_needed(
                                        None,
                                        format!("value {}: template `{{{{ if {c} }}}}`", self.at),
                                        format!("{p} is not in the values: false, as Helm renders it"),
                                    );
                                    Value::Null
                                }
                                Err(why) => {
                                    self.hole(c, why, out);
                                    break;
                                }
                            },
                        };
                        if truthy(&v) {
                            let inner = if *with && cond.is_some() { &v } else { dot };
                            self.nodes(body, inner, out);
                            break;
                        }
                    }
                }
                Node::Block(text) => self.hole(text, Why::Other("a block this conversion does not render".into()), out),
            }
        }
    }

    fn note(&mut self, e: &str, value: Result<&str, &str>) {
        if self.depth > 0 || self.seen.iter().any(|(s, _)| s == e) {
            return;
        }
        self.seen.push((e.to_string(), String::new()));
        if let Ok(v) = value {
            let from = match e.contains(".Release.") {
                true => "the release",
                false => "the values file",
            };
            let how = match v.contains('\n') || v.chars().count() > 60 {
                true => format!("rendered from {from}, as the chart renders it"),
                false => format!("{v:?}, from {from}, as the chart renders it"),
            };
            self.report
                .mapped(None, format!("value {}: template `{}`", self.at, short(e)), how);
        }
    }

    /// A placeholder for `e` where it stood, and its report line.
    fn hole(&mut self, e: &str, why: Why, out: &mut String) {
        let var = match &why {
            Why::Release("Namespace") => "RELEASE_NAMESPACE".to_string(),
            Why::Release(_) => "RELEASE_NAME".to_string(),
            Why::Missing(p) => super::out::env_name(p.trim_start_matches('.')),
            Why::Other(_) => match self.seen.iter().find(|(s, _)| s == e) {
                Some((_, v)) if !v.is_empty() => v.clone(),
                _ => {
                    self.holes += 1;
                    format!("HELM_TEMPLATE_{}", self.holes)
                }
            },
        };
        if !self.seen.iter().any(|(s, _)| s == e) {
            self.seen.push((e.to_string(), var.clone()));
            let what = format!("value {}: template `{}`", self.at, short(e));
            match why {
                Why::Release("Namespace") => self.report.mapped(
                    None,
                    what,
                    "${RELEASE_NAMESPACE}, the namespace the agent runs in (install shipper where the chart was)",
                ),
                Why::Release(_) => self.report.needs(
                    None,
                    what,
                    "kept as ${RELEASE_NAME}: set RELEASE_NAME to the name the chart was installed with (or convert with --release-name)",
                ),
                Why::Missing(p) => self.report.needs(
                    None,
                    what,
                    format!("{p} is not in the values file: kept as ${{{var}}}; set {var} to its value"),
                ),
                Why::Other(w) => self.report.needs(
                    None,
                    what,
                    format!("{w}: kept as ${{{var}}}; set {var} to what the chart renders there"),
                ),
            }
        }
        let in_string = self.ctx.alloy && {
            let line = out.rsplit('\n').next().unwrap_or("");
            line.replace("\\\"", "").matches('"').count() % 2 == 1
        };
        match (self.ctx.alloy, in_string) {
            (true, true) => out.push_str(&format!("{HOLE_START}{var}{HOLE_END}")),
            (true, false) => out.push_str(&format!("env(\"{var}\")")),
            _ => out.push_str(&format!("${{{var}}}")),
        }
    }

    fn pipeline(&mut self, e: &str, dot: &Value) -> Result<Value, Why> {
        if e.contains(":=") || e.trim_start().starts_with('$') && !e.trim_start().starts_with("$.") {
            return Err(Why::Other("a template variable".into()));
        }
        let mut acc: Option<Result<Value, String>> = None;
        for cmd in split_top(e, '|') {
            let mut args = terms(cmd.trim()).ok_or_else(|| Why::Other("an expression not understood".into()))?;
            if args.is_empty() {
                return Err(Why::Other("an empty command".into()));
            }
            let head = args.remove(0);
            let is_term = head.starts_with(['.', '$', '"', '`', '('])
                || head.parse::<f64>().is_ok()
                || ["true", "false", "nil"].contains(&head.as_str());
            let v = if is_term {
                if !args.is_empty() || acc.is_some() {
                    return Err(Why::Other("an expression not understood".into()));
                }
                match self.term(&head, dot) {
                    Ok(v) => Ok(v),
                    Err(Why::Missing(p)) => Err(p),
                    Err(w) => return Err(w),
                }
            } else {
                let mut vals = Vec::new();
                for a in &args {
                    vals.push(match self.term(a, dot) {
                        Ok(v) => Ok(v),
                        Err(Why::Missing(p)) => Err(p),
                        Err(w) => return Err(w),
                    });
                }
                if let Some(prev) = acc.take() {
                    vals.push(prev);
                }
                Ok(self.func(&head, vals, &args, dot)?)
            };
            acc = Some(v);
        }
        match acc {
            Some(Ok(v)) => Ok(v),
            Some(Err(p)) => Err(Why::Missing(p)),
            None => Err(Why::Other("an empty action".into())),
        }
    }

    fn term(&mut self, t: &str, dot: &Value) -> Result<Value, Why> {
        if let Some(inner) = t.strip_prefix('(').and_then(|t| t.strip_suffix(')')) {
            return self.pipeline(inner, dot);
        }
        if let Some(s) = t.strip_prefix('`').and_then(|t| t.strip_suffix('`')) {
            return Ok(Value::String(s.into()));
        }
        if t.starts_with('"') {
            return serde_json::from_str::<String>(t)
                .map(Value::String)
                .map_err(|_| Why::Other("a string not understood".into()));
        }
        match t {
            "true" => return Ok(Value::Bool(true)),
            "false" => return Ok(Value::Bool(false)),
            "nil" => return Ok(Value::Null),
            "." => return Ok(dot.clone()),
            "$" => return Ok(Value::Null),
            _ => {}
        }
        if let Ok(n) = t.parse::<i64>() {
            return Ok(n.into());
        }
        let (root, path) = match t.strip_prefix("$.").or_else(|| t.strip_prefix('.')) {
            Some(p) if t.starts_with('$') || std::ptr::eq(dot, self.ctx.values) => (true, p),
            Some(p) => (false, p),
            None => return Err(Why::Other(format!("`{t}`"))),
        };
        let mut keys = path.split('.');
        let mut at = if root {
            match keys.next() {
                Some("Values") => self.ctx.values,
                Some("Release") => {
                    return match (keys.next(), self.ctx.namespace, self.ctx.release) {
                        (Some("Namespace"), Some(ns), _) => Ok(ns.into()),
                        (Some("Name"), _, Some(n)) => Ok(n.into()),
                        (Some("Namespace"), None, _) => Err(Why::Release("Namespace")),
                        (Some("Name"), _, None) => Err(Why::Release("Name")),
                        _ => Err(Why::Other(format!("`{t}`"))),
                    };
                }
                // The other objects Helm gives a template; a field it does not have is nil.
                Some("Chart" | "Capabilities" | "Template" | "Files") => return Err(Why::Other(format!("`{t}`"))),
                _ => {
                    let field = t.trim_start_matches('$').to_string();
                    if !self.seen.iter().any(|(s, _)| *s == field) {
                        self.seen.push((field.clone(), String::new()));
                        self.report.not_needed(
                            None,
                            format!("value {}: template field `{field}`", self.at),
                            "Helm's templates have no such field: nil, as Helm renders it (the agent gets what Helm renders; `{{ \"{{\" }}` hands braces on)",
                        );
                    }
                    return Err(Why::Missing(field));
                }
            }
        } else {
            dot
        };
        for k in keys {
            at = match at.get(k) {
                Some(v) => v,
                None => return Err(Why::Missing(t.trim_start_matches('$').to_string())),
            };
        }
        Ok(at.clone())
    }

    fn func(&mut self, f: &str, vals: Vec<Result<Value, String>>, args: &[String], dot: &Value) -> Result<Value, Why> {
        let n = vals.len();
        // Every function but `default`, `empty`, the tests and the comparisons (nil equals only
        // nil) takes a missing value as an error.
        let lenient = ["default", "empty", "not", "and", "or", "eq", "ne"].contains(&f);
        let vals: Vec<Value> = if lenient {
            vals.into_iter().map(|v| v.unwrap_or(Value::Null)).collect()
        } else {
            vals.into_iter().collect::<Result<_, _>>().map_err(Why::Missing)?
        };
        let str_of = |v: &Value| printed(v).unwrap_or_default();
        let int = |v: &Value| {
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .unwrap_or(0)
                .max(0) as usize
        };
        Ok(match (f, vals.as_slice()) {
            ("quote", [v]) => Value::String(serde_json::to_string(&str_of(v)).unwrap_or_default()),
            ("squote", [v]) => Value::String(format!("'{}'", str_of(v))),
            ("default", [d, v]) => {
                if truthy(v) {
                    v.clone()
                } else {
                    d.clone()
                }
            }
            ("empty", [v]) => Value::Bool(!truthy(v)),
            ("not", [v]) => Value::Bool(!truthy(v)),
            ("and", vs) if n > 0 => vs.iter().find(|v| !truthy(v)).unwrap_or(&vs[n - 1]).clone(),
            ("or", vs) if n > 0 => vs.iter().find(|v| truthy(v)).unwrap_or(&vs[n - 1]).clone(),
            ("eq", [a, b]) => Value::Bool(a == b),
            ("ne", [a, b]) => Value::Bool(a != b),
            ("required", [_, v]) => v.clone(),
            ("toString", [v]) => Value::String(str_of(v)),
            ("trim", [v]) => Value::String(str_of(v).trim().into()),
            ("lower", [v]) => Value::String(str_of(v).to_lowercase()),
            ("upper", [v]) => Value::String(str_of(v).to_uppercase()),
            ("toJson", [v]) => Value::String(serde_json::to_string(v).unwrap_or_default()),
            ("toYaml", [v]) => Value::String(to_yaml(v)),
            ("indent", [k, v]) => Value::String(indent(&str_of(v), int(k))),
            ("nindent", [k, v]) => Value::String(format!("\n{}", indent(&str_of(v), int(k)))),
            ("tpl", [t, _]) if args.len() == 2 && [".", "$"].contains(&args[1].as_str()) => {
                let text = str_of(t);
                if self.depth > 8 {
                    return Err(Why::Other("`tpl` nested too deep".into()));
                }
                let toks = lex(&text).map_err(Why::Other)?;
                let nodes = parse(&toks, &mut 0, false).map_err(Why::Other)?;
                let mut out = String::new();
                self.depth += 1;
                self.nodes(&nodes, dot, &mut out);
                self.depth -= 1;
                Value::String(out)
            }
            _ => return Err(Why::Other(format!("the function `{f}`"))),
        })
    }
}

fn short(e: &str) -> String {
    let e = if e.starts_with("{{") {
        e.to_string()
    } else {
        format!("{{{{ {e} }}}}")
    };
    match e.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &e[..i]),
        None => e,
    }
}

/// A value as `{{ }}` prints it; None for maps and lists.
fn printed(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => Some(String::new()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

/// Helm's `toYaml`: YAML without the trailing newline.
pub fn to_yaml(v: &Value) -> String {
    serde_yaml_ng::to_string(v)
        .unwrap_or_default()
        .trim_end_matches('\n')
        .to_string()
}

fn indent(s: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    s.split('\n')
        .map(|l| format!("{pad}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
#[path = "tpl_tests.rs"]
mod tests;
