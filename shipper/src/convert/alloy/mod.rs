//! Grafana Alloy's configuration syntax (formerly River): blocks with an optional label, attributes
//! and expressions (null, bools, numbers, strings with escapes, raw strings, arrays, objects,
//! references such as `discovery.relabel.pods.output`, calls such as `sys.env("X")` and
//! `coalesce(a, b)`, operators). No maintained Rust crate parses it (HCL crates refuse its dotted
//! block names), hence this one. Errors give line and column.

mod attrs;
mod chain;
mod declare;
mod discovery;
mod docker;
mod ends;
mod eval;
mod import;
mod lex;
mod lower;
mod metrics;
mod module;
#[cfg(test)]
mod module_tests;
mod parse;
mod rewrite;
mod routes;
mod secretfilter;
mod secrets;
#[cfg(test)]
mod tests;

pub use lower::{lower, lower_in};
pub use parse::parse;

/// 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl std::fmt::Display for Pos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    pub pos: Pos,
    pub message: String,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.pos, self.message)
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Body {
    pub items: Vec<Item>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Attr(Attribute),
    Block(Block),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    pub name: String,
    pub value: Expr,
    pub pos: Pos,
}

/// `name "label" { body }`; `name` keeps its dots (`loki.source.file`).
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub name: String,
    pub label: Option<String>,
    pub body: Body,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Null,
    Bool(bool),
    Number(f64),
    Str(String),
    Array(Vec<Expr>),
    /// Fields in the order written.
    Object(Vec<(String, Expr)>),
    Ident(String),
    Field(Box<Expr>, String),
    Index(Box<Expr>, Box<Expr>),
    Call(Box<Expr>, Vec<Expr>),
    Unary(&'static str, Box<Expr>),
    Binary(&'static str, Box<Expr>, Box<Expr>),
}

impl Expr {
    /// `a.b.c` for a reference made of names only (`discovery.kubernetes.pods.targets`).
    pub fn path(&self) -> Option<String> {
        match self {
            Expr::Ident(s) => Some(s.clone()),
            Expr::Field(base, f) => base.path().map(|p| format!("{p}.{f}")),
            _ => None,
        }
    }
}

impl Body {
    /// The attribute `name` of this body.
    pub fn attr(&self, name: &str) -> Option<&Expr> {
        self.attribute(name).map(|a| &a.value)
    }

    /// The attribute `name` of this body, with its position.
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.items.iter().find_map(|i| match i {
            Item::Attr(a) if a.name == name => Some(a),
            _ => None,
        })
    }

    /// The blocks named `name`, in order.
    pub fn blocks<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Block> + 'a {
        self.items.iter().filter_map(move |i| match i {
            Item::Block(b) if b.name == name => Some(b),
            _ => None,
        })
    }
}
