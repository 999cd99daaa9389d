//! The syntax of Helm templates as [`super::tpl`] renders them: text and actions (trims applied,
//! comments dropped), `if`/`with`/`else`/`end` blocks, pipelines split into commands and terms.

pub enum Tok {
    Text(String),
    Action(String),
}

/// Text and actions, `{{-` / `-}}` trims applied, comments dropped.
pub fn lex(text: &str) -> Result<Vec<Tok>, String> {
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

pub enum Node {
    Text(String),
    Out(String),
    /// `if`/`with` (the bool says with) branches: condition (None: else) and body.
    Cond(bool, Vec<(Option<String>, Vec<Node>)>),
    /// `range`, `define`, `block`: rendered as a placeholder.
    Block(String),
}

pub fn keyword(a: &str) -> (&str, &str) {
    let (k, rest) = a.split_once(char::is_whitespace).unwrap_or((a, ""));
    (k, rest.trim())
}

/// Nodes up to `end` (or `else`, left for the caller) or the end of the text.
pub fn parse(toks: &[Tok], pos: &mut usize, inner: bool) -> Result<Vec<Node>, String> {
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

/// `s` split on `sep` outside strings and parentheses.
pub fn split_top(s: &str, sep: char) -> Vec<&str> {
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
pub fn terms(s: &str) -> Option<Vec<String>> {
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
