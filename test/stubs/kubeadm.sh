#!/usr/bin/env bash
# init/join fail the first $STUB_KUBEADM_INIT_FAILS / $STUB_KUBEADM_JOIN_FAILS times (or "always"),
# leaving the leftovers of a half-done run. Each init/join appends to $STUB_STATE/kubeadm-state.log
# what it saw: the join lock's holder, whether the CA key is on disk, whether its config holds the
# fetched bootstrap token (yes) or one `token create` printed (own). reset empties the certificates directory, as the real one does. A successful
# init or join writes kubelet.conf, and init admin.conf, as the real one does.
# shellcheck source=stub-lib.sh
source "${BASH_SOURCE[0]%/*}/stub-lib.sh"
stub_record "$@"
kube=${KUBERNETES_DIR:?}

leftovers() {
  mkdir -p "$kube/manifests" "${KUBEADM_HA_ETCD_DATA_DIR:?}/member"
  touch "$kube/manifests/etcd.yaml" "$kube/kubelet.conf"
}

state() {
  local config=$1 holder=none
  if [[ -f $STUB_STATE/lease.json ]]; then
    holder=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["spec"]["holderIdentity"])' "$STUB_STATE/lease.json")
  fi
  printf '%s lease-holder=%s ca-key=%s token=%s placeholder=%s\n' "$2" "$holder" \
    "$([[ -f $kube/pki/ca.key ]] && echo yes || echo no)" \
    "$(if grep -q "${STUB_TOKEN:?}" "$config"; then echo yes; elif grep -q "${STUB_NEW_TOKEN:-qrstuv.0123456789qrstuv}" "$config"; then echo own; else echo no; fi)" \
    "$(grep -q "${TOKEN_PLACEHOLDER:?}" "$config" && echo yes || echo no)" >>"$STUB_STATE/kubeadm-state.log"
}

case "$1 ${2:-}" in
  "token create")
    # Needs a kubeconfig, as the real one does; prints a fresh token of kubeadm's form.
    [[ $3 == --kubeconfig && -f $4 ]] || { echo "kubeadm stub: token create needs --kubeconfig <file>" >&2 && exit 2; }
    echo "${STUB_NEW_TOKEN:-qrstuv.0123456789qrstuv}"
    ;;
  "kubeconfig user")
    printf 'apiVersion: v1\nkind: Config\n# fake credentials for %s\n' "$*"
    ;;
  "init phase")
    # `init phase certs etcd-healthcheck-client --config F` (etcd-rejoin.sh): needs the etcd CA, as
    # the real one does, and writes $STUB_STATE/healthcheck-client.{crt,key} (a test may sign a real
    # pair) or placeholders.
    [[ "$3 $4 $5" == "certs etcd-healthcheck-client --config" && -f $6 ]] || exit 2
    [[ -f $kube/pki/etcd/ca.crt && -f $kube/pki/etcd/ca.key ]] || { echo "error: failure loading etcd/ca certificate authority" >&2 && exit 1; }
    for f in crt key; do
      if [[ -f $STUB_STATE/healthcheck-client.$f ]]; then cp "$STUB_STATE/healthcheck-client.$f" "$kube/pki/etcd/healthcheck-client.$f"; else echo "FAKE HEALTHCHECK $f" >"$kube/pki/etcd/healthcheck-client.$f"; fi
    done
    ;;
  "init "* | "join "*)
    [[ $2 == --config ]] || exit 2
    state "$3" "$1"
    setting=STUB_KUBEADM_${1^^}_FAILS
    if stub_fails "${!setting:-}" "$(stub_count "kubeadm-$1")"; then
      leftovers
      echo "error execution phase: fake kubeadm $1 failure" >&2
      exit 1
    fi
    mkdir -p "$kube"
    printf 'apiVersion: v1\nkind: Config\n# fake kubelet credentials\n' >"$kube/kubelet.conf"
    if [[ $1 == init ]]; then printf 'apiVersion: v1\nkind: Config\n# fake cluster-admin\n' >"$kube/admin.conf"; fi
    ;;
  "reset -f")
    rm -rf "${kube:?}/pki" "$kube/kubelet.conf" "$kube/admin.conf"
    ;;
  *)
    echo "kubeadm stub: unexpected arguments: $*" >&2
    exit 2
    ;;
esac
