#!/usr/bin/env bash
# Day-2 steps on one master or external etcd member. The rollout (day2/rollout.ts) runs this through
# SSM Run Command on one machine at a time, after Pulumi created or changed it, and touches the next
# machine only once `health` passed here. By hand, on a machine (Session Manager):
#   sudo /usr/local/lib/kubeadm-ha/day2.sh health
#
#   health [--wait S] [--create]  exit 0 once this machine and its cluster are healthy, polling for
#                                 up to S seconds (default: one check). --create: a machine Pulumi
#                                 just launched, which also passes while its cluster is still being
#                                 created (nothing of it answers yet), and tolerates members not
#                                 started yet (the ones launched after it)
#   sync                          take the files of this machine's current user data (EC2 has the
#                                 new one after Pulumi changed it): node.env, kubeadm documents,
#                                 scripts (by their hashes, as boot.sh), timers. Restarts nothing.
#   upgrade [--first]             master: sync, then kubeadm as kubeadm's upgrade guide does it:
#                                 the kubeadm package, `kubeadm upgrade apply` (--first: master 0,
#                                 which stores the rendered ClusterConfiguration first) or `kubeadm
#                                 upgrade node`, then drain, kubelet and kubectl, uncordon. With the
#                                 same version it only renders the static pods anew from the stored
#                                 configuration: that is how leader election or etcd timing changes
#                                 reach a running master.
#   etcd-manifest                 external member: sync, then run its new rendered pod (image,
#                                 timing), keeping the flags of its first start
#   leave                         this machine's etcd member leaves etcd, and a master the cluster,
#                                 before Pulumi terminates it (scale-in)
#   addons                        master 0 (addons.installer nodes): sync, then addons.sh
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "${BASH_SOURCE[0]%/*}/lib.sh"
# Only machines holding a member (and the SSM command, which fetches it) have etcdctl.sh.
if [[ -f ${BASH_SOURCE[0]%/*}/etcdctl.sh ]]; then
  # shellcheck source-path=SCRIPTDIR source=etcdctl.sh
  source "${BASH_SOURCE[0]%/*}/etcdctl.sh"
fi
init_paths

# Above the bootstrap's codes (lib.sh): the machine or its cluster is not healthy; a master ran
# before master 0 stored the new configuration; a member cannot leave without costing the quorum.
readonly EXIT_UNHEALTHY=20 EXIT_ORDER=21 EXIT_LEAVE=22

SYSTEMD_DIR=${SYSTEMD_DIR:-/etc/systemd/system}
APT_KEYRINGS=${APT_KEYRINGS:-/etc/apt/keyrings}
APT_SOURCES=${APT_SOURCES:-/etc/apt/sources.list.d}
ADMIN_CONF=$KUBERNETES_DIR/admin.conf
MANIFEST=$KUBERNETES_DIR/manifests/etcd.yaml
STAGE=$KUBEADM_HA_RUN/day2-stage
BACKUP_TIMER=kubeadm-ha-etcd-backup.timer
# kubectl drain's limit: pods whose PodDisruptionBudget never allows an eviction fail the step.
DRAIN_TIMEOUT=${KUBEADM_HA_DRAIN_TIMEOUT:-600s}

usage() { die "$EXIT_CONFIG" "usage: day2.sh health [--wait SECONDS] [--create] | sync | upgrade [--first] | etcd-manifest | leave | addons"; }

export DEBIAN_FRONTEND=noninteractive
apt_get() { apt-get -o DPkg::Lock::Timeout=300 -q "$@"; }
kctl() { kubectl --kubeconfig "${KCTL_CONFIG:-$ADMIN_CONF}" --request-timeout=30s "$@"; }
holds_member() { [[ $NODE_ROLE == etcd || ($NODE_ROLE == control-plane && $ETCD_TOPOLOGY == stacked) ]]; }

# ---- sync: the machine's files follow its user data -------------------------------------------

# The user data EC2 has for this instance now, into FILE (gzipped cloud-config: binary, so never
# through a shell variable).
imds_user_data() {
  local base=${IMDS_ENDPOINT:-http://169.254.169.254} token
  token=$(curl --silent --show-error --fail --max-time 5 -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 300" "$base/latest/api/token") || return 1
  curl --silent --show-error --fail --max-time 10 -H "X-aws-ec2-metadata-token: $token" --output "$1" "$base/latest/user-data"
}

# Writes every write_files entry of the user data under $STAGE at its own path and mode; prints the paths.
read -r -d '' STAGE_PY <<'PY' || true
import gzip, os, sys, yaml
root, src = sys.argv[1], sys.argv[2]
data = open(src, "rb").read()
if data[:2] == b"\x1f\x8b":
    data = gzip.decompress(data)
doc = yaml.safe_load(data.decode("utf-8"))
if not isinstance(doc, dict) or not isinstance(doc.get("write_files"), list):
    sys.exit("the user data is not a cloud-config with write_files")
for f in doc["write_files"]:
    path = f["path"]
    if not path.startswith("/") or "/../" in path:
        sys.exit("refusing write_files path %r" % path)
    dest = root + path
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with open(dest, "w") as out:
        out.write(f.get("content") or "")
    os.chmod(dest, int(str(f.get("permissions", "0644")), 8))
    print(path)
PY

# The path on this machine of a path in the user data; empty for one this script leaves alone.
local_path() {
  case $1 in
    /etc/kubeadm-ha/*) echo "$KUBEADM_HA_ETC/${1#/etc/kubeadm-ha/}" ;;
    /usr/local/lib/kubeadm-ha/*) echo "$KUBEADM_HA_LIB/${1#/usr/local/lib/kubeadm-ha/}" ;;
    /etc/systemd/system/*) echo "$SYSTEMD_DIR/${1#/etc/systemd/system/}" ;;
  esac
}

# fetch_script SHA MODE DEST: one bundle.list entry from the bootstrap bucket, refused unless its
# content has the pinned hash (boot.sh's rule).
fetch_script() {
  local sha=$1 mode=$2 dest=$3 tmp=$3.kubeadm-ha.tmp actual
  rm -f "$tmp"
  aws s3api get-object --region "$AWS_REGION" --bucket "$BOOTSTRAP_BUCKET" --key "$BOOTSTRAP_PREFIX$sha" "$tmp" >/dev/null || { rm -f "$tmp" && return 1; }
  actual=$(sha256sum "$tmp")
  if [[ ${actual%% *} != "$sha" ]]; then
    rm -f "$tmp"
    die "$EXIT_BUNDLE" "s3://$BOOTSTRAP_BUCKET/$BOOTSTRAP_PREFIX$sha is not the content user data pins: refusing it"
  fi
  chmod "$mode" "$tmp"
  mv "$tmp" "$dest"
}

sync_files() {
  local paths path dest changed=0 units=0 sha mode rel timer timers=()
  rm -rf "$STAGE"
  mkdir -p "$STAGE"
  imds_user_data "$STAGE.user-data" || die "$EXIT_CONFIG" "could not read this instance's user data from the instance metadata service"
  paths=$(python3 -c "$STAGE_PY" "$STAGE" "$STAGE.user-data") || die "$EXIT_CONFIG" "could not read the user data: $paths"
  while read -r path; do
    dest=$(local_path "$path")
    [[ -n $dest ]] || continue
    if [[ -f $dest ]] && cmp -s "$STAGE$path" "$dest"; then continue; fi
    mkdir -p "${dest%/*}"
    cp -p "$STAGE$path" "$dest.kubeadm-ha.tmp"
    mv "$dest.kubeadm-ha.tmp" "$dest"
    log "updated $dest from the user data"
    changed=$((changed + 1))
    if [[ $path == /etc/systemd/system/* ]]; then units=$((units + 1)); fi
    if [[ $path == /etc/systemd/system/*.timer && ${path##*/} != "$BACKUP_TIMER" ]]; then timers+=("${path##*/}"); fi
  done <<<"$paths"
  load_env
  # The scripts fetched at boot, as the new bundle.list pins them.
  while read -r sha mode rel; do
    [[ $sha =~ ^[0-9a-f]{64}$ && $mode =~ ^0[0-7]{3}$ && $rel =~ ^lib/[a-z0-9-]+\.sh$ ]] || die "$EXIT_CONFIG" "bad line in bundle.list: '$sha $mode $rel'"
    dest=$KUBEADM_HA_LIB/${rel#lib/}
    if [[ -f $dest ]] && [[ $(sha256sum "$dest") == "$sha "* ]]; then continue; fi
    retry 12 "$KUBEADM_HA_POLL_SECONDS" fetch_script "$sha" "$mode" "$dest" || die "$EXIT_BUNDLE" "could not fetch $rel from s3://$BOOTSTRAP_BUCKET"
    log "updated $dest ($sha)"
    changed=$((changed + 1))
  done <"$KUBEADM_HA_ETC/bundle.list"
  if ((units > 0)); then systemctl daemon-reload; fi
  # A new or changed timer (certificate renewal, token rotation) runs from now on, as the bootstrap enables it.
  for timer in "${timers[@]}"; do systemctl enable "$timer" && systemctl restart "$timer"; done
  # Backups follow node.env: on with the timer's new interval, or off.
  if [[ -n ${BACKUP_BUCKET:-} && -f $SYSTEMD_DIR/$BACKUP_TIMER ]]; then
    if ((units > 0)); then systemctl enable "$BACKUP_TIMER" && systemctl restart "$BACKUP_TIMER"; fi
  elif [[ -f $SYSTEMD_DIR/$BACKUP_TIMER ]]; then
    systemctl disable --now "$BACKUP_TIMER"
    rm -f "$SYSTEMD_DIR/$BACKUP_TIMER" "$SYSTEMD_DIR/${BACKUP_TIMER%.timer}.service"
    systemctl daemon-reload
  fi
  log "sync: $changed files changed"
}

