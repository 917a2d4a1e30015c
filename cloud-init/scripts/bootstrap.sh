#!/usr/bin/env bash
# First-boot entry point (cloud-init runcmd): prepares the host, fetches the secrets, then runs
# `kubeadm init` on the first control-plane node, `kubeadm join` on the other masters and workers,
# and starts the etcd static pod on an external etcd member.
#
# Ordering follows Cluster API's kubeadm bootstrap (one init; control-plane joins one at a time,
# because concurrent etcd member additions fail) and Kubespray (`kubeadm reset` and retry after a
# failed join). Without a management cluster the one-at-a-time lock is a Lease in the cluster
# itself: creation is atomic, so whoever creates it holds it.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "${BASH_SOURCE[0]%/*}/lib.sh"
init_paths

if [[ -e $KUBERNETES_DIR/kubelet.conf ]]; then
  log "$KUBERNETES_DIR/kubelet.conf exists: this node already joined the cluster, nothing to do"
  exit 0
fi
load_env
if [[ $NODE_ROLE == etcd && -e $KUBERNETES_DIR/manifests/etcd.yaml ]]; then
  log "$KUBERNETES_DIR/manifests/etcd.yaml exists: this etcd member is already set up, nothing to do"
  exit 0
fi
log "bootstrapping $NODE_NAME: role=$NODE_ROLE init_node=$INIT_NODE kubernetes=$KUBERNETES_VERSION api=${API_ENDPOINT:-none}"

