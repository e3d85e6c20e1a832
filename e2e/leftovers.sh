#!/usr/bin/env bash
# Usage: leftovers.sh SESSION
# Fails (and kills them) if processes of the e2e session SESSION are still alive: any
# process whose environment or command line contains the marker. Every process the
# harness starts carries KH_E2E_SESSION=SESSION, and so do their children.
# Fails too (and removes them) if a pod network the session claimed left links or network
# namespaces: /run/kh-e2e-net/<n>.lock names the session and pid that last claimed network
# n, whose bridge is khe2e<n>, pod veths khe2e<n>p<h> and pod namespaces khe2e<n>-<h>.
set -uo pipefail
session=${1:?usage: leftovers.sh SESSION}
lock_dir=/run/kh-e2e-net

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

# Links and namespaces of the pod networks whose last claim was this session's.
network_leftovers() {
  local lock n owner links
  [ -d "$lock_dir" ] || return 0
  links=$(ip -o link show 2>/dev/null | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }')
  for lock in "$lock_dir"/*.lock; do
    [ -e "$lock" ] || continue
    read -r owner _ < "$lock" || true
    [ "$owner" = "$session" ] || continue
    n=$(basename "$lock" .lock)
    grep -E "^khe2e${n}(p[0-9]+)?$" <<< "$links" | sed 's/^/link /'
    ls /run/netns 2>/dev/null | grep -E "^khe2e${n}-[0-9]+$" | sed 's/^/netns /'
  done
}

# Runs `$1`, a function that prints what is left, until it prints nothing or 5 s have passed,
# and leaves its last output in `left`: what is killed by PR_SET_PDEATHSIG, and a pod runner
# removing its pods' namespaces as it stops, take a moment to go. (No subshell around the
# loop: `leftovers` tells itself apart from this script's processes by their pids.)
settle() {
  for _ in $(seq 50); do
    left=$("$1")
    [ -z "$left" ] && return 0
    sleep 0.1
  done
}

status=0
settle leftovers
found=$left
if [ -z "$found" ]; then
  echo "e2e: no process of session $session survived"
else
  echo "e2e: FAILED: processes of session $session survived the suite:" >&2
  for pid in $found; do
    echo "  pid $pid: $(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)" >&2
    kill -9 "$pid" 2>/dev/null
  done
  status=1
fi

settle network_leftovers
objects=$left
if [ -z "$objects" ]; then
  echo "e2e: nothing of the pod networks of session $session survived"
else
  echo "e2e: FAILED: pod network objects of session $session survived the suite:" >&2
  while read -r kind name; do
    echo "  $kind $name" >&2
    if [ "$kind" = link ]; then ip link del "$name" 2>/dev/null; else ip netns del "$name" 2>/dev/null; fi
  done <<< "$objects"
  status=1
fi
exit "$status"