# ---- health ------------------------------------------------------------------------------------

PROBLEM=""
# need WHAT CMD...: runs CMD; on failure records WHAT and CMD's last line of output.
need() {
  local what=$1 out
  shift
  if out=$("$@" 2>&1); then return 0; fi
  out=${out%$'\n'}
  PROBLEM="$what${out:+: ${out##*$'\n'}}"
  return 1
}

# Reads `kubectl get node -o json`: the node is Ready (or NotReady only because no network plugin
# is installed yet, as before the add-ons), schedulable, and its kubelet is at KUBERNETES_VERSION.
read -r -d '' NODE_PY <<'PY' || true
import json, sys
node, want = json.load(sys.stdin), "v" + sys.argv[1]
ready = next((c for c in node.get("status", {}).get("conditions", []) if c.get("type") == "Ready"), {})
message = ready.get("message", "")
if ready.get("status") != "True" and "network plugin" not in message.lower() and "cni" not in message.lower():
    sys.exit("the node is not Ready (%s: %s)" % (ready.get("reason", "no status"), message))
if node.get("spec", {}).get("unschedulable"):
    sys.exit("the node is cordoned")
have = node.get("status", {}).get("nodeInfo", {}).get("kubeletVersion", "")
if have != want:
    sys.exit("its kubelet runs %s, not %s" % (have or "nothing", want))
