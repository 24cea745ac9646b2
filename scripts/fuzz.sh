#!/usr/bin/env bash
# Fuzzes refsidecar's pure parsers with cargo-fuzz (libFuzzer): every target in
# reference-sidecar/fuzz/fuzz_targets/ runs for SECONDS_PER_TARGET seconds (default 10), one line
# per target. Exit status: 0 when no target found anything, 1 when one crashed (the line names
# the file holding the crashing input; replay it with
# `cargo +nightly fuzz run --fuzz-dir reference-sidecar/fuzz TARGET FILE`), 2 when the tools are
# missing.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]
#
# Targets run side by side, one per core. Longer runs, e.g. nightly in CI (corpora grow across
# runs in the cache directory; with FUZZ_JOBS > 1 the targets run one at a time, each with that
# many libFuzzer jobs):
#   FUZZ_JOBS=2 scripts/fuzz.sh 1800
#
# Everything generated lives outside the clone: the build in
# ${XDG_CACHE_HOME:-$HOME/.cache}/pubsub-tck/fuzz-target, corpora and crash files next to it.
# reference-sidecar/fuzz/seeds/<target>/ holds hand-written inputs each corpus starts from.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-10}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
  echo "scripts/fuzz.sh: SECONDS_PER_TARGET must be a positive whole number, got '$seconds'" >&2
  exit 2
fi
jobs="${FUZZ_JOBS:-1}"

# libFuzzer needs a nightly toolchain (-Z sanitizer flags): say so instead of skipping.
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "scripts/fuzz.sh: the nightly Rust toolchain is required (rustup toolchain install nightly)" >&2
  exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "scripts/fuzz.sh: installing cargo-fuzz" >&2
  cargo install --locked cargo-fuzz >&2
fi

fuzz_dir="$PWD/reference-sidecar/fuzz"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/pubsub-tck"
export CARGO_TARGET_DIR="$cache/fuzz-target"
corpora="$cache/fuzz-corpus"
artifacts="$cache/fuzz-artifacts"
mkdir -p "$corpora" "$artifacts"

# One build for every target (release with debug assertions, cargo-fuzz's default).
cargo +nightly fuzz build --fuzz-dir "$fuzz_dir" >&2

# One target: its corpus, a run of `seconds`, and one result line in "$out/result" (the line is
# printed once every target has run, in the order of `cargo fuzz list`).
fuzz_one() {
  local target="$1"
  local corpus="$corpora/$target"
  local out="$artifacts/$target"
  mkdir -p "$corpus" "$out"
  rm -f "$out/result"
  # Hand-written seeds (committed) start the corpus; what the fuzzer adds stays in the cache.
  if [ -d "$fuzz_dir/seeds/$target" ]; then
    cp -n "$fuzz_dir/seeds/$target"/* "$corpus"/ 2>/dev/null || true
  fi
  if [ "$target" = resources_yaml ]; then
    # The repository's own resource files, under names of their own.
    find fixtures -name '*.yaml' | while read -r f; do
      cp -n "$f" "$corpus/fixture-$(echo "$f" | tr '/' '-')"
    done
  fi
  local log="$out/last-run.log"
  local started=$SECONDS
  local parallel=()
  [ "$jobs" -gt 1 ] && parallel=(-jobs="$jobs" -workers="$jobs")
  # -max_total_time bounds the run; -timeout turns one input running over 10 s into a crash
  # (a hang); -rss_limit_mb turns runaway memory into one too. It runs in the target's
  # artifact directory, where libFuzzer's parallel jobs write their fuzz-N.log files.
  if (cd "$out" && cargo +nightly fuzz run --fuzz-dir "$fuzz_dir" "$target" "$corpus" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 "${parallel[@]}" \
    -artifact_prefix="$out/" -print_final_stats=1) >"$log" 2>&1; then
    local runs
    runs="$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -n 1 || true)"
    echo "fuzz $target: ok, ${runs:-?} inputs in $((SECONDS - started))s (corpus $corpus)" >"$out/result"
  else
    local crash
    crash="$(grep -Eo "Test unit written to [^ ]+" "$log" | tail -n 1 | sed 's/Test unit written to //' || true)"
    echo "fuzz $target: FOUND A CRASH: ${crash:-see $log} (log $log)" >"$out/result"
  fi
}

# Targets side by side: one per core unless each runs several jobs of its own (FUZZ_JOBS),
# since a libFuzzer process keeps one core busy.
cores="$(nproc 2>/dev/null || echo 1)"
side_by_side=$((jobs > 1 ? 1 : cores))
targets=$(cargo +nightly fuzz list --fuzz-dir "$fuzz_dir")
running=0
for target in $targets; do
  if [ "$running" -ge "$side_by_side" ]; then
    wait -n || true # a failed target shows in its result below
    running=$((running - 1))
  fi
  fuzz_one "$target" &
  running=$((running + 1))
done
wait || true

status=0
for target in $targets; do
  result="$artifacts/$target/result"
  if [ -f "$result" ]; then
    cat "$result"
    grep -q ': ok,' "$result" || status=1
  else
    echo "fuzz $target: no result (see $artifacts/$target/last-run.log)"
    status=1
  fi
done
exit "$status"
