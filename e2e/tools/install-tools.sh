#!/usr/bin/env bash
# Installs the programs the end-to-end suite and `make run` run, from Debian's packages, when
# they are missing: `ip` (iproute2) builds the pod network; checker pods run curl, python3
# and node (whose built-in fetch needs Node 18 or later). Idempotent: does nothing when all
# are there.
set -euo pipefail

# Whether `program` runs: on PATH, or in an sbin directory a non-root PATH may lack.
present() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }

missing=() packages=()
for entry in ip:iproute2 curl:curl python3:python3 node:nodejs; do
  present "${entry%%:*}" || { missing+=("${entry%%:*}"); packages+=("${entry#*:}"); }
done
[ ${#missing[@]} -eq 0 ] && exit 0
bash "$(dirname "$0")/apt-install.sh" install-tools "${packages[@]}"
for program in "${missing[@]}"; do
  if ! present "$program"; then
    echo "install-tools: '$program' is still not there after installing its package" >&2
    exit 1
  fi
done
