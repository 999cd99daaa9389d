//! The Kubernetes part of a source: relabel rules on `__meta_kubernetes_*` labels. Rules that
//! build what `discovery: kubernetes` builds in (namespace, pod, container, node_name, the file
//! path) are dropped as built in; every other rule is kept as written (our rules are Prometheus'
//! and see the same labels); the built-in labels the source never sets are dropped at the end, so
//! the streams carry the labels the source gave them.

use super::out::Out;
use super::report::Report;
use serde_json::{Map, Value};

/// One relabel rule of the source, in Prometheus' keys.
pub struct Rule {
    pub line: Option<u32>,
    pub what: String,
    pub rule: Map<String, Value>,
}

/// The labels `discovery: kubernetes` sets on a container's lines.
const BUILT_IN: [&str; 8] = [
    "namespace",
    "pod",
    "container",
    "app",
    "job",
    "node_name",
    "stream",
    "filename",
];

/// Rules reading one of these labels, copied as is to the label named, are what we build in.
const IDENTITY: [(&str, &str); 4] = [
    ("__meta_kubernetes_namespace", "namespace"),
    ("__meta_kubernetes_pod_name", "pod"),
    ("__meta_kubernetes_pod_container_name", "container"),
    ("__meta_kubernetes_pod_node_name", "node_name"),
];

/// `__meta_kubernetes_pod_*` labels our pod cache gives rules (prefixes end with `_`).
const KNOWN_META: [&str; 13] = [
    "__meta_kubernetes_pod_controller_kind",
    "__meta_kubernetes_pod_controller_name",
    "__meta_kubernetes_namespace",
    "__meta_kubernetes_pod_name",
    "__meta_kubernetes_pod_uid",
    "__meta_kubernetes_pod_container_name",
    "__meta_kubernetes_pod_node_name",
    "__meta_kubernetes_pod_container_id",
    "__meta_kubernetes_pod_container_image",
    "__meta_kubernetes_pod_label_",
    "__meta_kubernetes_pod_labelpresent_",
    "__meta_kubernetes_pod_annotation_",
    "__meta_kubernetes_pod_annotationpresent_",
];

fn text<'a>(rule: &'a Map<String, Value>, key: &str, default: &'a str) -> &'a str {
    rule.get(key).and_then(Value::as_str).unwrap_or(default)
}

