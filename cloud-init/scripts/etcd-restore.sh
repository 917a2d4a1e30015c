#!/usr/bin/env bash
# Brings this machine's etcd member back from a snapshot in the backup bucket. The operator runs it
# on every machine holding a member, with the same key (README, "When a machine dies"):
#   sudo /usr/local/lib/kubeadm-ha/etcd-restore.sh <snapshot key>
# It downloads and verifies the snapshot before touching the member, stops the member, moves its
# data dir aside (kept: <data dir>.before-restore-<UTC timestamp>), restores the snapshot as this
# member of a new cluster of ETCD_MEMBERS, and starts the member again. Any failure after the stop
# puts the old data dir and the member back.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "${BASH_SOURCE[0]%/*}/lib.sh"
# shellcheck source-path=SCRIPTDIR source=etcdctl.sh
source "${BASH_SOURCE[0]%/*}/etcdctl.sh"
load_env
etcd_client_env
[[ -n ${BACKUP_BUCKET:-} ]] || die "$EXIT_CONFIG" "BACKUP_BUCKET is not set in $KUBEADM_HA_ETC/node.env"
(($# == 1)) || die "$EXIT_CONFIG" "usage: ${0##*/} <snapshot key>, as listed by: aws s3 ls --recursive s3://$BACKUP_BUCKET/${BACKUP_PREFIX:-}/"
key=${1#"s3://$BACKUP_BUCKET/"}
[[ $key =~ ^[A-Za-z0-9._/-]+\.db$ && $key != *..* ]] || die "$EXIT_CONFIG" "'$1' is not the key of a snapshot (<prefix>/<member>/<timestamp>.db)"
members=$(etcd_members)
self=$(awk -v n="$NODE_NAME" '$1 == n { print $3 }' <<<"$members")
[[ $self == "https://$NODE_IP:2380" ]] || die "$EXIT_CONFIG" "ETCD_MEMBERS has no member $NODE_NAME=https://$NODE_IP:2380: $ETCD_MEMBERS"

ts=$(date -u +%Y%m%dT%H%M%SZ)
# On the root volume, not under /run (RAM): a snapshot is as large as the member's database.
export ETCD_TOOL_WORK_DIR=${KUBEADM_HA_BACKUP_DIR:-/var/lib/kubeadm-ha/etcd-backup}
workdir=$ETCD_TOOL_WORK_DIR/restore-$ts
data=$KUBEADM_HA_ETCD_DATA_DIR
aside=$data.before-restore-$ts
manifests=$KUBERNETES_DIR/manifests
tool=$(etcd_snapshot_tool)
stopped=()
mkdir -p "$workdir/manifests"
chmod 0700 "$ETCD_TOOL_WORK_DIR"

start_again() {
  local m
  for m in "${stopped[@]}"; do mv "$workdir/manifests/$m" "$manifests/$m"; done
  stopped=()
}
on_exit() {
  local rc=$?
  if ((rc != 0)); then
    if [[ -d $aside && ! -e $data ]]; then
      mv "$aside" "$data"
      log "the old data dir is back in $data"
    fi
    start_again
  fi
  # The snapshot holds every Secret of the cluster.
  rm -rf "$workdir/snapshot.db" "$workdir/data"
  rmdir "$workdir/manifests" "$workdir" 2>/dev/null || true
  exit "$rc"
}
trap on_exit EXIT

retry 3 "$KUBEADM_HA_BACKOFF_SECONDS" aws s3 cp --only-show-errors "s3://$BACKUP_BUCKET/$key" "$workdir/snapshot.db" ||
  die "$EXIT_S3" "download of s3://$BACKUP_BUCKET/$key failed"
info=$(etcd_tool "$tool" snapshot status "$workdir/snapshot.db" -w json) || die "$EXIT_SNAPSHOT" "s3://$BACKUP_BUCKET/$key does not verify: $info"
log "snapshot s3://$BACKUP_BUCKET/$key verified: $info"

# The kubelet stops a static pod whose manifest leaves its directory. A stacked master's API server
# stops too: no API server may run while etcd is restored
# (https://kubernetes.io/docs/tasks/administer-cluster/configure-upgrade-etcd/#restoring-an-etcd-cluster).
for m in etcd.yaml kube-apiserver.yaml; do
  if [[ -f $manifests/$m ]]; then
    mv "$manifests/$m" "$workdir/manifests/$m"
    stopped+=("$m")
  fi
done
port_closed() { ! (exec 3<>"/dev/tcp/$NODE_IP/2379") 2>/dev/null; }
poll_until "etcd on $NODE_IP:2379 to stop" "$EXIT_ETCD_TIMEOUT" port_closed

if [[ -e $data ]]; then
  mv "$data" "$aside"
  log "moved the old data dir aside to $aside"
fi
# One token on every member, derived from the snapshot: the restored members form one new cluster,
# and etcd derives member and cluster IDs from it, so no old member is ever taken for one of them.
token=kubeadm-ha-$CLUSTER_NAME-$(printf '%s' "$key" | sha256sum | cut -c1-16)
etcd_tool "$tool" snapshot restore "$workdir/snapshot.db" --name "$NODE_NAME" --initial-cluster "$ETCD_MEMBERS" \
  --initial-advertise-peer-urls "https://$NODE_IP:2380" --initial-cluster-token "$token" --data-dir "$workdir/data" >&2 ||
  die "$EXIT_SNAPSHOT" "$tool snapshot restore failed"
mv "$workdir/data" "$data"
chmod 0700 "$data"
start_again
log "restored $NODE_NAME from s3://$BACKUP_BUCKET/$key (token $token); the member forms a quorum once a majority of $ETCD_MEMBERS is restored"