PY

node_healthy() {
  local json
  json=$(kctl get node "$NODE_NAME" -o json) || return 1
  python3 -c "$NODE_PY" "$KUBERNETES_VERSION" <<<"$json"
}

# Reads `etcdctl member list -w json`: prints every started member's client URL; fails on a
# learner, or on a member not started unless TOLERATE_UNSTARTED (a member added after it, or named in
# --initial-cluster, whose machine is launched after this one).
read -r -d '' MEMBERS_PY <<'PY' || true
import json, sys
tolerate = sys.argv[1] == "true"
bad, urls = [], []
for m in json.load(sys.stdin).get("members") or []:
    name = m.get("name") or (m.get("peerURLs") or ["?"])[0]
    if m.get("isLearner"):
        bad.append("%s is a learner" % name)
    elif not m.get("clientURLs"):
        if not tolerate:
            bad.append("%s is not started" % name)
    else:
        urls.append(m["clientURLs"][0])
if bad:
    sys.exit("etcd: " + "; ".join(bad))
print(",".join(urls))
PY

etcd_healthy() {
  local tolerate=$1 members urls out
  etcd_client_env
  members=$(etcdctl_run --endpoints="https://$NODE_IP:2379" member list -w json) || return 1
  urls=$(python3 -c "$MEMBERS_PY" "$tolerate" <<<"$members") || return 1
  [[ ,$urls, == *",https://$NODE_IP:2379,"* ]] || { echo "this machine's member is not started" && return 1; }
  # etcdctl prints the healthy endpoints on stdout, the others on stderr: name only those.
  if ! out=$(etcdctl_run --endpoints="$urls" endpoint health 2>&1); then
    grep -v ' is healthy' <<<"$out" | head -n 3
    return 1
  fi
}

