#!/usr/bin/env bash
# The test command of README.md. It installs what the tests need (idempotently), builds the
# binaries the suites launch, and runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }

# 1. Toolchain and brokers. The suites start a private redis-server per Redis trial.
if ! need cargo; then
  echo "scripts/test.sh: cargo is required (install Rust with rustup)" >&2
  exit 2
fi
if ! need redis-server; then
  if need apt-get; then
    echo "scripts/test.sh: installing redis-server" >&2
    sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_="sudo"
    $sudo_ apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq redis-server >/dev/null
  else
    echo "scripts/test.sh: redis-server is required and apt-get is not available; install it" >&2
    exit 2
  fi
fi

# 2. The binaries the suites launch as black boxes: the reference sidecar and the mutant
#    wrapper used by the self-check. Release, because that is what users run and measure.
cargo build --release --locked -p reference-sidecar -p harness --bins

# 3. Every test: unit and in-process tests, harness tests, the conformance suites against the
#    reference target, the self-check against broken targets, and repository invariants.
cargo test --release --locked --workspace --no-fail-fast
