//! RBAC for real: the agent's ServiceAccount without the namespaces permission while
//! `watch_namespaces` is on (a cluster whose admins trimmed the ClusterRole). The real API server
//! refuses the namespace watch; the agent warns once, stays Ready and ships with pod labels.

use crate::apps::{agent_log, app, helm_install, remove_apps, shipped};
use crate::kube::{cluster, NAMESPACE};
use crate::render::{documents, render_text};
use serde_json::Value;
use shipper_testkit::Receiver;

#[test]
fn without_the_namespaces_permission_the_agent_warns_once_and_ships_with_pod_labels() {
    let Some((c, _lock)) = cluster() else { return };
    let receiver = Receiver::start();
    // The admins' own RBAC (the chart's `rbac.create: false`): the chart's ClusterRole and binding
    // without the namespaces rule, applied before the chart.
    let mut rbac: Vec<Value> = documents(&render_text(None, false))
        .into_iter()
        .filter(|o| o["kind"] == "ClusterRole" || o["kind"] == "ClusterRoleBinding")
        .collect();
    let role = rbac.iter_mut().find(|o| o["kind"] == "ClusterRole").unwrap();
    let rules = role["rules"].as_array_mut().unwrap();
    let before = rules.len();
    rules.retain(|r| !r["resources"].as_array().unwrap().contains(&Value::from("namespaces")));
    assert_eq!(
        rules.len(),
        before - 1,
        "the chart grants namespaces while watchNamespaces is on"
    );
    c.uninstall();
    remove_apps(&c);
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": rbac});
    c.with_stdin(&["apply"], &list.to_string()).unwrap();
    let agent = helm_install(&c, &receiver, &["--set", "rbac.create=false"]);
    let config = c.json(&["get", "configmap", "shipper", "-n", NAMESPACE]);
    assert!(config["data"]["shipper.yaml"]
        .as_str()
        .unwrap()
        .contains("watch_namespaces: true"));
    app(&c, "trimmed", 2_000);
    shipped(&receiver, &c, "trimmed", 2_000);
    // Still Ready, and one warning that names what to grant, however often the watch was retried.
    assert_eq!(c.agent_ready(None), agent);
    let log = agent_log(&c, &agent);
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"WARN\"") && l.contains("\"resource\":\"namespaces\""))
        .collect();
    assert_eq!(warnings.len(), 1, "one warning for the namespace watch:\n{log}");
    assert!(
        warnings[0].contains("forbidden") && warnings[0].contains("grant get/list/watch on namespaces"),
        "{}",
        warnings[0]
    );
    assert!(
        !log.lines()
            .any(|l| l.contains("\"resource\":\"pods\"") && l.contains("forbidden")),
        "{log}"
    );
    remove_apps(&c);
    c.uninstall();
}
