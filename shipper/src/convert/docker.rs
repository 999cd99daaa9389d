//! A docker source (Promtail's `docker_sd_configs`, Alloy's `loki.source.docker`): a target on
//! the json-file logs dockerd writes, read from the node's disk rather than through the Docker
//! API, with `path_labels: docker`. Its relabel rules see the container's `__meta_docker_container_*`
//! labels, which shipper reads from dockerd's files beside each log; the labels of the
//! container's networks and ports come from the API only, so a rule reading them is not carried.

use super::k8s::Rule;
use super::report::Report;
use super::stages::Stages;
use serde_json::{Map, Value};

/// The json-file logs dockerd writes for every container.
pub const DOCKER_LOGS: &str = "/var/lib/docker/containers/*/*-json.log";

/// Label name prefixes of Prometheus' Docker discovery that only the Docker API gives.
const API_ONLY: [&str; 2] = ["__meta_docker_network_", "__meta_docker_port_"];

/// The labels of [`API_ONLY`] a rule names (its source labels, target or regex).
fn api_only(rule: &Map<String, Value>) -> Vec<String> {
    let text = serde_json::to_string(rule).unwrap_or_default();
    let mut names: Vec<String> = Vec::new();
    for prefix in API_ONLY {
        for (i, _) in text.match_indices(prefix) {
            let name: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

/// Labels shipper puts on every docker line that a docker source does not: dropped by a last
/// stage unless the source sets them.
const ADDED: [&str; 2] = ["filename", "stream"];

/// Each entry's stream (`stdout`, `stderr`): a docker source's rules see it per entry, shipper's
/// per file, where it is not known.
const LOG_STREAM: &str = "__meta_docker_container_log_stream";

fn text<'a>(rule: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    rule.get(key).and_then(Value::as_str)
}

/// A target on dockerd's logs, without its rules and stages yet.
pub fn target() -> Map<String, Value> {
    let mut t = Map::new();
    t.insert("paths".into(), vec![DOCKER_LOGS].into());
    t.insert("path_labels".into(), "docker".into());
    // Docker's format is detected and parsed (`stream` a label), as its `docker` stage would.
    t.insert("format".into(), "auto".into());
    t
}

/// The rules of a docker source that its target carries, in order: all but those reading the
/// labels of the container's networks and ports, or each entry's stream, which are reported (a
/// plain copy of the stream to `stream` is built in). A last stage in `stages` drops the labels
/// shipper adds that the source does not set.
pub fn lower(rules: Vec<Rule>, stages: &mut Stages, report: &mut Report) -> Vec<Rule> {
    let mut set = stages.labels.clone();
    let mut carried = Vec::new();
    for r in rules {
        let names = api_only(&r.rule);
        let json = serde_json::to_string(&r.rule).unwrap_or_default();
        let target = text(&r.rule, "target_label").unwrap_or_default();
        if !names.is_empty() {
            let names: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
            report.unsupported(
                r.line,
                r.what,
                format!(
                    "not carried: it reads {}, which only the Docker API gives (one target per network and port); shipper reads container logs from the disk, with the container's id, name, labels and network mode",
                    names.join(", ")
                ),
            );
        } else if json.contains(LOG_STREAM) {
            let copy = r.rule.get("source_labels") == Some(&Value::from(vec![LOG_STREAM]))
                && target == "stream"
                && text(&r.rule, "action").is_none_or(|a| a.eq_ignore_ascii_case("replace"))
                && text(&r.rule, "regex").is_none_or(|x| matches!(x, "(.*)" | ".*"))
                && text(&r.rule, "replacement").is_none_or(|x| x == "$1");
            if copy {
                set.push("stream".into());
                report.built_in(
                    r.line,
                    r.what,
                    "`stream` (stdout or stderr) is a label of every docker line",
                );
            } else {
                report.unsupported(
                    r.line,
                    r.what,
                    format!("not carried: `{LOG_STREAM}` is each line's, and shipper relabels each file once; every docker line has the `stream` label"),
                );
            }
        } else {
            set.push(target.to_string());
            carried.push(r);
        }
    }
    super::k8s::drop_added(&ADDED, &set, &mut stages.stages, report);
    carried
}

/// A docker discovery's container filters (by name, label, status, network …): shipper tails
/// every container's log, so they are reported.
pub fn filters(line: Option<u32>, what: String, report: &mut Report) {
    report.unsupported(
        line,
        what,
        "shipper tails every container's log: select containers with keep/drop rules on their `__meta_docker_container_*` labels",
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn network_and_port_labels_are_named() {
        let rule = |v: Value| v.as_object().cloned().unwrap();
        assert!(api_only(&rule(json!({"source_labels": ["__meta_docker_container_name"]}))).is_empty());
        assert!(api_only(&rule(
            json!({"regex": "__meta_docker_container_label_(.+)", "action": "labelmap"})
        ))
        .is_empty());
        assert_eq!(
            api_only(&rule(
                json!({"source_labels": ["__meta_docker_network_ip", "__meta_docker_port_private", "__meta_docker_network_ip"]})
            )),
            ["__meta_docker_network_ip", "__meta_docker_port_private"]
        );
        assert_eq!(
            api_only(&rule(
                json!({"regex": "__meta_docker_network_label_(.+)", "action": "labelmap"})
            )),
            ["__meta_docker_network_label_"]
        );
    }
}
