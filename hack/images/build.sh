#!/usr/bin/env bash
# Builds the container images with buildah (no Docker engine, no registry) and exports each as a
# docker-archive, $CACHE_DIR/images/<name>-<tag>.tar, reused while what goes into it is unchanged.
# usage: build.sh [NAME...]   (default: pause busybox). Prints "REF<TAB>TAR" per image on stdout.
# Every image is a build context with a Containerfile: the operator's is the repository's Dockerfile, FROM
# debian:bookworm-slim, which debian_base makes with debootstrap; pause and busybox are FROM scratch.
# To add an image: add its name to IMAGES, its reference to REF, and a function context_<name> DIR that
# fills the build context DIR and prints its Containerfile's path.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../lib.sh"

IMAGES=(pause busybox operator colonies)
# Built when no name is given (what up.sh imports). The operator image only on request (build.sh operator,
# hack/load-image.sh operator): it takes longer, and its tag changes with every change to the code.
DEFAULT_IMAGES=(pause busybox)
declare -A REF=(
  [pause]=registry.k8s.io/pause:3.10
  [busybox]=docker.io/library/busybox:1.35
  [colonies]=docker.io/colonyos/colonies:$COLONIES_VERSION
)
REPO_DIR="${OPERATOR_IMAGE_SOURCES:-$(cd "$HERE/../.." && pwd)}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
DEBIAN_SECURITY_MIRROR="${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
BASE_REF=docker.io/library/debian:bookworm-slim
OUT_DIR="$CACHE_DIR/images"
BUILDAH_DIR="$CACHE_DIR/buildah"
# overlay where the kernel has overlayfs (layers are diffs), else vfs (a full copy per layer: slower, larger).
BUILDAH_DRIVER="${COLONIES_OPERATOR_BUILDAH_DRIVER:-$(grep -qw overlay /proc/filesystems && echo overlay || echo vfs)}"
export BUILDAH_ISOLATION=chroot

# buildah on a store of its own in the cache (the host's /var/lib/containers is left alone).
bah() {
  buildah --root "$BUILDAH_DIR/storage-$BUILDAH_DRIVER" --runroot "$BUILDAH_DIR/run-$BUILDAH_DRIVER" \
    --storage-driver "$BUILDAH_DRIVER" "$@"
}

