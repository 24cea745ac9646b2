# Helpers for the scripts that build or fetch tools into the kit's cache directory. Sourced, not
# run: . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The cache directory of `$1` (such as toxiproxy/2.12.0): under $PUBSUB_TCK_CACHE, else under
# ${XDG_CACHE_HOME:-~/.cache}/pubsub-tck. Go's own caches stay where `go env` puts them.
tck_cache() {
  echo "${PUBSUB_TCK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pubsub-tck}/$1"
}

# Exits with status 2 and the message `$1` on stderr unless the Go toolchain is on PATH.
require_go() {
  if ! command -v go >/dev/null 2>&1; then
    echo "$1" >&2
    exit 2
  fi
}

# Creates the directory `$1` if needed and a fresh build directory inside it, removed when the
# script exits; its path is left in $build.
make_build_dir() {
  mkdir -p "$1"
  build="$(mktemp -d "$1/build.XXXXXX")"
  trap 'rm -rf "$build"' EXIT
}
