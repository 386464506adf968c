#!/usr/bin/env bash
# Builds the container images the test cluster uses, without any registry, into
# $CACHE_DIR/images/<name>-<tag>.tar (docker-archive format, see mkimage.py). Reuses a cached tar.
# usage: build.sh [NAME...]   (default: all). Prints "REF<TAB>TAR" per image on stdout.
# To add an image: add its name to IMAGES, its reference to REF, and a function image_<name> ROOTFS WORK
# that fills ROOTFS and may set MKIMAGE_ARGS. Bump the tag (or delete the tar) to rebuild one.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../lib.sh"

IMAGES=(pause busybox)
declare -A REF=(
  [pause]=registry.k8s.io/pause:3.10
  [busybox]=docker.io/library/busybox:1.35
)

# The sandbox image the kubelet/containerd ask for; a static C program, as upstream's.
image_pause() {
  command -v gcc >/dev/null || die "gcc (and libc6-dev) needed to build the pause image"
  gcc -static -Os -s -o "$1/pause" "$HERE/pause.c"
  MKIMAGE_ARGS=(--entrypoint '["/pause"]')
}

# busybox from Debian's busybox-static .deb (downloaded, not installed: the host's busybox stays as it is).
image_busybox() {
  local rootfs=$1 work=$2 tag=${REF[busybox]##*:} deb version
  (cd "$work" && apt-get download busybox-static >/dev/null 2>&1) ||
    { apt-get update -qq >&2 && (cd "$work" && apt-get download busybox-static >/dev/null); } ||
    die "cannot download Debian's busybox-static package"
  deb=$(ls "$work"/busybox-static_*.deb)
  version=$(dpkg-deb -f "$deb" Version)
  case "$version" in *:"$tag".*|"$tag".*) ;; *) die "busybox-static is $version, but the image is tagged $tag";; esac
  dpkg-deb -x "$deb" "$work/deb"
  mkdir -p "$rootfs"/{bin,tmp,etc,proc,sys,dev,root}
  cp "$work/deb/bin/busybox" "$rootfs/bin/busybox"
  local c
  for c in $("$rootfs/bin/busybox" --list); do [ "$c" = busybox ] || ln -s busybox "$rootfs/bin/$c"; done
  echo 'root:x:0:0:root:/root:/bin/sh' > "$rootfs/etc/passwd"
  echo 'root:x:0:' > "$rootfs/etc/group"
  chmod 1777 "$rootfs/tmp"
  MKIMAGE_ARGS=(--cmd '["sh"]')
}

out_dir="$CACHE_DIR/images"
mkdir -p "$out_dir"
names=("$@"); [ ${#names[@]} -gt 0 ] || names=("${IMAGES[@]}")
for name in "${names[@]}"; do
  ref=${REF[$name]:-}; [ -n "$ref" ] || die "unknown image '$name' (known: ${IMAGES[*]})"
  tar="$out_dir/$name-${ref##*:}.tar"
  if [ ! -s "$tar" ]; then
    step "building image $ref"
    work=$(mktemp -d "$out_dir/.build-$name.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    mkdir -p "$work/rootfs"
    MKIMAGE_ARGS=()
    "image_$name" "$work/rootfs" "$work"
    python3 "$HERE/mkimage.py" "$tar" "$ref" "$work/rootfs" "${MKIMAGE_ARGS[@]}"
    rm -rf "$work"; trap - EXIT
  fi
  printf '%s\t%s\n' "$ref" "$tar"
done
