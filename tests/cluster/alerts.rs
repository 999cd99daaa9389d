//! A real Prometheus (Debian's) scrapes the chart's agents as the chart's ServiceMonitor tells the
//! Prometheus Operator to (its selector, port, job label and relabelings, translated into a static
//! scrape config of the endpoints they select), with `deploy/prometheus/shipper-alerts.yaml` loaded
//! as it is shipped. Loki answers 401 while a logger writes: ShipperPushBlocked goes pending,
//! then firing after its 5 minutes; Loki takes the pushes again: the alert resolves and every line
//! arrives.

use crate::apps::{app, check_stream, finished, install, pods_of, remove_apps};
use crate::kube::{cluster, Cluster, NAMESPACE};
use crate::render::{find, have, render, ROOT};
use serde_json::{json, Value};
use shipper_testkit::Receiver;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const LINES: u32 = 20_000;

/// What the Prometheus Operator would scrape for the chart's ServiceMonitor, as a static scrape
/// config (Debian's Prometheus is built without Kubernetes service discovery): the ready addresses
/// of the Services its selector matches, on the port it names, `job` from the Service's label named
/// by `jobLabel`, and its relabelings' labels.
fn scrape_config(c: &Cluster) -> Value {
    let objects = render(Some("serviceMonitor: {enabled: true}"));
    let monitor = &find(&objects, "ServiceMonitor")["spec"];
    let selector: Vec<String> = monitor["selector"]["matchLabels"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
        .collect();
    let endpoint = &monitor["endpoints"][0];
    let services = c.json(&["get", "services", "-n", NAMESPACE, "-l", &selector.join(",")]);
    let mut targets = Vec::new();
    for service in services["items"].as_array().unwrap() {
        let job = &service["metadata"]["labels"][monitor["jobLabel"].as_str().unwrap()];
        let name = service["metadata"]["name"].as_str().unwrap();
        let endpoints = c.json(&["get", "endpoints", name, "-n", NAMESPACE]);
        for subset in endpoints["subsets"].as_array().into_iter().flatten() {
            let ports = subset["ports"].as_array().unwrap();
            let port = ports.iter().find(|p| p["name"] == endpoint["port"]).unwrap()["port"].clone();
            for address in subset["addresses"].as_array().into_iter().flatten() {
                let mut labels = json!({"job": job, "namespace": NAMESPACE, "service": name});
                for r in endpoint["relabelings"].as_array().into_iter().flatten() {
                    let source = r["sourceLabels"][0].as_str().unwrap();
                    assert_eq!(source, "__meta_kubernetes_pod_node_name", "translate {r} here");
                    labels[r["targetLabel"].as_str().unwrap()] = address["nodeName"].clone();
                }
                targets.push(
                    json!({"targets": [format!("{}:{port}", address["ip"].as_str().unwrap())], "labels": labels}),
                );
            }
        }
    }
    assert!(
        !targets.is_empty(),
        "the ServiceMonitor selects no ready endpoint: {services}"
    );
    json!({
        "job_name": "serviceMonitor/monitoring/shipper/0",
        "metrics_path": endpoint["path"],
        "honor_labels": false,
        "static_configs": targets,
    })
}

/// Debian's Prometheus with the shipped rules, scraping and evaluating every 5 s; stopped on drop.
struct Prometheus {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(c: &Cluster) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let rules = format!("{ROOT}/deploy/prometheus/shipper-alerts.yaml");
        let config = json!({
            "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
            "rule_files": [rules],
            "scrape_configs": [scrape_config(c)],
        });
        let file = dir.path().join("prometheus.yml");
        std::fs::write(&file, serde_yaml_ng::to_string(&config).unwrap()).unwrap();
        let port = shipper_testkit::prom::free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", file.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir,
        }
    }

    fn api(&self, path: &str) -> Result<Value, String> {
        let r = shipper_testkit::client::get(&format!("{}{path}", self.url))
            .map_err(|e| format!("{path}: {e}; Prometheus' log:\n{}", self.log()))?;
        serde_json::from_str::<Value>(&r.text())
            .map(|v| v["data"].clone())
            .map_err(|e| format!("{path}: {e}"))
    }

    /// The state (`pending`, `firing`) of each active alert named `name`.
    fn alert_states(&self, name: &str) -> Result<Vec<String>, String> {
        let data = self.api("/api/v1/alerts")?;
        Ok(data["alerts"]
            .as_array()
            .ok_or("no alerts list")?
            .iter()
            .filter(|a| a["labels"]["alertname"] == name)
            .map(|a| a["state"].as_str().unwrap_or_default().to_owned())
            .collect())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_real_prometheus_fires_push_blocked_during_a_401_and_resolves_it_after() {
    let Some((c, _lock)) = cluster() else { return };
    if !have(
        "prometheus",
        "a_real_prometheus_fires_push_blocked_during_a_401_and_resolves_it_after",
    ) {
        return;
    }
    let receiver = Receiver::start();
    let agent = install(&c, &receiver, &[]);
    let prometheus = Prometheus::start(&c);

    // The agent found and scraped through the Service's endpoints, with the job the rules read.
    let target = c.wait_ok("Prometheus scraping the agent", Duration::from_secs(120), || {
        let active = prometheus.api("/api/v1/targets")?["activeTargets"].clone();
        let up = active.as_array().into_iter().flatten().find(|t| t["health"] == "up");
        up.cloned().ok_or(format!("targets: {active}\n{}", prometheus.log()))
    });
    assert_eq!(target["labels"]["job"], "shipper", "{target}");
    assert_eq!(target["labels"]["node"], c.node.as_str(), "{target}");
    c.wait_ok("the push_blocked series scraped at 0", Duration::from_secs(60), || {
        let result = prometheus.api("/api/v1/query?query=shipper_push_blocked")?["result"].clone();
        let n = result.as_array().map_or(0, Vec::len);
        (n >= 4 && result.as_array().unwrap().iter().all(|s| s["value"][1] == "0"))
            .then_some(())
            .ok_or(format!("{result}"))
    });
    assert_eq!(
        prometheus.alert_states("ShipperPushBlocked").unwrap(),
        Vec::<String>::new()
    );

    // Loki wants credentials the agent was not given: every push is answered 401.
    receiver.set_auth(Some("Bearer the-token-the-agent-lacks"));
    app(&c, "refused", LINES);
    let pod = c.wait("the logger's pod", Duration::from_secs(60), || {
        pods_of(&c, "refused").pop()
    });
    let blocked_at = Instant::now();
    let reaches = |state: &str, timeout: u64| {
        c.wait_ok(
            &format!("ShipperPushBlocked {state}"),
            Duration::from_secs(timeout),
            || {
                let states = prometheus.alert_states("ShipperPushBlocked")?;
                states
                    .iter()
                    .any(|s| s == state)
                    .then_some(())
                    .ok_or(format!("{states:?}"))
            },
        )
    };
    reaches("pending", 120);
    reaches("firing", 480);
    let fired_after = blocked_at.elapsed();
    assert!(
        fired_after >= Duration::from_secs(300),
        "fired after {fired_after:?}, before its 5 minutes"
    );
    let refused = receiver.with_state(|s| s.count_status(401));
    assert!(
        check_stream(&receiver, &c, "refused", &pod, LINES).is_err(),
        "lines arrived while Loki refused them"
    );
    assert!(
        finished(&pod, "refused"),
        "the logger wrote all its lines during the 401s"
    );

    // Loki takes the pushes again: the alert resolves and every line arrives, in order.
    // The agent tries again after its backoff, which grew to at most client.backoff.max_period (5 min).
    receiver.set_auth(None);
    let taken_at = Instant::now();
    c.wait_ok("ShipperPushBlocked resolved", Duration::from_secs(420), || {
        let states = prometheus.alert_states("ShipperPushBlocked")?;
        states.is_empty().then_some(()).ok_or(format!("{states:?}"))
    });
    let resolved_after = taken_at.elapsed();
    c.wait_ok("every line arriving", Duration::from_secs(120), || {
        check_stream(&receiver, &c, "refused", &pod, LINES)
    });
    let duplicates = check_stream(&receiver, &c, "refused", &pod, LINES).unwrap();
    eprintln!(
        "ShipperPushBlocked fired {} s after the first 401 ({refused} pushes refused) and resolved {} s after Loki took pushes again: {LINES} lines, 0 lost, {duplicates} duplicates; agent {agent}",
        fired_after.as_secs(),
        resolved_after.as_secs()
    );
    remove_apps(&c);
    c.uninstall();
}
