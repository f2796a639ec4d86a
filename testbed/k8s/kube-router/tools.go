//go:build tools

// Package tools records kube-router, which the test bed's node runs in
// firewall-only mode to enforce NetworkPolicies, so that `go mod tidy` keeps
// its dependencies in go.mod and go.sum.
package tools

import _ "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router"
