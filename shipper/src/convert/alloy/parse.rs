//! The Alloy configuration syntax parsed into blocks, attributes and expressions (see `mod.rs` for
//! the tree). Statements end at a newline; inside brackets, parentheses and object braces newlines
//! are insignificant. Errors give the line and column of the token at fault.

use super::lex::{tokens, Tok, Token};
use super::{Attribute, Block, Body, Error, Expr, Item, Pos};

/// Parses a whole file.
pub fn parse(src: &str) -> Result<Body, Error> {
    let toks = tokens(src).map_err(|(pos, message)| Error { pos, message })?;
    let mut p = Parser { toks, at: 0, depth: 0 };
    let body = p.body(false)?;
    Ok(body)
}

/// Nesting beyond this is refused (a hostile file must not overflow the stack).
const MAX_DEPTH: usize = 200;

struct Parser {
    toks: Vec<Token>,
    at: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.at].tok
    }

    fn pos(&self) -> Pos {
        self.toks[self.at].pos
    }

    fn next(&mut self) -> Token {
        let t = self.toks[self.at].clone();
        if t.tok != Tok::Eof {
            self.at += 1;
        }
        t
    }

    fn err<T>(&self, message: impl Into<String>) -> Result<T, Error> {
        Err(Error {
            pos: self.pos(),
            message: message.into(),
        })
    }

    fn is(&self, p: &str) -> bool {
        matches!(self.peek(), Tok::Punct(q) if *q == p)
    }

    fn expect(&mut self, p: &str, what: &str) -> Result<(), Error> {
        if self.is(p) {
            self.next();
            Ok(())
        } else {
            self.err(format!("expected `{p}` {what}, found {}", describe(self.peek())))
        }
    }

    fn skip_newlines(&mut self) {
        while *self.peek() == Tok::Newline {
            self.next();
        }
    }

    fn enter(&mut self) -> Result<(), Error> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.err(format!("nested deeper than {MAX_DEPTH} levels"));
        }
        Ok(())
    }

    /// Statements up to `}` (inside a block) or the end of the file.
    fn body(&mut self, in_block: bool) -> Result<Body, Error> {
        let mut items = Vec::new();
        loop {
            self.skip_newlines();
            match self.peek() {
                Tok::Eof if in_block => return self.err("block not closed (a `}` is missing)"),
                Tok::Eof => return Ok(Body { items }),
                Tok::Punct("}") if in_block => return Ok(Body { items }),
                Tok::Ident(_) => items.push(self.statement()?),
                other => return self.err(format!("expected a block or an attribute, found {}", describe(other))),
            }
            match self.peek() {
                Tok::Newline | Tok::Eof => {}
                Tok::Punct("}") if in_block => {}
                other => {
                    return self.err(format!(
                        "expected a new line after the statement, found {}",
                        describe(other)
                    ))
                }
            }
        }
    }

    /// `name = expr`, or `name.sub "label" { … }`.
    fn statement(&mut self) -> Result<Item, Error> {
        let pos = self.pos();
        let mut name = self.ident("a name")?;
        if self.is("=") {
            self.next();
            let value = self.expr()?;
            return Ok(Item::Attr(Attribute { name, value, pos }));
        }
        while self.is(".") {
            self.next();
            name.push('.');
            name.push_str(&self.ident("a name after `.`")?);
        }
        let label = match self.peek() {
            Tok::Str(s) => {
                let s = s.clone();
                self.next();
                Some(s)
            }
            _ => None,
        };
        if !self.is("{") {
            return self.err(format!(
                "expected `=` (an attribute) or `{{` (a block) after `{name}`, found {}",
                describe(self.peek())
            ));
        }
        self.next();
        self.enter()?;
        let body = self.body(true)?;
        self.depth -= 1;
        self.expect("}", "to close the block")?;
        Ok(Item::Block(Block { name, label, body, pos }))
    }

    fn ident(&mut self, what: &str) -> Result<String, Error> {
        match self.peek().clone() {
            Tok::Ident(s) => {
                self.next();
                Ok(s)
            }
            other => self.err(format!("expected {what}, found {}", describe(&other))),
        }
    }

    fn expr(&mut self) -> Result<Expr, Error> {
        self.enter()?;
        let e = self.binary(0);
        self.depth -= 1;
        e
    }

    /// Precedence climbing: `||` < `&&` < comparisons < `+ -` < `* / %` < `^` (right-associative).
    fn binary(&mut self, min: u8) -> Result<Expr, Error> {
        let mut left = self.unary()?;
        while let Tok::Punct(op) = *self.peek() {
            let prec = match op {
                "||" => 1,
                "&&" => 2,
                "==" | "!=" | "<" | "<=" | ">" | ">=" => 3,
                "+" | "-" => 4,
                "*" | "/" | "%" => 5,
                "^" => 6,
                _ => break,
            };
            if prec < min.max(1) {
                break;
            }
            self.next();
            let next_min = if op == "^" { prec } else { prec + 1 };
            let right = self.binary(next_min)?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, Error> {
        if let Tok::Punct(op @ ("!" | "-")) = *self.peek() {
            self.next();
            self.enter()?;
            let e = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Unary(op, Box::new(e)));
        }
        self.postfix()
    }

    /// A primary followed by `.field`, `[index]` and `(args)`.
    fn postfix(&mut self) -> Result<Expr, Error> {
        let mut e = self.primary()?;
        loop {
            if self.is(".") {
                self.next();
                let field = self.ident("a field name after `.`")?;
                e = Expr::Field(Box::new(e), field);
            } else if self.is("[") {
                self.next();
                self.skip_newlines();
                let index = self.expr()?;
                self.skip_newlines();
                self.expect("]", "to close the index")?;
                e = Expr::Index(Box::new(e), Box::new(index));
            } else if self.is("(") {
                self.next();
                let args = self.list(")")?;
                e = Expr::Call(Box::new(e), args);
            } else {
                return Ok(e);
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, Error> {
        let t = self.next();
        Ok(match t.tok {
            Tok::Number(n) => Expr::Number(n),
            Tok::Str(s) => Expr::Str(s),
            Tok::Ident(s) => match s.as_str() {
                "true" => Expr::Bool(true),
                "false" => Expr::Bool(false),
                "null" => Expr::Null,
                _ => Expr::Ident(s),
            },
            Tok::Punct("[") => Expr::Array(self.list("]")?),
            Tok::Punct("{") => self.object()?,
            Tok::Punct("(") => {
                self.skip_newlines();
                let e = self.expr()?;
                self.skip_newlines();
                self.expect(")", "to close the parenthesis")?;
                e
            }
            other => {
                self.at -= usize::from(other != Tok::Eof);
                return self.err(format!("expected a value, found {}", describe(&other)));
            }
        })
    }

    /// Comma-separated expressions up to `close` (a trailing comma allowed).
    fn list(&mut self, close: &str) -> Result<Vec<Expr>, Error> {
        self.enter()?;
        let mut items = Vec::new();
        loop {
            self.skip_newlines();
            if self.is(close) {
                self.next();
                break;
            }
            items.push(self.expr()?);
            self.skip_newlines();
            if self.is(",") {
                self.next();
            } else if !self.is(close) {
                return self.err(format!("expected `,` or `{close}`, found {}", describe(self.peek())));
            }
        }
        self.depth -= 1;
        Ok(items)
    }

    /// `{ key = value, "quoted key" = value, }`.
    fn object(&mut self) -> Result<Expr, Error> {
        self.enter()?;
        let mut fields = Vec::new();
        loop {
            self.skip_newlines();
            if self.is("}") {
                self.next();
                break;
            }
            let key = match self.peek().clone() {
                Tok::Ident(k) | Tok::Str(k) => {
                    self.next();
                    k
                }
                other => return self.err(format!("expected an object key, found {}", describe(&other))),
            };
            self.expect("=", &format!("after the object key {key:?}"))?;
            let value = self.expr()?;
            fields.push((key, value));
            self.skip_newlines();
            if self.is(",") {
                self.next();
            } else if !self.is("}") {
                return self.err(format!(
                    "expected `,` or `}}` in the object, found {}",
                    describe(self.peek())
                ));
            }
        }
        self.depth -= 1;
        Ok(Expr::Object(fields))
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("`{s}`"),
        Tok::Number(n) => format!("the number {n}"),
        Tok::Str(s) => format!("the string {s:?}"),
        Tok::Newline => "the end of the line".into(),
        Tok::Punct(p) => format!("`{p}`"),
        Tok::Eof => "the end of the file".into(),
    }
}
