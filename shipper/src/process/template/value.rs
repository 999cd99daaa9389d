//! What the template computes with.

use std::borrow::Cow;

/// A value: a string (borrowed from the line, its extracted values or the template where it can
/// be), a number, a bool, nil (also what an absent value reads as) or the data map itself.
#[derive(Clone, Debug)]
pub(super) enum Val<'a> {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    Map,
}

impl Val<'_> {
    /// Go's truth: false, 0, "" and nil are false.
    pub(super) fn truth(&self) -> bool {
        match self {
            Val::Nil => false,
            Val::Bool(b) => *b,
            Val::Int(i) => *i != 0,
            Val::Float(f) => *f != 0.0,
            Val::Str(s) => !s.is_empty(),
            Val::Map => true,
        }
    }

    pub(super) fn type_name(&self) -> &'static str {
        match self {
            Val::Nil => "<nil>",
            Val::Bool(_) => "bool",
            Val::Int(_) => "int",
            Val::Float(_) => "float64",
            Val::Str(_) => "string",
            Val::Map => "map[string]interface {}",
        }
    }
}

/// Results larger than this fail the line (`repeat`, padding).
pub(super) const MAX_RESULT: usize = 1 << 20;
