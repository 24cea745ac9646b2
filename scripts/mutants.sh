#!/usr/bin/env bash
# The mutation score of refsidecar against the conformance suite (README, "Mutation score").
#
# cargo mutants changes refsidecar's contract code one mutant at a time: publishing, delivery,
# resiliency, routing, CloudEvents, scopes, subscriptions, both APIs and their servers, start-up
# and shutdown. Each mutant is built into the refsidecar binary of reference-sidecar/tests/tck.rs
# (feature `mutants`), which runs the conformance suite against it as against any target: the
# core and robustness profiles on the in-memory broker (apps and chaos left out: they need other
# runtimes and minutes each), stopping at the first failed check. A mutant is caught when a check
# fails (a SHOULD check too: PUBSUB_TCK_STRICT=1), missed when every check passes, unviable when
# it does not compile.
#
# Nightly-sized: about 470 mutants, each a rebuild and up to one suite run. Arguments go to cargo
# mutants: `--shard 0/10` runs every tenth mutant (round-robin over the list, so a shard samples
# every file), `--list` counts them, `--file reference-sidecar/src/scopes.rs` narrows it.
# Results go to reports/mutants/mutants.out/ (caught.txt, missed.txt, timeout.txt, unviable.txt,
# outcomes.json); build artifacts to a cache directory outside the repository.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION="27.1.0"
if ! cargo mutants --version 2>/dev/null | grep -qF "$VERSION"; then
  echo "scripts/mutants.sh: installing cargo-mutants $VERSION" >&2
  cargo install --locked "cargo-mutants@$VERSION"
fi

FILES=(
  reference-sidecar/src/publish.rs
  reference-sidecar/src/delivery.rs
  reference-sidecar/src/resiliency.rs
  reference-sidecar/src/routing.rs
  reference-sidecar/src/cloudevent.rs
  reference-sidecar/src/scopes.rs
  reference-sidecar/src/subscription.rs
  reference-sidecar/src/runtime.rs
  'reference-sidecar/src/api/*.rs'
)
file_args=()
for f in "${FILES[@]}"; do file_args+=(--file "$f"); done

# The suite's settings: one broker, a fixed seed (a replay is the same run), a short robustness
# budget, and fail-fast (only whether something fails matters).
export PUBSUB_TCK_BROKERS=in-memory
export PUBSUB_TCK_SEED="${PUBSUB_TCK_SEED:-1}"
export PUBSUB_TCK_BUDGET="${PUBSUB_TCK_BUDGET:-2000}"
export PUBSUB_TCK_FAIL_FAST=1
# refsidecar holds itself to every SHOULD: a SHOULD check that fails catches a mutant too.
export PUBSUB_TCK_STRICT=1
# cargo mutants builds in a copy of the tree at a new path each run: a fixed target directory
# keeps the dependencies compiled between runs.
export CARGO_TARGET_DIR="${PUBSUB_TCK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pubsub-tck}/mutants-target"
out="${PUBSUB_TCK_MUTANTS_OUT:-reports/mutants}"
mkdir -p "$out"

exec cargo mutants --package reference-sidecar --test-package reference-sidecar \
  --features mutants "${file_args[@]}" --output "$out" --timeout 900 --build-timeout 900 \
  --sharding round-robin "$@" \
  -- --test tck -- --skip apps:: --skip chaos::
