#!/usr/bin/env bash
# `make image`: the operator image, built from the Dockerfile with buildah (hack/images/build.sh, cached), written
# as a docker-archive named by the project's version: $IMAGE_DIR/colonies-operator-<version>.tar (default dist/),
# holding the image colonies-operator:<version>, which is the chart's default image. kind (kind load
# image-archive), containerd (ctr images import), skopeo and buildah (docker-archive:), docker and podman (load)
# all read this format. Prints the archive's path on stdout; progress goes to stderr.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/lib.sh"
REPO_DIR="$(cd "$HERE/.." && pwd)"

version=$(project_version "$REPO_DIR")
out_dir="${IMAGE_DIR:-$REPO_DIR/dist}"
archive="$out_dir/colonies-operator-$version.tar"
IFS=$'\t' read -r ref tar < <("$HERE/images/build.sh" operator) || die "cannot build the operator image"
[ -s "$tar" ] || die "hack/images/build.sh operator printed no archive"
apt_install skopeo skopeo
mkdir -p "$out_dir"
rm -f "$archive.partial"
# The same image (its config and layers are copied as they are), under the name the chart uses by default.
skopeo copy --quiet "docker-archive:$tar" "docker-archive:$archive.partial:colonies-operator:$version" >&2
mv "$archive.partial" "$archive"
step "$archive: image colonies-operator:$version ($ref), $(du -m "$archive" | cut -f1) MiB. Into kind:
    kind load image-archive $archive
  into a registry (then helm install … --set image.repository=<registry>/colonies-operator):
    skopeo copy docker-archive:$archive docker://<registry>/colonies-operator:$version"
echo "$archive"
