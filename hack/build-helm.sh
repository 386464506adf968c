#!/usr/bin/env bash
# Builds the helm CLI at $HELM_VERSION from the Go module proxy into $CACHE_DIR/helm/<version>/bin/helm,
# reusing it when present. Prints the binary's path on stdout; progress goes to stderr.
# Used by the chart tests (tests/chart), tests/e2e/test_helm.py and the demo; no helm package is installable here.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

HELM_VERSION="${HELM_VERSION:-v3.19.5}"
# helm prints its version from these variables (otherwise "v3.x-unreleased"-style strings).
go_build_pinned helm helm.sh/helm/v3 "$HELM_VERSION" helm.sh/helm/v3/cmd/helm \
  "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
