//! What inlining custom components works with, shared by `declare` (instances) and `import`
//! (modules): the declares in scope, where a body sits, and the report.

use super::super::report::Report;
use super::{Body, Expr, Pos};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;

pub(super) struct Decl {
    pub body: Body,
    /// Where it is declared, to tell declares apart in the report.
    pub origin: String,
    /// Read from another file: what it gives is placed at the instance in the report.
    pub foreign: bool,
    /// The directory its `import.file` paths are relative to.
    pub dir: Option<PathBuf>,
}

/// The custom components usable in a body, by the name an instance uses (`pod_logs`,
/// `module.pod_logs`).
#[derive(Clone, Default)]
pub(super) struct Scope {
    pub decls: BTreeMap<String, Rc<Decl>>,
    /// Labels of imports that could not be read: what uses them is reported, not converted.
    pub failed: BTreeSet<String>,
}

pub(super) struct Env<'e> {
    /// What the labels of this body's components are prefixed with (inside an instance).
    pub prefix: Option<String>,
    /// The instance's arguments.
    pub args: BTreeMap<String, Expr>,
    pub dir: Option<&'e Path>,
    /// Inside a module read from another file: the place of the instance using it.
    pub at: Option<Pos>,
}

impl<'e> Env<'e> {
    /// A module's top level, read from `dir`, used at `at`.
    pub(super) fn module(dir: Option<&'e Path>, at: Pos) -> Env<'e> {
        Env {
            prefix: None,
            args: BTreeMap::new(),
            dir,
            at: Some(at),
        }
    }
}

pub(super) struct Ctx<'r> {
    pub report: &'r mut Report,
    /// Declares of the source file: (origin, line, name).
    pub declared: Vec<(String, Option<u32>, String)>,
    pub used: BTreeMap<String, Vec<String>>,
}
