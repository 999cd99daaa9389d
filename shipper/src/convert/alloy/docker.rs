//! `loki.source.docker`: the containers' json-file logs, read from the node's disk rather than
//! through the Docker API (the same files dockerd writes).

use super::attrs::{component, line};
use super::lower::Graph;
use super::{Block, Error};
use crate::convert::out::Out;
use crate::convert::promtail::DOCKER_LOGS;
use crate::convert::report::Report;
use crate::convert::stages::Stages;
use serde_json::{Map, Value};

impl Graph<'_> {
    /// A target on dockerd's logs with the source's stages; the discovery its `targets` came
    /// from is marked used, and rules on the Docker API's `__meta_docker_*` labels are reported.
    pub(super) fn docker(
        &mut self,
        src: &Block,
        what: &str,
        stages: Stages,
        out: &mut Out,
        report: &mut Report,
    ) -> Result<(), Error> {
        let mut todo: Vec<_> = ["targets", "relabel_rules"]
            .iter()
            .filter_map(|k| src.body.attribute(k).map(|a| (a.value.clone(), a.pos)))
            .collect();
        while let Some((expr, pos)) = todo.pop() {
            let Some(comp) = component(&expr) else { continue };
            let b = self.get(&comp, pos, "targets")?;
            self.used.insert(comp.clone());
            if b.name == "discovery.relabel" {
                let api_rules = b
                    .body
                    .blocks("rule")
                    .filter(|r| format!("{:?}", r.body).contains("__meta_docker"))
                    .count();
                if api_rules > 0 {
                    report.unsupported(
                        line(b.pos),
                        format!("discovery.relabel \"{}\"", b.label.clone().unwrap_or_default()),
                        format!("{api_rules} rule(s) read the Docker API's __meta_docker_* labels; shipper reads container logs from the disk, labelled by filename"),
                    );
                }
            }
            todo.extend(b.body.attribute("targets").map(|a| (a.value.clone(), a.pos)));
        }
        let mut t = Map::new();
        t.insert("paths".into(), vec![DOCKER_LOGS].into());
        t.insert("format".into(), "auto".into());
        if !stages.stages.is_empty() {
            t.insert("pipeline_stages".into(), Value::Array(stages.stages));
        }
        out.targets.push(Value::Object(t));
        report.mapped(
            line(src.pos),
            what,
            format!(
                "targets[{}]: dockerd's json-file logs ({DOCKER_LOGS}), read from the disk",
                out.targets.len() - 1
            ),
        );
        Ok(())
    }
}
