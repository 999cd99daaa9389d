//go:build tools

// The Kubernetes programs `cargo xtask cluster up --version 1.34` runs, built from the Go module
// proxy: k8s.io/kubernetes's own go.mod replaces its k8s.io/* staging modules with directories of
// its tree, which `go install …@version` refuses, so this module requires it and replaces each of
// them with its published release instead (go.mod). `go build` here, from xtask/src/cluster/release.rs.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
