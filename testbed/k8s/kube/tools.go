//go:build tools

// Package tools records the Kubernetes commands that ../build.sh builds, so
// that `go mod tidy` keeps their dependencies in go.mod and go.sum: the
// control plane (apiserver, controller-manager, scheduler) and the node's
// kubelet.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
