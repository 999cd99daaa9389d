//! The `template` stage (Promtail's `template`, Alloy's `stage.template`): a Go `text/template`
//! rendered with the extracted values and stored as the extracted value `source`.
//!
//! ```yaml
//! - template: {source: level, template: '{{ .Value | ToLower }}'}
//! - template: {source: msg, template: '{{ .level }}: {{ regexReplaceAll "\\d+" .Entry "N" }}'}
//! ```
//!
//! The data is the extracted map: `.name` reads an extracted value, `.Value` the value of `source`
//! (absent until set), `.Entry` the log line. An empty result removes `source` from the map, as in
//! Promtail.
//!
//! The template is parsed once into a tree; running it borrows the line and the extracted values
//! (only function results are allocated), and regular expressions written as literals are compiled
//! with the template.
//!
//! Supported: text, comments and trim markers (`{{-`, `-}}`), pipelines, parenthesised
//! sub-expressions, string (`"..."`, `` `raw` ``), character, number, bool and `nil` literals,
//! fields (`.a`, `$.a`), variables (`$x := ...`, `$x = ...`), `if`/`else if`/`else`, `with`/`else
//! with`, and the functions listed in `template/funcs.rs`: Go's builtins, Promtail's and the
//! common sprig string, hash, encoding and arithmetic functions.
//!
//! Differences from Promtail: `range`, `define`, `template` and `block` are refused; an unknown
//! function, a wrong number of arguments or an invalid literal regular expression is an error when
//! the stage is built, not when a line reaches it; `trunc`, `substr` and `index` cut strings at a
//! character boundary, never inside a UTF-8 sequence.

mod format;
mod funcs;
mod literal;
mod parse;
mod value;

use super::{Extracted, Line};
pub(crate) use funcs::hex;
use funcs::{Func, Val};
use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::Arc;

/// Settings of the `template` stage (Promtail's shape).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TemplateConfig {
    /// The extracted value the template sets (created if absent; removed when the template renders
    /// nothing). Inside the template it is `.Value`.
    pub source: String,
    /// A Go template: `.name` is an extracted value, `.Value` the value of `source`, `.Entry` the
    /// log line. Functions: Go's (`eq`, `printf`, `len`, ...), Promtail's (`ToLower`, `ToUpper`,
    /// `Replace`, `Trim`, `TrimLeft`, `TrimRight`, `TrimPrefix`, `TrimSuffix`, `TrimSpace`, `Hash`,
    /// `Sha2Hash`, `regexReplaceAll`, `regexReplaceAllLiteral`) and common sprig ones (`default`,
    /// `upper`, `lower`, `replace`, `trunc`, `quote`, `b64enc`, `toJson`, `add`, ...).
    pub template: String,
}

/// A compiled `template` stage.
#[derive(Debug)]
pub struct TemplateStage {
    source: Arc<str>,
    nodes: Vec<Node>,
    /// Variable slots the template declares (each declaration has its own).
    vars: usize,
}

/// A node of the template tree.
#[derive(Debug)]
enum Node {
    Text(Box<str>),
    /// `{{ pipeline }}`: prints its value unless it declares or assigns a variable.
    Action(Pipe),
    /// `if` / `with` with their `else if` / `else with` branches and `else`.
    Cond {
        branches: Vec<Branch>,
        otherwise: Vec<Node>,
    },
}

#[derive(Debug)]
struct Branch {
    /// `with`: the body runs with dot set to the value.
    with: bool,
    pipe: Pipe,
    body: Vec<Node>,
}

#[derive(Debug)]
struct Pipe {
    /// The variable slot set by `$x := ...` or `$x = ...`.
    var: Option<usize>,
    cmds: Vec<Cmd>,
}

/// One command of a pipeline: a function call (given the previous command's value as its last
/// argument) or, first in a pipeline, an operand.
#[derive(Debug)]
enum Cmd {
    Call(Call),
    Operand(Operand),
}

#[derive(Debug)]
struct Call {
    func: Func,
    args: Vec<Operand>,
    /// The pattern when the function takes one first and it was written as a literal.
    re: Option<Regex>,
    /// Line and column, for messages.
    at: (u32, u32),
}

