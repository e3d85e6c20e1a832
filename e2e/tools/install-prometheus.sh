#!/usr/bin/env bash
# Installs Debian's prometheus package (prometheus and promtool), which the metrics tests run.
# Idempotent: does nothing when both are already on PATH.
set -euo pipefail

present() { command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; }
present && exit 0
bash "$(dirname "$0")/apt-install.sh" install-prometheus prometheus
for tool in prometheus promtool; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "install-prometheus: '$tool' is still not on PATH after installing the package" >&2
    exit 1
  fi
done
echo "install-prometheus: $(prometheus --version 2>&1 | head -n 1)"
