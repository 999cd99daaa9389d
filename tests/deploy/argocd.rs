//! The ArgoCD Application deploys the chart into `monitoring` with inline values that the chart
//! knows (a misspelt key would be silently ignored by Helm) and that render a deployable DaemonSet.

use crate::helm::assert_deployable;
use crate::render::{render, CHART, ROOT};
use serde_json::Value;
use std::path::Path;

/// Values whose keys are the user's own (label maps, extra config), not the chart's.
const FREE_FORM: [&str; 6] = [
    ".loki.externalLabels",
    ".kubernetes.podLabels",
    ".kubernetes.podAnnotations",
    ".extraConfig",
    ".podLabels",
    ".podAnnotations",
];

/// Every key path of `given` that `known` (the chart's values.yaml) does not have.
fn unknown_keys(given: &Value, known: &Value, path: &str, out: &mut Vec<String>) {
    let (Some(given), Some(known_map)) = (given.as_object(), known.as_object()) else {
        return;
    };
    for (k, v) in given {
        let p = format!("{path}.{k}");
        match known_map.get(k) {
            None if !FREE_FORM.contains(&path) && known.as_object().is_some_and(|m| !m.is_empty()) => out.push(p),
            Some(inner) if !FREE_FORM.contains(&p.as_str()) => unknown_keys(v, inner, &p, out),
            _ => {}
        }
    }
}

#[test]
fn argocd_application_deploys_the_chart_into_monitoring() {
    let text = std::fs::read_to_string(Path::new(ROOT).join("deploy/argocd/shipper.yaml")).unwrap();
    let app: Value = serde_yaml_ng::from_str(&text).unwrap();
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

    let values = &source["helm"]["valuesObject"];
    let chart_values: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(Path::new(CHART).join("values.yaml")).unwrap()).unwrap();
    let mut unknown = Vec::new();
    unknown_keys(values, &chart_values, "", &mut unknown);
    assert!(unknown.is_empty(), "values the chart does not have: {unknown:?}");
    let objects = render(Some(&serde_yaml_ng::to_string(values).unwrap()));
    assert_deployable(&objects);
    let config = crate::render::check_config(&objects);
    assert_eq!(config["client"]["external_labels"]["cluster"], "my-cluster");
}

#[test]
fn unknown_values_are_found() {
    let known: Value = serde_json::json!({"loki": {"url": "", "externalLabels": {}}, "tolerations": []});
    let given = serde_json::json!({"loki": {"ulr": "x", "externalLabels": {"any": "1"}}, "tolerations": [{}]});
    let mut unknown = Vec::new();
    unknown_keys(&given, &known, "", &mut unknown);
    assert_eq!(unknown, [".loki.ulr"]);
}
