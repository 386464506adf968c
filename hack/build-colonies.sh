#!/usr/bin/env bash
# Builds the Colonies server/CLI at $COLONIES_VERSION from the Go module proxy into
# $CACHE_DIR/colonies/<version>/bin/colonies, reusing it when present. Prints the binary's path.
# --static: the same program without cgo (CGO_ENABLED=0: Go's own DNS resolver and user lookup), into
# $CACHE_DIR/colonies-static/<version>/bin/colonies-static; it needs no libc, for a FROM-scratch image.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

name=colonies
case "${1:-}" in
  "") ;;
  --static) name=colonies-static; export CGO_ENABLED=0 ;;
  *) die "usage: $0 [--static]" ;;
esac
# The main package is cmd/; the binary is named colonies.
go_build_pinned "$name" github.com/colonyos/colonies "$COLONIES_VERSION" github.com/colonyos/colonies/cmd "-s -w"