#[derive(Debug)]
enum Operand {
    Dot,
    Root,
    Var(usize),
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Box<str>),
    /// `.a.b` on dot.
    Field(Vec<Name>),
    /// `$x.a`, `$.a`, `(pipe).a`.
    Chain(Box<Operand>, Vec<Name>),
    /// A function named as an argument: called with no arguments.
    Call(Box<Call>),
    Sub(Box<Pipe>),
}

/// A field name, `Value` and `Entry` told apart once.
#[derive(Debug)]
enum Name {
    Value,
    Entry,
    Key(Box<str>),
}

impl TemplateStage {
    pub fn new(c: &TemplateConfig) -> Result<TemplateStage, String> {
        if c.source.is_empty() {
            return Err("source: name the extracted value the template sets".into());
        }
        let (nodes, vars) = parse::parse(&c.template).map_err(|e| format!("template: {e}"))?;
        Ok(TemplateStage {
            source: Arc::from(c.source.as_str()),
            nodes,
            vars,
        })
    }

    /// Renders the template and stores the result as `source` (an empty result removes it).
    /// False when the template failed on this line; the extracted values are then unchanged.
    pub fn apply(&self, line: &mut Line) -> bool {
        thread_local!(static OUT: RefCell<String> = const { RefCell::new(String::new()) });
        let mut out = OUT.with(|b| std::mem::take(&mut *b.borrow_mut()));
        out.clear();
        let ok = self.render(line, &mut out).is_ok();
        if ok {
            if out.is_empty() {
                line.extracted.remove(&self.source);
            } else {
                line.extracted.set(&self.source, &out);
            }
        }
        if out.capacity() <= 64 * 1024 {
            OUT.with(|b| *b.borrow_mut() = out);
        }
        ok
    }

    /// A template that sets nothing itself (the `replace` stage renders its replacement with it).
    pub fn compile(template: &str) -> Result<TemplateStage, String> {
        let (nodes, vars) = parse::parse(template)?;
        Ok(TemplateStage {
            source: Arc::from(""),
            nodes,
            vars,
        })
    }

    /// The template's output for `line`, or why it failed (for tests and debugging).
    pub fn render<'a>(&'a self, line: &'a Line, out: &mut String) -> Result<(), String> {
        let ex = &line.extracted;
        self.render_value(line, ex.get(&self.source).or_else(|| ex.get("Value")), out)
    }

    /// The output for `line` with `.Value` given.
    pub fn render_value<'a>(&'a self, line: &'a Line, value: Option<&'a str>, out: &mut String) -> Result<(), String> {
        let data = Data {
            ex: &line.extracted,
            entry: line.text(),
            value,
        };
        let mut exec = Exec {
            data,
            vars: vec![Val::Nil; self.vars],
            stack: Vec::new(),
        };
        exec.list(&self.nodes, &Val::Map, out)
    }
}

/// What the template reads.
#[derive(Clone, Copy)]
struct Data<'a> {
    ex: &'a Extracted,
    entry: &'a str,
    value: Option<&'a str>,
}

impl<'a> Data<'a> {
    fn get(&self, name: &Name) -> Val<'a> {
        let v = match name {
            Name::Value => self.value,
            Name::Entry => Some(self.entry),
            Name::Key(k) => self.ex.get(k),
        };
        v.map_or(Val::Nil, |s| Val::Str(Cow::Borrowed(s)))
    }

    /// `index . "name"`.
    fn key(&self, k: &str) -> Val<'a> {
        let v = match k {
            "Value" => self.value,
            "Entry" => Some(self.entry),
            k => self.ex.get(k),
        };
        v.map_or(Val::Nil, |s| Val::Str(Cow::Borrowed(s)))
    }

    /// The keys and values of the data map, sorted by key (as Go prints and encodes maps).
    fn entries(&self) -> Vec<(&'a str, &'a str)> {
        let mut kv: Vec<(&str, &str)> = self.ex.iter().filter(|(k, _)| *k != "Entry" && *k != "Value").collect();
        kv.push(("Entry", self.entry));
        if let Some(v) = self.value {
            kv.push(("Value", v));
        }
        kv.sort_unstable_by(|a, b| a.0.cmp(b.0));
        kv
    }
}

struct Exec<'a> {
    data: Data<'a>,
    vars: Vec<Val<'a>>,
    /// Arguments of the calls under way.
    stack: Vec<Val<'a>>,
}

