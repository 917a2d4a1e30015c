#!/usr/bin/env bash
# Run by bootstrap.sh on a machine that holds an etcd member, before that member exists here: a
# stacked master (after it takes the join lock, before `kubeadm join --control-plane`) and an
# external etcd member (before its static pod is installed). It asks the other members whether this
# machine replaces a dead one and, if so, removes the dead member, the step kubeadm leaves to the
# operator (kubernetes/kubeadm#1300, #2138): a replacement holds the dead machine's address and
# name, so `kubeadm join` or etcd would otherwise meet a member with its peer URL that never answers.
#
#   no other member answers                   the cluster is being created: nothing to do
#   this peer URL is a member, never started  the first bootstrap (or our own earlier add) is pending
#   this peer URL is a member that ran, and   a replacement: refuse without a quorum of healthy
#     there is no etcd data on this machine   others (EXIT_QUORUM) and wait while another member is
#                                             unhealthy or unstarted (EXIT_ETCD_BUSY), then remove it;
#                                             an external member adds itself back and starts with
#                                             --initial-cluster-state=existing
#   this peer URL is no member                a master: kubeadm join adds it; an external member: an
#                                             earlier run removed it, so it adds itself as above
#   this peer URL ran and its data is here    a restart, not a replacement: nothing to do
#
# "Started" is judged by client URLs, which a member publishes once it runs: etcd lists the members
# of --initial-cluster by name from the start, and a `member add`ed one has neither name nor URLs.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "${BASH_SOURCE[0]%/*}/lib.sh"
# shellcheck source-path=SCRIPTDIR source=etcdctl.sh
source "${BASH_SOURCE[0]%/*}/etcdctl.sh"
load_env

PEER_URL=https://$NODE_IP:2380
MANIFEST=$KUBEADM_HA_ETC/etcd.yaml
NEXT=$KUBEADM_HA_RUN/etcd.yaml

case $NODE_ROLE/${ETCD_TOPOLOGY:-} in
  etcd/) ;;
  control-plane/stacked)
    # A master's etcdctl authenticates with kubeadm's healthcheck-client pair, which kubeadm only
    # writes during join; the master holds the etcd CA key, so it issues the pair now from the
    # ClusterConfiguration join-lock.sh wrote for the joiner kubeconfig.
    cluster_config=$KUBEADM_HA_RUN/joiner-cluster.yaml
    [[ -f $cluster_config ]] || die "$EXIT_CONFIG" "$cluster_config is missing (join-lock.sh writes it)"
    kubeadm init phase certs etcd-healthcheck-client --config "$cluster_config" >&2 || die 1 "kubeadm could not issue the etcd healthcheck-client pair"
    ;;
  *) die "$EXIT_CONFIG" "no etcd member on $NODE_ROLE/${ETCD_TOPOLOGY:-}" ;;
esac
etcd_client_env

ctl() { etcdctl_run --endpoints="$1" "${@:2}"; }

# The other members' client URLs, as rendered.
OTHERS=()
members=$(etcd_members)
while read -r _ client peer; do
  if [[ $peer != "$PEER_URL" ]]; then OTHERS+=("$client"); fi
