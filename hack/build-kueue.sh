#!/usr/bin/env bash
# Builds the Kueue manager (sigs.k8s.io/kueue, package cmd/kueue) at $KUEUE_VERSION from the Go module proxy into
# $CACHE_DIR/kueue/<version>/bin/kueue, reusing it when present, and makes its CRDs available in
# $CACHE_DIR/kueue/<version>/crd/ (the bare bases from the module zip, without the conversion webhook the
# kustomize overlay adds). Prints the binary's path on stdout; progress goes to stderr. Used by
# hack/cluster/kueue.sh, which runs the manager outside the cluster.
#
# v0.19.2: the newest version the proxy serves. Its version list is stale (it stops at v0.17.0); asked by
# version, v0.18.1, v0.19.0, v0.19.1 and v0.19.2 resolve, while v0.19.3+, v0.20.x, v0.21.x, v0.22.x answer 403.
# Its go.mod needs Go 1.26.0 and k8s.io/* v0.36 (controller-runtime v0.24), like kwok's, and has no replace
# directives, so a plain wrapper module (go_build_pinned) builds it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

KUEUE_VERSION="${KUEUE_VERSION:-v0.19.2}"
crd_dir="$CACHE_DIR/kueue/$KUEUE_VERSION/crd"
# Called directly, not in $(...), where set -e would not stop it at a failed build.
go_build_pinned kueue sigs.k8s.io/kueue "$KUEUE_VERSION" sigs.k8s.io/kueue/cmd/kueue \
  "-s -w -X sigs.k8s.io/kueue/pkg/version.GitVersion=$KUEUE_VERSION" >/dev/null
bin="$CACHE_DIR/kueue/$KUEUE_VERSION/bin/kueue"

if ! ls "$crd_dir"/*.yaml >/dev/null 2>&1; then
  # go mod download is a no-op when the build above fetched the module already.
  src=$(cd "$CACHE_DIR/kueue/$KUEUE_VERSION/wrapper" 2>/dev/null || cd /; \
        go mod download -json "sigs.k8s.io/kueue@$KUEUE_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [ -d "$src/config/components/crd/bases" ] || die "no config/components/crd/bases in the module sigs.k8s.io/kueue@$KUEUE_VERSION"
  mkdir -p "$crd_dir.tmp"
  cp "$src"/config/components/crd/bases/*.yaml "$crd_dir.tmp/"
  chmod u+w "$crd_dir.tmp"/*.yaml
  rm -rf "$crd_dir"; mv "$crd_dir.tmp" "$crd_dir"
  step "Kueue CRDs: $crd_dir"
fi
echo "$bin"
