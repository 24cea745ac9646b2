#!/usr/bin/env bash
# Builds Shopify's Toxiproxy server v2.12.0 from source with the Go toolchain into a cache
# directory outside the repository, and prints the path of the binary as the last line on
# stdout. Idempotent: a cached binary is reused without touching Go. Go's module and build caches
# stay where `go env` puts them. The binary is the real server the contract suite
# (blocks/toxiproxy/tests/contract.rs) runs against with TOXIPROXY_URL; see README.md
# ("Fault proxy (Toxiproxy)").
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VERSION="2.12.0"
MODULE="github.com/Shopify/toxiproxy/v2"
CACHE="$(tck_cache "toxiproxy/$VERSION")"
BIN="$CACHE/toxiproxy-server"

if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi
require_go "scripts/toxiproxy.sh: the Go toolchain (go 1.23 or newer) is required to build Toxiproxy $VERSION"
make_build_dir "$CACHE"
echo "scripts/toxiproxy.sh: building Toxiproxy $VERSION ($MODULE/cmd/server) with $(go env GOVERSION)" >&2
# `go install pkg@version` builds outside any module, with the module's own go.mod and go.sum;
# the ldflag makes `/version` and `-version` report the tag instead of "git".
GOBIN="$build" go install -ldflags "-X $MODULE.Version=$VERSION" "$MODULE/cmd/server@v$VERSION" >&2
if ! "$build/server" -version 2>&1 | grep -q "$VERSION"; then
  echo "scripts/toxiproxy.sh: the built server does not report version $VERSION" >&2
  exit 2
fi
mv -f "$build/server" "$BIN"
echo "$BIN"
