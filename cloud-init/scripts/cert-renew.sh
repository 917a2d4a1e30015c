#!/usr/bin/env bash
# Renews this machine's kubeadm-managed certificates and kubeconfigs before they expire, then
# restarts the static pods that read them. `--force` renews whatever their expiry. Run by kubeadm-ha-cert-renew.timer on every master and
# external etcd member; idempotent: while every certificate has more than CERT_RENEW_BEFORE_DAYS
# left it only logs the soonest expiry.
#
# kubeadm signs one-year leaf certificates (apiserver, apiserver-kubelet-client, front-proxy-client,
# the stacked etcd server/peer/healthcheck pairs, admin.conf, super-admin.conf,
# controller-manager.conf, scheduler.conf) and renews nothing by itself; a static pod reads its
# certificates only when it starts. Kubespray ships a renewal timer the same way; Cluster API rolls
# the machines instead.
#
# One machine at a time across the cluster, each only while the others are healthy:
#   masters            hold the join lock (join-lock.sh, a Lease in kube-system) for the whole
#                      renewal and restart, after every other API server and every etcd member
#                      answers healthy;
#   external etcd      hold an etcd lock (a key under a lease, created by compare-and-swap) after
#                      every other member answers healthy, the rejoin's quorum guard.
# Each component restarts as kubeadm's documentation says (move its manifest out until it is down,
# then back), and the next only once the one before serves again, with its new certificate where
# it serves one.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "${BASH_SOURCE[0]%/*}/lib.sh"
load_env
# shellcheck source-path=SCRIPTDIR source=etcdctl.sh
source "$KUBEADM_HA_LIB/etcdctl.sh"

[[ $NODE_ROLE == control-plane || $NODE_ROLE == etcd ]] || die "$EXIT_CONFIG" "certificates renew on masters and etcd members, not on $NODE_ROLE"
DAYS=${CERT_RENEW_BEFORE_DAYS:-60}
[[ $DAYS =~ ^[1-9][0-9]*$ ]] || die "$EXIT_CONFIG" "CERT_RENEW_BEFORE_DAYS must be a whole number of days above 0, got '$DAYS'"
RENEW_BEFORE=$((DAYS * 86400))
case ${1:-} in
  --force) RENEW_BEFORE=$((100 * 365 * 86400)) ;;
  "") ;;
  *) die "$EXIT_CONFIG" "usage: cert-renew.sh [--force]" ;;
esac
# Tests run kubeadm chrooted into a machine's directory (its --rootfs); on a machine both are /.
ROOTFS=${KUBEADM_HA_ROOTFS:-}
# What a component binds on its own loopback (tests move it to the machine's address).
LOCAL_ADDRESS=${KUBEADM_HA_LOCAL_ADDRESS:-127.0.0.1}
PKI=$KUBERNETES_DIR/pki
MANIFESTS=$KUBERNETES_DIR/manifests
PARKED=$KUBEADM_HA_RUN/manifests-parked
CONFIG=$KUBEADM_HA_RUN/cert-renew-cluster.yaml

kubeadm_root() { if [[ -n $ROOTFS ]]; then kubeadm "$@" --rootfs "$ROOTFS"; else kubeadm "$@"; fi; }
# A path of this machine as kubeadm sees it inside the root.
as_root() { printf '%s' "${1#"$ROOTFS"}"; }

# The ClusterConfiguration kubeadm renews with. The leaf certificates keep their subjects and SANs
# (kubeadm takes them from the certificates it renews); the lifetime is kubeadm's default, one year.
# etcd `local` where this machine holds a member (and for the API server's etcd client
# certificate, which kubeadm only renews for a local etcd); `external` otherwise, so kubeadm leaves
# the etcd certificates alone.
write_config() {
  local etcd=$1
  mkdir -p "$KUBEADM_HA_RUN"
  ETCD_SECTION=$etcd CERT_DIR=$(as_root "$PKI") python3 -c 'import json, os; e = os.environ
etcd = {"local": {"dataDir": "/var/lib/etcd"}} if e["ETCD_SECTION"] == "local" else {"external": {
    "endpoints": [u for u in e.get("ETCD_ENDPOINTS", "").split(",") if u] or ["https://127.0.0.1:2379"],
    "caFile": e["CERT_DIR"] + "/etcd/ca.crt", "certFile": e["CERT_DIR"] + "/apiserver-etcd-client.crt",
    "keyFile": e["CERT_DIR"] + "/apiserver-etcd-client.key"}}
print(json.dumps({"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration",
    "clusterName": e["CLUSTER_NAME"], "kubernetesVersion": "v" + e["KUBERNETES_VERSION"],
    "controlPlaneEndpoint": e.get("API_ENDPOINT") or e["NODE_IP"] + ":6443",
    "certificatesDir": e["CERT_DIR"], "etcd": etcd}))' >"$CONFIG"
}

