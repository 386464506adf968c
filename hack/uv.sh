#!/usr/bin/env bash
# Prints the path of uv, the version requirements/uv.txt pins, installing it once from PyPI (hash-checked, by
# pip, into a venv of its own in the cache). Fails when it cannot; hack/venv.sh then falls back to pip.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

reqs="$(cd "$(dirname "$0")/.." && pwd)/requirements/uv.txt"
version=$(sed -n 's/^uv==\([^ ;]*\).*/\1/p' "$reqs")
[ -n "$version" ] || die "no uv==VERSION line in requirements/uv.txt"
dir="$CACHE_DIR/uv/$version"
mkdir -p "$CACHE_DIR/uv"
exec 9>"$CACHE_DIR/uv/.lock"
flock 9
if [ ! -x "$dir/bin/uv" ]; then
  step "installing uv $version from PyPI into the cache (once)"
  rm -rf "$dir.tmp"
  { python3 -m venv "$dir.tmp" &&
    "$dir.tmp/bin/pip" install -q --disable-pip-version-check --no-cache-dir --require-hashes -r "$reqs"; } >&2 ||
    { rm -rf "$dir.tmp"; die "cannot install uv $version"; }
  rm -rf "$dir"; mv "$dir.tmp" "$dir"
fi
echo "$dir/bin/uv"
