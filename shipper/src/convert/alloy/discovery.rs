//! `discovery.kubernetes` (role pod): what it selects. This node's pods are what shipper watches;
//! a namespace field selector becomes `kubernetes.include_namespaces` / `exclude_namespaces`, a
//! label selector `keep` / `drop` rules on the pod's labels (`__meta_kubernetes_pod_label_*`).

use super::super::out::Out;
use super::super::report::Report;
use super::attrs::{attrs, line};
use super::lower::Graph;
use super::Block;
use serde_json::{json, Map, Value};

impl Graph<'_> {
    pub(super) fn discovery(&self, d: &Block, out: &mut Out, report: &mut Report) {
        let what = format!("discovery.kubernetes \"{}\"", d.label.clone().unwrap_or_default());
        let m = attrs(&d.body, &what, report);
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        if role != "pod" {
            report.unsupported(line(d.pos), what, format!("role `{role}`: shipper discovers pods only"));
            return;
        }
        if out.kubernetes_discovery {
            return;
        }
        out.kubernetes_discovery = true;
        report.built_in(
            line(d.pos),
            what.clone(),
            "discovery: kubernetes (one watch of this node's pods)",
        );
        if let Some(k) = m.get("kubeconfig_file") {
            out.kubernetes.insert("kubeconfig".into(), k.clone());
            report.mapped(line(d.pos), format!("{what} kubeconfig_file"), "kubernetes.kubeconfig");
        }
        for n in d.body.blocks("namespaces") {
            let nm = attrs(&n.body, &format!("{what} namespaces"), report);
            if let Some(names) = nm.get("names") {
                out.kubernetes.insert("include_namespaces".into(), names.clone());
                report.mapped(
                    line(n.pos),
                    format!("{what} namespaces"),
                    "kubernetes.include_namespaces",
                );
            }
        }
        for s in d.body.blocks("selectors") {
            let at = line(s.pos);
            let sw = format!("{what} selectors");
            let sm = attrs(&s.body, &sw, report);
            let role = sm.get("role").and_then(Value::as_str).unwrap_or("pod");
            if role != "pod" {
                report.not_needed(
                    at,
                    sw,
                    format!("selects objects of role `{role}`, which shipper does not discover"),
                );
                continue;
            }
            if let Some(field) = sm.get("field").and_then(Value::as_str) {
                for req in field.split(',').map(str::trim).filter(|r| !r.is_empty()) {
                    field_selector(req, at, &format!("{sw} field `{req}`"), out, report);
                }
            }
            if let Some(label) = sm.get("label").and_then(Value::as_str) {
                match label_rules(label) {
                    Ok(rules) => {
                        for (req, rule) in rules {
                            out.relabel_configs.push(rule);
                            report.mapped(
                                at,
                                format!("{sw} label `{req}`"),
                                "relabel_configs (a keep/drop rule on the pod's label)",
                            );
                        }
                    }
                    Err(why) => report.unsupported(at, format!("{sw} label `{label}`"), why),
                }
            }
        }
    }
}

/// One requirement of a field selector (`spec.nodeName=x`, `metadata.namespace!=y`).
fn field_selector(req: &str, at: Option<u32>, what: &str, out: &mut Out, report: &mut Report) {
    let (key, neg, value) = match req.split_once("!=") {
        Some((k, v)) => (k.trim(), true, v.trim()),
        None => match req.split_once("==").or_else(|| req.split_once('=')) {
            Some((k, v)) => (k.trim(), false, v.trim()),
            None => {
                report.unsupported(at, what, "not a field selector (field=value or field!=value)");
                return;
            }
        },
    };
    match (key, neg) {
        ("spec.nodeName", false) => report.built_in(
            at,
            what,
            "only this node's pods are watched (spec.nodeName from NODE_NAME)",
        ),
        ("metadata.namespace", _) => {
            let list = if neg {
                "exclude_namespaces"
            } else {
                "include_namespaces"
            };
            let entry = out.kubernetes.entry(list).or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(a) = entry {
                a.push(value.into());
            }
            report.mapped(at, what, format!("kubernetes.{list}"));
        }
        ("metadata.name", _) => {
            let action = if neg { "drop" } else { "keep" };
            out.relabel_configs.push(json!({
                "source_labels": ["__meta_kubernetes_pod_name"],
                "regex": regex::escape(value),
                "action": action,
            }));
            report.mapped(at, what, format!("relabel_configs (a {action} rule on the pod's name)"));
        }
        _ => report.unsupported(
            at,
            what,
            "shipper selects pods by node, namespace, name and labels only: those this field keeps are not known",
        ),
    }
}

/// The label name of a pod label in relabel rules (`app.kubernetes.io/name` →
/// `app_kubernetes_io_name`).
fn meta(prefix: &str, key: &str) -> String {
    let k: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("__meta_kubernetes_pod_{prefix}_{k}")
}

/// A Kubernetes label selector (`app=a,tier in (x, y),!canary`) as relabel rules, each with the
/// requirement it comes from.
pub(super) fn label_rules(selector: &str) -> Result<Vec<(String, Value)>, String> {
    let mut reqs = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                reqs.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    reqs.push(&selector[start..]);
    let valid = |k: &str| {
        !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/'))
    };
    let mut out = Vec::new();
    for req in reqs.into_iter().map(str::trim).filter(|r| !r.is_empty()) {
        let rule = |action: &str, label: String, regex: String| {
            let mut m = Map::new();
            m.insert("source_labels".into(), json!([label]));
            m.insert("regex".into(), regex.into());
            m.insert("action".into(), action.into());
            Value::Object(m)
        };
        let set = |v: &str| -> Result<String, String> {
            let inner = v
                .trim()
                .strip_prefix('(')
                .and_then(|v| v.strip_suffix(')'))
                .ok_or_else(|| format!("`{req}`: a set is written (a, b)"))?;
            let vals: Vec<String> = inner.split(',').map(|x| regex::escape(x.trim())).collect();
            Ok(format!("({})", vals.join("|")))
        };
        let r = if let Some(k) = req.strip_prefix('!') {
            let k = k.trim();
            if !valid(k) {
                return Err(format!("`{req}` is not a label requirement"));
            }
            rule("drop", meta("labelpresent", k), "true".into())
        } else if let Some((k, v)) = req.split_once("!=") {
            rule("drop", meta("label", k.trim()), regex::escape(v.trim()))
        } else if let Some((k, v)) = req.split_once("==").or_else(|| req.split_once('=')) {
            rule("keep", meta("label", k.trim()), regex::escape(v.trim()))
        } else if let Some((k, v)) = req.split_once(" notin ") {
            rule("drop", meta("label", k.trim()), set(v)?)
        } else if let Some((k, v)) = req.split_once(" in ") {
            rule("keep", meta("label", k.trim()), set(v)?)
        } else if valid(req) {
            rule("keep", meta("labelpresent", req), "true".into())
        } else {
            return Err(format!(
                "`{req}` is not a label requirement shipper knows (=, ==, !=, in, notin, exists, !)"
            ));
        };
        out.push((req.to_string(), r));
    }
    Ok(out)
}
