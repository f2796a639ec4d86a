#!/usr/bin/env bash
# Builds the test bed's Kubernetes control plane (kube-apiserver,
# kube-controller-manager) and etcd from the Go modules beside this script,
# into a cache directory keyed by their versions:
#
#   ${IR_TESTBED_CACHE:-$HOME/.cache/ir-testbed}/k8s-<k8s>-etcd-<etcd>/bin/
#
# Idempotent: when the three binaries are there already it does nothing.
# Needs only Go and the Go module proxy. Progress goes to stderr; the last
# line on stdout is the bin directory, for callers (tests/testbed/k8s.py).
#
# The version is bumped by editing kube/go.mod (k8s.io/kubernetes plus every
# staging replace line) or etcd/go.mod, then `go mod tidy` in that folder;
# the cache key follows, so the next run rebuilds.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

module_version() { # <go.mod> <module path>: the version it requires
	awk -v m="$2" '$1 == m && $2 ~ /^v/ { print $2; exit }
		$1 == "require" && $2 == m { print $3; exit }' "$1"
}

k8s_version="$(module_version "$here/kube/go.mod" k8s.io/kubernetes)"
etcd_version="$(module_version "$here/etcd/go.mod" go.etcd.io/etcd/server/v3)"
if [[ -z "$k8s_version" || -z "$etcd_version" ]]; then
	echo "build.sh: cannot read versions from kube/go.mod or etcd/go.mod" >&2
	exit 1
fi

cache_root="${IR_TESTBED_CACHE:-$HOME/.cache/ir-testbed}"
out="$cache_root/k8s-$k8s_version-etcd-$etcd_version"
bin="$out/bin"

have_all() {
	[[ -x "$bin/kube-apiserver" && -x "$bin/kube-controller-manager" && -x "$bin/etcd" ]]
}

if have_all; then
	echo "$bin"
	exit 0
fi

mkdir -p "$cache_root"
# Parallel callers (several test sessions) wait for one build instead of
# racing two: the second one finds the binaries when it gets the lock.
exec 9>"$cache_root/.k8s-build.lock"
flock 9
if have_all; then
	echo "$bin"
	exit 0
fi

command -v go >/dev/null || { echo "build.sh: go is not on PATH" >&2; exit 1; }

# Build into a fresh directory and rename it into place at the end, so an
# interrupted build never leaves a half-filled bin directory behind.
staging="$(mktemp -d "$cache_root/.k8s-build.XXXXXX")"
trap 'rm -rf "$staging"' EXIT
mkdir -p "$staging/bin"

export CGO_ENABLED=0
# Test bed binaries need no VCS stamp; the modules live in a git work tree.
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-buildvcs=false"

minor="${k8s_version#v1.}"
minor="${minor%%.*}"
build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
k8s_ldflags="-s -w"
# Same stamps as Kubernetes' hack/lib/version.sh: the apiserver derives its
# binary (emulation) version from gitVersion, so it must be a real release.
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	k8s_ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1"
	k8s_ldflags+=" -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
	k8s_ldflags+=" -X $pkg.buildDate=$build_date"
done

started=$SECONDS
echo "build.sh: building Kubernetes $k8s_version and etcd $etcd_version into $bin" >&2
echo "build.sh: go $(go env GOVERSION), GOMODCACHE=$(go env GOMODCACHE), GOCACHE=$(go env GOCACHE)" >&2

t=$SECONDS
(cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$staging/bin/etcd" .)
echo "build.sh: etcd $etcd_version built in $((SECONDS - t)) s" >&2

t=$SECONDS
# One `go build` for both commands so their shared packages compile once.
(cd "$here/kube" && go build -trimpath -ldflags "$k8s_ldflags" -o "$staging/bin/" \
	k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager)
echo "build.sh: kube-apiserver and kube-controller-manager $k8s_version built in $((SECONDS - t)) s" >&2

"$staging/bin/kube-apiserver" --version >&2
"$staging/bin/etcd" --version | head -1 >&2

rm -rf "$out"
mkdir -p "$(dirname "$out")"
mv "$staging" "$out"
chmod 755 "$out"
trap - EXIT
echo "build.sh: done in $((SECONDS - started)) s" >&2
echo "$bin"
