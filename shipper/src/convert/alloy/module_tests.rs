//! Custom components, modules, Secrets and files, loki.relabel in chains, selectors and the
//! journal, converted from Alloy text.

use super::super::tests::WRITE;
use super::super::{convert, Source, Target};
use serde_yaml_ng::Value;

fn alloy_at(text: &str, file: &str) -> (Value, String, bool) {
    let c = convert(Source::Alloy, Target::Config, text, file).unwrap_or_else(|e| panic!("{e}"));
    let yaml: Value = serde_yaml_ng::from_str(&c.yaml).unwrap();
    (yaml, c.report.render(), c.report.complete())
}

fn alloy(text: &str) -> (Value, String, bool) {
    alloy_at(text, "config.alloy")
}

/// A declare with a required argument, a defaulted one and an export, used by another declare
/// nested in it, instantiated twice.
#[test]
fn declares_are_inlined_per_instance_with_arguments_and_exports() {
    let text = format!(
        r#"
declare "files" {{
  argument "paths" {{ optional = false }}
  argument "job" {{
    optional = true
    default  = "varlogs"
  }}
  argument "logs_destinations" {{ }}

  declare "stamp" {{
    argument "next" {{ }}
    argument "team" {{ }}
    loki.process "add" {{
      stage.static_labels {{
        values = {{ team = argument.team.value }}
      }}
      forward_to = argument.next.value
    }}
    export "input" {{ value = loki.process.add.receiver }}
  }}

  stamp "s" {{
    next = argument.logs_destinations.value
    team = "ops-" + argument.job.value
  }}

  loki.source.file "tail" {{
    targets    = [{{ __path__ = argument.paths.value, job = argument.job.value }}]
    forward_to = [stamp.s.input]
  }}
}}

files "system" {{
  paths             = "/var/log/syslog"
  logs_destinations = [loki.write.default.receiver]
}}

files "apps" {{
  paths             = "/var/log/apps/*.log"
  job               = "apps"
  logs_destinations = [loki.write.default.receiver]
}}

declare "unused" {{ }}
{WRITE}"#
    );
    let (yaml, report, complete) = alloy(&text);
    assert!(complete, "{report}");
    let targets = yaml["targets"].as_sequence().unwrap();
    assert_eq!(targets.len(), 2, "{yaml:?}");
    let by_path = |p: &str| {
        targets
            .iter()
            .find(|t| t["paths"][0].as_str() == Some(p))
            .unwrap_or_else(|| panic!("{p}: {yaml:?}"))
    };
    let system = by_path("/var/log/syslog");
    assert_eq!(system["labels"]["job"], "varlogs");
    assert_eq!(system["pipeline_stages"][0]["static_labels"]["team"], "ops-varlogs");
    let apps = by_path("/var/log/apps/*.log");
    assert_eq!(apps["labels"]["job"], "apps");
    assert_eq!(apps["pipeline_stages"][0]["static_labels"]["team"], "ops-apps");
    for want in [
        "config.alloy:2: declare \"files\": mapped to its components inlined at each use (files \"system\" at line 33, files \"apps\" at line 38)",
        "config.alloy:10: declare \"stamp\": mapped to its components inlined at each use (stamp \"s\" in files.system at line 22, stamp \"s\" in files.apps at line 22)",
        "config.alloy:27: loki.source.file \"files.system/tail\": mapped to the files of its targets",
        "config.alloy:33: files \"system\": mapped to its declare's components, each labelled \"files.system/<its label>\"",
        "config.alloy:44: declare \"unused\": not needed: never used",
    ] {
        assert!(report.contains(want), "{want}\n{report}");
    }
}

#[test]
fn declare_errors_say_where_and_never_panic() {
    let cases = [
        (
            "declare \"d\" {\n  argument \"x\" { }\n}\nd \"a\" { }\n",
            "config.alloy:4:1: d \"a\" does not set `x`, an argument its declare requires",
        ),
        (
            "declare \"d\" {\n  d \"again\" { }\n}\nd \"a\" { }\n",
            "custom components nested deeper than 16",
        ),
        ("declare {\n}\n", "config.alloy:1:1: a declare needs a name"),
        (
            "declare \"d\" {\n  argument \"x\" { }\n  export \"o\" { value = argument.x.value }\n}\nd \"a\" { x = d.b.o }\nd \"b\" { x = d.a.o }\n",
            "use each other's exports in a cycle",
        ),
        ("pod_logs \"feature\" { }\n", "not an Alloy component"),
    ];
    for (text, want) in cases {
        let e = convert(Source::Alloy, Target::Config, text, "config.alloy").expect_err(text);
        assert!(e.contains(want), "{text}: {e}");
    }
}

