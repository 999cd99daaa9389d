//! The Pod Security level the agent needs, as a real API server's PodSecurity admission decides it
//! (docs/src/production.md, "Pod Security"): the chart's pod is refused in a namespace that enforces
//! `baseline`, for the reasons the page lists and no others, still refused for its `hostPath`
//! volumes with eBPF off and the runtime's seccomp profile, and admitted where `privileged` is
//! enforced.

use crate::kube::{cluster, Cluster};
use crate::render::{find, render};
use serde_json::json;
use std::time::Duration;

/// The chart's DaemonSet pod, as the DaemonSet controller would create it in `namespace` (under
/// the namespace's `default` ServiceAccount, so that nothing but the pod itself is judged).
fn pod_of(values: Option<&str>, namespace: &str) -> String {
    let objects = render(values);
    let mut spec = find(&objects, "DaemonSet")["spec"]["template"]["spec"].clone();
    spec["serviceAccountName"] = json!("default");
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "shipper-pod-security", "namespace": namespace},
        "spec": spec,
    });
    serde_json::to_string(&pod).unwrap()
}

/// A namespace enforcing `level`, with its `default` ServiceAccount in place.
fn namespace(c: &Cluster, level: &str) -> String {
    let name = format!("pod-security-{level}");
    let ns = json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"pod-security.kubernetes.io/enforce": level}},
    });
    c.with_stdin(&["apply"], &ns.to_string())
        .unwrap_or_else(|e| panic!("namespace {name}: {e}"));
    c.wait(
        "the namespace's default ServiceAccount",
        Duration::from_secs(60),
        || {
            c.kubectl(&["get", "serviceaccount", "default", "-n", &name])
                .status
                .success()
                .then_some(())
        },
    );
    name
}

/// `kubectl apply --dry-run=server` of the pod: Ok, or the API server's refusal.
fn admit(c: &Cluster, pod: &str) -> Result<String, String> {
    c.with_stdin(&["apply", "--dry-run=server", "-o", "name"], pod)
}

fn refusal(c: &Cluster, what: &str, pod: &str) -> String {
    match admit(c, pod) {
        Ok(out) => panic!("{what}: admitted under `baseline`: {out}"),
        Err(e) => {
            assert!(
                e.contains("violates PodSecurity \"baseline"),
                "{what}: refused for another reason: {e}"
            );
            e
        }
    }
}

#[test]
fn the_chart_pod_needs_the_privileged_level_for_the_reasons_the_docs_give() {
    let Some((c, _lock)) = cluster() else { return };
    let baseline = namespace(&c, "baseline");
    let privileged = namespace(&c, "privileged");

    // The defaults: hostPath volumes, capabilities beyond baseline's list (DAC_READ_SEARCH for
    // the logs, BPF and PERFMON for eBPF), and the Unconfined seccomp profile io_uring needs.
    let e = refusal(&c, "the defaults", &pod_of(None, &baseline));
    for reason in [
        "hostPath volumes",
        "\"DAC_READ_SEARCH\"",
        "\"BPF\"",
        "\"PERFMON\"",
        "seccompProfile",
    ] {
        assert!(e.contains(reason), "the defaults: the refusal names {reason}: {e}");
    }
    assert!(!e.contains("host namespaces"), "hostNetwork is off by default: {e}");

    // hostNetwork adds the host's network to the reasons.
    let e = refusal(&c, "hostNetwork", &pod_of(Some("hostNetwork: true\n"), &baseline));
    assert!(
        e.contains("host namespaces") && e.contains("hostNetwork=true"),
        "hostNetwork: {e}"
    );

    // eBPF off and the runtime's seccomp profile leave DAC_READ_SEARCH and the hostPath volumes:
    // still refused, so the level stays privileged.
    let stricter = "ebpf:\n  enabled: false\nsecurityContext:\n  seccompProfile: RuntimeDefault\n";
    let e = refusal(&c, "eBPF off, RuntimeDefault", &pod_of(Some(stricter), &baseline));
    assert!(e.contains("hostPath volumes"), "eBPF off, RuntimeDefault: {e}");
    for gone in ["\"BPF\"", "\"PERFMON\"", "seccompProfile"] {
        assert!(
            !e.contains(gone),
            "eBPF off, RuntimeDefault: {gone} is no longer a reason: {e}"
        );
    }

    // Where `privileged` is enforced, the pod is admitted as it is.
    for (what, values) in [("the defaults", None), ("hostNetwork", Some("hostNetwork: true\n"))] {
        admit(&c, &pod_of(values, &privileged)).unwrap_or_else(|e| panic!("{what}: refused under `privileged`: {e}"));
    }

    for ns in [baseline, privileged] {
        let _ = c.kubectl(&["delete", "namespace", &ns, "--wait=false"]);
    }
}
