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

SYSTEMD_DIR=${SYSTEMD_DIR:-/etc/systemd/system}
ETCD_HEALTH_URL=${ETCD_HEALTH_URL:-http://127.0.0.1:2381/health}
trap 'exit 130' INT
trap 'exit 143' TERM
# A worker held by its group's launch hook reports a failed bootstrap at once, so the group
# replaces the machine now rather than at the hook's timeout (which remains the backstop for a
# failure this cannot report, such as a missing AWS CLI).
if [[ $NODE_ROLE == worker && -n ${LAUNCH_HOOK:-} ]]; then
  trap 'rc=$?; if ((rc != 0)); then "$BASH" "$KUBEADM_HA_LIB/node-ready.sh" failed || true; fi; exit "$rc"' EXIT
fi

if [[ $NODE_ROLE == control-plane ]]; then
  # shellcheck source-path=SCRIPTDIR source=join-lock.sh
  source "$KUBEADM_HA_LIB/join-lock.sh"
fi

"$BASH" "$KUBEADM_HA_LIB/install.sh"
"$BASH" "$KUBEADM_HA_LIB/fetch-secrets.sh"

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

# The bootstrap token in the control plane's secret lives only joinTokenTtlHours after `kubeadm init`
# (cloud-init/kubeadm.ts); a master joining later mints its own, valid one hour, with the credential
# it signed for the join lock (join-lock.sh), and renders it into its join document as
# fetch-secrets.sh renders a fetched one.
use_own_join_token() {
  local token
  token=$(kubeadm token create --kubeconfig "$JOINER_KUBECONFIG" --ttl 1h --description "kubeadm-ha: $NODE_NAME joining the control plane") ||
    die "$EXIT_GAVE_UP" "kubeadm could not create a bootstrap token for this master's join"
  [[ $token =~ ^[a-z0-9]{6}\.[a-z0-9]{16}$ ]] || die "$EXIT_GAVE_UP" "kubeadm token create printed no token"
  (umask 077 && TOKEN=$token python3 -c 'import os, sys; e = os.environ
sys.stdout.write(open(e["KUBEADM_HA_ETC"] + "/join.yaml").read().replace(e["TOKEN_PLACEHOLDER"], e["TOKEN"]))' >"$KUBEADM_HA_RUN/join.yaml")
  log "joining with a bootstrap token of its own (${token%%.*}, valid 1h)"
}

# run_kubeadm init|join: retries with reset and linear back-off, as Kubespray does.
run_kubeadm() {
  local phase=$1 attempt=1 rc backoff
  while true; do
    if [[ $phase == init && $ETCD_TOPOLOGY == external ]]; then wait_for_external_etcd; fi
    if [[ $phase == join ]]; then
      wait_for_api
      if [[ $NODE_ROLE == control-plane ]]; then
        acquire_join_lock
        use_own_join_token
        delete_stale_node
        # A replacement removes its dead predecessor's etcd member; kubeadm join adds it anew.
        if [[ $ETCD_TOPOLOGY == stacked ]]; then "$BASH" "$KUBEADM_HA_LIB/etcd-rejoin.sh"; fi
      fi
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
  # A replacement takes its dead predecessor's place in the membership (and starts as `existing`).
  "$BASH" "$KUBEADM_HA_LIB/etcd-rejoin.sh"
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
  # Only after a fresh init: a replacement master 0 joins a cluster whose add-ons are installed.
  if [[ -f $KUBEADM_HA_ETC/addons/releases ]]; then "$BASH" "$KUBEADM_HA_LIB/addons.sh"; fi
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
  if [[ -n ${LAUNCH_HOOK:-} ]]; then
    # node-ready.sh reports either outcome itself.
    trap - EXIT
    "$BASH" "$KUBEADM_HA_LIB/node-ready.sh" ready
  fi
fi
# Snapshots start once the member runs: before, every run would fail.
if [[ -n ${BACKUP_BUCKET:-} ]]; then systemctl enable --now kubeadm-ha-etcd-backup.timer; fi
# Day 2, once this machine is part of the cluster: certificate renewal on masters and etcd members,
# join token rotation on masters (cert-renew.sh, token-rotate.sh).
if [[ $NODE_ROLE != worker ]]; then systemctl enable --now kubeadm-ha-cert-renew.timer; fi
if [[ $NODE_ROLE == control-plane ]]; then systemctl enable --now kubeadm-ha-token-rotate.timer; fi
log "bootstrap complete: $mode"
