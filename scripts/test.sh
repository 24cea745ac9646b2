#!/usr/bin/env bash
# The test command of README.md. It installs what the tests need (idempotently), builds the
# binaries the suites launch, and runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }

# 0. Disk. The build cache (./target, often a link to a directory outside the clone) is shared
#    by every clone that builds into it, and release builds are incremental: each clone path
#    keeps its own incremental state, so the cache grows with every new clone. When the disk
#    holding it has less than PUBSUB_TCK_MIN_FREE_GB (default 25) free, the incremental state is
#    dropped (the next build of the workspace's own crates is a full one; dependencies stay).
min_free_gb="${PUBSUB_TCK_MIN_FREE_GB:-25}"
mkdir -p target
free_gb=$(( $(df -Pk target/ | awk 'NR==2 {print $4}') / 1048576 ))
if [ "$free_gb" -lt "$min_free_gb" ]; then
  echo "scripts/test.sh: ${free_gb} GiB free under target/ (< ${min_free_gb}); dropping incremental build state" >&2
  find target/ -mindepth 2 -maxdepth 3 -type d -name incremental -prune -exec rm -rf {} +
  free_gb=$(( $(df -Pk target/ | awk 'NR==2 {print $4}') / 1048576 ))
  echo "scripts/test.sh: ${free_gb} GiB free now" >&2
fi

#    A cache shared by clones at different paths: cargo names a workspace crate's artifacts by
#    its path relative to the workspace, so every clone's builds land on the same files, and it
#    judges them fresh when this clone's sources are older than they are. A clone whose files
#    predate another clone's build would then run that clone's binaries, with its paths compiled
#    in (its fixtures, or none once it is deleted) and its code. So when the last clone to run
#    this command was another one, this clone's Rust sources get a new modification time (their
#    contents are untouched): cargo then builds this clone's crates again, reusing what it can.
built_by=target/.built-by-clone
here="$(pwd -P)"
if [ -f "$built_by" ] && [ "$(cat "$built_by")" != "$here" ]; then
  echo "scripts/test.sh: target/ was last built from $(cat "$built_by"); building this clone's crates again" >&2
  find . -path ./target -prune -o -name '*.rs' -type f -print0 | xargs -0 touch --
fi
echo "$here" >"$built_by"

# 1. Toolchain and brokers. The suites start a private redis-server per Redis trial.
if ! need cargo; then
  echo "scripts/test.sh: cargo is required (install Rust with rustup)" >&2
  exit 2
