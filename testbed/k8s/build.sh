#!/usr/bin/env bash
# Builds the test bed's Kubernetes cluster from the Go modules beside this script, each component
# into a cache directory keyed by its own version, so a version bump rebuilds only that component:
#
#   ${IR_TESTBED_CACHE:-$HOME/.cache/ir-testbed}/
#     etcd-<v>/bin/etcd
#     kube-<v>/bin/{kube-apiserver,kube-controller-manager,kube-scheduler,kubelet}
#     containerd-<v>/bin/{containerd,containerd-shim-runc-v2,ctr}
#     kube-router-<v>/bin/kube-router
#     pause-<hash>/bin/pause             (the pod sandbox program, pause/main.go)
#     bin-<key>/                         (symlinks to all of the above; <key> names every version)
#
# Idempotent: a component whose binaries are there is not rebuilt. Needs only Go and the Go module
# proxy. Progress goes to stderr (also while waiting for another build's lock); the last line on
# stdout is the combined bin directory, for callers (tests/testbed/k8s.py, scripts/demo).
#
# A version is bumped by editing the component's go.mod (for kube: k8s.io/kubernetes plus every
# staging replace line), then `go mod tidy` in that folder; its cache key follows.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

module_version() { # <go.mod> <module path>: the version it requires
	awk -v m="$2" '$1 == m && $2 ~ /^v/ { print $2; exit }
		$1 == "require" && $2 == m { print $3; exit }' "$1"
}

k8s_version="$(module_version "$here/kube/go.mod" k8s.io/kubernetes)"
etcd_version="$(module_version "$here/etcd/go.mod" go.etcd.io/etcd/server/v3)"
ctrd_version="$(module_version "$here/containerd/go.mod" github.com/containerd/containerd/v2)"
kr_version="$(module_version "$here/kube-router/go.mod" github.com/cloudnativelabs/kube-router/v2)"
pause_version="src-$(sha256sum "$here/pause/main.go" | cut -c1-12)"
for v in k8s_version etcd_version ctrd_version kr_version; do
	if [[ -z "${!v}" ]]; then
		echo "build.sh: cannot read $v from the go.mod files beside this script" >&2
		exit 1
	fi
done

cache_root="${IR_TESTBED_CACHE:-$HOME/.cache/ir-testbed}"
combined="$cache_root/bin-k8s-$k8s_version-etcd-$etcd_version-containerd-$ctrd_version-kube-router-$kr_version-pause-$pause_version"

# component name, version, folder, binaries, go packages (space-separated), extra build flags
declare -A comp_version=([etcd]=$etcd_version [kube]=$k8s_version [containerd]=$ctrd_version
	[kube-router]=$kr_version [pause]=$pause_version)
declare -A comp_bins=(
	[etcd]="etcd"
	[kube]="kube-apiserver kube-controller-manager kube-scheduler kubelet"
	[containerd]="containerd containerd-shim-runc-v2 ctr"
	[kube-router]="kube-router"
	[pause]="pause")
order=(etcd kube containerd kube-router pause)

comp_dir() { echo "$cache_root/$1-${comp_version[$1]}/bin"; }
have() { # <component>
	local b
	for b in ${comp_bins[$1]}; do [[ -x "$(comp_dir "$1")/$b" ]] || return 1; done
}
have_everything() {
	local c
	for c in "${order[@]}"; do have "$c" || return 1; done
	[[ -d "$combined" ]]
}

if have_everything; then
	echo "$combined"
	exit 0
fi

mkdir -p "$cache_root"
# Parallel callers (several test sessions) wait for one build instead of racing two; the waiting
# one says so every 30 s (a silent wait of several minutes looks like a hang).
exec 9>"$cache_root/.build.lock"
waited=$SECONDS
until flock -w 30 9; do
	echo "build.sh: waiting for another build of the test bed to finish ($((SECONDS - waited)) s; lock $cache_root/.build.lock)" >&2
done
if have_everything; then
	echo "$combined"
	exit 0
fi

command -v go >/dev/null || { echo "build.sh: go is not on PATH" >&2; exit 1; }
export CGO_ENABLED=0
# Test bed binaries need no VCS stamp; the modules live in a git work tree.
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-buildvcs=false"
echo "build.sh: go $(go env GOVERSION), GOMODCACHE=$(go env GOMODCACHE), GOCACHE=$(go env GOCACHE)" >&2

minor="${k8s_version#v1.}"
minor="${minor%%.*}"
build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
k8s_ldflags="-s -w"
# Same stamps as Kubernetes' hack/lib/version.sh: the apiserver derives its binary (emulation)
# version from gitVersion, so it must be a real release; the kubelet reports it on its Node.
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	k8s_ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1"
	k8s_ldflags+=" -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
	k8s_ldflags+=" -X $pkg.buildDate=$build_date"
done
ctrd_ldflags="-s -w -X github.com/containerd/containerd/v2/version.Version=$ctrd_version"
kr_ldflags="-s -w -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$kr_version"

build_component() { # <component>
	local c=$1 dir staging t
	dir="$(dirname "$(comp_dir "$c")")"
	staging="$(mktemp -d "$cache_root/.build-$c.XXXXXX")"
	# Build into a fresh directory and rename it into place at the end, so an interrupted build
	# never leaves a half-filled bin directory behind.
	trap 'rm -rf "$staging"' RETURN
	mkdir -p "$staging/bin"
	echo "build.sh: building $c ${comp_version[$c]} (${comp_bins[$c]})" >&2
	t=$SECONDS
	case $c in
	etcd)
		(cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$staging/bin/etcd" .) ;;
	kube)
		# One `go build` for all four commands so their shared packages compile once.
		(cd "$here/kube" && go build -trimpath -ldflags "$k8s_ldflags" -o "$staging/bin/" \
			k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
			k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet) ;;
	containerd)
		(cd "$here/containerd" && go build -trimpath -tags no_btrfs -ldflags "$ctrd_ldflags" -o "$staging/bin/" \
			github.com/containerd/containerd/v2/cmd/containerd \
			github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 \
			github.com/containerd/containerd/v2/cmd/ctr) ;;
	kube-router)
		(cd "$here/kube-router" && go build -trimpath -ldflags "$kr_ldflags" -o "$staging/bin/kube-router" \
			github.com/cloudnativelabs/kube-router/v2/cmd/kube-router) ;;
	pause)
		(cd "$here/pause" && go build -trimpath -ldflags "-s -w" -o "$staging/bin/pause" .) ;;
	esac
	echo "build.sh: $c ${comp_version[$c]} built in $((SECONDS - t)) s" >&2
	rm -rf "$dir"
	mv "$staging" "$dir"
	chmod 755 "$dir"
}

started=$SECONDS
for c in "${order[@]}"; do
	have "$c" || build_component "$c"
done

staging="$(mktemp -d "$cache_root/.bin.XXXXXX")"
for c in "${order[@]}"; do
	for b in ${comp_bins[$c]}; do ln -s "$(comp_dir "$c")/$b" "$staging/$b"; done
done
chmod 755 "$staging"
rm -rf "$combined"
mv "$staging" "$combined"
echo "build.sh: test bed binaries ready in $((SECONDS - started)) s: $combined" >&2
echo "$combined"
