# shellcheck shell=bash
# The control-plane join lock, sourced by bootstrap.sh on masters only (workers and etcd members
# never take it, and their user data has no room to spare). Without a management cluster the
# one-at-a-time lock is a Lease in the cluster itself: creation is atomic, so whoever creates it
# holds it. Concurrent etcd member additions fail, which is why masters join one at a time.

readonly LEASE=kubeadm-ha-control-plane-join
JOINER_KUBECONFIG=$KUBEADM_HA_RUN/joiner.conf
LOCK_TRIED=false

# Lease documents are JSON (valid YAML for kubectl) built by python3, never by string templates.
read -r -d '' LEASE_PY <<'PY' || true
import json, os, sys
from datetime import datetime, timezone

now = datetime.now(timezone.utc)
stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # metav1.MicroTime
cmd, holder = sys.argv[1], os.environ["NODE_NAME"]
if cmd == "new":
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": sys.argv[2], "namespace": "kube-system",
                          "labels": {"app.kubernetes.io/managed-by": "kubeadm-ha"}},
             "spec": {"holderIdentity": holder, "acquireTime": stamp, "renewTime": stamp}}
else:
    lease = json.load(sys.stdin)
    spec = lease.setdefault("spec", {})
    if cmd == "inspect":
        last = spec.get("renewTime") or spec.get("acquireTime") or lease["metadata"].get("creationTimestamp")
        age = int((now - datetime.fromisoformat(last.replace("Z", "+00:00"))).total_seconds()) if last else 10**9
        print(age, spec.get("holderIdentity", ""))
        sys.exit(0)
    # "take": keeps metadata.resourceVersion, so `kubectl replace` is a compare-and-swap.
    lease["metadata"].pop("managedFields", None)
    if spec.get("holderIdentity") != holder:
        spec["leaseTransitions"] = spec.get("leaseTransitions", 0) + 1
        spec["acquireTime"] = stamp
    spec["holderIdentity"], spec["renewTime"] = holder, stamp
spec = lease["spec"]
spec["leaseDurationSeconds"] = int(os.environ["KUBEADM_HA_LOCK_STALE_SECONDS"])
json.dump(lease, sys.stdout)
PY

lock_kubectl() { kubectl --kubeconfig "$JOINER_KUBECONFIG" --request-timeout=30s -n kube-system "$@"; }

# The joining master holds the cluster CA key (from the secret store), so it signs itself a
# short-lived cluster-admin credential instead of any long-lived kubeconfig living in user data.
mint_joiner_kubeconfig() {
  python3 -c 'import json, os; e = os.environ; print(json.dumps({
    "apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration",
    "clusterName": e["CLUSTER_NAME"], "kubernetesVersion": "v" + e["KUBERNETES_VERSION"],
    "controlPlaneEndpoint": e["API_ENDPOINT"], "certificatesDir": e["KUBERNETES_DIR"] + "/pki"}))' \
    >"$KUBEADM_HA_RUN/joiner-cluster.yaml"
  (umask 077 && kubeadm kubeconfig user --config "$KUBEADM_HA_RUN/joiner-cluster.yaml" \
    --client-name "kubeadm-ha-joiner:$NODE_NAME" --org kubeadm:cluster-admins --validity-period 1h \
    >"$JOINER_KUBECONFIG") || die 1 "kubeadm could not mint the joiner kubeconfig"
}

# Also refreshes the lease when this node already holds it (before each retry, or after a reboot
# mid-join), so a long series of attempts is not mistaken for a dead holder.
acquire_join_lock() {
  local deadline=$((SECONDS + KUBEADM_HA_WAIT_SECONDS)) out lease holder age
  mint_joiner_kubeconfig
  LOCK_TRIED=true
  while true; do
    if out=$(python3 -c "$LEASE_PY" new "$LEASE" | lock_kubectl create -f - 2>&1); then
      log "acquired join lock lease/$LEASE"
      return 0
    fi
    if [[ $out != *AlreadyExists* ]]; then
      log "could not create lease/$LEASE: $out"
    elif ! lease=$(lock_kubectl get lease "$LEASE" -o json 2>&1); then
      [[ $lease == *NotFound* ]] && continue # released between our create and get: try again now
      log "could not read lease/$LEASE: $lease"
    elif ! read -r age holder < <(python3 -c "$LEASE_PY" inspect <<<"$lease"); then
      log "could not parse lease/$LEASE"
    elif [[ $holder == "$NODE_NAME" || $age -ge $KUBEADM_HA_LOCK_STALE_SECONDS ]]; then
      if [[ $holder == "$NODE_NAME" ]]; then
        log "join lock already held by this node; renewing it"
      else
        log "breaking stale join lock held by '$holder' (last renewed ${age}s ago, limit ${KUBEADM_HA_LOCK_STALE_SECONDS}s)"
      fi
      # Not delete-then-create: two waiters breaking the same stale lease could each delete the
      # other's fresh one. A replace at the observed resourceVersion succeeds only once.
      if out=$(python3 -c "$LEASE_PY" take <<<"$lease" | lock_kubectl replace -f - 2>&1); then
        log "acquired join lock lease/$LEASE"
        return 0
      fi
      log "lost the race for lease/$LEASE: $out"
      continue
    else
      log "join lock held by '$holder' (renewed ${age}s ago); waiting"
    fi
    if ((SECONDS >= deadline)); then
      die "$EXIT_LOCK_TIMEOUT" "timed out after ${KUBEADM_HA_WAIT_SECONDS}s waiting for join lock lease/$LEASE in kube-system"
    fi
    sleep "$KUBEADM_HA_POLL_SECONDS"
  done
}

