//! Chart values and ArgoCD Applications: `--from alloy-helm-values|promtail-helm-values` reads
//! the values users keep in git (or an Application holding them), `--to helm-values` writes
//! values for our chart, `--to argocd` rewrites the Application to install our chart.

use super::out::Out;
use super::peers::{self, merge, Chart};
use super::report::Report;
use super::{alloy, chart, env, promtail, tpl};
use serde_json::{json, Map, Value};
use std::path::Path;

/// Where our chart is, for the Application written.
pub const REPO_URL: &str = "https://github.com/shipper-logs/shipper.git";
pub const CHART_PATH: &str = "deploy/helm/shipper";

/// The peer's values, and the Application they came from if the file is one.
pub struct Input {
    pub values: Value,
    pub app: Option<Value>,
    /// The line of `content:` (Alloy's config inside the values), to place the report's lines.
    pub content_line: u32,
    /// Which of the Application's `spec.sources` installs the chart (None: `spec.source`).
    pub source_index: Option<usize>,
    /// The Application's destination namespace and Helm release name.
    pub namespace: Option<String>,
    pub release: Option<String>,
    /// Values files of the Application that were not read (no `--values-dir`, or not there).
    pub unread_values: bool,
}

fn yaml(text: &str, what: &str) -> Result<Value, String> {
    let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(|e| format!("{what} is not YAML: {e}"))?;
    serde_json::to_value(v).map_err(|e| format!("{what}: {e}"))
}

/// Reads chart values, or an Application installing the chart (`spec.source`, or the chart's
/// entry of `spec.sources` with values files under a `ref:` source found in `values_dir`).
pub fn read(chart: Chart, text: &str, values_dir: Option<&Path>, report: &mut Report) -> Result<Input, String> {
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(|e| format!("not a YAML document: {e}"))?;
    let doc: Value = serde_json::to_value(doc).map_err(|e| format!("not chart values: {e}"))?;
    let content_line = text
        .lines()
        .position(|l| l.trim_start().starts_with("content:"))
        .map_or(0, |i| i as u32 + 1);
    let mut input = Input {
        values: Value::Null,
        app: None,
        content_line,
        source_index: None,
        namespace: None,
        release: None,
        unread_values: false,
    };
    if doc["kind"] != "Application" {
        if !doc.is_object() && !doc.is_null() {
            return Err("not chart values: the document is not a map".into());
        }
        input.values = subchart(chart, doc, report);
        return Ok(input);
    }
    let want = match chart {
        Chart::Alloy => "alloy",
        Chart::Promtail => "promtail",
    };
    let sources = doc["spec"]["sources"].as_array();
    let (source, at) = match sources {
        Some(list) => {
            let i = list.iter().position(|s| installs(s, want)).ok_or_else(|| {
                let charts: Vec<&str> = list.iter().filter_map(|s| s["chart"].as_str()).collect();
                format!("the Application's spec.sources install no chart {want} (charts: {charts:?})")
            })?;
            input.source_index = Some(i);
            (&list[i], format!("spec.sources[{i}]"))
        }
        None => (&doc["spec"]["source"], "spec.source".to_string()),
    };
    if !installs(source, want) {
        let what = match (source["chart"].as_str(), source["path"].as_str()) {
            (Some(c), _) => format!("chart {c}"),
            (None, Some(p)) => format!("the chart at path {p} of {}", source["repoURL"]),
            (None, None) => "no chart".to_string(),
        };
        return Err(format!("the Application installs {what}, not {want}"));
    }
    report.mapped(
        None,
        format!(
            "Application {} chart {want} {}",
            doc["metadata"]["name"], source["targetRevision"]
        ),
        format!("shipper's chart at {REPO_URL} path {CHART_PATH} (point repoURL/targetRevision at where you keep it)"),
    );
    input.namespace = doc["spec"]["destination"]["namespace"].as_str().map(str::to_string);
    input.release = source["helm"]["releaseName"]
        .as_str()
        .or(doc["metadata"]["name"].as_str())
        .map(str::to_string);
    let refs: Vec<&Value> = sources.into_iter().flatten().filter(|s| s["ref"].is_string()).collect();
    for (i, f) in source["helm"]["valueFiles"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let f = f.as_str().unwrap_or_default();
        let what = format!("Application {at}.helm.valueFiles[{i}] {f}");
        let Some((name, path)) = f.strip_prefix('$').and_then(|r| r.split_once('/')) else {
            report.unsupported(
                None,
                what,
                "values files in the chart's repository are not read here: convert each with --from *-helm-values",
            );
            continue;
        };
        let Some(r) = refs.iter().find(|r| r["ref"] == name) else {
            report.unsupported(None, what, format!("no source of spec.sources has `ref: {name}`"));
            continue;
        };
        let repo = format!("the `ref: {name}` source ({} {})", r["repoURL"], r["targetRevision"]);
        let Some(dir) = values_dir else {
            input.unread_values = true;
            report.needs(
                None,
                what,
                format!("in {repo}: pass a checkout of it with --values-dir DIR to read DIR/{path}"),
            );
            continue;
        };
        let file = dir.join(path);
        match std::fs::read_to_string(&file) {
            Ok(t) => {
                merge(&mut input.values, yaml(&t, &file.display().to_string())?);
                report.mapped(None, what, format!("the values read from {}", file.display()));
            }
            Err(e) => {
                input.unread_values = true;
                report.needs(
                    None,
                    what,
                    format!(
                        "cannot read {} ({e}): pass a checkout of {repo} with --values-dir",
                        file.display()
                    ),
                )
            }
        }
    }
    if let Some(text) = source["helm"]["values"].as_str() {
        merge(&mut input.values, yaml(text, &format!("{at}.helm.values"))?);
    }
    if source["helm"]["valuesObject"].is_object() {
        merge(&mut input.values, source["helm"]["valuesObject"].clone());
    }
    input.app = Some(doc);
    Ok(input)
}

