//! The `tenant` stage: the `X-Scope-OrgID` of a line, from an extracted value, a label or a
//! fixed value.

use super::config::TenantConfig;
use super::Line;
use crate::labels::StreamLabels;
use std::sync::Arc;

/// Where a line's tenant comes from.
pub(super) enum Tenant {
    Source(String),
    Label(String),
    Value(Arc<str>),
}

impl Tenant {
    pub(super) fn new(c: &TenantConfig, key: &str) -> Result<Tenant, String> {
        match (&c.source, &c.label, &c.value) {
            (Some(s), None, None) => Ok(Tenant::Source(s.clone())),
            (None, Some(l), None) => Ok(Tenant::Label(l.clone())),
            (None, None, Some(v)) if valid_tenant(v) => Ok(Tenant::Value(Arc::from(v.as_str()))),
            (None, None, Some(v)) => Err(format!(
                "{key}.value: {v:?} is not a Loki tenant id (at most 150 of a-z A-Z 0-9 ! - _ . * ' ( ))"
            )),
            _ => Err(format!(
                "{key}: give exactly one of source, label or value (a non-empty tenant)"
            )),
        }
    }

    /// Sets the line's tenant; false when there is no valid one to set (the line keeps its own).
    pub(super) fn apply(&self, line: &mut Line, base: Option<&StreamLabels>) -> bool {
        let found = match self {
            Tenant::Source(s) => line.extracted.get(s).filter(|v| !v.is_empty()).map(Arc::from),
            Tenant::Label(l) => line.label(base, l).map(Arc::from),
            Tenant::Value(v) => Some(v.clone()),
        };
        let found = found.filter(|t| valid_tenant(t));
        let ok = found.is_some();
        if found.is_some() {
            line.changes().tenant = found;
        }
        ok
    }
}

/// Loki's rule for tenant ids: at most 150 of `a-z A-Z 0-9 ! - _ . * ' ( )`, not `.` or `..`.
/// Anything else would be refused with the whole push, so such a value is not used.
fn valid_tenant(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 150
        && t != "."
        && t != ".."
        && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"!-_.*'()".contains(&b))
}