# Prints `<seconds left> <name>` for every certificate and kubeconfig kubeadm manages here, soonest first.
read -r -d '' EXPIRY_PY <<'PY' || true
import json, sys
info = json.load(sys.stdin)
for c in info.get("certificates") or []:
    if c.get("missing") or c.get("externallyManaged"):
        continue
    print(int(c.get("residualTime") or 0), c["name"])
PY

expiries() {
  local etcd=$1
  write_config "$etcd"
  kubeadm_root certs check-expiration --config "$(as_root "$CONFIG")" -o json | python3 -c "$EXPIRY_PY"
  # With external etcd kubeadm does not list the API server's etcd client certificate.
  if [[ $NODE_ROLE == control-plane && $ETCD_TOPOLOGY == external ]]; then
    printf '%s apiserver-etcd-client\n' "$(seconds_left "$PKI/apiserver-etcd-client.crt")"
  fi
}

seconds_left() {
  local end
  end=$(openssl x509 -noout -enddate -in "$1") || return 1
  echo $(($(date -d "${end#notAfter=}" +%s) - $(date +%s)))
}

# The component's serving certificate's SHA-256 fingerprint, or nothing when it does not answer.
served() {
  openssl s_client -connect "$1" -servername "${1%:*}" </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256 2>/dev/null || true
}

file_fingerprint() { openssl x509 -noout -fingerprint -sha256 -in "$1"; }

# What each component serves on, how its health reads, and the certificate it serves (none for the
# controller manager and scheduler, whose serving certificates are self-signed at start).
component_address() {
  case $1 in
    etcd) echo "$NODE_IP:2379" ;;
    kube-apiserver) echo "$NODE_IP:6443" ;;
    kube-controller-manager) echo "$LOCAL_ADDRESS:10257" ;;
    kube-scheduler) echo "$LOCAL_ADDRESS:10259" ;;
  esac
}
component_cert() {
  case $1 in
    etcd) echo "$PKI/etcd/server.crt" ;;
    kube-apiserver) echo "$PKI/apiserver.crt" ;;
  esac
}
healthy_locally() {
  case $1 in
    etcd) curl --silent --fail --max-time 5 --output /dev/null "http://$LOCAL_ADDRESS:2381/health" ;;
    kube-apiserver) curl --silent --fail --max-time 5 --output /dev/null --cacert "$PKI/ca.crt" "https://$NODE_IP:6443/readyz" ;;
    *) curl --silent --fail --max-time 5 --output /dev/null --insecure "https://$(component_address "$1")/healthz" ;;
  esac
}

down() { [[ -z $(served "$(component_address "$1")") ]]; }
back_up() {
  local component=$1 before=$2 now cert
  now=$(served "$(component_address "$component")")
  [[ -n $now ]] || return 1
  cert=$(component_cert "$component")
  if [[ -n $cert ]]; then
    [[ $now == "$(file_fingerprint "$cert")" ]] || return 1
  else
    [[ $now != "$before" ]] || return 1
  fi
  healthy_locally "$component"
}

# kubeadm's documented restart: the kubelet stops a static pod whose manifest leaves the directory
# (within its fileCheckFrequency, 20 s) and starts it again when the manifest returns.
restart() {
  local component=$1 file=$MANIFESTS/$1.yaml before
  [[ -f $file ]] || return 0
  before=$(served "$(component_address "$component")")
  mkdir -p "$PARKED"
  mv "$file" "$PARKED/"
  log "restarting $component: manifest moved out"
  poll_until "$component to stop" "$EXIT_ETCD_BUSY" down "$component"
  mv "$PARKED/$component.yaml" "$file"
  poll_until "$component to serve again with its renewed certificate" "$EXIT_ETCD_BUSY" back_up "$component" "$before"
}

# Whatever happens, no manifest stays parked: a failed wait must not leave a component stopped.
unpark() {
  local parked
  for parked in "$PARKED"/*.yaml; do
    [[ -e $parked ]] || continue
    log "putting back ${parked##*/}"
    mv "$parked" "$MANIFESTS/"
  done
}
unpark

# --- Health of the others: the gate before any restart ---

