//! A bare Docker host: container logs in dockerd's layout (`<root>/<id>/<id>-json.log`), no
//! Kubernetes. With `path_labels: docker`, relabel rules see each container's `__meta_docker_*`
//! labels, read from dockerd's `config.v2.json` and `hostconfig.json` beside its log, as
//! Prometheus' Docker discovery names them; Alloy's and Promtail's docker configs convert to that.

use crate::convert::{convert, Overlay};
use crate::support::{wait_entries, Agent, Env, CLIENT};
use shipper_testkit::{Format, LogWriter};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A container `id` under `root` as dockerd leaves it: its `config.v2.json` (`config`, none if
/// `None`) and `hostconfig.json`. Returns the path of its log.
fn container(root: &Path, id: &str, config: Option<&str>) -> PathBuf {
    let dir = root.join(id);
    std::fs::create_dir_all(&dir).unwrap();
    if let Some(c) = config {
        std::fs::write(dir.join("config.v2.json"), c).unwrap();
    }
    std::fs::write(
        dir.join("hostconfig.json"),
        r#"{"Binds":null,"NetworkMode":"bridge","RestartPolicy":{"Name":"no"}}"#,
    )
    .unwrap();
    dir.join(format!("{id}-json.log"))
}

/// dockerd's `config.v2.json` of a container (the keys it writes around the ones read here).
fn config_v2(id: &str, name: &str, service: &str) -> String {
    format!(
        r#"{{"StreamConfig":{{}},"State":{{"Running":true,"Pid":4242,"ExitCode":0}},"ID":"{id}","Created":"2026-01-05T10:00:00.000000000Z","Path":"/docker-entrypoint.sh","Args":["nginx"],"Config":{{"Hostname":"{short}","Env":["PATH=/usr/bin"],"Image":"nginx:1.27","Labels":{{"com.docker.compose.project":"shop","com.docker.compose.service":"{service}"}}}},"Image":"sha256:0123","NetworkSettings":{{"Networks":{{"shop_default":{{"IPAddress":"172.18.0.2"}}}}}},"LogPath":"/var/lib/docker/containers/{id}/{id}-json.log","Name":"{name}","Driver":"overlay2","RestartCount":0}}"#,
        short = &id[..12],
    )
}

/// The lines of stream `labels`, waiting up to 30 s for `n` of them.
fn lines_of(env: &Env, agent: &Agent, labels: &str, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lines: Vec<String> = env.loki.stream(labels).into_iter().map(|e| e.line).collect();
        if lines.len() >= n || Instant::now() >= deadline {
            assert_eq!(
                lines.len(),
                n,
                "stream {labels}: streams {:?}\nagent log: {}",
                env.loki.streams().keys().collect::<Vec<_>>(),
                agent.log_tail()
            );
            return lines;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Lines a container writes, escapes and all: they must arrive as written.
fn messages(tag: &str) -> Vec<String> {
    (0..50)
        .map(|i| format!("{tag} {i}: tab\there \"quoted\" back\\slash ünïcödé {{\"json\":true}}"))
        .collect()
}

#[test]
fn relabel_rules_read_the_containers_name_and_labels_from_the_disk() {
    let env = Env::new();
    let root = env.path("containers");
    std::fs::create_dir_all(&root).unwrap();
    let web_id = "4f2c0a9e1d3b5c7e9f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70";
    let bad_id = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d";
    let web = container(&root, web_id, Some(&config_v2(web_id, "/web-1", "web")));
    // Cut off mid-write: not dockerd's JSON.
    let bad = container(&root, bad_id, Some(r#"{"ID":"9e8d","Name":"/wor"#));
    let yaml = format!(
        "server:\n  http_listen: 127.0.0.1:{port}\n  log_level: info\npositions:\n  filename: {pos}\n{client}targets:\n  - paths: [\"{root}/*/*-json.log\"]\n    path_labels: docker\n    relabel_configs:\n      - source_labels: [__meta_docker_container_name]\n        regex: /(.*)\n        target_label: container\n      - source_labels: [__meta_docker_container_label_com_docker_compose_service]\n        target_label: service\n      - source_labels: [__meta_docker_container_network_mode]\n        target_label: network\n",
        port = shipper_testkit::prom::free_port(),
        pos = env.path("positions.json").display(),
        client = CLIENT.replace("URL", &env.loki.url()),
        root = root.display(),
    );
    let cfg = env.path("shipper.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let agent = Agent::start(&cfg);
    let mut w = LogWriter::create(&web, Format::Docker).unwrap();
    let mut b = LogWriter::create(&bad, Format::Docker).unwrap();
    let (web_lines, bad_lines) = (messages("web"), messages("worker"));
    for (line, bad_line) in web_lines.iter().zip(&bad_lines) {
        w.write_line("stdout", line).unwrap();
        b.write_line("stdout", bad_line).unwrap();
    }
    w.flush().unwrap();
    b.flush().unwrap();
    let labels = format!(
        "{{container=\"web-1\", filename=\"{}\", network=\"bridge\", service=\"web\", stream=\"stdout\"}}",
        web.display()
    );
    assert_eq!(
        lines_of(&env, &agent, &labels, web_lines.len()),
        web_lines,
        "byte for byte"
    );
    // Its metadata is unreadable: tailed all the same, without those labels, and said once.
    let labels = format!("{{filename=\"{}\", stream=\"stdout\"}}", bad.display());
    assert_eq!(lines_of(&env, &agent, &labels, bad_lines.len()), bad_lines);
    assert_eq!(env.loki.streams().len(), 2, "{:?}", env.loki.streams().keys());
    let log = agent.log();
    let warned: Vec<_> = log
        .lines()
        .filter(|l| l.contains("__meta_docker_* labels are missing"))
        .collect();
    assert_eq!(warned.len(), 1, "{log}");
    assert!(
        warned[0].contains(&format!("{bad_id}/config.v2.json")) && warned[0].contains("not dockerd's JSON"),
        "{}",
        warned[0]
    );
    agent.stop();
}

/// Alloy's docker monitoring scenario (the container name without docker's `/` as
/// `container_name`, the host as `instance`), converted and run on a Docker host's files: the
/// lines carry the labels Alloy gives them, and no others.
#[test]
fn alloys_docker_scenario_converts_and_ships_with_its_labels() {
    let env = Env::new();
    let cfg = env.path("shipper.yaml");
    let (code, report) = convert("alloy", "corpus/alloy-scenarios-docker-monitoring.alloy", &cfg);
    // Its metrics part stays Alloy's; nothing of the logs is left out.
    assert_eq!(code, 3, "{report}");
    assert!(!report.contains("__meta_docker"), "{report}");
    let root = env.path("containers");
    std::fs::create_dir_all(&root).unwrap();
    let id = "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9";
    let web = container(&root, id, Some(&config_v2(id, "/web-1", "web")));
    // Its `stage.drop` on the `container_name` label drops the lines of a container named loki.
    let loki_id = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";
    let loki = container(&root, loki_id, Some(&config_v2(loki_id, "/loki", "loki")));
    let mut overlay = Overlay::new(&env);
    overlay.set(
        "targets.0.paths",
        vec![format!("{}/*/*-json.log", root.display())].into(),
    );
    // `constants.hostname` became `${HOSTNAME}`, read where the agent runs.
    overlay.set("targets.0.relabel_configs.1.replacement", "docker-host-1".into());
    overlay.apply(&cfg);
    let agent = Agent::start(&cfg);
    let mut w = LogWriter::create(&web, Format::Docker).unwrap();
    let lines = messages("web");
    for (i, line) in lines.iter().enumerate() {
        w.write_line(if i % 2 == 0 { "stdout" } else { "stderr" }, line)
            .unwrap();
    }
    w.flush().unwrap();
    let mut dropped = LogWriter::create(&loki, Format::Docker).unwrap();
    for line in messages("loki") {
        dropped.write_line("stdout", &line).unwrap();
    }
    dropped.flush().unwrap();
    wait_entries(&env, &agent, lines.len(), 30);
    let drops = "shipper_pipeline_dropped_lines_total{reason=\"drop_stage\"}";
    crate::support::wait_metric(&agent, drops, messages("loki").len() as f64, 30);
    let labels = "{container_name=\"web-1\", instance=\"docker-host-1\"}";
    assert_eq!(lines_of(&env, &agent, labels, lines.len()), lines);
    assert_eq!(
        env.loki.streams().keys().collect::<Vec<_>>(),
        [labels],
        "no filename or stream: Alloy sets neither"
    );
    agent.stop();
}
