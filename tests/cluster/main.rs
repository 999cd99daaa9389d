//! Against a real Kubernetes (`cargo xtask cluster up`: API server, controller manager, scheduler,
//! containerd and a kubelet on this machine): the chart and manifests accepted by the API server, our
//! image running as the DaemonSet's pod, and lines kubelet wrote for real pods shipped with their
//! labels. Skipped, saying why, when no cluster is up outside CI; under CI `cargo xtask test` starts
//! one.

mod alerts;
mod apps;
mod gone;
mod helm;
mod install;
mod kube;
mod load;
mod pod_security;
// Shared with the deploy tests (the chart rendered as Helm does); this crate uses part of it.
mod rbac;
#[allow(dead_code)]
#[path = "../deploy/render.rs"]
mod render;
mod ship;
