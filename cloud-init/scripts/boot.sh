#!/usr/bin/env bash
# First-boot entry point (cloud-init runcmd). User data carries only this, lib.sh, install.sh, the
# node's own documents and bundle.list; the other scripts come from the cluster's bootstrap bucket,
# because every script on every role would not fit EC2's 16 KB of user data (kOps ships nodeup
# the same way, from its S3 state store). bundle.list pins each file by SHA-256, so user data
# stays the root of trust: a changed or truncated object is refused, never run.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "${BASH_SOURCE[0]%/*}/lib.sh"
load_env
# However the first boot ends, AWS hears of it (lib.sh report_bootstrap): a machine that gave up is
# replaced (a worker) or raises its alarm (a master or etcd member). cloud-init never runs this again.
trap 'rc=$?; report_bootstrap "$rc"; exit "$rc"' EXIT

[[ -n ${BOOTSTRAP_BUCKET:-} ]] || die "$EXIT_CONFIG" "BOOTSTRAP_BUCKET is not set in $KUBEADM_HA_ETC/node.env"

# The AWS CLI comes with the host preparation; install.sh records that it ran, so bootstrap.sh's
# own call returns at once.
"$BASH" "$KUBEADM_HA_LIB/install.sh"

# bundle.list lines: `<sha256> <mode> lib/<name>`; lib/ is $KUBEADM_HA_LIB.
fetch_one() {
  local sha=$1 mode=$2 dest=$3 tmp=$3.kubeadm-ha.tmp actual
  rm -f "$tmp"
  if ! aws s3api get-object --region "$AWS_REGION" --bucket "$BOOTSTRAP_BUCKET" --key "$BOOTSTRAP_PREFIX$sha" "$tmp" >/dev/null; then
    rm -f "$tmp"
    return 1
  fi
  actual=$(sha256sum "$tmp")
  actual=${actual%% *}
  if [[ $actual != "$sha" ]]; then
    rm -f "$tmp"
    die "$EXIT_BUNDLE" "s3://$BOOTSTRAP_BUCKET/$BOOTSTRAP_PREFIX$sha has SHA-256 $actual, not the one user data pins: refusing to run it"
  fi
  chmod "$mode" "$tmp"
  mv "$tmp" "$dest"
}

n=0
while read -r sha mode rel; do
  [[ $sha =~ ^[0-9a-f]{64}$ && $mode =~ ^0[0-7]{3}$ && $rel =~ ^lib/[a-z0-9-]+\.sh$ ]] ||
    die "$EXIT_CONFIG" "bad line in $KUBEADM_HA_ETC/bundle.list: '$sha $mode $rel'"
  dest=$KUBEADM_HA_LIB/${rel#lib/}
  if [[ -f $dest ]] && [[ $(sha256sum "$dest") == "$sha "* ]]; then continue; fi
  # A new instance role's policies can take a minute or two to reach S3 (IAM is eventually consistent).
  retry 12 "$KUBEADM_HA_POLL_SECONDS" fetch_one "$sha" "$mode" "$dest" ||
    die "$EXIT_BUNDLE" "could not fetch $rel from s3://$BOOTSTRAP_BUCKET/$BOOTSTRAP_PREFIX$sha"
  n=$((n + 1))
done <"$KUBEADM_HA_ETC/bundle.list"
log "fetched $n files from s3://$BOOTSTRAP_BUCKET/$BOOTSTRAP_PREFIX"

"$BASH" "$KUBEADM_HA_LIB/bootstrap.sh"
