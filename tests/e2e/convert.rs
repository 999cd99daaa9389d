//! `shipper convert` end to end: each configuration of the corpus in `tests/convert/` (written
//! from the public docs and charts of Alloy and Promtail) is converted by the real binary, run on
//! generated log files, and its lines must reach the receiver byte for byte with the labels the
//! source configuration documents.
//!
//! What the test changes in a converted config is only what this machine cannot give, and it is
//! listed in [`Overlay`]: where the receiver, the API stand-in, the scratch files and the HTTP port
//! are. Everything else is as converted.

use crate::support::{wait_all, write_tagged, Agent, Env, BIN};
use serde_yaml_ng::Value;
use shipper_testkit::{Format, KubeApi, LogWriter, Pod};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub(crate) const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/convert");

/// `shipper convert --from FROM corpus/FILE -o OUT`: exit code and report.
fn convert(from: &str, file: &str, out: &Path) -> (i32, String) {
    convert_to(from, "config", file, out)
}

/// `shipper convert --from FROM --to TO corpus/FILE -o OUT`: exit code and report.
fn convert_to(from: &str, to: &str, file: &str, out: &Path) -> (i32, String) {
    convert_with(from, to, file, out, &[])
}

/// `convert_to` with more arguments.
pub(crate) fn convert_with(from: &str, to: &str, file: &str, out: &Path, more: &[&str]) -> (i32, String) {
    let o = Command::new(BIN)
        .args(["convert", "--from", from, "--to", to])
        .args(more)
        .arg(Path::new(CORPUS).join(file))
        .arg("-o")
        .arg(out)
        .output()
        .expect("run shipper convert");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The keys a test sets in a converted config: `(path, value)`, path dotted (`client.url`).
pub(crate) struct Overlay(Vec<(String, Value)>);

impl Overlay {
    /// What every test here needs: the receiver, a free HTTP port, positions in the scratch dir.
    pub(crate) fn new(env: &Env) -> Overlay {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut o = Overlay(Vec::new());
        o.set("client.url", env.loki.url().into());
        o.set("server.http_listen", format!("127.0.0.1:{port}").into());
        o.set(
            "positions.filename",
            env.path("positions.json").display().to_string().into(),
        );
        o
    }

    pub(crate) fn set(&mut self, path: &str, v: Value) {
        self.0.push((path.to_string(), v));
    }

    /// Applies the overlay to the converted config at `file`, in place.
    pub(crate) fn apply(&self, file: &Path) {
        let mut doc: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        for (path, v) in &self.0 {
            let mut at = &mut doc;
            for key in path.split('.') {
                at = match key.parse::<usize>() {
                    Ok(i) => &mut at[i],
                    Err(_) => {
                        let m = at.as_mapping_mut().expect("a map on the way");
                        m.entry(key.into()).or_insert(Value::Mapping(Default::default()))
                    }
                };
            }
            *at = v.clone();
        }
        std::fs::write(file, serde_yaml_ng::to_string(&doc).unwrap()).unwrap();
    }
}

/// The stand-in API server with `pods`, a kubeconfig for it, and the overlay keys of a
/// Kubernetes setup (pods root, kubeconfig, node name).
pub(crate) fn kubernetes(env: &Env, overlay: &mut Overlay, pods: &[Pod]) -> (KubeApi, PathBuf) {
    let api = KubeApi::start();
    let kubeconfig = env.path("kubeconfig");
    api.write_kubeconfig(&kubeconfig);
    for p in pods {
        api.apply_pod(p);
    }
    let root = env.path("pods");
    std::fs::create_dir_all(&root).unwrap();
    overlay.set("kubernetes.pods_root", root.display().to_string().into());
    overlay.set("kubernetes.kubeconfig", kubeconfig.display().to_string().into());
    overlay.set("kubernetes.node_name", "node-a".into());
    (api, root)
}

/// Starts the agent on the converted config, writes 300 CRI lines into each of two pods' logs
/// (`a` and `b` under the pods root) once it watches the pods, and checks every line arrived once.
pub(crate) fn ship_two_pods(env: &Env, cfg: &Path, api: &KubeApi, a: &Path, b: &Path) -> Agent {
    let agent = Agent::start(cfg);
    assert!(api.wait_for_watches("pods", 1, Duration::from_secs(10)));
    for (f, path) in [a, b].into_iter().enumerate() {
        let mut w = LogWriter::create(path, Format::Cri).unwrap();
        write_tagged(&mut w, f as u32, 0..300);
    }
    let account = wait_all(env, &agent, &[(0, 300), (1, 300)], 30);
    assert_eq!((account.lost(), account.duplicated()), (0, 0), "{account}");
    agent
}

/// The receiver's stream label sets, sorted.
pub(crate) fn label_sets(env: &Env) -> Vec<String> {
    env.loki.streams().keys().cloned().collect()
}

#[test]
fn alloys_kubernetes_pipeline_converts_and_ships_with_its_labels() {
    let env = Env::new();
    let cfg = env.path("shipper.yaml");
    let (code, report) = convert("alloy", "alloy-kubernetes-pods.alloy", &cfg);
    assert_eq!(code, 0, "everything maps: {report}");
    assert!(report.contains("0 not supported"), "{report}");
    let mut overlay = Overlay::new(&env);
    let logger = Pod::new("monitoring", "logger-7f9c8d-x2z9q", "uid-logger", "node-a")
        .label("app.kubernetes.io/name", "logger")
        .container("server", Some("containerd://0a1b2c"));
    let plain = Pod::new("default", "plain-0", "uid-plain", "node-a").container("main", Some("containerd://3d4e5f"));
    let (api, root) = kubernetes(&env, &mut overlay, &[logger, plain]);
    overlay.apply(&cfg);
    let a = root.join("monitoring_logger-7f9c8d-x2z9q_uid-logger/server/0.log");
    let b = root.join("default_plain-0_uid-plain/main/0.log");
    let agent = ship_two_pods(&env, &cfg, &api, &a, &b);
    // As Alloy's rules give them: job is namespace/container (not our namespace/app), app only
    // from app.kubernetes.io/name, container_runtime made by a rule and dropped by a stage.
    let mut want = vec![
        format!(
            "{{app=\"logger\", cluster=\"my-cluster\", container=\"server\", filename=\"{}\", job=\"monitoring/server\", namespace=\"monitoring\", node_name=\"node-a\", pod=\"logger-7f9c8d-x2z9q\", stream=\"stdout\"}}",
            a.display()
        ),
        format!(
            "{{cluster=\"my-cluster\", container=\"main\", filename=\"{}\", job=\"default/main\", namespace=\"default\", node_name=\"node-a\", pod=\"plain-0\", stream=\"stdout\"}}",
            b.display()
        ),
    ];
    want.sort();
    assert_eq!(label_sets(&env), want);
    agent.stop();
}

#[test]
fn the_promtail_charts_config_converts_and_ships_with_its_labels() {
    let env = Env::new();
    let cfg = env.path("shipper.yaml");
    let (code, report) = convert("promtail", "promtail-chart.yaml", &cfg);
    assert_eq!(code, 0, "everything maps: {report}");
    let mut overlay = Overlay::new(&env);
    let web = Pod::new("default", "web-0", "uid-web", "node-a")
        .label("app", "web")
        .label("app.kubernetes.io/instance", "web-prod")
        .container("nginx", Some("containerd://0a1b2c"));
    let api_pod = Pod::new("default", "api-7d4b9c8f6d-abcde", "uid-api", "node-a")
        .controller("ReplicaSet", "api-7d4b9c8f6d")
        .container("api", Some("containerd://3d4e5f"));
    let (api, root) = kubernetes(&env, &mut overlay, &[web, api_pod]);
    overlay.apply(&cfg);
    let a = root.join("default_web-0_uid-web/nginx/0.log");
    let b = root.join("default_api-7d4b9c8f6d-abcde_uid-api/api/0.log");
    let agent = ship_two_pods(&env, &cfg, &api, &a, &b);
    // As the chart's rules give them: app from the `app` label, else the controller's name without
    // its hash; instance from app.kubernetes.io/instance; job namespace/app.
    let mut want = vec![
        format!(
            "{{app=\"web\", container=\"nginx\", filename=\"{}\", instance=\"web-prod\", job=\"default/web\", namespace=\"default\", node_name=\"node-a\", pod=\"web-0\", stream=\"stdout\"}}",
            a.display()
        ),
        format!(
            "{{app=\"api\", container=\"api\", filename=\"{}\", job=\"default/api\", namespace=\"default\", node_name=\"node-a\", pod=\"api-7d4b9c8f6d-abcde\", stream=\"stdout\"}}",
            b.display()
        ),
    ];
    want.sort();
    assert_eq!(label_sets(&env), want);
    agent.stop();
}

#[test]
fn a_promtail_host_config_with_docker_and_the_journal_converts_and_ships() {
    let journal =
        shipper_testkit::journal::tools("a_promtail_host_config_with_docker_and_the_journal_converts_and_ships");
    let env = Env::new();
    let cfg = env.path("shipper.yaml");
    let (code, report) = convert("promtail", "promtail-docker-journal.yaml", &cfg);
    assert_eq!(code, 0, "everything maps: {report}");
    assert!(
        !std::fs::read_to_string(&cfg).unwrap().contains("s3cr3t-inline"),
        "the inline password is not written out"
    );
    assert!(report.contains("/etc/shipper/secrets/client0-password"), "{report}");
    let mut overlay = Overlay::new(&env);
    // The password file the report asks for, where this test can write it.
    let secret = env.path("secrets/client0-password");
    std::fs::write(&secret, "s3cr3t-inline").unwrap();
    overlay.set("client.basic_auth.password_file", secret.display().to_string().into());
    overlay.set(
        "targets.0.paths",
        vec![env.path("varlog/*log").display().to_string()].into(),
    );
    let docker = env.path("docker/x");
    overlay.set(
        "targets.1.paths",
        vec![format!("{}/*/*-json.log", docker.parent().unwrap().display())].into(),
    );
    if journal {
        overlay.set("journal.path", env.path("journal").display().to_string().into());
    } else {
        overlay.set("journal", Value::Null);
    }
    overlay.apply(&cfg);
    let t0 = shipper_testkit::journal::now_us() - 5_000_000;
    let recs: Vec<shipper_testkit::journal::JournalEntry> = (0..50)
        .map(|i| shipper_testkit::journal::JournalEntry {
            hostname: "web-1".into(),
            ts_us: t0 + i,
            unit: "nginx.service".into(),
            priority: 6,
            message: format!("journal entry {i}").into_bytes(),
        })
        .collect();
    if journal {
        shipper_testkit::journal::write_journal(&env.path("journal/remote.journal"), &recs);
    }
    let agent = Agent::start(&cfg);
    let syslog = env.path("varlog/syslog");
    let json = env.path("docker/0a1b/0a1b-json.log");
    let mut ws = LogWriter::create(&syslog, Format::Raw).unwrap();
    let mut wd = LogWriter::create(&json, Format::Docker).unwrap();
    write_tagged(&mut ws, 0, 0..200);
    write_tagged(&mut wd, 1, 0..200);
    let account = wait_all(&env, &agent, &[(0, 200), (1, 200)], 30);
    assert_eq!((account.lost(), account.duplicated()), (0, 0), "{account}");
    let mut want = vec![
        format!(
            "{{env=\"prod\", filename=\"{}\", host=\"web-1\", job=\"varlogs\"}}",
            syslog.display()
        ),
        format!(
            "{{env=\"prod\", filename=\"{}\", host=\"web-1\", job=\"docker\", stream=\"stdout\"}}",
            json.display()
        ),
    ];
    if journal {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let key = "{env=\"prod\", job=\"systemd-journal\", unit=\"nginx.service\"}";
        while env.loki.streams().get(key).map_or(0, Vec::len) < recs.len() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        let lines: Vec<String> = env
            .loki
            .streams()
            .get(key)
            .into_iter()
            .flatten()
            .map(|e| e.line.clone())
            .collect();
        let expected: Vec<String> = (0..50).map(|i| format!("journal entry {i}")).collect();
        assert_eq!(
            lines,
            expected,
            "the journal's entries with their unit: {}",
            agent.log_tail()
        );
        want.push(key.to_string());
    }
    want.sort();
    assert_eq!(label_sets(&env), want);
    agent.stop();
}

/// An ArgoCD Application for Alloy's chart (its config inside the Helm values), converted to our
/// config: the labels of its rules and no others (no job, node_name or stream).
#[test]
fn an_alloy_application_converts_and_ships_with_its_labels() {
    let env = Env::new();
    let cfg = env.path("shipper.yaml");
    let (code, report) = convert_to("alloy-helm-values", "config", "alloy-argocd-application.yaml", &cfg);
    assert_eq!(code, 0, "everything maps: {report}");
    let mut overlay = Overlay::new(&env);
    let logger = Pod::new("monitoring", "logger-0", "uid-logger", "node-a")
        .label("app.kubernetes.io/name", "logger")
        .container("logger", Some("containerd://0a1b2c"));
    let plain = Pod::new("default", "plain-0", "uid-plain", "node-a").container("main", Some("containerd://3d4e5f"));
    let (api, root) = kubernetes(&env, &mut overlay, &[logger, plain]);
    overlay.apply(&cfg);
    let a = root.join("monitoring_logger-0_uid-logger/logger/0.log");
    let b = root.join("default_plain-0_uid-plain/main/0.log");
    let agent = ship_two_pods(&env, &cfg, &api, &a, &b);
    let mut want = vec![
        format!(
            "{{app=\"logger\", cluster=\"my-cluster\", container=\"logger\", filename=\"{}\", namespace=\"monitoring\", pod=\"logger-0\"}}",
            a.display()
        ),
        format!(
            "{{cluster=\"my-cluster\", container=\"main\", filename=\"{}\", namespace=\"default\", pod=\"plain-0\"}}",
            b.display()
        ),
    ];
    want.sort();
    assert_eq!(label_sets(&env), want);
    agent.stop();
}

/// Promtail chart values (the chart's default job plus a labelmap rule), converted to our config:
/// the chart's labels, the labelmap's, and the tenant.
#[test]
fn promtail_chart_values_convert_and_ship_with_their_labels() {
    let env = Env::new();
    let cfg = env.path("shipper.yaml");
    let (code, report) = convert_to("promtail-helm-values", "config", "promtail-chart-values.yaml", &cfg);
    assert_eq!(code, 0, "everything maps: {report}");
    let mut overlay = Overlay::new(&env);
    let shop = Pod::new("shop", "cart-0", "uid-cart", "node-a")
        .label("app.kubernetes.io/name", "cart")
        .label("app.kubernetes.io/component", "backend")
        .label("team.example.com/owner", "payments")
        .container("cart", Some("containerd://0a1b2c"));
    let other = Pod::new("shop", "db-0", "uid-db", "node-a")
        .label("component", "database")
        .controller("StatefulSet", "db")
        .container("postgres", Some("containerd://3d4e5f"));
    let (api, root) = kubernetes(&env, &mut overlay, &[shop, other]);
    overlay.apply(&cfg);
    let a = root.join("shop_cart-0_uid-cart/cart/0.log");
    let b = root.join("shop_db-0_uid-db/postgres/0.log");
    let agent = ship_two_pods(&env, &cfg, &api, &a, &b);
    let mut want = vec![
        format!(
            "{{app=\"cart\", component=\"backend\", container=\"cart\", filename=\"{}\", job=\"shop/cart\", namespace=\"shop\", node_name=\"node-a\", owner=\"payments\", pod=\"cart-0\", stream=\"stdout\"}}",
            a.display()
        ),
        format!(
            "{{app=\"db\", component=\"database\", container=\"postgres\", filename=\"{}\", job=\"shop/db\", namespace=\"shop\", node_name=\"node-a\", pod=\"db-0\", stream=\"stdout\"}}",
            b.display()
        ),
    ];
    want.sort();
    assert_eq!(label_sets(&env), want);
    let tenants: std::collections::BTreeSet<Option<String>> = env
        .loki
        .streams()
        .values()
        .flatten()
        .map(|e| e.tenant.clone())
        .collect();
    assert_eq!(tenants, [Some("team-a".to_string())].into(), "the client's tenant_id");
    agent.stop();
}

/// Alloy reading pods' logs through the API (loki.source.kubernetes), its rules in two chained
/// discovery.relabel components: shipper reads kubelet's files and labels them as those rules do
/// (no filename, job namespace/pod, a labelmap), the node filter built in.
#[test]
fn alloys_api_pipeline_converts_and_ships_with_its_labels() {
    let env = Env::new();
    let cfg = env.path("shipper.yaml");
    let (code, report) = convert("alloy", "alloy-kubernetes-api.alloy", &cfg);
    assert_eq!(code, 0, "everything maps: {report}");
    let mut overlay = Overlay::new(&env);
    let owned = Pod::new("shop", "cart-0", "uid-cart", "node-a")
        .label("team.example.com/owner", "payments")
        .container("cart", Some("containerd://0a1b2c"));
    let plain = Pod::new("default", "plain-0", "uid-plain", "node-a").container("main", Some("containerd://3d4e5f"));
    let (api, root) = kubernetes(&env, &mut overlay, &[owned, plain]);
    overlay.apply(&cfg);
    let a = root.join("shop_cart-0_uid-cart/cart/0.log");
    let b = root.join("default_plain-0_uid-plain/main/0.log");
    let agent = ship_two_pods(&env, &cfg, &api, &a, &b);
    let mut want = vec![
        "{container=\"cart\", job=\"shop/cart-0\", namespace=\"shop\", owner=\"payments\", pod=\"cart-0\"}".to_string(),
        "{container=\"main\", job=\"default/plain-0\", namespace=\"default\", pod=\"plain-0\"}".to_string(),
    ];
    want.sort();
    assert_eq!(label_sets(&env), want);
    agent.stop();
}

/// The exit codes a script can rely on: 3 when something was left out (the output written, but not
/// with --strict), 2 when the source does not parse (with file:line:column), and the report on
/// stderr either way.
#[test]
fn exit_codes_say_what_was_left_out_and_strict_writes_nothing() {
    let env = Env::new();
    let src = env.path("config.alloy");
    std::fs::write(
        &src,
        "loki.source.file \"a\" {\n  targets    = [{__path__ = \"/var/log/*.log\"}]\n  forward_to = [loki.process.p.receiver]\n}\nloki.process \"p\" {\n  stage.geoip {\n    source = \"ip\"\n  }\n  forward_to = [loki.write.w.receiver]\n}\nloki.write \"w\" {\n  endpoint {\n    url = \"http://loki:3100/loki/api/v1/push\"\n  }\n}\n",
    )
    .unwrap();
    let run = |args: &[&str], out: &Path| {
        let o = Command::new(BIN)
            .arg("convert")
            .args(args)
            .arg(&src)
            .arg("-o")
            .arg(out)
            .output()
            .unwrap();
        (o.status.code(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let written = env.path("out.yaml");
    let (code, report) = run(&["--from", "alloy"], &written);
    assert_eq!(code, Some(3), "{report}");
    assert!(
        report.contains(":6: loki.process stage.geoip: NOT SUPPORTED"),
        "{report}"
    );
    let check = Command::new(BIN).args(["check", "-c"]).arg(&written).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    let strict = env.path("strict.yaml");
    let (code, report) = run(&["--from", "alloy", "--strict"], &strict);
    assert_eq!(code, Some(3), "{report}");
    assert!(!strict.exists(), "--strict wrote {}", strict.display());
    std::fs::write(&src, "loki.write \"w\" {\n  endpoint {\n    url = \"http://x\"\n").unwrap();
    let (code, report) = run(&["--from", "alloy"], &env.path("bad.yaml"));
    assert_eq!(code, Some(2), "{report}");
    assert!(report.contains(&format!("{}:4:1", src.display())), "{report}");
}

/// `shipper check -c FILE` with `vars` set: whether it passed, and its stderr.
fn check_with(file: &Path, vars: &[(&str, &str)]) -> (bool, String) {
    let o = Command::new(BIN)
        .args(["check", "-c"])
        .arg(file)
        .envs(vars.iter().copied())
        .output()
        .unwrap();
    (o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// What Grafana's k8s-monitoring chart (v2) generates for pod logs: a `declare` instantiated once,
/// its loki.process forwarding to the instance's argument. Everything is carried and the written
/// config passes `shipper check`.
#[test]
fn k8s_monitorings_pod_logs_declare_converts_and_passes_check() {
    let env = Env::new();
    let cfg = env.path("shipper.yaml");
    let (code, report) = convert("alloy", "k8s-monitoring-pod-logs-via-loki.alloy", &cfg);
    assert_eq!(code, 0, "everything maps: {report}");
    for want in [
        ":4: declare \"pod_logs_via_loki\": mapped to its components inlined at each use (pod_logs_via_loki \"feature\" at line 197)",
        ":197: pod_logs_via_loki \"feature\": mapped to",
        ":141: loki.source.file \"pod_logs_via_loki.feature/pod_logs\": mapped to the files of its targets",
        ":208: otelcol.exporter.loki \"loki\": not needed: nothing sends to it",
    ] {
        assert!(report.contains(want), "{want}\n{report}");
    }
    let (ok, err) = check_with(&cfg, &[]);
    assert!(ok, "{err}");
}

/// The chart's config with the destination's URL, tenant and credentials in a Kubernetes Secret
/// (remote.kubernetes.secret, through convert.nonsensitive): the password and TLS PEMs become
/// files where the Secret's keys are mounted, URL, tenant and user name `${VAR}`s. With those
/// variables set, `shipper check` only misses the Secret's files, which the pod mounts.
#[test]
fn k8s_monitorings_secrets_become_files_and_variables() {
    let env = Env::new();
    let cfg = env.path("shipper.yaml");
    let (code, report) = convert("alloy", "k8s-monitoring-external-secrets.alloy", &cfg);
    assert_eq!(code, 0, "everything maps: {report}");
    for want in [
        ":214: loki.write \"logs_service\" endpoint url: mapped to `${LOKI_HOST}`, read when shipper starts: set LOKI_HOST from key `loki-host` of Secret monitoring/my-monitoring-secret",
        ":219: loki.write \"logs_service\" endpoint basic_auth password: mapped to password_file: /etc/shipper/secrets/basic-auth/password, key `access-token` of Secret monitoring/my-monitoring-secret",
        ":237: remote.kubernetes.secret \"logs_service\": not needed",
    ] {
        assert!(report.contains(want), "{want}\n{report}");
    }
    let written = std::fs::read_to_string(&cfg).unwrap();
    assert!(written.contains("url: ${LOKI_HOST}/loki/api/v1/push"), "{written}");
    let vars = [
        ("LOKI_HOST", "https://logs.example.com"),
        ("TENANTID", "1234"),
        ("LOKI_USERNAME", "user"),
    ];
    let (ok, err) = check_with(&cfg, &vars);
    assert!(!ok && err.contains("/etc/shipper/secrets/basic-auth/password"), "{err}");
    // With the password file where the Secret is mounted, and without the TLS files of the example.
    let password = env.path("password");
    std::fs::write(&password, "secret\n").unwrap();
    let mut overlay = Overlay(Vec::new());
    overlay.set("client.basic_auth.password_file", password.display().to_string().into());
    overlay.set("client.tls", Value::Mapping(Default::default()));
    overlay.apply(&cfg);
    let (ok, err) = check_with(&cfg, &vars);
    assert!(ok, "{err}");
}
