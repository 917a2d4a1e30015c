# shellcheck shell=bash
# Helpers sourced by the kubeadm-ha bootstrap scripts. Every path root is overridable so the tests
# run these scripts unprivileged in a temp dir (test/bootstrap-scripts.test.ts).

# Exit codes, shared by the scripts and asserted by the tests.
readonly EXIT_CONFIG=2 EXIT_API_TIMEOUT=3 EXIT_LOCK_TIMEOUT=4 EXIT_GAVE_UP=5 EXIT_SECRETS=6 EXIT_ETCD_TIMEOUT=7
export EXIT_CONFIG EXIT_API_TIMEOUT EXIT_LOCK_TIMEOUT EXIT_GAVE_UP EXIT_SECRETS EXIT_ETCD_TIMEOUT
# etcd-backup.sh and etcd-restore.sh: a snapshot that cannot be taken or verified; S3 refusing a transfer.
readonly EXIT_SNAPSHOT=10 EXIT_S3=11
export EXIT_SNAPSHOT EXIT_S3
# addons.sh: a chart or manifest the API would not take, after every retry.
readonly EXIT_ADDONS=8
export EXIT_ADDONS
# etcd-rejoin.sh: replacing this machine's etcd member would lose quorum; another replacement is in flight.
readonly EXIT_QUORUM=12 EXIT_ETCD_BUSY=13
export EXIT_QUORUM EXIT_ETCD_BUSY
# boot.sh: a bootstrap object that cannot be fetched, or whose content is not the one user data pins.
readonly EXIT_BUNDLE=14
export EXIT_BUNDLE
# node-ready.sh: the node never became Ready; the auto scaling group would not take the report.
readonly EXIT_NOT_READY=15 EXIT_LIFECYCLE=16
export EXIT_NOT_READY EXIT_LIFECYCLE

LOG_TAG=${BASH_SOURCE[-1]##*/}
LOG_TAG=${LOG_TAG%.sh}

# cloud-init sends runcmd output to the journal and /var/log/cloud-init-output.log; one timestamped
# line per event on stderr keeps both readable. printf's %()T is a builtin: no process per line.
log() { printf '%(%Y-%m-%dT%H:%M:%S%z)T kubeadm-ha[%s]: %s\n' -1 "$LOG_TAG" "$*" >&2; }

die() {
  local code=$1
  shift
  log "ERROR: $*"
  exit "$code"
}

# retry ATTEMPTS DELAY_SECONDS CMD...: runs CMD until it succeeds. CMD runs as an `until` condition,
# where `set -e` is off, so a function passed here must return its own failures.
retry() {
  local attempts=$1 delay=$2 n=1
  shift 2
  until "$@"; do
    if ((n >= attempts)); then
      log "$1: failed $n times, giving up"
      return 1
    fi
    log "$1: attempt $n/$attempts failed, retrying in ${delay}s"
    sleep "$delay"
    n=$((n + 1))
  done
}

init_paths() {
  export KUBEADM_HA_ETC=${KUBEADM_HA_ETC:-/etc/kubeadm-ha}
  export KUBERNETES_DIR=${KUBERNETES_DIR:-/etc/kubernetes}
  export KUBEADM_HA_RUN=${KUBEADM_HA_RUN:-/run/kubeadm-ha}
  export KUBEADM_HA_LIB=${KUBEADM_HA_LIB:-/usr/local/lib/kubeadm-ha}
  export KUBEADM_HA_ETCD_DATA_DIR=${KUBEADM_HA_ETCD_DATA_DIR:-/var/lib/etcd}
  export KUBEADM_HA_WAIT_SECONDS=${KUBEADM_HA_WAIT_SECONDS:-1800}
  export KUBEADM_HA_POLL_SECONDS=${KUBEADM_HA_POLL_SECONDS:-10}
  export KUBEADM_HA_BACKOFF_SECONDS=${KUBEADM_HA_BACKOFF_SECONDS:-20}
  export KUBEADM_HA_JOIN_ATTEMPTS=${KUBEADM_HA_JOIN_ATTEMPTS:-5}
  export KUBEADM_HA_LOCK_STALE_SECONDS=${KUBEADM_HA_LOCK_STALE_SECONDS:-900}
  export KUBEADM_HA_INIT_PROBES=${KUBEADM_HA_INIT_PROBES:-3}
  local v
  for v in KUBEADM_HA_WAIT_SECONDS KUBEADM_HA_BACKOFF_SECONDS KUBEADM_HA_JOIN_ATTEMPTS \
    KUBEADM_HA_LOCK_STALE_SECONDS KUBEADM_HA_INIT_PROBES; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$EXIT_CONFIG" "$v must be a whole number of seconds/attempts, got '${!v}'"
  done
  [[ $KUBEADM_HA_POLL_SECONDS =~ ^[0-9]+(\.[0-9]+)?$ ]] ||
    die "$EXIT_CONFIG" "KUBEADM_HA_POLL_SECONDS must be a number, got '$KUBEADM_HA_POLL_SECONDS'"
  ((KUBEADM_HA_JOIN_ATTEMPTS >= 1)) || die "$EXIT_CONFIG" "KUBEADM_HA_JOIN_ATTEMPTS must be at least 1"
  # snap installs the AWS CLI under /snap/bin, which cloud-init's runcmd PATH lacks.
  case ":$PATH:" in *:/snap/bin:*) ;; *) PATH=$PATH:/snap/bin ;; esac
}

