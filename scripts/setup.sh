#!/usr/bin/env bash
# `npm run setup`: everything the tests need on a fresh Debian or Ubuntu machine, then the main job,
# the offline render of the dev stack. Each step checks before it acts, so a second run only checks
# (seconds). `.ci/run` runs it too.
#
# Usage: scripts/setup.sh [step...]    steps, in this order by default: system npm binaries aws render
#   system    Debian packages of the real validators the tests call (apt-get as root, or with sudo;
#             otherwise it names the packages to install and fails)
#   npm       npm ci, skipped while node_modules matches package-lock.json and this Node
#   binaries  the real Kubernetes and etcd binaries, built from their Go modules (test/k8s/build.sh;
#             cold: about 5 minutes and 450 MB in .cache/k8s, reused after)
#   aws       moto and the AWS CLI, pinned (test/moto-requirements.txt), in a venv in .cache/aws
#   render    npm run render -- dev, into out/dev/
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# The command each test calls and the Debian package that has it: cloud-init's schema check, the
# shell linter, openssl, systemd-analyze (the backup timer units), HAProxy in front of the loopback
# control plane, iproute2 and util-linux for its private network namespace, and Python's venv for
# moto.
TOOLS=(cloud-init shellcheck openssl systemd-analyze haproxy ip unshare python3)
declare -A PACKAGE=([cloud-init]=cloud-init [shellcheck]=shellcheck [openssl]=openssl [systemd-analyze]=systemd
  [haproxy]=haproxy [ip]=iproute2 [unshare]=util-linux [python3]=python3 [venv]=python3-venv)

step_system() {
  local missing=() packages=() sudo=()
  for t in "${TOOLS[@]}"; do command -v "$t" >/dev/null 2>&1 || missing+=("$t"); done
  # Debian's python3 lacks ensurepip, which `python3 -m venv` needs, until python3-venv is installed.
  if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then missing+=(venv); fi
  for t in "${missing[@]}"; do packages+=("${PACKAGE[$t]}"); done
  if [ "${#packages[@]}" -eq 0 ]; then
    log "system tools: all present"
  else
    if [ "$(id -u)" -ne 0 ]; then
      if command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then sudo=(sudo -n)
      else die "missing ${missing[*]}; install the Debian packages as root, then run npm run setup again:
    apt-get update && apt-get install -y --no-install-recommends ${packages[*]}"
      fi
    fi
    log "installing Debian packages: ${packages[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || die "apt-get update failed"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >&2 \
      || die "apt-get install ${packages[*]} failed"
  fi
  # Debian's haproxy package starts a default instance; the tests start their own.
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet haproxy 2>/dev/null; then
    "${sudo[@]}" systemctl stop haproxy >/dev/null 2>&1 || true
  fi
}

step_npm() {
  # package.json's engines; @pulumi/pulumi 3.248 is the last release that runs on Node 20.
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  if [ "$major" -lt 20 ] || [ "$major" -gt 22 ]; then die "node $(node --version) is unsupported: kubeadm-ha needs Node.js 20 or 22"; fi
  local stamp=node_modules/.kubeadm-ha-setup want
  want="$(sha256sum package-lock.json | cut -d' ' -f1) node $(node --version)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    log "npm dependencies: node_modules matches package-lock.json"
    return
  fi
  log "npm ci (node $(node --version), npm $(npm --version))"
  npm ci --no-audit --no-fund >&2 || die "npm ci failed"
  echo "$want" >"$stamp"
}

step_binaries() {
  command -v go >/dev/null 2>&1 || die "go is missing: the tests build the real Kubernetes and etcd binaries with Go $(go_wanted) or newer (https://go.dev/doc/install)"
  local have
  have=$(go env GOVERSION | sed 's/^go//')
  if ! printf '%s\n%s\n' "$(go_wanted)" "$have" | sort -V -C; then
    die "go $have is too old: test/k8s/*/go.mod need Go $(go_wanted) or newer"
  fi
  local start=$SECONDS
  bash test/k8s/build.sh >/dev/null || die "building the Kubernetes and etcd binaries failed (bash test/k8s/build.sh)"
  log "Kubernetes and etcd binaries ready in $((SECONDS - start)) s"
}
go_wanted() { sed -n 's/^go //p' test/k8s/kubernetes/go.mod; }

step_aws() {
  # Reinstalled only when test/moto-requirements.txt changes; no root needed.
  local venv=.cache/aws
  if cmp -s test/moto-requirements.txt "$venv/requirements.txt" && [ -x "$venv/bin/moto_server" ]; then
    log "moto and the AWS CLI: $venv matches test/moto-requirements.txt"
    return
  fi
  log "installing $(grep -v '^#' test/moto-requirements.txt | tr '\n' ' ')into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv" || die "python3 -m venv $venv failed"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r test/moto-requirements.txt >&2 || die "pip install of the moto environment failed"
  cp test/moto-requirements.txt "$venv/requirements.txt"
}

step_render() {
  npm run --silent render -- dev
}

steps=("$@")
[ "${#steps[@]}" -gt 0 ] || steps=(system npm binaries aws render)
for s in "${steps[@]}"; do
  case $s in
    system | npm | binaries | aws | render) ;;
    *) die "unknown step $s (steps: system npm binaries aws render)" ;;
  esac
done
start=$SECONDS
for s in "${steps[@]}"; do "step_$s"; done
log "done in $((SECONDS - start)) s"
