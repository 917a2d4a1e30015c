/**
 * The prod stack's external etcd, for real: render the stack as `npm run render -- prod` does,
 * take each member's etcd flags from its rendered static pod, move the members onto loopback
 * addresses and a temp dir (nothing else changes, and a test checks that), sign the same kind of
 * certificates with openssl from the program's own certificate requests, and run three real etcd
 * processes (etcd 3.6, built by test/k8s/build.sh) with those flags. etcdctl, with the API server's client
 * certificate and the rendered endpoint list, then checks what the API servers rely on: the cluster
 * is healthy, a write on one member is read on another, any one member can die without losing a
 * write or the ability to write, and a member restarted on its data directory rejoins and catches up.
 *
 * The machinery lives in test/etcdHarness.ts, shared with other real-etcd tests and benchmarks.
 * Needs the built etcd and etcdctl (`bash test/k8s/build.sh`) and openssl; .ci/run provides them. Missing tools fail the test: they never skip it.
 */
import { spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fc from "fast-check";
import { parseConfig } from "../config";
import { EtcdCluster, EtcdMember, RENDERED_DATA, endpointStatuses, RENDERED_LOOPBACK, RENDERED_PKI, startRenderedEtcdCluster, substitute, tool, until } from "./etcdHarness";

const STACK = "prod";

/** `etcd <flags>` exits at once on flags it rejects; a data dir it cannot list stops it just after the flag checks. */
function etcdAcceptsTimings(heartbeat: number, election: number): { ok: boolean; out: string } {
  const r = spawnSync(tool("etcd"), ["--data-dir=/dev/null/kubeadm-ha-flag-check", `--heartbeat-interval=${heartbeat}`, `--election-timeout=${election}`], {
    encoding: "utf8",
    env: { PATH: process.env.PATH },
    timeout: 10000,
  });
  const out = r.stdout + r.stderr;
  // etcd 3.6's words: "failed to verify flags" rejects them; "failed to list data directory" comes after they passed.
  if (!out.includes("failed to verify flags") && !out.includes("failed to list data directory"))
    throw new Error(`etcd neither rejected nor accepted the flags: ${out}`);
  return { ok: !out.includes("failed to verify flags"), out };
}

let cluster: EtcdCluster;
let members: EtcdMember[] = [];
let renderedEndpoints: string[] = [];
let endpoints: string[] = [];
let client: { ca: string; cert: string; key: string };

const etcdctl = (eps: string[], args: string[]) => cluster.etcdctl(args, eps);
const endpointOf = (m: EtcdMember) => m.endpoint;
const healthy = (eps: string[]) => cluster.healthy(eps);
const put = (eps: string[], key: string, value: string) => until(`put ${key}`, 15000, () => {
  const r = etcdctl(eps, ["put", key, value]);
  return { value: r.ok && r.out.trim() === "OK" ? true : undefined, last: r.out };
}, cluster.logTail);
/** Every key under /kubeadm-ha-test/ as key=value lines, read linearizably or from the member's own store. */
const readAll = (eps: string[], consistency: "l" | "s") => {
  const r = etcdctl(eps, ["get", "/kubeadm-ha-test/", "--prefix", `--consistency=${consistency}`]);
  if (!r.ok) return { last: r.out };
  const lines = r.out.trim().split("\n").filter((l) => l !== "");
  const pairs: string[] = [];
  for (let i = 0; i + 1 < lines.length; i += 2) pairs.push(`${lines[i]}=${lines[i + 1]}`);
  return { value: pairs, last: r.out };
};

const written: string[] = [];
async function write(eps: string[], key: string): Promise<void> {
  const value = `v-${crypto.randomBytes(4).toString("hex")}`;
  await put(eps, `/kubeadm-ha-test/${key}`, value);
  written.push(`/kubeadm-ha-test/${key}=${value}`);
  written.sort();
}

beforeAll(async () => {
  cluster = await startRenderedEtcdCluster({ stack: STACK, workPrefix: "etcd-real-" });
  ({ members, renderedEndpoints, endpoints, client } = cluster);
  expect([cluster.external.caFile, cluster.external.certFile, cluster.external.keyFile]).toEqual([
    `${RENDERED_PKI}/ca.crt`,
    "/etc/kubernetes/pki/apiserver-etcd-client.crt",
    "/etc/kubernetes/pki/apiserver-etcd-client.key",
  ]);
}, 60000);

afterAll(async () => {
  if (cluster) await cluster.dispose();
});

describe(`real etcd 3.6 with the ${STACK} stack's rendered flags`, () => {
  it("runs the rendered flags with only addresses and file paths substituted", () => {
    expect(members.map((m) => m.renderedIp)).toEqual(renderedEndpoints.map((e) => new URL(e).hostname));
    for (const m of members) {
      // Both sides with every address and path replaced by what it stands for must be identical.
      const roles = (ipOf: (x: EtcdMember) => string, loopback: string, data: string, pki: string): [Map<string, string>, Array<[string, string]>] => [
        new Map([...members.map((x) => [ipOf(x), `<ip of member ${x.index}>`] as [string, string]), [loopback, "<this member's loopback>"]]),
        [[data, "<data dir>"], [pki, "<pki dir>"]],
      ];
      const rendered = m.rendered.map((f) => substitute(f, ...roles((x) => x.renderedIp, RENDERED_LOOPBACK, RENDERED_DATA, RENDERED_PKI)));
      const running = m.flags.map((f) => substitute(f, ...roles((x) => x.ip, m.loopback, m.dataDir, m.pkiDir)));
      expect(running).toEqual(rendered);
      // And nothing of the machine's own layout is left.
      for (const f of m.flags) expect(f).not.toMatch(/10\.20\.|127\.0\.0\.1|\/var\/lib\/etcd|\/etc\/kubernetes/);
    }
    // The flags that carry neither an address nor a path are passed as rendered.
    const untouched = members[0].rendered.filter((f, i) => f === members[0].flags[i]).map((f) => f.split("=")[0]);
    expect(untouched).toEqual([
      "--name",
      "--initial-cluster-state",
      "--initial-cluster-token",
      "--client-cert-auth",
      "--peer-client-cert-auth",
      "--heartbeat-interval",
      "--election-timeout",
      "--snapshot-count",
    ]);
  });

  it("forms a healthy three-member cluster reachable at the rendered endpoints with the API server's certificate", async () => {
    await healthy(endpoints);
    const list = etcdctl(endpoints, ["member", "list"]);
    expect(list.ok).toBe(true);
    // <id>, started, <name>, <peer URLs>, <client URLs>, <is learner>
    const rows = list.out.trim().split("\n").map((l) => l.split(", ").slice(1, 5)).sort((a, b) => a[1].localeCompare(b[1]));
    expect(rows).toEqual(members.map((m) => ["started", m.name, `https://${m.ip}:2380`, `https://${m.ip}:2379`]).sort((a, b) => a[1].localeCompare(b[1])));
  }, 30000);

  it("refuses a client without a certificate from the etcd CA", () => {
    const r = spawnSync(tool("etcdctl"), [`--endpoints=${endpoints[0]}`, `--cacert=${client.ca}`, "--dial-timeout=1s", "--command-timeout=1s", "get", "x"], {
      env: { PATH: process.env.PATH },
      encoding: "utf8",
      timeout: 15000,
    });
    expect(r.status).not.toBe(0);
  });

  it("reads on one member what was written on another", async () => {
    await write([endpoints[0]], "written-on-0");
    for (const e of [endpoints[1], endpoints[2]]) expect(readAll([e], "l").value).toEqual(written);
  }, 30000);

  it("survives any one member dying, loses nothing, and the member rejoins on its data dir", async () => {
    // The leader first: the case that forces an election.
    const statuses = endpointStatuses((args, eps) => cluster.etcdctl(args, eps), endpoints);
    expect(statuses).toHaveLength(3);
    const leader = statuses.find((st) => st.isLeader)!.endpoint;
    const order = [...members].sort((a, b) => Number(endpointOf(b) === leader) - Number(endpointOf(a) === leader));
    expect(endpointOf(order[0])).toBe(leader);
    expect(cluster.leader()).toBe(order[0].index);

    for (const down of order) {
      await cluster.kill(down.index);
      const up = members.filter((m) => m !== down).map(endpointOf);
      // Two of three keep a quorum: writes go on, after an election if the leader died.
      await write(up, `while-${down.index}-down`);
      expect(await until("every write on the surviving members", 10000, () => {
        const r = readAll(up, "l");
        return { value: r.value && JSON.stringify(r.value) === JSON.stringify(written) ? r.value : undefined, last: r.last };
      })).toEqual(written);

      cluster.start(down.index);
      await healthy([endpointOf(down)]);
      // Read from the member's own store: it has caught up on what it missed.
      expect(await until(`member ${down.index} to catch up`, 10000, () => {
        const r = readAll([endpointOf(down)], "s");
        return { value: r.value && JSON.stringify(r.value) === JSON.stringify(written) ? r.value : undefined, last: r.last };
      })).toEqual(written);
    }
    await healthy(endpoints);
    expect(etcdctl(endpoints, ["member", "list"]).out.match(/, started, /g)).toHaveLength(3);
    expect(written).toHaveLength(4);
  }, 60000);
});

describe("etcd raft timing against the etcd binary", () => {
  const valid = (heartbeat: number, election: number) => {
    try {
      parseConfig({ region: "eu-west-1", clusterName: "t", network: { availabilityZones: ["eu-west-1a", "eu-west-1b", "eu-west-1c"] }, workerPools: [], etcd: { heartbeatIntervalMs: heartbeat, electionTimeoutMs: election } });
      return true;
    } catch {
      return false;
    }
  };

  it.each([
    [100, 1000],
    [100, 500],
    [100, 499],
    [1, 5],
    [10000, 50000],
    [10000, 50001],
    [250, 1000],
  ])("heartbeat %d ms, election %d ms: the config accepts it exactly when etcd does", (heartbeat, election) => {
    expect(valid(heartbeat, election)).toBe(etcdAcceptsTimings(heartbeat, election).ok);
  });

  it("agrees with etcd on random timings", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 12000 }), fc.integer({ min: 1, max: 60000 }), (heartbeat, election) => {
        expect({ heartbeat, election, config: valid(heartbeat, election) }).toEqual({ heartbeat, election, config: etcdAcceptsTimings(heartbeat, election).ok });
      }),
      { numRuns: 40 },
    );
  });
});
