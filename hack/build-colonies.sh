#!/usr/bin/env bash
# Builds the Colonies server/CLI at $COLONIES_VERSION from the Go module proxy into
# $CACHE_DIR/colonies/<version>/bin/colonies, reusing it when present. Prints the binary's path.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# The main package is cmd/; the binary is named colonies.
go_build_pinned colonies github.com/colonyos/colonies "$COLONIES_VERSION" github.com/colonyos/colonies/cmd "-s -w"
