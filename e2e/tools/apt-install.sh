#!/usr/bin/env bash
# Usage: apt-install.sh WHO PACKAGE...
# Installs Debian PACKAGEs with apt-get, as root or through sudo, one install at a time on this
# machine (apt refuses a second one while the first holds its lock). WHO names the calling
# script in messages. The install scripts of e2e/tools/ check what is missing and call this.
set -euo pipefail
who=${1:?usage: apt-install.sh WHO PACKAGE...}
shift
[ $# -gt 0 ] || { echo "usage: apt-install.sh WHO PACKAGE..." >&2; exit 2; }

if ! command -v apt-get >/dev/null 2>&1; then
  echo "$who: apt-get not found; install these packages by hand: $*" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "$who: not root and no sudo; run 'apt-get install -y $*' as root" >&2
    exit 1
  fi
fi

exec 9>"${TMPDIR:-/tmp}/kuberhealthy-apt-install.lock"
flock 9
echo "$who: installing Debian's $*"
# Post-install scripts may start services where systemd runs; nothing here needs them.
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
