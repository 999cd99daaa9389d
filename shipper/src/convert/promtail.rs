//! A Promtail `config.yaml` lowered into ours: `server`, `positions`, `clients`, `scrape_configs`
//! (Kubernetes pods, static files, the journal) with their relabel rules and stages.

use super::client::client;
use super::k8s::{self, Rule};
use super::out::s;
use super::out::{keep_env_refs, Out};
use super::report::Report;
use super::stages::Stages;
use serde_json::{Map, Value};

/// Lines of the source, to give each construct a line in the report.
struct Lines<'a> {
    lines: Vec<&'a str>,
}

impl Lines<'_> {
    /// The first line at or after `from` (1-based) whose text, trimmed of `- `, starts with `key:`.
    fn find(&self, key: &str, from: u32) -> Option<u32> {
        let start = from.saturating_sub(1) as usize;
        self.lines.iter().enumerate().skip(start).find_map(|(i, l)| {
            let t = l.trim_start().trim_start_matches("- ").trim_start();
            (t.starts_with(key) && t[key.len()..].trim_start().starts_with(':')).then_some(i as u32 + 1)
        })
    }
}

fn obj(v: &Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

pub fn lower(text: &str, report: &mut Report) -> Result<Out, String> {
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(|e| format!("not a YAML document: {e}"))?;
    let mut root: Value = serde_json::to_value(&yaml).map_err(|e| format!("not a Promtail config: {e}"))?;
    keep_env_refs(&mut root);
    let Some(root) = root.as_object() else {
        return Err("not a Promtail config: the document is not a map of sections".into());
    };
    let lines = Lines {
        lines: text.lines().collect(),
    };
    let mut out = Out::default();
    for (key, value) in root {
        let line = lines.find(key, 1);
        match key.as_str() {
            "server" => server(value, line, &lines, &mut out, report),
            "positions" => positions(value, line, &lines, &mut out, report),
            "clients" => {
                for (i, c) in value.as_array().into_iter().flatten().enumerate() {
                    let at = lines.find("url", line.unwrap_or(1));
                    client(c, i, at, &mut out, report);
                }
            }
            "client" => client(value, 0, line, &mut out, report),
            "scrape_configs" => {
                let mut from = line.unwrap_or(1);
                for (i, job) in value.as_array().into_iter().flatten().enumerate() {
                    let at = lines.find("job_name", from);
                    from = at.map_or(from, |l| l + 1);
                    scrape(job, i, at, &lines, &mut out, report);
                }
            }
            "target_config" => {
                if let Some(p) = value.get("sync_period").and_then(s) {
                    out.tail.insert("rescan_interval".into(), p.into());
                    report.mapped(line, "target_config.sync_period", "tail.rescan_interval");
                }
            }
            "limits_config" if value.as_object().is_none_or(|m| m.is_empty()) => {
                report.not_needed(line, "limits_config", "empty")
            }
            "limits_config" => report.unsupported(
                line,
                "limits_config",
                "shipper limits per stream with a `limit` stage (`pipeline_stages: [{limit: {rate: N}}]`)",
            ),
            "tracing" | "options" | "global" => report.not_needed(line, key.as_str(), "no such setting in shipper"),
            other => report.unsupported(line, other, "not a Promtail section shipper knows"),
        }
    }
    k8s::note_mixed(&mut out, report);
    Ok(out)
}

fn server(v: &Value, line: Option<u32>, lines: &Lines, out: &mut Out, report: &mut Report) {
    let from = line.unwrap_or(1);
    for (k, val) in v.as_object().into_iter().flatten() {
        let at = lines.find(k, from);
        match k.as_str() {
            "http_listen_port" => {
                let addr = v
                    .get("http_listen_address")
                    .and_then(s)
                    .unwrap_or_else(|| "0.0.0.0".into());
                let port = s(val).unwrap_or_default();
                out.server.insert("http_listen".into(), format!("{addr}:{port}").into());
                report.mapped(at, "server.http_listen_port", "server.http_listen");
            }
            "http_listen_address" => {}
            "log_level" => {
                out.server.insert("log_level".into(), val.clone());
                report.mapped(at, "server.log_level", "server.log_level");
            }
            "log_format" => {
                let json = val.as_str() == Some("json");
                out.server
                    .insert("log_format".into(), if json { "json" } else { "text" }.into());
                report.mapped(at, "server.log_format", "server.log_format");
            }
            "grpc_listen_port"
            | "grpc_listen_address"
            | "register_instrumentation"
            | "enable_runtime_reload"
            | "health_check_target"
            | "disable" => report.not_needed(
                at,
                format!("server.{k}"),
                "shipper serves /metrics, /ready and /reload on server.http_listen, with no gRPC",
            ),
            other => report.unsupported(at, format!("server.{other}"), "no such server setting in shipper"),
        }
    }
}

fn positions(v: &Value, line: Option<u32>, lines: &Lines, out: &mut Out, report: &mut Report) {
    let from = line.unwrap_or(1);
    for (k, val) in v.as_object().into_iter().flatten() {
        let at = lines.find(k, from);
        match k.as_str() {
            "filename" => {
                // Promtail's file (YAML, path → offset) is not ours: given to shipper it would be set
                // aside as corrupt and every file read again. Ours goes beside it, on the same volume.
                let theirs = val.as_str().unwrap_or_default();
                let dir = std::path::Path::new(theirs)
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty());
                let ours = dir.map_or("shipper-positions.json".into(), |d| {
                    d.join("shipper-positions.json").display().to_string()
                });
                out.positions.insert(k.clone(), Value::from(ours.clone()));
                if theirs.starts_with('/') {
                    // At its first start shipper takes over Promtail's offsets: no gap, no duplicates.
                    out.positions
                        .insert("import_from".into(), Value::from(format!("promtail:{theirs}")));
                    report.mapped(
                        at,
                        "positions.filename",
                        format!(
                            "positions.filename {ours}, beside Promtail's (its format is not shipper's), and \
                             positions.import_from promtail:{theirs}: at its first start shipper resumes each \
                             file where Promtail stopped (stop Promtail first)"
                        ),
                    );
                } else {
                    report.mapped(
                        at,
                        "positions.filename",
                        format!(
                            "positions.filename {ours}, beside Promtail's (its format is not shipper's; \
                             files seen again start at their beginning unless untouched for tail.start_at_max_age)"
                        ),
                    );
                }
            }
            "sync_period" => {
                out.positions.insert(k.clone(), val.clone());
                report.mapped(at, "positions.sync_period", "positions.sync_period");
            }
            "ignore_invalid_yaml" => report.built_in(
                at,
                "positions.ignore_invalid_yaml",
                "a corrupt positions file is replaced by its backup, or the agent starts over, counted",
            ),
            other => report.unsupported(at, format!("positions.{other}"), "no such positions setting in shipper"),
        }
    }
}

