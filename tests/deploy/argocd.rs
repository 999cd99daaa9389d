//! The ArgoCD Application deploys the chart into `monitoring` with inline values that Helm renders
//! (the chart's values.schema.json refuses a misspelt key) into a deployable DaemonSet, and that
//! `helm lint --strict` passes.

use crate::helm::assert_deployable;
use crate::render::{render, ROOT};
use serde_json::Value;
use std::path::Path;

/// Checks an Application for our chart as ArgoCD would use it and renders its values: the chart's
/// objects, deployable, and the checked config (JSON).
pub fn check_application(app: &Value) -> (Vec<Value>, Value) {
    assert_eq!(app["apiVersion"], "argoproj.io/v1alpha1");
    assert_eq!(app["kind"], "Application");
    let spec = &app["spec"];
    assert_eq!(spec["destination"]["namespace"], "monitoring");
    assert_eq!(spec["destination"]["server"], "https://kubernetes.default.svc");
    let source = &spec["source"];
    let path = source["path"].as_str().unwrap();
    assert!(
        Path::new(ROOT).join(path).join("Chart.yaml").exists(),
        "{path} is not the chart"
    );
    assert_eq!(source["helm"]["releaseName"], "shipper");
    let options = spec["syncPolicy"]["syncOptions"].as_array().unwrap();
    assert!(options.iter().any(|o| o == "CreateNamespace=true"));

    let values = serde_yaml_ng::to_string(&source["helm"]["valuesObject"]).unwrap();
    crate::render::lint(Some(&values)).unwrap_or_else(|e| panic!("helm lint --strict refuses the valuesObject: {e}"));
    let objects = render(Some(&values));
    assert_deployable(&objects);
    let config = crate::render::check_config(&objects);
    (objects, config)
}

#[test]
fn argocd_application_deploys_the_chart_into_monitoring() {
    let text = std::fs::read_to_string(Path::new(ROOT).join("deploy/argocd/shipper.yaml")).unwrap();
    let (_, config) = check_application(&serde_yaml_ng::from_str(&text).unwrap());
    assert_eq!(config["client"]["external_labels"]["cluster"], "my-cluster");
}

/// `shipper convert --from FROM --to TO tests/convert/FILE`, which must carry everything over: what
/// it wrote.
fn converted(from: &str, to: &str, file: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let written = dir.path().join("converted.yaml");
    let out = std::process::Command::new(crate::render::BIN)
        .args(["convert", "--from", from, "--to", to])
        .arg(Path::new(ROOT).join("tests/convert").join(file))
        .arg("-o")
        .arg(&written)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::read_to_string(&written).unwrap()
}

/// The ArgoCD Application for Alloy's chart in tests/convert, converted by `shipper convert --to argocd`, installs
/// our chart with what it configured: its Loki, external label, relabel rule, priority
/// class, tolerations and resources.
#[test]
fn an_alloy_application_converts_to_one_for_our_chart() {
    let app: Value = serde_yaml_ng::from_str(&converted(
        "alloy-helm-values",
        "argocd",
        "alloy-argocd-application.yaml",
    ))
    .unwrap();
    assert_eq!(app["metadata"]["name"], "shipper");
    assert_eq!(app["spec"]["syncPolicy"]["automated"]["selfHeal"], true);
    let (objects, config) = check_application(&app);
    let client = &config["client"];
    assert_eq!(
        client["url"],
        "http://loki-gateway.monitoring.svc.cluster.local/loki/api/v1/push"
    );
    assert_eq!(client["external_labels"]["cluster"], "my-cluster");
    assert_eq!(config["discovery"], "kubernetes");
    let rules = config["relabel_configs"].as_array().unwrap();
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(
        rules[0]["source_labels"][0],
        "__meta_kubernetes_pod_label_app_kubernetes_io_name"
    );
    assert_eq!(rules[0]["target_label"], "app");
    assert_eq!(
        config["pipeline_stages"],
        serde_json::json!([{"labeldrop": ["job", "node_name", "stream"]}])
    );
    let pod = &crate::render::find(&objects, "DaemonSet")["spec"]["template"]["spec"];
    assert_eq!(pod["priorityClassName"], "system-node-critical");
    assert_eq!(pod["tolerations"], serde_json::json!([{"operator": "Exists"}]));
    assert_eq!(pod["containers"][0]["resources"]["limits"]["memory"], "512Mi");
}

/// Promtail chart values converted by `shipper convert --to helm-values` are values our chart
/// knows, render a deployable DaemonSet, and carry the source's client, rules, placement and
/// positions (imported at the first start).
#[test]
fn promtail_chart_values_convert_to_values_our_chart_renders() {
    let text = converted("promtail-helm-values", "helm-values", "promtail-chart-values.yaml");
    crate::render::lint(Some(&text)).unwrap_or_else(|e| panic!("helm lint --strict refuses the converted values: {e}"));
    let objects = render(Some(&text));
    // The source's tolerations (control-plane nodes only) replace the chart's (every taint).
    crate::helm::assert_deployable_where(&objects, false);
    let config = crate::render::check_config(&objects);
    assert_eq!(config["client"]["tenant_id"], "team-a");
    assert_eq!(config["server"]["log_level"], "warn");
    let rules = config["relabel_configs"].as_array().unwrap();
    assert_eq!(rules.last().unwrap()["action"], "labelmap");
    let pod = &crate::render::find(&objects, "DaemonSet")["spec"]["template"]["spec"];
    assert_eq!(pod["priorityClassName"], "system-node-critical");
    assert_eq!(pod["tolerations"][0]["key"], "node-role.kubernetes.io/control-plane");
    // Promtail's chart keeps its positions on the node under /run/promtail: each node's first start
    // resumes every file where Promtail stopped.
    assert_eq!(
        config["positions"]["import_from"],
        "promtail:/var/lib/shipper-import/positions.yaml"
    );
}
