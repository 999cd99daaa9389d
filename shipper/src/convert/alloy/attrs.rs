//! Small helpers every part of the lowering uses: positions into report lines and errors,
//! attributes into values, references into component names.

use super::eval::eval;
use super::{Body, Error, Expr, Item, Pos};
use crate::convert::report::Report;
use serde_json::{Map, Value};

pub(super) fn err(pos: Pos, message: impl Into<String>) -> Error {
    Error {
        pos,
        message: message.into(),
    }
}

pub(super) fn line(pos: Pos) -> Option<u32> {
    Some(pos.line)
}

/// The attributes of a body evaluated into a map (blocks inside are not included); an attribute
/// that cannot be evaluated is reported and left out.
pub(super) fn attrs(body: &Body, what: &str, report: &mut Report) -> Map<String, Value> {
    let mut m = Map::new();
    for item in &body.items {
        if let Item::Attr(a) = item {
            match eval(&a.value) {
                Ok(v) => {
                    m.insert(a.name.clone(), v);
                }
                Err(why) => report.unsupported(line(a.pos), format!("{what} {}", a.name), why),
            }
        }
    }
    m
}

/// `discovery.relabel.pods.output` → the component `discovery.relabel.pods`.
pub(super) fn component(e: &Expr) -> Option<String> {
    let path = e.path()?;
    let (comp, _export) = path.rsplit_once('.')?;
    Some(comp.to_string())
}
