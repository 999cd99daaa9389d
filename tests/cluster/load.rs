//! The API server's load from many agents: 20 registered nodes (Node objects kept Ready by
//! `cargo xtask cluster nodes 20`, no kubelets), one agent per node run as a process with what the
//! DaemonSet gives its pod — the chart's config, `NODE_NAME`, the ServiceAccount's token under the
//! chart's ClusterRole — through minutes of pod churn on those nodes. Counted two ways: the API
//! server's own `apiserver_request_total` (every client) and its audit log of the agents'
//! ServiceAccount (exactly theirs). Goal: one LIST and one long-running WATCH per resource per
//! agent, no periodic lists, no GET per pod; then, the agents restarted, one more LIST per resource
//! per agent after a 410 for all of them (etcd compacted, the API server restarted). The figures go to
//! `target/bench/api-load.{md,json}`.

use crate::apps::vm_overlay;
use crate::install::argocd_values;
use crate::kube::{cluster, merge, Cluster, NAMESPACE};
use crate::render::{documents, render_text};
use base64::Engine;
use serde_json::{json, Value};
use shipper_testkit::{client, Receiver};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const AGENTS: u32 = 20;
/// Pod churn this long: under kube's watch timeout (290 s), so one WATCH per resource is the goal.
const CHURN: Duration = Duration::from_secs(180);
const SA_USER: &str = "system:serviceaccount:monitoring:shipper";

/// `(resource, verb)` → requests, from the API server's /metrics.
fn request_totals(c: &Cluster) -> BTreeMap<(String, String), u64> {
    let mut totals = BTreeMap::new();
    for line in c
        .ok(&["get", "--raw", "/metrics"])
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
    {
        let label = |name: &str| {
            let key = format!("{name}=\"");
            line.split_once(&key)
                .and_then(|(_, rest)| rest.split_once('"'))
                .map(|(v, _)| v.to_owned())
        };
        let (Some(resource), Some(verb)) = (label("resource"), label("verb")) else { continue };
        let n: f64 = line.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
        *totals.entry((resource, verb)).or_default() += n as u64;
    }
    totals
}

/// The agents' requests in the audit log after `offset` that the API server received before
/// (`before`) or from (`!before`) the time `at` (RFC 3339, UTC, as the audit log writes it):
/// `(resource, verb)` → distinct requests. A WATCH may be logged only when it ends.
fn audited(c: &Cluster, offset: u64, at: &str, before: bool) -> BTreeMap<(String, String), u64> {
    let path = Path::new(c.info["logs"].as_str().unwrap()).join("audit.log");
    let text = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (a cluster from before audit logging: run `cargo xtask cluster down` and `up`)",
            path.display()
        )
    });
    let mut seen = BTreeSet::new();
    let mut counts = BTreeMap::new();
    for line in String::from_utf8_lossy(&text[offset as usize..]).lines() {
        let Ok(event) = serde_json::from_str::<Value>(line) else { continue };
        let received = event["requestReceivedTimestamp"].as_str().unwrap_or_default();
        if event["user"]["username"] != SA_USER
            || (received < at) != before
            || !seen.insert(event["auditID"].as_str().unwrap_or_default().to_owned())
        {
            continue;
        }
        let resource = event["objectRef"]["resource"].as_str().unwrap_or("-").to_owned();
        let verb = event["verb"].as_str().unwrap_or("-").to_owned();
        *counts.entry((resource, verb)).or_default() += 1;
    }
    counts
}

/// This machine's time (the API server's: it runs here) as the audit log writes it.
fn now_rfc3339() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%S.%6NZ"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The chart's objects for the agents (its RBAC and config), applied without the DaemonSet: the
/// agents run as processes, one per fake node. Returns the config.
fn install_rbac(c: &Cluster, receiver: &Receiver) -> Value {
    c.uninstall();
    c.ensure_namespace();
    let mut values = argocd_values();
    merge(&mut values, &vm_overlay(c, &receiver.url()));
    let objects: Vec<Value> = documents(&render_text(Some(&serde_yaml_ng::to_string(&values).unwrap()), false))
        .into_iter()
        .filter(|o| o["kind"] != "DaemonSet")
        .collect();
    let config = objects.iter().find(|o| o["kind"] == "ConfigMap").unwrap()["data"]["shipper.yaml"].clone();
    let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
    c.with_stdin(&["apply"], &list.to_string()).unwrap();
    serde_yaml_ng::from_str(config.as_str().unwrap()).unwrap()
}

