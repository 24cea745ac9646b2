#!/usr/bin/env bash
# The test command of README.md. It installs what the tests need (idempotently), builds the
# binaries the suites launch, and runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }

# 1. Toolchain. Everything else the current suites use is built from this workspace.
if ! need cargo; then
  echo "scripts/test.sh: cargo is required (install Rust with rustup)" >&2
  exit 2
fi

# 2. The binaries the suites launch as black boxes: the reference sidecar and the mutant
#    wrapper used by the self-check. Release, because that is what users run and measure.
cargo build --release --locked -p reference-sidecar -p harness --bins

# 3. Every test: unit and in-process tests, harness tests, the conformance suites against the
#    reference target, the self-check against broken targets, and repository invariants.
cargo test --release --locked --workspace
