#!/usr/bin/env bash
# Makes the virtualenv VENV (default .venv) hold exactly the locked dependencies (requirements/test.txt: the
# runtime and test dependencies, hash-checked), the project itself and its developer tools (devtools/), editable. Uses uv (hack/uv.sh); without
# it (or with COLONIES_OPERATOR_NO_UV=1), falls back to python3 -m venv and pip (slower, same versions).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
venv=${1:-.venv}
lock=requirements/test.txt
export UV_CACHE_DIR="${UV_CACHE_DIR:-$CACHE_DIR/uv/cache}" UV_PYTHON_DOWNLOADS=never

if [ "${COLONIES_OPERATOR_NO_UV:-}" != 1 ] && uv=$(hack/uv.sh); then
  step "venv $venv with uv: the locked dependencies ($lock), then the project (editable)"
  [ -x "$venv/bin/python" ] && "$venv/bin/python" -c '' 2>/dev/null ||
    "$uv" venv -q --clear --python python3 "$venv"
  "$uv" pip sync -q --python "$venv/bin/python" --require-hashes "$lock"
  "$uv" pip install -q --python "$venv/bin/python" --no-deps -e . -e devtools
else
  step "venv $venv with pip, uv being unavailable or COLONIES_OPERATOR_NO_UV=1 (slower): the locked dependencies, then the project"
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check --require-hashes --no-deps -r "$lock"
  "$venv/bin/pip" install -q --disable-pip-version-check --no-deps -e . -e devtools
fi
