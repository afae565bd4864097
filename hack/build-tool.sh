#!/usr/bin/env bash
# Builds one pinned tool from the Go module proxy into a destination path.
# Usage: hack/build-tool.sh <name> <dest>
# Every binary is built with -trimpath from a small tools module so the Go build
# cache is shared across tools and across runs; nothing prebuilt is downloaded.
set -euo pipefail

name=$1
dest=$2
root=$(cd "$(dirname "$0")/.." && pwd)

K8S_VERSION=v1.37.2
HELM_VERSION=v3.22.0
OAUTH2_PROXY_VERSION=v7.15.6
k8s_ldflags="-s -w \
 -X k8s.io/component-base/version.gitVersion=${K8S_VERSION} \
 -X k8s.io/component-base/version.gitMajor=1 \
 -X k8s.io/component-base/version.gitMinor=37 \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/client-go/pkg/version.gitVersion=${K8S_VERSION} \
 -X k8s.io/client-go/pkg/version.gitMajor=1 \
 -X k8s.io/client-go/pkg/version.gitMinor=37"

case "$name" in
  kube-apiserver|kubectl|kube-controller-manager|kube-scheduler)
    mod=hack/tools/k8s pkg=k8s.io/kubernetes/cmd/$name ldflags=$k8s_ldflags ;;
  etcd)
    mod=hack/tools/k8s pkg=go.etcd.io/etcd/server/v3 ldflags="-s -w" ;;
  kwok)
    mod=hack/tools/k8s pkg=sigs.k8s.io/kwok/cmd/kwok ldflags="-s -w" ;;
  controller-gen)
    mod=hack/tools/controller-gen pkg=sigs.k8s.io/controller-tools/cmd/controller-gen ldflags="-s -w" ;;
  setup-envtest)
    mod=hack/tools/setup-envtest pkg=sigs.k8s.io/controller-runtime/tools/setup-envtest ldflags="-s -w" ;;
  helm)
    mod=hack/tools/helm pkg=helm.sh/helm/v3/cmd/helm
    ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION} \
 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=37 \
 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=37" ;;
  oauth2-proxy)
    # Only `make bench` runs it: a peer measured next to /validate.
    mod=hack/tools/oauth2-proxy pkg=github.com/oauth2-proxy/oauth2-proxy/v7
    ldflags="-s -w -X github.com/oauth2-proxy/oauth2-proxy/v7/pkg/version.VERSION=${OAUTH2_PROXY_VERSION}" ;;
  *) echo "unknown tool: $name" >&2; exit 2 ;;
esac

mkdir -p "$(dirname "$dest")"
echo ">> building $name ($pkg) -> $dest"
start=$(date +%s)
# Build to a temporary name first so an interrupted build never leaves a
# half-written binary that make would consider up to date.
go -C "$root/$mod" build -trimpath -ldflags "$ldflags" -o "$dest.tmp" "$pkg"
mv "$dest.tmp" "$dest"
echo ">> built $name in $(( $(date +%s) - start ))s"
