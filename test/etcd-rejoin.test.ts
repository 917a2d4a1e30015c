/**
 * cloud-init/scripts/etcd-rejoin.sh, as shipped, against a fake etcd cluster (test/stubs/etcdctl-cluster.sh,
 * named by ETCDCTL as etcdctl.sh allows): the decision table of a machine that boots where an etcd
 * member lives. The machine's node.env and static pod are the program's own renders
 * (etcdNodeDocuments, masterDocuments), so the one-line flag switch runs on the real manifest text.
 * test/etcd-rejoin-real.test.ts runs the same script against real etcd.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { TOKEN_PLACEHOLDER } from "../cloud-init/kubeadm";
import { NodeDocuments, envFile } from "../cloud-init/render";
import { shipScripts } from "./shipped";
import { masterDocuments } from "../components/controlPlane";
import { SUBNETS, ZONES, masterValues } from "./values";
import { EtcdMember, etcdMembers, etcdNodeDocuments } from "../components/etcd";

const STUBS = path.join(__dirname, "stubs");
const SCRIPTS = shipScripts(["lib.sh", "etcdctl.sh", "etcd-rejoin.sh"]);
afterAll(() => fs.rmSync(SCRIPTS, { recursive: true, force: true }));

const EXIT = { config: 2, quorum: 12, busy: 13 };

/** A member as etcd's `member list -w json` shows it. */
interface Member {
  ID: number;
  name?: string;
  peerURLs: string[];
  clientURLs?: string[];
}
type Health = "healthy" | "unhealthy" | "down";

const ID = (i: number) => 0x1000 + i;
const hex = (i: number) => ID(i).toString(16);
/** Member i of the rendered cluster: started (named, with client URLs), named but never started, or added by `member add`. */
function member(m: { name: string; ip: string }, i: number, state: "started" | "new" | "added" = "started"): Member {
  const peerURLs = [`https://${m.ip}:2380`];
  if (state === "added") return { ID: ID(i), peerURLs };
  return { ID: ID(i), name: m.name, peerURLs, ...(state === "started" ? { clientURLs: [`https://${m.ip}:2379`] } : {}) };
}

class Machine {
  readonly root = fs.mkdtempSync(path.join(os.tmpdir(), "kubeadm-ha-rejoin-"));
  readonly etc = path.join(this.root, "etc/kubeadm-ha");
  readonly kube = path.join(this.root, "etc/kubernetes");
  readonly run = path.join(this.root, "run/kubeadm-ha");
  readonly data = path.join(this.root, "var/lib/etcd");
  readonly state = path.join(this.root, "stub-state");
  readonly bin = path.join(this.root, "bin");
  readonly manifest = path.join(this.etc, "etcd.yaml");

  constructor(readonly docs: NodeDocuments) {
    for (const d of [this.etc, this.state, this.bin, this.run, path.join(this.kube, "pki/etcd")]) fs.mkdirSync(d, { recursive: true });
    fs.copyFileSync(path.join(STUBS, "etcdctl-cluster.sh"), path.join(this.bin, "etcdctl"));
    fs.copyFileSync(path.join(STUBS, "kubeadm.sh"), path.join(this.bin, "kubeadm"));
    for (const f of fs.readdirSync(this.bin)) fs.chmodSync(path.join(this.bin, f), 0o755);
    fs.copyFileSync(path.join(STUBS, "stub-lib.sh"), path.join(this.bin, "stub-lib.sh"));
    fs.writeFileSync(path.join(this.etc, "node.env"), envFile({ ...(docs.env as unknown as Record<string, string>), TOKEN_PLACEHOLDER }));
    for (const [name, content] of Object.entries(docs.kubeadm)) {
      fs.mkdirSync(path.dirname(path.join(this.etc, name)), { recursive: true });
      fs.writeFileSync(path.join(this.etc, name), content, { mode: 0o600 });
    }
    const pki = path.join(this.kube, "pki/etcd");
    fs.writeFileSync(path.join(pki, "ca.crt"), "ETCD CA\n");
    if (docs.env.NODE_ROLE === "etcd") for (const f of ["server.crt", "server.key"]) fs.writeFileSync(path.join(pki, f), `${f}\n`);
    else {
      // A stacked master holds the etcd CA key (fetch-secrets.sh) and the joiner's ClusterConfiguration (join-lock.sh).
      fs.writeFileSync(path.join(pki, "ca.key"), "ETCD CA KEY\n");
      fs.writeFileSync(path.join(this.run, "joiner-cluster.yaml"), "{}\n");
    }
  }

