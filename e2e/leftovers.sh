#!/usr/bin/env bash
# Usage: leftovers.sh SESSION
# Fails (and kills them) if processes of the e2e session SESSION are still alive: any
# process whose environment or command line contains the marker. Every process the
# harness starts carries KH_E2E_SESSION=SESSION, and so do their children.
set -uo pipefail
session=${1:?usage: leftovers.sh SESSION}

# Pure bash, so no helper process of this script can match itself.
contains() { # file needle
  local chunk
  while IFS= read -r -d '' chunk || [ -n "$chunk" ]; do
    [[ $chunk == *"$2"* ]] && return 0
  done < "$1"
  return 1
}

leftovers() {
  local dir pid
  for dir in /proc/[0-9]*; do
    pid=${dir#/proc/}
    # This script and the subshell running this function have the session in argv.
    [ "$pid" = "$$" ] || [ "$pid" = "$BASHPID" ] && continue
    { contains "$dir/environ" "$session" || contains "$dir/cmdline" "$session"; } 2>/dev/null && echo "$pid"
  done
}

# Children killed by PR_SET_PDEATHSIG take a moment to go.
for _ in $(seq 50); do
  found=$(leftovers)
  [ -z "$found" ] && { echo "e2e: no process of session $session survived"; exit 0; }
  sleep 0.1
done
echo "e2e: FAILED: processes of session $session survived the suite:" >&2
for pid in $found; do
  echo "  pid $pid: $(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)" >&2
  kill -9 "$pid" 2>/dev/null
done
exit 1
