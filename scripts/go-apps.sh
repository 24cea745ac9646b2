#!/usr/bin/env bash
# Builds the Go services of the `apps` profile (fixtures/apps/go, written with the official Dapr
# Go SDK) into a cache directory outside the repository and prints the binary's path as the last
# line on stdout. The module is its own (go.mod and go.sum pinned in the repository), apart from
# the daprd build, so their dependency versions never mix. Go's build cache makes a rerun with
# unchanged sources a check of a second or two.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CACHE="$(tck_cache go-apps)"
BIN="$CACHE/tckapps"
require_go "scripts/go-apps.sh: the Go toolchain (go 1.26 or newer) is required"
mkdir -p "$CACHE"
here="$(cd "$(dirname "$0")/.." && pwd)"
if [ ! -x "$BIN" ]; then
  echo "scripts/go-apps.sh: building fixtures/apps/go with $(go env GOVERSION) (first build downloads the Go SDK's modules)" >&2
fi
(cd "$here/fixtures/apps/go" && go build -mod=readonly -trimpath -o "$BIN.tmp" .)
mv -f "$BIN.tmp" "$BIN"
echo "$BIN"
