#!/usr/bin/env bash
# Builds a peer the benchmark compares against, Kuberhealthy v3 or v2 (Go modules), through
# the Go module proxy with the machine's Go toolchain (GOTOOLCHAIN=local), into a per-user
# cache. Never committed, never vendored: `make bench` runs this at bench time.
#
# Usage: build-peer.sh [VERSION]   (default v3.0.13; v2.7.1 builds v2)
#
# Prints two lines: the binary, and the module's directory in the Go module cache (its
# deploy/ holds the CRD and RBAC). On failure, prints the exact error on stderr and exits
# non-zero.
#
# `go install <pkg>@<version>` also reads the module's version list (to report a
# deprecation); a proxy that refuses the list but serves the version would fail it, so the
# package is built from a throw-away main module that requires the pinned version.
set -euo pipefail
version=${1:-v3.0.13}
major=${version%%.*}
module=github.com/kuberhealthy/kuberhealthy/$major
cache=${KH_PEER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kuberhealthy-rs/peer}
bin="$cache/kuberhealthy-$version"
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod

dir=$(go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p') || true
if [ -z "$dir" ] || [ ! -d "$dir" ]; then
  go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Error": "\(.*\)"$/\1/p' >&2 || true
  echo "build-peer.sh: $module@$version is not available from the Go module proxy" >&2
  exit 1
fi

if [ ! -x "$bin/kuberhealthy" ]; then
  echo "build-peer.sh: building $module/cmd/kuberhealthy@$version ..." >&2
  start=$SECONDS
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$bin"
  printf 'module khpeer\n\ngo 1.20\n\nrequire %s %s\n' "$module" "$version" > "$work/go.mod"
  cp "$dir/go.sum" "$work/go.sum"
  (cd "$work" && nice -n 10 go build -trimpath -ldflags "-s -w" -o "$bin/kuberhealthy.tmp" "$module/cmd/kuberhealthy") >&2
  mv "$bin/kuberhealthy.tmp" "$bin/kuberhealthy"
  echo "build-peer.sh: built in $((SECONDS - start)) s" >&2
fi
echo "$bin/kuberhealthy"
echo "$dir"
