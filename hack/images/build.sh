#!/usr/bin/env bash
# Builds the container images the test cluster uses, without any registry, into
# $CACHE_DIR/images/<name>-<tag>.tar (docker-archive format, see mkimage.py). Reuses a cached tar.
# usage: build.sh [NAME...]   (default: pause busybox). Prints "REF<TAB>TAR" per image on stdout.
# To add an image: add its name to IMAGES, its reference to REF, and a function image_<name> ROOTFS WORK
# that fills ROOTFS and may set MKIMAGE_ARGS. Bump the tag (or delete the tar) to rebuild one.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../lib.sh"

IMAGES=(pause busybox operator)
# Built when no name is given (what up.sh imports). The operator image only on request (build.sh operator,
# hack/load-image.sh operator): it takes longer, and its tag changes with every change to the code.
DEFAULT_IMAGES=(pause busybox)
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

# The operator: the same image contents as the repository's Dockerfile, built without Docker. Debian
# $OPERATOR_SUITE (minbase) with Debian's python3, a venv at /opt/colonies-operator holding the project's wheel
# and its dependencies from PyPI (no pip left in it), user colonies (uid $OPERATOR_UID). The tag is the
# package version plus a hash of the sources and of this recipe, so it changes when either does.
# OPERATOR_IMAGE_SOURCES: build from another checkout of the repository (default: this one).
REPO_DIR="${OPERATOR_IMAGE_SOURCES:-$(cd "$HERE/../.." && pwd)}"
OPERATOR_SUITE="${OPERATOR_IMAGE_SUITE:-bookworm}"
OPERATOR_UID=10001
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
DEBIAN_SECURITY_MIRROR="${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"

# stage_operator_sources DIR: copies what goes into the wheel (no caches, no build leftovers).
stage_operator_sources() {
  mkdir -p "$1"
  (cd "$REPO_DIR" && tar -cf - --exclude=__pycache__ --exclude='*.pyc' --exclude='*.egg-info' \
    pyproject.toml README.md operator) | tar -xf - -C "$1"
}

