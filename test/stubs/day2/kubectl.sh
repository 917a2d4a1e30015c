#!/usr/bin/env bash
# kubectl for day2.sh (test/day2-script.test.ts): the Node from $STUB_STATE/node.json, the
# kubeadm-config ConfigMap from $STUB_STATE/kubeadm-config.json (`replace -f -` stores what it is
# sent), drain, uncordon and delete node recorded. `drain` fails while $STUB_STATE/drain-fails exists.
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
case "${args[*]}" in
  "get node "*" -o json")
    [[ -f $STUB_STATE/node.json ]] || { echo "Error from server (NotFound): nodes \"${args[2]}\" not found" >&2 && exit 1; }
    cat "$STUB_STATE/node.json"
    ;;
  "get configmap kubeadm-config -o json") cat "$STUB_STATE/kubeadm-config.json" ;;
  "get configmap kubeadm-config -o jsonpath={.data.ClusterConfiguration}")
    python3 -c 'import json, sys; sys.stdout.write(json.load(open(sys.argv[1]))["data"]["ClusterConfiguration"])' "$STUB_STATE/kubeadm-config.json"
    ;;
  "replace -f -") cat >"$STUB_STATE/kubeadm-config.json" ;;
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
