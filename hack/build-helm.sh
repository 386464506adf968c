#!/usr/bin/env bash
# Builds the helm CLI at $HELM_VERSION from the Go module proxy into $CACHE_DIR/helm/<version>/bin/helm,
# reusing it when present. Prints the binary's path on stdout; progress goes to stderr.
# Used by the chart tests (tests/chart) and tests/e2e/test_helm.py; there is no helm package to install here.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

HELM_VERSION="${HELM_VERSION:-v3.19.5}"
OUT="$CACHE_DIR/helm/$HELM_VERSION/bin"
if [ -x "$OUT/helm" ]; then echo "$OUT/helm"; exit 0; fi
command -v go >/dev/null || die "Go is needed to build helm $HELM_VERSION"
step "building helm $HELM_VERSION from the Go module proxy (a few minutes on 2 cores, then cached)"
# A wrapper module rather than "go install pkg@version", as in build-colonies.sh: the proxy may refuse a
# module's version list, which go install reads. The wrapper also pins helm's own go.mod requirements.
work="$CACHE_DIR/helm/$HELM_VERSION/wrapper"
rm -rf "$work"; mkdir -p "$work" "$OUT"
printf 'module localbuild/helm\n\ngo 1.24\n\nrequire helm.sh/helm/v3 %s\n' "$HELM_VERSION" > "$work/go.mod"
cd "$work"
# helm prints its version from these variables (otherwise "v3.x-unreleased"-style strings).
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
with_progress "go build helm" go build -trimpath -ldflags "$ldflags" -o "$OUT/helm.tmp" helm.sh/helm/v3/cmd/helm
mv "$OUT/helm.tmp" "$OUT/helm"
step "helm ready: $OUT/helm ($("$OUT/helm" version --short 2>/dev/null || echo '?'))"
echo "$OUT/helm"
