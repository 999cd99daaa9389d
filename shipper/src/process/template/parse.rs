//! Go `text/template` syntax into the stage's tree. Errors carry the line and column.

use super::funcs::Func;
use super::literal::{char_value, number, quoted_end, unquote};
use super::{Branch, Call, Cmd, Name, Node, Operand, Pipe};
use regex::Regex;

/// The tree of `src` and the number of variable slots it declares.
pub(super) fn parse(src: &str) -> Result<(Vec<Node>, usize), String> {
    let mut p = Parser {
        src,
        pos: 0,
        trim_next: false,
        peeked: None,
        vars: Vec::new(),
        slots: 0,
        depth: 0,
    };
    let (nodes, end) = p.list()?;
    match end {
        Stop::Eof => Ok((nodes, p.slots)),
        Stop::End(at) => Err(p.err(at, "unexpected {{end}}")),
        Stop::Else(at, _) => Err(p.err(at, "unexpected {{else}}")),
    }
}

#[derive(Debug)]
enum Tok<'s> {
    Ident(&'s str),
    /// `.a.b` (with its leading dot).
    Field(&'s str),
    Dot,
    /// `$x` (`$` alone is the root) and the field chain right after it.
    Var(&'s str, &'s str),
    Str(String),
    Num(&'s str),
    Char(i64),
    Pipe,
    Open,
    /// `)` and the field chain right after it.
    Close(&'s str),
    Declare,
    Assign,
    /// `}}` (its `-}}` form trims the text after it).
    End,
}

enum Stop {
    Eof,
    End(usize),
    /// `{{else}}`, or `{{else if ...}}` / `{{else with ...}}` (true: with) with its pipeline.
    Else(usize, Option<(bool, Pipe)>),
}

/// A term of a command: an operand, or a function name.
enum Term {
    Op(Operand),
    Func(Func, usize),
}

struct Parser<'s> {
    src: &'s str,
    pos: usize,
    /// The last action ended with `-}}`: the next text loses its leading whitespace.
    trim_next: bool,
    peeked: Option<(usize, Tok<'s>)>,
    /// Variables in scope (innermost last) and their slots.
    vars: Vec<(&'s str, usize)>,
    slots: usize,
    depth: usize,
}

const MAX_DEPTH: usize = 64;

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_ident(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

fn names(chain: &str) -> Vec<Name> {
    chain
        .split('.')
        .skip(1)
        .map(|n| match n {
            "Value" => Name::Value,
            "Entry" => Name::Entry,
            k => Name::Key(k.into()),
        })
        .collect()
}

impl<'s> Parser<'s> {
    fn line_col(&self, at: usize) -> (u32, u32) {
        let before = &self.src[..at.min(self.src.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line as u32, col as u32)
    }

    fn err(&self, at: usize, msg: &str) -> String {
        let (l, c) = self.line_col(at);
        format!("{l}:{c}: {msg}")
    }

    /// Nodes up to the end of the text or the `{{end}}` / `{{else}}` that closes them.
    fn list(&mut self) -> Result<(Vec<Node>, Stop), String> {
        let mut nodes = Vec::new();
        loop {
            let rest = &self.src[self.pos..];
            let open = rest.find("{{");
            let mut text = &rest[..open.unwrap_or(rest.len())];
            if std::mem::take(&mut self.trim_next) {
                text = text.trim_start_matches([' ', '\t', '\r', '\n']);
            }
            let Some(open) = open else {
                if !text.is_empty() {
                    nodes.push(Node::Text(text.into()));
                }
                self.pos = self.src.len();
                return Ok((nodes, Stop::Eof));
            };
            let start = self.pos + open;
            let b = self.src.as_bytes();
            let mut p = start + 2;
            if b.get(p) == Some(&b'-') && b.get(p + 1).is_some_and(|&c| is_space(c)) {
                text = text.trim_end_matches([' ', '\t', '\r', '\n']);
                p += 2;
            }
            if !text.is_empty() {
                nodes.push(Node::Text(text.into()));
            }
            self.pos = p;
            if self.src[p..].starts_with("/*") {
                self.comment(start)?;
                continue;
            }
            let (at, tok) = self.next()?;
            match tok {
                Tok::Ident("end") => {
                    self.expect_end()?;
                    return Ok((nodes, Stop::End(start)));
                }
                Tok::Ident("else") => {
                    let (at, tok) = self.next()?;
                    let chained = match tok {
                        Tok::End => None,
                        Tok::Ident(kw @ ("if" | "with")) => {
                            let pipe = self.pipeline(true, None)?;
                            if pipe.cmds.is_empty() {
                                return Err(self.err(at, &format!("missing value for {kw}")));
                            }
                            Some((kw == "with", pipe))
                        }
                        _ => return Err(self.err(at, "expected }}, `if` or `with` after else")),
                    };
                    return Ok((nodes, Stop::Else(start, chained)));
                }
                Tok::Ident(kw @ ("if" | "with")) => nodes.push(self.cond(at, kw == "with")?),
                Tok::Ident(kw @ ("range" | "define" | "template" | "block" | "break" | "continue")) => {
                    return Err(self.err(at, &format!("{{{{{kw}}}}} is not supported")));
                }
                tok => {
                    let pipe = self.pipeline(true, Some((at, tok)))?;
                    if pipe.cmds.is_empty() {
                        return Err(self.err(at, "missing value for command"));
                    }
                    nodes.push(Node::Action(pipe));
                }
            }
        }
    }

    /// `{{/* ... */}}`, with its trim markers.
    fn comment(&mut self, start: usize) -> Result<(), String> {
        let body = self.pos + 2;
        let Some(close) = self.src[body..].find("*/") else {
            return Err(self.err(start, "unclosed comment"));
        };
        let mut q = body + close + 2;
        let b = self.src.as_bytes();
        if b.get(q).is_some_and(|&c| is_space(c)) && self.src[q + 1..].starts_with("-}}") {
            self.trim_next = true;
            q += 4;
        } else if self.src[q..].starts_with("}}") {
            q += 2;
        } else {
            return Err(self.err(start, "comment ends before closing delimiter"));
        }
        self.pos = q;
        Ok(())
    }

    fn expect_end(&mut self) -> Result<(), String> {
        match self.next()? {
            (_, Tok::End) => Ok(()),
            (at, t) => Err(self.err(at, &format!("unexpected {t:?} before }}}}"))),
        }
    }

    /// `if` / `with` after its keyword, to its `{{end}}`.
    fn cond(&mut self, at: usize, with: bool) -> Result<Node, String> {
        let kw = if with { "with" } else { "if" };
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(at, "nested too deeply"));
        }
        let mark = self.vars.len();
        let pipe = self.pipeline(true, None)?;
        if pipe.cmds.is_empty() {
            return Err(self.err(at, &format!("missing value for {kw}")));
        }
        let mut branches = vec![Branch {
            with,
            pipe,
            body: Vec::new(),
        }];
        let otherwise = loop {
            let (body, end) = self.list()?;
            if let Some(b) = branches.last_mut() {
                b.body = body;
            }
            match end {
                Stop::Eof => {
                    return Err(self.err(
                        at,
                        &format!("unexpected end of template: {{{{{kw}}}}} without {{{{end}}}}"),
                    ))
                }
                Stop::End(_) => break Vec::new(),
                Stop::Else(_, Some((with, pipe))) => branches.push(Branch {
                    with,
                    pipe,
                    body: Vec::new(),
                }),
                Stop::Else(else_at, None) => match self.list()? {
                    (body, Stop::End(_)) => break body,
                    (_, Stop::Eof) => {
                        return Err(self.err(
                            at,
                            &format!("unexpected end of template: {{{{{kw}}}}} without {{{{end}}}}"),
                        ))
                    }
                    (_, Stop::Else(..)) => return Err(self.err(else_at, "a second {{else}} after {{else}}")),
                },
            }
        };
        self.vars.truncate(mark);
        self.depth -= 1;
        Ok(Node::Cond { branches, otherwise })
    }

    /// A pipeline up to `}}` (`top`) or up to `)`.
    fn pipeline(&mut self, top: bool, first: Option<(usize, Tok<'s>)>) -> Result<Pipe, String> {
        let (pipe, _) = self.pipeline_to(top, first)?;
        Ok(pipe)
    }

    /// A pipeline, and the field chain after its `)` when it is parenthesised.
    fn pipeline_to(&mut self, top: bool, first: Option<(usize, Tok<'s>)>) -> Result<(Pipe, &'s str), String> {
        let mut first = match first {
            Some(t) => Some(t),
            None => Some(self.next()?),
        };
        let mut var = None;
        if let Some((at, Tok::Var(name, ""))) = &first {
            let (at, name) = (*at, *name);
            match self.next()? {
                (_, Tok::Declare) => {
                    if name == "$" {
                        return Err(self.err(at, "cannot declare $"));
                    }
                    var = Some(self.slots);
                    self.vars.push((name, self.slots));
                    self.slots += 1;
                    first = None;
                }
                (_, Tok::Assign) => {
                    var = Some(self.lookup(at, name)?);
                    first = None;
                }
                other => self.peeked = Some(other),
            }
        }
        let mut cmds = Vec::new();
        loop {
            let (cmd, last) = self.command(top, !cmds.is_empty(), first.take())?;
            if let Some(c) = cmd {
                cmds.push(c);
            }
            if let Some(chain) = last {
                return Ok((Pipe { var, cmds }, chain));
            }
        }
    }

    /// One command; `Some(chain)` after it when it ended the pipeline.
    fn command(
        &mut self,
        top: bool,
        piped: bool,
        mut first: Option<(usize, Tok<'s>)>,
    ) -> Result<(Option<Cmd>, Option<&'s str>), String> {
        let mut terms: Vec<Term> = Vec::new();
        let last = loop {
            let (at, tok) = match first.take() {
                Some(t) => t,
                None => self.next()?,
            };
            match tok {
                Tok::Pipe if terms.is_empty() => return Err(self.err(at, "missing command before |")),
                Tok::Pipe => break None,
                Tok::End if top => break Some(""),
                Tok::Close(chain) if !top => break Some(chain),
                Tok::End => return Err(self.err(at, "unclosed left paren")),
                Tok::Close(_) => return Err(self.err(at, "unexpected right paren")),
                tok => terms.push(self.term(at, tok)?),
            }
        };
        let mut terms = terms.into_iter();
        let cmd = match terms.next() {
            None => None,
            Some(Term::Func(func, at)) => {
                let args = terms.map(|t| self.arg(t)).collect::<Result<Vec<_>, _>>()?;
                Some(Cmd::Call(self.call(func, at, args, piped)?))
            }
            Some(Term::Op(op)) => {
                if terms.len() > 0 || piped {
                    return Err(self.err(self.pos, "can't give argument to non-function"));
                }
                if matches!(op, Operand::Nil) {
                    return Err(self.err(self.pos, "nil is not a command"));
                }
                Some(Cmd::Operand(op))
            }
        };
        Ok((cmd, last))
    }

    fn arg(&self, t: Term) -> Result<Operand, String> {
        Ok(match t {
            Term::Op(o) => o,
            Term::Func(f, at) => Operand::Call(Box::new(self.call(f, at, Vec::new(), false)?)),
        })
    }

    fn call(&self, func: Func, at: usize, args: Vec<Operand>, piped: bool) -> Result<Call, String> {
        let got = args.len() + usize::from(piped);
        let (min, max) = func.arity();
        if got < min || max.is_some_and(|m| got > m) {
            let want = match max {
                Some(m) if m == min => format!("{m}"),
                Some(m) => format!("{min} to {m}"),
                None => format!("at least {min}"),
            };
            return Err(self.err(
                at,
                &format!("wrong number of args for {}: want {want} got {got}", func.name()),
            ));
        }
        let re = match (func.takes_regex(), args.first()) {
            (true, Some(Operand::Str(pattern))) => {
                let re = Regex::new(pattern).map_err(|e| {
                    let why = e.to_string();
                    let why = why
                        .lines()
                        .last()
                        .unwrap_or_default()
                        .trim_start_matches("error: ")
                        .to_string();
                    self.err(
                        at,
                        &format!("{}: bad regular expression {pattern:?}: {why}", func.name()),
                    )
                })?;
                Some(re)
            }
            _ => None,
        };
        Ok(Call {
            func,
            args,
            re,
            at: self.line_col(at),
        })
    }

    fn lookup(&self, at: usize, name: &str) -> Result<usize, String> {
        match self.vars.iter().rev().find(|(n, _)| *n == name) {
            Some((_, slot)) => Ok(*slot),
            None => Err(self.err(at, &format!("undefined variable \"{name}\""))),
        }
    }

    fn term(&mut self, at: usize, tok: Tok<'s>) -> Result<Term, String> {
        Ok(Term::Op(match tok {
            Tok::Ident("true") => Operand::Bool(true),
            Tok::Ident("false") => Operand::Bool(false),
            Tok::Ident("nil") => Operand::Nil,
            Tok::Ident(name) => match Func::lookup(name) {
                Some(f) => return Ok(Term::Func(f, at)),
                None => return Err(self.err(at, &format!("unknown function `{name}`"))),
            },
            Tok::Field(chain) => Operand::Field(names(chain)),
            Tok::Dot => Operand::Dot,
            Tok::Var(name, chain) => {
                let base = if name == "$" {
                    Operand::Root
                } else {
                    Operand::Var(self.lookup(at, name)?)
                };
                if chain.is_empty() {
                    base
                } else {
                    Operand::Chain(Box::new(base), names(chain))
                }
            }
            Tok::Str(s) => Operand::Str(s.into()),
            Tok::Char(c) => Operand::Int(c),
            Tok::Num(text) => number(text).ok_or_else(|| self.err(at, &format!("bad number syntax: {text:?}")))?,
            Tok::Open => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(self.err(at, "nested too deeply"));
                }
                let (pipe, chain) = self.pipeline_to(false, None)?;
                self.depth -= 1;
                if pipe.cmds.is_empty() {
                    return Err(self.err(at, "missing value in parentheses"));
                }
                let sub = Operand::Sub(Box::new(pipe));
                if chain.is_empty() {
                    sub
                } else {
                    Operand::Chain(Box::new(sub), names(chain))
                }
            }
            Tok::Declare | Tok::Assign => return Err(self.err(at, "unexpected assignment in command")),
            Tok::Pipe | Tok::End | Tok::Close(_) => return Err(self.err(at, "unexpected end of command")),
        }))
    }

    /// `.a.b` right at the cursor, if any.
    fn chain(&mut self) -> &'s str {
        let start = self.pos;
        let src = self.src;
        while src[self.pos..].starts_with('.') && src[self.pos + 1..].chars().next().is_some_and(is_ident) {
            self.pos += 1;
            self.pos += src[self.pos..]
                .find(|c: char| !is_ident(c))
                .unwrap_or(src.len() - self.pos);
        }
        &src[start..self.pos]
    }

    fn next(&mut self) -> Result<(usize, Tok<'s>), String> {
        if let Some(t) = self.peeked.take() {
            return Ok(t);
        }
        let src = self.src;
        let b = src.as_bytes();
        let spaced = self.pos < b.len() && is_space(b[self.pos]);
        while self.pos < b.len() && is_space(b[self.pos]) {
            self.pos += 1;
        }
        let at = self.pos;
        let rest = &src[at..];
        if spaced && rest.starts_with("-}}") {
            self.trim_next = true;
            self.pos += 3;
            return Ok((at, Tok::End));
        }
        if rest.starts_with("}}") {
            self.pos += 2;
            return Ok((at, Tok::End));
        }
        let Some(c) = rest.chars().next() else {
            return Err(self.err(at, "unclosed action"));
        };
        let next = rest[c.len_utf8()..].chars().next();
        self.pos += c.len_utf8();
        let tok = match c {
            '|' => Tok::Pipe,
            '(' => Tok::Open,
            ')' => Tok::Close(self.chain()),
            ':' if next == Some('=') => {
                self.pos += 1;
                Tok::Declare
            }
            '=' => Tok::Assign,
            '"' | '\'' => {
                let end = quoted_end(rest, c).ok_or_else(|| self.err(at, "unterminated quoted string"))?;
                self.pos = at + end;
                let v = unquote(&rest[1..end - 1])
                    .ok_or_else(|| self.err(at, "bad escape or invalid UTF-8 in quoted string"))?;
                if c == '"' {
                    Tok::Str(String::from_utf8(v).map_err(|_| self.err(at, "invalid UTF-8 in string"))?)
                } else {
                    Tok::Char(char_value(&rest[1..end - 1], &v).ok_or_else(|| self.err(at, "bad character constant"))?)
                }
            }
            '`' => {
                let end = rest[1..]
                    .find('`')
                    .ok_or_else(|| self.err(at, "unterminated raw quoted string"))?;
                self.pos = at + end + 2;
                Tok::Str(rest[1..end + 1].to_string())
            }
            '.' if next.is_some_and(|n| n.is_ascii_digit()) => self.number_tok(at),
            '.' if next.is_some_and(is_ident) => {
                self.pos = at;
                Tok::Field(self.chain())
            }
            '.' => Tok::Dot,
            '$' => {
                self.pos += rest[1..].find(|c: char| !is_ident(c)).unwrap_or(rest.len() - 1);
                let name = &src[at..self.pos];
                Tok::Var(name, self.chain())
            }
            '+' | '-' | '0'..='9' => self.number_tok(at),
            c if is_ident(c) => {
                self.pos = at + rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
                Tok::Ident(&src[at..self.pos])
            }
            c => return Err(self.err(at, &format!("unexpected {c:?} in command"))),
        };
        Ok((at, tok))
    }

    fn number_tok(&mut self, at: usize) -> Tok<'s> {
        let b = self.src.as_bytes();
        let mut i = at + 1;
        while i < b.len() {
            let c = b[i];
            let exp_sign = (c == b'+' || c == b'-') && matches!(b[i - 1], b'e' | b'E' | b'p' | b'P');
            if c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || exp_sign {
                i += 1;
            } else {
                break;
            }
        }
        self.pos = i;
        Tok::Num(&self.src[at..i])
    }
}
