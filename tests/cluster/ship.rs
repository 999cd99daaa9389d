//! The chart, installed with the ArgoCD Application's values, runs our image under a real kubelet and
//! ships what kubelet writes for real pods: every line of a logger Deployment and of an app started
//! after the agent, in order, with the pod's labels — through kubelet's own rotation, a rollout
//! restart of the DaemonSet and the deletion of a logger pod.

use crate::apps::{agent_log, app, check_stream, finished, install, pods_of, remove_apps, rotated};
use crate::kube::{cluster, NAMESPACE};
use shipper_testkit::Receiver;
use std::time::Duration;

/// Lines each logger pod writes (≈ 210 bytes each: kubelet rotates its 1 MiB files a few times).
const LOGGER_LINES: u32 = 60_000;
const SECOND_LINES: u32 = 3_000;

#[test]
fn the_chart_runs_our_image_and_ships_every_line_kubelet_writes() {
    let Some((c, _lock)) = cluster() else { return };
    let receiver = Receiver::start();
    // Our image, Running, and Ready through kubelet's probe of /ready.
    let agent = install(&c, &receiver, &[]);
    c.assert_listed_running(&agent);
    let pod = c.json(&["get", "pod", &agent, "-n", NAMESPACE]);
    assert_eq!(pod["status"]["containerStatuses"][0]["image"], c.image("shipper"));

    app(&c, "logger", LOGGER_LINES);
    let first = c.wait("the logger's pod", Duration::from_secs(60), || {
        pods_of(&c, "logger").pop()
    });
    app(&c, "second", SECOND_LINES);
    let second = c.wait("the second app's pod", Duration::from_secs(60), || {
        pods_of(&c, "second").pop()
    });

    // kubelet rotates the logger's file while the agent runs, then the agent is restarted the way
    // `kubectl rollout restart` does it (a new pod; positions on the node's hostPath).
    c.wait("kubelet rotating the logger's log", Duration::from_secs(120), || {
        (rotated(&first, "logger") > 0).then_some(())
    });
    eprintln!("kubelet rotated {first}'s log; restarting the agent");
    let before = agent_log(&c, &agent);
    c.ok(&["rollout", "restart", "daemonset/shipper", "-n", NAMESPACE]);
    let agent2 = c.agent_ready(Some(&agent));

    // The logger pod deleted once it wrote everything; its Deployment starts another.
    c.wait("the first logger pod finishing", Duration::from_secs(180), || {
        finished(&first, "logger").then_some(())
    });
    c.ok(&["delete", "pod", &first, "-n", NAMESPACE, "--wait=false"]);
    let third = c.wait("the logger's new pod", Duration::from_secs(60), || {
        pods_of(&c, "logger").into_iter().find(|p| *p != first)
    });
    c.wait("the new logger pod finishing", Duration::from_secs(180), || {
        finished(&third, "logger").then_some(())
    });

    let expected = [
        ("logger", &first, LOGGER_LINES),
        ("second", &second, SECOND_LINES),
        ("logger", &third, LOGGER_LINES),
    ];
    c.wait_ok("every line kubelet wrote arriving", Duration::from_secs(120), || {
        let errors: Vec<String> = expected
            .iter()
            .filter_map(|(app, pod, n)| check_stream(&receiver, &c, app, pod, *n).err())
            .collect();
        errors.is_empty().then_some(()).ok_or(errors.join("; "))
    });
    for (app, pod, n) in expected {
        let dups = check_stream(&receiver, &c, app, pod, n).unwrap();
        eprintln!("{pod}: {n} lines in order, {dups} duplicates");
    }

    // RBAC: the ClusterRole's verbs were enough.
    for log in [before, agent_log(&c, &agent2)] {
        assert!(
            !log.contains("Forbidden") && !log.contains("forbidden"),
            "the agent was refused by RBAC:\n{log}"
        );
    }
    remove_apps(&c);
    c.uninstall();
}
