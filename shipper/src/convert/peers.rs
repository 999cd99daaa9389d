//! The Helm values users keep for Alloy's chart (grafana/alloy) and Promtail's (grafana/promtail):
//! where their config is, and what their pod-level values become in ours.

use super::chart::set;
use super::report::Report;
use super::tpl::{self, Ctx};
use serde_json::{json, Map, Value};

/// What becomes of a value of a peer's chart.
enum Rule {
    /// Our chart's value at this path.
    To(&'static str),
    /// Handled by the caller (the config itself).
    Config,
    BuiltIn(&'static str),
    NotNeeded(&'static str),
    Unsupported(&'static str),
}

use Rule::*;

const IMAGE: Rule = NotNeeded("shipper's chart runs shipper's image");
const MOUNTED: Rule = BuiltIn("the chart mounts /var/log and /var/lib/docker/containers read-only");

const ALLOY: &[(&str, Rule)] = &[
    ("alloy.configMap", Config),
    ("alloy.mounts.varlog", MOUNTED),
    ("alloy.mounts.dockercontainers", MOUNTED),
    (
        "alloy.mounts.extra",
        Unsupported("extra mounts: the chart has none; tail only under /var/log"),
    ),
    ("alloy.resources", To("resources")),
    ("alloy.extraEnv", Config),
    ("alloy.envFrom", Config),
    (
        "alloy.securityContext",
        NotNeeded("the chart runs least privilege by default (securityContext.*)"),
    ),
    (
        "alloy.clustering",
        NotNeeded("one agent per node reads that node's files: nothing to share"),
    ),
    ("alloy.stabilityLevel", NotNeeded("no feature gates")),
    ("alloy.enableReporting", NotNeeded("shipper reports nothing anywhere")),
    (
        "alloy.listenPort",
        NotNeeded("shipper's /metrics and /ready are on http.port (9080)"),
    ),
    ("alloy.listenAddr", NotNeeded("shipper listens on 0.0.0.0:http.port")),
    ("alloy.storagePath", NotNeeded("positions live in hostPaths.positions")),
    ("alloy.extraArgs", Unsupported("Alloy's flags have no counterpart")),
    ("alloy.extraPorts", Unsupported("shipper listens on http.port only")),
    ("controller.type", Config),
    ("controller.priorityClassName", To("priorityClassName")),
    ("controller.tolerations", To("tolerations")),
    ("controller.nodeSelector", To("nodeSelector")),
    ("controller.affinity", To("affinity")),
    ("controller.podAnnotations", To("podAnnotations")),
    ("controller.podLabels", To("podLabels")),
    ("controller.hostNetwork", To("hostNetwork")),
    ("controller.updateStrategy", To("updateStrategy")),
    (
        "controller.volumes.extra",
        Unsupported("extra volumes: the chart has none"),
    ),
    (
        "configReloader",
        NotNeeded("shipper reloads its config itself (SIGHUP, /reload); the chart rolls the pods when it changes"),
    ),
    ("image", IMAGE),
    ("global", NotNeeded("no global values")),
    ("crds", NotNeeded("shipper's chart has no CRDs")),
    ("serviceAccount.create", To("serviceAccount.create")),
    ("serviceAccount.name", To("serviceAccount.name")),
    ("serviceAccount.annotations", To("serviceAccount.annotations")),
    ("rbac.create", To("rbac.create")),
    ("service.enabled", To("service.enabled")),
    ("serviceMonitor.enabled", To("serviceMonitor.enabled")),
    ("serviceMonitor.interval", To("serviceMonitor.interval")),
    ("serviceMonitor.additionalLabels", To("serviceMonitor.labels")),
    ("nameOverride", NotNeeded("our pods are app.kubernetes.io/name=shipper")),
    ("fullnameOverride", NotNeeded("our objects are named after the release")),
];

const PROMTAIL: &[(&str, Rule)] = &[
    ("config", Config),
    ("daemonset.enabled", Config),
    ("deployment.enabled", Config),
    ("resources", To("resources")),
    ("extraEnv", Config),
    ("extraEnvFrom", Config),
    ("priorityClassName", To("priorityClassName")),
    ("tolerations", To("tolerations")),
    ("nodeSelector", To("nodeSelector")),
    ("affinity", To("affinity")),
    ("podAnnotations", To("podAnnotations")),
    ("podLabels", To("podLabels")),
    ("updateStrategy", To("updateStrategy")),
    ("defaultVolumes", MOUNTED),
    ("defaultVolumeMounts", MOUNTED),
    ("extraVolumes", Unsupported("extra volumes: the chart has none")),
    ("extraVolumeMounts", Unsupported("extra mounts: the chart has none")),
    ("extraArgs", Config),
    (
        "podSecurityContext",
        NotNeeded("the chart runs least privilege by default (securityContext.*)"),
    ),
    (
        "containerSecurityContext",
        NotNeeded("the chart runs least privilege by default (securityContext.*)"),
    ),
    ("image", IMAGE),
    ("serviceAccount.create", To("serviceAccount.create")),
    ("serviceAccount.name", To("serviceAccount.name")),
    ("serviceAccount.annotations", To("serviceAccount.annotations")),
    ("rbac.create", To("rbac.create")),
    ("serviceMonitor.enabled", To("serviceMonitor.enabled")),
    ("serviceMonitor.interval", To("serviceMonitor.interval")),
    ("serviceMonitor.labels", To("serviceMonitor.labels")),
    ("nameOverride", NotNeeded("our pods are app.kubernetes.io/name=shipper")),
    ("fullnameOverride", NotNeeded("our objects are named after the release")),
];

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Chart {
    Alloy,
    Promtail,
}

/// Carries the peer chart's pod-level values into `ours`, reporting each one given.
pub fn carry(chart: Chart, values: &Value, ours: &mut Map<String, Value>, report: &mut Report) {
    let table = match chart {
        Chart::Alloy => ALLOY,
        Chart::Promtail => PROMTAIL,
    };
    let mut leaves = Vec::new();
    walk(values, String::new(), table, &mut leaves);
    let mut read = Vec::new();
    template_refs(values, &mut read);
    let templated = |path: &str| {
        read.iter()
            .any(|r: &String| r == path || r.starts_with(&format!("{path}.")) || path.starts_with(&format!("{r}.")))
    };
    for (path, value) in leaves {
        let what = format!("value {path}");
        match table
            .iter()
            .find(|(p, _)| path == *p || path.starts_with(&format!("{p}.")))
        {
            Some((_, Config)) => {}
            Some((_, To(to))) => {
                set(ours, to, value.clone());
                let note = match *to {
                    "tolerations" => " (they replace the chart's default, which tolerates every taint)",
                    _ => "",
                };
                report.mapped(None, what, format!("chart value {to}{note}"));
            }
            Some((_, BuiltIn(how))) => report.built_in(None, what, *how),
            Some((_, NotNeeded(why))) => report.not_needed(None, what, *why),
            Some((_, Unsupported(why))) => report.unsupported(None, what, *why),
            None if templated(&path) => report.not_needed(
                None,
                what,
                "read by the templates of the config, whose rendering is converted",
            ),
            None => report.unsupported(None, what, "no counterpart in shipper's chart"),
        }
    }
}

/// The `.Values.a.b` paths templates in the strings of `v` read (`a.b`).
fn template_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) if s.contains("{{") => {
            for (at, _) in s.match_indices(".Values.") {
                let rest = &s[at + ".Values.".len()..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                    .unwrap_or(rest.len());
                out.push(rest[..end].trim_end_matches('.').to_string());
            }
        }
        Value::Array(a) => a.iter().for_each(|v| template_refs(v, out)),
        Value::Object(m) => m.values().for_each(|v| template_refs(v, out)),
        _ => {}
    }
}

/// The paths of `v` down to a rule's path or a non-map value.
fn walk(v: &Value, at: String, table: &[(&str, Rule)], out: &mut Vec<(String, Value)>) {
    match v.as_object() {
        Some(m) if !table.iter().any(|(p, _)| *p == at) => {
            for (k, inner) in m {
                let path = if at.is_empty() { k.clone() } else { format!("{at}.{k}") };
                walk(inner, path, table, out);
            }
        }
        _ if at.is_empty() => {}
        _ => out.push((at, v.clone())),
    }
}

/// The config text of Alloy chart values (`alloy.configMap.content`); Err: why there is none.
pub fn alloy_content(values: &Value) -> Result<String, String> {
    let cm = &values["alloy"]["configMap"];
    match cm["content"].as_str() {
        Some(c) if !c.trim().is_empty() => Ok(c.to_string()),
        _ if cm["create"] == json!(false) => Err(format!(
            "the values take Alloy's config from the ConfigMap {} (alloy.configMap.create: false): convert that config with `--from alloy`",
            cm["name"]
        )),
        _ => Err("the values hold no alloy.configMap.content: the chart would run Alloy's empty default config".into()),
    }
}

/// The controller kind the Alloy chart deploys; only a DaemonSet reads every node's files.
pub fn alloy_controller(values: &Value, report: &mut Report) {
    match values["controller"]["type"].as_str().unwrap_or("daemonset") {
        "daemonset" => report.built_in(
            None,
            "value controller.type: daemonset",
            "shipper's chart is a DaemonSet",
        ),
        other => report.unsupported(
            None,
            format!("value controller.type: {other}"),
            "shipper's chart is a DaemonSet (one agent per node)",
        ),
    }
}

/// The Promtail chart's `kubernetes-pods` job as its default values render it, before the
/// `common` snippet and the extra relabel rules.
const PROMTAIL_POD_RULES: &str = r#"
- source_labels: [__meta_kubernetes_pod_controller_name]
  regex: ([0-9a-z-.]+?)(-[0-9a-f]{8,10})?
  action: replace
  target_label: __tmp_controller_name
- source_labels: [__meta_kubernetes_pod_label_app_kubernetes_io_name, __meta_kubernetes_pod_label_app, __tmp_controller_name, __meta_kubernetes_pod_name]
  regex: ^;*([^;]+)(;.*)?$
  action: replace
  target_label: app
- source_labels: [__meta_kubernetes_pod_label_app_kubernetes_io_instance, __meta_kubernetes_pod_label_instance]
  regex: ^;*([^;]+)(;.*)?$
  action: replace
  target_label: instance
- source_labels: [__meta_kubernetes_pod_label_app_kubernetes_io_component, __meta_kubernetes_pod_label_component]
  regex: ^;*([^;]+)(;.*)?$
  action: replace
  target_label: component
"#;

/// The chart's default `config.snippets.common`.
const PROMTAIL_COMMON: &str = r#"
- action: replace
  source_labels: [__meta_kubernetes_pod_node_name]
  target_label: node_name
- action: replace
  source_labels: [__meta_kubernetes_namespace]
  target_label: namespace
- action: replace
  replacement: $1
  separator: /
  source_labels: [namespace, app]
  target_label: job
- action: replace
  source_labels: [__meta_kubernetes_pod_name]
  target_label: pod
- action: replace
  source_labels: [__meta_kubernetes_pod_container_name]
  target_label: container
- action: replace
  replacement: /var/log/pods/*$1/*.log
  separator: /
  source_labels: [__meta_kubernetes_pod_uid, __meta_kubernetes_pod_container_name]
  target_label: __path__
- action: replace
  regex: true/(.*)
  replacement: /var/log/pods/*$1/*.log
  separator: /
  source_labels: [__meta_kubernetes_pod_annotationpresent_kubernetes_io_config_hash, __meta_kubernetes_pod_annotation_kubernetes_io_config_hash, __meta_kubernetes_pod_container_name]
  target_label: __path__
"#;

fn yaml_list(text: &str) -> Vec<Value> {
    serde_yaml_ng::from_str(text).unwrap_or_default()
}

/// The chart's `config.snippets.scrapeConfigs` template, which its `config.file` renders.
const PROMTAIL_SCRAPE_CONFIGS: &str = r#"# See also https://github.com/grafana/loki/blob/master/production/ksonnet/promtail/scrape_config.libsonnet for reference
- job_name: kubernetes-pods
  pipeline_stages:
    {{- toYaml .Values.config.snippets.pipelineStages | nindent 4 }}
  kubernetes_sd_configs:
    - role: pod
  relabel_configs:
    - source_labels:
        - __meta_kubernetes_pod_controller_name
      regex: ([0-9a-z-.]+?)(-[0-9a-f]{8,10})?
      action: replace
      target_label: __tmp_controller_name
    - source_labels:
        - __meta_kubernetes_pod_label_app_kubernetes_io_name
        - __meta_kubernetes_pod_label_app
        - __tmp_controller_name
        - __meta_kubernetes_pod_name
      regex: ^;*([^;]+)(;.*)?$
      action: replace
      target_label: app
    - source_labels:
        - __meta_kubernetes_pod_label_app_kubernetes_io_instance
        - __meta_kubernetes_pod_label_instance
      regex: ^;*([^;]+)(;.*)?$
      action: replace
      target_label: instance
    - source_labels:
        - __meta_kubernetes_pod_label_app_kubernetes_io_component
        - __meta_kubernetes_pod_label_component
      regex: ^;*([^;]+)(;.*)?$
      action: replace
      target_label: component
    {{- if .Values.config.snippets.addScrapeJobLabel }}
    - replacement: kubernetes-pods
      target_label: scrape_job
    {{- end }}
    {{- toYaml .Values.config.snippets.common | nindent 4 }}
    {{- with .Values.config.snippets.extraRelabelConfigs }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
"#;

/// The chart's default values its `config.file` reads, under the user's `values`.
fn promtail_chart_values(values: &Value) -> Value {
    let mut v = json!({
        "httpPathPrefix": "",
        "config": {
            "enabled": true,
            "logLevel": "info",
            "logFormat": "logfmt",
            "serverPort": 3101,
            "clients": [{"url": "http://loki-gateway/loki/api/v1/push"}],
            "positions": {"filename": "/run/promtail/positions.yaml"},
            "enableTracing": false,
            "snippets": {
                "pipelineStages": [{"cri": {}}],
                "common": yaml_list(PROMTAIL_COMMON),
                "addScrapeJobLabel": false,
                "extraLimitsConfig": "",
                "extraServerConfigs": "",
                "extraScrapeConfigs": "",
                "extraRelabelConfigs": [],
                "scrapeConfigs": PROMTAIL_SCRAPE_CONFIGS,
            },
        },
    });
    merge(&mut v, values.clone());
    v
}

/// The Promtail config the chart renders from `values` (its `config.*`), as Promtail YAML:
/// `config.file` rendered as the chart does when the values give one, else built from the values
/// (the chart's default file), templates in them rendered.
pub fn promtail_config(
    values: &Value,
    ctx: &Ctx,
    holes: &mut Vec<String>,
    report: &mut Report,
) -> Result<String, String> {
    let c = &values["config"];
    let or = |v: &Value, d: Value| if v.is_null() { d } else { v.clone() };
    let snippets = &c["snippets"];
    if c["enabled"] == json!(false) {
        report.unsupported(
            None,
            "value config.enabled: false",
            "the config comes from elsewhere: convert it with `--from promtail`",
        );
    }
    let full = promtail_chart_values(values);
    let ctx = Ctx { values: &full, ..*ctx };
    let mut render = |text: &str, at: &str, report: &mut Report| tpl::render(text, &ctx, at, holes, report);
    if let Some(file) = c["file"].as_str() {
        let text = render(file, "config.file", report)?;
        report.mapped(
            None,
            "value config.file",
            "the config it renders (tpl, as the chart does), converted below",
        );
        return Ok(text);
    }
    // Values the chart passes through `tpl (toYaml …)`.
    let mut templated = |v: Value, at: &str, report: &mut Report| -> Result<Value, String> {
        let text = tpl::to_yaml(&v);
        if !text.contains("{{") {
            return Ok(v);
        }
        let done = render(&text, at, report)?;
        serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&done)
            .ok()
            .and_then(|y| serde_json::to_value(y).ok())
            .ok_or_else(|| format!("value {at} is not YAML once its templates are rendered"))
    };
    let default_clients =
        legacy_clients(values, report).unwrap_or_else(|| json!([{"url": "http://loki-gateway/loki/api/v1/push"}]));
    let clients = templated(or(&c["clients"], default_clients), "config.clients", report)?;
    let positions = templated(
        or(&c["positions"], json!({"filename": "/run/promtail/positions.yaml"})),
        "config.positions",
        report,
    )?;
    let mut rules = yaml_list(PROMTAIL_POD_RULES);
    if snippets["addScrapeJobLabel"] == json!(true) {
        rules.push(json!({"replacement": "kubernetes-pods", "target_label": "scrape_job"}));
    }
    rules.extend(
        or(&snippets["common"], Value::Array(yaml_list(PROMTAIL_COMMON)))
            .as_array()
            .cloned()
            .unwrap_or_default(),
    );
    rules.extend(snippets["extraRelabelConfigs"].as_array().cloned().unwrap_or_default());
    // The chart before 3.0 took the stages at the top level.
    let stages = match (&snippets["pipelineStages"], &values["pipelineStages"]) {
        (Value::Null, old @ Value::Array(_)) => {
            report.mapped(
                None,
                "value pipelineStages (the chart before 3.0)",
                "the pods' pipeline_stages",
            );
            old.clone()
        }
        (ours, _) => or(ours, json!([{"cri": {}}])),
    };
    let mut jobs = vec![json!({
        "job_name": "kubernetes-pods",
        "pipeline_stages": stages,
        "kubernetes_sd_configs": [{"role": "pod"}],
        "relabel_configs": rules,
    })];
    for key in ["scrapeConfigs", "extraScrapeConfigs"] {
        let Some(text) = snippets[key].as_str().filter(|s| !s.trim().is_empty()) else {
            continue;
        };
        let at = format!("config.snippets.{key}");
        let text = render(text, &at, report)?;
        match serde_yaml_ng::from_str::<Option<Vec<Value>>>(&text) {
            Ok(more) if key == "scrapeConfigs" => {
                jobs = more.unwrap_or_default();
                report.mapped(
                    None,
                    format!("value {at}"),
                    "the scrape configs it renders (tpl, as the chart does)",
                );
            }
            Ok(more) => jobs.extend(more.unwrap_or_default()),
            Err(e) => report.unsupported(
                None,
                format!("value {at}"),
                format!("not a list of scrape configs once rendered ({e})"),
            ),
        }
    }
    // Only what the values set: the chart's own defaults (port 3101, logfmt) mean nothing here.
    let mut server = Map::new();
    for (from, to) in [
        ("logLevel", "log_level"),
        ("logFormat", "log_format"),
        ("serverPort", "http_listen_port"),
    ] {
        if !c[from].is_null() {
            server.insert(to.into(), c[from].clone());
        }
    }
    let mut config = json!({
        "clients": clients,
        "scrape_configs": jobs,
    });
    if !server.is_empty() {
        config["server"] = Value::Object(server);
    }
    // The chart's own default: its positions file on the node under /run/promtail (a hostPath).
    config["positions"] = positions;
    Ok(serde_yaml_ng::to_string(&config).unwrap_or_default())
}

/// Whether the Promtail chart's values deploy a DaemonSet.
pub fn promtail_controller(values: &Value, report: &mut Report) {
    if values["deployment"]["enabled"] == json!(true) || values["daemonset"]["enabled"] == json!(false) {
        report.unsupported(
            None,
            "value deployment.enabled",
            "shipper's chart is a DaemonSet (one agent per node)",
        );
    } else {
        report.built_in(None, "value daemonset.enabled", "shipper's chart is a DaemonSet");
    }
}

/// The Loki endpoint of values written for the Promtail chart before 4.0 (`config.lokiAddress`)
/// or the older loki/promtail chart (`loki.serviceName`, `servicePort`, `serviceScheme`, `user`,
/// `password`), when `config.clients` does not give one.
fn legacy_clients(values: &Value, report: &mut Report) -> Option<Value> {
    if !values["config"]["clients"].is_null() {
        return None;
    }
    if let Some(url) = values["config"]["lokiAddress"].as_str() {
        report.mapped(None, "value config.lokiAddress (the chart before 4.0)", "client.url");
        return Some(json!([{ "url": url }]));
    }
    let loki = &values["loki"];
    let host = loki["serviceName"].as_str().filter(|h| !h.is_empty())?;
    let scheme = loki["serviceScheme"].as_str().unwrap_or("http");
    let port = match &loki["servicePort"] {
        Value::Number(n) => n.to_string(),
        Value::String(p) => p.clone(),
        _ => "3100".into(),
    };
    let mut client = json!({ "url": format!("{scheme}://{host}:{port}/loki/api/v1/push") });
    report.mapped(
        None,
        "value loki.serviceName, servicePort, serviceScheme (the loki/promtail chart before 1.0)",
        "client.url",
    );
    if let (Some(user), Some(password)) = (loki["user"].as_str(), loki["password"].as_str()) {
        client["basic_auth"] = json!({ "username": user, "password": password });
    }
    Some(json!([client]))
}

/// `over` merged into `base` as Helm merges values files: maps key by key, anything else replaced.
pub fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(at) => merge(at, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (_, Value::Null) => {}
        (b, o) => *b = o,
    }
}
