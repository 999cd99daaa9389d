//! Tokens of the Alloy configuration syntax (formerly River): identifiers, numbers, strings with
//! escapes, raw (backtick) strings, punctuation and operators, newlines (they end statements);
//! `//` and `/* */` comments are skipped. Every token carries its line and column (1-based).

use super::Pos;

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Ident(String),
    Number(f64),
    Str(String),
    Newline,
    /// Punctuation and operators, as written: `{ } [ ] ( ) , . = == != < <= > >= + - * / % ^ ! && ||`.
    Punct(&'static str),
    Eof,
}

#[derive(Debug, Clone)]
pub struct Token {
    pub tok: Tok,
    pub pos: Pos,
}

const PUNCT: [&str; 25] = [
    "==", "!=", "<=", ">=", "&&", "||", "{", "}", "[", "]", "(", ")", ",", ".", "=", "<", ">", "+", "-", "*", "/", "%",
    "^", "!", ":",
];

/// All tokens of `src`, ending with `Eof`; the first lexical error (an unterminated string or
/// comment, an unknown escape or character) with its position.
pub fn tokens(src: &str) -> Result<Vec<Token>, (Pos, String)> {
    let mut out = Vec::new();
    let mut lx = Lexer {
        chars: src.chars().collect(),
        at: 0,
        pos: Pos { line: 1, col: 1 },
    };
    loop {
        lx.skip_blanks()?;
        let pos = lx.pos;
        let Some(c) = lx.peek(0) else {
            out.push(Token { tok: Tok::Eof, pos });
            return Ok(out);
        };
        let tok = if c == '\n' {
            lx.bump();
            Tok::Newline
        } else if c.is_alphabetic() || c == '_' {
            let mut s = String::new();
            while let Some(c) = lx.peek(0).filter(|c| c.is_alphanumeric() || *c == '_') {
                s.push(c);
                lx.bump();
            }
            Tok::Ident(s)
        } else if c.is_ascii_digit() {
            lx.number()?
        } else if c == '"' {
            lx.bump();
            Tok::Str(lx.string(pos)?)
        } else if c == '`' {
            lx.bump();
            let mut s = String::new();
            loop {
                match lx.bump() {
                    Some('`') => break,
                    Some(c) => s.push(c),
                    None => return Err((pos, "raw string not closed (a ` is missing)".into())),
                }
            }
            Tok::Str(s)
        } else if let Some(p) = PUNCT
            .iter()
            .find(|p| p.chars().enumerate().all(|(i, pc)| lx.peek(i) == Some(pc)))
        {
            for _ in 0..p.len() {
                lx.bump();
            }
            Tok::Punct(p)
        } else {
            return Err((pos, format!("unexpected character {c:?}")));
        };
        out.push(Token { tok, pos });
    }
}

struct Lexer {
    chars: Vec<char>,
    at: usize,
    pos: Pos,
}

impl Lexer {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.at + ahead).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek(0)?;
        self.at += 1;
        if c == '\n' {
            self.pos.line += 1;
            self.pos.col = 1;
        } else {
            self.pos.col += 1;
        }
        Some(c)
    }

    /// Spaces, tabs, carriage returns and comments (a `//` comment stops before its newline).
    fn skip_blanks(&mut self) -> Result<(), (Pos, String)> {
        loop {
            match (self.peek(0), self.peek(1)) {
                (Some(' ' | '\t' | '\r'), _) => {
                    self.bump();
                }
                (Some('/'), Some('/')) => {
                    while self.peek(0).is_some_and(|c| c != '\n') {
                        self.bump();
                    }
                }
                (Some('/'), Some('*')) => {
                    let start = self.pos;
                    self.bump();
                    self.bump();
                    loop {
                        match (self.peek(0), self.peek(1)) {
                            (Some('*'), Some('/')) => {
                                self.bump();
                                self.bump();
                                break;
                            }
                            (Some(_), _) => {
                                self.bump();
                            }
                            (None, _) => return Err((start, "comment not closed (a */ is missing)".into())),
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn number(&mut self) -> Result<Tok, (Pos, String)> {
        let pos = self.pos;
        let mut s = String::new();
        let digits = |lx: &mut Lexer, s: &mut String| {
            while let Some(c) = lx.peek(0).filter(char::is_ascii_digit) {
                s.push(c);
                lx.bump();
            }
        };
        digits(self, &mut s);
        if self.peek(0) == Some('.') && self.peek(1).is_some_and(|c| c.is_ascii_digit()) {
            s.push('.');
            self.bump();
            digits(self, &mut s);
        }
        if matches!(self.peek(0), Some('e' | 'E')) {
            s.push('e');
            self.bump();
            if let Some(sign @ ('+' | '-')) = self.peek(0) {
                s.push(sign);
                self.bump();
            }
            digits(self, &mut s);
        }
        s.parse()
            .map(Tok::Number)
            .map_err(|_| (pos, format!("{s:?} is not a number")))
    }

    /// The rest of a `"` string, its escapes resolved.
    fn string(&mut self, start: Pos) -> Result<String, (Pos, String)> {
        let mut s = String::new();
        loop {
            let pos = self.pos;
            match self.bump() {
                None | Some('\n') => return Err((start, "string not closed (a \" is missing on this line)".into())),
                Some('"') => return Ok(s),
                Some('\\') => {
                    let e = self.bump().ok_or((pos, "escape at the end of the file".to_string()))?;
                    match e {
                        'n' => s.push('\n'),
                        't' => s.push('\t'),
                        'r' => s.push('\r'),
                        'a' => s.push('\u{7}'),
                        'b' => s.push('\u{8}'),
                        'f' => s.push('\u{c}'),
                        'v' => s.push('\u{b}'),
                        '\\' | '"' | '\'' => s.push(e),
                        'x' | 'u' | 'U' => {
                            let n = match e {
                                'x' => 2,
                                'u' => 4,
                                _ => 8,
                            };
                            let hex: String = (0..n).filter_map(|_| self.bump()).collect();
                            let c = u32::from_str_radix(&hex, 16)
                                .ok()
                                .filter(|_| hex.len() == n)
                                .and_then(char::from_u32)
                                .ok_or((pos, format!("\\{e}{hex} is not a valid escape")))?;
                            s.push(c);
                        }
                        '0'..='7' => {
                            let mut oct = String::from(e);
                            for _ in 0..2 {
                                oct.extend(self.bump());
                            }
                            let c = u32::from_str_radix(&oct, 8)
                                .ok()
                                .filter(|_| oct.len() == 3)
                                .and_then(char::from_u32)
                                .ok_or((pos, format!("\\{oct} is not a valid escape")))?;
                            s.push(c);
                        }
                        other => return Err((pos, format!("unknown escape \\{other}"))),
                    }
                }
                Some(c) => s.push(c),
            }
        }
    }
}
