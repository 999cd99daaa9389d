//! Helm itself drives the chart's life on the real cluster, as a user would: `helm install` (the
//! ArgoCD Application's values and the VM's overlay), `helm upgrade` changing the config while a
//! logger pod writes (the DaemonSet rolls; the new pod resumes from the old one's positions on the
//! node), `helm rollback` to the first revision the same way, `helm test` (the chart's hook asks the
//! agent's /ready; with no agent on the node it fails, saying why), and `helm uninstall`, which
//! leaves no object of the chart (the positions on the node stay, by design). Every line the logger
//! wrote arrives, in order; the duplicates the two rollouts caused are reported.

use crate::apps::{app, check_stream, finished, install, pods_of, remove_apps};
use crate::kube::{cluster, Cluster, NAMESPACE, SELECTOR};
use crate::render::CHART;
use shipper_testkit::Receiver;
use std::time::Duration;

/// The logger's lines (paced at ≤ 2,000 a second: a minute or more, through both rollouts).
const LINES: u32 = 120_000;

/// The release's revisions as `helm history` gives them: (revision, status, description).
fn history(c: &Cluster) -> Vec<(u64, String, String)> {
    let out = c.helm_ok(&["history", "shipper", "-n", NAMESPACE, "-o", "json"]);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["revision"].as_u64().unwrap(),
                r["status"].as_str().unwrap().to_owned(),
                r["description"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Lines of the logger's pod that carry `pod_uid` as structured metadata (the upgrade's config).
fn with_pod_uid(r: &Receiver, pod: &str) -> usize {
    r.streams()
        .iter()
        .filter(|(labels, _)| labels.contains(&format!("pod=\"{pod}\"")))
        .flat_map(|(_, entries)| entries.iter())
        .filter(|e| e.structured_metadata.iter().any(|(k, _)| k == "pod_uid"))
        .count()
}

/// The agent's pod, once it is Ready, other than `before`; the DaemonSet's template must carry `checksum`.
fn rolled(c: &Cluster, before: &str) -> (String, String) {
    let agent = c.agent_ready(Some(before));
    let ds = c.json(&["get", "daemonset", "shipper", "-n", NAMESPACE]);
    let checksum = ds["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        .as_str()
        .unwrap()
        .to_owned();
    (agent, checksum)
}

#[test]
fn helm_installs_upgrades_rolls_back_tests_and_uninstalls_the_chart() {
    let Some((c, _lock)) = cluster() else { return };
    let receiver = Receiver::start();
    let first = install(&c, &receiver, &[]);
    c.assert_listed_running(&first);
    let checksum_1 = rolled(&c, "").1;

    app(&c, "steady", LINES);
    let pod = c.wait("the logger's pod", Duration::from_secs(60), || {
        pods_of(&c, "steady").pop()
    });
    c.wait("the logger's first lines arriving", Duration::from_secs(60), || {
        (receiver
            .streams()
            .iter()
            .any(|(l, e)| l.contains(&format!("pod=\"{pod}\"")) && e.len() > 1_000))
        .then_some(())
    });

    // An upgrade that changes the config: Loki 3 structured metadata on every line.
    c.helm_ok(&[
        "upgrade",
        "shipper",
        CHART,
        "-n",
        NAMESPACE,
        "--reuse-values",
        "--set",
        "kubernetes.structuredMetadata={pod_uid}",
    ]);
    let (second, checksum_2) = rolled(&c, &first);
    assert_ne!(checksum_1, checksum_2, "the changed config rolls the pods");
    c.wait(
        "lines shipped with the upgraded config",
        Duration::from_secs(60),
        || (with_pod_uid(&receiver, &pod) > 0).then_some(()),
    );

    // Back to the first revision: the old config, a new pod again.
    c.helm_ok(&["rollback", "shipper", "1", "-n", NAMESPACE, "--wait"]);
    let (third, checksum_3) = rolled(&c, &second);
    assert_eq!(
        checksum_3, checksum_1,
        "the rollback restores the first revision's config"
    );
    let revisions = history(&c);
    let statuses: Vec<(u64, &str)> = revisions.iter().map(|(n, s, _)| (*n, s.as_str())).collect();
    assert_eq!(
        statuses,
        [(1, "superseded"), (2, "superseded"), (3, "deployed")],
        "{revisions:?}"
    );
    assert!(revisions[2].2.contains("Rollback to 1"), "{revisions:?}");
    let still_writing = !finished(&pod, "steady");
    eprintln!(
        "{first} → {second} (upgrade) → {third} (rollback); the logger still writing after both: {still_writing}"
    );

    c.wait("the logger finishing", Duration::from_secs(300), || {
        finished(&pod, "steady").then_some(())
    });
    c.wait_ok("every line of the logger arriving", Duration::from_secs(120), || {
        check_stream(&receiver, &c, "steady", &pod, LINES)
    });
    let duplicates = check_stream(&receiver, &c, "steady", &pod, LINES).unwrap();
    eprintln!("helm upgrade and rollback under load: {LINES} lines, 0 lost, {duplicates} duplicates");

    // `helm test`: the chart's hook pod asks /ready of the agent on its node, and is removed once passed.
    let tested = c.helm_ok(&["test", "shipper", "-n", NAMESPACE, "--timeout", "2m"]);
    assert!(
        tested.contains("shipper-test-ready") && tested.contains("Succeeded"),
        "{tested}"
    );

    // With no agent on the node, `helm test` fails, and its pod stays for `kubectl logs` until the
    // next `helm test` or until it is deleted (`helm uninstall` leaves test pods).
    c.ok(&[
        "patch",
        "daemonset",
        "shipper",
        "-n",
        NAMESPACE,
        "--type=merge",
        "-p",
        r#"{"spec":{"template":{"spec":{"nodeSelector":{"shipper.test/no-such-node":"true"}}}}}"#,
    ]);
    c.wait("the agent's pod gone", Duration::from_secs(120), || {
        c.ok(&["get", "pods", "-n", NAMESPACE, "-l", SELECTOR, "-o", "name"])
            .trim()
            .is_empty()
            .then_some(())
    });
    let failed = c.helm(&["test", "shipper", "-n", NAMESPACE, "--timeout", "2m"]);
    let said = String::from_utf8_lossy(&failed.stdout).into_owned() + &String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success(), "helm test passed with no agent: {said}");
    assert!(said.contains("shipper-test-ready"), "{said}");
    let logs = c.ok(&["logs", "shipper-test-ready", "-n", NAMESPACE]);
    eprintln!("helm test with no agent on the node: failed as it should; the pod's log: {logs}");
    assert!(logs.contains("refused"), "the failed test pod's log says why: {logs}");
    c.ok(&["delete", "pod", "shipper-test-ready", "-n", NAMESPACE, "--wait"]);

    // `helm uninstall`: nothing of the chart is left; the node's positions stay.
    remove_apps(&c);
    c.helm_ok(&["uninstall", "shipper", "-n", NAMESPACE]);
    let instance = "app.kubernetes.io/instance=shipper";
    for (kinds, namespace, selector) in [
        (
            "daemonset,pod,configmap,serviceaccount,service,secret",
            NAMESPACE,
            instance,
        ),
        ("clusterrole,clusterrolebinding", "", instance),
        // Helm's own record of the release's revisions.
        ("secret", NAMESPACE, "owner=helm,name=shipper"),
    ] {
        // The agents' pods stop within their grace period (40 s) after the DaemonSet is gone.
        c.wait_ok(
            "nothing of the chart left after helm uninstall",
            Duration::from_secs(120),
            || {
                let left = c.ok(&["get", kinds, "-n", namespace, "-l", selector, "-o", "name"]);
                left.trim().is_empty().then_some(()).ok_or(left)
            },
        );
    }
    assert!(
        std::path::Path::new("/var/lib/shipper/positions.json").exists(),
        "the node's positions are kept across an uninstall"
    );
    c.uninstall();
}
