//! `shipper convert` on chart values whose config reads the container's env (`extraEnv`,
//! `envFrom`) and Helm templates (`tpl`), and on multi-source ArgoCD Applications whose values are
//! in a `ref: values` source: the real binary on the corpus in `tests/convert/`.

use crate::convert::{convert_with, kubernetes, label_sets, ship_two_pods, Overlay, CORPUS};
use crate::support::{Env, BIN};
use serde_yaml_ng::Value;
use shipper_testkit::Pod;
use std::path::Path;
use std::process::Command;

fn yaml(file: &Path) -> Value {
    serde_yaml_ng::from_str(&std::fs::read_to_string(file).unwrap()).unwrap()
}

/// `shipper check --config FILE` with `vars` set: whether it passed, and its output.
fn check(file: &Path, vars: &[(&str, &str)]) -> (bool, String) {
    let o = Command::new(BIN)
        .args(["check", "--config"])
        .arg(file)
        .envs(vars.iter().copied())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}

/// The Application's values file is read from --values-dir: its config converts with the Loki URL
/// of the Application's extraEnv and the cluster rendered from its values, and ships with those
/// labels. Without --values-dir the report names the file to pass (exit 3) and the inline values
/// still convert; --to argocd keeps the `ref: values` source beside shipper's chart.
#[test]
fn a_multi_source_application_reads_its_values_file_and_ships_with_its_labels() {
    let env = Env::new();
    let dir = Path::new(CORPUS).join("values");
    let dir = dir.to_str().unwrap();
    let file = "alloy-argocd-multisource.yaml";
    let cfg = env.path("shipper.yaml");
    let (code, report) = convert_with("alloy-helm-values", "config", file, &cfg, &["--values-dir", dir]);
    assert_eq!(code, 0, "everything maps: {report}");
    assert!(
        report.contains("env LOKI_URL from alloy.extraEnv[0]: mapped to its value"),
        "{report}"
    );
    assert!(
        report.contains("$values/alloy/values.yaml: mapped to the values read from"),
        "{report}"
    );
    let doc = yaml(&cfg);
    assert_eq!(
        doc["client"]["url"].as_str(),
        Some("http://loki-gateway.monitoring.svc.cluster.local/loki/api/v1/push"),
        "the Application's inline value wins over the values file's"
    );
    let mut overlay = Overlay::new(&env);
    let a = Pod::new("monitoring", "logger-0", "uid-logger", "node-a").container("logger", Some("containerd://0a1b2c"));
    let b = Pod::new("default", "plain-0", "uid-plain", "node-a").container("main", Some("containerd://3d4e5f"));
    let (api, root) = kubernetes(&env, &mut overlay, &[a, b]);
    overlay.apply(&cfg);
    let a = root.join("monitoring_logger-0_uid-logger/logger/0.log");
    let b = root.join("default_plain-0_uid-plain/main/0.log");
    let agent = ship_two_pods(&env, &cfg, &api, &a, &b);
    let mut want = vec![
        format!(
            "{{cluster=\"prod-eu\", container=\"logger\", filename=\"{}\", namespace=\"monitoring\", pod=\"logger-0\"}}",
            a.display()
        ),
        format!(
            "{{cluster=\"prod-eu\", container=\"main\", filename=\"{}\", namespace=\"default\", pod=\"plain-0\"}}",
            b.display()
        ),
    ];
    want.sort();
    assert_eq!(label_sets(&env), want);
    agent.stop();

    let (code, report) = convert_with("alloy-helm-values", "config", file, &env.path("no-dir.yaml"), &[]);
    assert_eq!(code, 3, "{report}");
    assert!(
        report.contains("pass a checkout of it with --values-dir DIR to read DIR/alloy/values.yaml"),
        "{report}"
    );
    let missing = env.path("empty-dir");
    std::fs::create_dir_all(&missing).unwrap();
    let (code, report) = convert_with(
        "alloy-helm-values",
        "config",
        file,
        &env.path("missing.yaml"),
        &["--values-dir", missing.to_str().unwrap()],
    );
    assert_eq!(code, 3, "{report}");
    assert!(report.contains("cannot read"), "{report}");

    let app = env.path("app.yaml");
    let (code, report) = convert_with("alloy-helm-values", "argocd", file, &app, &["--values-dir", dir]);
    assert_eq!(code, 0, "{report}");
    assert!(
        report.contains("converted values inline (helm.valuesObject)"),
        "{report}"
    );
    let app = yaml(&app);
    let sources = app["spec"]["sources"].as_sequence().unwrap();
    assert_eq!(sources.len(), 2);
    assert_eq!(sources[0]["path"].as_str(), Some("deploy/helm/shipper"));
    let values = &sources[0]["helm"]["valuesObject"];
    assert_eq!(values["loki"]["externalLabels"]["cluster"].as_str(), Some("prod-eu"));
    assert_eq!(values["extraEnv"][0]["name"].as_str(), Some("LOKI_URL"));
    assert_eq!(sources[1]["ref"].as_str(), Some("values"));
    assert!(app["spec"].get("source").is_none());
}

