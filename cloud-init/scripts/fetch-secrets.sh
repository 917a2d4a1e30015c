#!/usr/bin/env bash
# Fetches this node role's secret from AWS Secrets Manager (a JSON object: file name -> content),
# writes the key material under $KUBERNETES_DIR/pki and renders the kubeadm documents with the
# bootstrap token into $KUBEADM_HA_RUN. An external etcd member installs only its own
# certificates and has no token. The token only ever lives in memory and in
# $KUBEADM_HA_RUN, a tmpfs on the machine, so it is gone after a reboot.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "${BASH_SOURCE[0]%/*}/lib.sh"
load_env

get_secret() {
  aws secretsmanager get-secret-value --region "$AWS_REGION" --secret-id "$SECRET_ID" \
    --query SecretString --output text
}

# Reads the secret on stdin, never from argv (visible in ps) and never from a file.
read -r -d '' WRITE_PY <<'PY' || true
import json, os, re, sys, time

def log(msg):
    print(time.strftime("%Y-%m-%dT%H:%M:%S%z"), "kubeadm-ha[fetch-secrets]:", msg, file=sys.stderr)

def fail(msg):
    log("ERROR: " + msg)
    sys.exit(1)

def write(path, text, mode):
    # The mode is set before any byte is written, and readers never see a partial file.
    tmp = path + ".kubeadm-ha.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.fchmod(fd, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)

env = os.environ
try:
    secret = json.loads(sys.stdin.read())
except ValueError:
    fail("the secret is not JSON")
if not isinstance(secret, dict) or not all(isinstance(v, str) for v in secret.values()):
    fail("the secret must be a JSON object of file name -> string content")
role, pki = env["NODE_ROLE"], os.path.join(env["KUBERNETES_DIR"], "pki")
if role == "etcd":
    # The etcd secret holds every member's keys; a member installs its own and the CA pair, with
    # which it renews its own certificates (cert-renew.sh).
    node = env["NODE_NAME"]
    if not re.fullmatch(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?", node):
        fail(f"NODE_NAME {node!r} is not a node name")
    own = {"etcd/ca.crt": "etcd/ca.crt", "etcd/ca.key": "etcd/ca.key"}
    for f in ("server.crt", "server.key", "peer.crt", "peer.key"):
        own[f"members/{node}/{f}"] = "etcd/" + f
    missing = [n for n in own if n not in secret]
    if missing:
        fail("the etcd secret lacks " + ", ".join(missing))
    others = [n for n in secret if n not in own]
    if others:
        log(f"ignoring {len(others)} secret entries that are not this member's")
    for name, dest in sorted(own.items(), key=lambda e: e[1]):
        path = os.path.join(pki, dest)
        os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
        write(path, secret[name], 0o600 if dest.endswith(".key") else 0o644)
    log(f"wrote {', '.join(sorted(own.values()))} under {pki}")
    sys.exit(0)
token = secret.get("bootstrap-token", "")
if not re.fullmatch(r"[a-z0-9]{6}\.[a-z0-9]{16}", token):
    fail("the secret's bootstrap-token is missing or malformed (want [a-z0-9]{6}.[a-z0-9]{16})")
# The masters rotate the workers' token and write its expiry beside it (token-rotate.sh); Pulumi's
# initial token has none.
expires = secret.get("bootstrap-token-expires")
if expires:
    from datetime import datetime, timezone
    try:
        at = datetime.fromisoformat(expires.replace("Z", "+00:00"))
    except ValueError:
        fail(f"the secret's bootstrap-token-expires is not a time: {expires!r}")
    if at <= datetime.now(timezone.utc):
        fail(f"the join token in {env['SECRET_ID']} expired at {expires}: the masters renew it every hour "
             "(kubeadm-ha-token-rotate.timer); check that a master is up and that timer runs on it "
             "(journalctl -u kubeadm-ha-token-rotate.service)")
    log(f"the join token is good until {expires}")
# With external etcd the API servers hold a client certificate for it, and no master the etcd CA key.
external_etcd = role == "control-plane" and env.get("ETCD_TOPOLOGY") == "external"
if role == "control-plane":
    etcd_need = ["apiserver-etcd-client.crt", "apiserver-etcd-client.key"] if external_etcd else []
    need = ["ca.crt", "ca.key", "front-proxy-ca.crt", "front-proxy-ca.key", "etcd/ca.crt", "etcd/ca.key", *etcd_need, "sa.key", "sa.pub"]
    missing = [n for n in need if n not in secret]
    if missing:
        fail("the control-plane secret lacks " + ", ".join(missing))
safe = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*")
written = []
for name in sorted(secret):
    if name == "bootstrap-token":
        continue
    if role != "control-plane":
        # A worker must never hold CA keys; its trust in the API comes from the discovery hash.
        log(f"ignoring secret entry {name}: workers only use the bootstrap token")
        continue
    if not safe.fullmatch(name):
        fail(f"refusing secret entry with an unsafe file name: {name!r}")
    path = os.path.join(pki, name)
    os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
    # Private unless public by name: keys, and encryption-config.yaml, which holds the key that decrypts every Secret.
    write(path, secret[name], 0o644 if name.endswith((".crt", ".pub")) else 0o600)
    written.append(name)
if written:
    log(f"wrote {', '.join(written)} under {pki}")
placeholder = env["TOKEN_PLACEHOLDER"]
for doc in ("init.yaml", "join.yaml"):
    src = os.path.join(env["KUBEADM_HA_ETC"], doc)
    if not os.path.exists(src):
        if doc == "join.yaml":
            fail(f"{src} is missing: every node needs a JoinConfiguration")
        continue
    with open(src) as f:
        text = f.read()
    if placeholder not in text:
        fail(f"{src} does not contain the token placeholder {placeholder}")
    # Machines of an auto scaling group learn their name and address only at boot (lib.sh load_env).
    text = text.replace(placeholder, token).replace("__NODE_NAME__", env["NODE_NAME"]).replace("__NODE_IP__", env["NODE_IP"])
    for left in (placeholder, "__NODE_NAME__", "__NODE_IP__"):
        if left in text:
            fail(f"rendered {doc} still contains {left}")
    write(os.path.join(env["KUBEADM_HA_RUN"], doc), text, 0o600)
    log(f"rendered {doc} with the bootstrap token into {env['KUBEADM_HA_RUN']}")
PY

# The instance profile's credentials can take a few seconds to appear after boot.
log "fetching $SECRET_ID"
secret=$(retry 10 "$KUBEADM_HA_POLL_SECONDS" get_secret) || die "$EXIT_SECRETS" "could not read secret $SECRET_ID"
mkdir -p "$KUBERNETES_DIR" "$KUBEADM_HA_RUN"
chmod 0700 "$KUBEADM_HA_RUN"
printf '%s' "$secret" | python3 -c "$WRITE_PY" || die "$EXIT_SECRETS" "could not install secret $SECRET_ID (see above)"
log "secrets installed for $NODE_ROLE"