etcd_others_healthy() {
  local name client peer bad=()
  while read -r name client peer; do
    [[ $peer == "https://$NODE_IP:2380" ]] && continue
    etcdctl_run --endpoints="$client" endpoint health &>/dev/null || bad+=("$name")
  done <<<"$MEMBERS"
  ((${#bad[@]} == 0)) || { echo "etcd members not healthy: ${bad[*]}"; return 1; }
}

external_etcd_healthy() {
  local endpoint bad=()
  for endpoint in ${ETCD_ENDPOINTS//,/ }; do
    curl --silent --fail --max-time 5 --output /dev/null --cacert "$PKI/etcd/ca.crt" \
      --cert "$PKI/apiserver-etcd-client.crt" --key "$PKI/apiserver-etcd-client.key" "$endpoint/health" || bad+=("$endpoint")
  done
  ((${#bad[@]} == 0)) || { echo "etcd endpoints not healthy: ${bad[*]}"; return 1; }
}

masters_healthy() {
  local ip bad=()
  for ip in ${CONTROL_PLANE_IPS//,/ }; do
    [[ $ip == "$NODE_IP" ]] && continue
    curl --silent --fail --max-time 5 --output /dev/null --cacert "$PKI/ca.crt" "https://$ip:6443/readyz" || bad+=("$ip")
  done
  ((${#bad[@]} == 0)) || { echo "API servers not ready: ${bad[*]}"; return 1; }
}

others_healthy() {
  if [[ $NODE_ROLE == etcd ]]; then
    etcd_others_healthy
    return
  fi
  masters_healthy || return 1
  if [[ $ETCD_TOPOLOGY == stacked ]]; then etcd_others_healthy; else external_etcd_healthy; fi
}

# --- Main ---

if [[ $NODE_ROLE == etcd ]]; then
  etcd_section=local
  components=(etcd)
  renew=(etcd-server etcd-peer)
elif [[ $ETCD_TOPOLOGY == stacked ]]; then
  etcd_section=local
  components=(etcd kube-apiserver kube-controller-manager kube-scheduler)
  renew=(all)
else
  etcd_section=external
  components=(kube-apiserver kube-controller-manager kube-scheduler)
  renew=(all)
fi
if [[ $etcd_section == local ]]; then
  MEMBERS=$(etcd_members)
  etcd_client_env
fi
[[ $NODE_ROLE == etcd || -n ${CONTROL_PLANE_IPS:-} ]] || die "$EXIT_CONFIG" "CONTROL_PLANE_IPS is not set in $KUBEADM_HA_ETC/node.env"

left=$(expiries "$etcd_section" | sort -n)
[[ -n $left ]] || die 1 "kubeadm lists no certificate to check in $PKI"
mapfile -t due < <(awk -v limit="$RENEW_BEFORE" '$1 <= limit {print $2}' <<<"$left")
read -r soonest soonest_name <<<"$left"
if ((${#due[@]} == 0)); then
  log "every certificate here has more than $DAYS days left (soonest: $soonest_name, $((soonest / 86400)) days): nothing to renew"
  exit 0
fi
log "within $DAYS days of expiry: ${due[*]}"

if [[ $NODE_ROLE == etcd ]]; then
  trap 'rc=$?; unpark; etcd_unlock; exit "$rc"' EXIT
  etcd_lock
else
  # shellcheck source-path=SCRIPTDIR source=join-lock.sh
  source "$KUBEADM_HA_LIB/join-lock.sh"
  trap 'rc=$?; unpark; release_join_lock || true; exit "$rc"' EXIT
  acquire_join_lock
  keep_join_lock
fi
poll_until "every other API server and etcd member to be healthy" "$EXIT_ETCD_BUSY" others_healthy

write_config "$etcd_section"
for what in "${renew[@]}"; do kubeadm_root certs renew "$what" --config "$(as_root "$CONFIG")"; done
if [[ $NODE_ROLE == control-plane && $ETCD_TOPOLOGY == external ]]; then
  # kubeadm renews the API server's etcd client certificate only for a local etcd; the master
  # holds the etcd CA key for this (fetch-secrets.sh).
  write_config local
  kubeadm_root certs renew apiserver-etcd-client --config "$(as_root "$CONFIG")"
fi
log "renewed: ${renew[*]}"

for component in "${components[@]}"; do
  restart "$component"
  # The next restart waits for the cluster to be whole again.
  poll_until "every other API server and etcd member to be healthy" "$EXIT_ETCD_BUSY" others_healthy
done
log "certificates renewed and ${components[*]} restarted"
