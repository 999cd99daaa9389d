//! Deployment files: the Helm chart (rendered and linted by Helm itself), the
//! plain manifests, the ArgoCD Application, the systemd unit and install script, the Dockerfile.

mod alerts;
mod argocd;
mod docker;
mod docs;
mod helm;
mod manifests;
mod pod;
mod render;
mod systemd;

/// The capabilities the chart gives the agent by default (ebpf.enabled): BPF and PERFMON load and
/// attach the eBPF programs, DAC_READ_SEARCH reads root-owned logs. SYS_RESOURCE (raising the hard
/// descriptor limit) is opt-in: some runtimes cannot grant it, and the agent fits its limit without.
pub const CAPABILITIES: [&str; 3] = ["BPF", "PERFMON", "DAC_READ_SEARCH"];
