//! What the shipped alerts and dashboard read is what the agent exposes: every `shipper_` metric a
//! rule or a dashboard query names is in a running agent's `/metrics`, and every series an alert
//! reads is there from the start, for the label values the alert names, each counter at 0, so
//! `increase()` sees the first event (a series born at its first count shows no rise).

use crate::support::{wait_all, Agent, Env};
use std::collections::BTreeSet;

const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/prometheus/shipper-alerts.yaml");
const DASHBOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/helm/shipper/dashboards/shipper.json"
);

/// Each `shipper_` series a query reads: its name and the label matchers written after it.
fn series_of(expr: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for (at, _) in expr.match_indices("shipper_") {
        if at > 0 && expr[..at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &expr[at..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let matchers = rest[end..]
            .strip_prefix('{')
            .and_then(|m| m.split_once('}'))
            .map(|(m, _)| {
                m.split(',')
                    .map(|p| p.trim().to_string())
                    // The dashboard's own variables are no label values of the agent.
                    .filter(|p| !p.is_empty() && !p.contains('$'))
                    .collect()
            })
            .unwrap_or_default();
        out.push((rest[..end].to_string(), matchers));
    }
    out
}

fn rule_exprs() -> Vec<String> {
    let rules: serde_json::Value = serde_yaml_ng::from_str(&std::fs::read_to_string(RULES).unwrap()).unwrap();
    rules["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["expr"].as_str().unwrap().to_owned())
        .collect()
}

fn dashboard_exprs() -> Vec<String> {
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(DASHBOARD).unwrap()).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    let targets = panels
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten());
    let queries = targets.map(|t| t["expr"].as_str().unwrap().to_owned());
    let variables = dashboard["templating"]["list"].as_array().unwrap().iter();
    queries
        .chain(variables.filter_map(|v| v["definition"].as_str().map(str::to_owned)))
        .collect()
}

/// Names a query may use: each sample's, and each family's even with no series yet (a histogram's
/// `_bucket`, `_sum` and `_count`; a counter's `_total`).
fn exposed_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            match kind {
                "counter" => names.insert(format!("{name}_total")),
                "histogram" => ["_bucket", "_sum", "_count"]
                    .iter()
                    .all(|s| names.insert(format!("{name}{s}"))),
                _ => names.insert(name.to_owned()),
            };
        } else if !line.starts_with('#') && !line.is_empty() {
            names.insert(line.split(['{', ' ']).next().unwrap().to_owned());
        }
    }
    names
}

#[test]
fn every_metric_the_alerts_and_the_dashboard_read_is_exposed_and_alerts_start_at_zero() {
    let env = Env::new();
    // One file read and shipped, so the per-file families have a series too; a drop stage drops
    // its second line, as the dashboard's panel of lines dropped on purpose shows.
    let line = shipper_testkit::tag_line(0, 0, 60);
    std::fs::write(env.path("pods/ns_p_u/c/0.log"), format!("{line}\ndrop me\n")).unwrap();
    let stages = "pipeline_stages:\n  - drop:\n      expression: drop me\n";
    let agent = Agent::start(&env.config("pods/*/*/*.log", stages));
    wait_all(&env, &agent, &[(0, 1)], 60);
    let dropped = "shipper_pipeline_dropped_lines_total{reason=\"drop_stage\"}";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while agent.metric(dropped) != 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no drop counted: {}",
            agent.log_tail()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let text = agent.metrics();
    let names = exposed_names(&text);

    let rules = rule_exprs();
    assert_eq!(rules.len(), 14, "{RULES}");
    let dashboard = dashboard_exprs();
    assert!(dashboard.len() >= 20, "{DASHBOARD}: {} queries", dashboard.len());
    for (source, exprs) in [(RULES, &rules), (DASHBOARD, &dashboard)] {
        for expr in exprs.iter() {
            for (name, _) in series_of(expr) {
                assert!(
                    names.contains(&name),
                    "{source}: `{expr}` reads {name}, which /metrics lacks:\n{text}"
                );
            }
        }
    }

    // The alerts' series, each at 0 from the start for the label values they name.
    let samples: Vec<(&str, &str, &str)> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (name, labels) = series.split_once('{').unwrap_or((series, ""));
            Some((name, labels, value))
        })
        .collect();
    for expr in &rules {
        for (name, matchers) in series_of(expr) {
            let found: Vec<_> = samples
                .iter()
                .filter(|(n, l, _)| *n == name && matchers.iter().all(|m| l.contains(m.as_str())))
                .collect();
            assert!(
                !found.is_empty(),
                "`{expr}` reads {name}{matchers:?}, which a fresh agent does not expose"
            );
            // A counter, which increase() reads, starts at 0; gauges hold a level or a setting.
            for (n, l, v) in found.into_iter().filter(|(n, ..)| n.ends_with("_total")) {
                assert!(v.parse::<f64>() == Ok(0.0), "{n}{{{l}}} starts at {v}, not 0: `{expr}`");
            }
        }
    }
    assert_eq!(agent.metric("shipper_held_limit_bytes"), (2u64 << 30) as f64);
    assert_eq!(agent.metric("shipper_buffered_limit_bytes"), (256u64 << 20) as f64);
    assert!(agent.metric("shipper_resident_memory_bytes") > (1 << 20) as f64);
    agent.stop();
}