done <<<"$members"
((${#OTHERS[@]} < $(wc -l <<<"$members"))) || die "$EXIT_CONFIG" "ETCD_MEMBERS lacks $PEER_URL"

# Sets HEALTHY (members serving quorum reads) and ANSWERING (members that answer at all). A member
# serves clients only once its cluster has had a quorum (etcd waits for ReadyNotify), so one that
# answers unhealthy belongs to a cluster that existed and has lost its quorum.
probe() {
  local ep
  HEALTHY=() ANSWERING=()
  for ep in "${OTHERS[@]}"; do
    if ctl "$ep" endpoint health &>/dev/null; then
      HEALTHY+=("$ep") ANSWERING+=("$ep")
    elif ctl "$ep" endpoint status &>/dev/null; then
      ANSWERING+=("$ep")
    fi
  done
}

# Reads `member list -w json`; prints this machine's member ID (or -) and state, the member count
# with this machine's, how many others are started and healthy, and what the others lack. State:
# none (not a member), added (by `member add`: no name yet), new (of --initial-cluster: named from
# the start), started (has published its client URLs, which a member does once it runs).
read -r -d '' SURVEY_PY <<'PY' || true
import json, sys
peer, node, healthy = sys.argv[1], sys.argv[2], sys.argv[3].split()
me, total, good, busy = None, 1, 0, []
for m in json.load(sys.stdin).get("members") or []:
    c = m.get("clientURLs") or []
    if peer in (m.get("peerURLs") or []) or m.get("name") == node:
        me = m
        continue
    total += 1
    if c and c[0] in healthy:
        good += 1
    else:
        busy.append("%s is %s" % (m.get("name") or m["peerURLs"][0], "unhealthy" if c else "not started"))
state = "none" if me is None else "started" if me.get("clientURLs") else "new" if me.get("name") else "added"
print("%x" % me["ID"] if me else "-", state, total, good, "; ".join(busy))
PY

# `member list` is linearizable from etcd 3.5 on: only healthy members are asked.
survey() {
  probe
  ((${#HEALTHY[@]})) || return 1
  printf -v EPS '%s,' "${HEALTHY[@]}"
  EPS=${EPS%,}
  read -r ID STATE TOTAL GOOD BUSY < <(ctl "$EPS" member list -w json | python3 -c "$SURVEY_PY" "$PEER_URL" "$NODE_NAME" "${HEALTHY[*]}")
}

# member_change DONE ARGS...: `etcdctl member ARGS`. etcd refuses a membership change while the
# leader has not been connected to a quorum for 5 s ("unhealthy cluster", as after a member
# restarts), so retry runs it; an error containing DONE means an earlier attempt already did it.
member_change() {
  local done=$1 out
  shift
  if out=$(ctl "$EPS" member "$@" 2>&1) || [[ $out == *"$done"* ]]; then return 0; fi
  log "etcdctl member $1: $out"
  return 1
}

others_ready() {
  if survey && [[ -z $BUSY ]]; then return 0; fi
  echo "${BUSY:-no healthy member}"
  return 1
}

# The manifest copy bootstrap.sh installs next, with --initial-cluster-state=new switched to
# existing: prepared in the tmpfs (a change of exactly that one line, or none if an earlier run made
# it) before the membership changes, moved into place after.
prepare_existing() {
  local n
  (umask 077 && sed 's/^\( *- --initial-cluster-state=\)new$/\1existing/' "$MANIFEST" >"$NEXT")
  n=$(diff "$MANIFEST" "$NEXT" | grep -c '^>' || true)
  if ((n != 1)) && ! { ((n == 0)) && grep -qx ' *- --initial-cluster-state=existing' "$MANIFEST"; }; then
    die "$EXIT_CONFIG" "want one '- --initial-cluster-state=new' line in $MANIFEST, changed $n"
  fi
}

# A member joining a running cluster must start with an --initial-cluster of exactly the members the
# cluster has, itself included, or etcd refuses ("member count is unequal"). The rendered list is
# every member the config wants: after a scale-out (etcd.nodeCount 3 -> 5) it names members nobody
# has added yet. Prints the cluster's list, or nothing when the rendered one has the same members.
read -r -d '' INITIAL_CLUSTER_PY <<'PY' || true
import json, sys
peer, node, rendered = sys.argv[1], sys.argv[2], sys.argv[3]
out = []
for m in json.load(sys.stdin).get("members") or []:
    urls = m.get("peerURLs") or []
    name = node if peer in urls else m.get("name")
    if not urls or not name:
        sys.exit("member %s has no name: another member is being added" % (urls or ["?"])[0])
    out.append("%s=%s" % (name, urls[0]))
if sorted(out) != sorted(rendered.split(",")):
    print(",".join(out))
PY

start_existing() {
  local rendered list
  rendered=$(sed -n 's/^ *- --initial-cluster=//p' "$NEXT")
  list=$(ctl "$EPS" member list -w json | python3 -c "$INITIAL_CLUSTER_PY" "$PEER_URL" "$NODE_NAME" "$rendered") ||
    die "$EXIT_ETCD_BUSY" "could not read the members this one joins"
  if [[ -n $list ]]; then
    sed -i "s|^\( *- --initial-cluster=\).*\$|\1$list|" "$NEXT"
    log "$MANIFEST names the cluster's members in --initial-cluster: $list"
  fi
  mv "$NEXT" "$MANIFEST"
  log "$MANIFEST starts etcd with --initial-cluster-state=existing"
}

# A transient election also leaves members unhealthy: the quorum counts as lost only when
# KUBEADM_HA_INIT_PROBES probes in a row find it so.
for ((i = 1; ; i++)); do
  if survey; then
    log "etcd members: this machine's $ID is $STATE; $GOOD of $((TOTAL - 1)) others healthy"
    case $STATE in
      new | added)
        if [[ $NODE_ROLE == etcd && $STATE == added ]]; then prepare_existing && start_existing; fi
        log "this machine's member has not started yet: nothing to remove"
        exit 0
        ;;
      started)
        if [[ -d $KUBEADM_HA_ETCD_DATA_DIR/member ]]; then
          log "this member's data is in $KUBEADM_HA_ETCD_DATA_DIR: nothing to do"
          exit 0
        fi
        ;;
      none)
        if [[ $NODE_ROLE != etcd ]]; then
          log "not a member: kubeadm join adds it"
          exit 0
        fi
        ;;
    esac
    ((GOOD < TOTAL / 2 + 1)) || break
  elif ((${#ANSWERING[@]} == 0)); then
    log "no other etcd member answers: the cluster is being created"
    exit 0
  fi
  ((i < KUBEADM_HA_INIT_PROBES)) || die "$EXIT_QUORUM" "refusing to replace this etcd member: ${#HEALTHY[@]} of ${#OTHERS[@]} others are healthy," \
    "too few for a quorum; restore etcd from a backup (README: When a machine dies)"
  sleep "$KUBEADM_HA_POLL_SECONDS"
done

if [[ $NODE_ROLE == etcd ]]; then prepare_existing; fi
# Never two replacements at once: a member that is down or added but not started may be another
# machine's replacement in flight, and changing the membership meanwhile can cost the quorum.
poll_until "the other etcd members to be started and healthy" "$EXIT_ETCD_BUSY" others_ready
others_ready >/dev/null || die "$EXIT_ETCD_BUSY" "the other etcd members changed: $BUSY"
if [[ $STATE != none ]]; then
  log "this machine replaces etcd member $ID ($PEER_URL), whose data is gone: removing it"
  retry 12 "$KUBEADM_HA_POLL_SECONDS" member_change "member not found" remove "$ID" || die "$EXIT_ETCD_BUSY" "etcd kept refusing"
fi
if [[ $NODE_ROLE == etcd ]]; then
  log "adding $NODE_NAME ($PEER_URL) as a new member"
  retry 12 "$KUBEADM_HA_POLL_SECONDS" member_change "already exists" add "$NODE_NAME" --peer-urls="$PEER_URL" || die "$EXIT_ETCD_BUSY" "etcd kept refusing"
  start_existing
fi
