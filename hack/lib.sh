# Shared helpers for the project's set-up scripts. Source it; do not run it.
# Everything built lives in a cache outside the repository, keyed by version.

CACHE_DIR="${COLONIES_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/colonies-operator}"
export GOMODCACHE="${GOMODCACHE_OVERRIDE:-$CACHE_DIR/go/mod}"
export GOCACHE="${GOCACHE_OVERRIDE:-$CACHE_DIR/go/build}"
export GOFLAGS="-mod=mod -buildvcs=false"

COLONIES_VERSION="${COLONIES_VERSION:-v1.9.12}"
K8S_VERSION="${K8S_VERSION:-v1.34.10}"

step() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Runs "$@" while printing a line every 30 s, so long builds show they are alive.
with_progress() {
  local label=$1; shift
  local start=$SECONDS
  "$@" &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -0 "$pid" 2>/dev/null && printf '    ... %s still running (%ds)\n' "$label" $((SECONDS - start)) >&2
  done
  wait "$pid"
}
