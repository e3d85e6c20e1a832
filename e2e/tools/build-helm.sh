#!/usr/bin/env bash
# Builds helm from the pinned wrapper module beside this script (helm/, with a committed
# go.mod and go.sum) through the Go module proxy, cached per user and version. Prints the
# path of the binary.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=$(sed -n 's/^[[:space:]]*\(require \)\{0,1\}helm.sh\/helm\/v3 \(v[0-9.]*\)$/\2/p' "$here/helm/go.mod")
[ -n "$version" ] || { echo "build-helm.sh: cannot read the pinned helm version from helm/go.mod" >&2; exit 1; }
cache=${KH_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kuberhealthy-rs/tools}
bin="$cache/helm-$version/helm"
mkdir -p "$(dirname "$bin")"
# One build at a time: a second caller waits, then finds the binary cached.
exec 9>"$(dirname "$bin")/.build.lock"
flock 9
if [ ! -x "$bin" ]; then
  echo "build-helm.sh: building helm $version ..." >&2
  start=$SECONDS
  (cd "$here/helm" && CGO_ENABLED=0 GOFLAGS=-mod=readonly GOTOOLCHAIN=local \
    go build -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$version" -o "$bin.tmp" helm.sh/helm/v3/cmd/helm)
  mv "$bin.tmp" "$bin"
  echo "build-helm.sh: built helm in $((SECONDS - start)) s" >&2
fi
echo "$bin"