  /** The fake cluster: its members and what each client URL answers. */
  cluster(members: Member[], endpoints: Record<string, Health>, healthyAfter?: Record<string, number>, unhealthyReconfigs = 0): void {
    fs.writeFileSync(path.join(this.state, "etcd.json"), JSON.stringify({ members, endpoints, unhealthyReconfigs, ...(healthyAfter ? { healthyAfter } : {}) }));
  }

  members(): Member[] {
    return JSON.parse(fs.readFileSync(path.join(this.state, "etcd.json"), "utf8")).members;
  }

  exec(env: Record<string, string> = {}) {
    const r = spawnSync("/bin/bash", [path.join(SCRIPTS, "etcd-rejoin.sh")], {
      env: {
        PATH: `${this.bin}:/usr/bin:/bin`,
        HOME: this.root,
        KUBEADM_HA_ETC: this.etc,
        KUBERNETES_DIR: this.kube,
        KUBEADM_HA_RUN: this.run,
        KUBEADM_HA_ETCD_DATA_DIR: this.data,
        KUBEADM_HA_WAIT_SECONDS: "20",
        KUBEADM_HA_POLL_SECONDS: "0",
        ETCDCTL: path.join(this.bin, "etcdctl"),
        STUB_STATE: this.state,
        STUB_TOKEN: "abcdef.0123456789abcdef",
        TOKEN_PLACEHOLDER,
        ...env,
      },
      encoding: "utf8",
      timeout: 30000,
    });
    if (r.error) throw r.error;
    return { status: r.status, stderr: r.stderr };
  }

  /** The etcdctl calls, without the --endpoints flag's noise: "<endpoints> <command...>". */
  etcdctl(): string[] {
    const log = path.join(this.state, "calls.log");
    if (!fs.existsSync(log)) return [];
    return fs.readFileSync(log, "utf8").split("\n").filter((l) => l.startsWith("etcdctl ")).map((l) => l.replace(/^etcdctl --endpoints=/, ""));
  }

  calls(): string[] {
    const log = path.join(this.state, "calls.log");
    return fs.existsSync(log) ? fs.readFileSync(log, "utf8").split("\n").filter((l) => l !== "") : [];
  }

  /** The manifest's --initial-cluster-state lines. */
  stateFlags(): string[] {
    return fs.readFileSync(this.manifest, "utf8").split("\n").filter((l) => l.includes("--initial-cluster-state"));
  }
}

const machines: Machine[] = [];
afterEach(() => {
  for (const m of machines.splice(0)) fs.rmSync(m.root, { recursive: true, force: true });
});

/** External etcd member `self` of a cluster of `count`. */
function etcdMachine(count = 3, self = 0): { m: Machine; members: EtcdMember[] } {
  const members = etcdMembers(count, ZONES, SUBNETS, "eu-west-1");
  const docs = etcdNodeDocuments(
    { clusterName: "prod", kubernetesVersion: "1.35.0", timings: { heartbeatIntervalMs: 100, electionTimeoutMs: 1000 }, members, region: "eu-west-1", secretArn: "arn:secret" },
    members[self],
  );
  const m = new Machine(docs);
  machines.push(m);
  return { m, members };
}

/** Stacked master `self` of three. */
function stackedMaster(self = 1): { m: Machine; members: Array<{ name: string; ip: string }> } {
  const v = masterValues({ secretArn: "arn:secret" });
  const masters = v.masters;
  const docs = masterDocuments(v, masters[self]);
  const m = new Machine(docs);
  machines.push(m);
  return { m, members: masters };
}

const client = (m: { ip: string }) => `https://${m.ip}:2379`;
const peer = (m: { ip: string }) => `https://${m.ip}:2380`;
const NEW = "        - --initial-cluster-state=new";
const EXISTING = "        - --initial-cluster-state=existing";