/// A kubeconfig holding a token of the ServiceAccount (what the pod would mount) and the cluster's
/// CA. The token is a ServiceAccount token Secret, which the token controller fills: Kubernetes
/// 1.24 and later no longer create one per ServiceAccount by themselves.
fn token_kubeconfig(c: &Cluster, dir: &Path) -> PathBuf {
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
        "metadata": {"name": "shipper-load-token", "namespace": NAMESPACE,
                     "annotations": {"kubernetes.io/service-account.name": "shipper"}},
    });
    c.with_stdin(&["apply"], &secret.to_string()).unwrap();
    let secret = c.wait("the ServiceAccount's token", Duration::from_secs(60), || {
        let secret = c.json(&["get", "secret", "shipper-load-token", "-n", NAMESPACE]);
        secret["data"]["token"].is_string().then_some(secret)
    });
    let b64 = base64::engine::general_purpose::STANDARD;
    let token = String::from_utf8(b64.decode(secret["data"]["token"].as_str().unwrap()).unwrap()).unwrap();
    let kubeconfig = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": c.info["server"], "certificate-authority-data": secret["data"]["ca.crt"]}}],
        "users": [{"name": "shipper", "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "shipper"}}],
        "current-context": "c",
    });
    let path = dir.join("kubeconfig");
    std::fs::write(&path, kubeconfig.to_string()).unwrap();
    path
}

struct Agent {
    child: Child,
    metrics: String,
    log: PathBuf,
}

/// One agent for `node`: the chart's config with its node paths moved under `dir` (nothing of this
/// node is the fake node's) and its own HTTP port.
fn spawn(config: &Value, kubeconfig: &Path, node: &str, dir: &Path) -> Agent {
    let mut config = config.clone();
    let port = shipper_testkit::prom::free_port();
    for (key, sub) in [("pods_root", "pods"), ("docker_root", "docker")] {
        let p = dir.join(sub);
        std::fs::create_dir_all(&p).unwrap();
        config["kubernetes"][key] = p.display().to_string().into();
    }
    config["positions"]["filename"] = dir.join("positions.json").display().to_string().into();
    config["server"]["http_listen"] = format!("127.0.0.1:{port}").into();
    let file = dir.join("shipper.yaml");
    std::fs::write(&file, serde_yaml_ng::to_string(&config).unwrap()).unwrap();
    let log = dir.join("agent.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(crate::render::BIN)
        .args(["run", "--config"])
        .arg(&file)
        .env("NODE_NAME", node)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("RUST_LOG")
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    Agent {
        child,
        metrics: format!("http://127.0.0.1:{port}/metrics"),
        log,
    }
}

/// Pods bound to the fake nodes (they stay Pending: no kubelet), created and force-deleted for `for_`.
fn churn(c: &Cluster, for_: Duration) -> (u64, u64) {
    let start = Instant::now();
    let (mut created, mut deleted) = (0u64, 0u64);
    let mut live: Vec<(Instant, String)> = Vec::new();
    let mut i = 0u64;
    while start.elapsed() < for_ {
        let pods: Vec<Value> = (0..4)
            .map(|_| {
                i += 1;
                json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": format!("churn-{i}"), "namespace": "default", "labels": {"app": "churn"}},
                    "spec": {"nodeName": format!("fake-node-{}", i % AGENTS as u64 + 1),
                             "containers": [{"name": "app", "image": c.image("busybox")}]}})
            })
            .collect();
        let names: Vec<String> = pods
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_owned())
            .collect();
        c.with_stdin(
            &["create"],
            &json!({"apiVersion": "v1", "kind": "List", "items": pods}).to_string(),
        )
        .unwrap();
        created += names.len() as u64;
        live.extend(names.into_iter().map(|n| (Instant::now(), n)));
        let old: Vec<String> = live
            .iter()
            .filter(|(t, _)| t.elapsed() > Duration::from_secs(10))
            .map(|(_, n)| n.clone())
            .collect();
        if !old.is_empty() {
            let mut args = vec![
                "delete",
                "pod",
                "-n",
                "default",
                "--grace-period=0",
                "--force",
                "--wait=false",
            ];
            args.extend(old.iter().map(String::as_str));
            let _ = c.kubectl(&args);
            deleted += old.len() as u64;
            live.retain(|(t, _)| t.elapsed() <= Duration::from_secs(10));
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let _ = c.kubectl(&[
        "delete",
        "pod",
        "-n",
        "default",
        "-l",
        "app=churn",
        "--grace-period=0",
        "--force",
        "--wait=false",
    ]);
    (created, deleted + live.len() as u64)
}

