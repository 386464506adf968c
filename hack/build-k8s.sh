#!/usr/bin/env bash
# Builds the Kubernetes binaries the test cluster needs (and etcd, and kubectl) from the Go module
# proxy into $CACHE_DIR/k8s/<version>/bin. Reuses them when present. Prints the bin dir.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

OUT="$CACHE_DIR/k8s/$K8S_VERSION/bin"
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl etcd)
missing=()
for b in "${BINARIES[@]}"; do [ -x "$OUT/$b" ] || missing+=("$b"); done
if [ ${#missing[@]} -eq 0 ]; then echo "$OUT"; exit 0; fi

command -v go >/dev/null || die "Go is needed to build Kubernetes ($K8S_VERSION)"
step "building Kubernetes $K8S_VERSION (${missing[*]}) from the Go module proxy; a cold build takes 20-40 min on 2 cores"
minor=$(echo "$K8S_VERSION" | cut -d. -f2)
kmod=$(cd / && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')

# k8s.io/kubernetes maps its staging modules to v0.0.0 with replace directives, which a dependent
# module ignores; a wrapper module pins each to the matching v0.MINOR.PATCH tag instead.
work="$CACHE_DIR/k8s/$K8S_VERSION/wrapper"
rm -rf "$work"; mkdir -p "$work/etcd" "$OUT"
{
  echo "module localbuild/k8sbins"
  awk '$1=="go"{print; exit}' "$kmod"
  grep -E '^godebug' "$kmod" || true
  echo "require k8s.io/kubernetes $K8S_VERSION"
  sed -nE 's#^[[:space:]]*(k8s\.io/[A-Za-z0-9._-]+) => \./staging/src/.*#replace \1 => \1 v0.'"${K8S_VERSION#v1.}"'#p' "$kmod"
} > "$work/go.mod"
# etcd at the version Kubernetes itself requires, through its etcdmain package.
cat > "$work/etcd/main.go" <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
cd "$work"
export CGO_ENABLED=0
V=k8s.io/component-base/version
LDF="-s -w -X $V.gitVersion=$K8S_VERSION -X $V.gitMajor=1 -X $V.gitMinor=$minor -X $V.gitTreeState=clean -X $V.buildDate=1970-01-01T00:00:00Z"
step "downloading modules"
with_progress "go mod download" go mod download k8s.io/kubernetes
# Pin etcd to the version Kubernetes requires: a bare "go get" would upgrade half the module graph.
etcd_version=$(awk '$1=="go.etcd.io/etcd/server/v3"{print $2; exit}' "$kmod")
[ -n "$etcd_version" ] || die "cannot find the etcd server version in k8s.io/kubernetes@$K8S_VERSION's go.mod"
go get "go.etcd.io/etcd/server/v3@$etcd_version"
for b in "${missing[@]}"; do
  step "go build $b"
  if [ "$b" = etcd ]; then pkg=./etcd; else pkg="k8s.io/kubernetes/cmd/$b"; fi
  with_progress "build $b" go build -trimpath -ldflags "$LDF" -o "$OUT/$b.tmp" "$pkg"
  mv "$OUT/$b.tmp" "$OUT/$b"
done
step "Kubernetes binaries ready in $OUT"
echo "$OUT"
