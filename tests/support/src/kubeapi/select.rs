//! `fieldSelector` and `labelSelector`: parsing them like the API server does (unknown fields
//! and malformed terms are 400s, not silently ignored) and matching objects against them.
//!
//! A fake that ignored selectors would let a client that forgets `spec.nodeName=…` pass its
//! tests while it receives every pod of the cluster, so both are honoured, and rejected the way
//! the real server rejects them.

use std::collections::BTreeSet;

use serde_json::Value;

use super::status::ApiError;
use super::store::Resource;

/// What a list or watch asks for: the namespace of the path, and both selectors (all ANDed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Filter {
    pub namespace: Option<String>,
    pub fields: Vec<FieldReq>,
    pub labels: Vec<LabelReq>,
}

impl Filter {
    /// Parses the selectors of a request on `resource` (`None`: the parameter is absent).
    pub fn parse(
        resource: Resource,
        namespace: Option<&str>,
        fields: Option<&str>,
        labels: Option<&str>,
    ) -> Result<Filter, ApiError> {
        Ok(Filter {
            namespace: namespace.map(str::to_owned),
            fields: fields.map_or(Ok(Vec::new()), |s| parse_fields(resource, s))?,
            labels: labels.map_or(Ok(Vec::new()), parse_labels)?,
        })
    }

    /// Whether `obj` is in the namespace of the path and satisfies both selectors.
    pub fn matches(&self, obj: &Value) -> bool {
        let meta = &obj["metadata"];
        if let Some(ns) = &self.namespace {
            if meta["namespace"].as_str() != Some(ns) {
                return false;
            }
        }
        let labels = meta["labels"].as_object();
        let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.fields.iter().all(|f| f.matches(obj)) && self.labels.iter().all(|l| l.matches(label(&l.key)))
    }

    /// Whether any selector is set (the API server then leaves out `remainingItemCount`).
    pub fn has_selectors(&self) -> bool {
        !self.fields.is_empty() || !self.labels.is_empty()
    }
}

/// One term of a field selector: `field=value`, `field==value` or `field!=value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FieldReq {
    pub field: String,
    pub value: String,
    pub negated: bool,
}

impl FieldReq {
    fn matches(&self, obj: &Value) -> bool {
        (field_value(obj, &self.field) == self.value) != self.negated
    }
}

/// The fields the API server indexes for field selectors, per resource (from the pod and
/// namespace registries' `ToSelectableFields`); anything else is `field label not supported`.
fn supported_field(resource: Resource, field: &str) -> bool {
    let generic = ["metadata.name", "metadata.namespace"];
    let specific: &[&str] = match resource {
        Resource::Pods => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        Resource::Namespaces => &["status.phase"],
    };
    generic.contains(&field) || specific.contains(&field)
}

/// The value a field selector compares with: the string at the dotted path, `true`/`false`
/// for booleans, and "" when absent (so `spec.nodeName=` selects unscheduled pods, as it does
/// on a real cluster).
pub(crate) fn field_value(obj: &Value, path: &str) -> String {
    let mut v = obj;
    for part in path.split('.') {
        v = &v[part];
    }
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Null => match path {
            "spec.hostNetwork" => "false".into(),
            _ => String::new(),
        },
        other => other.to_string(),
    }
}

fn parse_fields(resource: Resource, s: &str) -> Result<Vec<FieldReq>, ApiError> {
    let mut reqs = Vec::new();
    for term in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (field, value, negated) = if let Some((f, v)) = term.split_once("!=") {
            (f, v, true)
        } else if let Some((f, v)) = term.split_once("==") {
            (f, v, false)
        } else if let Some((f, v)) = term.split_once('=') {
            (f, v, false)
        } else {
            return Err(ApiError::bad_request(format!(
                "invalid field selector: invalid selector: '{s}'; can't understand '{term}'"
            )));
        };
        let field = field.trim();
        if !supported_field(resource, field) {
            return Err(ApiError::bad_request(format!("field label not supported: {field}")));
        }
        reqs.push(FieldReq {
            field: field.to_owned(),
            value: value.trim().to_owned(),
            negated,
        });
    }
    Ok(reqs)
}

/// One requirement of a label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LabelReq {
    pub key: String,
    pub op: LabelOp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LabelOp {
    /// `k=v`, `k==v`
    Eq(String),
    /// `k!=v`: also true when the label is absent.
    NotEq(String),
    /// `k in (a,b)`
    In(BTreeSet<String>),
    /// `k notin (a,b)`: also true when the label is absent.
    NotIn(BTreeSet<String>),
    /// `k`
    Exists,
    /// `!k`
    NotExists,
}

impl LabelReq {
    fn matches(&self, value: Option<&str>) -> bool {
        match (&self.op, value) {
            (LabelOp::Eq(want), Some(v)) => v == want,
            (LabelOp::NotEq(want), Some(v)) => v != want,
            (LabelOp::In(set), Some(v)) => set.contains(v),
            (LabelOp::NotIn(set), Some(v)) => !set.contains(v),
            (LabelOp::Exists, Some(_)) => true,
            (LabelOp::Eq(_) | LabelOp::In(_) | LabelOp::Exists, None) => false,
            (LabelOp::NotEq(_) | LabelOp::NotIn(_) | LabelOp::NotExists, None) => true,
            (LabelOp::NotExists, Some(_)) => false,
        }
    }
}

