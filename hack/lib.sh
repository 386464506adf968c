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

# apt_install PACKAGE COMMAND: installs PACKAGE with apt-get unless COMMAND exists.
apt_install() {
  command -v "$2" >/dev/null && return 0
  [ "$(id -u)" -eq 0 ] || die "$2 is missing: install the Debian package $1 (sudo apt-get install $1)"
  step "installing $1 with apt-get"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "$1" >&2 ||
    { apt-get update -qq >&2 &&
      DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "$1" >&2; } ||
    die "cannot install $1"
}

# project_version [REPO]: the project's one version, __version__ in operator/colonies_operator/__init__.py.
project_version() {
  local repo=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)} version
  version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$repo/operator/colonies_operator/__init__.py")
  [ -n "$version" ] || die "no __version__ in $repo/operator/colonies_operator/__init__.py"
  echo "$version"
}

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

# go_build_pinned NAME MODULE VERSION PACKAGE LDFLAGS [BUILD]: builds PACKAGE of MODULE@VERSION into
# $CACHE_DIR/NAME/VERSION[-BUILD]/bin/NAME (reused when present) and prints the binary's path. BUILD names a change
# of LDFLAGS, so that a cached binary built without it is not reused. A wrapper module
# rather than "go install pkg@version": the proxy refuses some modules' version lists, which go install
# reads to check for deprecation.
go_build_pinned() {
  local name=$1 module=$2 version=$3 package=$4 ldflags=$5 build=${6:+-$6}
  local out="$CACHE_DIR/$name/$version$build/bin" work="$CACHE_DIR/$name/$version$build/wrapper"
  if [ -x "$out/$name" ]; then echo "$out/$name"; return 0; fi
  command -v go >/dev/null || die "Go is needed to build $name $version"
  step "building $name $version from the Go module proxy (a few minutes on 2 cores, then cached)"
  rm -rf "$work"; mkdir -p "$work" "$out"
  printf 'module localbuild/%s\n\ngo 1.22\n\nrequire %s %s\n' "$name" "$module" "$version" > "$work/go.mod"
  (cd "$work" && with_progress "go build $name" go build -trimpath -ldflags "$ldflags" -o "$out/$name.tmp" "$package")
  mv "$out/$name.tmp" "$out/$name"
  step "$name ready: $out/$name"
  echo "$out/$name"
}
