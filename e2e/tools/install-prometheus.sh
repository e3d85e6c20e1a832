#!/usr/bin/env bash
# Installs Debian's prometheus package (prometheus and promtool), which the metrics tests run.
# Idempotent: does nothing when both are already on PATH.
set -euo pipefail

if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-prometheus: apt-get not found; install the 'prometheus' package (prometheus and promtool) by hand" >&2
  exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "install-prometheus: not root and no sudo; run 'apt-get install -y prometheus' as root" >&2
    exit 1
  fi
fi

# One install at a time (apt refuses a second one while the first holds its lock).
exec 9>"${TMPDIR:-/tmp}/kuberhealthy-install-prometheus.lock"
flock 9
if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
  exit 0
fi

echo "install-prometheus: installing Debian's prometheus package (prometheus, promtool)"
# The package's post-install starts a service where systemd runs; nothing here needs it.
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null

for tool in prometheus promtool; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "install-prometheus: '$tool' is still not on PATH after installing the package" >&2
    exit 1
  fi
done
echo "install-prometheus: $(prometheus --version 2>&1 | head -n 1)"
