#!/usr/bin/env bash
# Builds kwok (sigs.k8s.io/kwok, the fake-kubelet controller) at $KWOK_VERSION from the Go module proxy into
# $CACHE_DIR/kwok/<version>/bin/kwok, reusing it when present. Prints the binary's path on stdout; progress
# goes to stderr. Used by hack/cluster/kwok.sh (fake nodes for the scale tests and bench/scale.py).
#
# v0.8.0: its go.mod needs Go 1.26.0 and k8s.io/* v0.36, within client-go's supported skew of the test
# cluster's v1.34 API server; it has no replace directives, so a plain wrapper module builds it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
go_build_pinned kwok sigs.k8s.io/kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok "-s -w"
