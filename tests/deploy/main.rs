//! Deployment files: the Helm chart (rendered by Go's text/template with sprig, as Helm does), the
//! plain manifests, the ArgoCD Application, the systemd unit and install script, the Dockerfile.

mod argocd;
mod docker;
mod helm;
mod manifests;
mod pod;
mod render;
mod systemd;

/// The capabilities the chart gives the agent by default (ebpf.enabled): BPF and PERFMON load and
/// attach the eBPF programs, DAC_READ_SEARCH reads root-owned logs, SYS_RESOURCE raises the hard
/// descriptor limit for `tail.max_open_files` (the systemd unit sets `LimitNOFILE=` instead and has
/// the first three only).
pub const CAPABILITIES: [&str; 4] = ["BPF", "PERFMON", "DAC_READ_SEARCH", "SYS_RESOURCE"];