fn sources(rule: &Map<String, Value>) -> Vec<String> {
    match rule.get("source_labels") {
        Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

fn known_meta(label: &str) -> bool {
    !label.starts_with("__meta_kubernetes_")
        || KNOWN_META.iter().any(|k| {
            if k.ends_with('_') {
                label.starts_with(k)
            } else {
                label == *k
            }
        })
}

/// Lowers the rules of a Kubernetes pod pipeline into `out` and returns the label names they set.
pub fn lower_rules(rules: Vec<Rule>, out: &mut Out, report: &mut Report) -> Vec<String> {
    let mut set = Vec::new();
    for Rule { line, what, rule } in rules {
        let action = text(&rule, "action", "replace").to_ascii_lowercase();
        let target = text(&rule, "target_label", "").to_string();
        let regex = text(&rule, "regex", "(.*)").to_string();
        let replacement = text(&rule, "replacement", "$1").to_string();
        let src = sources(&rule);
        let plain = action == "replace" && matches!(regex.as_str(), "(.*)" | ".*" | "^(.*)$") && replacement == "$1";
        if action == "replace" && target == "__path__" {
            let root = replacement.split("/*").next().unwrap_or("").trim_end_matches('/');
            if src.iter().any(|s| s.ends_with("_container_name")) && root.starts_with('/') {
                if root != "/var/log/pods" {
                    out.kubernetes.insert("pods_root".into(), root.into());
                }
                report.built_in(
                    line,
                    what,
                    format!("every container's log under {root} is tailed (kubernetes.pods_root), its pod found by its path"),
                );
                continue;
            }
        }
        let node_filter = matches!(action.as_str(), "keep") && src == ["__meta_kubernetes_pod_node_name"];
        if node_filter && regex.starts_with("${") && regex.ends_with('}') {
            report.built_in(
                line,
                what,
                "only this node's pods are watched (spec.nodeName from NODE_NAME)",
            );
            continue;
        }
        if plain && src.len() == 1 {
            if let Some((_, label)) = IDENTITY.iter().find(|(m, l)| *m == src[0] && *l == target) {
                set.push(target.clone());
                report.built_in(
                    line,
                    what,
                    format!("`{label}` from the log path (discovery: kubernetes)"),
                );
                continue;
            }
        }
        let writes = matches!(action.as_str(), "replace" | "hashmod" | "lowercase" | "uppercase");
        if writes && !target.starts_with("__") && !target.is_empty() {
            set.push(target.clone());
        }
        if action == "labelmap" {
            // What it produces depends on the pod; a built-in it could make is not dropped.
            set.extend(
                BUILT_IN
                    .iter()
                    .filter(|b| replacement.contains(*b))
                    .map(|b| b.to_string()),
            );
        }
        let unknown: Vec<&String> = src.iter().filter(|s| !known_meta(s)).collect();
        out.relabel_configs.push(Value::Object(rule));
        if unknown.is_empty() {
            report.mapped(line, what, "relabel_configs (the same rule)");
        } else {
            report.unsupported(
                line,
                what,
                format!(
                    "kept in relabel_configs, but shipper does not provide {}: the rule sees an empty value",
                    unknown.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
                ),
            );
        }
    }
    set
}

/// The built-in labels nobody set in the source (`set`: what its rules and stages set): a last
/// `labeldrop` stage removes them, so the streams are labelled as the source labelled them.
/// `parsed`: the source parsed kubelet's format (a `cri`/`docker` stage); else it is said that
/// shipper does.
pub fn drop_unset(set: &[String], parsed: bool, out: &mut Out, report: &mut Report) {
    if !parsed {
        report.built_in(
            None,
            "kubelet's log format",
            "CRI and docker lines are parsed: the message alone at kubelet's timestamp (without a cri/docker stage the source shipped each line with kubelet's `<time> <stream> <flags>` prefix)",
        );
    }
    drop_added(&BUILT_IN, set, &mut out.pipeline_stages, report);
}

/// A last `labeldrop` stage in `stages` for the labels of `added` (what shipper sets by default)
/// nobody set in the source (`set`: what its rules and stages set), so the streams are labelled
/// as the source labelled them.
pub fn drop_added(added: &[&str], set: &[String], stages: &mut Vec<Value>, report: &mut Report) {
    let unset: Vec<&str> = added.iter().copied().filter(|b| !set.iter().any(|s| s == b)).collect();
    if unset.is_empty() {
        return;
    }
    stages.push(serde_json::json!({ "labeldrop": unset }));
    report.mapped(
        None,
        format!("labels the source does not set ({})", unset.join(", ")),
        "a last `labeldrop` stage: shipper sets them by default; remove the stage to keep them",
    );
}

/// The Kubernetes pipeline's rules and stages are global in our config: with file targets beside
/// it they apply to those files too, which the source did not do.
pub fn note_mixed(out: &mut Out, report: &mut Report) {
    let global = !out.relabel_configs.is_empty() || !out.pipeline_stages.is_empty();
    if out.kubernetes_discovery && !out.targets.is_empty() && global {
        // The Kubernetes job's rules and stages are the pods' only, not the other files'.
        let rules = std::mem::take(&mut out.relabel_configs);
        let stages = std::mem::take(&mut out.pipeline_stages);
        if !rules.is_empty() {
            out.kubernetes.insert("relabel_configs".into(), Value::Array(rules));
        }
        if !stages.is_empty() {
            out.kubernetes.insert("pipeline_stages".into(), Value::Array(stages));
        }
        report.mapped(
            None,
            "Kubernetes and file targets together",
            "kubernetes.relabel_configs and kubernetes.pipeline_stages: the Kubernetes pipeline's rules and stages apply to the pods' files only",
        );
    }
}
