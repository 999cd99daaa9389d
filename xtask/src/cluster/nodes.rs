//! `up --nodes N`: N registered Node objects without kubelets, for measuring the API server's load of
//! many agents. A keeper process renews each one's `Ready` condition and its Lease every 10 s, as a
//! kubelet does; without that the node-lifecycle controller marks them NotReady after 40 s and taints
//! them, and DaemonSets stop placing pods there.

use super::{procs, sh, Layout};
use std::path::Path;
use std::time::Duration;

pub const PREFIX: &str = "fake-node-";
const KEEPER: &str = "fake-node-keeper";

/// `cluster nodes N`: exactly N fake nodes (0 removes them, their Leases and the keeper).
pub fn set(l: &Layout, bin: &Path, n: u32) -> Result<(), String> {
    stop(l);
    let kubectl = |args: &[&str]| crate::run(l.kubectl(bin).args(args));
    kubectl(&[
        "delete",
        "nodes",
        "-l",
        "shipper.io/fake-node=true",
        "--ignore-not-found",
    ])?;
    let leases = sh(&format!(
        "{} --kubeconfig {} get leases -n kube-node-lease -o name | grep '/{PREFIX}' || true",
        bin.join("kubectl").display(),
        l.kubeconfig().display()
    ))?;
    for lease in leases.lines().filter(|x| !x.is_empty()) {
        kubectl(&["delete", "-n", "kube-node-lease", lease, "--ignore-not-found"])?;
    }
    if n > 0 {
        register(l, bin, n)?;
    }
    Ok(())
}

/// Creates the nodes, renews them once, and starts the keeper (this same program, detached).
fn register(l: &Layout, bin: &Path, n: u32) -> Result<(), String> {
    for i in 1..=n {
        let name = format!("{PREFIX}{i}");
        let node = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": {
                "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                "shipper.io/fake-node": "true"}},
        });
        let file = l.state.join(format!("{name}.json"));
        std::fs::write(&file, node.to_string()).map_err(|e| e.to_string())?;
        crate::run(l.kubectl(bin).args(["apply", "-f"]).arg(&file))?;
    }
    renew(l, n)?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    procs::start(
        l,
        KEEPER,
        &[
            exe.display().to_string(),
            "cluster".into(),
            "keep-nodes".into(),
            n.to_string(),
        ],
    )?;
    Ok(())
}

/// The keeper's loop (`cargo xtask cluster keep-nodes N`, started by `register`).
pub fn keep(l: &Layout, n: u32) -> Result<(), String> {
    loop {
        if let Err(e) = renew(l, n) {
            eprintln!("renewing the fake nodes: {e}");
        }
        std::thread::sleep(Duration::from_secs(10));
    }
}

pub fn stop(l: &Layout) {
    procs::stop(l, KEEPER);
}

/// What a kubelet reports: Ready, some capacity (so pods can be bound there), and a renewed Lease.
fn renew(l: &Layout, n: u32) -> Result<(), String> {
    let now = sh("date -u +%Y-%m-%dT%H:%M:%SZ")?.trim().to_string();
    let micro = sh("date -u +%Y-%m-%dT%H:%M:%S.%6NZ")?.trim().to_string();
    let pki = l.pki.display();
    let curl = format!("curl -sf --cacert {pki}/ca.crt --cert {pki}/admin.crt --key {pki}/admin.key -o /dev/null",);
    for i in 1..=n {
        let name = format!("{PREFIX}{i}");
        let cond = |t: &str, s: &str, reason: &str| {
            serde_json::json!({"type": t, "status": s, "reason": reason, "message": "fake node kept by cargo xtask cluster",
                "lastHeartbeatTime": now, "lastTransitionTime": now})
        };
        let status = serde_json::json!({"status": {
            "conditions": [cond("Ready", "True", "KubeletReady"), cond("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure"), cond("PIDPressure", "False", "KubeletHasSufficientPID")],
            "capacity": {"cpu": "8", "memory": "32Gi", "pods": "250"},
            "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "250"},
        }});
        sh(&format!(
            "{curl} -X PATCH -H 'Content-Type: application/merge-patch+json' {}/api/v1/nodes/{name}/status -d '{status}'",
            l.server()
        ))?;
        let lease_url = format!(
            "{}/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
            l.server()
        );
        let patch =
            serde_json::json!({"spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": micro}});
        if sh(&format!(
            "{curl} -X PATCH -H 'Content-Type: application/merge-patch+json' {lease_url}/{name} -d '{patch}'"
        ))
        .is_err()
        {
            let lease = serde_json::json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": "kube-node-lease"},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": micro}});
            sh(&format!(
                "{curl} -X POST -H 'Content-Type: application/json' {lease_url} -d '{lease}'"
            ))?;
        }
    }
    Ok(())
}