fn scrape(job: &Value, i: usize, line: Option<u32>, lines: &Lines, out: &mut Out, report: &mut Report) {
    let name = job.get("job_name").and_then(s).unwrap_or_else(|| format!("#{i}"));
    let from = line.unwrap_or(1);
    let mut stages = Stages {
        promtail: true,
        ..Stages::default()
    };
    // What became of the stages is told only if the job is converted (into targets, or the
    // journal's): a job that is not says so on its own line.
    let mut stage_notes = Report::new("");
    let notes_at = report.notes.len();
    let mut stage_from = lines.find("pipeline_stages", from).unwrap_or(from);
    for (n, st) in job
        .get("pipeline_stages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let Some((sname, settings)) = st.as_object().and_then(|m| m.iter().next()) else {
            stage_notes.unsupported(
                line,
                format!("job {name} pipeline_stages[{n}]"),
                "not a stage (a map with one key)",
            );
            continue;
        };
        let at = lines.find(sname, stage_from);
        stage_from = at.map_or(stage_from, |l| l + 1);
        stages.push(
            sname,
            settings.clone(),
            at,
            &format!("job {name} stage {sname}"),
            &mut stage_notes,
        );
    }
    let rules_at = lines.find("relabel_configs", from).unwrap_or(from);
    let mut rule_from = rules_at;
    let mut rules = Vec::new();
    for (n, r) in job
        .get("relabel_configs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let at = lines
            .find("source_labels", rule_from)
            .or(lines.find("action", rule_from));
        rule_from = at.map_or(rule_from, |l| l + 1);
        let target = r
            .get("target_label")
            .and_then(s)
            .map(|t| format!(" → {t}"))
            .unwrap_or_default();
        rules.push(Rule {
            line: at,
            what: format!("job {name} relabel_configs[{n}]{target}"),
            rule: obj(r),
        });
    }
    let mut kinds = 0;
    // An input shipper does not read was reported.
    let mut left_out = false;
    for (k, v) in job.as_object().into_iter().flatten() {
        let at = lines.find(k, from);
        match k.as_str() {
            "job_name" | "pipeline_stages" | "relabel_configs" => {}
            "kubernetes_sd_configs" => {
                kinds += 1;
                kubernetes(&name, v, at, out, report);
                let mut set = k8s::lower_rules(std::mem::take(&mut rules), out, report);
                set.extend(stages.labels.iter().cloned());
                // Promtail labels every file's lines with its path.
                set.push("filename".into());
                out.pipeline_stages.append(&mut stages.stages);
                k8s::drop_unset(&set, stages.parsed, out, report);
            }
            "static_configs" => {
                kinds += 1;
                for (n, sc) in v.as_array().into_iter().flatten().enumerate() {
                    static_target(&name, n, sc, at, &mut rules, &stages, out, report);
                }
            }
            "file_sd_configs" => {
                kinds += 1;
                file_sd_target(&name, v, at, &mut rules, &stages, out, report);
            }
            "docker_sd_configs" => {
                kinds += 1;
                for (n, sd) in v.as_array().into_iter().flatten().enumerate() {
                    if sd.get("filters").is_some() {
                        let what = format!("job {name} docker_sd_configs[{n}].filters");
                        super::docker::filters(lines.find("filters", from), what, report);
                    }
                }
                docker_target(&name, at, &mut rules, &stages, out, report);
            }
            "journal" => {
                kinds += 1;
                super::journal::promtail(&name, v, at, std::mem::take(&mut rules), out, report);
                let what = format!("job {name} pipeline_stages");
                if let (Some(j), Some(st)) = (
                    out.journal.as_mut(),
                    super::journal::stages(&stages.stages, at, &what, report),
                ) {
                    super::journal::push_stages(j, st);
                }
            }
            other => {
                let why = match crate::convert::scope::promtail(other) {
                    Some(kind) => crate::convert::scope::why(kind, "Promtail"),
                    None => "shipper reads files and the journal only".to_string(),
                };
                report.unsupported(at, format!("job {name} {other}"), why);
                left_out = true;
            }
        }
    }
    if kinds > 0 {
        report.notes.splice(notes_at..notes_at, stage_notes.notes);
    } else if !left_out {
        report.unsupported(
            line,
            format!("job {name}"),
            "nothing to read: no static_configs, kubernetes_sd_configs, file_sd_configs, docker_sd_configs or journal",
        );
    }
    if kinds > 1 {
        report.unsupported(
            line,
            format!("job {name}"),
            "several kinds of target in one job: give each its own job",
        );
    }
}

