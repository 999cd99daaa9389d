//! The alerts and the dashboard. The chart's PrometheusRule and `deploy/prometheus/shipper-alerts.yaml`
//! hold the same rules; Prometheus' own promtool checks them and shows each alert firing on the first
//! occurrence of what it is about and none firing for a healthy agent; per-alert values change what
//! the chart renders. The dashboard is Grafana JSON whose datasource is a variable and whose queries
//! Prometheus parses, shipped as the ConfigMap Grafana's sidecar loads.

use crate::render::{documents, find, have, helm, values_file, CHART};
use serde_json::Value;
use std::collections::BTreeSet;
use std::process::Command;

const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/prometheus/shipper-alerts.yaml");
const RULE_TESTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/deploy/prometheus/shipper-alerts.test.yaml"
);
const DASHBOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/helm/shipper/dashboards/shipper.json"
);

/// The plain rules file's opening comment; the rest is the chart's `spec`.
const HEADER: &str = "\
# shipper's alerts for a Prometheus without the Prometheus Operator: list this file in its
# rule_files. These are the Helm chart's PrometheusRule (prometheusRule.enabled) with the default
# values, as Helm renders it: change them in deploy/helm/shipper/templates/prometheusrule.yaml.
# ShipperDown reads up{job=\"shipper\"}: name the agents' scrape job shipper.
# What each alert means and what to do: docs/src/operations.md, \"What to alert on\".
";

/// `helm template` of one of the chart's templates, with `values` (YAML) over the defaults.
fn show_only(template: &str, values: &str) -> Result<String, String> {
    let file = values_file(values);
    let out = helm(&[
        "template",
        "shipper",
        CHART,
        "-n",
        "monitoring",
        "--show-only",
        template,
        "-f",
        file.path().to_str().unwrap(),
    ]);
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The PrometheusRule's `spec` as a Prometheus rules file: its text, two spaces less indented.
fn rules_file_of(prometheus_rule: &str) -> String {
    let (_, spec) = prometheus_rule.split_once("\nspec:\n").expect("a spec");
    spec.trim_end()
        .lines()
        .map(|l| format!("{}\n", l.strip_prefix("  ").unwrap_or(l)))
        .collect()
}

fn promtool(args: &[&str]) -> Result<String, String> {
    let out = Command::new("promtool").args(args).output().expect("run promtool");
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        Ok(said)
    } else {
        Err(said)
    }
}

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The alerts of a rules file (or of a PrometheusRule's spec).
fn alerts(rules: &Value) -> Vec<&Value> {
    rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect()
}

#[test]
fn the_plain_rules_file_is_the_charts_prometheus_rule() {
    let rendered = show_only("templates/prometheusrule.yaml", "prometheusRule: {enabled: true}").unwrap();
    let want = format!("{HEADER}{}", rules_file_of(&rendered));
    let have = std::fs::read_to_string(RULES).unwrap_or_default();
    if have != want && std::env::var_os("SHIPPER_WRITE_ALERTS").is_some() {
        std::fs::write(RULES, &want).unwrap();
        return;
    }
    assert!(
        have == want,
        "{RULES} is not the chart's PrometheusRule: change the chart's template, then rerun this \
         test with SHIPPER_WRITE_ALERTS=1 to write it"
    );
    // No rule left out of the defaults, and the scrape job ShipperDown reads is the one the header names.
    let rules = yaml(RULES);
    assert_eq!(alerts(&rules).len(), 14);
    let down = alerts(&rules)
        .into_iter()
        .find(|r| r["alert"] == "ShipperDown")
        .unwrap();
    assert_eq!(down["expr"], "up{job=\"shipper\"} == 0");
}

/// promtool checks the rules, then runs `tests/deploy/prometheus/shipper-alerts.test.yaml`: a healthy
/// agent's series for two hours fire nothing, and each alert fires on the first occurrence of its
/// event. Every alert of the file is in both.
#[test]
fn promtool_shows_every_alert_firing_on_its_first_occurrence_and_none_when_healthy() {
    if !have(
        "promtool",
        "promtool_shows_every_alert_firing_on_its_first_occurrence_and_none_when_healthy",
    ) {
        return;
    }
    let checked = promtool(&["check", "rules", RULES]).unwrap_or_else(|e| panic!("{e}"));
    assert!(checked.contains("SUCCESS: 14 rules found"), "{checked}");
    let tested = promtool(&["test", "rules", RULE_TESTS]).unwrap_or_else(|e| panic!("{e}"));
    assert!(tested.contains("SUCCESS"), "{tested}");

    let (mut fired, mut silent) = (BTreeSet::new(), BTreeSet::new());
    let tests = yaml(RULE_TESTS);
    for test in tests["tests"].as_array().unwrap() {
        for case in test["alert_rule_test"].as_array().unwrap() {
            let name = case["alertname"].as_str().unwrap().to_owned();
            if case["exp_alerts"].as_array().is_some_and(|a| !a.is_empty()) {
                fired.insert(name);
            } else if test["name"].as_str().unwrap().starts_with("a healthy agent") {
                silent.insert(name);
            }
        }
    }
    let all: BTreeSet<String> = alerts(&yaml(RULES))
        .iter()
        .map(|r| r["alert"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fired, all, "alerts shown firing");
    assert_eq!(silent, all, "alerts shown silent for a healthy agent");
}

/// The per-alert values: thresholds, durations, severities and extra labels change the rules, an
/// alert can be turned off, and values that are no threshold or duration are refused.
#[test]
fn per_alert_values_change_the_rendered_rules() {
    let values = "prometheusRule:
  enabled: true
  labels: {release: kube-prometheus-stack}
  alertLabels: {team: platform}
  alerts:
    ShipperLinesDropped: {enabled: false}
    ShipperHeldFilesFillingUp: {threshold: 0.5, for: 10m, severity: page}
";
    let text = show_only("templates/prometheusrule.yaml", values).unwrap();
    let rule = &documents(&text)[0];
    assert_eq!(rule["metadata"]["labels"]["release"], "kube-prometheus-stack");
    let rules = alerts(&rule["spec"]);
    assert_eq!(rules.len(), 13);
    assert!(rules.iter().all(|r| r["alert"] != "ShipperLinesDropped"));
    assert!(rules.iter().all(|r| r["labels"]["team"] == "platform"));
    let held = rules
        .iter()
        .find(|r| r["alert"] == "ShipperHeldFilesFillingUp")
        .unwrap();
    assert_eq!(held["expr"], "shipper_held_bytes / shipper_held_limit_bytes > 0.5");
    assert_eq!(held["for"], "10m");
    assert_eq!(held["labels"]["severity"], "page");
    if have("promtool", "per_alert_values_change_the_rendered_rules") {
        let file = values_file(&rules_file_of(&text));
        promtool(&["check", "rules", file.path().to_str().unwrap()]).unwrap_or_else(|e| panic!("{e}"));
    }
    for (bad, key) in [
        ("{ShipperMemoryBudgetFull: {threshold: 90}}", "threshold"),
        ("{ShipperPushBlocked: {for: soon}}", "for"),
    ] {
        let err = show_only(
            "templates/prometheusrule.yaml",
            &format!("prometheusRule: {{enabled: true, alerts: {bad}}}"),
        )
        .unwrap_err();
        assert!(err.contains(key), "{bad}: {err}");
    }
}

/// ShipperDown reads `up{job="shipper"}`: the ServiceMonitor takes the job from the Service's
/// `app.kubernetes.io/name`, which is `shipper`, and labels each target with its node.
#[test]
fn the_service_monitor_gives_the_job_the_alerts_read() {
    let values = "serviceMonitor: {enabled: true}";
    let monitor = &documents(&show_only("templates/servicemonitor.yaml", values).unwrap())[0];
    let service = &documents(&show_only("templates/service.yaml", values).unwrap())[0];
    let label = monitor["spec"]["jobLabel"].as_str().unwrap();
    assert_eq!(service["metadata"]["labels"][label], "shipper");
    let relabel = &monitor["spec"]["endpoints"][0]["relabelings"][0];
    assert_eq!(relabel["targetLabel"], "node");
}

/// Every query of the dashboard, its variables given values, as a recording rule promtool parses.
fn queries_as_rules(dashboard: &Value) -> String {
    let mut out = String::from("groups:\n  - name: dashboard\n    rules:\n");
    let mut n = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "5m")
                .replace("$job", ".*")
                .replace("$instance", ".*");
            n += 1;
            out += &format!(
                "      - record: dashboard:query{n}\n        expr: {}\n",
                serde_json::json!(expr)
            );
        }
    }
    out
}

