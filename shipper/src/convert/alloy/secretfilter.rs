//! `loki.secretfilter` in a chain: a `secretfilter` stage at its place among the stages, with its
//! arguments where shipper's stage has them.

use super::super::report::Report;
use super::super::stages::Stages;
use super::attrs::line;
use super::eval::eval;
use super::lower::Graph;
use super::{Block, Item};
use serde_json::{Map, Value};

impl Graph<'_> {
    /// The `loki.secretfilter` `b`, met in a chain after `stages`.
    pub(super) fn chain_secretfilter(&self, b: &Block, stages: &mut Stages, report: &mut Report) {
        let what = format!("loki.secretfilter \"{}\"", b.label.clone().unwrap_or_default());
        let mut settings = Map::new();
        for item in &b.body.items {
            let Item::Attr(a) = item else { continue };
            if a.name == "forward_to" {
                continue;
            }
            let at = line(a.pos);
            let arg = format!("{what} {}", a.name);
            let value = match eval(&a.value) {
                Ok(v) => v,
                Err(why) => {
                    report.unsupported(at, arg, why);
                    continue;
                }
            };
            match a.name.as_str() {
                // Older Alloy versions take maps whose values are what counts.
                "types" | "allowlist" => {
                    let list = match value {
                        Value::Object(m) => m.into_iter().map(|(_, v)| v).collect(),
                        Value::Array(items) => items,
                        other => vec![other],
                    };
                    settings.insert(a.name.clone(), Value::Array(list));
                }
                "redact_with" | "include_generic" | "partial_mask" => {
                    settings.insert(a.name.clone(), value);
                }
                "gitleaks_config" | "config_path" => report.unsupported(
                    at,
                    arg,
                    "shipper does not read Gitleaks rule files: its built-in rules for the common token formats are used (`types` chooses among them)",
                ),
                "enable_entropy" => report.unsupported(
                    at,
                    arg,
                    "shipper's rules match by pattern only, with no entropy filter",
                ),
                "redact_percent" => report.unsupported(
                    at,
                    arg,
                    "shipper replaces the whole secret with `redact_with`'s text (or keeps its first `partial_mask` characters)",
                ),
                "origin_label" => report.not_needed(
                    at,
                    arg,
                    "shipper counts redactions by rule (shipper_pipeline_secrets_redacted_total)",
                ),
                "processing_timeout" | "drop_on_timeout" => report.not_needed(
                    at,
                    arg,
                    "shipper's rules take time linear in the line; no line waits or is dropped",
                ),
                other => report.unsupported(at, arg, format!("shipper's secretfilter stage has no `{other}`")),
            }
        }
        stages.push("secretfilter", Value::Object(settings), line(b.pos), &what, report);
    }
}

#[cfg(test)]
#[path = "secretfilter_tests.rs"]
mod tests;
