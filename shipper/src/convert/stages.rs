//! Pipeline stages, from Promtail's YAML (`- json: {...}`) or Alloy's `stage.*` blocks, into
//! ours. Our stages take Promtail's shape, so a stage that deserializes into [`StageConfig`] is
//! carried as written; the rest are built in (CRI and docker parsing) or reported.

use super::report::Report;
use crate::config::StageConfig;
use crate::process::config::GeoipDbType;
use crate::process::geoip::{fields, GeoipStage};
use serde_json::{Map, Value};

/// What lowering a list of stages gave: ours, and the label names they set.
#[derive(Default, Clone)]
pub struct Stages {
    pub stages: Vec<Value>,
    pub labels: Vec<String>,
    /// A `cri` or `docker` stage was given: lines are parsed (built in) and `stream` is a label.
    pub parsed: bool,
    /// Stages as Promtail runs them: its `geoip` sets labels, where Alloy's (and ours) sets
    /// extracted values.
    pub promtail: bool,
}

impl Stages {
    /// One stage, `name` as Promtail spells it and its settings. `what` names it in the report.
    pub fn push(&mut self, name: &str, mut settings: Value, line: Option<u32>, what: &str, report: &mut Report) {
        match name {
            "cri" | "docker" => {
                self.parsed = true;
                self.labels.push("stream".into());
                report.built_in(
                    line,
                    what,
                    format!("each file's format (CRI or docker) is detected and parsed; `stream` is a label as with `{name}`"),
                );
                return;
            }
            "match" => {
                // Its own stages are lowered (and reported) one by one, as the target's are.
                let mut inner = Stages {
                    promtail: self.promtail,
                    ..Stages::default()
                };
                let own = settings.get("stages").and_then(Value::as_array).cloned();
                for (j, stage) in own.into_iter().flatten().enumerate() {
                    if let Some((n, v)) = stage.as_object().and_then(|o| o.iter().next()) {
                        inner.push(n, v.clone(), line, &format!("{what} stages[{j}] {n}"), report);
                    }
                }
                self.labels.append(&mut inner.labels);
                self.parsed |= inner.parsed;
                let drops = settings.get("action").and_then(Value::as_str) == Some("drop");
                if inner.stages.is_empty() && !drops {
                    match inner.parsed {
                        true => report.built_in(line, what, "its stages parse the file's format, which is built in"),
                        false => {
                            report.unsupported(line, what, "none of its stages is in shipper: the match is left out")
                        }
                    }
                    return;
                }
                if let Some(m) = settings.as_object_mut() {
                    if inner.stages.is_empty() {
                        m.remove("stages");
                    } else {
                        m.insert("stages".into(), Value::Array(inner.stages));
                    }
                }
            }
            // Promtail loads a geoip stage without `source` (db and db_type given) and looks
            // nothing up with it: every line passes unchanged. So it is left out, as not needed.
            "geoip" if self.promtail && no_source_lookup(&settings) => {
                report.not_needed(
                    line,
                    what,
                    "without `source` Promtail's geoip stage looks nothing up (every line passes unchanged): left out",
                );
                return;
            }
            "labeldrop"
            | "labelallow"
            | "labels"
            | "static_labels"
            | "structured_metadata"
            | "json"
            | "logfmt"
            | "regex"
            | "timestamp"
            | "output"
            | "tenant"
            | "drop"
            | "keep"
            | "multiline"
            | "limit"
            | "pack"
            | "decolorize"
            | "sampling"
            | "template"
            | "replace"
            | "secretfilter"
            | "geoip" => {}
            "metrics" => {
                // Without a prefix Promtail names them promtail_custom_*: keep the names dashboards use.
                for m in settings.as_object_mut().into_iter().flat_map(|m| m.values_mut()) {
                    if let Some(m) = m.as_object_mut() {
                        m.entry("prefix").or_insert_with(|| "promtail_custom_".into());
                    }
                }
            }
            other => {
                report.unsupported(
                    line,
                    what,
                    format!("shipper has no `{other}` stage; lines pass without it"),
                );
                return;
            }
        }
        let stage = Value::Object(Map::from_iter([(name.to_string(), settings)]));
        let parsed = serde_json::from_value::<StageConfig>(stage.clone()).map_err(|e| e.to_string());
        // Settings the stage would refuse at start are reported here, not written.
        let compiled = parsed.and_then(|p| {
            if let StageConfig::Geoip(c) = &p {
                GeoipStage::check(c, "geoip")?;
            }
            let mut offline = vec![p.clone()];
            without_geoip(&mut offline);
            let limits = crate::config::LabelLimits::default();
            let keyed: Vec<(String, &StageConfig)> = offline.iter().map(|s| (String::new(), s)).collect();
            crate::process::pipeline::Pipeline::new(&keyed, &limits, 1 << 20, &Default::default()).map(|_| p)
        });
        match compiled {
            Ok(StageConfig::Geoip(c)) => {
                self.stages.push(stage);
                let db = format!("the database is read from {} on each node", c.db);
                match c.db_type.filter(|_| self.promtail) {
                    Some(t) => {
                        // Promtail's fields (Alloy's less the city database's country code), as labels.
                        let names: Vec<&str> = fields(t)
                            .iter()
                            .copied()
                            .filter(|f| t != GeoipDbType::City || *f != "geoip_country_code")
                            .collect();
                        let set = names.iter().map(|n| (n.to_string(), Value::from("")));
                        let labels = Map::from_iter([("labels".to_string(), Value::Object(Map::from_iter(set)))]);
                        self.stages.push(Value::Object(labels));
                        self.labels.extend(names.iter().map(|n| n.to_string()));
                        report.mapped(
                            line,
                            what,
                            format!(
                                "pipeline_stages `geoip` and `labels` {}: Promtail's geoip sets them as labels; {db}",
                                names.join(", ")
                            ),
                        );
                    }
                    None => report.mapped(line, what, format!("pipeline_stages `geoip`: {db}")),
                }
            }
            Ok(parsed) => {
                match &parsed {
                    StageConfig::Labels(m) | StageConfig::StaticLabels(m) => self.labels.extend(m.keys().cloned()),
                    _ => {}
                }
                self.stages.push(stage);
                report.mapped(line, what, format!("pipeline_stages `{name}`"));
            }
            Err(e) => report.unsupported(
                line,
                what,
                format!("its settings do not fit shipper's `{name}` stage: {e}"),
            ),
        }
    }
}

/// A Promtail geoip stage that loads (`db` and `db_type` given) but has no `source`.
fn no_source_lookup(settings: &Value) -> bool {
    let given = |k: &str| settings.get(k).and_then(Value::as_str).is_some_and(|v| !v.is_empty());
    settings.get("source").is_none_or(Value::is_null) && given("db") && given("db_type")
}

/// `stages` without their `geoip` stages (in `match` and `branches` too): those read their
/// database on the nodes, not where the config is converted, and their settings were checked
/// when they were lowered.
pub fn without_geoip(stages: &mut Vec<StageConfig>) {
    stages.retain(|s| !matches!(s, StageConfig::Geoip(_)));
    for s in stages {
        match s {
            StageConfig::Match(m) => without_geoip(&mut m.stages),
            StageConfig::Branches(b) => b.iter_mut().for_each(|b| without_geoip(&mut b.stages)),
            _ => {}
        }
    }
}

#[cfg(test)]
#[path = "stages_tests.rs"]
mod tests;
