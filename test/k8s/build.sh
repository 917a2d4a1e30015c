#!/usr/bin/env bash
# Builds the real Kubernetes and etcd binaries the tests run (kubeadm, kube-apiserver,
# kube-controller-manager, kube-scheduler, etcd, etcdctl, etcdutl) from their Go modules into a
# gitignored cache, and reuses them when the cache matches the pinned modules; also
# kubelet-config-validate (test/k8s/kubernetes/cmd), the kubelet's own config validation.
#
# Usage: test/k8s/build.sh            build or reuse; prints the cache's bin directory
#        test/k8s/build.sh --check    print the bin directory if every binary is built, else exit 3
#        K8S_BIN_CACHE=/path ...       cache somewhere else (default: <repo>/.cache/k8s)
#
# Neither project publishes binaries anywhere this machine can reach; the Go module proxy serves
# their sources. k8s.io/kubernetes's go.mod points its staging modules at ./staging, which a module
# download lacks, so test/k8s/kubernetes/go.mod replaces each with its released v0.x.y.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${K8S_BIN_CACHE:-$(cd "$here/../.." && pwd)/.cache/k8s}

log() { printf '[k8s-build] %s\n' "$*" >&2; }

k8s_version=$(cd "$here/kubernetes" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
etcd_version=$(cd "$here/etcd" && go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
# The cache is keyed by everything that decides the bytes: the pinned modules, this script, Go.
key=$(cat "$here/build.sh" "$here/kubernetes/go.mod" "$here/kubernetes/go.sum" "$here"/kubernetes/cmd/*/*.go "$here/etcd/go.mod" \
  "$here/etcd/go.sum" "$here/etcd/cmd/etcd/main.go" <(go version) | sha256sum | cut -c1-16)
bin="$cache/$k8s_version-etcd-$etcd_version-$key/bin"
tools=(kubeadm kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet-config-validate etcd etcdctl etcdutl)

complete=true
for t in "${tools[@]}"; do [ -x "$bin/$t" ] || complete=false; done
if $complete; then
  [[ ${1:-} == --check ]] || log "reusing $bin"
  echo "$bin"
  exit 0
fi
if [[ ${1:-} == --check ]]; then
  log "the Kubernetes and etcd binaries are not built for these pins: run test/k8s/build.sh (.ci/run does)"
  exit 3
fi

mkdir -p "$bin"
tmp=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)

export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
minor=${k8s_version#v1.}
minor=${minor%%.*}
# The same version stamps Kubernetes' hack/lib/version.sh writes: kubeadm compares its own version
# with the kubernetesVersion it is asked to deploy and refuses a control plane newer than itself.
ldflags="-s -w"
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

log "building Kubernetes $k8s_version (kubeadm, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl)"
(cd "$here/kubernetes" && go build -trimpath -ldflags "$ldflags" -o "$tmp/" \
  k8s.io/kubernetes/cmd/kubeadm k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler \
  k8s.io/kubernetes/cmd/kubectl ./cmd/kubelet-config-validate)

log "building etcd $etcd_version (etcd, etcdctl, etcdutl)"
# etcd's modules end in /v3, so each binary is named explicitly.
(cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" ./cmd/etcd \
  && go build -trimpath -ldflags "-s -w" -o "$tmp/etcdctl" go.etcd.io/etcd/etcdctl/v3 \
  && go build -trimpath -ldflags "-s -w" -o "$tmp/etcdutl" go.etcd.io/etcd/etcdutl/v3)

for t in "${tools[@]}"; do mv "$tmp/$t" "$bin/$t"; done
# Builds for older pins are dead weight (about 450 MB each).
for old in "$cache"/*/; do [[ ${old%/} == "${bin%/bin}" ]] || rm -rf "$old"; done
log "built in $(( $(date +%s) - start )) s; $(du -sh "$bin" | cut -f1) in $bin"
echo "$bin"