fn kubernetes(job: &str, v: &Value, line: Option<u32>, out: &mut Out, report: &mut Report) {
    if out.kubernetes_discovery {
        report.unsupported(
            line,
            format!("job {job} kubernetes_sd_configs"),
            "a second Kubernetes job: its pods are those of the first one",
        );
        return;
    }
    for sd in v.as_array().into_iter().flatten() {
        let role = sd.get("role").and_then(s).unwrap_or_default();
        if role != "pod" {
            report.unsupported(
                line,
                format!("job {job} kubernetes_sd_configs role {role}"),
                "shipper discovers pods only",
            );
            continue;
        }
        out.kubernetes_discovery = true;
        report.built_in(
            line,
            format!("job {job} kubernetes_sd_configs role pod"),
            "discovery: kubernetes (one watch of this node's pods)",
        );
        if let Some(names) = sd.pointer("/namespaces/names") {
            out.kubernetes.insert("include_namespaces".into(), names.clone());
            report.mapped(line, format!("job {job} namespaces"), "kubernetes.include_namespaces");
        }
        if let Some(k) = sd.get("kubeconfig_file") {
            out.kubernetes.insert("kubeconfig".into(), k.clone());
            report.mapped(line, format!("job {job} kubeconfig_file"), "kubernetes.kubeconfig");
        }
        if sd.get("selectors").is_some() {
            report.built_in(
                line,
                format!("job {job} selectors"),
                "only this node's pods are watched (spec.nodeName from NODE_NAME)",
            );
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn static_target(
    job: &str,
    n: usize,
    sc: &Value,
    line: Option<u32>,
    rules: &mut Vec<Rule>,
    stages: &Stages,
    out: &mut Out,
    report: &mut Report,
) {
    let labels = obj(sc.get("labels").unwrap_or(&Value::Null));
    let Some(path) = labels.get("__path__").and_then(s) else {
        report.unsupported(
            line,
            format!("job {job} static_configs[{n}]"),
            "no `__path__` label: no files to tail",
        );
        return;
    };
    let mut t = Map::new();
    t.insert("paths".into(), vec![path.clone()].into());
    if let Some(ex) = labels.get("__path_exclude__").and_then(s) {
        t.insert("exclude".into(), vec![ex].into());
    }
    let mut ours = Map::new();
    for (k, v) in &labels {
        if !k.starts_with("__") {
            ours.insert(k.clone(), s(v).unwrap_or_default().into());
        }
    }
    t.insert("labels".into(), Value::Object(ours));
    let at = push_target(t, rules, stages, out, report);
    report.mapped(line, format!("job {job} static_configs[{n}] __path__ {path}"), at);
}

/// A job's `docker_sd_configs`: a target on dockerd's json-file logs, the job's rules its
/// relabel rules (see [`super::docker`]).
fn docker_target(
    job: &str,
    line: Option<u32>,
    rules: &mut Vec<Rule>,
    stages: &Stages,
    out: &mut Out,
    report: &mut Report,
) {
    let mut stages = Stages {
        parsed: true,
        ..stages.clone()
    };
    *rules = super::docker::lower(std::mem::take(rules), &mut stages, report);
    let at = push_target(super::docker::target(), rules, &stages, out, report);
    report.mapped(
        line,
        format!("job {job} docker_sd_configs"),
        format!(
            "{at}: dockerd's json-file logs ({}), read from the disk (path_labels: docker)",
            super::docker::DOCKER_LOGS
        ),
    );
}

/// A job's `file_sd_configs`: a target whose target group files name the files and labels.
fn file_sd_target(
    job: &str,
    v: &Value,
    line: Option<u32>,
    rules: &mut Vec<Rule>,
    stages: &Stages,
    out: &mut Out,
    report: &mut Report,
) {
    let mut sds = Vec::new();
    for (n, sd) in v.as_array().into_iter().flatten().enumerate() {
        let mut ours = Map::new();
        for (k, val) in sd.as_object().into_iter().flatten() {
            match k.as_str() {
                "files" | "refresh_interval" => {
                    ours.insert(k.clone(), val.clone());
                }
                other => report.unsupported(
                    line,
                    format!("job {job} file_sd_configs[{n}].{other}"),
                    "no such file_sd_configs setting in shipper",
                ),
            }
        }
        sds.push(Value::Object(ours));
    }
    let mut t = Map::new();
    t.insert("paths".into(), Value::Array(Vec::new()));
    t.insert("file_sd_configs".into(), sds.into());
    let at = push_target(t, rules, stages, out, report);
    report.mapped(
        line,
        format!("job {job} file_sd_configs"),
        format!("{at}.file_sd_configs: each target group's __path__ and labels, read again as the files change"),
    );
}

/// Adds target `t` with the job's format, relabel rules and stages; returns its key (`targets[i]`).
fn push_target(
    mut t: Map<String, Value>,
    rules: &mut Vec<Rule>,
    stages: &Stages,
    out: &mut Out,
    report: &mut Report,
) -> String {
    if stages.parsed {
        t.insert("format".into(), "auto".into());
    } else {
        t.insert("format".into(), "raw".into());
    }
    let rs: Vec<Value> = rules.iter().map(|r| Value::Object(r.rule.clone())).collect();
    for r in rules.drain(..) {
        report.mapped(r.line, r.what, "the target's relabel_configs (the same rule)");
    }
    if !rs.is_empty() {
        t.insert("relabel_configs".into(), rs.into());
    }
    if !stages.stages.is_empty() {
        t.insert("pipeline_stages".into(), stages.stages.clone().into());
    }
    out.targets.push(Value::Object(t));
    format!("targets[{}]", out.targets.len() - 1)
}