describe("etcd-rejoin.sh on an external etcd member", () => {
  test("first creation: no other member answers, so nothing changes and the member starts as new", () => {
    const { m, members } = etcdMachine();
    const r = m.exec();
    expect(r.status).toBe(0);
    expect(r.stderr).toContain("no other etcd member answers: the cluster is being created");
    // Each other member asked for its health, then whether it answers at all; never this machine.
    expect(m.etcdctl()).toEqual([1, 2].flatMap((i) => [`${client(members[i])} endpoint health`, `${client(members[i])} endpoint status`]));
    expect(m.stateFlags()).toEqual([NEW]);
  });

  test("first creation, the others already formed the cluster: this member was never started, so it starts as new", () => {
    const { m, members } = etcdMachine();
    m.cluster([member(members[0], 0, "new"), member(members[1], 1), member(members[2], 2)], { [client(members[1])]: "healthy", [client(members[2])]: "healthy" });
    const r = m.exec();
    expect(r.status).toBe(0);
    expect(r.stderr).toContain(`etcd members: this machine's ${hex(0)} is new; 2 of 2 others healthy`);
    expect(r.stderr).toContain("this machine's member has not started yet: nothing to remove");
    expect(m.etcdctl().filter((c) => c.includes(" member "))).toEqual([`${client(members[1])},${client(members[2])} member list -w json`]);
    expect(m.members()).toHaveLength(3);
    expect(m.stateFlags()).toEqual([NEW]);
  });

  test("replacement: removes the dead member, adds itself back, and switches exactly the one flag to existing", () => {
    const { m, members } = etcdMachine();
    const before = fs.readFileSync(m.manifest, "utf8");
    m.cluster(members.map((x, i) => member(x, i)), { [client(members[1])]: "healthy", [client(members[2])]: "healthy" });
    const r = m.exec();
    expect(r.status).toBe(0);
    expect(r.stderr).toContain(`this machine replaces etcd member ${hex(0)} (${peer(members[0])}), whose data is gone: removing it`);
    const eps = `${client(members[1])},${client(members[2])}`;
    expect(m.etcdctl().filter((c) => / member (remove|add)/.test(c))).toEqual([
      `${eps} member remove ${hex(0)}`,
      `${eps} member add ${members[0].name} --peer-urls=${peer(members[0])}`,
    ]);
    // The dead member is gone; its successor is a new, not yet started member at the same peer URL.
    expect(m.members()).toEqual([member(members[1], 1), member(members[2], 2), { ID: 0xabcdef0123456789, peerURLs: [peer(members[0])] }]);
    const after = fs.readFileSync(m.manifest, "utf8");
    expect(after).toBe(before.replace(`${NEW}\n`, `${EXISTING}\n`));
    expect(fs.statSync(m.manifest).mode & 0o777).toBe(0o600);
    expect(fs.readdirSync(m.etc).sort()).toEqual(["etcd.yaml", "kubelet-etcd.yaml", "node.env"]);
  });

  test("scale-out 3 -> 5: the new member 3 adds itself, and starts with the cluster's members in --initial-cluster, not the five the config wants", () => {
    const { m, members } = etcdMachine(5, 3);
    const before = fs.readFileSync(m.manifest, "utf8");
    m.cluster([0, 1, 2].map((i) => member(members[i], i)), Object.fromEntries([0, 1, 2].map((i) => [client(members[i]), "healthy" as Health])));
    const r = m.exec();
    expect(r.status).toBe(0);
    expect(m.etcdctl().filter((c) => / member (remove|add)/.test(c))).toEqual([`${[0, 1, 2].map((i) => client(members[i])).join(",")} member add ${members[3].name} --peer-urls=${peer(members[3])}`]);
    const rendered = [0, 1, 2, 3, 4].map((i) => `${members[i].name}=${peer(members[i])}`).join(",");
    const joined = [0, 1, 2, 3].map((i) => `${members[i].name}=${peer(members[i])}`).join(",");
    expect(before).toContain(`- --initial-cluster=${rendered}\n`);
    // Exactly the two flags of a member joining a running cluster differ from the rendered pod.
    expect(fs.readFileSync(m.manifest, "utf8")).toBe(before.replace(`--initial-cluster=${rendered}\n`, `--initial-cluster=${joined}\n`).replace(`${NEW}\n`, `${EXISTING}\n`));
    expect(r.stderr).toContain(`names the cluster's members in --initial-cluster: ${joined}`);
    // Member 4, once 3 runs, joins the four.
    const four = etcdMachine(5, 4);
    four.m.cluster([0, 1, 2, 3].map((i) => member(members[i], i)), Object.fromEntries([0, 1, 2, 3].map((i) => [client(members[i]), "healthy" as Health])));
    expect(four.m.exec().status).toBe(0);
    expect(fs.readFileSync(four.m.manifest, "utf8")).toContain(`- --initial-cluster=${[0, 1, 2, 3, 4].map((i) => `${members[i].name}=${peer(members[i])}`).join(",")}\n`);
  });

  test("etcd refusing membership changes for a while (a member just reconnected): each change is retried until it goes through", () => {
    const { m, members } = etcdMachine();
    m.cluster(members.map((x, i) => member(x, i)), { [client(members[1])]: "healthy", [client(members[2])]: "healthy" }, undefined, 3);
    const r = m.exec();
    expect(r.status).toBe(0);
    expect(r.stderr).toContain("etcdctl member remove: Error: etcdserver: unhealthy cluster");
    const changes = m.etcdctl().filter((c) => / member (remove|add)/.test(c)).map((c) => c.split(" ").slice(1, 3).join(" "));
    expect(changes).toEqual(["member remove", "member remove", "member remove", "member remove", "member add"]);
    expect(m.members().map((x) => x.peerURLs[0])).toEqual([...members.slice(1), members[0]].map(peer));
    expect(m.stateFlags()).toEqual([EXISTING]);
  });

  test("a rerun after the add (the machine rebooted before etcd started) only keeps the manifest at existing", () => {
    const { m, members } = etcdMachine();
    m.cluster(members.map((x, i) => member(x, i)), { [client(members[1])]: "healthy", [client(members[2])]: "healthy" });
    expect(m.exec().status).toBe(0);
    const calls = m.etcdctl().length;
    const r = m.exec();
    expect(r.status).toBe(0);
    expect(r.stderr).toContain(`etcd members: this machine's abcdef0123456789 is added; 2 of 2 others healthy`);
    expect(m.etcdctl().slice(calls).filter((c) => / member (remove|add)/.test(c))).toEqual([]);
    expect(m.stateFlags()).toEqual([EXISTING]);
    expect(m.members()).toHaveLength(3);
  });

  test("a member removed by an earlier run that died before its add: adds itself and starts as existing", () => {
    const { m, members } = etcdMachine();
    m.cluster([member(members[1], 1), member(members[2], 2)], { [client(members[1])]: "healthy", [client(members[2])]: "healthy" });
    const r = m.exec();
    expect(r.status).toBe(0);
    expect(m.etcdctl().filter((c) => / member (remove|add)/.test(c))).toEqual([
      `${client(members[1])},${client(members[2])} member add ${members[0].name} --peer-urls=${peer(members[0])}`,
    ]);
    expect(m.stateFlags()).toEqual([EXISTING]);
  });

  test("its own member with data on disk (a restart, not a replacement): nothing changes", () => {
    const { m, members } = etcdMachine();
    fs.mkdirSync(path.join(m.data, "member"), { recursive: true });
    m.cluster(members.map((x, i) => member(x, i)), { [client(members[1])]: "healthy", [client(members[2])]: "healthy" });
    const r = m.exec();
    expect(r.status).toBe(0);
    expect(r.stderr).toContain(`this member's data is in ${m.data}: nothing to do`);
    expect(m.members()).toHaveLength(3);
    expect(m.stateFlags()).toEqual([NEW]);
  });

  test.each([
    ["one other unhealthy, one down: no quorum anywhere", { 1: "unhealthy", 2: "down" }, "0 of 2 others are healthy"],
    ["both others answer but have no leader", { 1: "unhealthy", 2: "unhealthy" }, "0 of 2 others are healthy"],
  ] as const)("quorum lost (%s): refuses with EXIT_QUORUM and changes nothing", (_, health, message) => {
    const { m, members } = etcdMachine();
    const list = members.map((x, i) => member(x, i));
    m.cluster(list, Object.fromEntries(Object.entries(health).map(([i, h]) => [client(members[Number(i)]), h])));
    const r = m.exec({ KUBEADM_HA_INIT_PROBES: "3" });
    expect(r.status).toBe(EXIT.quorum);
    expect(r.stderr).toContain(`ERROR: refusing to replace this etcd member: ${message}`);
    expect(r.stderr).toContain("restore etcd from a backup (README: When a machine dies)");
    // Three probes in a row, then the refusal; no membership call at all.
    expect(m.etcdctl().filter((c) => c.endsWith(" endpoint health"))).toHaveLength(6);
    expect(m.etcdctl().filter((c) => c.includes(" member "))).toEqual([]);
    expect(m.members()).toEqual(list);
    expect(m.stateFlags()).toEqual([NEW]);
  });

  test("quorum lost in a five-member cluster that still answers: 2 of 4 healthy others is below 3", () => {
    const { m, members } = etcdMachine(5);
    const list = members.map((x, i) => member(x, i));
    m.cluster(list, { [client(members[1])]: "healthy", [client(members[2])]: "healthy", [client(members[3])]: "down", [client(members[4])]: "unhealthy" });
    const r = m.exec({ KUBEADM_HA_INIT_PROBES: "2" });
    expect(r.status).toBe(EXIT.quorum);
    expect(r.stderr).toContain(`etcd members: this machine's ${hex(0)} is started; 2 of 4 others healthy`);
    expect(r.stderr).toContain("ERROR: refusing to replace this etcd member: 2 of 4 others are healthy");
    expect(m.etcdctl().filter((c) => / member (remove|add)/.test(c))).toEqual([]);
    expect(m.members()).toEqual(list);
  });

  test("a transient election: quorum back on the second probe, the replacement goes ahead", () => {
    const { m, members } = etcdMachine();
    m.cluster(members.map((x, i) => member(x, i)), { [client(members[1])]: "unhealthy", [client(members[2])]: "unhealthy" }, { [client(members[1])]: 2, [client(members[2])]: 2 });
    const r = m.exec({ KUBEADM_HA_INIT_PROBES: "3" });
    expect(r.status).toBe(0);
    expect(m.etcdctl().filter((c) => / member remove/.test(c))).toEqual([`${client(members[1])},${client(members[2])} member remove ${hex(0)}`]);
  });

  test.each([
    ["an added member that never started", 3, "added" as const, (ms: EtcdMember[]) => `${peer(ms[3])} is not started`],
    ["another member down", 4, "started" as const, (ms: EtcdMember[]) => `${ms[4].name} is unhealthy`],
  ])("another replacement in flight (%s): waits, then gives up with EXIT_ETCD_BUSY, changing nothing", (_, busy, state, reason) => {
    const { m, members } = etcdMachine(5);
    const list = members.map((x, i) => member(x, i, i === busy ? state : "started"));
    m.cluster(list, Object.fromEntries([1, 2, 3, 4].map((i) => [client(members[i]), i === busy ? "down" : "healthy"])));
    const r = m.exec({ KUBEADM_HA_WAIT_SECONDS: "1", KUBEADM_HA_POLL_SECONDS: "0.2" });
    expect(r.status).toBe(EXIT.busy);
    // Three healthy others of five members keep a quorum: not a refusal, a wait.
    expect(r.stderr).toContain(`etcd members: this machine's ${hex(0)} is started; 3 of 4 others healthy`);
    expect(r.stderr).toContain(`ERROR: timed out after 1s waiting for the other etcd members to be started and healthy (last exit 1: ${reason(members)})`);
    expect(m.etcdctl().filter((c) => / member (remove|add)/.test(c))).toEqual([]);
    expect(m.members()).toEqual(list);
    expect(m.stateFlags()).toEqual([NEW]);
    expect(fs.readdirSync(m.etc).sort()).toEqual(["etcd.yaml", "kubelet-etcd.yaml", "node.env"]);
  });

  test("waits while another member recovers, then replaces", () => {
    const { m, members } = etcdMachine(5);
    m.cluster(members.map((x, i) => member(x, i)), Object.fromEntries([1, 2, 3, 4].map((i) => [client(members[i]), i === 4 ? "down" : "healthy"])), { [client(members[4])]: 4 });
    const r = m.exec();
    expect(r.status).toBe(0);
    expect(r.stderr).toContain("waiting for the other etcd members to be started and healthy");
    expect(r.stderr).toContain("the other etcd members to be started and healthy is ready");
    expect(m.members().map((x) => x.peerURLs[0])).toEqual([...members.slice(1), members[0]].map(peer));
    expect(m.stateFlags()).toEqual([EXISTING]);
  });

  test.each([
    ["no such flag", (t: string) => t.replace(`${NEW}\n`, ""), 0],
    ["the flag twice", (t: string) => t.replace(`${NEW}\n`, `${NEW}\n${NEW}\n`), 2],
  ])("a manifest with %s: the switch refuses and leaves the manifest as it was", (_, edit, changed) => {
    const { m, members } = etcdMachine();
    fs.writeFileSync(m.manifest, edit(fs.readFileSync(m.manifest, "utf8")), { mode: 0o600 });
    const before = fs.readFileSync(m.manifest, "utf8");
    m.cluster(members.map((x, i) => member(x, i)), { [client(members[1])]: "healthy", [client(members[2])]: "healthy" });
    const r = m.exec();
    expect(r.status).toBe(EXIT.config);
    expect(r.stderr).toContain(`ERROR: want one '- --initial-cluster-state=new' line in ${m.manifest}, changed ${changed}`);
    expect(fs.readFileSync(m.manifest, "utf8")).toBe(before);
    // Checked before the membership changes: the dead member is still there, nothing was added.
    expect(m.etcdctl().filter((c) => / member (remove|add)/.test(c))).toEqual([]);
    expect(m.members()).toHaveLength(3);
    expect(fs.readdirSync(m.etc).sort()).toEqual(["etcd.yaml", "kubelet-etcd.yaml", "node.env"]);
  });

  test("ETCD_MEMBERS without this machine's peer URL is a config error before any etcd call", () => {
    const { m } = etcdMachine();
    const env = path.join(m.etc, "node.env");
    fs.writeFileSync(env, fs.readFileSync(env, "utf8").replace("NODE_IP='10.0.0.20'", "NODE_IP='10.0.0.99'"));
    const r = m.exec();
    expect(r.status).toBe(EXIT.config);
    expect(r.stderr).toContain("ERROR: ETCD_MEMBERS lacks https://10.0.0.99:2380");
    expect(m.etcdctl()).toEqual([]);
  });
});