# A replacement master takes its dead predecessor's node name. kubeadm's join preflight refuses a
# name registered and Ready, and a dead master's Node lingers NotReady with its old labels and taints.
delete_stale_node() {
  local ready
  if ! ready=$(lock_kubectl get node "$NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>&1); then
    [[ $ready == *NotFound* ]] || log "WARNING: could not read node/$NODE_NAME: $ready"
    return 0
  fi
  if [[ $ready == True ]]; then
    log "node/$NODE_NAME exists and is Ready: leaving it"
  elif lock_kubectl delete node "$NODE_NAME" --ignore-not-found >&2; then
    log "deleted node/$NODE_NAME left by the machine this one replaces (Ready: ${ready:-no status})"
  else
    log "WARNING: could not delete stale node/$NODE_NAME"
  fi
}

# A holder's step can outlast the lease: kubeadm upgrade apply waits minutes for each static pod, a
# drain up to its timeout, a renewal's health checks up to KUBEADM_HA_WAIT_SECONDS. Renewed in the
# background every third of its staleness, the lease is never taken for a dead holder's while its
# holder lives; the renewer stops with the holder (checked each round), so a killed holder's lease
# still goes stale.
LOCK_RENEWER=
renew_join_lock() {
  local lease age holder out
  lease=$(lock_kubectl get lease "$LEASE" -o json 2>&1) || { log "WARNING: could not read lease/$LEASE to renew it: $lease" && return 1; }
  read -r age holder < <(python3 -c "$LEASE_PY" inspect <<<"$lease") || return 1
  [[ $holder == "$NODE_NAME" ]] || { log "WARNING: lease/$LEASE is held by '$holder', not this node (last renewed ${age}s ago)" && return 1; }
  out=$(python3 -c "$LEASE_PY" take <<<"$lease" | lock_kubectl replace -f - 2>&1) || { log "WARNING: could not renew lease/$LEASE: $out" && return 1; }
  log "renewed join lock lease/$LEASE"
}
keep_join_lock() {
  local holder=$$ every=$((KUBEADM_HA_LOCK_STALE_SECONDS / 3))
  ((every > 0)) || every=1
  (
    nap=
    trap - EXIT
    # sleep in the background: a TERM from release_join_lock ends the wait at once, and no orphaned
    # sleep keeps the holder's output (SSM Run Command's pipe) open.
    trap 'kill "$nap" 2>/dev/null; exit 0' TERM
    while kill -0 "$holder" 2>/dev/null; do
      sleep "$every" &
      nap=$!
      wait "$nap"
      kill -0 "$holder" 2>/dev/null || break
      renew_join_lock || true
    done
  ) &
  LOCK_RENEWER=$!
}

release_join_lock() {
  local lease holder age
  if [[ -n $LOCK_RENEWER ]]; then
    kill "$LOCK_RENEWER" 2>/dev/null || true
    wait "$LOCK_RENEWER" 2>/dev/null || true
    LOCK_RENEWER=
  fi
  [[ $LOCK_TRIED == true ]] || return 0
  if lease=$(lock_kubectl get lease "$LEASE" -o json 2>/dev/null) &&
    read -r age holder < <(python3 -c "$LEASE_PY" inspect <<<"$lease") && [[ $holder == "$NODE_NAME" ]]; then
    if lock_kubectl delete lease "$LEASE" >/dev/null; then
      log "released join lock lease/$LEASE (held ${age}s since last renewal)"
    else
      log "WARNING: could not delete lease/$LEASE; it goes stale after ${KUBEADM_HA_LOCK_STALE_SECONDS}s"
    fi
  else
    log "join lock is not held by this node; nothing to release"
  fi
  rm -f "$JOINER_KUBECONFIG"
}