/// Promtail chart values with the chart's `config.file` template and -config.expand-env=true: the
/// template is rendered from the values (the chart's defaults under them), the plain env value is
/// written in, the Secret's stays `${LOKI_TENANT}` and goes to our chart's extraEnv, and the
/// release's namespace is read from the pod's.
#[test]
fn promtail_chart_values_with_their_config_template_and_env_convert() {
    let env = Env::new();
    let cfg = env.path("shipper.yaml");
    let file = "promtail-chart-tpl.yaml";
    let (code, report) = convert_with("promtail-helm-values", "config", file, &cfg, &[]);
    assert_eq!(code, 0, "everything maps: {report}");
    assert!(
        report.contains("env LOKI_TENANT from extraEnv[1] (Secret \"loki-tenant\" key \"tenant\")")
            && report.contains("set LOKI_TENANT where shipper runs"),
        "{report}"
    );
    assert!(
        report.contains("value config.file: mapped to the config it renders"),
        "{report}"
    );
    let doc = yaml(&cfg);
    let client = &doc["client"];
    assert_eq!(
        client["url"].as_str(),
        Some("http://loki-gateway.monitoring.svc.cluster.local/loki/api/v1/push")
    );
    assert_eq!(client["tenant_id"].as_str(), Some("${LOKI_TENANT}"));
    assert_eq!(client["external_labels"]["cluster"].as_str(), Some("prod-eu"));
    assert_eq!(doc["server"]["http_listen"].as_str(), Some("0.0.0.0:3101"));
    assert_eq!(
        doc["relabel_configs"].as_sequence().unwrap().last().unwrap()["action"].as_str(),
        Some("labelmap")
    );
    let (ok, out) = check(&cfg, &[("LOKI_TENANT", "team-a"), ("RELEASE_NAMESPACE", "monitoring")]);
    assert!(ok && out.contains("tenant_id: team-a"), "{out}");

    let values = env.path("values.yaml");
    let (code, report) = convert_with("promtail-helm-values", "helm-values", file, &values, &[]);
    assert_eq!(code, 0, "{report}");
    assert!(
        report.contains("value extraArgs -config.expand-env=true: built in"),
        "{report}"
    );
    let values = yaml(&values);
    let extra = values["extraEnv"].as_sequence().unwrap();
    let names: Vec<&str> = extra.iter().filter_map(|e| e["name"].as_str()).collect();
    assert_eq!(names, ["LOKI_HOST", "LOKI_TENANT", "RELEASE_NAMESPACE"]);
    assert_eq!(
        extra[1]["valueFrom"]["secretKeyRef"]["name"].as_str(),
        Some("loki-tenant")
    );
    assert_eq!(
        extra[2]["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
        Some("metadata.namespace")
    );
    assert_eq!(values["loki"]["tenantId"].as_str(), Some("${LOKI_TENANT}"));
}

/// Templates the conversion cannot render (a value the file lacks, an `include`) become `${VAR}`
/// placeholders named in the report: exit 3, and the config passes `shipper check` once they are
/// set. envFrom's Secret is carried to our chart's envFrom.
#[test]
fn templates_without_a_value_here_become_placeholders_the_check_takes() {
    let env = Env::new();
    let cfg = env.path("shipper.yaml");
    let file = "alloy-chart-env-tpl.yaml";
    let (code, report) = convert_with("alloy-helm-values", "config", file, &cfg, &[]);
    assert_eq!(code, 3, "{report}");
    for said in [
        ".Values.region is not in the values file: kept as ${VALUES_REGION}",
        "the function `include`: kept as ${HELM_TEMPLATE_1}",
        "env LOKI_TENANT from alloy.envFrom[0] (Secret loki-tenant)",
        "env LOKI_URL from alloy.extraEnv[0]: mapped to its value",
    ] {
        assert!(report.contains(said), "{said}: {report}");
    }
    let doc = yaml(&cfg);
    let labels = &doc["client"]["external_labels"];
    assert_eq!(labels["cluster"].as_str(), Some("prod-eu"));
    assert_eq!(labels["region"].as_str(), Some("${VALUES_REGION}"));
    assert_eq!(labels["owner"].as_str(), Some("${HELM_TEMPLATE_1}"));
    assert_eq!(
        doc["client"]["url"].as_str(),
        Some("https://logs.example.com/loki/api/v1/push")
    );
    let vars = [
        ("VALUES_REGION", "eu-west-1"),
        ("HELM_TEMPLATE_1", "team-a"),
        ("LOKI_TENANT", "t1"),
        ("RELEASE_NAMESPACE", "monitoring"),
    ];
    let (ok, out) = check(&cfg, &vars);
    assert!(ok && out.contains("region: eu-west-1"), "{out}");

    let values = env.path("values.yaml");
    let (code, report) = convert_with("alloy-helm-values", "helm-values", file, &values, &[]);
    assert_eq!(code, 3, "{report}");
    let values = yaml(&values);
    assert_eq!(values["envFrom"][0]["secretRef"]["name"].as_str(), Some("loki-tenant"));
    assert_eq!(
        values["loki"]["url"].as_str(),
        Some("https://logs.example.com/loki/api/v1/push")
    );
}
