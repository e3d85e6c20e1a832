#!/usr/bin/env bash
# Builds etcd and kube-apiserver for the end-to-end tests from the pinned wrapper
# modules beside this script (kube/ and etcd/, each with a committed go.mod and go.sum),
# through the Go module proxy. Binaries are cached per user, keyed by version, and
# rebuilt only when missing. Prints the directory that holds them.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

k8s_version=$(sed -n 's/^require k8s.io\/kubernetes \(v[0-9.]*\)$/\1/p' "$here/kube/go.mod")
etcd_version=$(sed -n 's/^\(require\)\{0,1\}[[:space:]]*go.etcd.io\/etcd\/server\/v3 \(v[0-9.]*\)$/\2/p' "$here/etcd/go.mod")
[ -n "$k8s_version" ] && [ -n "$etcd_version" ] || { echo "build.sh: cannot read the pinned versions from kube/go.mod and etcd/go.mod" >&2; exit 1; }

cache=${KH_CONTROL_PLANE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kuberhealthy-rs/control-plane}
bin="$cache/k8s-$k8s_version-etcd-$etcd_version"
mkdir -p "$bin"
# One build at a time: a second caller waits, then finds the binaries cached.
exec 9>"$cache/.build.lock"
flock 9

export CGO_ENABLED=0 GOFLAGS=-mod=readonly GOTOOLCHAIN=local

build() { # name, module dir, package, ldflags
  local name=$1 dir=$2 pkg=$3 ld=$4
  if [ -x "$bin/$name" ]; then return; fi
  echo "build.sh: building $name ($pkg) ..." >&2
  local start=$SECONDS
  (cd "$dir" && go build -trimpath -tags=selinux,notest,grpcnotrace -ldflags "$ld" -o "$bin/$name.tmp" "$pkg")
  mv "$bin/$name.tmp" "$bin/$name"
  echo "build.sh: built $name in $((SECONDS - start)) s" >&2
}

minor=${k8s_version#v1.}; minor=${minor%%.*}
ld="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ld+=" -X $p.gitVersion=$k8s_version -X $p.gitMajor=1 -X $p.gitMinor=$minor"
  ld+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
done
build kube-apiserver "$here/kube" k8s.io/kubernetes/cmd/kube-apiserver "$ld"
build etcd "$here/etcd" go.etcd.io/etcd/server/v3 "-s -w"
echo "$bin"