readonly LEASE=kubeadm-ha-control-plane-join
SYSTEMD_DIR=${SYSTEMD_DIR:-/etc/systemd/system}
ETCD_HEALTH_URL=${ETCD_HEALTH_URL:-http://127.0.0.1:2381/health}
JOINER_KUBECONFIG=$KUBEADM_HA_RUN/joiner.conf
LOCK_TRIED=false
trap 'exit 130' INT
trap 'exit 143' TERM

"$BASH" "$KUBEADM_HA_LIB/install.sh"
"$BASH" "$KUBEADM_HA_LIB/fetch-secrets.sh"

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

release_join_lock() {
  local lease holder age
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

# What `kubeadm reset` asks the operator to clean up, so the next attempt starts from scratch.
reset_node() {
  log "resetting the node with kubeadm reset"
  kubeadm reset -f || log "WARNING: kubeadm reset failed; cleaning up by hand"
  if [[ $NODE_ROLE == control-plane ]]; then
    if [[ -d $KUBERNETES_DIR/manifests ]]; then
      find "$KUBERNETES_DIR/manifests" -mindepth 1 -delete
    fi
    rm -rf "$KUBEADM_HA_ETCD_DATA_DIR"
  fi
  rm -f "$KUBERNETES_DIR/kubelet.conf" "$KUBERNETES_DIR/bootstrap-kubelet.conf"
}

# kubeadm init checks every external etcd endpoint in preflight, and the etcd machines boot
# alongside the masters. etcd's /health answers 200 only while the cluster has a leader.
wait_for_external_etcd() {
  local pki=$KUBERNETES_DIR/pki endpoint
  for endpoint in ${ETCD_ENDPOINTS//,/ }; do
    poll_until "etcd at $endpoint" "$EXIT_ETCD_TIMEOUT" curl --silent --show-error --fail --max-time 10 --output /dev/null \
      --cacert "$pki/etcd/ca.crt" --cert "$pki/apiserver-etcd-client.crt" --key "$pki/apiserver-etcd-client.key" "$endpoint/health"
  done
}

# run_kubeadm init|join: retries with reset and linear back-off, as Kubespray does.
run_kubeadm() {
  local phase=$1 attempt=1 rc backoff
  while true; do
    if [[ $phase == init && $ETCD_TOPOLOGY == external ]]; then wait_for_external_etcd; fi
    if [[ $phase == join ]]; then
      wait_for_api
      if [[ $NODE_ROLE == control-plane ]]; then acquire_join_lock; fi
    fi
    log "kubeadm $phase: attempt $attempt/$KUBEADM_HA_JOIN_ATTEMPTS"
    rc=0
    if [[ $phase == init ]]; then
      kubeadm init --config "$KUBEADM_HA_RUN/init.yaml" --skip-token-print || rc=$?
    else
      kubeadm join --config "$KUBEADM_HA_RUN/join.yaml" || rc=$?
    fi
    if ((rc == 0)); then
      log "kubeadm $phase succeeded on attempt $attempt"
      return 0
    fi
    log "kubeadm $phase failed with exit code $rc on attempt $attempt/$KUBEADM_HA_JOIN_ATTEMPTS"
    # Also after the last attempt: a half-joined node would otherwise leave kubelet.conf behind
    # and be taken for a joined one on the next boot.
    reset_node
    if ((attempt >= KUBEADM_HA_JOIN_ATTEMPTS)); then
      die "$EXIT_GAVE_UP" "giving up: kubeadm $phase failed $attempt times; the node has been reset (see kubeadm's output above)"
    fi
    backoff=$((KUBEADM_HA_BACKOFF_SECONDS * attempt))
    log "retrying kubeadm $phase in ${backoff}s"
    sleep "$backoff"
    # kubeadm reset empties the certificates directory.
    "$BASH" "$KUBEADM_HA_LIB/fetch-secrets.sh"
    attempt=$((attempt + 1))
  done
}

# Only transport failures (no DNS, refused, timed out, reset before TLS) mean "no API yet". An
# HTTP error or a TLS failure means something answers: initialising then would fork the cluster.
api_absent() {
  local i rc
  for ((i = 1; i <= KUBEADM_HA_INIT_PROBES; i++)); do
    rc=0
    api_ready 2>/dev/null || rc=$?
    case $rc in
      6 | 7 | 28 | 35 | 52 | 56) log "probe $i/$KUBEADM_HA_INIT_PROBES: no API at https://$API_ENDPOINT (curl exit $rc)" ;;
      *)
        log "probe $i/$KUBEADM_HA_INIT_PROBES: https://$API_ENDPOINT answers (curl exit $rc)"
        return 1
        ;;
    esac
    if ((i < KUBEADM_HA_INIT_PROBES)); then sleep "$KUBEADM_HA_POLL_SECONDS"; fi
  done
}

# An external etcd member is a static pod under a kubelet with no API server, as in kubeadm's
# guide (https://kubernetes.io/docs/setup/production-environment/tools/kubeadm/setup-ha-etcd-with-kubeadm/):
# a drop-in replaces the kubeadm package's kubelet command line with the rendered configuration.
start_etcd_member() {
  local dropin=$SYSTEMD_DIR/kubelet.service.d/20-etcd-service-manager.conf manifest=$KUBERNETES_DIR/manifests/etcd.yaml
  mkdir -p "${dropin%/*}" "${manifest%/*}" "$KUBEADM_HA_ETCD_DATA_DIR"
  printf '%s\n' '[Service]' 'ExecStart=' "ExecStart=/usr/bin/kubelet --config=$KUBEADM_HA_ETC/kubelet-etcd.yaml" 'Restart=always' >"$dropin"
  chmod 0700 "$KUBEADM_HA_ETCD_DATA_DIR"
  # Last, with the certificates in place: the kubelet starts etcd as soon as the manifest appears.
  install -m 0600 "$KUBEADM_HA_ETC/etcd.yaml" "$manifest.tmp" && mv "$manifest.tmp" "$manifest"
  systemctl daemon-reload
  systemctl restart kubelet
  # The first member up waits here for a second one: without a leader /health is not 200.
  poll_until "etcd at $ETCD_HEALTH_URL" "$EXIT_ETCD_TIMEOUT" curl --silent --show-error --fail --max-time 5 --output /dev/null "$ETCD_HEALTH_URL"
}

if [[ $NODE_ROLE == etcd ]]; then
  mode=etcd-member
  start_etcd_member
elif [[ $INIT_NODE == true ]] && api_absent; then
  mode=init
  log "first control-plane node and no API answers: initialising the cluster"
  run_kubeadm init
elif [[ $NODE_ROLE == control-plane ]]; then
  mode=control-plane-join
  if [[ $INIT_NODE == true ]]; then
    log "first control-plane node, but the cluster exists (this node replaces it): joining"
  fi
  # Released however the script ends; a failed release must not mask the script's exit code.
  trap 'rc=$?; release_join_lock || true; exit "$rc"' EXIT
  run_kubeadm join
else
  mode=worker-join
  run_kubeadm join
fi
log "bootstrap complete: $mode"
