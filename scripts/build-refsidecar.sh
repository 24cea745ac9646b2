#!/usr/bin/env bash
# The reference target's `build` command (fixtures/targets/reference.toml): builds
# target/release/refsidecar with what the run's brokers need. Apache Kafka needs the `kafka`
# feature (librdkafka, a C build of a few minutes the first time); in-memory and Redis do not, so
# a first run on them does not wait for it. A binary that already has Kafka keeps it: building
# without the feature would relink it (about a minute) and break the Kafka runs after it.
#
# Usage: scripts/build-refsidecar.sh [BROKERS]   (comma-separated, as `pubsub-tck` passes
# `{brokers}`; empty: every broker). Cargo prints its progress bar on a terminal.
set -euo pipefail
cd "$(dirname "$0")/.."

brokers="${1:-}"
bin=target/release/refsidecar
features=()
if [ -z "$brokers" ] || [[ ",$brokers," == *,kafka,* ]]; then
  features=(--features kafka)
elif [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q kafka; then
  features=(--features kafka)
fi
exec cargo build --release -p reference-sidecar --bin refsidecar "${features[@]}"
