#!/usr/bin/env bash
# Installs the programs the end-to-end suite and `make run` run, from Debian's packages, when
# they are missing: `ip` (iproute2) builds the pod network; checker pods run curl, python3
# and node (whose built-in fetch needs Node 18 or later). Idempotent: does nothing when all
# are on PATH (or `ip` in /usr/sbin or /sbin).
set -euo pipefail

# program:package, for each program that is missing.
missing=()
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || missing+=(ip:iproute2)
command -v curl >/dev/null 2>&1 || missing+=(curl:curl)
command -v python3 >/dev/null 2>&1 || missing+=(python3:python3)
command -v node >/dev/null 2>&1 || missing+=(node:nodejs)
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-tools: apt-get not found; install by hand: ${missing[*]}" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "install-tools: not root and no sudo; as root, apt-get install the packages of: ${missing[*]}" >&2
    exit 1
  fi
fi

# One install at a time (apt refuses a second one while the first holds its lock).
exec 9>"${TMPDIR:-/tmp}/kuberhealthy-install-tools.lock"
flock 9
packages=()
for entry in "${missing[@]}"; do
  packages+=("${entry#*:}")
done
echo "install-tools: installing ${packages[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null

for entry in "${missing[@]}"; do
  program=${entry%%:*}
  if ! command -v "$program" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$program" ]; then
    echo "install-tools: '$program' is still not on PATH after installing ${entry#*:}" >&2
    exit 1
  fi
done
