//! An Alloy configuration lowered into ours by following its graph: each `loki.source.*` names
//! its targets (a `local.file_match`, a `discovery.relabel` of a `discovery.kubernetes`, or a
//! list of paths) and forwards to `loki.process` stages and `loki.write` endpoints.

use super::super::k8s::{self, Rule};
use super::super::out::Out;
use super::super::report::Report;
use super::super::stages::Stages;
use super::attrs::{attrs, component, err, line};
use super::eval::eval;
use super::{Block, Body, Error, Expr, Item, Pos};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Alloy's component namespaces: a block outside them is not Alloy's.
const NAMESPACES: &[&str] = &[
    "discovery",
    "local",
    "loki",
    "prometheus",
    "otelcol",
    "pyroscope",
    "faro",
    "mimir",
    "remote",
    "import",
    "declare",
    "argument",
    "export",
    "logging",
    "tracing",
    "livedebugging",
    "http",
    "remotecfg",
    "foreach",
    "beyla",
    "database_observability",
    "module",
    "service",
    "ui",
];

/// Components that only pass on what others send them: with nothing sending to them they do
/// nothing.
const RECEIVERS: &[&str] = &[
    "otelcol.exporter.",
    "otelcol.processor.",
    "loki.process",
    "loki.relabel",
    "loki.secretfilter",
    "loki.write",
    "loki.echo",
    "prometheus.remote_write",
    "prometheus.relabel",
];

/// One way from a source through its chains: the stages on it and the `loki.write`s it ends at.
pub(super) struct Route {
    pub stages: Stages,
    pub writers: Vec<String>,
    /// Where it reaches its `loki.write`s.
    pub line: Option<u32>,
}

pub(super) struct Graph<'a> {
    pub(super) blocks: BTreeMap<String, &'a Block>,
    pub(super) used: BTreeSet<String>,
    /// The rules of `loki.relabel` components met before any stage on the current source's path:
    /// they run with the target's relabel rules.
    pub(super) early: Vec<Rule>,
    /// Components followed from the current source (a cycle of forward_to must end).
    hops: usize,
}

fn key(b: &Block) -> String {
    match &b.label {
        Some(l) => format!("{}.{l}", b.name),
        None => b.name.clone(),
    }
}

/// Lowers a parsed file (modules it imports by a relative path are read from the directory of
/// the file, `None`: the current one).
pub fn lower(body: &Body, report: &mut Report) -> Result<Out, Error> {
    lower_in(body, None, report)
}

/// [`lower`], with `import.file` paths relative to `dir`.
pub fn lower_in(body: &Body, dir: Option<&std::path::Path>, report: &mut Report) -> Result<Out, Error> {
    let body = super::declare::expand(body, dir, report)?;
    let body = super::secrets::resolve(body, report);
    graph(&body, report)
}

