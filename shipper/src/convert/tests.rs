use super::{Outcome, Source, Target};

fn convert(from: Source, text: &str, file: &str) -> Result<super::Converted, String> {
    super::convert(from, Target::Config, text, file)
}

fn alloy(text: &str) -> Result<super::Converted, String> {
    convert(Source::Alloy, text, "config.alloy")
}

/// An endpoint for the test configs (used by the Alloy module tests too).
pub(crate) const WRITE: &str = r#"
loki.write "default" {
  endpoint {
    url = "http://loki:3100/loki/api/v1/push"
  }
}
"#;

#[test]
fn bad_alloy_input_gets_an_error_with_its_place_never_a_panic() {
    let cases = [
        ("loki.write \"x\" {\n  endpoint {\n", "config.alloy:3:1"),
        ("lokki.source.file \"a\" {\n}\n", "not an Alloy component"),
        (
            "loki.source.file \"a\" {\n  targets = [{__path__ = \"/x\"}]\n  forward_to = [loki.write.nowhere.receiver]\n}\n",
            "names `loki.write.nowhere`, which is not defined",
        ),
        (
            "loki.source.file \"a\" {\n  targets = [{__path__ = \"/x\"}]\n  forward_to = []\n}\n",
            "forward_to is empty",
        ),
        (
            "loki.source.file \"a\" {\n  targets = [{__path__ = \"/x\"}]\n}\n",
            "has no forward_to",
        ),
    ];
    for (text, want) in cases {
        let e = alloy(text).expect_err(text);
        assert!(e.contains(want), "{text:?}: {e}");
        assert!(e.starts_with("config.alloy:"), "{e}");
    }
    let e = convert(Source::Promtail, "scrape_configs: [", "p.yaml").unwrap_err();
    assert!(e.starts_with("p.yaml: not a YAML document"), "{e}");
}

#[test]
fn static_targets_env_and_secrets() {
    let text = r#"
local.file_match "logs" {
  path_targets = [{"__path__" = "/var/log/app/*.log", "__path_exclude__" = "/var/log/app/*.gz", job = "app", host = sys.env("HOSTNAME")}]
}
loki.source.file "logs" {
  targets    = local.file_match.logs.targets
  forward_to = [loki.write.cloud.receiver]
}
loki.write "cloud" {
  endpoint {
    url = coalesce(env("LOKI_URL_UNSET_IN_TESTS"), "https://logs.example.com/loki/api/v1/push")
    basic_auth {
      username = "123"
      password = "glc_inline_secret"
    }
    bearer_token = "also-secret"
  }
  external_labels = { cluster = "c1" }
}
"#;
    let c = alloy(text).unwrap();
    let y = &c.yaml;
    assert!(!y.contains("glc_inline_secret") && !y.contains("also-secret"), "{y}");
    assert!(
        y.contains("password_file: /etc/shipper/secrets/client0-password"),
        "{y}"
    );
    assert!(
        y.contains("bearer_token_file: /etc/shipper/secrets/client0-bearer-token"),
        "{y}"
    );
    assert!(
        y.contains("url: ${LOKI_URL_UNSET_IN_TESTS:-https://logs.example.com/loki/api/v1/push}"),
        "{y}"
    );
    assert!(y.contains("host: ${HOSTNAME}"), "{y}");
    assert!(y.contains("- /var/log/app/*.gz") && y.contains("format: raw"), "{y}");
    assert!(y.contains("cluster: c1"), "{y}");
    assert!(c.report.complete(), "{}", c.report.render());
    let cfg = crate::config::load_str(
        &y.replace("${HOSTNAME}", "h")
            .replace("${LOKI_URL_UNSET_IN_TESTS:-", "${U:-"),
        "t",
    )
    .unwrap();
    assert_eq!(cfg.targets[0].labels["job"], "app");
    assert_eq!(cfg.client.external_labels["cluster"], "c1");
}