/// The peer's config lowered (Alloy's `alloy.configMap.content`, or the config the Promtail chart
/// renders from its values), Helm templates in it rendered as the chart's `tpl` would.
/// `holes` gets the variables of the placeholders left for templates.
pub fn lower(
    chart: Chart,
    input: &Input,
    file: &str,
    holes: &mut Vec<String>,
    report: &mut Report,
) -> Result<Out, String> {
    let ctx = |alloy| tpl::Ctx {
        values: &input.values,
        namespace: input.namespace.as_deref(),
        release: input.release.as_deref(),
        alloy,
    };
    match chart {
        Chart::Alloy => {
            peers::alloy_controller(&input.values, report);
            let content = match peers::alloy_content(&input.values) {
                Ok(c) => c,
                Err(why) => {
                    match input.unread_values {
                        true => report.needs(
                            None,
                            "value alloy.configMap",
                            format!("{why}, as far as the values read go: give the values files above"),
                        ),
                        false => report.unsupported(None, "value alloy.configMap", why),
                    }
                    // What our chart does with no config of its own: every pod's log, labelled.
                    return Ok(Out {
                        kubernetes_discovery: true,
                        ..Out::default()
                    });
                }
            };
            let content = tpl::render(&content, &ctx(true), "alloy.configMap.content", holes, report)
                .map_err(|e| format!("{file}: {e}"))?;
            let at = report.notes.len();
            let offset = input.content_line;
            let place = |e: alloy::Error| format!("{file}:{}:{}: {}", e.pos.line + offset, e.pos.col, e.message);
            let body = alloy::parse(&content).map_err(place)?;
            let mut out = alloy::lower(&body, report).map_err(place)?;
            // Lines of a config from a values file of the Application are not the file's.
            for n in &mut report.notes[at..] {
                n.line = n.line.filter(|_| offset > 0).map(|l| l + offset);
            }
            // Placeholders that stood in strings become the variables they name.
            out.strings_mut(&mut |s| {
                if s.contains(tpl::HOLE_START) {
                    *s = s.replace(tpl::HOLE_START, "${").replace(tpl::HOLE_END, "}");
                }
            });
            Ok(out)
        }
        Chart::Promtail => {
            peers::promtail_controller(&input.values, report);
            let text = peers::promtail_config(&input.values, &ctx(false), holes, report)
                .map_err(|e| format!("{file}: {e}"))?;
            let at = report.notes.len();
            let out = promtail::lower(&text, report)?;
            // Lines of the config rendered here mean nothing to the user.
            for n in &mut report.notes[at..] {
                n.line = None;
            }
            Ok(out)
        }
    }
}

