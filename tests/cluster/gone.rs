//! A real 410: etcd compacted past the revision the agent's pod watch had reached, and the API server
//! restarted, so the watch resumes from a resourceVersion that is gone (the API server says so with an
//! ERROR event inside the watch stream). The agent lists again, once, and pods created afterwards
//! are labelled.

use crate::apps::{agent_log, app, install, remove_apps, shipped};
use crate::kube::{cluster, Cluster};
use serde_json::{json, Value};
use shipper_testkit::Receiver;
use std::time::Duration;

/// Revisions no agent's watch sees (ConfigMaps), then etcd compacted past them and the API server
/// restarted: every watch resumes from a resourceVersion that is gone.
pub fn compact_past_and_restart(c: &Cluster) {
    let items: Vec<Value> = (0..20)
        .map(|i| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("churn-{i}"), "namespace": "default"}}))
        .collect();
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string();
    c.with_stdin(&["apply"], &list).unwrap();
    c.with_stdin(&["delete"], &list).unwrap();
    let status: Value = serde_json::from_str(&c.etcdctl(&["endpoint", "status", "-w", "json"])).unwrap();
    let revision = status[0]["Status"]["header"]["revision"].as_u64().unwrap();
    c.etcdctl(&["compact", &revision.to_string()]);
    c.xtask(&["cluster", "restart", "kube-apiserver"]);
}

/// How often the agent said it listed this node's pods (at start, and after each relist).
pub fn lists(log: &str) -> usize {
    log.lines().filter(|l| l.contains("pods on this node listed")).count()
}

#[test]
fn after_etcd_compaction_and_an_api_server_restart_new_pods_are_labelled() {
    let Some((c, _lock)) = cluster() else { return };
    let receiver = Receiver::start();
    let agent = install(&c, &receiver, &[]);
    assert_eq!(lists(&agent_log(&c, &agent)), 1);
    // A resourceVersion of this node's pods as the agent's watch knows it (or an older one).
    let selector = format!("spec.nodeName={}", c.node);
    let listed: Value =
        serde_json::from_str(&c.ok(&["get", "--raw", &format!("/api/v1/pods?fieldSelector={selector}")])).unwrap();
    let seen = listed["metadata"]["resourceVersion"].as_str().unwrap().to_owned();
    assert!(!seen.is_empty());

    compact_past_and_restart(&c);
    // The watch the agent resumes is refused as too old: a 410 inside the stream, from the real server.
    let path = format!("/api/v1/pods?watch=1&resourceVersion={seen}&fieldSelector={selector}&timeoutSeconds=2");
    let answer = c.ok(&["get", "--raw", &path]);
    assert!(
        answer.contains("\"code\":410") && answer.contains("too old resource version"),
        "{answer}"
    );

    c.wait_ok(
        "the agent listing again after its watch became too old",
        Duration::from_secs(60),
        || {
            let log = agent_log(&c, &agent);
            (lists(&log) >= 2).then_some(()).ok_or(log)
        },
    );
    // One LIST per 410: kube's watcher lists again by itself, and nothing lists a second time
    // (which would follow within the watcher's backoff, about a second).
    std::thread::sleep(Duration::from_secs(5));
    let log = agent_log(&c, &agent);
    assert_eq!(lists(&log), 2, "{log}");

    app(&c, "after410", 1_000);
    shipped(&receiver, &c, "after410", 1_000);
    remove_apps(&c);
    c.uninstall();
}
