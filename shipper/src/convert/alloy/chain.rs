//! `loki.relabel` in a chain (source → loki.relabel → loki.process → loki.write, or after the
//! stages): its rules apply to the entries' labels. Before any stage, a rule that only reads the
//! target's labels runs as one of the target's relabel rules (which see the same labels);
//! otherwise it becomes a stage where one does the same (`labeldrop`, `labelallow`,
//! `static_labels`, a dropping `match`), else it is reported.

use super::super::k8s::Rule;
use super::super::report::Report;
use super::super::stages::Stages;
use super::attrs::line;
use super::lower::Graph;
use super::Block;
use serde_json::{json, Map, Value};

impl Graph<'_> {
    /// The rules of the `loki.relabel` `b` (named `comp`) met in a chain after `stages`.
    pub(super) fn chain_relabel(&mut self, b: &Block, comp: &str, stages: &mut Stages, report: &mut Report) {
        for rule in self.rules_of(b, report) {
            let Rule { line, what, rule: m } = rule;
            let action = m
                .get("action")
                .and_then(Value::as_str)
                .unwrap_or("replace")
                .to_ascii_lowercase();
            let reads_late = sources(&m).iter().any(|s| s == "filename" || s.starts_with("__"));
            let early =
                stages.stages.is_empty() && !reads_late && !matches!(action.as_str(), "labeldrop" | "labelkeep");
            if early {
                self.early.push(Rule { line, what, rule: m });
                continue;
            }
            match as_stage(&m, &action) {
                Ok((name, settings)) => stages.push(name, settings, line, &what, report),
                Err(why) => report.unsupported(line, what, why),
            }
        }
        if b.body.attr("max_cache_size").is_some() {
            report.not_needed(
                line(b.pos),
                format!("{comp} max_cache_size"),
                "shipper relabels each file once, not each entry",
            );
        }
    }
}

fn sources(m: &Map<String, Value>) -> Vec<String> {
    match m.get("source_labels") {
        Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// Label names written as a regex of alternatives (`a|b|c`), if it is only that.
fn names(regex: &str) -> Option<Vec<String>> {
    let r = regex
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or(regex);
    let v: Vec<String> = r.split('|').map(str::to_string).collect();
    v.iter()
        .all(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .then_some(v)
}

/// The stage doing what a relabel rule does to an entry's labels, or why there is none.
pub(super) fn as_stage(m: &Map<String, Value>, action: &str) -> Result<(&'static str, Value), String> {
    let text = |k: &str| m.get(k).and_then(Value::as_str);
    let regex = text("regex").unwrap_or("(.*)");
    let src = sources(m);
    match action {
        "labeldrop" | "labelkeep" => {
            let list = names(regex).ok_or(
                "its regex is a pattern: shipper's labeldrop/labelallow stages take label names (write them as a|b|c)",
            )?;
            let stage = if action == "labeldrop" { "labeldrop" } else { "labelallow" };
            Ok((stage, json!(list)))
        }
        "replace" if src.is_empty() => {
            let target = text("target_label").ok_or("a replace without target_label")?;
            let value = text("replacement").unwrap_or("$1");
            if value.contains('$') || target.starts_with("__") {
                return Err("a replace with a capture group or into a hidden label: no stage does it".into());
            }
            Ok(("static_labels", json!({ target: value })))
        }
        "keep" | "drop" if src.len() == 1 && !src[0].starts_with("__") => {
            let quoted = regex.replace('\\', "\\\\").replace('"', "\\\"");
            let op = if action == "keep" { "!~" } else { "=~" };
            Ok((
                "match",
                json!({ "selector": format!("{{{}{op}\"{quoted}\"}}", src[0]), "action": "drop" }),
            ))
        }
        "keep" | "drop" => Err(
            "a keep/drop on several or hidden labels after stages: a stage's selector matches one visible label at a time"
                .into(),
        ),
        other => Err(format!(
            "action `{other}` on the entries after stages: shipper runs relabel rules before the stages only"
        )),
    }
}
