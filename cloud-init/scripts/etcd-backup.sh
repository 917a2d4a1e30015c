#!/usr/bin/env bash
# kubeadm-ha-etcd-backup.service, every etcd.backup.intervalMinutes on each machine holding an etcd
# member: snapshot the local member, verify it, upload it to
# s3://$BACKUP_BUCKET/$BACKUP_PREFIX/<member name>/<UTC timestamp>.db, delete the local copy.
#
# Only the leader uploads. Every member's timer fires, but a follower exits 0 at once: the leader
# has applied every committed write, so its snapshot is never behind; a member cut off from the
# majority can still serve a snapshot, an old one, which must not land in the bucket as the newest;
# and one copy per interval keeps S3 storage and KMS requests at 1/N. A leader change between the
# check and the snapshot costs at most one interval's snapshot, or gives one extra.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "${BASH_SOURCE[0]%/*}/lib.sh"
# shellcheck source-path=SCRIPTDIR source=etcdctl.sh
source "${BASH_SOURCE[0]%/*}/etcdctl.sh"
load_env
etcd_client_env
for v in BACKUP_BUCKET BACKUP_PREFIX BACKUP_KMS_KEY; do
  [[ -n ${!v:-} ]] || die "$EXIT_CONFIG" "$v is not set in $KUBEADM_HA_ETC/node.env"
done
# On the root volume, not under /run (RAM): a snapshot is as large as the member's database.
export ETCD_TOOL_WORK_DIR=${KUBEADM_HA_BACKUP_DIR:-/var/lib/kubeadm-ha/etcd-backup}
endpoint=https://$NODE_IP:2379

# `-w fields` prints the 64-bit IDs as decimal text; JSON would round them in most parsers.
status=$(etcdctl_run --endpoints "$endpoint" endpoint status -w fields) ||
  die "$EXIT_SNAPSHOT" "etcd at $endpoint does not answer endpoint status"
member=$(sed -n 's/^"MemberID" : //p' <<<"$status")
leader=$(sed -n 's/^"Leader" : //p' <<<"$status")
[[ -n $member ]] || die "$EXIT_SNAPSHOT" "no MemberID in the endpoint status of $endpoint: $status"
if [[ $member != "$leader" ]]; then
  log "member $member is not the leader ($leader): the leader uploads this interval's snapshot"
  exit 0
fi

ts=$(date -u +%Y%m%dT%H%M%SZ)
file=$ETCD_TOOL_WORK_DIR/$ts.db
key=$BACKUP_PREFIX/$NODE_NAME/$ts.db
mkdir -p "$ETCD_TOOL_WORK_DIR"
chmod 0700 "$ETCD_TOOL_WORK_DIR"
# The snapshot holds every Secret of the cluster: no copy stays on disk, whatever happens.
trap 'rm -f "$file" "$file.part"' EXIT
etcdctl_run --endpoints "$endpoint" snapshot save "$file" >/dev/null ||
  die "$EXIT_SNAPSHOT" "etcdctl snapshot save from $endpoint failed"
info=$(etcd_tool "$(etcd_snapshot_tool)" snapshot status "$file" -w json) ||
  die "$EXIT_SNAPSHOT" "the snapshot $file does not verify: $info"
log "snapshot of $endpoint verified: $info"
# The key ID, not just aws:kms: a request naming aws:kms alone gets S3's AWS managed key.
retry 3 "$KUBEADM_HA_BACKOFF_SECONDS" aws s3 cp --only-show-errors --sse aws:kms --sse-kms-key-id "$BACKUP_KMS_KEY" \
  "$file" "s3://$BACKUP_BUCKET/$key" || die "$EXIT_S3" "upload to s3://$BACKUP_BUCKET/$key failed"
log "uploaded s3://$BACKUP_BUCKET/$key"
