#!/usr/bin/env bash
# Sets the project's one version everywhere it is written: the package (__version__), the Dockerfile's default
# VERSION label, the chart's version and appVersion (so its default image tag), and a CHANGELOG.md section for it.
# usage: hack/set-version.sh X.Y.Z   (tests/packaging/test_version.py checks that the copies agree)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
new=${1:-}
[[ $new =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] || die "usage: $0 X.Y.Z (semantic version)"
old=$(project_version)
sed -i "s/^__version__ = \".*\"$/__version__ = \"$new\"/" operator/colonies_operator/__init__.py
sed -i -e "s/^ARG VERSION=.*/ARG VERSION=$new/" -e "s/colonies-operator:$old /colonies-operator:$new /" Dockerfile
sed -i -e "s/^version: .*/version: $new/" -e "s/^appVersion: .*/appVersion: \"$new\"/" \
  charts/colonies-operator/Chart.yaml
# The docs' commands name the archive, the image and the package by version.
sed -i "s/colonies-operator\([-:]\)${old//./\\.}\b/colonies-operator\1$new/g" README.md charts/colonies-operator/README.md
if ! grep -q "^## \[$new\]" CHANGELOG.md; then
  # The Unreleased changes become the new version's.
  sed -i "s/^## \[Unreleased\]$/## [Unreleased]\n\n## [$new] - $(date -u +%Y-%m-%d)/" CHANGELOG.md
fi
step "version $old -> $new: $(git status --porcelain -- operator/colonies_operator/__init__.py Dockerfile \
  charts/colonies-operator/Chart.yaml CHANGELOG.md README.md charts/colonies-operator/README.md |
  awk '{print $2}' | xargs)"
