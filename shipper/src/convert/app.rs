//! Chart values and ArgoCD Applications: `--from alloy-helm-values|promtail-helm-values` reads
//! the values users keep in git (or an Application holding them), `--to helm-values` writes
//! values for our chart, `--to argocd` rewrites the Application to install our chart.

use super::out::Out;
use super::peers::{self, Chart};
use super::report::Report;
use super::{alloy, chart, promtail};
use serde_json::{json, Map, Value};

/// Where our chart is, for the Application written.
pub const REPO_URL: &str = "https://github.com/shipper-logs/shipper.git";
pub const CHART_PATH: &str = "deploy/helm/shipper";

/// The peer's values, and the Application they came from if the file is one.
pub struct Input {
    pub values: Value,
    pub app: Option<Value>,
    /// The line of `content:` (Alloy's config inside the values), to place the report's lines.
    pub content_line: u32,
}

pub fn read(chart: Chart, text: &str, report: &mut Report) -> Result<Input, String> {
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(|e| format!("not a YAML document: {e}"))?;
    let doc: Value = serde_json::to_value(doc).map_err(|e| format!("not chart values: {e}"))?;
    let content_line = text
        .lines()
        .position(|l| l.trim_start().starts_with("content:"))
        .map_or(0, |i| i as u32 + 1);
    if doc["kind"] != "Application" {
        if !doc.is_object() && !doc.is_null() {
            return Err("not chart values: the document is not a map".into());
        }
        return Ok(Input {
            values: doc,
            app: None,
            content_line,
        });
    }
    let source = &doc["spec"]["source"];
    let want = match chart {
        Chart::Alloy => "alloy",
        Chart::Promtail => "promtail",
    };
    match source["chart"].as_str() {
        Some(c) if c == want => report.mapped(
            None,
            format!(
                "Application {} chart {c} {}",
                doc["metadata"]["name"], source["targetRevision"]
            ),
            format!(
                "shipper's chart at {REPO_URL} path {CHART_PATH} (point repoURL/targetRevision at where you keep it)"
            ),
        ),
        other => return Err(format!("the Application installs chart {other:?}, not {want}")),
    }
    if source["helm"]["valueFiles"].is_array() {
        report.unsupported(
            None,
            "Application helm.valueFiles",
            "values files in the chart's repository are not read here: convert each with --from *-helm-values",
        );
    }
    let values = match (&source["helm"]["valuesObject"], source["helm"]["values"].as_str()) {
        (Value::Object(_), _) => source["helm"]["valuesObject"].clone(),
        (_, Some(text)) => {
            let v: serde_yaml_ng::Value =
                serde_yaml_ng::from_str(text).map_err(|e| format!("spec.source.helm.values is not YAML: {e}"))?;
            serde_json::to_value(v).map_err(|e| format!("spec.source.helm.values: {e}"))?
        }
        _ => Value::Null,
    };
    Ok(Input {
        values,
        app: Some(doc),
        content_line,
    })
}

/// The peer's config lowered (Alloy's `alloy.configMap.content`, or the config the Promtail chart
/// renders from its values).
pub fn lower(chart: Chart, input: &Input, file: &str, report: &mut Report) -> Result<Out, String> {
    match chart {
        Chart::Alloy => {
            peers::alloy_controller(&input.values, report);
            let content = match peers::alloy_content(&input.values) {
                Ok(c) => c,
                Err(why) => {
                    report.unsupported(None, "value alloy.configMap", why);
                    // What our chart does with no config of its own: every pod's log, labelled.
                    return Ok(Out {
                        kubernetes_discovery: true,
                        ..Out::default()
                    });
                }
            };
            let at = report.notes.len();
            let offset = input.content_line;
            let place = |e: alloy::Error| format!("{file}:{}:{}: {}", e.pos.line + offset, e.pos.col, e.message);
            let body = alloy::parse(&content).map_err(place)?;
            let out = alloy::lower(&body, report).map_err(place)?;
            for n in &mut report.notes[at..] {
                n.line = n.line.map(|l| l + offset);
            }
            Ok(out)
        }
        Chart::Promtail => {
            peers::promtail_controller(&input.values, report);
            let text = peers::promtail_config(&input.values, report);
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

/// Our chart's values: the config's, then the peer's pod-level values.
pub fn values(chart: Chart, input: &Input, out: &Out, report: &mut Report) -> Map<String, Value> {
    let mut v = chart::values(out, report);
    peers::carry(chart, &input.values, &mut v, report);
    v
}

/// The Application rewritten to install our chart with `values`; what ArgoCD needs of the rest
/// (project, destination, sync policy, finalizers) is kept.
pub fn application(app: &Value, values: Map<String, Value>) -> Value {
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
    spec.insert(
        "source".into(),
        json!({
            "repoURL": REPO_URL,
            "targetRevision": "main",
            "path": CHART_PATH,
            "helm": {"releaseName": "shipper", "valuesObject": values},
        }),
    );
    json!({
        "apiVersion": app["apiVersion"].as_str().unwrap_or("argoproj.io/v1alpha1"),
        "kind": "Application",
        "metadata": meta,
        "spec": spec,
    })
}
