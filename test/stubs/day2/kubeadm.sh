#!/usr/bin/env bash
# kubeadm for day2.sh (test/day2-script.test.ts). `upgrade apply vX` stores vX in the kubeadm-config
# ConfigMap ($STUB_STATE/kubeadm-config.json) and `upgrade apply`/`upgrade node` set the API server's
# image tag in this machine's manifest to the stored version, as the real ones render it; both fail
# while $STUB_STATE/upgrade-fails exists. `reset` removes the manifests and kubelet.conf. `kubeconfig
# user` prints a fake kubeconfig (the join lock's credential). An upgrade takes STUB_UPGRADE_SECONDS
# (default 0), as a real one waits for each static pod.
# shellcheck source=../stub-lib.sh
source "${BASH_SOURCE[0]%/*}/stub-lib.sh"
stub_record "$@"
kube=${KUBERNETES_DIR:?}
stored() { python3 -c 'import json, sys, yaml; print(yaml.safe_load(json.load(open(sys.argv[1]))["data"]["ClusterConfiguration"])["kubernetesVersion"])' "$STUB_STATE/kubeadm-config.json"; }
render() { sed -i -E "s#(kube-apiserver:)v[0-9.]+#\\1$1#" "$kube/manifests/kube-apiserver.yaml"; }
if [[ $1 == upgrade ]]; then sleep "${STUB_UPGRADE_SECONDS:-0}"; fi
case "$1 ${2:-}" in
  "upgrade apply")
    [[ ! -f $STUB_STATE/upgrade-fails ]] || { echo "[upgrade] FATAL: fake failure" >&2 && exit 1; }
    python3 -c '
import json, sys, yaml
p = sys.argv[1]
cm = json.load(open(p))
c = yaml.safe_load(cm["data"]["ClusterConfiguration"])
c["kubernetesVersion"] = sys.argv[2]
cm["data"]["ClusterConfiguration"] = yaml.safe_dump(c)
json.dump(cm, open(p, "w"))' "$STUB_STATE/kubeadm-config.json" "$3"
    render "$3"
    ;;
  "upgrade node")
    [[ ! -f $STUB_STATE/upgrade-fails ]] || { echo "[upgrade] FATAL: fake failure" >&2 && exit 1; }
    render "$(stored)"
    ;;
  "kubeconfig user") printf 'apiVersion: v1\nkind: Config\n# fake credentials for %s\n' "$*" ;;
  "reset -f") rm -rf "${kube:?}/manifests" "$kube/kubelet.conf" "$kube/admin.conf" ;;
  *)
    echo "kubeadm stub: unexpected arguments: $*" >&2
    exit 2
    ;;
esac
