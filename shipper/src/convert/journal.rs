//! Journal sources (Promtail's `journal` scrape config, Alloy's `loki.source.journal`) lowered into
//! our `journal:` section: its settings, matches, the relabel rules that label entries by their
//! fields, and the stages.

use super::k8s::Rule;
use super::out::s;
use super::out::Out;
use super::report::Report;
use serde_json::{Map, Value};

/// A Promtail job's `journal` (and the job's relabel rules) as `journal:`.
pub fn promtail(job: &str, v: &Value, line: Option<u32>, rules: Vec<Rule>, out: &mut Out, report: &mut Report) {
    let mut j = Map::new();
    for (k, val) in v.as_object().into_iter().flatten() {
        match k.as_str() {
            "matches" => match matches(val) {
                Ok(m) => {
                    j.insert(k.clone(), m);
                    report.mapped(line, format!("job {job} journal.matches"), "journal.matches");
                }
                Err(why) => report.unsupported(line, format!("job {job} journal.matches"), why),
            },
            "max_age" | "path" | "labels" => {
                j.insert(k.clone(), val.clone());
                report.mapped(line, format!("job {job} journal.{k}"), format!("journal.{k}"));
            }
            "json" => {
                let format = if val.as_bool() == Some(true) { "json" } else { "message" };
                if format == "json" {
                    j.insert("format".into(), format.into());
                }
                report.mapped(
                    line,
                    format!("job {job} journal.json"),
                    format!("journal.format: {format}"),
                );
            }
            other => report.unsupported(
                line,
                format!("job {job} journal.{other}"),
                "no such journal setting in shipper",
            ),
        }
    }
    let fields = fields(rules, report);
    // Our default fields (unit, priority, hostname) are replaced by what the source labels.
    j.insert("fields".into(), Value::Object(fields));
    out.journal = Some(j);
}

/// A journal source's stages as `journal.pipeline_stages` (None: none are left). Stages that would
/// hold entries back, which the journal refuses, are reported and left out.
pub fn stages(stages: &[Value], line: Option<u32>, what: &str, report: &mut Report) -> Option<Value> {
    let mut kept = Vec::new();
    for v in stages {
        let held = serde_json::from_value::<crate::config::StageConfig>(v.clone())
            .ok()
            .and_then(|s| crate::config::JournalConfig::holding_stage("stage", &s).err());
        match held {
            Some(why) => {
                let (key, why) = why.split_once(": ").unwrap_or(("stage", &why));
                report.unsupported(
                    line,
                    format!("{what} {key}"),
                    format!("left out for the journal: {why}"),
                );
            }
            None => kept.push(v.clone()),
        }
    }
    (!kept.is_empty()).then_some(Value::Array(kept))
}

/// Promtail's and Alloy's `matches` (space-separated `FIELD=value` terms) as `journal.matches`
/// (the same string); Err: why they do not carry over.
pub fn matches(v: &Value) -> Result<Value, String> {
    let Some(text) = v.as_str() else {
        return Err("matches must be a string of FIELD=value terms".into());
    };
    let terms: Vec<String> = text.split_whitespace().map(String::from).collect();
    match crate::config::JournalConfig::check_matches(&terms) {
        Ok(()) => Ok(Value::String(terms.join(" "))),
        Err((_, why)) => Err(why),
    }
}

/// Relabel rules on a journal's entries as `journal.fields` (label → field): a rule that copies one
/// `__journal_<field>` as is maps; any other is reported.
pub fn fields(rules: Vec<Rule>, report: &mut Report) -> Map<String, Value> {
    let mut fields = Map::new();
    for r in rules {
        let src = r
            .rule
            .get("source_labels")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let target = r.rule.get("target_label").and_then(s);
        let field = src
            .first()
            .and_then(s)
            .and_then(|f| f.strip_prefix("__journal_").map(|f| f.to_ascii_uppercase()));
        let plain = r.rule.get("regex").is_none() && r.rule.get("replacement").is_none() && src.len() == 1;
        match (field, target, plain) {
            (Some(f), Some(t), true) => {
                report.mapped(r.line, r.what, format!("journal.fields.{t}: {f}"));
                fields.insert(t, f.into());
            }
            _ => report.unsupported(
                r.line,
                r.what,
                "journal entries are labelled by journal.fields (label → field) only",
            ),
        }
    }
    fields
}
