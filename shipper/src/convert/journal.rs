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
    relabel(rules, &mut j, report);
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

/// Alloy's names of the journal's priorities, 0 to 7 (its `__journal_priority_keyword`).
const PRIORITY_KEYWORDS: [&str; 8] = ["emerg", "alert", "crit", "error", "warning", "notice", "info", "debug"];

/// Relabel rules on a journal's entries into `j` (a `journal:` section): a rule that copies one
/// `__journal_<field>` maps to `journal.fields`; `__journal_priority_keyword` to the PRIORITY field
/// and stages naming it as Alloy does; a `keep` on the unit with a list of names to
/// `journal.matches`. Any other is reported.
pub fn relabel(rules: Vec<Rule>, j: &mut Map<String, Value>, report: &mut Report) {
    let mut fields = Map::new();
    let mut stages = Vec::new();
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
            .and_then(|f| f.strip_prefix("__journal_").map(str::to_string));
        let action = r.rule.get("action").and_then(s).unwrap_or_else(|| "replace".into());
        let regex = r.rule.get("regex").and_then(s);
        let copies = action == "replace"
            && src.len() == 1
            && regex.as_deref().is_none_or(|re| re == "(.*)")
            && r.rule
                .get("replacement")
                .and_then(s)
                .as_deref()
                .is_none_or(|re| re == "$1" || re == "${1}");
        match (field.as_deref(), target, action.as_str()) {
            (Some("priority_keyword"), Some(t), _) if copies => {
                fields.insert(t.clone(), "PRIORITY".into());
                for (n, kw) in PRIORITY_KEYWORDS.iter().enumerate() {
                    let selector = format!("{{{t}=\"{n}\"}}");
                    stages.push(serde_json::json!({"match": {"selector": selector, "stages": [{"static_labels": {t.clone(): kw}}]}}));
                }
                report.mapped(
                    r.line,
                    r.what,
                    format!("journal.fields.{t}: PRIORITY, and `match` stages naming the priorities as Alloy does (emerg … debug)"),
                );
            }
            (Some(f), Some(t), _) if copies => {
                let f = f.to_ascii_uppercase();
                report.mapped(r.line, r.what, format!("journal.fields.{t}: {f}"));
                fields.insert(t, f.into());
            }
            (Some(f), None, "keep") if src.len() == 1 && units(regex.as_deref()).is_some() => {
                let f = f.to_ascii_uppercase();
                let terms: Vec<String> = units(regex.as_deref())
                    .unwrap_or_default()
                    .iter()
                    .map(|u| format!("{f}={u}"))
                    .collect();
                let existing = j.get("matches").and_then(Value::as_str).unwrap_or_default().to_string();
                if existing.contains(&format!("{f}=")) || existing.contains('+') {
                    report.unsupported(r.line, r.what, "a keep on a field the source's matches already name");
                    continue;
                }
                let all = [existing, terms.join(" ")].join(" ").trim().to_string();
                report.mapped(r.line, r.what, format!("journal.matches: {}", terms.join(" ")));
                j.insert("matches".into(), all.into());
            }
            _ => report.unsupported(
                r.line,
                r.what,
                "journal entries are labelled by journal.fields (label → field) only",
            ),
        }
    }
    // Our default fields (unit, priority, hostname) are replaced by what the source labels.
    j.insert("fields".into(), Value::Object(fields));
    if !stages.is_empty() {
        push_stages(j, Value::Array(stages));
    }
}

/// The names a regex of literal alternatives matches (`kubelet.service|containerd.service`).
fn units(regex: Option<&str>) -> Option<Vec<String>> {
    let re = regex?.trim_start_matches('(').trim_end_matches(')');
    let names: Vec<String> = re.split('|').map(|u| u.replace("\\.", ".")).collect();
    let plain = |u: &String| !u.is_empty() && u.chars().all(|c| c.is_ascii_alphanumeric() || "._@-:".contains(c));
    names.iter().all(plain).then_some(names)
}

/// Appends `stages` (a list) to the section's `pipeline_stages`.
pub fn push_stages(j: &mut Map<String, Value>, stages: Value) {
    let mut all = j
        .get("pipeline_stages")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    all.extend(stages.as_array().cloned().unwrap_or_default());
    j.insert("pipeline_stages".into(), Value::Array(all));
}

#[cfg(test)]
mod tests {
    use super::super::{convert, Source, Target};

    /// The journal part of the config Grafana's k8s-monitoring chart generates for node logs.
    #[test]
    fn relabel_rules_of_the_journal_become_fields_matches_and_priority_names() {
        let alloy = r#"
loki.relabel "journal" {
  rule {
    action = "keep"
    source_labels = ["__journal__systemd_unit"]
    regex = "kubelet.service|containerd.service"
  }
  rule {
    action = "replace"
    source_labels = ["__journal__systemd_unit"]
    replacement = "$1"
    target_label = "unit"
  }
  rule {
    action = "replace"
    source_labels = ["__journal_priority_keyword"]
    replacement = "$1"
    target_label = "level"
  }
  forward_to = []
}
loki.source.journal "worker" {
  relabel_rules = loki.relabel.journal.rules
  matches = "_TRANSPORT=journal"
  forward_to = [loki.process.p.receiver]
}
loki.process "p" {
  stage.static_labels {
    values = { source = "journal" }
  }
  forward_to = [loki.write.w.receiver]
}
loki.write "w" { endpoint { url = "http://loki:3100/loki/api/v1/push" } }
"#;
        let c = convert(Source::Alloy, Target::Config, alloy, "c.alloy").unwrap();
        assert!(c.report.complete(), "{}", c.report.render());
        let cfg = crate::config::load_str(&c.yaml, "t").unwrap();
        let j = cfg.journal.expect("journal");
        assert_eq!(j.fields.get("unit").map(String::as_str), Some("_SYSTEMD_UNIT"));
        assert_eq!(j.fields.get("level").map(String::as_str), Some("PRIORITY"));
        let yaml = serde_yaml_ng::to_string(&j.matches).unwrap();
        for term in [
            "_SYSTEMD_UNIT=kubelet.service",
            "_SYSTEMD_UNIT=containerd.service",
            "_TRANSPORT=journal",
        ] {
            assert!(yaml.contains(term), "{yaml}");
        }
        // Eight priority names, then the source's own stage.
        let names: Vec<&str> = j.pipeline_stages.iter().map(|s| s.name()).collect();
        assert_eq!(names.len(), 9, "{names:?}");
        assert_eq!(names[8], "static_labels");
        assert!(
            c.yaml.contains("'{level=\"3\"}'") || c.yaml.contains("{level=\\\"3\\\"}"),
            "{}",
            c.yaml
        );
    }
}