# hash_files DIR PATH...: 12 hex digits over the paths and contents of the files under DIR/PATH...
hash_files() {
  local dir=$1; shift
  (cd "$dir" && find "$@" -type f -not -name '*.pyc' -not -path '*/__pycache__/*' -not -path '*.egg-info/*' \
    -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-12
}

# ---- the Debian base ---------------------------------------------------------------------------------------

# The date of the Debian archive as the mirrors serve it now (YYYYMMDD): the newest Date of the Release files
# of bookworm, bookworm-updates and bookworm-security. The base is rebuilt when it moves.
debian_snapshot_date() {
  python3 - "$DEBIAN_MIRROR" "$DEBIAN_SECURITY_MIRROR" <<'PY'
import email.utils, sys, urllib.request
mirror, security = sys.argv[1:]
dates = []
for url in (f"{mirror}/dists/bookworm/InRelease", f"{mirror}/dists/bookworm-updates/InRelease",
            f"{security}/dists/bookworm-security/InRelease"):
    with urllib.request.urlopen(url, timeout=20) as response:
        head = response.read(4096).decode("utf-8", "replace")
    dates += [email.utils.parsedate_to_datetime(line[5:].strip()) for line in head.splitlines()
              if line.startswith("Date:")][:1]
print(max(dates).strftime("%Y%m%d"))
PY
}

# in_root ROOTFS CMD...: runs CMD chrooted, with a clean environment (none of this host's settings leak in).
in_root() {
  local root=$1; shift
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
    chroot "$root" "$@"
}

# debootstrap_slim DIR LOG: Debian bookworm minbase with its updates, trimmed as the official slim image is
# (no docs but copyright files, no man pages or locales, apt keeps no lists or caches).
debootstrap_slim() {
  local root=$1 log=$2
  apt_install debootstrap debootstrap
  with_progress debootstrap debootstrap --variant=minbase bookworm "$root" "$DEBIAN_MIRROR" >>"$log" 2>&1 ||
    { tail -n 20 "$log" >&2; die "debootstrap failed (log: $log)"; }
  rm -f "$root/etc/apt/sources.list"
  cat > "$root/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $DEBIAN_MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $DEBIAN_SECURITY_MIRROR
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  cat > "$root/etc/dpkg/dpkg.cfg.d/docker" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
DPKG
  cat > "$root/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
  echo 'Acquire::Languages "none";' > "$root/etc/apt/apt.conf.d/docker-no-languages"
  echo 'Apt::AutoRemove::SuggestsImportant "false";' > "$root/etc/apt/apt.conf.d/docker-autoremove-suggests"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  { in_root "$root" apt-get update -qq &&
    in_root "$root" apt-get -y -qq -o Dpkg::Options::=--force-confold dist-upgrade &&
    in_root "$root" apt-get clean; } >>"$log" 2>&1 ||
    { tail -n 20 "$log" >&2; die "apt-get in the base rootfs failed (log: $log)"; }
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old "$root"/var/log/* \
    "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/lintian/* "$root"/usr/share/groff/* \
    "$root"/etc/resolv.conf "$root"/etc/hostname "$root"/dev/* "$root"/etc/*-
  find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
  find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
}

# debian_base: makes sure buildah's store holds $BASE_REF, debootstrapped at the current Debian snapshot date
# (a rootfs tar cached per date in $OUT_DIR/base/, the two newest kept). Sets BASE_DATE.
debian_base() {
  local base_dir="$OUT_DIR/base" tar tmp log marker
  mkdir -p "$base_dir"
  exec 7>"$base_dir/.lock"
  flock 7
  if ! BASE_DATE=$(debian_snapshot_date 2>/dev/null); then
    tar=$(ls "$base_dir"/debian-bookworm-slim-*.tar 2>/dev/null | sort | tail -n 1) ||
      die "cannot read the Debian snapshot date from $DEBIAN_MIRROR, and no base is cached"
    BASE_DATE=${tar##*-}; BASE_DATE=${BASE_DATE%.tar}
    step "Debian mirror unreachable: using the cached base of $BASE_DATE"
  fi
  tar="$base_dir/debian-bookworm-slim-$BASE_DATE.tar"
  if [ ! -s "$tar" ]; then
    tmp=$(mktemp -d "$base_dir/.rootfs.XXXXXX"); log="$base_dir/debootstrap-$BASE_DATE.log"
    step "debian:bookworm-slim from debootstrap, Debian as of $BASE_DATE (once per snapshot date; log $log)"
    : > "$log"
    debootstrap_slim "$tmp/rootfs" "$log"
    tar --numeric-owner --xattrs -C "$tmp/rootfs" -cf "$tar.tmp" .
    mv "$tar.tmp" "$tar"
    rm -rf "$tmp"
    ls "$base_dir"/debian-bookworm-slim-*.tar | sort | head -n -2 | xargs -r rm -f
  fi
  # The store's $BASE_REF is the one committed from this tar (the marker holds its image id).
  marker="$BUILDAH_DIR/base-$BUILDAH_DRIVER-$BASE_DATE.id"
  local id
  id=$(bah images -q --no-trunc "$BASE_REF" 2>/dev/null || true); id=${id#sha256:}
  if [ -z "$id" ] || [ "$(cat "$marker" 2>/dev/null)" != "$id" ]; then
    step "committing the base rootfs of $BASE_DATE to buildah as $BASE_REF"
    local ctr mnt
    ctr=$(bah from -q scratch)
    mnt=$(bah mount "$ctr")
    tar --numeric-owner --xattrs -C "$mnt" -xf "$tar"
    bah umount "$ctr" >/dev/null
    bah config --cmd '["bash"]' --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$ctr"
    bah commit -q --rm --format docker --identity-label=false "$ctr" "$BASE_REF" > "$marker"
  fi
  exec 7>&-
}

# ---- the images: a build context each ----------------------------------------------------------------------

# The sandbox image the kubelet/containerd ask for; a static C program, as upstream's, compiled on this host
# (in a build stage it would need the Debian base and gcc inside it: a minute more for every fresh cluster).
context_pause() {
  command -v gcc >/dev/null || die "gcc (and libc6-dev) needed to build the pause image"
  gcc -static -Os -s -o "$1/pause" "$HERE/pause.c"
  printf 'FROM scratch\nCOPY pause /pause\nENTRYPOINT ["/pause"]\n' > "$1/Containerfile"
  echo "$1/Containerfile"
}

# busybox from Debian's busybox-static .deb (downloaded, not installed: the host's busybox stays as it is).
context_busybox() {
  local dir=$1 tag=${REF[busybox]##*:} deb version c
  (cd "$dir" && apt-get download busybox-static >/dev/null 2>&1) ||
    { apt-get update -qq >&2 && (cd "$dir" && apt-get download busybox-static >/dev/null); } ||
    die "cannot download Debian's busybox-static package"
  deb=$(ls "$dir"/busybox-static_*.deb)
  version=$(dpkg-deb -f "$deb" Version)
  case "$version" in *:"$tag".*|"$tag".*) ;; *) die "busybox-static is $version, but the image is tagged $tag";; esac
  dpkg-deb -x "$deb" "$dir/deb"
  mkdir -p "$dir"/rootfs/{bin,tmp,etc,proc,sys,dev,root}
  cp "$dir/deb/bin/busybox" "$dir/rootfs/bin/busybox"
  for c in $("$dir/rootfs/bin/busybox" --list); do [ "$c" = busybox ] || ln -s busybox "$dir/rootfs/bin/$c"; done
  echo 'root:x:0:0:root:/root:/bin/sh' > "$dir/rootfs/etc/passwd"
  echo 'root:x:0:' > "$dir/rootfs/etc/group"
  chmod 1777 "$dir/rootfs/tmp"
  printf 'FROM scratch\nCOPY rootfs/ /\nCMD ["sh"]\n' > "$dir/Containerfile"
  echo "$dir/Containerfile"
}

# Colonies' CLI image, for the steps of a Job's pod that move ColonyFS files (`colonies fs sync`, `fs snapshot
# download`): a stand-in for upstream's colonyos/colonies:<version> (Alpine, with the CLI and busybox), with the same
# interface, sh and `colonies` on the PATH. The static build of hack/build-colonies.sh --static at
# /usr/local/bin/colonies, Debian's busybox-static (the shell and tools of the steps' scripts) and the Mozilla CA
# bundle from Debian's ca-certificates .deb (for COLONIES_TLS/AWS_S3_TLS; not this host's bundle, which may hold a
# local proxy's CA). No user: the pod spec chooses the uid.
context_colonies() {
  local dir=$1 binary deb c
  binary=$("$HERE/../build-colonies.sh" --static)
  (cd "$dir" && apt-get download ca-certificates busybox-static >/dev/null 2>&1) ||
    { apt-get update -qq >&2 && (cd "$dir" && apt-get download ca-certificates busybox-static >/dev/null); } ||
    die "cannot download Debian's ca-certificates and busybox-static packages"
  for deb in "$dir"/ca-certificates_*.deb "$dir"/busybox-static_*.deb; do dpkg-deb -x "$deb" "$dir/deb"; done
  mkdir -p "$dir"/rootfs/{bin,usr/local/bin,etc/ssl/certs,tmp}
  cp "$binary" "$dir/rootfs/usr/local/bin/colonies"
  cp "$dir/deb/bin/busybox" "$dir/rootfs/bin/busybox"
  for c in $("$dir/rootfs/bin/busybox" --list); do [ "$c" = busybox ] || ln -s busybox "$dir/rootfs/bin/$c"; done
  # What update-ca-certificates makes of the package's certificates, sorted as it does.
  find "$dir/deb/usr/share/ca-certificates/mozilla" -name '*.crt' | LC_ALL=C sort | xargs cat \
    > "$dir/rootfs/etc/ssl/certs/ca-certificates.crt"
  chmod 1777 "$dir/rootfs/tmp"
  printf '%s\n' 'FROM scratch' 'COPY rootfs/ /' 'ENV PATH=/usr/local/bin:/bin' 'CMD ["colonies"]' \
    > "$dir/Containerfile"
  echo "$dir/Containerfile"
}

# The operator: the repository's Dockerfile, its context the repository (.dockerignore lets in what it needs).
context_operator() {
  echo "$REPO_DIR/Dockerfile"
}

# What goes into each image, hashed: a new hash is a new tar (and, for the operator, a new tag).
recipe_pause() { { declare -f context_pause; cat "$HERE/pause.c"; } | sha256sum | cut -c1-12; }
recipe_colonies() { { declare -f context_colonies; echo "$COLONIES_VERSION"; cat "$HERE/../build-colonies.sh";
  apt-cache policy ca-certificates busybox-static 2>/dev/null | grep -E '^[a-z]|Candidate'; } |
  sha256sum | cut -c1-12; }
recipe_busybox() { { declare -f context_busybox; apt-cache policy busybox-static 2>/dev/null | sed -n 2,3p; } |
  sha256sum | cut -c1-12; }

# Sets REF[operator], OPERATOR_ARGS (the build args) and OPERATOR_HASH. The tag is the package version and 12
# hex digits over the Dockerfile, the files it copies, the build args and the Debian base's date.
set_operator_ref() {
  local version revision source paths=(Dockerfile .dockerignore pyproject.toml README.md requirements/runtime.txt
    operator)
  version=$(project_version "$REPO_DIR")
  revision=unknown; source=""
  if git -C "$REPO_DIR" rev-parse --git-dir >/dev/null 2>&1; then
    revision=$(git -C "$REPO_DIR" log -1 --format=%H -- "${paths[@]}")
    [ -z "$(git -C "$REPO_DIR" status --porcelain -- "${paths[@]}")" ] || revision="$revision-dirty"
    source=$(git -C "$REPO_DIR" remote get-url origin 2>/dev/null || true)
    [[ $source == https://* ]] || source=""
  fi
  OPERATOR_ARGS=(--build-arg "VERSION=$version" --build-arg "REVISION=$revision" --build-arg "SOURCE=$source")
  OPERATOR_HASH=$({ hash_files "$REPO_DIR" "${paths[@]}"; echo "${OPERATOR_ARGS[*]} $BASE_DATE"; } |
    sha256sum | cut -c1-12)
  REF[operator]="localhost/colonies-operator:$version-$OPERATOR_HASH"
}

mkdir -p "$OUT_DIR" "$BUILDAH_DIR"
names=("$@"); [ ${#names[@]} -gt 0 ] || names=("${DEFAULT_IMAGES[@]}")
for name in "${names[@]}"; do
  [[ " ${IMAGES[*]} " == *" $name "* ]] || die "unknown image '$name' (known: ${IMAGES[*]})"
done
apt_install buildah buildah
# The layers kept for rebuilds grow with every code change: past 4 GiB, the store starts afresh (the base is
# committed again from its tar, in seconds). Builds hold the store's lock shared, emptying it exclusive.
exec 6>"$BUILDAH_DIR/.lock"
if [ "$(du -sm "$BUILDAH_DIR" | cut -f1)" -gt 4096 ]; then
  flock -x 6
  if [ "$(du -sm "$BUILDAH_DIR" | cut -f1)" -gt 4096 ]; then
    step "buildah's store is over 4 GiB: emptying it"
    bah rmi --all --force >/dev/null 2>&1 || true
    rm -f "$BUILDAH_DIR"/base-*.id
  fi
fi
flock -s 6
if [[ " ${names[*]} " == *" operator "* ]]; then
  debian_base
  set_operator_ref
fi
for name in "${names[@]}"; do
  ref=${REF[$name]}
  # <prefix>-<tag>[-<recipe hash>].tar; "colonies-operator", not "operator", which older checkouts' build.sh
  # prunes in the same cache; "colonies-cli", not "colonies", whose pruning pattern (colonies-*-<hash>.tar) would
  # take the operator's tars.
  case $name in
    operator) prefix=colonies-operator; tar="$OUT_DIR/$prefix-${ref##*:}.tar" ;;
    colonies) prefix=colonies-cli; tar="$OUT_DIR/$prefix-${ref##*:}-$("recipe_$name").tar" ;;
    *) prefix=$name; tar="$OUT_DIR/$name-${ref##*:}-$("recipe_$name").tar" ;;
  esac
  # One builder per image at a time (two test sessions may ask for the same new tag).
  exec 8>"$OUT_DIR/.lock-$name"
  flock 8
  if [ ! -s "$tar" ]; then
    step "building image $ref with buildah"
    work=$(mktemp -d "$OUT_DIR/.build-$name.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    containerfile=$("context_$name" "$work")
    context=$(dirname "$containerfile")
    args=()
    if [ "$name" = operator ]; then
      args=("${OPERATOR_ARGS[@]}" --layers)
      # This host's CA bundle, for pip in RUN steps (see the Dockerfile): PyPI may be behind a TLS proxy here.
      bundle=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
      [ ! -s "$bundle" ] || args+=(--secret "id=ca-bundle,src=$bundle")
    fi
    start=$SECONDS
    with_progress "buildah bud $name" bah bud --quiet --pull=never --format docker --identity-label=false \
      "${args[@]}" -f "$containerfile" -t "$ref" "$context" >"$work/build.log" 2>&1 ||
      { tail -n 40 "$work/build.log" >&2; die "buildah bud failed for $ref"; }
    bah push -q "$ref" "docker-archive:$work/image.tar:$ref" >&2
    mv "$work/image.tar" "$tar"
    step "$ref built in $((SECONDS - start))s: $(du -m "$tar" | cut -f1) MiB"
    # The tar is the cache; older tars of this image go (the operator's two newest stay: a test session may be
    # importing one), and so do the store's images but the base and the layers a rebuild reuses.
    find "$OUT_DIR" -maxdepth 1 -name "$prefix-*-????????????.tar" -not -name "$(basename "$tar")" \
      -printf '%T@ %p\n' | sort -rn | tail -n +"$([ "$name" = operator ] && echo 2 || echo 1)" | cut -d' ' -f2- |
      xargs -r rm -f
    bah rmi "$ref" >/dev/null 2>&1 || true
    rm -rf "$work"; trap - EXIT
  fi
  exec 8>&-
  printf '%s\t%s\n' "$ref" "$tar"
done