/// Our chart's values: the config's, then the peer's pod-level values and container env
/// (`implicit`: the entries its chart sets itself that the config reads).
pub fn values(chart: Chart, input: &Input, out: &Out, implicit: &[Value], report: &mut Report) -> Map<String, Value> {
    let mut v = chart::values(out, report);
    peers::carry(chart, &input.values, &mut v, report);
    env::carry(&env::read(chart, &input.values), implicit, &mut v, report);
    v
}

/// The Application rewritten to install our chart with `values`; what ArgoCD needs of the rest
/// (project, destination, sync policy, finalizers) is kept. A multi-source Application keeps its
/// other sources (`ref: values`…), ours in place of the peer's chart.
pub fn application(app: &Value, input: &Input, values: Map<String, Value>, report: &mut Report) -> Value {
    let mut meta = Map::new();
    meta.insert("name".into(), "shipper".into());
    for k in ["namespace", "finalizers", "labels", "annotations"] {
        if let Some(v) = app["metadata"].get(k) {
            meta.insert(k.into(), v.clone());
        }
    }
    let mut spec = Map::new();
    for k in [
        "project",
        "destination",
        "syncPolicy",
        "ignoreDifferences",
        "revisionHistoryLimit",
    ] {
        if let Some(v) = app["spec"].get(k) {
            spec.insert(k.into(), v.clone());
        }
    }
    let ours = json!({
        "repoURL": REPO_URL,
        "targetRevision": "main",
        "path": CHART_PATH,
        "helm": {"releaseName": "shipper", "valuesObject": values},
    });
    match (input.source_index, app["spec"]["sources"].as_array()) {
        (Some(i), Some(sources)) => {
            let mut sources = sources.clone();
            sources[i] = ours;
            let kept: Vec<String> = sources
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, s)| match s["ref"].as_str() {
                    Some(r) => format!("ref: {r} ({})", s["repoURL"]),
                    None => s["repoURL"].to_string(),
                })
                .collect();
            report.mapped(
                None,
                format!("Application spec.sources[{i}]"),
                format!(
                    "spec.sources[{i}]: shipper's chart with the converted values inline (helm.valuesObject); the other sources kept as they were ({}). To keep shipper's values in git instead, write them with --to helm-values next to the values file and set helm.valueFiles: [$values/<that file>] in place of valuesObject",
                    kept.join(", ")
                ),
            );
            spec.insert("sources".into(), Value::Array(sources));
        }
        _ => {
            spec.insert("source".into(), ours);
        }
    }
    json!({
        "apiVersion": app["apiVersion"].as_str().unwrap_or("argoproj.io/v1alpha1"),
        "kind": "Application",
        "metadata": meta,
        "spec": spec,
    })
}

/// Whether an Application source installs the chart `want`: by name from a Helm repository, or
/// from a git path ending in it (`operations/helm/charts/alloy`).
fn installs(source: &Value, want: &str) -> bool {
    match source["chart"].as_str() {
        Some(c) => c == want,
        None => source["path"]
            .as_str()
            .is_some_and(|p| p.trim_end_matches('/').rsplit('/').next() == Some(want)),
    }
}

/// The values of an umbrella chart (loki-stack, a chart of one's own) hold Promtail's under
/// `promtail:`: those are the chart's values.
fn subchart(chart: Chart, values: Value, report: &mut Report) -> Value {
    match chart {
        Chart::Promtail if values["config"].is_null() && values["promtail"].is_object() => {
            report.mapped(
                None,
                "value promtail (the subchart values of an umbrella chart)",
                "Promtail's chart values, read from there",
            );
            values["promtail"].clone()
        }
        _ => values,
    }
}