fn parse_labels(s: &str) -> Result<Vec<LabelReq>, ApiError> {
    let bad = |why: &str| ApiError::bad_request(format!("unable to parse requirement: {why}"));
    let mut reqs = Vec::new();
    for term in split_top_level(s).into_iter().map(str::trim).filter(|t| !t.is_empty()) {
        let req = if let Some(key) = term.strip_prefix('!') {
            LabelReq {
                key: key.trim().to_owned(),
                op: LabelOp::NotExists,
            }
        } else if let Some(open) = term.find('(') {
            let Some(inner) = term[open + 1..].strip_suffix(')') else {
                return Err(bad(&format!("found '{term}', expected: ')'")));
            };
            let set = inner.split(',').map(|v| v.trim().to_owned()).collect();
            let mut words = term[..open].split_whitespace();
            let (Some(key), Some(op), None) = (words.next(), words.next(), words.next()) else {
                return Err(bad(&format!("found '{term}', expected: key in (values)")));
            };
            let op = match op {
                "in" => LabelOp::In(set),
                "notin" => LabelOp::NotIn(set),
                other => return Err(bad(&format!("found '{other}', expected: in, notin"))),
            };
            LabelReq {
                key: key.to_owned(),
                op,
            }
        } else if let Some((k, v)) = term.split_once("!=") {
            LabelReq {
                key: k.trim().to_owned(),
                op: LabelOp::NotEq(v.trim().to_owned()),
            }
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            LabelReq {
                key: k.trim().to_owned(),
                op: LabelOp::Eq(v.trim().to_owned()),
            }
        } else {
            LabelReq {
                key: term.to_owned(),
                op: LabelOp::Exists,
            }
        };
        if req.key.is_empty() || req.key.contains(char::is_whitespace) {
            return Err(bad(&format!("invalid label key in '{term}'")));
        }
        reqs.push(req);
    }
    Ok(reqs)
}

/// Splits on the commas outside parentheses: `a in (x,y),b` is two terms.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(ns: &str, name: &str, node: Option<&str>, labels: Value) -> Value {
        let mut p = json!({"metadata": {"namespace": ns, "name": name, "labels": labels}, "spec": {}});
        if let Some(n) = node {
            p["spec"]["nodeName"] = json!(n);
        }
        p
    }

    fn filter(fields: Option<&str>, labels: Option<&str>) -> Filter {
        Filter::parse(Resource::Pods, None, fields, labels).expect("valid selectors")
    }

    #[test]
    fn field_selectors_and_together() {
        let a = pod("ns1", "web", Some("node-a"), json!({}));
        let b = pod("ns2", "web", Some("node-b"), json!({}));
        let unscheduled = pod("ns1", "job", None, json!({}));
        let f = filter(Some("spec.nodeName=node-a"), None);
        assert!(f.matches(&a) && !f.matches(&b) && !f.matches(&unscheduled));
        let f = filter(Some("spec.nodeName==node-b,metadata.namespace=ns2"), None);
        assert!(!f.matches(&a) && f.matches(&b));
        let f = filter(Some("metadata.name!=web"), None);
        assert!(!f.matches(&a) && f.matches(&unscheduled));
        let f = filter(Some("spec.nodeName="), None);
        assert!(f.matches(&unscheduled) && !f.matches(&a));
        assert!(filter(Some(""), None).matches(&a));
    }

    #[test]
    fn unsupported_or_malformed_field_selectors_are_400() {
        let err = Filter::parse(Resource::Pods, None, Some("spec.containers=x"), None).unwrap_err();
        assert_eq!(
            (err.code, err.message.as_str()),
            (400, "field label not supported: spec.containers")
        );
        assert_eq!(
            Filter::parse(Resource::Namespaces, None, Some("spec.nodeName=a"), None)
                .unwrap_err()
                .code,
            400
        );
        assert_eq!(
            Filter::parse(Resource::Pods, None, Some("spec.nodeName"), None)
                .unwrap_err()
                .code,
            400
        );
    }

    #[test]
    fn label_selectors() {
        let web = pod("ns", "a", None, json!({"app": "web", "tier": "front"}));
        let db = pod("ns", "b", None, json!({"app": "db"}));
        let none = pod("ns", "c", None, json!(null));
        let check = |sel: &str, want: [bool; 3]| {
            let f = filter(None, Some(sel));
            assert_eq!([f.matches(&web), f.matches(&db), f.matches(&none)], want, "{sel}");
        };
        check("app=web", [true, false, false]);
        check("app==db", [false, true, false]);
        check("app!=web", [false, true, true]);
        check("tier", [true, false, false]);
        check("!tier", [false, true, true]);
        check("app in (web, db)", [true, true, false]);
        check("app notin (web)", [false, true, true]);
        check("app in (web,db),!tier", [false, true, false]);
        check("app=web,tier=front", [true, false, false]);
    }

    #[test]
    fn malformed_label_selectors_are_400() {
        for sel in ["app in (web", "app within (x)", "a b"] {
            assert_eq!(
                Filter::parse(Resource::Pods, None, None, Some(sel)).unwrap_err().code,
                400,
                "{sel}"
            );
        }
    }

    #[test]
    fn namespace_of_the_path_restricts() {
        let f = Filter::parse(Resource::Pods, Some("ns1"), None, None).unwrap();
        assert!(f.matches(&pod("ns1", "a", None, json!({}))));
        assert!(!f.matches(&pod("ns2", "a", None, json!({}))));
        assert!(!f.has_selectors());
    }
}