check_health() {
  local create=$1
  PROBLEM=""
  if [[ $NODE_ROLE == etcd ]]; then
    need "etcd is not healthy" etcd_healthy "$create"
    return
  fi
  need "the bootstrap has not finished" test -s "$KUBERNETES_DIR/kubelet.conf" &&
    need "kubelet is not running" systemctl is-active --quiet kubelet &&
    need "this master's API server is not ready" curl --silent --show-error --fail --max-time 5 --cacert "$KUBERNETES_DIR/pki/ca.crt" --output /dev/null "https://$NODE_IP:6443/readyz" &&
    need "kube-controller-manager is not healthy" curl --silent --show-error --fail --max-time 5 --insecure --output /dev/null https://127.0.0.1:10257/healthz &&
    need "kube-scheduler is not healthy" curl --silent --show-error --fail --max-time 5 --insecure --output /dev/null https://127.0.0.1:10259/healthz &&
    need "the API does not answer through the load balancer" api_ready &&
    need "node $NODE_NAME" node_healthy &&
    { [[ $ETCD_TOPOLOGY != stacked ]] || need "etcd is not healthy" etcd_healthy "$create"; }
}

# A machine Pulumi just launched whose cluster is still being created: it has not joined, and
# nothing of its cluster answers (bootstrap.sh's own test for "no API yet": transport failures
# only; etcd-rejoin.sh's for "no member yet": no other member's client port open).
cluster_forming() {
  local rc=0 entry ip
  if [[ $NODE_ROLE == etcd ]]; then
    [[ ! -d $KUBEADM_HA_ETCD_DATA_DIR/member ]] || return 1
    for entry in ${ETCD_MEMBERS//,/ }; do
      ip=${entry#*=https://}
      ip=${ip%:2380}
      [[ $ip != "$NODE_IP" ]] || continue
      if timeout 3 bash -c "exec 3<>/dev/tcp/$ip/2379" 2>/dev/null; then return 1; fi
    done
    return 0
  fi
  [[ ! -e $KUBERNETES_DIR/kubelet.conf ]] || return 1
  curl --silent --insecure --connect-timeout 5 --max-time 10 --output /dev/null "https://$API_ENDPOINT/readyz" || rc=$?
  case $rc in 6 | 7 | 28 | 35 | 52 | 56) return 0 ;; *) return 1 ;; esac
}

health() {
  local wait=0 create=false deadline
  while (($#)); do
    case $1 in
      --wait)
        [[ ${2:-} =~ ^[0-9]+$ ]] || usage
        wait=$2
        shift 2
        ;;
      --create) create=true && shift ;;
      *) usage ;;
    esac
  done
  if $create && cluster_forming; then
    log "healthy enough: this machine's cluster is being created, nothing of it answers yet"
    return 0
  fi
  deadline=$((SECONDS + wait))
  until check_health "$create"; do
    ((SECONDS < deadline)) || die "$EXIT_UNHEALTHY" "not healthy after ${wait}s: $PROBLEM"
    log "waiting: $PROBLEM"
    sleep "$KUBEADM_HA_POLL_SECONDS"
  done
  log "healthy: $NODE_NAME ($NODE_ROLE)"
}

# ---- upgrade -----------------------------------------------------------------------------------

