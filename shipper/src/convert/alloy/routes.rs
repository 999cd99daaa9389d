//! Where an Alloy source's lines go: each way through its `forward_to` chains ends at some
//! `loki.write`s. A source whose ways all end at every `loki.write` needs nothing; one that ends
//! at some only gets their clients (`clients:` on its targets); one fanned out to chains with
//! different stages gets a `branches` stage, the stages all chains share staying before it.

use super::super::report::Report;
use super::super::stages::Stages;
use super::attrs::line;
use super::lower::{Graph, Route};
use super::Block;
use serde_json::{json, Map, Value};

impl Graph<'_> {
    /// The names of the clients a `loki.write` becomes: its label for its first endpoint, then
    /// `<label>.2`, `<label>.3`... for more.
    pub(super) fn client_names(&self, comp: &str) -> Vec<String> {
        let Some(b) = self.blocks.get(comp) else { return Vec::new() };
        let label = b.label.clone().unwrap_or_else(|| "default".into());
        let n = b.body.blocks("endpoint").count();
        (1..=n)
            .map(|i| if i == 1 { label.clone() } else { format!("{label}.{i}") })
            .collect()
    }

    fn names(&self, writers: &[String]) -> Vec<String> {
        writers.iter().flat_map(|w| self.client_names(w)).collect()
    }

    /// A source's routes as one list of stages: the stages they share, then (when they go
    /// different ways or not to every one of `all`) a `branches` stage.
    pub(super) fn route(
        &self,
        routes: Vec<Route>,
        all: &[String],
        src: &Block,
        what: &str,
        report: &mut Report,
    ) -> Stages {
        // Ways with the same stages are one branch to all their writers.
        let mut groups: Vec<Route> = Vec::new();
        for r in routes {
            match groups.iter_mut().find(|g| g.stages.stages == r.stages.stages) {
                Some(g) => {
                    for w in r.writers {
                        if !g.writers.contains(&w) {
                            g.writers.push(w);
                        }
                    }
                }
                None => groups.push(r),
            }
        }
        let writes = |ws: &[String]| {
            ws.iter()
                .map(|w| format!("loki.write \"{}\"", w.rsplit('.').next().unwrap_or(w)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if groups.len() < 2 {
            let Some(only) = groups.pop() else { return Stages::default() };
            let mut stages = only.stages;
            if all.iter().any(|w| !only.writers.contains(w)) {
                let clients = self.names(&only.writers);
                report.mapped(
                    line(src.pos),
                    format!("{what} forward_to {}", writes(&only.writers)),
                    format!(
                        "`clients: [{}]`: its lines go to those clients only",
                        clients.join(", ")
                    ),
                );
                stages.stages.push(json!({"branches": [{"clients": clients}]}));
            }
            return stages;
        }
        let shared = groups
            .iter()
            .map(|g| &g.stages.stages)
            .fold(None::<usize>, |n, s| {
                let first = &groups[0].stages.stages;
                let common = first.iter().zip(s).take_while(|(a, b)| a == b).count();
                Some(n.map_or(common, |n| n.min(common)))
            })
            .unwrap_or(0);
        let mut out = Stages {
            stages: groups[0].stages.stages[..shared].to_vec(),
            ..Stages::default()
        };
        let mut branches = Vec::new();
        let mut multiline = false;
        for (i, g) in groups.iter().enumerate() {
            for l in &g.stages.labels {
                if !out.labels.contains(l) {
                    out.labels.push(l.clone());
                }
            }
            out.parsed |= g.stages.parsed;
            let mut own: Vec<Value> = g.stages.stages[shared..].to_vec();
            if own.iter().any(|s| s.get("multiline").is_some()) {
                if multiline {
                    own.retain(|s| s.get("multiline").is_none());
                    report.unsupported(
                        g.line,
                        format!("{what} → {} stage.multiline", writes(&g.writers)),
                        "shipper joins a file's lines in one multiline stage: this chain's is left out (its lines are joined as the first chain's are not)",
                    );
                }
                multiline = true;
            }
            let clients = self.names(&g.writers);
            report.mapped(
                g.line,
                format!("{what} → {}", writes(&g.writers)),
                format!(
                    "branches[{i}] of its stages: {} stage(s) of its own, to clients {}",
                    own.len(),
                    clients.join(", ")
                ),
            );
            branches.push(json!({"clients": clients, "stages": own}));
        }
        report.mapped(
            line(src.pos),
            format!("{what} forward_to ({} chains)", groups.len()),
            format!(
                "a last `branches` stage: every line through each chain's stages, then to its loki.write's clients ({shared} shared stage(s) before it)"
            ),
        );
        out.stages.push(json!({ "branches": branches }));
        out
    }

    /// A trailing `branches` stage with one branch and no stages of its own, taken off as the
    /// `clients` of a target.
    pub(super) fn take_clients(stages: &mut Vec<Value>) -> Option<Value> {
        let only = stages
            .last()?
            .get("branches")?
            .as_array()
            .filter(|b| b.len() == 1)?
            .first()?;
        let plain = only
            .get("stages")
            .is_none_or(|s| s.as_array().is_some_and(Vec::is_empty));
        let clients = only.get("clients").filter(|_| plain)?.clone();
        stages.pop();
        Some(clients)
    }

    /// Moves a `branches` stage to the end of the global stages (stages added after the source's,
    /// such as the last `labeldrop` of a Kubernetes setup, run before it, for all branches).
    pub(super) fn branches_last(stages: &mut Vec<Value>) {
        let branches = |s: &Value| {
            s.as_object()
                .is_some_and(|m: &Map<String, Value>| m.contains_key("branches"))
        };
        if let Some(i) = stages.iter().position(branches) {
            let b = stages.remove(i);
            stages.push(b);
        }
    }
}
