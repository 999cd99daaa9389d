//! Helm's `tpl` on config text kept in chart values (Alloy's `alloy.configMap.content`, Promtail's
//! `config.file` and snippets): `{{ .Values.a.b }}` with `quote`, `default`, `toYaml`, `nindent`,
//! `tpl`…, `if`/`with`/`else`/`end` are rendered from the same values; `.Release.Namespace` and
//! `.Release.Name` from the Application, or a `${RELEASE_NAMESPACE}` / `${RELEASE_NAME}`
//! placeholder; anything else (`include`, `range`, a value the file does not hold) becomes a
//! `${VAR}` placeholder with a report line saying what it stood for.

use super::report::Report;
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

enum Tok {
    Text(String),
    Action(String),
}

/// Text and actions, `{{-` / `-}}` trims applied, comments dropped.
fn lex(text: &str) -> Result<Vec<Tok>, String> {
    let mut toks = Vec::new();
    let mut rest = text;
    let mut trim_next = false;
    while let Some(at) = rest.find("{{") {
        let mut before = &rest[..at];
        if trim_next {
            before = before.trim_start();
        }
        let body_start = &rest[at + 2..];
        let end = action_end(body_start).ok_or("`{{` without `}}`")?;
        let mut body = &body_start[..end];
        if let Some(b) = body.strip_prefix('-').filter(|b| b.starts_with(char::is_whitespace)) {
            before = before.trim_end();
            body = b;
        }
        trim_next = false;
        if let Some(b) = body.strip_suffix('-').filter(|b| b.ends_with(char::is_whitespace)) {
            trim_next = true;
            body = b;
        }
        toks.push(Tok::Text(before.to_string()));
        let body = body.trim();
        if !(body.starts_with("/*") && body.ends_with("*/")) {
            toks.push(Tok::Action(body.to_string()));
        }
        rest = &body_start[end + 2..];
    }
    toks.push(Tok::Text(if trim_next { rest.trim_start() } else { rest }.to_string()));
    Ok(toks)
}

/// Where the `}}` closing an action is, past string literals.
fn action_end(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'`' => i += s[i + 1..].find('`')? + 1,
            b'}' if b.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

enum Node {
    Text(String),
    Out(String),
    /// `if`/`with` (the bool says with) branches: condition (None: else) and body.
    Cond(bool, Vec<(Option<String>, Vec<Node>)>),
    /// `range`, `define`, `block`: rendered as a placeholder.
    Block(String),
}

fn keyword(a: &str) -> (&str, &str) {
    let (k, rest) = a.split_once(char::is_whitespace).unwrap_or((a, ""));
    (k, rest.trim())
}

/// Nodes up to `end` (or `else`, left for the caller) or the end of the text.
fn parse(toks: &[Tok], pos: &mut usize, inner: bool) -> Result<Vec<Node>, String> {
    let mut nodes = Vec::new();
    while let Some(t) = toks.get(*pos) {
        let a = match t {
            Tok::Text(s) => {
                nodes.push(Node::Text(s.clone()));
                *pos += 1;
                continue;
            }
            Tok::Action(a) => a,
        };
        let (k, rest) = keyword(a);
        match k {
            "end" | "else" if inner => return Ok(nodes),
            "end" | "else" => return Err(format!("`{{{{ {a} }}}}` without its `if`, `with` or `range`")),
            "if" | "with" => {
                *pos += 1;
                let mut branches = vec![(Some(rest.to_string()), parse(toks, pos, true)?)];
                loop {
                    let Some(Tok::Action(a)) = toks.get(*pos) else {
                        return Err(format!("`{{{{ {k} {rest} }}}}` without `end`"));
                    };
                    *pos += 1;
                    let (k2, rest2) = keyword(a);
                    if k2 == "end" {
                        break;
                    }
                    let cond = rest2
                        .strip_prefix("if ")
                        .or_else(|| rest2.strip_prefix("with "))
                        .map(|c| c.trim().to_string());
                    branches.push((cond, parse(toks, pos, true)?));
                }
                nodes.push(Node::Cond(k == "with", branches));
            }
            "range" | "define" | "block" => {
                *pos += 1;
                let mut depth = 1;
                let mut text = format!("{{{{ {a} }}}}");
                while depth > 0 {
                    match toks.get(*pos) {
                        None => return Err(format!("`{{{{ {k} }}}}` without `end`")),
                        Some(Tok::Text(s)) => text.push_str(s),
                        Some(Tok::Action(a)) => {
                            let k = keyword(a).0;
                            if ["if", "with", "range", "define", "block"].contains(&k) {
                                depth += 1;
                            } else if k == "end" {
                                depth -= 1;
                            }
                            text.push_str(&format!("{{{{ {a} }}}}"));
                        }
                    }
                    *pos += 1;
                }
                nodes.push(Node::Block(text));
            }
            _ => {
                nodes.push(Node::Out(a.clone()));
                *pos += 1;
            }
        }
    }
    if inner {
        return Err("a block without `end`".into());
    }
    Ok(nodes)
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
            let how = match v.contains('\n') || v.chars().count() > 60 {
                true => "rendered from the values file, as the chart renders it".to_string(),
                false => format!("{v:?}, from the values file, as the chart renders it"),
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
            Why::Missing(p) => {
                let name: String = p
                    .trim_start_matches('.')
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() {
                            c.to_ascii_uppercase()
                        } else {
                            '_'
                        }
                    })
                    .collect();
                name
            }
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
                Why::Release(_) => self.report.unsupported(
                    None,
                    what,
                    "kept as ${RELEASE_NAME}: set RELEASE_NAME to the name the chart was installed with",
                ),
                Why::Missing(p) => self.report.unsupported(
                    None,
                    what,
                    format!("{p} is not in the values file: kept as ${{{var}}}; set {var} to its value"),
                ),
                Why::Other(w) => self.report.unsupported(
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
                _ => return Err(Why::Other(format!("`{t}`"))),
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
        // Every function but `default`, `empty` and the tests takes a missing value as an error.
        let lenient = ["default", "empty", "not", "and", "or"].contains(&f);
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

/// `s` split on `sep` outside strings and parentheses.
fn split_top(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut quote, mut start) = (0i32, None::<char>, 0);
    let mut prev = ' ';
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q && !(q == '"' && prev == '\\') => quote = None,
            (Some(_), _) => {}
            (None, '"' | '`') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => depth -= 1,
            (None, c) if c == sep && depth == 0 => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
        prev = c;
    }
    parts.push(&s[start..]);
    parts
}

/// The terms of a command: words, strings and parenthesized pipelines.
fn terms(s: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut chars = s.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let end = match c {
            '"' | '`' => {
                chars.next();
                let mut prev = c;
                loop {
                    let (j, d) = chars.next()?;
                    if d == c && !(c == '"' && prev == '\\') {
                        break j + 1;
                    }
                    prev = if prev == '\\' && d == '\\' { ' ' } else { d };
                }
            }
            '(' => {
                let mut depth = 0;
                loop {
                    let (j, d) = chars.next()?;
                    match d {
                        '(' => depth += 1,
                        ')' if depth == 1 => break j + 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                }
            }
            _ => loop {
                match chars.peek() {
                    Some(&(_, d)) if !d.is_whitespace() && d != '(' => {
                        chars.next();
                    }
                    Some(&(j, _)) => break j,
                    None => break s.len(),
                }
            },
        };
        out.push(s[i..end].to_string());
    }
    Some(out)
}