# The version the control plane on this master runs: its API server's image tag.
running_version() {
  local image
  image=$(grep -Eo 'kube-apiserver:v[0-9]+\.[0-9]+\.[0-9]+' "$KUBERNETES_DIR/manifests/kube-apiserver.yaml" | head -n 1) ||
    die "$EXIT_CONFIG" "no kube-apiserver image in $KUBERNETES_DIR/manifests/kube-apiserver.yaml"
  echo "${image#*:}"
}

# PACKAGE...: from the Kubernetes package repository of KUBERNETES_MINOR (a new minor has its own).
install_packages() {
  local repo=https://pkgs.k8s.io/core:/stable:/v$KUBERNETES_MINOR/deb keyring=$APT_KEYRINGS/kubernetes-apt-keyring.gpg list=$APT_SOURCES/kubernetes.list p
  local pinned=()
  for p; do pinned+=("$p=$KUBERNETES_VERSION-*"); done
  if ! grep -qF "$repo/" "$list" 2>/dev/null; then
    log "package repository $repo"
    mkdir -p "$APT_KEYRINGS" "$APT_SOURCES"
    fetch_key() { curl -fsSL --max-time 60 "$repo/Release.key" | gpg --dearmor --yes --output "$keyring"; }
    retry 5 "$KUBEADM_HA_POLL_SECONDS" fetch_key
    printf 'deb [signed-by=%s] %s/ /\n' "$keyring" "$repo" >"$list"
  fi
  retry 5 "$KUBEADM_HA_POLL_SECONDS" apt_get update
  retry 5 "$KUBEADM_HA_POLL_SECONDS" apt_get install -y --allow-change-held-packages "${pinned[@]}"
  apt-mark hold "$@"
}

# The kubeadm-config ConfigMap with its ClusterConfiguration replaced by the rendered one (init.yaml),
# whose kubernetesVersion stays the stored one: `kubeadm upgrade apply` moves that itself.
read -r -d '' CONFIGMAP_PY <<'PY' || true
import json, sys, yaml
cm = json.load(open(sys.argv[1]))
want = next(d for d in yaml.safe_load_all(open(sys.argv[2])) if d and d.get("kind") == "ClusterConfiguration")
stored = yaml.safe_load(cm["data"]["ClusterConfiguration"])
want["kubernetesVersion"] = stored["kubernetesVersion"]
cm["data"]["ClusterConfiguration"] = yaml.safe_dump(want, default_flow_style=False, sort_keys=True)
cm["metadata"].pop("managedFields", None)
json.dump(cm, sys.stdout)
PY

# encryptionAtRest turned on for a running cluster: the API servers' new flags name a file that only
# fetch-secrets.sh writes, at boot. It must be on the master before kubeadm renders its API server.
encryption_key() {
  local file=$KUBERNETES_DIR/pki/encryption-config.yaml config
  [[ ! -f $file ]] || return 0
  if [[ -f $KUBEADM_HA_ETC/init.yaml ]]; then config=$(<"$KUBEADM_HA_ETC/init.yaml"); else config=$(kctl -n kube-system get configmap kubeadm-config -o 'jsonpath={.data.ClusterConfiguration}'); fi
  [[ $config == *encryption-provider-config* ]] || return 0
  log "the API server encrypts Secrets now: installing $file from the control plane's secret"
  "$BASH" "$KUBEADM_HA_LIB/fetch-secrets.sh"
  [[ -f $file ]] || die "$EXIT_SECRETS" "the control plane's secret has no encryption-config.yaml"
}

stored_version() {
  kctl -n kube-system get configmap kubeadm-config -o 'jsonpath={.data.ClusterConfiguration}' | python3 -c 'import sys, yaml; print(yaml.safe_load(sys.stdin)["kubernetesVersion"])'
}

