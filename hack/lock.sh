#!/usr/bin/env bash
# Regenerates the lock files from pyproject.toml with uv pip compile (pip-tools' format, with hashes, for every
# platform and Python >= 3.11). Versions already locked are kept while they still satisfy pyproject.toml; pass
# --upgrade (or --upgrade-package NAME) to move them.
#   requirements/test.txt     runtime + test dependencies: make's venv (hack/venv.sh)
#   requirements/runtime.txt  runtime only, the same versions: the image (Dockerfile)
#   requirements/uv.txt       uv itself, which hack/uv.sh installs
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
uv=$(hack/uv.sh)
export UV_CACHE_DIR="${UV_CACHE_DIR:-$CACHE_DIR/uv/cache}" UV_PYTHON_DOWNLOADS=never
compile() { "$uv" pip compile -q --universal --python-version 3.11 --generate-hashes "$@"; }
# The test set first: it constrains the shared packages more (pycolonies' boto3 wants python-dateutil < 3).
compile pyproject.toml --extra test -o requirements/test.txt "$@"
compile pyproject.toml -c requirements/test.txt -o requirements/runtime.txt
version=$(sed -n 's/^uv==\([^ ;]*\).*/\1/p' requirements/uv.txt)
echo "uv==$version" | compile --no-header --no-annotate - -o requirements/uv.txt