#[test]
fn the_dashboard_is_grafana_json_with_a_datasource_variable_and_queries_prometheus_parses() {
    let text = std::fs::read_to_string(DASHBOARD).unwrap();
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], "shipper-agents");
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    let datasource = variables
        .iter()
        .find(|v| v["type"] == "datasource")
        .expect("a datasource variable");
    assert_eq!(datasource["query"], "prometheus");
    let name = datasource["name"].as_str().unwrap();
    let by_variable = serde_json::json!({"type": "prometheus", "uid": format!("${{{name}}}")});

    let (mut ids, mut queries) = (BTreeSet::new(), 0);
    for panel in dashboard["panels"].as_array().unwrap() {
        assert!(ids.insert(panel["id"].as_u64().unwrap()), "two panels share an id");
        let grid = &panel["gridPos"];
        assert!(
            grid["x"].as_u64().unwrap() + grid["w"].as_u64().unwrap() <= 24,
            "{panel}"
        );
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"], by_variable, "{}", panel["title"]);
        for target in panel["targets"].as_array().unwrap() {
            assert_eq!(target["datasource"], by_variable, "{}", panel["title"]);
            queries += 1;
        }
    }
    for v in variables.iter().filter(|v| v["type"] == "query") {
        assert_eq!(v["datasource"], by_variable, "variable {}", v["name"]);
    }
    assert!(queries >= 20, "{queries} queries");
    if have(
        "promtool",
        "the_dashboard_is_grafana_json_with_a_datasource_variable_and_queries_prometheus_parses",
    ) {
        let file = values_file(&queries_as_rules(&dashboard));
        let checked = promtool(&["check", "rules", file.path().to_str().unwrap()]).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            checked.contains(&format!("SUCCESS: {queries} rules found")),
            "{checked}"
        );
    }

    // The ConfigMap Grafana's sidecar loads: its label, the folder annotation, the JSON as it is.
    let values = "dashboards: {enabled: true, folder: Logs, namespace: grafana}";
    let map = &documents(&show_only("templates/dashboard.yaml", values).unwrap())[0];
    assert_eq!(map["metadata"]["namespace"], "grafana");
    assert_eq!(map["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(map["metadata"]["annotations"]["grafana_folder"], "Logs");
    assert_eq!(map["data"]["shipper.json"].as_str().unwrap(), text.trim_end());
    let objects = documents(&show_only("templates/dashboard.yaml", "dashboards: {enabled: true}").unwrap());
    assert_eq!(find(&objects, "ConfigMap")["metadata"]["namespace"], "monitoring");
}