upgrade() {
  local first=false target running patches=() note=""
  case ${1:-} in --first) first=true ;; "") ;; *) usage ;; esac
  [[ $NODE_ROLE == control-plane ]] || die "$EXIT_CONFIG" "upgrade runs on masters; an etcd member takes etcd-manifest"
  sync_files
  target=v$KUBERNETES_VERSION
  running=$(running_version)
  # Stacked etcd's --etcd-servers is a kubeadm patch: without it kubeadm would render the API
  # server with its local member only.
  if [[ $ETCD_TOPOLOGY == stacked ]]; then patches=(--patches "$KUBEADM_HA_ETC/patches"); fi
  if $first; then note=" (first master: kubeadm upgrade apply)"; fi
  log "upgrade: control plane $running -> $target$note"
  export KUBECONFIG=$ADMIN_CONF
  # Refused before anything changes on this machine.
  if ! $first; then
    local stored
    stored=$(stored_version) || die "$EXIT_CONFIG" "could not read kube-system/kubeadm-config"
    [[ $stored == "$target" ]] || die "$EXIT_ORDER" "the cluster's configuration is at $stored, not $target: master 0 runs kubeadm upgrade apply first (the rollout's order)"
  fi
  encryption_key
  if [[ $running != "$target" ]]; then install_packages kubeadm; fi
  # The rollout touches one machine at a time (day2/chain.ts), but every master's certificate
  # renewal timer restarts its own static pods under the join lock (cert-renew.sh): holding the same
  # Lease from here to the uncordon keeps a renewal from restarting a second API server or stacked
  # etcd member while this master's are down, and a renewal in progress makes this wait.
  # shellcheck source-path=SCRIPTDIR source=join-lock.sh
  source "$KUBEADM_HA_LIB/join-lock.sh"
  trap 'rc=$?; release_join_lock || true; exit "$rc"' EXIT
  acquire_join_lock
  keep_join_lock
  if $first; then
    [[ -f $KUBEADM_HA_ETC/init.yaml ]] || die "$EXIT_CONFIG" "$KUBEADM_HA_ETC/init.yaml is missing: only master 0 runs upgrade --first"
    kctl -n kube-system get configmap kubeadm-config -o json >"$KUBEADM_HA_RUN/kubeadm-config.json"
    python3 -c "$CONFIGMAP_PY" "$KUBEADM_HA_RUN/kubeadm-config.json" "$KUBEADM_HA_ETC/init.yaml" | kctl replace -f - >/dev/null
    log "stored the rendered ClusterConfiguration in kube-system/kubeadm-config"
    kubeadm upgrade apply "$target" --yes "${patches[@]}"
  else
    kubeadm upgrade node "${patches[@]}"
  fi
  if [[ $running != "$target" ]]; then
    kctl drain "$NODE_NAME" --ignore-daemonsets --delete-emptydir-data --timeout="$DRAIN_TIMEOUT"
    install_packages kubelet kubectl
    systemctl daemon-reload
    systemctl restart kubelet
    kctl uncordon "$NODE_NAME"
  fi
  log "upgrade: $NODE_NAME runs $target"
}

# ---- external etcd ------------------------------------------------------------------------------

# The staged pod with the installed one's --initial-cluster and --initial-cluster-state lines: they
# matter only at a member's first start, and a member that joined later has them rewritten.
read -r -d '' POD_PY <<'PY' || true
import re, sys
first = re.compile(r"^\s*- --initial-cluster(-state)?=")
installed = [l for l in open(sys.argv[1]).read().split("\n") if first.match(l)]
out = []
for line in open(sys.argv[2]).read().split("\n"):
    if first.match(line):
        flag = line.strip().split("=", 1)[0]
        line = next((l for l in installed if l.strip().split("=", 1)[0] == flag), line)
    out.append(line)
sys.stdout.write("\n".join(out))
PY

etcd_manifest() {
  local next=$KUBEADM_HA_RUN/etcd.yaml.next
  [[ $NODE_ROLE == etcd ]] || die "$EXIT_CONFIG" "etcd-manifest runs on external etcd members"
  sync_files
  [[ -f $MANIFEST ]] || die "$EXIT_CONFIG" "$MANIFEST is missing: this member never started"
  (umask 077 && python3 -c "$POD_PY" "$MANIFEST" "$KUBEADM_HA_ETC/etcd.yaml" >"$next")
  if cmp -s "$next" "$MANIFEST"; then
    rm -f "$next"
    log "etcd-manifest: the pod is up to date"
    return 0
  fi
  # The rollout restarts one member at a time; a certificate renewal on another member (its timer,
  # cert-renew.sh) holds the same lock while it restarts that member.
  etcd_client_env
  trap 'rc=$?; etcd_unlock; exit "$rc"' EXIT
  etcd_lock
  poll_until "every etcd member to be healthy before this one restarts" "$EXIT_UNHEALTHY" etcd_healthy false
  mv "$next" "$MANIFEST"
  log "etcd-manifest: installed the new pod; the kubelet restarts etcd"
  poll_until "this etcd member to be healthy again" "$EXIT_UNHEALTHY" etcd_healthy false
  etcd_unlock
}