/// import.string and import.file (relative to the source file, a directory too); an unreadable
/// file and import.git are reported (exit 3), never a parse error.
#[test]
fn imports_are_read_relative_to_the_source_or_reported() {
    let dir = std::env::temp_dir().join(format!("shipper-import-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("lib")).unwrap();
    let module = r#"
declare "tail" {
  argument "path" { }
  argument "to" { }
  inner "x" {
    path = argument.path.value
    to   = argument.to.value
  }
}
declare "inner" {
  argument "path" { }
  argument "to" { }
  loki.source.file "f" {
    targets    = [{ __path__ = argument.path.value }]
    forward_to = argument.to.value
  }
}
"#;
    std::fs::write(dir.join("lib/tail.alloy"), module).unwrap();
    let text = format!(
        r#"
import.file "mod" {{
  filename = "lib/tail.alloy"
}}
import.file "whole" {{
  filename = "lib"
}}
import.string "str" {{
  content = "declare \"one\" {{\n argument \"to\" {{ }}\n loki.source.file \"o\" {{\n targets = [{{__path__ = \"/var/log/one.log\"}}]\n forward_to = argument.to.value\n }}\n}}\n"
}}
mod.tail "a" {{
  path = "/var/log/a.log"
  to   = [loki.write.default.receiver]
}}
whole.tail "b" {{
  path = "/var/log/b.log"
  to   = [loki.write.default.receiver]
}}
str.one "c" {{
  to = [loki.write.default.receiver]
}}
{WRITE}"#
    );
    let file = dir.join("config.alloy");
    let (yaml, report, complete) = alloy_at(&text, &file.display().to_string());
    assert!(complete, "{report}");
    let mut paths: Vec<&str> = yaml["targets"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|t| t["paths"][0].as_str())
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        ["/var/log/a.log", "/var/log/b.log", "/var/log/one.log"],
        "{report}"
    );
    assert!(
        report.contains(
            ":2: import.file \"mod\": mapped to its declares (tail, inner) inlined where used as `mod.<declare>`"
        ),
        "{report}"
    );
    // Components from another file are placed at the instance using them.
    assert!(
        report.contains(":11: loki.source.file \"mod.tail.a/mod.inner.x/f\": mapped"),
        "{report}"
    );

    let text = format!(
        r#"
import.file "gone" {{
  filename = "missing.alloy"
}}
import.git "remote" {{
  repository = "https://github.com/example/modules.git"
  path       = "logs.alloy"
}}
gone.tail "a" {{
  to = [loki.write.default.receiver]
}}
remote.logs "b" {{ }}
loki.source.file "f" {{
  targets    = [{{ __path__ = "/var/log/f.log" }}]
  forward_to = [loki.write.default.receiver]
}}
{WRITE}"#
    );
    let (yaml, report, complete) = alloy_at(&text, &file.display().to_string());
    assert!(!complete);
    assert_eq!(yaml["targets"][0]["paths"][0], "/var/log/f.log");
    let missing = dir.join("missing.alloy");
    for want in [
        format!(":2: import.file \"gone\": NOT SUPPORTED: cannot read {}", missing.display()),
        ":5: import.git \"remote\": NOT SUPPORTED: fetches its module from https://github.com/example/modules.git when Alloy runs".into(),
        ":9: gone.tail \"a\": NOT SUPPORTED: its module `gone` was not read".into(),
        ":12: remote.logs \"b\": NOT SUPPORTED: its module `remote` was not read".into(),
    ] {
        assert!(report.contains(&want), "{want}\n{report}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Secrets and files: the password, bearer token and PEMs as files, the URL, tenant and user
/// name as variables, convert.nonsensitive unwrapped.
#[test]
fn secrets_and_files_become_files_or_variables() {
    let text = r#"
remote.kubernetes.secret "creds" {
  namespace = "monitoring"
  name      = "loki-creds"
}
local.file "token" {
  filename  = "/var/run/secrets/loki/token"
  is_secret = true
}
local.file "tenant" {
  filename = "/etc/loki/tenant"
}
loki.source.file "f" {
  targets    = [{ __path__ = "/var/log/f.log" }]
  forward_to = [loki.write.a.receiver, loki.write.b.receiver]
}
loki.write "a" {
  endpoint {
    url       = convert.nonsensitive(remote.kubernetes.secret.creds.data["loki-url"])
    tenant_id = local.file.tenant.content
    basic_auth {
      username = convert.nonsensitive(remote.kubernetes.secret.creds.data["username"])
      password = remote.kubernetes.secret.creds.data["password"]
    }
    tls_config {
      ca_pem = convert.nonsensitive(remote.kubernetes.secret.creds.data["ca.crt"])
    }
  }
}
loki.write "b" {
  endpoint {
    url          = convert.nonsensitive(remote.kubernetes.secret.creds.data.host) + "/loki/api/v1/push"
    bearer_token = local.file.token.content
  }
}
"#;
    let (yaml, report, complete) = alloy(text);
    assert!(complete, "{report}");
    let a = &yaml["client"];
    assert_eq!(a["url"], "${LOKI_URL}");
    assert_eq!(a["tenant_id"], "${TENANT}");
    assert_eq!(a["basic_auth"]["username"], "${USERNAME}");
    assert_eq!(
        a["basic_auth"]["password_file"],
        "/etc/shipper/secrets/basic-auth/password"
    );
    assert_eq!(a["tls"]["ca_file"], "/etc/shipper/secrets/tls/ca.crt");
    let b = &yaml["clients"][0];
    assert_eq!(b["url"], "${HOST}/loki/api/v1/push");
    assert_eq!(b["bearer_token_file"], "/var/run/secrets/loki/token");
    for want in [
        "config.alloy:19: loki.write \"a\" endpoint url: mapped to `${LOKI_URL}`, read when shipper starts: set LOKI_URL from key `loki-url` of Secret monitoring/loki-creds",
        "config.alloy:20: loki.write \"a\" endpoint tenant_id: mapped to `${TENANT}`, read when shipper starts: set TENANT from the content of /etc/loki/tenant",
        "config.alloy:23: loki.write \"a\" endpoint basic_auth password: mapped to password_file: /etc/shipper/secrets/basic-auth/password, key `password` of Secret monitoring/loki-creds — mount it there (shipper's chart does with loki.basicAuth.secretName: loki-creds, passwordKey: password; the Secret must be in shipper's namespace, it is in monitoring)",
        "config.alloy:33: loki.write \"b\" endpoint bearer_token: mapped to bearer_token_file: /var/run/secrets/loki/token, the content of /var/run/secrets/loki/token",
        "config.alloy:2: remote.kubernetes.secret \"creds\": not needed",
        "config.alloy:6: local.file \"token\": not needed",
    ] {
        assert!(report.contains(want), "{want}\n{report}");
    }
}

/// loki.relabel before the stages runs with the target's rules; after them, as stages.
#[test]
fn loki_relabel_in_a_chain_becomes_rules_or_stages() {
    let text = format!(
        r#"
loki.source.file "f" {{
  targets    = [{{ __path__ = "/var/log/app.log", app = "web", tmp = "x" }}]
  forward_to = [loki.relabel.early.receiver]
}}
loki.relabel "early" {{
  rule {{
    source_labels = ["app"]
    regex         = "debug-.*"
    action        = "drop"
  }}
  forward_to = [loki.process.p.receiver]
}}
loki.process "p" {{
  stage.json {{
    expressions = {{ level = "" }}
  }}
  forward_to = [loki.relabel.late.receiver]
}}
loki.relabel "late" {{
  rule {{
    action = "labeldrop"
    regex  = "tmp|filename"
  }}
  rule {{
    target_label = "env"
    replacement  = "prod"
  }}
  rule {{
    source_labels = ["level"]
    regex         = "debug"
    action        = "drop"
  }}
  rule {{
    source_labels = ["app", "level"]
    target_label  = "both"
  }}
  forward_to = [loki.write.default.receiver]
}}
{WRITE}"#
    );
    let (yaml, report, complete) = alloy(&text);
    assert!(!complete);
    let t = &yaml["targets"][0];
    assert_eq!(t["relabel_configs"][0]["action"], "drop", "{yaml:?}");
    assert_eq!(t["relabel_configs"][0]["source_labels"][0], "app");
    let stages = t["pipeline_stages"].as_sequence().unwrap();
    assert!(stages[0].get("json").is_some());
    assert_eq!(stages[1]["labeldrop"][0], "tmp");
    assert_eq!(stages[2]["static_labels"]["env"], "prod");
    assert_eq!(stages[3]["match"]["selector"], "{level=~\"debug\"}");
    assert_eq!(stages[3]["match"]["action"], "drop");
    for want in [
        "config.alloy:7: loki.relabel \"early\" rule: mapped to targets[0].relabel_configs",
        "config.alloy:21: loki.relabel \"late\" rule: mapped to pipeline_stages `labeldrop`",
        "config.alloy:29: loki.relabel \"late\" rule: mapped to pipeline_stages `match`",
        "config.alloy:34: loki.relabel \"late\" rule → both: NOT SUPPORTED: action `replace` on the entries after stages",
    ] {
        assert!(report.contains(want), "{want}\n{report}");
    }
    assert!(!report.contains("not on the path"), "{report}");
}

/// Selectors of discovery.kubernetes: this node built in, namespaces and labels carried.
#[test]
fn kubernetes_selectors_become_namespaces_and_label_rules() {
    let text = format!(
        r#"
discovery.kubernetes "pods" {{
  role = "pod"
  selectors {{
    role  = "pod"
    field = "spec.nodeName=" + sys.env("HOSTNAME") + ",metadata.namespace=shop,status.phase=Running"
    label = "app=web,tier in (front, back),!canary,team!=ops,app.kubernetes.io/part-of"
  }}
}}
discovery.relabel "pods" {{
  targets = discovery.kubernetes.pods.targets
  rule {{
    source_labels = ["__meta_kubernetes_pod_uid", "__meta_kubernetes_pod_container_name"]
    separator     = "/"
    replacement   = "/var/log/pods/*$1/*.log"
    target_label  = "__path__"
  }}
}}
loki.source.kubernetes "pods" {{
  targets    = discovery.relabel.pods.output
  forward_to = [loki.write.default.receiver]
}}
{WRITE}"#
    );
    let (yaml, report, _) = alloy(&text);
    assert_eq!(yaml["kubernetes"]["include_namespaces"][0], "shop");
    let rules: Vec<(String, String, String)> = yaml["relabel_configs"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_string(),
                r["source_labels"][0].as_str().unwrap().to_string(),
                r["regex"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = [
        ("keep", "__meta_kubernetes_pod_label_app", "web"),
        ("keep", "__meta_kubernetes_pod_label_tier", "(front|back)"),
        ("drop", "__meta_kubernetes_pod_labelpresent_canary", "true"),
        ("drop", "__meta_kubernetes_pod_label_team", "ops"),
        (
            "keep",
            "__meta_kubernetes_pod_labelpresent_app_kubernetes_io_part_of",
            "true",
        ),
    ];
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(rules, want);
    for want in [
        "config.alloy:4: discovery.kubernetes \"pods\" selectors field `spec.nodeName=${HOSTNAME}`: built in",
        "config.alloy:4: discovery.kubernetes \"pods\" selectors field `metadata.namespace=shop`: mapped to kubernetes.include_namespaces",
        "config.alloy:4: discovery.kubernetes \"pods\" selectors field `status.phase=Running`: NOT SUPPORTED",
        "config.alloy:4: discovery.kubernetes \"pods\" selectors label `tier in (front, back)`: mapped to relabel_configs",
    ] {
        assert!(report.contains(want), "{want}\n{report}");
    }
}

/// The journal's stages (multiline too: it joins the entries of each label set), matches and JSON
/// format carry over.
#[test]
fn journal_stages_matches_and_json_format_convert() {
    let text = format!(
        r#"
loki.source.journal "j" {{
  format_as_json = true
  matches        = "_SYSTEMD_UNIT=kubelet.service _SYSTEMD_UNIT=containerd.service"
  labels         = {{ job = "journal" }}
  forward_to     = [loki.process.p.receiver]
}}
loki.process "p" {{
  stage.static_labels {{
    values = {{ source = "journal" }}
  }}
  stage.multiline {{
    firstline = "^x"
  }}
  forward_to = [loki.write.default.receiver]
}}
{WRITE}"#
    );
    let (yaml, report, complete) = alloy(&text);
    assert!(complete, "{report}");
    let j = &yaml["journal"];
    assert_eq!(j["labels"]["job"], "journal");
    assert_eq!(j["format"], "json");
    assert_eq!(
        j["matches"],
        "_SYSTEMD_UNIT=kubelet.service _SYSTEMD_UNIT=containerd.service"
    );
    assert_eq!(j["pipeline_stages"][0]["static_labels"]["source"], "journal");
    assert_eq!(j["pipeline_stages"][1]["multiline"]["firstline"], "^x");
    for want in [
        "config.alloy:12: loki.process stage.multiline: mapped to pipeline_stages `multiline`",
        "config.alloy:3: loki.source.journal \"j\" format_as_json: mapped to journal.format: json",
        "config.alloy:4: loki.source.journal \"j\" matches: mapped to journal.matches",
    ] {
        assert!(report.contains(want), "{want}\n{report}");
    }
    let bad = text.replace("_SYSTEMD_UNIT=kubelet.service _SYSTEMD", "kubelet.service _SYSTEMD");
    let (yaml, report, _) = alloy(&bad);
    assert!(yaml["journal"].get("matches").is_none(), "{report}");
    assert!(
        report.contains("matches: NOT SUPPORTED: `kubelet.service` is not a journal match"),
        "{report}"
    );
}
