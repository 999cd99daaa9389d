//! The report `shipper convert` prints on stderr: one line per construct of the source.

use std::fmt::Write;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Written to our config, at this key.
    Mapped(String),
    /// Nothing to write: shipper does it by itself (how).
    BuiltIn(String),
    /// Nothing to write: it has no meaning for shipper (why).
    NotNeeded(String),
    /// Written with a `${VAR}` or a file the user gives, as the source has no value for it here
    /// (what it stands for, and what to give).
    Needs(String),
    /// Left out, or kept with a different effect (why, and what to do).
    Unsupported(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// 1-based line in the source, where known.
    pub line: Option<u32>,
    /// The construct: `discovery.relabel "pods" rule → app`, `scrape_configs[0].pipeline_stages[1] json`.
    pub what: String,
    pub outcome: Outcome,
}

#[derive(Debug, Clone)]
pub struct Report {
    file: String,
    pub notes: Vec<Note>,
}

impl Report {
    pub fn new(file: &str) -> Report {
        Report {
            file: file.to_string(),
            notes: Vec::new(),
        }
    }

    pub fn add(&mut self, line: Option<u32>, what: impl Into<String>, outcome: Outcome) {
        self.notes.push(Note {
            line,
            what: what.into(),
            outcome,
        });
    }

    pub fn mapped(&mut self, line: Option<u32>, what: impl Into<String>, to: impl Into<String>) {
        self.add(line, what, Outcome::Mapped(to.into()));
    }

    pub fn built_in(&mut self, line: Option<u32>, what: impl Into<String>, how: impl Into<String>) {
        self.add(line, what, Outcome::BuiltIn(how.into()));
    }

    pub fn not_needed(&mut self, line: Option<u32>, what: impl Into<String>, why: impl Into<String>) {
        self.add(line, what, Outcome::NotNeeded(why.into()));
    }

    pub fn needs(&mut self, line: Option<u32>, what: impl Into<String>, what_to_give: impl Into<String>) {
        self.add(line, what, Outcome::Needs(what_to_give.into()));
    }

    pub fn unsupported(&mut self, line: Option<u32>, what: impl Into<String>, why: impl Into<String>) {
        self.add(line, what, Outcome::Unsupported(why.into()));
    }

    /// Whether everything was carried over (nothing unsupported, nothing the user must give).
    pub fn complete(&self) -> bool {
        !self
            .notes
            .iter()
            .any(|n| matches!(n.outcome, Outcome::Unsupported(_) | Outcome::Needs(_)))
    }

    /// One line per note, `file:line: construct: outcome`, in source order, then a summary line.
    pub fn render(&self) -> String {
        let mut notes: Vec<&Note> = self.notes.iter().collect();
        notes.sort_by_key(|n| n.line.unwrap_or(u32::MAX));
        let mut s = String::new();
        let (mut mapped, mut built_in, mut not_needed, mut needs, mut unsupported) = (0, 0, 0, 0, 0);
        for n in notes {
            let at = match n.line {
                Some(l) => format!("{}:{l}", self.file),
                None => self.file.clone(),
            };
            let outcome = match &n.outcome {
                Outcome::Mapped(to) => {
                    mapped += 1;
                    format!("mapped to {to}")
                }
                Outcome::BuiltIn(how) => {
                    built_in += 1;
                    format!("built in: {how}")
                }
                Outcome::NotNeeded(why) => {
                    not_needed += 1;
                    format!("not needed: {why}")
                }
                Outcome::Needs(what) => {
                    needs += 1;
                    format!("NEEDS INPUT: {what}")
                }
                Outcome::Unsupported(why) => {
                    unsupported += 1;
                    format!("NOT SUPPORTED: {why}")
                }
            };
            let _ = writeln!(s, "{at}: {}: {outcome}", n.what);
        }
        let _ = writeln!(
            s,
            "{mapped} mapped, {built_in} built in, {not_needed} not needed, {needs} needing input, {unsupported} not supported"
        );
        s
    }
}
