//! Docker files no pod claims: relabel rules of a `path_labels: docker` target see their
//! container's `__meta_docker_*` labels, which do not reach Loki.

use super::Targets;
use std::path::{Path, PathBuf};

/// A container directory `<root>/<id>` with its log and the files given (name, content).
fn container(root: &Path, id: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = root.join(id);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let log = dir.join(format!("{id}-json.log"));
    std::fs::write(
        &log,
        "{\"log\":\"x\\n\",\"stream\":\"stdout\",\"time\":\"2026-01-01T00:00:00Z\"}\n",
    )
    .unwrap();
    log
}

fn targets(root: &Path, rules: &str) -> Targets {
    let yaml = format!(
        "targets:\n- paths: [\"{}/*/*-json.log\"]\n  path_labels: docker\n  format: docker\n  relabel_configs:\n{rules}",
        root.display()
    );
    let cfg = crate::config::load_str(&yaml, "test.yaml").unwrap();
    Targets::from_config(&cfg).unwrap()
}

const WEB: &str =
    r#"{"ID":"aaa","Name":"/web-1","Config":{"Image":"nginx","Labels":{"com.docker.compose.service":"web"}}}"#;

#[test]
fn relabel_rules_see_the_containers_docker_labels() {
    let d = tempfile::tempdir().unwrap();
    let web = container(
        d.path(),
        "aaa",
        &[
            ("config.v2.json", WEB),
            ("hostconfig.json", r#"{"NetworkMode":"host"}"#),
        ],
    );
    let broken = container(d.path(), "bbb", &[("config.v2.json", "{\"Name\":")]);
    let bare = container(d.path(), "ccc", &[]);
    let mut t = targets(
        d.path(),
        r#"  - {source_labels: [__meta_docker_container_name], regex: "/(.*)", target_label: container}
  - {source_labels: [__meta_docker_container_label_com_docker_compose_service], target_label: service}
  - {source_labels: [__meta_docker_container_network_mode, __meta_docker_container_id], target_label: net}
"#,
    );
    let info = t.describe(0, &web).unwrap();
    let labels: Vec<_> = info.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    assert_eq!(labels, ["container=web-1", "net=host;aaa", "service=web"]);
    // No readable metadata: still tailed, without those labels.
    for log in [&broken, &bare] {
        let info = t.describe(0, log).unwrap();
        assert!(!info.labels.contains_key("container"), "{:?}", info.labels);
        assert!(!t.dropped(0, log));
    }
    assert_eq!(t.scan().files.len(), 3);
}

#[test]
fn a_keep_rule_on_a_docker_label_selects_containers() {
    let d = tempfile::tempdir().unwrap();
    let web = container(d.path(), "aaa", &[("config.v2.json", WEB)]);
    let db = container(d.path(), "ddd", &[("config.v2.json", r#"{"ID":"ddd","Name":"/db"}"#)]);
    let bare = container(d.path(), "ccc", &[]);
    let mut t = targets(
        d.path(),
        "  - {source_labels: [__meta_docker_container_label_com_docker_compose_service], regex: web, action: keep}\n",
    );
    assert!(!t.dropped(0, &web));
    assert!(t.dropped(0, &db) && t.dropped(0, &bare));
    let found: Vec<_> = t.scan().files.into_iter().map(|f| f.path).collect();
    assert_eq!(found, [web]);
}
