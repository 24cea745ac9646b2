#!/usr/bin/env bash
# Builds daprd, the real Dapr sidecar, from dapr's own Go modules into a cache directory outside
# the repository, and prints the path of the binary as its last line on stdout.
#
#   scripts/daprd.sh [VERSION]                 build (if needed) and print the path
#   scripts/daprd.sh [VERSION] --exec ARGS...  run the built daprd with ARGS (target files use
#                                              this; it never builds, so a trial never waits on Go)
#
# VERSION is a release with a module directory under fixtures/targets/daprd/ (default 1.18.3).
# PUBSUB_TCK_DAPRD names a daprd binary to use instead of building one.
#
# Why not `go install github.com/dapr/dapr/cmd/daprd@vX`: dapr's go.mod has replace directives,
# which `go install pkg@version` refuses, and cmd/daprd registers its components behind build tags
# (without one it panics at start; `stablecomponents` pulls every cloud SDK). Instead
# fixtures/targets/daprd/main.go is a small main package that runs dapr's runtime with the five
# components the suites use; fixtures/targets/daprd/<VERSION>/go.mod pins dapr and the
# components-contrib release that dapr release pins, and go.sum makes the build reproducible.
# The version is stamped into buildinfo, so `daprd --version` and the metadata API report it.
#
# Idempotent: the binary is rebuilt only when main.go, go.mod or go.sum changed (their sha256 is
# kept next to it). Go's module and build caches stay where `go env` puts them.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

root="$(cd "$(dirname "$0")/.." && pwd)"
VERSION="1.18.3"
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then
  VERSION="$1"
  shift
fi
src="$root/fixtures/targets/daprd"
CACHE="$(tck_cache "daprd/$VERSION")"
BIN="$CACHE/daprd"

if [ "${1:-}" = "--exec" ]; then
  shift
  bin="${PUBSUB_TCK_DAPRD:-$BIN}"
  if [ ! -x "$bin" ]; then
    echo "scripts/daprd.sh: daprd $VERSION is not built ($bin is missing); run: bash scripts/daprd.sh $VERSION" >&2
    exit 2
  fi
  # Without DAPR_HOST_IP, daprd looks for a non-loopback address and exits with "failed to
  # determine host address" on a loopback-only machine.
  export DAPR_HOST_IP="${DAPR_HOST_IP:-127.0.0.1}"
  exec "$bin" "$@"
fi
if [ $# -gt 0 ]; then
  echo "scripts/daprd.sh: unexpected argument $1 (usage: scripts/daprd.sh [VERSION] [--exec ARGS...])" >&2
  exit 2
fi
if [ -n "${PUBSUB_TCK_DAPRD:-}" ]; then
  echo "$PUBSUB_TCK_DAPRD"
  exit 0
fi
if [ ! -f "$src/$VERSION/go.mod" ]; then
  echo "scripts/daprd.sh: no module for daprd $VERSION; releases: $(cd "$src" && ls -d */ | tr -d / | tr '\n' ' ')" >&2
  exit 2
fi

stamp="$(cat "$src/main.go" "$src/$VERSION/go.mod" "$src/$VERSION/go.sum" | sha256sum | cut -d' ' -f1)"
if [ -x "$BIN" ] && [ "$(cat "$CACHE/inputs.sha256" 2>/dev/null)" = "$stamp" ]; then
  echo "$BIN"
  exit 0
fi
require_go "scripts/daprd.sh: the Go toolchain is required to build daprd $VERSION"

make_build_dir "$CACHE"
cp "$src/main.go" "$src/$VERSION/go.mod" "$src/$VERSION/go.sum" "$build/"
cd "$build"
export GOFLAGS="-mod=readonly"
# Progress on stderr while a stage runs: "<what> <done>/~<total>", redrawn in place on a
# terminal, one line per tenth otherwise (CI logs); then how many there were.
progress() {
  local what="$1" total="$2" n=0 step=$(( $2 / 10 + 1 ))
  while IFS= read -r _; do
    n=$((n + 1))
    if [ -t 2 ]; then
      printf '\rscripts/daprd.sh: %s %d/~%d' "$what" "$n" "$total" >&2
    elif [ $((n % step)) -eq 0 ]; then
      echo "scripts/daprd.sh: $what $n/~$total" >&2
    fi
  done
  [ -t 2 ] && printf '\n' >&2
  echo "scripts/daprd.sh: $what: $n $3" >&2
}
echo "scripts/daprd.sh: building daprd $VERSION with $(go env GOVERSION) (a cold build downloads ~200 modules and takes several minutes)" >&2
failed() {
  echo "scripts/daprd.sh: $1 failed for daprd $VERSION; the end of its output:" >&2
  tail -n 40 "$2" >&2
  exit 2
}
# go.sum has one line not ending in /go.mod for each module version whose source the build may
# need (a few more than it downloads): the estimate the progress display counts towards.
modules="$(grep -vc '/go.mod ' go.sum)"
go mod download -json 2>&1 | tee "$build/download.log" | grep '"Path":' | progress "modules" "$modules" "in the module cache" \
  || failed "go mod download" "$build/download.log"
packages="$(go list -deps . | wc -l)"
# -v names each package as it is compiled (cached ones are not named, so a warm build ends early).
CGO_ENABLED=0 go build -v -trimpath \
  -ldflags "-s -w -X github.com/dapr/dapr/pkg/buildinfo.version=$VERSION" \
  -o "$build/daprd" . 2>&1 | tee "$build/build.log" | progress "packages" "$packages" "compiled (the rest came from Go's build cache)" \
  || failed "go build" "$build/build.log"
if [ "$("$build/daprd" --version 2>/dev/null)" != "$VERSION" ]; then
  echo "scripts/daprd.sh: the built daprd does not report version $VERSION" >&2
  exit 2
fi
mv -f "$build/daprd" "$BIN"
echo "$stamp" > "$CACHE/inputs.sha256"
echo "$BIN"
