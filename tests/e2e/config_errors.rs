//! `shipper check`: bad configs give the path of the bad key and what to do, never a panic; a good one
//! prints the effective config with defaults.

use crate::support::BIN;
use std::process::Command;

fn check(yaml: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("shipper.yaml");
    std::fs::write(&p, yaml).unwrap();
    let out = Command::new(BIN).args(["check", "--config"]).arg(&p).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_configs_name_the_key_and_exit_2() {
    let cases = [
        (
            "client:\n  url: loki:3100\ntargets: [{paths: [/x/*.log]}]\n",
            "`client.url`",
        ),
        ("client:\n  batch_wait: soon\n", "`client.batch_wait`"),
        (
            "client:\n  backoff:\n    max_retries: -1\n",
            "`client.backoff.max_retries`",
        ),
        (
            "targets:\n  - paths: [/x/*.log]\n    labels: {\"0bad\": v}\n",
            "`targets[0].labels.0bad`",
        ),
        ("targets:\n  - pahts: [/x/*.log]\n", "`targets[0].pahts`"),
        (
            "tail:\n  read_buffer_size: 1\ntargets: [{paths: [/x/*.log]}]\n",
            "`tail.read_buffer_size`",
        ),
        ("targets: {paths: /x}\n", "`targets`"),
        ("server: [\n", "line"),
        ("client:\n  url: ${SHIPPER_E2E_NOT_SET}\n", "SHIPPER_E2E_NOT_SET"),
        (
            "targets:\n  - paths: [/x/*.log]\n    pipeline_stages:\n      - json: {expressions: {a: ''}}\n      - regex: {expression: '(unclosed'}\n",
            "`targets[0].pipeline_stages[1].regex`",
        ),
        (
            "targets: [{paths: [/x/*.log]}]\npipeline_stages:\n  - jsonn: {}\n",
            "`pipeline_stages[0]`",
        ),
        (
            "targets:\n  - paths: [/x/*.log]\n    pipeline_stages:\n      - regex: {expression: '(?P<ip>\\S+)'}\n      - geoip: {source: ip, db: /nowhere/GeoLite2-City.mmdb, db_type: city}\n",
            "`targets[0].pipeline_stages[1].geoip.db`",
        ),
        (
            "targets: [{paths: [/x/*.log]}]\nrelabel_configs:\n  - source_labels: [a]\n    action: replace\n",
            "`relabel_configs[0].target_label`",
        ),
        (
            "targets: [{paths: [/x/*.log]}]\nclients:\n  - url: nowhere\n",
            "`clients[0].url`",
        ),
        (
            "server:\n  log_level: verbose\ntargets: [{paths: [/x/*.log]}]\n",
            "`server.log_level`",
        ),
    ];
    for (yaml, want) in cases {
        let (code, _, err) = check(yaml);
        assert_eq!(code, 2, "{yaml:?}: exit code; stderr: {err}");
        assert!(err.contains(want), "{yaml:?}: stderr should name {want}:\n{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn good_config_prints_effective_config_with_defaults() {
    let (code, out, err) = check("client:\n  url: http://loki:3100/loki/api/v1/push\ntargets: [{paths: [/x/*.log]}]\n");
    assert_eq!(code, 0, "{err}");
    for want in [
        "batch_size: 1MiB",
        "batch_wait: 1s",
        "max_retries: 0",
        "max_line_size: 256KiB",
        "start_at: beginning",
        "start_at_max_age: 24h",
        "sync_period: 1s",
    ] {
        assert!(out.contains(want), "effective config lacks {want}:\n{out}");
    }
}

#[test]
fn flags_alone_are_a_valid_config() {
    let out = Command::new(BIN)
        .args([
            "check",
            "--path",
            "/var/log/*.log",
            "--loki",
            "http://l:3100/loki/api/v1/push",
            "--label",
            "env=dev",
            "--format",
            "cri",
            "--start-at",
            "end",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        text.contains("env: dev") && text.contains("format: cri") && text.contains("start_at: end"),
        "{text}"
    );
    let out = Command::new(BIN)
        .args(["check", "--label", "novalue"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// What `run` would refuse at start, `check` refuses too (install.sh and reloads rely on it): a CA
/// file that is not PEM, an unreadable password file, an address that is not one, a missing
/// journalctl, and an empty variable (told apart from an unset one).
#[test]
fn check_refuses_what_run_would_refuse_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("ca.pem");
    std::fs::write(&not_pem, "not a certificate\n").unwrap();
    let no_password = dir.path().join("password-dir");
    std::fs::create_dir(&no_password).unwrap();
    let t = "targets: [{paths: [/x/*.log]}]\n";
    let cases = [
        (
            format!("{t}client:\n  url: https://loki/loki/api/v1/push\n  tls: {{ca_file: {}}}\n", not_pem.display()),
            "`client.tls.ca_file`".to_string(),
        ),
        (
            format!(
                "{t}clients:\n  - url: http://loki/loki/api/v1/push\n    basic_auth: {{username: u, password_file: {}}}\n",
                no_password.display()
            ),
            "clients[0]: `client.basic_auth.password_file`".to_string(),
        ),
        (
            format!("{t}server: {{http_listen: nonsense}}\n"),
            "`server.http_listen`: `nonsense`".to_string(),
        ),
        (
            format!("{t}journal: {{journalctl_path: /nonexistent/journalctl}}\n"),
            "`journal.journalctl_path`".to_string(),
        ),
        (
            format!("{t}tail: {{rescan_interval: 0s}}\n"),
            "`tail.rescan_interval`".to_string(),
        ),
    ];
    for (yaml, want) in cases {
        let (code, _, err) = check(&yaml);
        assert_eq!(code, 2, "{yaml:?}: exit code; stderr: {err}");
        assert!(err.contains(&want), "{yaml:?}: stderr should name {want}:\n{err}");
    }
    let p = dir.path().join("empty.yaml");
    std::fs::write(&p, format!("{t}client: {{url: '${{SHIPPER_E2E_EMPTY}}'}}\n")).unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&p)
        .env("SHIPPER_E2E_EMPTY", "")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("`SHIPPER_E2E_EMPTY` is set but empty"), "{err}");
}

/// `run` refuses what `check` refuses, with the same exit code 2 (a systemd unit with
/// `RestartPreventExitStatus=2` then stops instead of restarting a config that cannot start).
#[test]
fn run_refuses_what_check_refuses_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("shipper.yaml");
    std::fs::write(&p, "targets: [{paths: [/x/*.log]}]\nserver: {http_listen: nonsense}\n").unwrap();
    let out = Command::new(BIN).args(["run", "--config"]).arg(&p).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("`server.http_listen`"), "{err}");
}

/// What `check` prints is a config file: with `discovery: kubernetes` it holds no discovered
/// target (the agent adds those itself), so checking it again prints the same.
#[test]
fn checks_output_checks_again_unchanged() {
    let (code, first, err) = check("discovery: kubernetes\nkubernetes: {api: false, node_name: n1}\n");
    assert_eq!(code, 0, "{err}");
    assert!(first.contains("targets: []"), "discovered targets printed:\n{first}");
    let (code, second, err) = check(&first);
    assert_eq!(code, 0, "{err}");
    assert_eq!(first, second);
}