/// Output larger than this fails the line rather than growing without bound.
const MAX_OUTPUT: usize = 1 << 20;

impl<'a> Exec<'a> {
    fn list(&mut self, nodes: &'a [Node], dot: &Val<'a>, out: &mut String) -> Result<(), String> {
        for n in nodes {
            match n {
                Node::Text(t) => out.push_str(t),
                Node::Action(p) => {
                    let v = self.pipe(p, dot)?;
                    if p.var.is_none() {
                        format::print_action(&v, &self.data, out);
                    }
                }
                Node::Cond { branches, otherwise } => {
                    let mut taken = false;
                    for b in branches {
                        let v = self.pipe(&b.pipe, dot)?;
                        if v.truth() {
                            if b.with {
                                self.list(&b.body, &v, out)?;
                            } else {
                                self.list(&b.body, dot, out)?;
                            }
                            taken = true;
                            break;
                        }
                    }
                    if !taken {
                        self.list(otherwise, dot, out)?;
                    }
                }
            }
            if out.len() > MAX_OUTPUT {
                return Err("output over 1 MiB".into());
            }
        }
        Ok(())
    }

    fn pipe(&mut self, p: &'a Pipe, dot: &Val<'a>) -> Result<Val<'a>, String> {
        let mut v: Option<Val<'a>> = None;
        for c in &p.cmds {
            v = Some(match c {
                Cmd::Operand(o) => self.operand(o, dot)?,
                Cmd::Call(call) => self.call(call, dot, v.take())?,
            });
        }
        let v = v.unwrap_or(Val::Nil);
        if let Some(slot) = p.var {
            self.vars[slot] = v.clone();
        }
        Ok(v)
    }

    fn operand(&mut self, o: &'a Operand, dot: &Val<'a>) -> Result<Val<'a>, String> {
        Ok(match o {
            Operand::Dot => dot.clone(),
            Operand::Root => Val::Map,
            Operand::Var(i) => self.vars[*i].clone(),
            Operand::Nil => Val::Nil,
            Operand::Bool(b) => Val::Bool(*b),
            Operand::Int(i) => Val::Int(*i),
            Operand::Float(f) => Val::Float(*f),
            Operand::Str(s) => Val::Str(Cow::Borrowed(s)),
            Operand::Field(names) => self.fields(dot.clone(), names)?,
            Operand::Chain(base, names) => {
                let b = self.operand(base, dot)?;
                self.fields(b, names)?
            }
            Operand::Call(c) => self.call(c, dot, None)?,
            Operand::Sub(p) => self.pipe(p, dot)?,
        })
    }

    fn fields(&self, mut v: Val<'a>, names: &[Name]) -> Result<Val<'a>, String> {
        for n in names {
            v = match v {
                Val::Map => self.data.get(n),
                Val::Nil => Val::Nil,
                other => {
                    let name = match n {
                        Name::Value => "Value",
                        Name::Entry => "Entry",
                        Name::Key(k) => k,
                    };
                    return Err(format!("can't evaluate field {name} in type {}", other.type_name()));
                }
            };
        }
        Ok(v)
    }

    fn call(&mut self, c: &'a Call, dot: &Val<'a>, last: Option<Val<'a>>) -> Result<Val<'a>, String> {
        let at = |e: String| format!("{}:{}: {}: {e}", c.at.0, c.at.1, c.func.name());
        // `and` and `or` stop at the first argument that decides.
        if matches!(c.func, Func::And | Func::Or) {
            let want = c.func == Func::Or;
            let mut v = Val::Nil;
            for a in &c.args {
                v = self.operand(a, dot)?;
                if v.truth() == want {
                    return Ok(v);
                }
            }
            return Ok(last.unwrap_or(v));
        }
        let base = self.stack.len();
        for a in &c.args {
            match self.operand(a, dot) {
                Ok(v) => self.stack.push(v),
                Err(e) => {
                    self.stack.truncate(base);
                    return Err(e);
                }
            }
        }
        if let Some(v) = last {
            self.stack.push(v);
        }
        let r = funcs::call(c.func, &self.stack[base..], c.re.as_ref(), &self.data);
        self.stack.truncate(base);
        r.map_err(at)
    }
}

#[cfg(test)]
#[path = "template_tests.rs"]
mod tests;