describe("etcd-rejoin.sh on a stacked master", () => {
  test("replacement: issues the healthcheck-client pair, then only removes the dead member (kubeadm join adds it)", () => {
    const { m, members } = stackedMaster(1);
    m.cluster(members.map((x, i) => member(x, i)), { [client(members[0])]: "healthy", [client(members[2])]: "healthy" });
    const r = m.exec();
    expect(r.status).toBe(0);
    const calls = m.calls();
    expect(calls[0]).toBe(`kubeadm init phase certs etcd-healthcheck-client --config ${m.run}/joiner-cluster.yaml`);
    expect(fs.readFileSync(path.join(m.kube, "pki/etcd/healthcheck-client.crt"), "utf8")).toBe("FAKE HEALTHCHECK crt\n");
    expect(m.etcdctl().filter((c) => / member (remove|add)/.test(c))).toEqual([`${client(members[0])},${client(members[2])} member remove ${hex(1)}`]);
    expect(m.members()).toEqual([member(members[0], 0), member(members[2], 2)]);
  });

  test.each([
    ["not a member yet (the first bootstrap)", (ms: Array<{ name: string; ip: string }>) => [member(ms[0], 0)], "not a member: kubeadm join adds it"],
    ["added by an earlier kubeadm join that failed", (ms: Array<{ name: string; ip: string }>) => [member(ms[0], 0), member(ms[1], 1, "added")], "this machine's member has not started yet: nothing to remove"],
  ])("%s: nothing changes", (_, list, message) => {
    const { m, members } = stackedMaster(1);
    m.cluster(list(members), { [client(members[0])]: "healthy" });
    const r = m.exec();
    expect(r.status).toBe(0);
    expect(r.stderr).toContain(message);
    expect(m.members()).toEqual(list(members));
  });

  test("without the etcd CA key kubeadm cannot issue the pair: stops before any etcd call", () => {
    const { m } = stackedMaster(1);
    fs.rmSync(path.join(m.kube, "pki/etcd/ca.key"));
    const r = m.exec();
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("ERROR: kubeadm could not issue the etcd healthcheck-client pair");
    expect(m.etcdctl()).toEqual([]);
  });
});
