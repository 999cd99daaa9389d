//! The ends of an Alloy graph: `loki.source.journal` (with its `loki.relabel` rules) and the
//! `loki.write` components reached, whose endpoints become our clients.

use super::super::journal;
use super::super::k8s::Rule;
use super::super::out::Out;
use super::super::report::Report;
use super::super::stages::Stages;
use super::attrs::{attrs, component, err, line};
use super::eval::eval;
use super::lower::Graph;
use super::{Block, Error, Item};
use serde_json::{Map, Value};

impl Graph<'_> {
    pub(super) fn journal(
        &mut self,
        src: &Block,
        what: &str,
        stages: Stages,
        out: &mut Out,
        report: &mut Report,
    ) -> Result<(), Error> {
        let mut j = Map::new();
        for i in &src.body.items {
            let Item::Attr(a) = i else { continue };
            match a.name.as_str() {
                "forward_to" => {}
                "matches" => match eval(&a.value).and_then(|v| journal::matches(&v)) {
                    Ok(v) => {
                        // After the units a keep rule of relabel_rules names, if it came first.
                        let before = j.get("matches").and_then(Value::as_str).unwrap_or_default();
                        let all = format!("{before} {}", v.as_str().unwrap_or_default());
                        j.insert(a.name.clone(), all.trim().into());
                        report.mapped(line(a.pos), format!("{what} matches"), "journal.matches");
                    }
                    Err(why) => report.unsupported(line(a.pos), format!("{what} matches"), why),
                },
                "max_age" | "path" | "labels" => match eval(&a.value) {
                    Ok(v) => {
                        j.insert(a.name.clone(), v);
                        report.mapped(line(a.pos), format!("{what} {}", a.name), format!("journal.{}", a.name));
                    }
                    Err(why) => report.unsupported(line(a.pos), format!("{what} {}", a.name), why),
                },
                "relabel_rules" => {
                    let comp = component(&a.value)
                        .ok_or_else(|| err(a.pos, "relabel_rules must name a loki.relabel's rules"))?;
                    let b = self.get(&comp, a.pos, "relabel_rules")?;
                    self.used.insert(comp.clone());
                    let rules = b
                        .body
                        .blocks("rule")
                        .map(|r| {
                            let m = attrs(&r.body, "loki.relabel rule", report);
                            let target = m.get("target_label").and_then(Value::as_str).unwrap_or("").to_string();
                            Rule {
                                line: line(r.pos),
                                what: format!("{comp} rule → {target}"),
                                rule: m,
                            }
                        })
                        .collect();
                    journal::relabel(rules, &mut j, report);
                }
                "format_as_json" => match eval(&a.value) {
                    Ok(Value::Bool(false)) => report.not_needed(
                        line(a.pos),
                        format!("{what} format_as_json = false"),
                        "each line is the entry's MESSAGE (journal.format: message, the default)",
                    ),
                    Ok(Value::Bool(true)) => {
                        j.insert("format".into(), "json".into());
                        report.mapped(line(a.pos), format!("{what} format_as_json"), "journal.format: json");
                    }
                    Ok(_) => report.unsupported(line(a.pos), format!("{what} format_as_json"), "must be true or false"),
                    Err(why) => report.unsupported(line(a.pos), format!("{what} format_as_json"), why),
                },
                other => report.unsupported(
                    line(a.pos),
                    format!("{what} {other}"),
                    "no such journal setting in shipper",
                ),
            }
        }
        j.entry("fields").or_insert_with(|| Value::Object(Map::new()));
        let mut stages = stages;
        if Self::take_clients(&mut stages.stages).is_some() {
            report.unsupported(
                line(src.pos),
                format!("{what} forward_to"),
                "journal entries go to every client: shipper routes the lines of files only",
            );
        }
        if let Some(st) = journal::stages(&stages.stages, line(src.pos), &format!("{what} stages"), report) {
            journal::push_stages(&mut j, st);
        }
        report.mapped(line(src.pos), what, "journal");
        out.journal = Some(j);
        Ok(())
    }

    /// A `loki.write`: each endpoint a client, through the Promtail client mapping.
    pub(super) fn write(&mut self, comp: &str, out: &mut Out, report: &mut Report) {
        let Some(b) = self.blocks.get(comp).copied() else { return };
        let what = format!("loki.write \"{}\"", b.label.clone().unwrap_or_default());
        let m = attrs(&b.body, &what, report);
        let external = m.get("external_labels").cloned();
        let names = self.client_names(comp);
        for (e, name) in b.body.blocks("endpoint").zip(names) {
            let mut em = attrs(&e.body, &format!("{what} endpoint"), report);
            let mut c = Map::new();
            match em.remove("retry_on_http_429") {
                Some(Value::Bool(false)) => report.unsupported(
                    line(e.pos),
                    format!("{what} endpoint retry_on_http_429"),
                    "shipper always retries a push Loki refuses with 429 (with backoff, honouring Retry-After)",
                ),
                Some(_) => report.built_in(
                    line(e.pos),
                    format!("{what} endpoint retry_on_http_429"),
                    "a push Loki refuses with 429 is retried with backoff, honouring Retry-After",
                ),
                None => {}
            }
            for (k, v) in em {
                let k = match k.as_str() {
                    "batch_wait" => "batchwait".to_string(),
                    "batch_size" => "batchsize".to_string(),
                    "remote_timeout" => "timeout".to_string(),
                    "min_backoff_period" | "max_backoff_period" | "max_backoff_retries" => {
                        let inner = match k.as_str() {
                            "min_backoff_period" => "min_period",
                            "max_backoff_period" => "max_period",
                            _ => "max_retries",
                        };
                        let b = c.entry("backoff_config").or_insert_with(|| Value::Object(Map::new()));
                        if let Value::Object(b) = b {
                            b.insert(inner.into(), v);
                        }
                        continue;
                    }
                    _ => k,
                };
                c.insert(k, v);
            }
            for inner in ["basic_auth", "tls_config"] {
                for blk in e.body.blocks(inner) {
                    let mut m = attrs(&blk.body, &format!("{what} {inner}"), report);
                    if inner == "tls_config" && m.get("insecure_skip_verify") == Some(&Value::Bool(false)) {
                        m.remove("insecure_skip_verify");
                        report.built_in(
                            line(blk.pos),
                            format!("{what} tls_config insecure_skip_verify = false"),
                            "Loki's certificate is always verified",
                        );
                    }
                    c.insert(inner.into(), Value::Object(m));
                }
            }
            if let Some(x) = &external {
                c.insert("external_labels".into(), x.clone());
            }
            crate::convert::client::client(&Value::Object(c), out.clients.len(), line(e.pos), out, report);
            if let Some(c) = out.clients.last_mut() {
                c.insert("name".into(), name.into());
            }
        }
    }
}
