#!/usr/bin/env bash
# Builds the helm CLI at $HELM_VERSION from the Go module proxy into $CACHE_DIR/helm/<version>-k8s<...>/bin/helm,
# reusing it when present. Prints the binary's path on stdout; progress goes to stderr.
# Used by the chart tests (tests/chart), tests/e2e/test_helm.py and the demo; no helm package is installable here.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

HELM_VERSION="${HELM_VERSION:-v3.19.5}"
# The Kubernetes version helm assumes without a cluster (helm template, lint, package), as helm's own release
# builds set it: 1.34, after its client-go v0.34. Unset, it would assume 1.20, which the chart's kubeVersion refuses.
HELM_KUBE_MINOR="${HELM_KUBE_MINOR:-34}"
# helm prints its version from these variables (otherwise "v3.x-unreleased"-style strings).
go_build_pinned helm helm.sh/helm/v3 "$HELM_VERSION" helm.sh/helm/v3/cmd/helm \
  "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean
   -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$HELM_KUBE_MINOR
   -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$HELM_KUBE_MINOR" \
  "k8s1.$HELM_KUBE_MINOR"
