#!/usr/bin/env bash
# Builds the MinIO server at $MINIO_VERSION from the Go module proxy (MinIO publishes no module releases: the
# version is a pseudo-version of its main branch; its go.mod has no replace directives) into
# $CACHE_DIR/minio/<version>/bin/minio, reusing it when present. Prints the binary's path.
# The S3 server that hack/s3.sh runs for ColonyFS. Static (CGO_ENABLED=0), with MinIO's default version
# strings (DEVELOPMENT.GOGET): such a build never looks for updates at dl.min.io.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

MINIO_VERSION="${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"
export CGO_ENABLED=0
# The main package is the module's root.
go_build_pinned minio github.com/minio/minio "$MINIO_VERSION" github.com/minio/minio "-s -w"
