# shellcheck shell=bash
# etcdctl and etcdutl for the scripts that manage this machine's etcd member (rejoin, backup,
# restore), sourced after lib.sh on machines that hold a member: stacked masters and external etcd
# members. They run from the etcd image the member itself runs (kubeadm's pinned image, ETCD_IMAGE),
# through containerd, so there is no second etcd download to pin and verify. ETCDCTL and ETCDUTL
# name local binaries instead (the tests use Debian's etcd-client).

# The member's client and peer URLs from ETCD_MEMBERS (`name=https://ip:2380,...`, etcd's
# --initial-cluster): prints `name client-url peer-url` per member, in order.
etcd_members() {
  local entry name peer
  [[ -n ${ETCD_MEMBERS:-} ]] || die "$EXIT_CONFIG" "ETCD_MEMBERS is not set in $KUBEADM_HA_ETC/node.env"
  for entry in ${ETCD_MEMBERS//,/ }; do
    name=${entry%%=*}
    peer=${entry#*=}
    [[ $peer =~ ^https://[0-9.]+:2380$ ]] || die "$EXIT_CONFIG" "ETCD_MEMBERS entry '$entry' is not name=https://<ip>:2380"
    printf '%s %s %s\n' "$name" "${peer%:2380}:2379" "$peer"
  done
}

# This machine's client certificate for etcdctl: an external member uses its server pair (issued
# with client_auth, as kubeadm's is); a master uses kubeadm's etcd healthcheck-client pair.
etcd_client_env() {
  local pki=$KUBERNETES_DIR/pki/etcd
  # No ETCDCTL_API: v3 is etcdctl's only API since 3.4 (kubeadm pins 3.5 and 3.6), and 3.6 warns
  # about the variable on stderr, which the scripts read for etcd's answers.
  export ETCDCTL_CACERT=$pki/ca.crt ETCDCTL_DIAL_TIMEOUT=${ETCDCTL_DIAL_TIMEOUT:-5s}
  if [[ $NODE_ROLE == etcd ]]; then
    export ETCDCTL_CERT=$pki/server.crt ETCDCTL_KEY=$pki/server.key
  else
    export ETCDCTL_CERT=$pki/healthcheck-client.crt ETCDCTL_KEY=$pki/healthcheck-client.key
  fi
}

# etcd_tool etcdctl|etcdutl ARGS...: runs the tool with the ETCDCTL_* environment. In the
# container, the PKI and KUBEADM_HA_RUN (where snapshots are written) are the host's own paths.
etcd_tool() {
  local tool=$1 local_bin
  shift
  if [[ $tool == etcdctl ]]; then local_bin=${ETCDCTL:-}; else local_bin=${ETCDUTL:-}; fi
  if [[ -n $local_bin ]]; then
    "$local_bin" "$@"
    return
  fi
  [[ -n ${ETCD_IMAGE:-} ]] || die "$EXIT_CONFIG" "ETCD_IMAGE is not set in $KUBEADM_HA_ETC/node.env"
  ctr -n k8s.io image ls -q | grep -qxF "$ETCD_IMAGE" || ctr -n k8s.io image pull "$ETCD_IMAGE" >/dev/null
  mkdir -p "$KUBEADM_HA_RUN"
  local work_mount=()
  # Snapshots live on disk (etcd-backup.sh, etcd-restore.sh), never under /run, which is RAM: a
  # snapshot can be gigabytes.
  if [[ -n ${ETCD_TOOL_WORK_DIR:-} ]]; then work_mount=(--mount "type=bind,src=$ETCD_TOOL_WORK_DIR,dst=$ETCD_TOOL_WORK_DIR,options=rbind:rw"); fi
  ctr -n k8s.io run --rm --net-host \
    --mount "type=bind,src=$KUBERNETES_DIR/pki/etcd,dst=$KUBERNETES_DIR/pki/etcd,options=rbind:ro" \
    --mount "type=bind,src=$KUBEADM_HA_RUN,dst=$KUBEADM_HA_RUN,options=rbind:rw" "${work_mount[@]}" \
    --env "ETCDCTL_CACERT=${ETCDCTL_CACERT:-}" --env "ETCDCTL_CERT=${ETCDCTL_CERT:-}" \
    --env "ETCDCTL_KEY=${ETCDCTL_KEY:-}" --env "ETCDCTL_DIAL_TIMEOUT=${ETCDCTL_DIAL_TIMEOUT:-5s}" \
    "$ETCD_IMAGE" "kubeadm-ha-$tool-$$-$RANDOM" "$tool" "$@"
}

etcdctl_run() { etcd_tool etcdctl "$@"; }

# The tool of offline snapshot commands (status, restore): etcdutl since etcd 3.5, whose etcdctl
# deprecates them (3.6 removed them); etcdctl when only a local etcdctl is named.
etcd_snapshot_tool() { if [[ -n ${ETCDCTL:-} && -z ${ETCDUTL:-} ]]; then echo etcdctl; else echo etcdutl; fi; }

# --- The etcd members' lock: a key that exists while its lease lives ---
# Every step that restarts an external member's etcd takes it (cert-renew.sh, day2.sh
# etcd-manifest), so two members never restart together: with 3 members that would cost the quorum.
# Masters take the join lock (join-lock.sh) instead, which lives in the API their restarts serve.
# The key keeps the name of its first user: a member whose cert-renew.sh predates day2.sh's use of
# it still excludes the rollout, and the other way round.
ETCD_LOCK_KEY=/kubeadm-ha/locks/cert-renew
ETCD_LOCK_LEASE=
ETCD_LOCK_ENDPOINTS=
etcd_lock() {
  local deadline=$((SECONDS + KUBEADM_HA_WAIT_SECONDS)) out
  ETCD_LOCK_ENDPOINTS=$(etcd_members | awk '{print $2}' | paste -sd, -)
  while true; do
    ETCD_LOCK_LEASE=$(etcdctl_run --endpoints="$ETCD_LOCK_ENDPOINTS" lease grant "$KUBEADM_HA_LOCK_STALE_SECONDS" | awk '/granted/ {print $2}') || ETCD_LOCK_LEASE=
    if [[ -n $ETCD_LOCK_LEASE ]]; then
      # Created only if no other member holds it: one compare-and-swap, atomic in etcd.
      out=$(printf 'create("%s") = "0"\n\nput --lease=%s %s %s\n\n\n' "$ETCD_LOCK_KEY" "$ETCD_LOCK_LEASE" "$ETCD_LOCK_KEY" "$NODE_NAME" | etcdctl_run --endpoints="$ETCD_LOCK_ENDPOINTS" txn) || out=
      if [[ $out == SUCCESS* ]]; then
        log "holding the etcd members' lock ($ETCD_LOCK_KEY, lease $ETCD_LOCK_LEASE)"
        return 0
      fi
      etcdctl_run --endpoints="$ETCD_LOCK_ENDPOINTS" lease revoke "$ETCD_LOCK_LEASE" &>/dev/null || true
      ETCD_LOCK_LEASE=
    fi
    ((SECONDS < deadline)) || die "$EXIT_LOCK_TIMEOUT" "timed out after ${KUBEADM_HA_WAIT_SECONDS}s waiting for the etcd members' lock $ETCD_LOCK_KEY (held by $(etcdctl_run --endpoints="$ETCD_LOCK_ENDPOINTS" get --print-value-only "$ETCD_LOCK_KEY" 2>/dev/null || echo '?'))"
    log "another member holds the etcd members' lock; waiting"
    sleep "$KUBEADM_HA_POLL_SECONDS"
  done
}
# etcdctl's balancer may first pick a member that is down; another attempt reaches a live one. A
# lease an earlier attempt revoked (its answer lost) is "not found": revoked all the same. etcdctl
# 3.6 can report "revoked" and still exit non-zero when an endpoint of its list is down.
etcd_revoke_lock() {
  local out
  out=$(etcdctl_run --endpoints="$ETCD_LOCK_ENDPOINTS" lease revoke "$ETCD_LOCK_LEASE" 2>&1) || [[ $out == *"requested lease not found"* || $out == *" revoked"* ]] || {
    log "lease revoke $ETCD_LOCK_LEASE: $out"
    return 1
  }
}
etcd_unlock() {
  [[ -n $ETCD_LOCK_LEASE ]] || return 0
  retry 5 1 etcd_revoke_lock || log "WARNING: could not revoke lease $ETCD_LOCK_LEASE; the lock lapses with it after ${KUBEADM_HA_LOCK_STALE_SECONDS}s"
  ETCD_LOCK_LEASE=
}
