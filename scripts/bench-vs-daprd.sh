#!/usr/bin/env bash
# refsidecar against daprd 1.18.3, measured side by side (README, "refsidecar against daprd").
#
# For each broker (in-memory, Redis, Kafka) and each publish protocol (HTTP, gRPC): one bench run
# with both targets at $RATE msg/s (their rounds interleaved with the baselines'), then one
# maximum-rate search of each. Reports go to $OUT/<broker>-<protocol>[-max]/latest/; the last
# lines printed are the ratio rows (daprd ÷ reference) and the maximum rates of every run.
#
# Environment: RATE (1000), DURATION (20s), SEED (11), BOUND (the search's p99 bound, 10ms),
# OUT (reports/bench-vs-daprd), BROKERS ("in-memory redis kafka"), PROTOCOLS ("http grpc").
set -euo pipefail
cd "$(dirname "$0")/.."

RATE="${RATE:-1000}"
DURATION="${DURATION:-20s}"
SEED="${SEED:-11}"
BOUND="${BOUND:-10ms}"
OUT="${OUT:-reports/bench-vs-daprd}"
BROKERS="${BROKERS:-in-memory redis kafka}"
PROTOCOLS="${PROTOCOLS:-http grpc}"

# The kit with the Kafka baseline, refsidecar with its Kafka component, and daprd.
cargo build --release --locked -p pubsub-tck --features kafka
cargo build --release --locked -p reference-sidecar --features kafka --bin refsidecar
bash scripts/daprd.sh 1.18.3 >/dev/null
tck=target/release/pubsub-tck
targets=(--target fixtures/targets/reference.toml --target fixtures/targets/daprd.toml)

for broker in $BROKERS; do
  for protocol in $PROTOCOLS; do
    common=("${targets[@]}" --no-build --broker "$broker" --protocol "$protocol" --seed "$SEED")
    # A failed run (a lost message, say) is reported and kept; the next one still runs.
    "$tck" bench "${common[@]}" --rate "$RATE" --duration "$DURATION" \
      --report-dir "$OUT/$broker-$protocol" || true
    "$tck" bench "${common[@]}" --find-max --rate "$RATE" --p99-bound "$BOUND" --no-baselines \
      --report-dir "$OUT/$broker-$protocol-max" || true
  done
done

echo
for broker in $BROKERS; do
  for protocol in $PROTOCOLS; do
    summary="$OUT/$broker-$protocol/latest/summary.md"
    max="$OUT/$broker-$protocol-max/latest/summary.md"
    echo "== $broker over $protocol"
    [ -f "$summary" ] && grep -E '^\| [0-9.]+ \| (reference|daprd|daprd ÷ reference) \|' "$summary" || true
    [ -f "$max" ] && grep -E '^\*\*Result|^### Maximum' "$max" || true
  done
done
