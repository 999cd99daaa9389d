//! The environment a peer's chart gives its container, for the `${X}` the converted config reads
//! (Alloy's `env("X")` / `sys.env("X")`, Promtail's `${X}` with `-config.expand-env=true`): a
//! plain `value` is written into the config; a `valueFrom` or `envFrom` keeps `${X}` and is carried
//! to our chart's `extraEnv` / `envFrom`.

use super::chart::set;
use super::out::{literal, Out};
use super::peers::Chart;
use super::report::Report;
use super::Target;
use serde_json::{json, Map, Value};

struct Entry {
    name: String,
    /// Where it is: `alloy.extraEnv[0]`, or what sets it (`the Alloy chart`).
    at: String,
    /// A plain value, or None when it comes from elsewhere (`what`).
    value: Option<String>,
    what: String,
    raw: Value,
    /// Set by the peer's chart itself, not by the values.
    implicit: bool,
}

pub struct ChartEnv {
    /// In the container's order: a later entry of the same name wins.
    entries: Vec<Entry>,
    env_from: Vec<(String, String, String, Value)>,
    chart: Chart,
    args: Vec<String>,
}

fn chart_name(chart: Chart) -> &'static str {
    match chart {
        Chart::Alloy => "the Alloy chart",
        Chart::Promtail => "the Promtail chart",
    }
}

/// The env the peer's chart renders into its container from `values`.
pub fn read(chart: Chart, values: &Value) -> ChartEnv {
    let (env_key, from_key, env, from) = match chart {
        Chart::Alloy => (
            "alloy.extraEnv",
            "alloy.envFrom",
            &values["alloy"]["extraEnv"],
            &values["alloy"]["envFrom"],
        ),
        Chart::Promtail => ("extraEnv", "extraEnvFrom", &values["extraEnv"], &values["extraEnvFrom"]),
    };
    let node = json!({"fieldRef": {"fieldPath": "spec.nodeName"}});
    let mut implicit = vec![("HOSTNAME", node.clone())];
    if chart == Chart::Alloy {
        implicit.push(("ALLOY_DEPLOY_MODE", json!("helm")));
        implicit.push(("K8S_NODE_NAME", node));
    }
    // What a `{{ .Release.Namespace }}` became when no Application gave the namespace.
    implicit.push((
        "RELEASE_NAMESPACE",
        json!({"fieldRef": {"fieldPath": "metadata.namespace"}}),
    ));
    let mut entries: Vec<Entry> = implicit
        .into_iter()
        .map(|(name, v)| {
            let raw = match &v {
                Value::String(s) => json!({"name": name, "value": s}),
                from => json!({"name": name, "valueFrom": from}),
            };
            entry(raw, chart_name(chart).into(), true)
        })
        .collect();
    for (i, e) in env.as_array().into_iter().flatten().enumerate() {
        if e["name"].is_string() {
            entries.push(entry(e.clone(), format!("{env_key}[{i}]"), false));
        }
    }
    let env_from = from
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, f)| {
            let what = match (&f["secretRef"]["name"], &f["configMapRef"]["name"]) {
                (Value::String(s), _) => format!("Secret {s}"),
                (_, Value::String(c)) => format!("ConfigMap {c}"),
                _ => "a source".into(),
            };
            let prefix = f["prefix"].as_str().unwrap_or("").to_string();
            (format!("{from_key}[{i}]"), what, prefix, f.clone())
        })
        .collect();
    let args = values["extraArgs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|_| chart == Chart::Promtail)
        .map(|a| a.as_str().map_or_else(|| a.to_string(), str::to_string))
        .collect();
    ChartEnv {
        entries,
        env_from,
        chart,
        args,
    }
}

fn entry(raw: Value, at: String, implicit: bool) -> Entry {
    let name = raw["name"].as_str().unwrap_or_default().to_string();
    let from = &raw["valueFrom"];
    let (value, what) = match (&raw["value"], from) {
        (Value::String(v), _) if v.contains("$(") => (None, "a value made of other variables".into()),
        (Value::String(v), _) => (Some(v.clone()), String::new()),
        (Value::Number(n), _) => (Some(n.to_string()), String::new()),
        (Value::Bool(b), _) => (Some(b.to_string()), String::new()),
        (_, Value::Object(_)) => {
            let what = if let Some(r) = from.get("secretKeyRef") {
                format!("Secret {} key {}", r["name"], r["key"])
            } else if let Some(r) = from.get("configMapKeyRef") {
                format!("ConfigMap {} key {}", r["name"], r["key"])
            } else if let Some(p) = from["fieldRef"]["fieldPath"].as_str() {
                format!("the pod's {p}")
            } else if let Some(r) = from["resourceFieldRef"]["resource"].as_str() {
                format!("the container's {r}")
            } else {
                "valueFrom".into()
            };
            (None, what)
        }
        _ => (Some(String::new()), String::new()),
    };
    Entry {
        name,
        at,
        value,
        what,
        raw,
        implicit,
    }
}

