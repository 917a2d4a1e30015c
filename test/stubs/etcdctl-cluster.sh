#!/usr/bin/env bash
# A fake etcd cluster for etcdctl v3 (named by ETCDCTL, as etcdctl.sh allows). The cluster lives in
# $STUB_STATE/etcd.json: {"members": [etcd's member list JSON members], "endpoints": {client URL:
# "healthy" | "unhealthy" | "down"}, "healthyAfter": {client URL: N}}; without the file every
# endpoint is down. An unhealthy member answers `endpoint status` only, as a member of a cluster that
# lost its quorum does; `member list/add/remove` need a healthy endpoint (linearizable since etcd
# 3.5). An endpoint in healthyAfter turns healthy on its Nth health probe. The first
# "unhealthyReconfigs" membership changes fail as etcd's do while its leader has not been connected
# to a quorum for 5 s. Like etcdctl, it fails when the ETCDCTL_CACERT/CERT/KEY files are missing.
# Keys and leases for the etcd members' lock (etcdctl.sh): "kv": {key: {"value", "lease"}} and
# "leases": {hex ID: TTL}; `txn` takes the one compare-and-swap the lock sends on stdin.
# shellcheck source=stub-lib.sh
source "${BASH_SOURCE[0]%/*}/stub-lib.sh"
stub_record "$@"
for f in "${ETCDCTL_CACERT:-}" "${ETCDCTL_CERT:-}" "${ETCDCTL_KEY:-}"; do
  [[ -f $f ]] || { echo "Error: open ${f:-<unset>}: no such file or directory" >&2 && exit 1; }
done
# The program comes on python's stdin, so txn's own stdin goes through a file.
if [[ " $* " == *" txn "* ]]; then cat >"$STUB_STATE/etcd-txn.in"; fi
exec python3 - "$STUB_STATE" "$@" <<'PY'
import json, os, re, sys

state_dir, args = sys.argv[1], sys.argv[2:]
path = os.path.join(state_dir, "etcd.json")
cluster = json.load(open(path)) if os.path.exists(path) else {"members": [], "endpoints": {}}
endpoints = []
rest = []
for a in args:
    if a.startswith("--endpoints="):
        endpoints = a.split("=", 1)[1].split(",")
    else:
        rest.append(a)

def health(ep):
    after = cluster.get("healthyAfter", {})
    if ep in after:
        counter = os.path.join(state_dir, "etcd-health-" + ep.replace("/", "_") + ".count")
        n = int(open(counter).read()) + 1 if os.path.exists(counter) else 1
        open(counter, "w").write(str(n))
        if n >= after[ep]:
            cluster["endpoints"][ep] = "healthy"
    return cluster["endpoints"].get(ep, "down")

def fail(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)

def need_quorum():
    if not any(health(e) == "healthy" for e in endpoints):
        fail("Error: context deadline exceeded")

def save():
    json.dump(cluster, open(path, "w"))

def reconfigure():
    need_quorum()
    if cluster.get("unhealthyReconfigs", 0) > 0:
        cluster["unhealthyReconfigs"] -= 1
        save()
        fail("Error: etcdserver: unhealthy cluster")

cmd = " ".join(rest[:2])
if cmd == "endpoint health":
    ok = True
    for e in endpoints:
        h = health(e)
        if h == "healthy":
            print(f"{e} is healthy: successfully committed proposal: took = 1.2ms")
        else:
            ok = False
            print(f"{e} is unhealthy: failed to commit proposal: context deadline exceeded", file=sys.stderr)
    sys.exit(0 if ok else 1)
elif cmd == "endpoint status":
    if not all(health(e) in ("healthy", "unhealthy") for e in endpoints):
        fail(f"Failed to get the status of endpoint {endpoints[0]} (context deadline exceeded)")
    for e in endpoints:
        print(f"{e}, 8e9e05c52164694d, 3.6.9, 20 kB, false, false, 2, 9, 9, ")
elif rest == ["member", "list", "-w", "json"]:
    need_quorum()
    print(json.dumps({"header": {"cluster_id": 1, "member_id": 2, "raft_term": 2}, "members": cluster["members"]}))
elif cmd == "member remove" and len(rest) == 3:
    reconfigure()
    mid = int(rest[2], 16)
    if not any(m["ID"] == mid for m in cluster["members"]):
        fail(f"Error: etcdserver: member not found")
    cluster["members"] = [m for m in cluster["members"] if m["ID"] != mid]
    save()
    print(f"Member {rest[2]} removed from cluster 1")
elif cmd == "member add" and len(rest) == 4 and rest[3].startswith("--peer-urls="):
    reconfigure()
    new = {"ID": 0xABCDEF0123456789, "peerURLs": rest[3].split("=", 1)[1].split(",")}
    if any(set(m["peerURLs"]) & set(new["peerURLs"]) for m in cluster["members"]):
        fail("Error: etcdserver: Peer URLs already exists")
    cluster["members"].append(new)
    save()
    print(f"Member abcdef0123456789 added to cluster 1\n\nETCD_NAME=\"{rest[2]}\"\nETCD_INITIAL_CLUSTER_STATE=\"existing\"")
elif cmd == "lease grant" and len(rest) == 3:
    need_quorum()
    lease = "%x" % cluster.get("nextLease", 0x694D9A6F1C2B3A01)
    cluster["nextLease"] = int(lease, 16) + 1
    cluster.setdefault("leases", {})[lease] = int(rest[2])
    save()
    print(f"lease {lease} granted with TTL({rest[2]}s)")
elif rest == ["txn"]:
    need_quorum()
    text = open(os.path.join(state_dir, "etcd-txn.in")).read()
    m = re.fullmatch(r'create\("([^"]+)"\) = "0"\n\nput --lease=([0-9a-f]+) (\S+) (\S+)\n\n\n', text)
    if not m or m[1] != m[3]:
        fail("etcdctl stub: unexpected txn: " + repr(text))
    if m[2] not in cluster.get("leases", {}):
        fail("Error: etcdserver: requested lease not found")
    kv = cluster.setdefault("kv", {})
    if m[1] in kv:
        print("FAILURE\n")
    else:
        kv[m[1]] = {"value": m[4], "lease": m[2]}
        save()
        print("SUCCESS\n\nOK")
elif cmd == "lease revoke" and len(rest) == 3:
    need_quorum()
    if rest[2] not in cluster.get("leases", {}):
        fail("Error: etcdserver: requested lease not found")
    del cluster["leases"][rest[2]]
    cluster["kv"] = {k: v for k, v in cluster.get("kv", {}).items() if v["lease"] != rest[2]}
    save()
    print(f"lease {rest[2]} revoked")
elif rest[:2] == ["get", "--print-value-only"] and len(rest) == 3:
    need_quorum()
    if rest[2] in cluster.get("kv", {}):
        print(cluster["kv"][rest[2]]["value"])
else:
    fail("etcdctl stub: unexpected arguments: " + " ".join(args))
PY
