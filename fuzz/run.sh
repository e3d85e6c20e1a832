#!/usr/bin/env bash
# `make fuzz`: runs each fuzz target for FUZZ_SECONDS under AFL++ (the `afl` crate, stable
# toolchain), starting from its corpus in fuzz/corpus/<target>/; then merges what it found
# into the corpus, minimised with afl-cmin, and copies any crashing or hanging input there
# too (so `make test`'s corpus replay keeps it as a regression test). Prints per target how
# long it ran, its executions, and its findings.
set -euo pipefail
seconds=${1:?usage: run.sh SECONDS TARGET...}
shift
cd "$(dirname "$0")"

if ! command -v cargo-afl >/dev/null; then
  cargo install cargo-afl --locked
fi
# AFL++ itself, built once per toolchain (a no-op with a message when it is there).
cargo afl config --build >/dev/null 2>&1 || true
cargo afl build --release --quiet
binary=target/release/kh-fuzz

# No core-dump helper, no CPU binding on a shared machine, no curses UI. The binary's
# coverage map is larger than AFL++'s default, so its size is asked from the binary itself
# (without it the fork server aborts; and skipping the binary check would hide the
# persistent-mode marker, so every input would wait for its time-out).
export AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
AFL_MAP_SIZE=$(AFL_DUMP_MAP_SIZE=1 "$binary" report || true)
export AFL_MAP_SIZE

stat() { sed -n "s/^$2 *: //p" "$1" | head -1; }
# A corpus file is named by its content, so reruns do not duplicate it.
keep() {
  local from=$1 into=$2 prefix=$3
  for f in "$from"/*; do
    [ -f "$f" ] || continue
    cp "$f" "$into/$prefix-$(sha1sum "$f" | cut -c1-16)"
  done
}

printf '%-12s %8s %12s %10s %8s %6s %8s\n' target seconds execs execs/s corpus crashes hangs
for target in "$@"; do
  corpus=corpus/$target
  out=out/$target
  rm -rf "$out"
  mkdir -p "$out"
  started=$(date +%s)
  cargo afl fuzz -V "$seconds" -i "$corpus" -o "$out" -- "$binary" "$target" >"$out.log" 2>&1 || {
    echo "afl-fuzz failed for $target; see fuzz/$out.log" >&2
    tail -20 "$out.log" >&2
    exit 1
  }
  ran=$(( $(date +%s) - started ))
  stats=$out/default/fuzzer_stats
  execs=$(stat "$stats" execs_done)
  speed=$(stat "$stats" execs_per_sec)
  crashes=$(stat "$stats" saved_crashes)
  hangs=$(stat "$stats" saved_hangs)
  # Minimise the old corpus and the new queue together into the new corpus.
  merged=$out/merged
  minimised=$out/minimised
  mkdir -p "$merged"
  cp "$corpus"/* "$merged"/
  keep "$out/default/queue" "$merged" queue
  cargo afl cmin -i "$merged" -o "$minimised" -- "$binary" "$target" >"$out.cmin.log" 2>&1
  rm -f "$corpus"/*
  keep "$minimised" "$corpus" input
  keep "$out/default/crashes" "$corpus" crash
  keep "$out/default/hangs" "$corpus" hang
  printf '%-12s %8s %12s %10s %8s %6s %8s\n' "$target" "$ran" "$execs" "$speed" "$(ls "$corpus" | wc -l)" "$crashes" "$hangs"
done