fn graph(body: &Body, report: &mut Report) -> Result<Out, Error> {
    let mut g = Graph {
        blocks: BTreeMap::new(),
        used: BTreeSet::new(),
        early: Vec::new(),
        hops: 0,
    };
    for item in &body.items {
        match item {
            Item::Block(b) => {
                let ns = b.name.split('.').next().unwrap_or("");
                if !NAMESPACES.contains(&ns) {
                    return Err(err(b.pos, format!("`{}` is not an Alloy component (a typo?)", b.name)));
                }
                if g.blocks.insert(key(b), b).is_some() {
                    return Err(err(b.pos, format!("`{}` is defined twice", key(b))));
                }
            }
            Item::Attr(a) => report.unsupported(line(a.pos), a.name.clone(), "an attribute outside any component"),
        }
    }
    let mut out = Out::default();
    let mut writers: Vec<String> = Vec::new();
    let mut flows = Vec::new();
    let sources: Vec<&Block> = g
        .blocks
        .values()
        .copied()
        .filter(|b| b.name.starts_with("loki.source."))
        .collect();
    for src in sources {
        g.used.insert(key(src));
        let what = format!("{} \"{}\"", src.name, src.label.clone().unwrap_or_default());
        let fwd = src.body.attribute("forward_to");
        let Some(fwd) = fwd else {
            return Err(err(
                src.pos,
                format!("{what} has no forward_to: its lines would go nowhere"),
            ));
        };
        g.early.clear();
        g.hops = 0;
        let mut routes = Vec::new();
        g.follow(&fwd.value, fwd.pos, Stages::default(), &mut routes, report)?;
        for w in routes.iter().flat_map(|r| &r.writers) {
            if !writers.contains(w) {
                writers.push(w.clone());
            }
        }
        flows.push((src, what, routes));
    }
    for (src, what, routes) in flows {
        let stages = g.route(routes, &writers, src, &what, report);
        match src.name.as_str() {
            "loki.source.file" | "loki.source.kubernetes" => g.files(src, &what, stages, &mut out, report)?,
            "loki.source.journal" => {
                for r in std::mem::take(&mut g.early) {
                    report.unsupported(
                        r.line,
                        r.what,
                        "a loki.relabel after loki.source.journal: shipper labels journal entries by journal.fields only; give the rules as the source's relabel_rules",
                    );
                }
                g.journal(src, &what, stages, &mut out, report)?
            }
            "loki.source.docker" => g.docker(src, &what, stages, &mut out, report)?,
            other => match crate::convert::scope::alloy(other) {
                Some(kind) => report.unsupported(line(src.pos), what, crate::convert::scope::why(kind, "Alloy")),
                None => report.unsupported(line(src.pos), what, "shipper reads files and the journal only"),
            },
        }
    }
    Graph::branches_last(&mut out.pipeline_stages);
    k8s::note_mixed(&mut out, report);
    for w in &writers {
        g.write(w, &mut out, report);
    }
    if writers.is_empty() {
        report.unsupported(
            None,
            "loki.write",
            "no loki.write is reached: the config writes to the default Loki URL",
        );
    }
    if let Some(b) = g.blocks.get("logging") {
        g.used.insert("logging".into());
        let m = attrs(&b.body, "logging", report);
        if let Some(level) = m.get("level") {
            out.server.insert("log_level".into(), level.clone());
            report.mapped(line(b.pos), "logging.level", "server.log_level");
        }
        if let Some(f) = m.get("format").and_then(Value::as_str) {
            out.server
                .insert("log_format".into(), if f == "json" { "json" } else { "text" }.into());
            report.mapped(line(b.pos), "logging.format", "server.log_format");
        }
    }
    for (k, b) in &g.blocks {
        if !g.used.contains(k) {
            let mut parts: Vec<String> = b.name.split('.').map(str::to_string).collect();
            parts.extend(b.label.clone());
            let receives = RECEIVERS.iter().any(|r| b.name.starts_with(r));
            if receives && !super::rewrite::body_refers_to(body, &parts) {
                report.not_needed(
                    line(b.pos),
                    format!("{} \"{}\"", b.name, b.label.clone().unwrap_or_default()),
                    "nothing sends to it",
                );
                continue;
            }
            let what = format!("{} \"{}\"", b.name, b.label.clone().unwrap_or_default());
            if b.name == "livedebugging" {
                report.not_needed(line(b.pos), what, "shipper's own /metrics and logs tell what it does");
            } else if b.name.starts_with("discovery.") {
                // Discovery by itself ships nothing; what reads it is reported on its own.
                report.not_needed(line(b.pos), what, "no converted log source reads it");
            } else if let Some(kind) = crate::convert::scope::alloy(&b.name) {
                report.unsupported(line(b.pos), what, crate::convert::scope::why(kind, "Alloy"));
            } else {
                report.unsupported(
                    line(b.pos),
                    what,
                    "not on the path of any loki.source.* to a loki.write: not converted",
                );
            }
        }
    }
    Ok(out)
}

