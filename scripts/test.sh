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

# Kafka: Apache Kafka 3.9 for the private brokers, and refsidecar's `kafka` feature.
#    scripts/kafka.sh fetches Kafka and its dependencies from Maven Central into a cache directory
#    outside the repository (once) and prints the Kafka home; the suites and
#    reference-sidecar/tests/kafka.rs start private brokers from it (Java 17). With
#    PUBSUB_TCK_KAFKA set (an external broker) nothing is fetched. KAFKA_FEATURES goes to *both*
#    cargo commands below: one feature set, so `cargo test --workspace` never relinks
#    target/release/refsidecar without Kafka (see ARCHITECTURE.md, "Kafka build and binaries").
if [ -z "${PUBSUB_TCK_KAFKA:-}" ] && [ -z "${PUBSUB_TCK_KAFKA_HOME:-}" ]; then
  PUBSUB_TCK_KAFKA_HOME="$(bash scripts/kafka.sh)"
  export PUBSUB_TCK_KAFKA_HOME
fi
KAFKA_FEATURES=(--features reference-sidecar/kafka)

# The real daprd (issue G): scripts/daprd.sh builds daprd 1.18.3 from dapr's Go modules into a
#    cache directory outside the repository (once; later runs cost a file check) and prints its
#    path. The conformance suite runs against it in step 5. Without Go it cannot be built: say so
#    and stop, since the daprd runs are part of what this command proves.
if [ -z "${PUBSUB_TCK_DAPRD:-}" ]; then
  if ! need go; then
    echo "scripts/test.sh: the Go toolchain is required to build daprd (scripts/daprd.sh)" >&2
    exit 2
  fi
  bash scripts/daprd.sh >/dev/null
fi

# Tutorial apps (the `apps` profile, fixtures/apps/): a Python venv and an npm prefix in a cache
#    directory outside the repository, exported as PUBSUB_TCK_PYTHON and PUBSUB_TCK_NODE_PREFIX.
#    Each is (re)installed only when its pinned input differs from the copy stored next to it
#    after the last successful install, so reruns cost two file comparisons. Without python3 or
#    node/npm the apps checks are skipped with that reason. Set either variable to use your own.
APPS_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/pubsub-tck"
if [ -z "${PUBSUB_TCK_PYTHON:-}" ]; then
  apps_py="$(command -v python3.11 || command -v python3 || true)"
  apps_req=fixtures/apps/python/requirements.txt
  if [ -n "$apps_py" ]; then
    if ! cmp -s "$apps_req" "$APPS_CACHE/venv/installed-requirements.txt"; then
      echo "scripts/test.sh: installing the tutorial apps' Python packages into $APPS_CACHE/venv" >&2
      "$apps_py" -m venv --clear "$APPS_CACHE/venv"
      "$APPS_CACHE/venv/bin/pip" install -q --disable-pip-version-check -r "$apps_req"
      cp "$apps_req" "$APPS_CACHE/venv/installed-requirements.txt"
    fi
    export PUBSUB_TCK_PYTHON="$APPS_CACHE/venv/bin/python"
  else
    echo "scripts/test.sh: no python3; the apps checks that need Python will be skipped" >&2
  fi
fi
if [ -z "${PUBSUB_TCK_NODE_PREFIX:-}" ]; then
  if need node && need npm; then
    if ! cmp -s fixtures/apps/node/package-lock.json "$APPS_CACHE/node/installed-package-lock.json"; then
      echo "scripts/test.sh: installing the tutorial apps' Node packages into $APPS_CACHE/node" >&2
      mkdir -p "$APPS_CACHE/node"
      cp fixtures/apps/node/package.json fixtures/apps/node/package-lock.json "$APPS_CACHE/node/"
      (cd "$APPS_CACHE/node" && npm ci --no-audit --no-fund --loglevel=error)
      cp fixtures/apps/node/package-lock.json "$APPS_CACHE/node/installed-package-lock.json"
    fi
    export PUBSUB_TCK_NODE_PREFIX="$APPS_CACHE/node"
  else
    echo "scripts/test.sh: no node/npm; the apps checks that need Node will be skipped" >&2
  fi
fi

# 2. The binaries the suites launch as black boxes: the reference sidecar and the mutant
#    wrapper used by the self-check. Release, because that is what users run and measure.
cargo build --release --locked -p reference-sidecar -p harness --bins "${KAFKA_FEATURES[@]}"

# 3. The optional brokers-in-containers provider (feature `testcontainers`) needs a Docker engine
#    to run, which this machine may not have; type-check it so that it keeps building.
cargo check --release --locked -p suites --features suites/testcontainers

# 4. Every test: unit and in-process tests, harness tests, the conformance suites against the
#    reference target, the self-check against broken targets, and repository invariants.
cargo test --release --locked --workspace --no-fail-fast "${KAFKA_FEATURES[@]}"

# 5. The same checks, every profile on every broker, against the real daprd
#    (fixtures/targets/daprd.toml), with its expectations file: a failure it names is an expected
#    failure, a pass of one is an error.
PUBSUB_TCK_TARGET=fixtures/targets/daprd.toml cargo test --release --locked -p suites --test conformance