/// Rewrites every `${NAME}` / `${NAME:-default}` of `s` that `f` has a replacement for (`$$`
/// stays); `f` gets the name and the default.
fn substitute(s: &str, f: &mut dyn FnMut(&str, Option<&str>) -> Option<String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push_str("$$");
            rest = tail;
            continue;
        }
        let reference = after
            .strip_prefix('{')
            .and_then(|b| b.find('}').map(|e| (&b[..e], &b[e + 1..])));
        match reference {
            Some((expr, tail)) => {
                let (name, default) = match expr.split_once(":-") {
                    Some((n, d)) => (n, Some(d)),
                    None => (expr, None),
                };
                match f(name, default) {
                    Some(r) => out.push_str(&r),
                    None => out.push_str(&rest[at..rest.len() - tail.len()]),
                }
                rest = tail;
            }
            None => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// What [`resolve`] left for the chart values and the check.
#[derive(Default)]
pub struct Resolved {
    /// Variables the report explained already.
    pub explained: Vec<String>,
    /// Entries the peer's chart sets itself that the config reads: carried to `extraEnv`.
    pub implicit: Vec<Value>,
}

/// Writes the plain values of `env` into `out` where its strings read them; reports where the
/// others come from.
/// `holes` are placeholders of templates, not the container's env.
pub fn resolve(out: &mut Out, env: &ChartEnv, to: Target, holes: &[String], report: &mut Report) -> Resolved {
    let mut names: Vec<String> = Vec::new();
    out.strings_mut(&mut |s| {
        substitute(s, &mut |name, _| {
            if !names.iter().any(|n| n == name) && !holes.iter().any(|h| h == name) {
                names.push(name.to_string());
            }
            None
        });
    });
    let mut done = Resolved::default();
    let chart_values = to != Target::Config;
    let promtail_literal = env.chart == Chart::Promtail
        && !env.args.iter().any(|a| {
            let a = a.trim_start_matches('-');
            a == "config.expand-env" || a == "config.expand-env=true"
        });
    for name in names {
        let Some(e) = env.entries.iter().rev().find(|e| e.name == name) else {
            let from: Vec<&(String, String, String, Value)> =
                env.env_from.iter().filter(|f| name.starts_with(f.2.as_str())).collect();
            if from.is_empty() {
                continue;
            }
            let at: Vec<String> = from.iter().map(|f| format!("{} ({})", f.0, f.1)).collect();
            let what = format!("env {name} from {}", at.join(" or "));
            if chart_values {
                report.mapped(
                    None,
                    what,
                    format!("chart value envFrom (the same sources); `${{{name}}}` kept in the config"),
                );
            } else {
                report.not_needed(
                    None,
                    what,
                    format!("read when the agent starts (`${{{name}}}` in the config): set {name} where shipper runs"),
                );
            }
            done.explained.push(name);
            continue;
        };
        if promtail_literal {
            report.unsupported(
                None,
                format!("`${{{name}}}` in the config"),
                "the values do not pass -config.expand-env=true (extraArgs), so Promtail reads it as written; shipper expands it",
            );
        }
        match &e.value {
            Some(v) => {
                let v = v.clone();
                out.strings_mut(&mut |s| {
                    *s = substitute(s, &mut |n, default| {
                        (n == name).then(|| match default {
                            Some(d) if v.is_empty() => d.to_string(),
                            _ => literal(&v),
                        })
                    });
                });
                let mut shown: String = v.chars().take(100).collect();
                if shown.len() < v.len() {
                    shown.push('…');
                }
                report.mapped(
                    None,
                    format!("env {name} from {}", e.at),
                    format!("its value written into the config ({shown:?})"),
                );
            }
            None => {
                let what = format!("env {name} from {} ({})", e.at, e.what);
                if chart_values {
                    report.mapped(
                        None,
                        what,
                        format!("chart value extraEnv (the same entry); `${{{name}}}` kept in the config"),
                    );
                    if e.implicit {
                        done.implicit.push(e.raw.clone());
                    }
                } else {
                    report.not_needed(
                        None,
                        what,
                        format!(
                            "read when the agent starts (`${{{name}}}` in the config): set {name} where shipper runs"
                        ),
                    );
                }
            }
        }
        done.explained.push(name);
    }
    done
}

/// Our chart's `extraEnv` and `envFrom`: the peer's entries, and those its chart sets itself that
/// the config reads (`implicit`); Promtail's `extraArgs` reported.
pub fn carry(env: &ChartEnv, implicit: &[Value], ours: &mut Map<String, Value>, report: &mut Report) {
    let mut list: Vec<Value> = Vec::new();
    for e in env.entries.iter().filter(|e| !e.implicit) {
        list.push(e.raw.clone());
        report.mapped(None, format!("value {} ({})", e.at, e.name), "chart value extraEnv");
    }
    list.extend(implicit.iter().cloned());
    if !list.is_empty() {
        set(ours, "extraEnv", Value::Array(list));
    }
    if !env.env_from.is_empty() {
        set(ours, "envFrom", env.env_from.iter().map(|f| f.3.clone()).collect());
        for f in &env.env_from {
            report.mapped(None, format!("value {} ({})", f.0, f.1), "chart value envFrom");
        }
    }
    for a in &env.args {
        if a.trim_start_matches('-').starts_with("config.expand-env") {
            report.built_in(
                None,
                format!("value extraArgs {a}"),
                "shipper expands ${VAR} in its config itself",
            );
        } else {
            report.unsupported(
                None,
                format!("value extraArgs {a}"),
                "Promtail's flags have no counterpart",
            );
        }
    }
}
