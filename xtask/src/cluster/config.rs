//! The node's configuration files: containerd's (its own socket, root and state, so a containerd the
//! host may run is left alone), the CNI network, and kubelet's.

use super::Layout;

/// The CNI bridge: pods that do not use the host's network get an address on it.
pub const BRIDGE: &str = "shipper0";
pub const POD_SUBNET: &str = "10.244.0.0/16";
/// kubelet rotates a container's log at this size (checked every 10 s), keeping this many files: small
/// files, so the tests see kubelet's own rotation; enough of them (20 MiB, ~50 s of the ship test's
/// logger) that a rollout restart of the agent on a loaded 2-core VM (~20 s seen) fits in what kubelet
/// keeps, as kubelet's defaults (10Mi × 5) give real nodes. With 3 files, one CI run lost 38,600 lines
/// that kubelet deleted while the agent restarted: no agent can read a file deleted before it starts.
pub const LOG_MAX_SIZE: &str = "1Mi";
pub const LOG_MAX_FILES: u32 = 20;

/// containerd 1.6: the CRI plugin on overlayfs with runc and cgroupfs (cgroup v1 here). No process on
/// this VM holds CAP_SYS_RESOURCE, not even root, and runc fails every sandbox that asks for a lower
/// oom_score_adj than its own: `restrict_oom_score_adj` caps it instead.
pub fn containerd(l: &Layout) -> String {
    format!(
        r#"version = 2
root = "{root}"
state = "{run}/containerd"
[grpc]
  address = "{sock}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni}"
"#,
        root = l.state.join("containerd").display(),
        run = l.run.display(),
        sock = l.containerd_sock().display(),
        pause = super::image::PAUSE,
        cni = l.state.join("cni").display(),
    )
}

/// A bridge network with host-local addresses (no masquerading: the test pods talk to nothing off the
/// node, so the host's iptables stay untouched by CNI).
pub fn cni(l: &Layout) -> String {
    format!(
        r#"{{
  "cniVersion": "0.4.0",
  "name": "shipper",
  "plugins": [
    {{
      "type": "bridge",
      "bridge": "{BRIDGE}",
      "isGateway": true,
      "ipMasq": false,
      "ipam": {{
        "type": "host-local",
        "ranges": [[{{"subnet": "{POD_SUBNET}"}}]],
        "routes": [{{"dst": "0.0.0.0/0"}}],
        "dataDir": "{ipam}"
      }}
    }}
  ]
}}
"#,
        ipam = l.state.join("cni-ipam").display()
    )
}

/// kubelet: the default root directory, so pod logs land in /var/log/pods and /var/log/containers as
/// on any node; webhook authentication and authorization against the API server (what `kubectl logs`
/// goes through); no swap check (this VM may have swap); no iptables chains of its own. No image
/// garbage collection: the images are imported, not pullable (no registry here), and kubelet's
/// default GC (disk usage over 85 %, counted as capacity minus available) deleted the agent's image
/// under a CI build's disk use, so every test that waited for the agent's pod failed on
/// ImagePullBackOff.
pub fn kubelet(l: &Layout) -> String {
    format!(
        r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: true}}
  x509: {{clientCAFile: {pki}/ca.crt}}
authorization: {{mode: Webhook}}
cgroupDriver: cgroupfs
failSwapOn: false
makeIPTablesUtilChains: false
containerLogMaxSize: {LOG_MAX_SIZE}
containerLogMaxFiles: {LOG_MAX_FILES}
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 2%
  imagefs.available: 2%
"#,
        pki = l.pki.display()
    )
}