# ---- scale-in ----------------------------------------------------------------------------------

# Reads `member list -w json`: this machine's member ID (hex) and the other members' client URLs.
read -r -d '' SELF_PY <<'PY' || true
import json, sys
peer = sys.argv[1]
me, others = None, []
for m in json.load(sys.stdin).get("members") or []:
    if peer in (m.get("peerURLs") or []):
        me = m
    elif m.get("clientURLs"):
        others.append(m["clientURLs"][0])
print("%x" % me["ID"] if me else "-", ",".join(others))
PY

remove_member() {
  local members id others
  etcd_client_env
  members=$(etcdctl_run --endpoints="https://$NODE_IP:2379" member list -w json) || die "$EXIT_LEAVE" "etcd does not answer here; nothing changed"
  read -r id others < <(python3 -c "$SELF_PY" "https://$NODE_IP:2380" <<<"$members")
  if [[ $id == - ]]; then
    log "leave: this machine is no etcd member"
    return 0
  fi
  [[ -n $others ]] || die "$EXIT_LEAVE" "this is the only started etcd member: it cannot leave"
  # Every other member healthy, so the cluster keeps its quorum and a margin without this one.
  etcdctl_run --endpoints="$others" endpoint health >&2 || die "$EXIT_LEAVE" "another etcd member is unhealthy: not removing this one (nothing changed)"
  remove() { etcdctl_run --endpoints="$others" member remove "$id"; }
  retry 12 "$KUBEADM_HA_POLL_SECONDS" remove || die "$EXIT_LEAVE" "etcd kept refusing to remove member $id"
  log "leave: removed etcd member $id (https://$NODE_IP:2380)"
}

leave() {
  log "leave: $NODE_NAME leaves the cluster"
  if [[ $NODE_ROLE == control-plane ]]; then
    # kubeadm reset deletes admin.conf; the Node goes after the kubelet has stopped.
    install -m 0600 "$ADMIN_CONF" "$KUBEADM_HA_RUN/leave-admin.conf"
    kctl drain "$NODE_NAME" --ignore-daemonsets --delete-emptydir-data --timeout="$DRAIN_TIMEOUT"
  fi
  if holds_member; then remove_member; fi
  if [[ $NODE_ROLE == control-plane ]]; then
    kubeadm reset -f --skip-phases remove-etcd-member
    KCTL_CONFIG=$KUBEADM_HA_RUN/leave-admin.conf kctl delete node "$NODE_NAME" --ignore-not-found
    rm -f "$KUBEADM_HA_RUN/leave-admin.conf"
  else
    mv "$MANIFEST" "$KUBEADM_HA_RUN/etcd.yaml.left"
    systemctl stop kubelet
  fi
  log "leave: done; the machine may be terminated"
}

addons() {
  [[ $NODE_ROLE == control-plane && $INIT_NODE == true ]] || die "$EXIT_CONFIG" "addons runs on master 0"
  sync_files
  [[ -f $KUBEADM_HA_ETC/addons/releases ]] || die "$EXIT_CONFIG" "this master's user data has no add-ons (addons.installer is not nodes)"
  "$BASH" "$KUBEADM_HA_LIB/addons.sh"
}

action=${1:-}
shift || true
# sync reads node.env from the user data it installs.
if [[ $action != sync ]]; then load_env; fi
case $action in
  health) health "$@" ;;
  sync) (($# == 0)) || usage && sync_files ;;
  upgrade) upgrade "$@" ;;
  etcd-manifest) (($# == 0)) || usage && etcd_manifest ;;
  leave) (($# == 0)) || usage && leave ;;
  addons) (($# == 0)) || usage && addons ;;
  *) usage ;;
esac