#[test]
fn what_has_no_counterpart_is_reported_with_its_line_and_the_rest_still_converts() {
    let text = format!(
        r#"
loki.source.file "a" {{
  targets    = [{{__path__ = "/var/log/*.log"}}]
  forward_to = [loki.process.p.receiver]
}}
loki.process "p" {{
  stage.match {{
    selector = "{{app=\"x\"}}"
  }}
  stage.luhn {{
    replacement = "**"
    min_length = 13
  }}
  stage.json {{
    expressions = {{ level = "" }}
  }}
  forward_to = [loki.write.default.receiver]
}}
prometheus.scrape "m" {{
  targets = []
}}
{WRITE}"#
    );
    let c = alloy(&text).unwrap();
    assert!(!c.report.complete());
    let unsupported: Vec<(Option<u32>, &str)> = c
        .report
        .notes
        .iter()
        .filter(|n| matches!(n.outcome, Outcome::Unsupported(_)))
        .map(|n| (n.line, n.what.as_str()))
        .collect();
    assert_eq!(
        unsupported,
        [
            (Some(7), "loki.process stage.match"),
            (Some(10), "loki.process stage.luhn"),
            (Some(19), "prometheus.scrape \"m\""),
        ]
    );
    assert!(c.yaml.contains("json:"), "{}", c.yaml);
    let rendered = c.report.render();
    assert!(
        rendered.contains("config.alloy:7: loki.process stage.match: NOT SUPPORTED"),
        "{rendered}"
    );
}

#[test]
fn alloy_stages_template_replace_pack_decolorize_sampling_and_metrics_carry() {
    let text = format!(
        r#"
loki.source.file "a" {{
  targets    = [{{__path__ = "/var/log/*.log"}}]
  forward_to = [loki.process.p.receiver]
}}
loki.process "p" {{
  stage.decolorize {{}}
  stage.regex {{
    expression = "status=(?P<status>\\d+) ip=(?P<ip>\\S+)"
  }}
  stage.template {{
    source   = "status"
    template = "{{{{ .Value | ToLower }}}}"
  }}
  stage.replace {{
    expression = "ip=(\\S+)"
    replace    = "***"
  }}
  stage.metrics {{
    metric.counter {{
      name        = "requests_total"
      description = "requests"
      source      = "status"
      action      = "inc"
    }}
    metric.histogram {{
      name    = "status_code"
      source  = "status"
      buckets = [200, 400, 500]
      prefix  = "my_"
    }}
  }}
  stage.sampling {{
    rate = 0.5
  }}
  stage.pack {{
    labels = ["status"]
  }}
  forward_to = [loki.write.default.receiver]
}}
{WRITE}"#
    );
    let c = alloy(&text).unwrap();
    assert!(c.report.complete(), "{}", c.report.render());
    let cfg = crate::config::load_str(&c.yaml, "t").unwrap();
    let names: Vec<&str> = cfg.targets[0].pipeline_stages.iter().map(|s| s.name()).collect();
    assert_eq!(
        names,
        [
            "decolorize",
            "regex",
            "template",
            "replace",
            "metrics",
            "sampling",
            "pack"
        ]
    );
    let crate::config::StageConfig::Metrics(m) = &cfg.targets[0].pipeline_stages[4] else { panic!() };
    // Alloy's own names stay, so its dashboards keep working.
    assert_eq!(m["requests_total"].prefix.as_deref(), Some("loki_process_custom_"));
    assert_eq!(m["requests_total"].config.action.as_deref(), Some("inc"));
    assert_eq!(m["status_code"].prefix.as_deref(), Some("my_"));
    assert_eq!(m["status_code"].config.buckets, [200.0, 400.0, 500.0]);
}