fi
# Debian packages the tests need: redis-server (a private server per Redis trial), curl (the
# Toxiproxy step below), java (Apache Kafka), maven (scripts/kafka.sh fetches Kafka with it), and
# pkg-config with OpenSSL's headers (the `toxiproxy_rust` client crate that a test drives
# tck-toxiproxy with is built on reqwest 0.11 with native TLS).
missing=()
need redis-server || missing+=(redis-server)
need curl || missing+=(curl)
need java || missing+=(openjdk-17-jre-headless)
need mvn || missing+=(maven)
need pkg-config || missing+=(pkg-config)
{ need pkg-config && pkg-config --exists openssl; } || missing+=(libssl-dev)
if [ ${#missing[@]} -gt 0 ]; then
  if need apt-get; then
    echo "scripts/test.sh: installing ${missing[*]}" >&2
    sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_="sudo"
    $sudo_ apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "scripts/test.sh: ${missing[*]} required and apt-get is not available; install them" >&2
    exit 2
  fi
fi

# Kafka: Apache Kafka 3.9 for the private brokers, and refsidecar's `kafka` feature.
#    scripts/kafka.sh fetches Kafka and its dependencies from Maven Central into a cache directory
#    outside the repository (once) and prints the Kafka home; the suites and
#    reference-sidecar/tests/sidecar/kafka.rs start private brokers from it (Java 17). With
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

# The Go services (fixtures/apps/go, the official Go SDK), built by scripts/go-apps.sh into the
#    cache directory and exported as PUBSUB_TCK_GO_APPS; a rerun is Go's build-cache check.
if [ -z "${PUBSUB_TCK_GO_APPS:-}" ]; then
  PUBSUB_TCK_GO_APPS="$(bash scripts/go-apps.sh | tail -n 1)"
  export PUBSUB_TCK_GO_APPS
fi

# 2. The binaries the suites launch as black boxes: the reference sidecar and the mutant
#    wrapper used by the self-check. Release, because that is what users run and measure.
cargo build --release --locked -p reference-sidecar -p harness-mutant --bins "${KAFKA_FEATURES[@]}"

# 3. The optional brokers-in-containers provider (feature `testcontainers`) needs a Docker engine
#    to run, which this machine may not have; type-check it so that it keeps building.
cargo check --release --locked -p suites --features suites/testcontainers

# Lints, as errors: rustfmt's layout and clippy on every target of the workspace (the lint
#    settings are the workspace's `[lints]` tables). The `mutants` feature only adds
#    reference-sidecar/tests/tck.rs, the test scripts/mutants.sh runs, so that it is linted too.
if ! cargo clippy --version >/dev/null 2>&1 || ! cargo fmt --version >/dev/null 2>&1; then
  need rustup && rustup component add clippy rustfmt
fi
cargo fmt --all --check
cargo clippy --release --locked --workspace --all-targets "${KAFKA_FEATURES[@]}" --features reference-sidecar/mutants -- -D warnings

# 4. Every test: unit and in-process tests, harness tests, the conformance suites against the
#    reference target, the self-check against broken targets, and repository invariants.
cargo test --release --locked --workspace --no-fail-fast "${KAFKA_FEATURES[@]}"

# 5. The same checks, every profile on every broker, against the real daprd
#    (fixtures/targets/daprd.toml), with its expectations file: a failure it names is an expected
#    failure, a pass of one is an error. `--workspace` with the same features as step 4 selects
#    the one `conformance` test target without rebuilding dependencies for another feature set.
PUBSUB_TCK_TARGET=fixtures/targets/daprd.toml \
  cargo test --release --locked --workspace "${KAFKA_FEATURES[@]}" --test conformance

# 6. Shopify's Toxiproxy 2.12.0, built from its Go module by scripts/toxiproxy.sh (once): the
#    Toxiproxy contract suite (the `real::*` cases) and the chaos profile run against it, on a
#    free loopback port, besides the bundled server the steps above use.
TOXIPROXY_SERVER="$(bash scripts/toxiproxy.sh)"
toxi_dir="$(mktemp -d)"
toxi_pid=""
stop_toxiproxy() {
  [ -n "$toxi_pid" ] && kill "$toxi_pid" 2>/dev/null && wait "$toxi_pid" 2>/dev/null
  rm -rf "$toxi_dir"
}
trap stop_toxiproxy EXIT
toxi_url=""
for _ in 1 2 3 4 5; do
  port=$((20000 + RANDOM % 10000))
  (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && continue # taken: try another
  "$TOXIPROXY_SERVER" -host 127.0.0.1 -port "$port" >"$toxi_dir/server.log" 2>&1 &
  toxi_pid=$!
  # Poll its API with a deadline of 10 s; a server that exits (a port taken meanwhile) is
  # started again on another port.
  for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$port/version" >/dev/null 2>&1; then
      toxi_url="http://127.0.0.1:$port"
      break 2
    fi
    kill -0 "$toxi_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill "$toxi_pid" 2>/dev/null || true
  toxi_pid=""
done
if [ -z "$toxi_url" ]; then
  echo "scripts/test.sh: Toxiproxy ($TOXIPROXY_SERVER) did not answer on loopback; its log:" >&2
  cat "$toxi_dir/server.log" >&2
  exit 2
fi
TOXIPROXY_URL="$toxi_url" \
  cargo test --release --locked --workspace "${KAFKA_FEATURES[@]}" --test contract
TOXIPROXY_URL="$toxi_url" PUBSUB_TCK_BROKERS=in-memory,redis,kafka \
  cargo test --release --locked --workspace "${KAFKA_FEATURES[@]}" --test conformance -- chaos::

# 7. Fuzzing: refsidecar's parsers (reference-sidecar/fuzz) under libFuzzer for 10 s per target
#    with scripts/fuzz.sh, which needs the nightly toolchain (it says so and exits 2 without it)
#    and installs cargo-fuzz once; its build, corpora and crash files live in the cache directory
#    outside the clone. A crash fails the command and names the file holding the input.
bash scripts/fuzz.sh 10
