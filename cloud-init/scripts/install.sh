#!/usr/bin/env bash
# Host preparation for kubeadm on Ubuntu 24.04: swap, kernel modules, sysctls, containerd, the
# pinned kubelet/kubeadm/kubectl and the AWS CLI. Idempotent: safe to run again after a failure.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "${BASH_SOURCE[0]%/*}/lib.sh"
load_env

SYSCTL_DIR=${SYSCTL_DIR:-/etc/sysctl.d}
MODULES_DIR=${MODULES_DIR:-/etc/modules-load.d}
APT_KEYRINGS=${APT_KEYRINGS:-/etc/apt/keyrings}
APT_SOURCES=${APT_SOURCES:-/etc/apt/sources.list.d}
CONTAINERD_CONFIG=${CONTAINERD_CONFIG:-/etc/containerd/config.toml}
FSTAB=${FSTAB:-/etc/fstab}
KUBE_REPO=https://pkgs.k8s.io/core:/stable:/v$KUBERNETES_MINOR/deb
KEYRING=$APT_KEYRINGS/kubernetes-apt-keyring.gpg

# boot.sh runs this before fetching the other scripts (they come with the AWS CLI it installs), then
# bootstrap.sh runs it again: the second run has nothing to do. /run is empty after a reboot.
DONE=$KUBEADM_HA_RUN/install.done
if [[ -e $DONE ]]; then
  log "host already prepared on this boot ($DONE)"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
# cloud-init's package modules and unattended-upgrades hold the dpkg lock during first boot.
apt_get() { apt-get -o DPkg::Lock::Timeout=300 -q "$@"; }
# `apt-get update` only warns and exits 0 when it cannot fetch an index (no route to the mirror
# yet), so a retry around it would never retry; Error-Mode=any makes any failed fetch an error
# (apt >= 2.1.16, apt-get(8) --error-on=any; Ubuntu 24.04 ships 2.7).
apt_update() { apt_get -o APT::Update::Error-Mode=any update; }
# Every install attempt refreshes the lists first: an install that failed on lists fetched before
# the network was up, or before a mirror moved, fails again on the same lists.
apt_install() { apt_update && apt_get install "$@"; }

log "disabling swap: kubelet refuses to start with swap on by default"
swapoff -a
if [[ -f $FSTAB ]]; then
  sed -E -i 's/^([^#[:space:]]+[[:space:]]+[^[:space:]]+[[:space:]]+swap[[:space:]])/#kubeadm-ha# \1/' "$FSTAB"
fi

log "loading overlay and br_netfilter"
mkdir -p "$MODULES_DIR" "$SYSCTL_DIR"
printf '%s\n' overlay br_netfilter >"$MODULES_DIR/kubeadm-ha.conf"
modprobe overlay
modprobe br_netfilter
printf '%s\n' net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1 \
  net.bridge.bridge-nf-call-ip6tables=1 >"$SYSCTL_DIR/99-kubeadm-ha.conf"
sysctl --system >/dev/null

log "installing containerd from the Ubuntu archive"
retry 5 "$KUBEADM_HA_POLL_SECONDS" apt_install -y containerd ca-certificates curl gpg iptables
mkdir -p "${CONTAINERD_CONFIG%/*}"
# kubeadm configures the kubelet with the systemd cgroup driver; containerd must use the same one
# or pods are killed and restarted under two cgroup managers. containerd 2.0/2.1 leave the key out
# of their default config (https://github.com/containerd/containerd/issues/12101): add it then.
containerd config default | sed -E 's/^([[:space:]]*SystemdCgroup[[:space:]]*=).*/\1 true/' >"$CONTAINERD_CONFIG.new"
if ! grep -q SystemdCgroup "$CONTAINERD_CONFIG.new"; then
  sed -E -i '/\.runtimes\.runc\.options\]$/a\            SystemdCgroup = true' "$CONTAINERD_CONFIG.new"
fi
grep -Eq '^[[:space:]]*SystemdCgroup = true$' "$CONTAINERD_CONFIG.new" ||
  die 1 "containerd's default config has no SystemdCgroup option to enable"
mv "$CONTAINERD_CONFIG.new" "$CONTAINERD_CONFIG"
systemctl enable containerd
systemctl restart containerd

log "installing kubelet, kubeadm and kubectl $KUBERNETES_VERSION from $KUBE_REPO"
fetch_key() {
  curl -fsSL --max-time 60 "$KUBE_REPO/Release.key" | gpg --dearmor --yes --output "$KEYRING"
}
mkdir -p "$APT_KEYRINGS" "$APT_SOURCES"
retry 5 "$KUBEADM_HA_POLL_SECONDS" fetch_key
chmod 0644 "$KEYRING"
printf 'deb [signed-by=%s] %s/ /\n' "$KEYRING" "$KUBE_REPO" >"$APT_SOURCES/kubernetes.list"
# The hold keeps `apt upgrade` from moving the kubelet past the control plane (version skew
# policy); on a re-run the packages are already held, hence --allow-change-held-packages.
retry 5 "$KUBEADM_HA_POLL_SECONDS" apt_install -y --allow-change-held-packages \
  "kubelet=$KUBERNETES_VERSION-*" "kubeadm=$KUBERNETES_VERSION-*" "kubectl=$KUBERNETES_VERSION-*"
apt-mark hold kubelet kubeadm kubectl
systemctl enable kubelet
# Before the kubelet ever runs a pod: pods never reach the instance metadata service, where the
# node role's credentials are (cloud-init/systemd/kubeadm-ha-imds-guard.service). etcd members run none.
if [[ $NODE_ROLE != etcd ]]; then
  log "dropping pod traffic to the instance metadata service"
  systemctl enable --now kubeadm-ha-imds-guard.service
fi

if ! command -v aws >/dev/null; then
  log "installing the AWS CLI snap"
  # On first boot snapd may still be seeding; installs before that fail.
  snap wait system seed.loaded
  retry 5 "$KUBEADM_HA_POLL_SECONDS" snap install aws-cli --classic
fi
mkdir -p "$KUBEADM_HA_RUN"
touch "$DONE"
log "host prepared"
