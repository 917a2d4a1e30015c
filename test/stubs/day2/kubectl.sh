#!/usr/bin/env bash
# kubectl for day2.sh (test/day2-script.test.ts): the Node from $STUB_STATE/node.json, the
# kubeadm-config ConfigMap from $STUB_STATE/kubeadm-config.json (`replace -f -` stores what it is
# sent), drain, uncordon and delete node recorded. `drain` fails while $STUB_STATE/drain-fails exists.
# The join lock's Lease (join-lock.sh) lives in $STUB_STATE/lease.json: create fails with
# AlreadyExists while it exists; replace of a Lease stores it (test/stubs/kubectl.sh models the
# compare-and-swap).
# shellcheck source=../stub-lib.sh
source "${BASH_SOURCE[0]%/*}/stub-lib.sh"
stub_record "$@"
args=()
while (($#)); do
  case $1 in
    --kubeconfig)
      [[ -s $2 ]] || { echo "kubectl stub: kubeconfig $2 is missing" >&2 && exit 1; }
      shift 2
      ;;
    -n) shift 2 ;;
    --request-timeout=*) shift ;;
    *) args+=("$1") && shift ;;
  esac
done
lease=$STUB_STATE/lease.json
lease_not_found() {
  echo "Error from server (NotFound): leases.coordination.k8s.io \"kubeadm-ha-control-plane-join\" not found" >&2
  exit 1
}
case "${args[*]}" in
  "create -f -")
    if [[ -f $lease ]]; then
      echo "Error from server (AlreadyExists): error when creating \"STDIN\": leases.coordination.k8s.io \"kubeadm-ha-control-plane-join\" already exists" >&2
      exit 1
    fi
    cat >"$lease"
    ;;
  "get lease kubeadm-ha-control-plane-join -o json")
    [[ -f $lease ]] || lease_not_found
    cat "$lease"
    ;;
  "delete lease kubeadm-ha-control-plane-join")
    [[ -f $lease ]] || lease_not_found
    rm "$lease"
    ;;
  "get node "*" -o json")
    [[ -f $STUB_STATE/node.json ]] || { echo "Error from server (NotFound): nodes \"${args[2]}\" not found" >&2 && exit 1; }
    cat "$STUB_STATE/node.json"
    ;;
  "get configmap kubeadm-config -o json") cat "$STUB_STATE/kubeadm-config.json" ;;
  "get configmap kubeadm-config -o jsonpath={.data.ClusterConfiguration}")
    python3 -c 'import json, sys; sys.stdout.write(json.load(open(sys.argv[1]))["data"]["ClusterConfiguration"])' "$STUB_STATE/kubeadm-config.json"
    ;;
  "replace -f -")
    doc=$(cat)
    if [[ $(python3 -c 'import json, sys; print(json.loads(sys.argv[1]).get("kind", ""))' "$doc") == Lease ]]; then
      [[ -f $lease ]] || lease_not_found
      printf '%s' "$doc" >"$lease"
    else
      printf '%s' "$doc" >"$STUB_STATE/kubeadm-config.json"
    fi
    ;;
  "drain "*)
    if [[ -f $STUB_STATE/drain-fails ]]; then
      echo "error: cannot evict pod as it would violate the pod's disruption budget" >&2
      exit 1
    fi
    ;;
  "uncordon "* | "delete node "*) ;;
  *)
    echo "kubectl stub: unexpected arguments: ${args[*]}" >&2
    exit 2
    ;;
esac
