#!/usr/bin/env bash
# Imports images into the local test cluster's containerd (namespace k8s.io), so pods can use them with
# imagePullPolicy Never or IfNotPresent: there is no registry. Idempotent: an image already imported from
# the same tar (same size and mtime, as up.sh records it) is skipped.
# usage: load-image.sh NAME|TAR...   NAME is an image of hack/images/build.sh (e.g. operator; built first
# if needed), TAR a docker-archive. Prints the image reference of each on stdout; progress goes to stderr.
set -euo pipefail
. "$(dirname "$0")/cluster/lib.sh"

[ $# -gt 0 ] || die "usage: $0 NAME|TAR... (e.g. $0 operator)"
[ -S "$CTR_SOCK" ] && ctr --address "$CTR_SOCK" version >/dev/null 2>&1 ||
  die "the local cluster's containerd is not running ($CTR_SOCK): start it with hack/cluster/up.sh"

# tar_ref TAR: the image reference recorded in the archive.
tar_ref() {
  tar -xOf "$1" manifest.json | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["RepoTags"][0])'
}

mkdir -p "$SCRATCH/containerd/imported"
for arg in "$@"; do
  if [ -f "$arg" ]; then
    tar=$arg; ref=$(tar_ref "$tar")
  else
    IFS=$'\t' read -r ref tar < <("$HACK_DIR/images/build.sh" "$arg") || die "cannot build image $arg"
  fi
  marker="$SCRATCH/containerd/imported/$(basename "$tar")"
  exec 8>"$marker.lock"
  flock 8
  stamp="$(stat -c %s-%Y "$tar")"
  if [ "$(cat "$marker" 2>/dev/null)" != "$stamp" ] || ! ctr_ images ls -q | grep -qxF "$ref"; then
    step "importing image $ref into the cluster's containerd"
    ctr_ images import "$tar" >/dev/null
    echo "$stamp" > "$marker"
  fi
  exec 8>&-
  rm -f "$marker.lock"
  echo "$ref"
done