# sources_hash DIR: 12 hex digits over the staged sources' paths and contents.
sources_hash() {
  (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-12
}

# Sets OPERATOR_SOURCES_HASH and REF[operator] (cheap: hashes a copy of a few dozen files).
set_operator_ref() {
  local version stage hash
  version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$REPO_DIR/operator/colonies_operator/__init__.py")
  [ -n "$version" ] || die "no __version__ in operator/colonies_operator/__init__.py"
  stage=$(mktemp -d)
  stage_operator_sources "$stage"
  OPERATOR_SOURCES_HASH=$(sources_hash "$stage")
  rm -rf "$stage"
  hash=$({ echo "$OPERATOR_SOURCES_HASH $OPERATOR_SUITE $OPERATOR_UID"; declare -f operator_base image_operator; } |
    sha256sum | cut -c1-12)
  REF[operator]="localhost/colonies-operator:$version-$hash"
}

# in_root ROOTFS CMD...: runs CMD chrooted, with a clean environment (none of this host's settings leak in).
in_root() {
  local root=$1; shift
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
    chroot "$root" "$@"
}

# logged LOG CMD...: runs CMD with its output appended to LOG.
logged() { local log=$1; shift; "$@" >>"$log" 2>&1; }

# The Debian base with python3, cached per suite: a code change only redoes the venv.
# Delete $CACHE_DIR/images/base to pick up newer Debian security updates.
operator_base() {
  local base="$CACHE_DIR/images/base/debian-$OPERATOR_SUITE-python3" tmp log
  exec 7>"$CACHE_DIR/images/.lock-base"
  flock 7
  if [ -f "$base/.complete" ]; then exec 7>&-; echo "$base"; return; fi
  if ! command -v debootstrap >/dev/null; then
    step "installing debootstrap with apt-get"
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq debootstrap >&2 ||
      { apt-get update -qq >&2 && apt-get -o DPkg::Lock::Timeout=600 install -y -qq debootstrap >&2; } ||
      die "cannot install debootstrap"
  fi
  tmp="$base.tmp"; log="$CACHE_DIR/images/debootstrap-$OPERATOR_SUITE.log"
  rm -rf "$tmp"; mkdir -p "$(dirname "$base")"
  step "debootstrap: Debian $OPERATOR_SUITE minbase + python3 from $DEBIAN_MIRROR (once per suite; log $log)"
  : > "$log"
  with_progress debootstrap logged "$log" debootstrap --variant=minbase --include=python3 "$OPERATOR_SUITE" \
    "$tmp" "$DEBIAN_MIRROR" || { tail -n 20 "$log" >&2; die "debootstrap failed (log: $log)"; }
  step "base: security updates"
  cat > "$tmp/etc/apt/sources.list" <<SOURCES
deb $DEBIAN_MIRROR $OPERATOR_SUITE main
deb $DEBIAN_MIRROR $OPERATOR_SUITE-updates main
deb $DEBIAN_SECURITY_MIRROR $OPERATOR_SUITE-security main
SOURCES
  cp /etc/resolv.conf "$tmp/etc/resolv.conf"
  {
    in_root "$tmp" apt-get update -qq &&
      in_root "$tmp" apt-get -y -qq -o Dpkg::Options::=--force-confold dist-upgrade &&
      in_root "$tmp" apt-get clean
  } >>"$log" 2>&1 || { tail -n 20 "$log" >&2; die "apt-get in the base rootfs failed (log: $log)"; }
  step "base: removing caches and docs (copyright files stay), compiling the standard library"
  rm -rf "$tmp"/var/lib/apt/lists/* "$tmp"/var/cache/apt/* "$tmp"/var/cache/debconf/*-old "$tmp"/var/log/* \
    "$tmp"/usr/share/man "$tmp"/usr/share/info "$tmp"/usr/share/lintian "$tmp"/usr/share/locale/* \
    "$tmp"/etc/resolv.conf "$tmp"/etc/hostname
  find "$tmp/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$tmp/usr/share/doc" -mindepth 1 -type d -empty -delete
  # The layer's mtimes are reset to 0 (mkimage.py), which would make Debian's timestamp-based .pyc files stale:
  # with a read-only root file system Python would then recompile the standard library on every start.
  in_root "$tmp" python3 -m compileall -q -f -j 0 --invalidation-mode unchecked-hash /usr/lib/python3 \
    /usr/lib/python3.11 >>"$log" 2>&1 || { tail -n 20 "$log" >&2; die "compileall failed (log: $log)"; }
  touch "$tmp/.complete"
  mv "$tmp" "$base"
  exec 7>&-
  echo "$base"
}

image_operator() {
  local rootfs=$1 work=$2 base python buildenv wheels pipwhl pipfile
  # Older operator images: keep the two newest (a test session may be importing one), drop the rest.
  find "$CACHE_DIR/images" -maxdepth 1 -name 'operator-*.tar' -printf '%T@ %p\n' | sort -rn | tail -n +3 |
    cut -d' ' -f2- | xargs -r rm -f
  base=$(operator_base)
  python=$(command -v python3.11 || true)
  [ -n "$python" ] || die "python3.11 is needed to fetch wheels for the image's Python 3.11"
  buildenv="$CACHE_DIR/images/buildenv-py311"
  if [ ! -x "$buildenv/bin/pip" ]; then
    step "a build virtualenv in $buildenv"
    "$python" -m venv "$buildenv" && "$buildenv/bin/pip" install -q --upgrade pip >&2
  fi
  stage_operator_sources "$work/src"
  [ "$(sources_hash "$work/src")" = "$OPERATOR_SOURCES_HASH" ] ||
    die "the sources changed while the image was being built: run again"
  wheels="$rootfs/tmp/build/wheels"; pipwhl="$rootfs/tmp/build/pip"
  step "copying the base rootfs"
  cp -a "$base/." "$rootfs/"
  rm -f "$rootfs/.complete"
  step "wheels: the project and its dependencies (from PyPI)"
  { "$buildenv/bin/pip" wheel --prefer-binary --wheel-dir "$wheels" "$work/src" &&
    "$buildenv/bin/pip" download --no-deps --only-binary=:all: --dest "$pipwhl" \
      "pip==$("$buildenv/bin/pip" --version | cut -d' ' -f2)"; } >"$work/pip.log" 2>&1 ||
    { tail -n 30 "$work/pip.log" >&2; die "pip wheel failed"; }
  step "venv /opt/colonies-operator"
  in_root "$rootfs" python3 -m venv --without-pip /opt/colonies-operator
  # pip runs from its wheel, so none is left in the image.
  pipfile=$(cd "$pipwhl" && echo pip-*.whl)
  in_root "$rootfs" /opt/colonies-operator/bin/python "/tmp/build/pip/$pipfile/pip" install -q --no-index \
    --no-cache-dir --no-compile --find-links /tmp/build/wheels colonies-operator >&2
  # Not used, and most of the image otherwise: the Kubernetes client's asyncio variant (70 MB, which
  # kubernetes/__init__.py does not import) and the packages' own test suites. The Dockerfile does the same.
  rm -rf "$rootfs"/opt/colonies-operator/lib/python3.*/site-packages/kubernetes/aio
  find "$rootfs/opt/colonies-operator/lib" -depth -type d -name tests -exec rm -rf {} +
  in_root "$rootfs" /opt/colonies-operator/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash \
    /opt/colonies-operator/lib >/dev/null
  in_root "$rootfs" groupadd --gid "$OPERATOR_UID" colonies
  in_root "$rootfs" useradd --uid "$OPERATOR_UID" --gid "$OPERATOR_UID" --no-create-home \
    --home-dir /nonexistent --shell /usr/sbin/nologin colonies
  step "image: $(in_root "$rootfs" /opt/colonies-operator/bin/colonies-operator --version), \
$(in_root "$rootfs" python3 --version)"
  rm -rf "$rootfs/tmp/build" "$rootfs"/var/log/* "$rootfs"/var/cache/debconf/*-old "$rootfs"/etc/*- \
    "$rootfs"/dev/*
  chmod 1777 "$rootfs/tmp"
  MKIMAGE_ARGS=(--entrypoint '["colonies-operator"]' --cmd '["run", "--all-namespaces"]'
    --env "PATH=/opt/colonies-operator/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    --env PYTHONDONTWRITEBYTECODE=1 --env PYTHONUNBUFFERED=1)
}

out_dir="$CACHE_DIR/images"
mkdir -p "$out_dir"
names=("$@"); [ ${#names[@]} -gt 0 ] || names=("${DEFAULT_IMAGES[@]}")
[[ " ${names[*]} " != *" operator "* ]] || set_operator_ref
for name in "${names[@]}"; do
  ref=${REF[$name]:-}; [ -n "$ref" ] || die "unknown image '$name' (known: ${IMAGES[*]})"
  tar="$out_dir/$name-${ref##*:}.tar"
  # One builder per image at a time (two test sessions may ask for the same new tag).
  exec 8>"$out_dir/.lock-$name"
  flock 8
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
  exec 8>&-
  printf '%s\t%s\n' "$ref" "$tar"
done
