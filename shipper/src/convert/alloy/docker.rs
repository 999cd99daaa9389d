//! `loki.source.docker`: the containers' json-file logs, read from the node's disk rather than
//! through the Docker API (the same files dockerd writes), with `path_labels: docker`. The rules
//! of the `discovery.relabel`s its `targets` come through, then its `relabel_rules`, become the
//! target's relabel rules (see [`crate::convert::docker`]).

use super::attrs::{component, line};
use super::eval::eval;
use super::lower::Graph;
use super::{Block, Error};
use crate::convert::docker;
use crate::convert::out::Out;
use crate::convert::report::Report;
use crate::convert::stages::Stages;
use serde_json::Value;

impl Graph<'_> {
    /// A target on dockerd's logs with the source's rules and stages; the discovery its
    /// `targets` come from is marked used.
    pub(super) fn docker(
        &mut self,
        src: &Block,
        what: &str,
        mut stages: Stages,
        out: &mut Out,
        report: &mut Report,
    ) -> Result<(), Error> {
        // Back through chained discovery.relabel components: their rules run first to last.
        let mut chain = Vec::new();
        let mut next = src.body.attribute("targets").map(|a| (a.value.clone(), a.pos));
        while let Some((expr, pos)) = next.take() {
            let Some(comp) = component(&expr) else { break };
            let b = self.get(&comp, pos, "targets")?;
            self.used.insert(comp);
            if b.name == "discovery.relabel" && chain.len() < 16 {
                chain.push(b);
                next = b.body.attribute("targets").map(|a| (a.value.clone(), a.pos));
            } else if b.name == "discovery.docker" {
                for f in b.body.blocks("filter") {
                    let what = format!("discovery.docker \"{}\" filter", b.label.clone().unwrap_or_default());
                    docker::filters(line(f.pos), what, report);
                }
            }
        }
        let mut rules = Vec::new();
        for b in chain.iter().rev() {
            rules.extend(self.rules_of(b, report));
        }
        // `relabel_rules = discovery.relabel.x.rules`: x's rules alone (not its targets).
        if let Some(a) = src.body.attribute("relabel_rules") {
            if let Some(comp) = component(&a.value) {
                let b = self.get(&comp, a.pos, "relabel_rules")?;
                self.used.insert(comp);
                rules.extend(self.rules_of(b, report));
            }
        }
        // loki.relabel rules before any stage read the entries' labels, which the target's
        // rules have made by then.
        rules.append(&mut self.early);
        let clients = Self::take_clients(&mut stages.stages);
        let rules = docker::lower(rules, &mut stages, report);
        Self::branches_last(&mut stages.stages);
        let mut t = docker::target();
        // Its default labels, which its rules see (a target's labels, in ours).
        if let Some(a) = src.body.attribute("labels") {
            match eval(&a.value) {
                Ok(Value::Object(labels)) => {
                    t.insert("labels".into(), Value::Object(labels));
                    report.mapped(line(a.pos), format!("{what} labels"), "the target's labels");
                }
                Ok(_) => report.unsupported(
                    line(a.pos),
                    format!("{what} labels"),
                    "not a map of label names to values",
                ),
                Err(why) => report.unsupported(line(a.pos), format!("{what} labels"), why),
            }
        }
        if !rules.is_empty() {
            let rs: Vec<Value> = rules.iter().map(|r| Value::Object(r.rule.clone())).collect();
            t.insert("relabel_configs".into(), rs.into());
        }
        if !stages.stages.is_empty() {
            t.insert("pipeline_stages".into(), Value::Array(stages.stages));
        }
        if let Some(c) = clients {
            t.insert("clients".into(), c);
        }
        out.targets.push(Value::Object(t));
        let at = format!("targets[{}]", out.targets.len() - 1);
        for r in rules {
            report.mapped(r.line, r.what, format!("{at}.relabel_configs"));
        }
        report.mapped(
            line(src.pos),
            what,
            format!(
                "{at}: dockerd's json-file logs ({}), read from the disk (path_labels: docker)",
                docker::DOCKER_LOGS
            ),
        );
        Ok(())
    }
}