#[test]
fn relabel_replacements_and_promtail_env_references_survive_expansion() {
    let text = r#"
clients:
  - url: ${LOKI_URL:-http://loki:3100/loki/api/v1/push}
scrape_configs:
  - job_name: pods
    kubernetes_sd_configs:
      - role: pod
    relabel_configs:
      - source_labels: [__meta_kubernetes_pod_label_team]
        target_label: team
        replacement: team-${1}
"#;
    let c = convert(Source::Promtail, text, "p.yaml").unwrap();
    assert!(c.yaml.contains("replacement: team-$${1}"), "{}", c.yaml);
    assert!(
        c.yaml.contains("url: ${LOKI_URL:-http://loki:3100/loki/api/v1/push}"),
        "{}",
        c.yaml
    );
    let cfg = crate::config::load_str(&c.yaml, "t").unwrap();
    assert_eq!(cfg.relabel_configs[0].replacement, "team-${1}");
    // The built-in labels this config never sets are dropped at the end.
    let last = serde_json::to_value(cfg.pipeline_stages.last().unwrap()).unwrap();
    assert_eq!(
        last["labeldrop"],
        serde_json::json!(["namespace", "pod", "container", "app", "job", "node_name", "stream"])
    );
}

#[test]
fn strings_that_look_like_env_references_in_alloy_stay_literal() {
    let text = format!(
        r#"
loki.source.file "a" {{
  targets    = [{{__path__ = "/var/log/${{x}}/*.log", job = "$${{y}}"}}]
  forward_to = [loki.write.default.receiver]
}}
{WRITE}"#
    );
    let c = alloy(&text).unwrap();
    let cfg = crate::config::load_str(&c.yaml, "t").unwrap();
    assert_eq!(cfg.targets[0].paths, ["/var/log/${x}/*.log"]);
    assert_eq!(cfg.targets[0].labels["job"], "$${y}");
}

#[test]
fn chart_values_and_applications_errors_name_the_file_and_what_to_do() {
    let values = "alloy:\n  configMap:\n    content: |\n      loki.write \"x\" {\n        endpoint {\n";
    let e = super::convert(Source::AlloyHelmValues, Target::HelmValues, values, "v.yaml").unwrap_err();
    // The error's line is the file's (content starts on line 4), not the config's.
    assert!(e.starts_with("v.yaml:6:"), "{e}");
    let e = super::convert(Source::AlloyHelmValues, Target::Argocd, "alloy: {}\n", "v.yaml").unwrap_err();
    assert!(e.contains("not an ArgoCD Application: use --to helm-values"), "{e}");
    let app = "kind: Application\nspec:\n  source:\n    chart: loki\n";
    let e = super::convert(Source::AlloyHelmValues, Target::Argocd, app, "a.yaml").unwrap_err();
    assert!(e.contains("installs chart loki, not alloy"), "{e}");
    let external = "alloy:\n  configMap:\n    create: false\n    name: my-config\n";
    let c = super::convert(Source::AlloyHelmValues, Target::HelmValues, external, "v.yaml").unwrap();
    assert!(!c.report.complete());
    assert!(
        c.report.render().contains("convert that config with `--from alloy`"),
        "{}",
        c.report.render()
    );
}

#[test]
fn promtail_stages_carry_and_those_without_counterpart_are_reported() {
    let text = r#"
scrape_configs:
  - job_name: app
    pipeline_stages:
      - json:
          expressions: {level: level, msg: message}
      - labels: {level: ""}
      - match:
          selector: '{app="x"}'
          stages: [{drop: {expression: ".*"}}]
      - metrics:
          lines: {type: Counter}
      - metrics:
          lines_total: {type: Counter, config: {match_all: true, action: inc}}
      - eventlogmessage: {source: message}
      - output: {source: msg}
    static_configs:
      - labels: {__path__: /var/log/app/*.log, job: app}
"#;
    let c = convert(Source::Promtail, text, "p.yaml").unwrap();
    let cfg = crate::config::load_str(&c.yaml, "t").unwrap();
    let names: Vec<&str> = cfg.targets[0].pipeline_stages.iter().map(|s| s.name()).collect();
    assert_eq!(names, ["json", "labels", "match", "metrics", "output"]);
    // Promtail's metric names stay (its default prefix), so dashboards keep working.
    assert!(c.yaml.contains("prefix: promtail_custom_"), "{}", c.yaml);
    let lines: Vec<Option<u32>> = c
        .report
        .notes
        .iter()
        .filter(|n| matches!(n.outcome, Outcome::Unsupported(_)))
        .map(|n| n.line)
        .collect();
    // The counter without an action (Promtail refuses it too) and eventlogmessage.
    assert_eq!(lines, [Some(11), Some(15)]);
    assert!(
        c.report.render().contains("a counter takes `inc` or `add`"),
        "{}",
        c.report.render()
    );
}

#[test]
fn kubernetes_rules_and_stages_stay_the_pods_when_files_are_tailed_too() {
    let text = r#"
clients: [{url: "http://loki:3100/loki/api/v1/push"}]
scrape_configs:
  - job_name: pods
    kubernetes_sd_configs: [{role: pod}]
    pipeline_stages: [{cri: {}}, {json: {expressions: {level: ""}}}]
    relabel_configs:
      - source_labels: [__meta_kubernetes_pod_label_team]
        target_label: team
  - job_name: syslog
    static_configs: [{labels: {__path__: /var/log/syslog, job: syslog}}]
"#;
    let c = convert(Source::Promtail, text, "p.yaml").unwrap();
    assert!(c.report.complete(), "{}", c.report.render());
    let mut cfg = crate::config::load_str(&c.yaml, "t").unwrap();
    assert!(
        cfg.pipeline_stages.is_empty() && cfg.relabel_configs.is_empty(),
        "{}",
        c.yaml
    );
    cfg.add_discovered_targets();
    let syslog = &cfg.targets[0];
    assert_eq!(syslog.paths, ["/var/log/syslog"]);
    assert!(syslog.pipeline_stages.is_empty() && syslog.relabel_configs.is_empty());
    let pods = cfg
        .targets
        .iter()
        .find(|t| t.origin == Some("kubernetes"))
        .expect("the pods' target");
    assert_eq!(pods.pipeline_stages[0].name(), "json");
    assert_eq!(pods.relabel_configs.len(), 1);
}

#[test]
fn promtails_positions_are_imported_at_the_first_start_not_used_as_ours() {
    let text = "positions:\n  filename: /var/lib/promtail/positions.yaml\n  sync_period: 5s\nclients:\n  - url: http://loki:3100/loki/api/v1/push\nscrape_configs:\n  - job_name: x\n    static_configs:\n      - labels: {__path__: /var/log/x.log}\n";
    let done = convert(Source::Promtail, text, "p.yaml").unwrap();
    assert!(
        done.yaml.contains("filename: /var/lib/promtail/shipper-positions.json"),
        "{}",
        done.yaml
    );
    assert!(done.yaml.contains("sync_period: 5s"), "{}", done.yaml);
    assert!(
        done.yaml
            .contains("import_from: promtail:/var/lib/promtail/positions.yaml"),
        "{}",
        done.yaml
    );
}

/// A Loki URL and tenant read from the environment (as a chart's `extraEnv` feeds them) stay
/// `${VAR}`s read when the agent starts; the check of the converted config stands in a URL for the
/// URL, so the conversion succeeds.
#[test]
fn a_loki_url_from_the_environment_converts_and_passes_the_check() {
    let text = r#"
local.file_match "logs" {
  path_targets = [{"__path__" = "/var/log/app/*.log"}]
}
loki.source.file "logs" {
  targets    = local.file_match.logs.targets
  forward_to = [loki.write.default.receiver]
}
loki.write "default" {
  endpoint {
    url       = env("SHIPPER_TEST_UNSET_LOKI_URL")
    tenant_id = sys.env("SHIPPER_TEST_UNSET_TENANT")
  }
}
"#;
    let done = convert(Source::Alloy, text, "a.alloy").unwrap();
    assert!(
        done.yaml.contains("url: ${SHIPPER_TEST_UNSET_LOKI_URL}"),
        "{}",
        done.yaml
    );
    assert!(
        done.yaml.contains("tenant_id: ${SHIPPER_TEST_UNSET_TENANT}"),
        "{}",
        done.yaml
    );
    assert!(
        done.report
            .render()
            .contains("environment variable SHIPPER_TEST_UNSET_LOKI_URL"),
        "{}",
        done.report.render()
    );
}

/// A Promtail job whose files come from `file_sd_configs` converts to a target with the same
/// target group files, which passes the check (the groups are read when the agent runs).
#[test]
fn promtail_file_sd_configs_become_a_target_reading_the_same_files() {
    let text = "clients:\n  - url: http://loki:3100/loki/api/v1/push\nscrape_configs:\n  - job_name: files\n    file_sd_configs:\n      - files: [/etc/promtail/targets/*.yaml]\n        refresh_interval: 1m\n";
    let done = convert(Source::Promtail, text, "p.yaml").unwrap();
    let cfg = crate::config::load_str(&done.yaml, "t").unwrap();
    let sd = &cfg.targets[0].file_sd_configs[0];
    assert_eq!(sd.files, ["/etc/promtail/targets/*.yaml"]);
    assert_eq!(sd.refresh_interval, crate::config::Dur::secs(60));
    assert!(
        done.report.render().contains("0 not supported"),
        "{}",
        done.report.render()
    );
}

/// Alloy's `stage.match` with its own stages, as the k8s-monitoring chart chooses the runtime's
/// format: the parsing stages are built in, the rest carried inside our `match`.
#[test]
fn alloy_stage_match_with_its_own_stages_becomes_our_match() {
    let text = format!(
        r#"
loki.source.file "a" {{
  targets    = [{{__path__ = "/var/log/pods/*/*/*.log"}}]
  forward_to = [loki.process.p.receiver]
}}
loki.process "p" {{
  stage.match {{
    selector = "{{tmp_container_runtime=\"containerd\"}}"
    stage.cri {{ }}
    stage.labels {{
      values = {{ flags = "", stream = "" }}
    }}
  }}
  stage.match {{
    selector = "{{tmp_container_runtime=\"docker\"}}"
    stage.docker {{ }}
  }}
  stage.match {{
    selector = "{{app=\"noisy\"}} |= \"debug\""
    action   = "drop"
    drop_counter_reason = "noisy_debug"
  }}
  forward_to = [loki.write.default.receiver]
}}
{WRITE}"#
    );
    let c = alloy(&text).unwrap();
    let cfg = crate::config::load_str(&c.yaml, "t").unwrap();
    let stages = &cfg.targets[0].pipeline_stages;
    let matches: Vec<&crate::process::config::MatchConfig> = stages
        .iter()
        .filter_map(|s| match s {
            crate::config::StageConfig::Match(m) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(matches.len(), 2, "{}", c.yaml);
    assert_eq!(matches[0].stages.len(), 1, "{}", c.yaml);
    assert_eq!(matches[0].stages[0].name(), "labels");
    assert_eq!(matches[1].drop_counter_reason.as_deref(), Some("noisy_debug"));
    assert!(c.report.complete(), "{}", c.report.render());
}

/// Chart values with their env: a plain extraEnv value is written in; a Secret's stays `${X}` and
/// goes to our chart's extraEnv with --to helm-values; values without templates or env convert as
/// they did.
#[test]
fn chart_env_values_are_written_in_and_secrets_carried() {
    let values = r#"
alloy:
  extraEnv:
    - name: LOKI_URL
      value: http://loki:3100/loki/api/v1/push
    - name: TENANT
      valueFrom:
        secretKeyRef: {name: t, key: k}
  configMap:
    content: |
      local.file_match "f" {
        path_targets = [{"__path__" = "/var/log/app/*.log"}]
      }
      loki.source.file "f" {
        targets    = local.file_match.f.targets
        forward_to = [loki.write.d.receiver]
      }
      loki.write "d" {
        endpoint {
          url       = env("LOKI_URL")
          tenant_id = env("TENANT")
        }
      }
"#;
    let c = super::convert(Source::AlloyHelmValues, Target::Config, values, "v.yaml").unwrap();
    assert!(c.yaml.contains("url: http://loki:3100/loki/api/v1/push"), "{}", c.yaml);
    assert!(c.yaml.contains("tenant_id: ${TENANT}"), "{}", c.yaml);
    let r = c.report.render();
    assert!(
        r.contains("env LOKI_URL from alloy.extraEnv[0]: mapped to its value"),
        "{r}"
    );
    assert!(
        r.contains("env TENANT from alloy.extraEnv[1] (Secret \"t\" key \"k\")"),
        "{r}"
    );
    assert!(!r.contains("environment variable TENANT"), "explained once: {r}");
    assert!(c.report.complete(), "{r}");
    let h = super::convert(Source::AlloyHelmValues, Target::HelmValues, values, "v.yaml").unwrap();
    assert!(h.yaml.contains("secretKeyRef"), "{}", h.yaml);
    assert!(h.yaml.contains("tenantId: ${TENANT}"), "{}", h.yaml);
    // A `$` in a value stays literal in our config.
    let dollar = values.replace("http://loki:3100/loki/api/v1/push", "http://loki:3100/a$${b}");
    let d = super::convert(Source::AlloyHelmValues, Target::Config, &dollar, "v.yaml").unwrap();
    assert!(
        d.yaml.contains("url: http://loki:3100/a$$$${b}") || d.yaml.contains("$${b}"),
        "{}",
        d.yaml
    );
}
