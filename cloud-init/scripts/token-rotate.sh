#!/usr/bin/env bash
# Keeps a valid worker join token in the workers' secret (WORKER_SECRET_ID). Run hourly by
# kubeadm-ha-token-rotate.timer on every master: when the token there has less than half of its
# lifetime (JOIN_TOKEN_TTL_HOURS) left, or no longer exists in the cluster, it creates a new one with
# kubeadm and writes it, with its expiry, as the secret's new version. A token read from the secret
# is good for at most JOIN_TOKEN_TTL_HOURS: nobody can add nodes with it forever. Cluster API's
# bootstrap provider refreshes its join tokens the same way.
#
# Two masters rotating at once each create a token and the last write wins; both tokens stay valid
# until they expire, so a worker holding either still joins.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "${BASH_SOURCE[0]%/*}/lib.sh"
load_env

[[ $NODE_ROLE == control-plane ]] || die "$EXIT_CONFIG" "the join token rotates on masters, not on $NODE_ROLE"
[[ -n ${WORKER_SECRET_ID:-} ]] || die "$EXIT_CONFIG" "WORKER_SECRET_ID is not set in $KUBEADM_HA_ETC/node.env"
TTL_HOURS=${JOIN_TOKEN_TTL_HOURS:-24}
[[ $TTL_HOURS =~ ^[1-9][0-9]*$ ]] || die "$EXIT_CONFIG" "JOIN_TOKEN_TTL_HOURS must be a whole number of hours above 0, got '$TTL_HOURS'"
ADMIN=$KUBERNETES_DIR/admin.conf
[[ -r $ADMIN ]] || die "$EXIT_CONFIG" "$ADMIN is missing: this master has not joined yet"

get_secret() {
  aws secretsmanager get-secret-value --region "$AWS_REGION" --secret-id "$WORKER_SECRET_ID" --query SecretString --output text
}

# Reads the secret on stdin; prints `<token> <expiry, seconds since the epoch, or 0 when unknown>`.
read -r -d '' READ_PY <<'PY' || true
import json, sys
from datetime import datetime
s = json.loads(sys.stdin.read())
token, expires = s.get("bootstrap-token", ""), s.get("bootstrap-token-expires")
at = int(datetime.fromisoformat(expires.replace("Z", "+00:00")).timestamp()) if expires else 0
print(token or "-", at)
PY

# The IDs of the bootstrap tokens the cluster knows (`kubeadm token list -o json` prints one object per token).
read -r -d '' LIST_PY <<'PY' || true
import json, sys
text, at, dec = sys.stdin.read(), 0, json.JSONDecoder()
while True:
    while at < len(text) and text[at].isspace():
        at += 1
    if at >= len(text):
        break
    obj, at = dec.raw_decode(text, at)
    print(str(obj.get("token", "")).split(".")[0])
PY

# Writes the secret from the environment (TOKEN, EXPIRES) to a private file: never on argv, which `ps` shows.
read -r -d '' WRITE_PY <<'PY' || true
import json, os
path = os.environ["SECRET_FILE"]
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "w") as f:
    json.dump({"bootstrap-token": os.environ["TOKEN"], "bootstrap-token-expires": os.environ["EXPIRES"]}, f)
PY

secret=$(retry 5 "$KUBEADM_HA_POLL_SECONDS" get_secret) || die "$EXIT_SECRETS" "could not read $WORKER_SECRET_ID"
read -r current expires_at < <(python3 -c "$READ_PY" <<<"$secret") || die "$EXIT_SECRETS" "$WORKER_SECRET_ID is not the workers' secret (a JSON object with bootstrap-token)"
now=$(date +%s)
ttl=$((TTL_HOURS * 3600))
known=$(kubeadm token list --kubeconfig "$ADMIN" -o json | python3 -c "$LIST_PY") || die 1 "kubeadm could not list the cluster's bootstrap tokens"

if ((expires_at - now > ttl / 2)) && grep -qxF "${current%%.*}" <<<"$known"; then
  log "the worker join token is good until $(date -u -d "@$expires_at" +%FT%TZ): nothing to do"
  exit 0
fi
if ((expires_at == 0)); then
  why="the secret holds no expiry (Pulumi's initial token)"
elif ! grep -qxF "${current%%.*}" <<<"$known"; then
  why="the cluster no longer knows its token"
else
  why="its token expires at $(date -u -d "@$expires_at" +%FT%TZ), within half of ${TTL_HOURS}h"
fi

token=$(kubeadm token create --kubeconfig "$ADMIN" --ttl "${TTL_HOURS}h" --description "kubeadm-ha worker join token, rotated by $NODE_NAME") ||
  die 1 "kubeadm could not create a bootstrap token"
[[ $token =~ ^[a-z0-9]{6}\.[a-z0-9]{16}$ ]] || die 1 "kubeadm printed no token"
mkdir -p "$KUBEADM_HA_RUN"
file=$KUBEADM_HA_RUN/worker-secret.json
trap 'rm -f "$file"' EXIT
SECRET_FILE=$file TOKEN=$token EXPIRES=$(date -u -d "@$((now + ttl))" +%FT%TZ) python3 -c "$WRITE_PY"
put_secret() {
  aws secretsmanager put-secret-value --region "$AWS_REGION" --secret-id "$WORKER_SECRET_ID" --secret-string "file://$file" >/dev/null
}
retry 5 "$KUBEADM_HA_POLL_SECONDS" put_secret || die "$EXIT_SECRETS" "could not write the new token to $WORKER_SECRET_ID"
log "rotated the worker join token ($why): ${token%%.*} is good until $(date -u -d "@$((now + ttl))" +%FT%TZ)"