# Sources node.env (written by cloud-init) and checks every value the scripts rely on.
load_env() {
  init_paths
  local env_file=$KUBEADM_HA_ETC/node.env v
  [[ -r $env_file ]] || die "$EXIT_CONFIG" "$env_file is missing: cloud-init write_files should have written it"
  set -a
  # shellcheck source=/dev/null
  source "$env_file"
  set +a
  for v in CLUSTER_NAME NODE_ROLE NODE_NAME NODE_IP INIT_NODE KUBERNETES_VERSION KUBERNETES_MINOR \
    AWS_REGION SECRET_ID TOKEN_PLACEHOLDER; do
    [[ -n ${!v:-} ]] || die "$EXIT_CONFIG" "$v is not set in $env_file"
  done
  [[ $NODE_ROLE == control-plane || $NODE_ROLE == worker || $NODE_ROLE == etcd ]] ||
    die "$EXIT_CONFIG" "NODE_ROLE must be control-plane, worker or etcd, got '$NODE_ROLE'"
  # External etcd members never talk to the Kubernetes API.
  [[ $NODE_ROLE == etcd || -n ${API_ENDPOINT:-} ]] || die "$EXIT_CONFIG" "API_ENDPOINT is not set in $env_file"
  if [[ $NODE_ROLE == control-plane ]]; then
    [[ ${ETCD_TOPOLOGY:-} == stacked || ${ETCD_TOPOLOGY:-} == external ]] ||
      die "$EXIT_CONFIG" "ETCD_TOPOLOGY must be stacked or external on a control-plane node, got '${ETCD_TOPOLOGY:-}'"
    [[ $ETCD_TOPOLOGY == stacked || -n ${ETCD_ENDPOINTS:-} ]] ||
      die "$EXIT_CONFIG" "ETCD_ENDPOINTS is not set in $env_file (required with external etcd)"
  fi
  # Auto scaling groups launch machines whose address nobody knows at render time: such nodes
  # learn their name and address from the instance metadata service.
  if [[ $NODE_NAME == auto ]]; then NODE_NAME=$(imds local-hostname) || die "$EXIT_CONFIG" "could not read local-hostname from instance metadata"; fi
  if [[ $NODE_IP == auto ]]; then NODE_IP=$(imds local-ipv4) || die "$EXIT_CONFIG" "could not read local-ipv4 from instance metadata"; fi
  [[ $NODE_IP =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || die "$EXIT_CONFIG" "NODE_IP must be an IPv4 address, got '$NODE_IP'"
  export NODE_NAME NODE_IP
  [[ $INIT_NODE == true || $INIT_NODE == false ]] || die "$EXIT_CONFIG" "INIT_NODE must be true or false, got '$INIT_NODE'"
  [[ $INIT_NODE == false || $NODE_ROLE == control-plane ]] || die "$EXIT_CONFIG" "INIT_NODE=true on a worker"
  [[ $KUBERNETES_VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+$ && $KUBERNETES_VERSION == "$KUBERNETES_MINOR".* ]] ||
    die "$EXIT_CONFIG" "KUBERNETES_VERSION '$KUBERNETES_VERSION' is not a x.y.z release of KUBERNETES_MINOR '$KUBERNETES_MINOR'"
}

# imds PATH: one value from the EC2 instance metadata service with an IMDSv2 session token
# (instances require tokens: httpTokens=required).
imds() {
  local base=${IMDS_ENDPOINT:-http://169.254.169.254} token
  token=$(curl --silent --show-error --fail --max-time 5 -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 300" \
    "$base/latest/api/token") || return 1
  curl --silent --show-error --fail --max-time 5 -H "X-aws-ec2-metadata-token: $token" "$base/latest/meta-data/$1"
}

# poll_until WHAT EXIT_CODE CMD...: runs CMD every KUBEADM_HA_POLL_SECONDS until it succeeds; after
# KUBEADM_HA_WAIT_SECONDS dies with EXIT_CODE and CMD's last output.
poll_until() {
  local what=$1 code=$2 deadline=$((SECONDS + KUBEADM_HA_WAIT_SECONDS)) out rc
  shift 2
  until out=$("$@" 2>&1); do
    rc=$?
    ((SECONDS < deadline)) || die "$code" "timed out after ${KUBEADM_HA_WAIT_SECONDS}s waiting for $what (last exit $rc: ${out:-no output})"
    log "waiting for $what (exit $rc: ${out:-no output})"
    sleep "$KUBEADM_HA_POLL_SECONDS"
  done
  log "$what is ready"
}

# Prints nothing and returns curl's exit code: 0 when the API behind the load balancer is ready.
api_ready() {
  local ca=$KUBERNETES_DIR/pki/ca.crt
  local tls=(--cacert "$ca")
  if [[ $NODE_ROLE == worker && ! -f $ca ]]; then
    # A worker has no CA file before it joins. The probe only decides when to try; it sends no
    # secret, and `kubeadm join` itself authenticates the API against discovery's CA cert hash.
    tls=(--insecure)
  fi
  curl --silent --show-error --fail --connect-timeout 5 --max-time 10 "${tls[@]}" \
    --output /dev/null "https://$API_ENDPOINT/readyz"
}

wait_for_api() {
  local deadline=$((SECONDS + KUBEADM_HA_WAIT_SECONDS)) err rc
  while true; do
    rc=0
    err=$(api_ready 2>&1) || rc=$?
    if ((rc == 0)); then
      log "API https://$API_ENDPOINT is ready"
      return 0
    fi
    if ((SECONDS >= deadline)); then
      die "$EXIT_API_TIMEOUT" "timed out after ${KUBEADM_HA_WAIT_SECONDS}s waiting for the Kubernetes API at https://$API_ENDPOINT/readyz (last curl exit $rc: ${err:-no output})"
    fi
    log "API not ready (curl exit $rc: ${err:-no output}); polling again in ${KUBEADM_HA_POLL_SECONDS}s"
    sleep "$KUBEADM_HA_POLL_SECONDS"
  done
}
