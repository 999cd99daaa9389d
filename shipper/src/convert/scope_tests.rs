//! Sources a node agent reads differently (docker) or not at all (receivers, metrics): what the
//! report says and what is written.

use super::{convert, Outcome, Source, Target};

fn unsupported(c: &super::Converted) -> Vec<String> {
    c.report
        .notes
        .iter()
        .filter_map(|n| match &n.outcome {
            Outcome::Unsupported(why) => Some(format!("{}: {why}", n.what)),
            _ => None,
        })
        .collect()
}

#[test]
fn docker_sources_become_a_target_on_dockerds_json_files() {
    let promtail = r#"
clients: [{url: "http://loki:3100/loki/api/v1/push"}]
scrape_configs:
  - job_name: docker
    docker_sd_configs:
      - host: "unix:///var/run/docker.sock"
        refresh_interval: 5s
        filters: [{name: name, values: [web]}]
    relabel_configs:
      - source_labels: ['__meta_docker_container_name']
        regex: '/(.*)'
        target_label: 'container'
      - source_labels: ['__meta_docker_port_private']
        target_label: 'port'
      - source_labels: ['__meta_docker_container_log_stream']
        target_label: 'stream'
      - target_label: job
        replacement: docker
    pipeline_stages: [{docker: {}}, {json: {expressions: {level: }}}]
"#;
    let c = convert(Source::Promtail, Target::Config, promtail, "p.yaml").unwrap();
    let cfg = crate::config::load_str(&c.yaml, "t").unwrap();
    let t = &cfg.targets[0];
    assert_eq!(t.paths, ["/var/lib/docker/containers/*/*-json.log"]);
    assert_eq!(t.path_labels, crate::config::PathLabels::Docker);
    let stages: Vec<_> = t.pipeline_stages.iter().map(|s| s.name()).collect();
    assert_eq!(
        stages,
        ["json", "labeldrop"],
        "docker is built in; filename is not Promtail's"
    );
    let targets: Vec<_> = t
        .relabel_configs
        .iter()
        .map(|r| r.target_label.clone().unwrap())
        .collect();
    assert_eq!(
        targets,
        ["container", "job"],
        "the container's labels are read from the disk; the stream is every line's label"
    );
    let left = unsupported(&c);
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left[0].contains("filters"), "{left:?}");
    assert!(left[1].contains("`__meta_docker_port_private`"), "{left:?}");

    let alloy = r#"
discovery.docker "d" {
  host = "unix:///var/run/docker.sock"
  filter {
    name   = "label"
    values = ["logs=true"]
  }
}
discovery.relabel "r" {
  targets = discovery.docker.d.targets
  rule {
    source_labels = ["__meta_docker_container_name"]
    regex         = "/(.*)"
    target_label  = "container"
  }
}
discovery.relabel "more" {
  targets = discovery.relabel.r.output
  rule {
    source_labels = ["__meta_docker_container_label_com_docker_compose_service"]
    target_label  = "service"
  }
}
discovery.relabel "entries" {
  targets = []
  rule {
    source_labels = ["__meta_docker_network_ip"]
    target_label  = "ip"
  }
  rule {
    source_labels = ["container"]
    regex         = "db"
    action        = "drop"
  }
}
loki.source.docker "s" {
  host          = "unix:///var/run/docker.sock"
  targets       = discovery.relabel.more.output
  relabel_rules = discovery.relabel.entries.rules
  labels        = { job = "docker" }
  forward_to    = [loki.process.p.receiver]
}
loki.process "p" {
  stage.docker {}
  stage.decolorize {}
  forward_to = [loki.write.w.receiver]
}
loki.write "w" { endpoint { url = "http://loki:3100/loki/api/v1/push" } }
"#;
    let c = convert(Source::Alloy, Target::Config, alloy, "c.alloy").unwrap();
    let cfg = crate::config::load_str(&c.yaml, "t").unwrap();
    let t = &cfg.targets[0];
    assert_eq!(t.paths, ["/var/lib/docker/containers/*/*-json.log"]);
    assert_eq!(t.path_labels, crate::config::PathLabels::Docker);
    let stages: Vec<_> = t.pipeline_stages.iter().map(|s| s.name()).collect();
    assert_eq!(stages, ["decolorize", "labeldrop"]);
    assert_eq!(t.labels.get("job").map(String::as_str), Some("docker"));
    // The chain's rules first to last, then the source's relabel_rules.
    let sources: Vec<_> = t.relabel_configs.iter().map(|r| r.source_labels.join(",")).collect();
    assert_eq!(
        sources,
        [
            "__meta_docker_container_name",
            "__meta_docker_container_label_com_docker_compose_service",
            "container"
        ]
    );
    let left = unsupported(&c);
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left[0].contains("filter"), "{left:?}");
    assert!(left[1].contains("`__meta_docker_network_ip`"), "{left:?}");
    assert!(
        !c.report.render().contains("discovery.docker \"d\": not needed"),
        "{}",
        c.report.render()
    );
}

#[test]
fn receivers_metrics_and_events_are_named_as_outside_a_node_agents_job() {
    let alloy = r#"
loki.source.syslog "s" {
  listener { address = "0.0.0.0:514" }
  forward_to = [loki.write.w.receiver]
}
loki.source.file "f" {
  targets    = [{__path__ = "/var/log/syslog"}]
  forward_to = [loki.write.w.receiver]
}
prometheus.exporter.unix "n" { }
prometheus.scrape "m" {
  targets    = prometheus.exporter.unix.n.targets
  forward_to = [prometheus.remote_write.r.receiver]
}
prometheus.remote_write "r" { endpoint { url = "http://mimir/api/v1/push" } }
livedebugging { enabled = true }
loki.write "w" { endpoint { url = "http://loki:3100/loki/api/v1/push" } }
"#;
    let c = convert(Source::Alloy, Target::Config, alloy, "c.alloy").unwrap();
    let left = unsupported(&c);
    assert_eq!(left.len(), 4, "{left:?}");
    for l in &left {
        assert!(l.contains("outside a node log agent's job"), "{l}");
    }
    assert!(left[0].contains("(network receivers)"), "{left:?}");
    assert!(
        c.report.render().contains("livedebugging \"\": not needed"),
        "{}",
        c.report.render()
    );
    crate::config::load_str(&c.yaml, "t").unwrap();
}

#[test]
fn a_config_of_receivers_only_exits_3_with_its_report_and_writes_nothing() {
    let promtail = r#"
clients: [{url: "http://loki:3100/loki/api/v1/push"}]
scrape_configs:
  - job_name: syslog
    syslog: {listen_address: 0.0.0.0:1514}
  - job_name: push
    loki_push_api: {server: {http_listen_port: 3500}}
"#;
    let c = convert(Source::Promtail, Target::Config, promtail, "p.yaml").unwrap();
    assert!(c.yaml.is_empty());
    let left = unsupported(&c);
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(left.iter().any(|l| l.contains("nothing left to tail")), "{left:?}");
}