impl<'a> Graph<'a> {
    pub(super) fn get(&self, comp: &str, pos: Pos, what: &str) -> Result<&'a Block, Error> {
        self.blocks
            .get(comp)
            .copied()
            .ok_or_else(|| err(pos, format!("{what} names `{comp}`, which is not defined in this file")))
    }

    /// Follows a `forward_to` list: on each way through it, the stages of the `loki.process`
    /// components in order, up to the `loki.write` components it ends at (a route each).
    fn follow(
        &mut self,
        fwd: &Expr,
        pos: Pos,
        stages: Stages,
        routes: &mut Vec<Route>,
        report: &mut Report,
    ) -> Result<(), Error> {
        let Expr::Array(items) = fwd else {
            return Err(err(
                pos,
                "forward_to must be a list of receivers, e.g. [loki.write.default.receiver]",
            ));
        };
        if items.is_empty() {
            return Err(err(pos, "forward_to is empty: the lines would go nowhere"));
        }
        self.hops += 1;
        if self.hops > 64 {
            return Err(err(
                pos,
                "forward_to leads back to a component already on the path (a cycle)",
            ));
        }
        for item in items {
            let comp = component(item).ok_or_else(|| err(pos, "forward_to holds something that is not a receiver"))?;
            let b = self.get(&comp, pos, "forward_to")?;
            self.used.insert(comp.clone());
            let mut stages = stages.clone();
            match b.name.as_str() {
                "loki.write" => {
                    routes.push(Route {
                        stages,
                        writers: vec![comp],
                        line: line(pos),
                    });
                    continue;
                }
                "loki.process" => {
                    for i in &b.body.items {
                        match i {
                            Item::Block(s) if s.name.starts_with("stage.") => self.stage(s, &mut stages, report),
                            Item::Block(s) => {
                                report.unsupported(line(s.pos), format!("loki.process {}", s.name), "not a stage")
                            }
                            Item::Attr(_) => {}
                        }
                    }
                }
                "loki.relabel" => self.chain_relabel(b, &comp, &mut stages, report),
                "loki.secretfilter" => self.chain_secretfilter(b, &mut stages, report),
                other => {
                    report.unsupported(
                        line(pos),
                        format!("forward_to {comp}"),
                        format!("`{other}` is not carried (only loki.process, loki.relabel, loki.secretfilter and loki.write are): lines go on without it"),
                    );
                    // What it forwards to still gets the lines.
                    if b.body.attribute("forward_to").is_none() {
                        continue;
                    }
                }
            }
            let Some(next) = b.body.attribute("forward_to") else {
                return Err(err(
                    b.pos,
                    format!("{comp} has no forward_to: its lines would go nowhere"),
                ));
            };
            self.follow(&next.value, next.pos, stages, routes, report)?;
        }
        Ok(())
    }

    /// One `stage.*` block as a Promtail-shaped stage.
    fn stage(&self, s: &Block, stages: &mut Stages, report: &mut Report) {
        let what = format!("loki.process {}", s.name);
        let (name, settings) = self.shape(s, &what, report);
        stages.push(name, settings, line(s.pos), &what, report);
    }

    /// A `stage.*` block's Promtail name and settings; a `stage.match`'s own stages under `stages`.
    fn shape<'s>(&self, s: &'s Block, what: &str, report: &mut Report) -> (&'s str, Value) {
        let mut m = attrs(&s.body, what, report);
        if s.name == "stage.match" {
            let nested: Vec<Value> = s
                .body
                .items
                .iter()
                .filter_map(|i| match i {
                    Item::Block(b) if b.name.starts_with("stage.") => {
                        let (name, settings) = self.shape(b, what, report);
                        Some(Value::Object(Map::from_iter([(name.to_string(), settings)])))
                    }
                    _ => None,
                })
                .collect();
            if !nested.is_empty() {
                m.insert("stages".into(), Value::Array(nested));
            }
        }
        let values = |m: &mut Map<String, Value>| m.remove("values").unwrap_or(Value::Null);
        match s.name.as_str() {
            "stage.cri" => ("cri", Value::Object(m)),
            "stage.docker" => ("docker", Value::Object(m)),
            "stage.json" => ("json", Value::Object(m)),
            "stage.logfmt" => ("logfmt", Value::Object(m)),
            "stage.regex" => ("regex", Value::Object(m)),
            "stage.labels" => ("labels", values(&mut m)),
            "stage.static_labels" => ("static_labels", values(&mut m)),
            "stage.structured_metadata" => ("structured_metadata", values(&mut m)),
            "stage.label_drop" => ("labeldrop", values(&mut m)),
            "stage.label_keep" => ("labelallow", values(&mut m)),
            "stage.timestamp" => ("timestamp", Value::Object(m)),
            "stage.output" => ("output", Value::Object(m)),
            "stage.tenant" => ("tenant", Value::Object(m)),
            "stage.drop" => ("drop", Value::Object(m)),
            "stage.multiline" => ("multiline", Value::Object(m)),
            "stage.limit" => ("limit", Value::Object(m)),
            "stage.match" => ("match", Value::Object(m)),
            "stage.metrics" => ("metrics", super::metrics::shape(s, what, report)),
            other => (other.trim_start_matches("stage."), Value::Object(m)),
        }
    }

    /// `loki.source.file` / `loki.source.kubernetes`: its targets, Kubernetes or static.
    fn files(
        &mut self,
        src: &Block,
        what: &str,
        mut stages: Stages,
        out: &mut Out,
        report: &mut Report,
    ) -> Result<(), Error> {
        let targets = src.body.attribute("targets");
        let Some(targets) = targets else {
            return Err(err(src.pos, format!("{what} has no targets")));
        };
        for i in &src.body.items {
            if let Item::Attr(a) = i {
                match a.name.as_str() {
                    "targets" | "forward_to" => {}
                    "tail_from_end" => {
                        if eval(&a.value) == Ok(Value::Bool(true)) {
                            out.tail.insert("start_at".into(), "end".into());
                            report.mapped(line(a.pos), format!("{what} tail_from_end"), "tail.start_at: end");
                        }
                    }
                    other => report.unsupported(
                        line(a.pos),
                        format!("{what} {other}"),
                        "no such setting for shipper's files",
                    ),
                }
            }
        }
        if src.name == "loki.source.kubernetes" {
            report.mapped(
                line(src.pos),
                what,
                "discovery: kubernetes, reading kubelet's log files instead of the API server's log endpoint",
            );
        } else {
            report.mapped(line(src.pos), what, "the files of its targets");
        }
        let mut expr = &targets.value;
        let mut pos = targets.pos;
        // Through local.file_match to what gives the paths.
        while let Some(comp) = component(expr) {
            let b = self.get(&comp, pos, "targets")?;
            self.used.insert(comp.clone());
            match b.name.as_str() {
                "local.file_match" => {
                    let a = b.body.attribute("path_targets");
                    let Some(a) = a else {
                        return Err(err(b.pos, format!("{comp} has no path_targets")));
                    };
                    report.built_in(
                        line(b.pos),
                        format!("local.file_match \"{}\"", b.label.clone().unwrap_or_default()),
                        "globs are expanded again on every file event and rescan",
                    );
                    expr = &a.value;
                    pos = a.pos;
                }
                "discovery.relabel" => {
                    let via_api = src.name == "loki.source.kubernetes";
                    return self.kubernetes(b, &comp, stages, via_api, out, report);
                }
                "discovery.kubernetes" => {
                    self.discovery(b, out, report);
                    let via_api = src.name == "loki.source.kubernetes";
                    let mut set = k8s::lower_rules(std::mem::take(&mut self.early), out, report);
                    set.extend(stages.labels.iter().cloned());
                    if !via_api {
                        set.push("filename".into());
                    }
                    out.pipeline_stages.append(&mut stages.stages);
                    k8s::drop_unset(&set, stages.parsed || via_api, out, report);
                    return Ok(());
                }
                other => {
                    report.unsupported(
                        line(b.pos),
                        format!("{other} \"{}\"", b.label.clone().unwrap_or_default()),
                        "not a source of file targets shipper knows",
                    );
                    return Ok(());
                }
            }
        }
        let clients = Self::take_clients(&mut stages.stages);
        let list = eval(expr).map_err(|why| err(pos, format!("the targets: {why}")))?;
        for t in list.as_array().into_iter().flatten() {
            let Some(path) = t.get("__path__").and_then(Value::as_str) else {
                report.unsupported(line(pos), "a target without __path__", "no files to tail");
                continue;
            };
            let mut target = Map::new();
            target.insert("paths".into(), vec![path.to_string()].into());
            if let Some(ex) = t.get("__path_exclude__").and_then(Value::as_str) {
                target.insert("exclude".into(), vec![ex.to_string()].into());
            }
            let labels: Map<String, Value> = t
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| !k.starts_with("__"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            target.insert("labels".into(), Value::Object(labels));
            target.insert("format".into(), if stages.parsed { "auto" } else { "raw" }.into());
            if !self.early.is_empty() {
                let rules: Vec<Value> = self.early.iter().map(|r| Value::Object(r.rule.clone())).collect();
                target.insert("relabel_configs".into(), rules.into());
            }
            if !stages.stages.is_empty() {
                target.insert("pipeline_stages".into(), stages.stages.clone().into());
            }
            if let Some(c) = &clients {
                target.insert("clients".into(), c.clone());
            }
            out.targets.push(Value::Object(target));
            for r in &self.early {
                report.mapped(
                    r.line,
                    r.what.clone(),
                    format!("targets[{}].relabel_configs", out.targets.len() - 1),
                );
            }
            report.mapped(
                line(pos),
                format!("target {path}"),
                format!("targets[{}]", out.targets.len() - 1),
            );
        }
        Ok(())
    }

    /// A `discovery.relabel` whose targets come from `discovery.kubernetes`.
    fn kubernetes(
        &mut self,
        relabel: &'a Block,
        comp: &str,
        mut stages: Stages,
        via_api: bool,
        out: &mut Out,
        report: &mut Report,
    ) -> Result<(), Error> {
        // Back through chained discovery.relabel components to discovery.kubernetes; their rules
        // run first to last.
        let mut chain = vec![(relabel, comp.to_string())];
        let d = loop {
            let (last, name) = chain.last().expect("not empty");
            let Some(targets) = last.body.attribute("targets") else {
                return Err(err(last.pos, format!("{name} has no targets")));
            };
            let from =
                component(&targets.value).ok_or_else(|| err(targets.pos, "targets must name a discovery component"))?;
            let d = self.get(&from, targets.pos, "targets")?;
            self.used.insert(from.clone());
            match d.name.as_str() {
                "discovery.kubernetes" => break d,
                "discovery.relabel" if chain.len() < 16 => chain.push((d, from)),
                _ => {
                    report.unsupported(line(d.pos), from, "shipper discovers Kubernetes pods only");
                    return Ok(());
                }
            }
        };
        self.discovery(d, out, report);
        let mut rules = Vec::new();
        for (relabel, _) in chain.iter().rev() {
            rules.extend(self.rules_of(relabel, report));
        }
        rules.append(&mut self.early);
        let mut set = k8s::lower_rules(rules, out, report);
        set.extend(stages.labels.iter().cloned());
        if !via_api {
            set.push("filename".into());
        }
        out.pipeline_stages.append(&mut stages.stages);
        // The API server's log endpoint serves the message alone, as our parsing does.
        k8s::drop_unset(&set, stages.parsed || via_api, out, report);
        Ok(())
    }

    /// The `rule` blocks of a relabel component, in Prometheus' keys.
    pub(super) fn rules_of(&self, b: &Block, report: &mut Report) -> Vec<Rule> {
        let name = format!("{} \"{}\"", b.name, b.label.clone().unwrap_or_default());
        b.body
            .blocks("rule")
            .map(|r| {
                let m = attrs(&r.body, &format!("{name} rule"), report);
                let target = m
                    .get("target_label")
                    .and_then(Value::as_str)
                    .map(|t| format!(" → {t}"))
                    .unwrap_or_default();
                Rule {
                    line: line(r.pos),
                    what: format!("{name} rule{target}"),
                    rule: m,
                }
            })
            .collect()
    }
}