/// The sum of a metric over the agents (their `/metrics`).
fn agents_metric(agents: &[Agent], name: &str) -> f64 {
    agents
        .iter()
        .filter_map(|a| client::get(&a.metrics).ok())
        .map(|r| shipper_testkit::prom::family_sum(&r.text(), name))
        .sum()
}

#[test]
fn twenty_agents_make_one_list_and_one_watch_per_resource_through_pod_churn() {
    let Some((c, _lock)) = cluster() else { return };
    c.xtask(&["cluster", "nodes", &AGENTS.to_string()]);
    let receiver = Receiver::start();
    let config = install_rbac(&c, &receiver);
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let kubeconfig = token_kubeconfig(&c, dir.path());

    let audit = Path::new(c.info["logs"].as_str().unwrap()).join("audit.log");
    let offset = std::fs::metadata(&audit).map_or(0, |m| m.len());
    let before = request_totals(&c);
    let started = Instant::now();
    let mut agents: Vec<Agent> = (1..=AGENTS)
        .map(|i| {
            let d = dir.path().join(format!("agent-{i}"));
            std::fs::create_dir_all(&d).unwrap();
            spawn(&config, &kubeconfig, &format!("fake-node-{i}"), &d)
        })
        .collect();
    for a in &agents {
        c.wait_ok("every agent ready", Duration::from_secs(60), || {
            let ready = client::get(&a.metrics.replace("/metrics", "/ready")).is_ok_and(|r| r.status == 200);
            ready
                .then_some(())
                .ok_or_else(|| std::fs::read_to_string(&a.log).unwrap_or_default())
        });
    }
    let (created, deleted) = churn(&c, CHURN);
    // The keeper held the nodes Ready all along (else the node-lifecycle controller marks them
    // NotReady after 40 s).
    let nodes = c.json(&["get", "nodes", "-l", "shipper.io/fake-node=true"]);
    let ready = nodes["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| crate::kube::ready(n))
        .count();
    assert_eq!(ready, AGENTS as usize, "fake nodes Ready after {CHURN:?}");
    // The agents' caches followed the churn (their watches work): some pods known at the end.
    let cached = agents_metric(&agents, "shipper_kube_cache_pods");
    let elapsed = started.elapsed();
    for a in &mut agents {
        let _ = Command::new("kill").arg(a.child.id().to_string()).status();
        let _ = a.child.wait();
    }
    std::thread::sleep(Duration::from_secs(2));
    let after = request_totals(&c);
    let mine = audited(&c, offset, &now_rfc3339(), true);

    // Then the same agents again (their positions kept), and a 410 for all of them at once: etcd
    // compacted past their watches and the API server restarted, as after an upgrade of the
    // control plane. Each lists at its start and once more after the 410.
    let restarted = now_rfc3339();
    let mut agents: Vec<Agent> = (1..=AGENTS)
        .map(|i| {
            spawn(
                &config,
                &kubeconfig,
                &format!("fake-node-{i}"),
                &dir.path().join(format!("agent-{i}")),
            )
        })
        .collect();
    let listed = |a: &Agent, n: usize| {
        let log = std::fs::read_to_string(&a.log).unwrap_or_default();
        (crate::gone::lists(&log) >= n).then_some(()).ok_or(log)
    };
    for a in &agents {
        c.wait_ok("every agent listing at its start", Duration::from_secs(60), || {
            listed(a, 1)
        });
    }
    crate::gone::compact_past_and_restart(&c);
    for a in &agents {
        c.wait_ok(
            "every agent listing again after the 410",
            Duration::from_secs(120),
            || listed(a, 2),
        );
    }
    // A second list would follow the first within the watcher's backoff (about a second).
    std::thread::sleep(Duration::from_secs(5));
    for a in &mut agents {
        let _ = Command::new("kill").arg(a.child.id().to_string()).status();
        let _ = a.child.wait();
    }
    let relists = audited(&c, offset, &restarted, false);
    c.xtask(&["cluster", "nodes", "0"]);
    c.uninstall();

    let delta = |resource: &str, verb: &str| {
        let k = (resource.to_owned(), verb.to_owned());
        after.get(&k).unwrap_or(&0) - before.get(&k).unwrap_or(&0)
    };
    let agent = |resource: &str, verb: &str| *mine.get(&(resource.to_owned(), verb.to_owned())).unwrap_or(&0);
    let per = |n: u64| n as f64 / AGENTS as f64;
    let report = json!({
        "agents": AGENTS, "seconds": elapsed.as_secs(), "pods_created": created, "pods_deleted": deleted,
        "per_agent": {
            "list_pods": per(agent("pods", "list")), "watch_pods": per(agent("pods", "watch")), "get_pods": per(agent("pods", "get")),
            "list_namespaces": per(agent("namespaces", "list")), "watch_namespaces": per(agent("namespaces", "watch")),
            "other": mine.iter().filter(|((r, v), _)| !(["pods", "namespaces"].contains(&r.as_str()) && ["list", "watch", "get"].contains(&v.as_str()))).map(|((r, v), n)| format!("{v} {r}: {n}")).collect::<Vec<_>>(),
        },
        "apiserver_request_total_delta_all_clients": {
            "LIST pods": delta("pods", "LIST"), "WATCH pods": delta("pods", "WATCH"), "GET pods": delta("pods", "GET"),
            "LIST namespaces": delta("namespaces", "LIST"), "WATCH namespaces": delta("namespaces", "WATCH"),
            "POST pods": delta("pods", "POST"), "DELETE pods": delta("pods", "DELETE"),
        },
        "agents_cache_pods_at_end": cached,
        "restarted_then_one_410_each": {
            "list_pods": relists.get(&("pods".to_owned(), "list".to_owned())).copied().unwrap_or(0),
            "list_namespaces": relists.get(&("namespaces".to_owned(), "list".to_owned())).copied().unwrap_or(0),
            "watch_pods": relists.get(&("pods".to_owned(), "watch".to_owned())).copied().unwrap_or(0),
        },
    });
    let md = format!(
        "### API-server load: {AGENTS} agents on {AGENTS} registered nodes, {}s of pod churn ({created} pods created, {deleted} deleted)\n\n\
         | per agent (audit log of its ServiceAccount) | LIST | WATCH | GET |\n|---|---:|---:|---:|\n\
         | pods | {} | {} | {} |\n| namespaces | {} | {} | {} |\n\n\
         `apiserver_request_total` over the run, all clients (controllers, kubectl's churn included): \
         LIST pods +{}, WATCH pods +{}, GET pods +{}, LIST namespaces +{}, WATCH namespaces +{}, POST pods +{}, DELETE pods +{}.\n\n\
         Then the agents restarted, and etcd compacted past their watches and the API server restarted \
         (a 410 for each): {} LISTs of pods and {} of namespaces by the {AGENTS} agents, their start's and the 410's.\n",
        elapsed.as_secs(),
        per(agent("pods", "list")), per(agent("pods", "watch")), per(agent("pods", "get")),
        per(agent("namespaces", "list")), per(agent("namespaces", "watch")), per(agent("namespaces", "get")),
        delta("pods", "LIST"), delta("pods", "WATCH"), delta("pods", "GET"),
        delta("namespaces", "LIST"), delta("namespaces", "WATCH"), delta("pods", "POST"), delta("pods", "DELETE"),
        report["restarted_then_one_410_each"]["list_pods"], report["restarted_then_one_410_each"]["list_namespaces"],
    );
    let bench = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("bench");
    std::fs::create_dir_all(&bench).unwrap();
    std::fs::write(
        bench.join("api-load.json"),
        serde_json::to_string_pretty(&report).unwrap(),
    )
    .unwrap();
    std::fs::write(bench.join("api-load.md"), &md).unwrap();
    eprintln!("{md}");

    // Exactly one LIST per resource per agent (each needs one), one WATCH (kube re-watches after
    // 290 s; the churn is shorter), no GET of single pods, nothing else.
    assert_eq!(agent("pods", "list"), AGENTS as u64, "{report}");
    assert_eq!(agent("namespaces", "list"), AGENTS as u64, "{report}");
    assert_eq!(agent("pods", "watch"), AGENTS as u64, "{report}");
    assert_eq!(agent("namespaces", "watch"), AGENTS as u64, "{report}");
    assert_eq!(agent("pods", "get"), 0, "{report}");
    // Restarted, then a 410: one LIST at the start and one per 410, of each resource, per agent.
    assert_eq!(
        report["restarted_then_one_410_each"]["list_pods"],
        2 * AGENTS,
        "{report}"
    );
    assert_eq!(
        report["restarted_then_one_410_each"]["list_namespaces"],
        2 * AGENTS,
        "{report}"
    );
    assert!(report["per_agent"]["other"].as_array().unwrap().is_empty(), "{report}");
    assert!(
        cached > 0.0,
        "the agents' pod caches stayed empty through the churn: {report}"
    );
}
