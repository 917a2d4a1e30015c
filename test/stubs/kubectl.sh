#!/usr/bin/env bash
# A one-object API server: the Lease lives in $STUB_STATE/lease.json. create fails with
# AlreadyExists while it exists; replace is a compare-and-swap on metadata.resourceVersion.
# With STUB_LEASE_RELEASED_AFTER_GETS=N, the Nth `get` finds that its holder released the lease.
# With STUB_LEASE_TAKEN_BY=HOLDER, HOLDER wins the race for the first replace: the lease is now
# theirs, freshly renewed, and the replace fails with Conflict.
# The documents sent on stdin are appended to $STUB_STATE/kubectl-stdin.log.
# `apply -f FILE` fails the first $STUB_KUBECTL_APPLY_FAILS times (or "always"); each call appends
# the file and the KUBECONFIG it would use to $STUB_STATE/kubectl-apply.log.
# shellcheck source=stub-lib.sh
source "${BASH_SOURCE[0]%/*}/stub-lib.sh"
stub_record "$@"
lease=$STUB_STATE/lease.json
args=()
while (($#)); do
  case $1 in
    --kubeconfig)
      [[ -s $2 ]] || { echo "kubectl stub: kubeconfig $2 is missing" >&2 && exit 1; }
      shift
      ;;
    -n) shift ;;
    --request-timeout=*) ;;
    *) args+=("$1") ;;
  esac
  shift
done
not_found() {
  echo "Error from server (NotFound): leases.coordination.k8s.io \"kubeadm-ha-control-plane-join\" not found" >&2
  exit 1
}
store() {
  python3 -c '
import json, sys
doc = json.loads(sys.argv[1])
doc["metadata"]["resourceVersion"] = sys.argv[2]
doc["metadata"].setdefault("creationTimestamp", "2025-01-01T00:00:00Z")
json.dump(doc, open(sys.argv[3], "w"))' "$1" "$2" "$lease"
}
case "${args[*]}" in
  "create -f -")
    doc=$(cat)
    printf 'create %s\n' "$doc" >>"$STUB_STATE/kubectl-stdin.log"
    if [[ -f $lease ]]; then
      echo "Error from server (AlreadyExists): error when creating \"STDIN\": leases.coordination.k8s.io \"kubeadm-ha-control-plane-join\" already exists" >&2
      exit 1
    fi
    store "$doc" 1
    ;;
  "replace -f -")
    doc=$(cat)
    printf 'replace %s\n' "$doc" >>"$STUB_STATE/kubectl-stdin.log"
    [[ -f $lease ]] || not_found
    rv=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["metadata"]["resourceVersion"])' "$lease")
    sent=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["metadata"].get("resourceVersion", ""))' "$doc")
    if [[ -n ${STUB_LEASE_TAKEN_BY:-} && $(stub_count kubectl-replace) == 1 ]]; then
      store "$(python3 -c '
import datetime, json, sys
doc = json.load(open(sys.argv[1]))
doc["spec"]["holderIdentity"] = sys.argv[2]
doc["spec"]["renewTime"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
print(json.dumps(doc))' "$lease" "$STUB_LEASE_TAKEN_BY")" $((rv + 1))
      sent=stolen
    fi
    if [[ $sent != "$rv" ]]; then
      echo "Error from server (Conflict): Operation cannot be fulfilled on leases.coordination.k8s.io \"kubeadm-ha-control-plane-join\": the object has been modified" >&2
      exit 1
    fi
    store "$doc" $((rv + 1))
    ;;
  "get lease kubeadm-ha-control-plane-join -o json")
    n=$(stub_count kubectl-get)
    [[ ${STUB_LEASE_RELEASED_AFTER_GETS:-} == "$n" ]] && rm -f "$lease"
    [[ -f $lease ]] || not_found
    cat "$lease"
    ;;
  "delete lease kubeadm-ha-control-plane-join")
    [[ -f $lease ]] || not_found
    rm "$lease"
    ;;
  "get node "*" -o jsonpath={.status.conditions[?(@.type==\"Ready\")].status}")
    # The node's Ready status from $STUB_STATE/node-ready (True, False, Unknown); no file: no node.
    # With STUB_NODE_READY_AFTER_GETS=N, the Nth get finds the node Ready.
    if [[ ${STUB_NODE_READY_AFTER_GETS:-} == "$(stub_count kubectl-get-node)" ]]; then printf 'True' >"$STUB_STATE/node-ready"; fi
    [[ -f $STUB_STATE/node-ready ]] || { echo "Error from server (NotFound): nodes \"${args[2]}\" not found" >&2 && exit 1; }
    printf '%s' "$(<"$STUB_STATE/node-ready")"
    ;;
  "delete node "*" --ignore-not-found")
    rm -f "$STUB_STATE/node-ready"
    ;;
  "apply -f "*)
    printf '%s kubeconfig=%s\n' "${args[2]}" "${KUBECONFIG:-unset}" >>"$STUB_STATE/kubectl-apply.log"
    if stub_fails "${STUB_KUBECTL_APPLY_FAILS:-}" "$(stub_count kubectl-apply)"; then
      echo "error: unable to recognize \"${args[2]}\": fake failure" >&2
      exit 1
    fi
    ;;
  *)
    echo "kubectl stub: unexpected arguments: ${args[*]}" >&2
    exit 2
    ;;
esac
