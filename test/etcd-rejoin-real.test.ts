/**
 * Replacing a dead etcd machine, for real: the prod stack's rendered external etcd on loopback
 * (test/etcdHarness.ts), a member killed and its data dir wiped (the replacement's empty disk), then
 * the project's own cloud-init/scripts/etcd-rejoin.sh, as shipped, run for that member with its
 * rendered node.env and static pod (addresses and paths substituted as the harness does) and the
 * etcdctl 3.6 test/k8s/build.sh builds (ETCDCTL). kubeadm, kubectl, aws and ctr are recording stubs that fail:
 * an etcd member's rejoin must not touch them. The member then starts from the flags of the manifest
 * the script left, as the kubelet would.
 *
 * etcd 3.6, as kubeadm's image for the default Kubernetes minor. Since 3.5 `member list` is
 * linearizable and needs a quorum, so the script asks only healthy members for it; this test checks
 * that a refusal changed nothing with a serializable list from the one survivor.
 *
 * Needs etcd, etcdctl and openssl; a missing tool fails the test, never skips it.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { parse } from "yaml";
import { shipScripts } from "./shipped";
import { EtcdCluster, RENDERED_DATA, RENDERED_LOOPBACK, RENDERED_PKI, issueCert, startRenderedEtcdCluster, substitute, until, withFlag } from "./etcdHarness";
import { k8sBinary } from "./k8s/binaries";

const STUBS = path.join(__dirname, "stubs");
const EXIT_QUORUM = 12;
const PREFIX = "/kubeadm-ha-rejoin/";

let cluster: EtcdCluster;
let scripts: string;
/** key=value of every key written, sorted. */
const written: string[] = [];

/** A member as `member list -w simple` shows it: status, name, peer URL, client URL. */
type Row = [string, string, string, string];
function memberList(endpoints?: string[], consistency: "l" | "s" = "l"): { ids: string[]; rows: Row[] } {
  const r = cluster.etcdctl(["member", "list", "-w", "simple", `--consistency=${consistency}`], endpoints);
  if (!r.ok) throw new Error(`member list failed: ${r.out}`);
  const lines = r.stdout.trim().split("\n").map((l) => l.split(", "));
  const sorted = lines.sort((a, b) => a[3].localeCompare(b[3]));
  return { ids: sorted.map((l) => l[0]), rows: sorted.map((l) => [l[1], l[2], l[3], l[4]] as Row) };
}

const startedRows = () => cluster.members.map((m): Row => ["started", m.name, `https://${m.ip}:2380`, m.endpoint]).sort((a, b) => a[2].localeCompare(b[2]));

/** Every key under PREFIX as key=value, read linearizably through `endpoints` or from one member's own store. */
function readAll(endpoints: string[], consistency: "l" | "s"): { value?: string[]; last: string } {
  const r = cluster.etcdctl(["get", PREFIX, "--prefix", `--consistency=${consistency}`], endpoints);
  if (!r.ok) return { last: r.out };
  const lines = r.stdout.trim().split("\n").filter((l) => l !== "");
  const pairs: string[] = [];
  for (let i = 0; i + 1 < lines.length; i += 2) pairs.push(`${lines[i]}=${lines[i + 1]}`);
  return { value: pairs.sort(), last: r.out };
}

async function writeKeys(tag: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const key = `${PREFIX}${tag}-${i}`;
    const value = `${tag}-value-${i}`;
    await until(`put ${key}`, 15000, () => {
      const r = cluster.etcdctl(["put", key, value]);
      return { value: r.ok ? true : undefined, last: r.out };
    });
    written.push(`${key}=${value}`);
  }
  written.sort();
}

/** Member `i`'s machine: the rendered node.env and static pod, moved to loopback and a temp dir. */
class Machine {
  readonly root: string;
  readonly etc: string;
  readonly kube: string;
  readonly state: string;
  readonly bin: string;

  constructor(readonly i: number, readonly role: "etcd" | "stacked") {
    const m = cluster.members[i];
    this.root = fs.mkdtempSync(path.join(cluster.work, `machine-${i}-`));
    this.etc = path.join(this.root, "etc/kubeadm-ha");
    this.kube = path.join(this.root, "etc/kubernetes");
    this.state = path.join(this.root, "stub-state");
    this.bin = path.join(this.root, "bin");
    for (const d of [this.etc, this.state, this.bin, path.join(this.root, "run")]) fs.mkdirSync(d, { recursive: true });
    const cloudConfig = parse(fs.readFileSync(path.join(cluster.renderDir, `user-data/${cluster.stack}-etcd-member-${i}.yaml`), "utf8"), { version: "1.1" });
    const file = (p: string): string => cloudConfig.write_files.find((w: { path: string }) => w.path === p).content;
    let env = substitute(file("/etc/kubeadm-ha/node.env"), ipMap(), []);
    // The recording stubs stand in for everything an etcd member's rejoin must not need.
    for (const cmd of ["kubeadm", "kubectl", "aws", "ctr"])
      fs.writeFileSync(path.join(this.bin, cmd), `#!/bin/bash\necho "${cmd} $*" >>"$STUB_STATE/calls.log"\necho "${cmd} must not run here" >&2\nexit 97\n`, { mode: 0o755 });
    if (role === "etcd") {
      fs.mkdirSync(this.kube, { recursive: true });
      // The member's own server pair and the CA certificate, where fetch-secrets.sh puts them.
      fs.mkdirSync(path.join(this.kube, "pki"));
      fs.symlinkSync(m.pkiDir, path.join(this.kube, "pki/etcd"));
      // The members' addresses moved to loopback as in node.env: etcd-rejoin.sh compares the pod's
      // --initial-cluster with the peer URLs etcd reports.
      fs.writeFileSync(path.join(this.etc, "etcd.yaml"), substitute(file("/etc/kubeadm-ha/etcd.yaml"), new Map([...ipMap(), [RENDERED_LOOPBACK, RENDERED_LOOPBACK]]), []), { mode: 0o600 });
    } else {
      // As a stacked master: the etcd CA pair (fetch-secrets.sh), the joiner's ClusterConfiguration
      // (join-lock.sh), and kubeadm (test/stubs/kubeadm.sh) issuing a healthcheck-client pair signed
      // here by the cluster's CA, as `kubeadm init phase certs etcd-healthcheck-client` would.
      env = env.replace("NODE_ROLE='etcd'", "NODE_ROLE='control-plane'") + "ETCD_TOPOLOGY='stacked'\nAPI_ENDPOINT='api.invalid:6443'\n";
      const pki = path.join(this.kube, "pki/etcd");
      fs.mkdirSync(pki, { recursive: true });
      for (const f of ["ca.crt", "ca.key"]) fs.copyFileSync(path.join(cluster.caDir, f), path.join(pki, f));
      issueCert(this.state, "healthcheck-client", { commonName: "kube-etcd-healthcheck-client", dnsNames: [], ipAddresses: [], allowedUses: ["digital_signature", "key_encipherment", "client_auth"] }, cluster.caDir);
      fs.copyFileSync(path.join(STUBS, "kubeadm.sh"), path.join(this.bin, "kubeadm"));
      fs.chmodSync(path.join(this.bin, "kubeadm"), 0o755);
      fs.copyFileSync(path.join(STUBS, "stub-lib.sh"), path.join(this.bin, "stub-lib.sh"));
      fs.writeFileSync(path.join(this.root, "run/joiner-cluster.yaml"), "{}\n");
    }
    fs.writeFileSync(path.join(this.etc, "node.env"), env);
  }

  rejoin(): { status: number | null; stderr: string } {
    const r = spawnSync("/bin/bash", [path.join(scripts, "etcd-rejoin.sh")], {
      env: {
        PATH: `${this.bin}:/usr/bin:/bin`,
        HOME: this.root,
        KUBEADM_HA_ETC: this.etc,
        KUBERNETES_DIR: this.kube,
        KUBEADM_HA_RUN: path.join(this.root, "run"),
        KUBEADM_HA_ETCD_DATA_DIR: cluster.members[this.i].dataDir,
        KUBEADM_HA_WAIT_SECONDS: "60",
        KUBEADM_HA_POLL_SECONDS: "1",
        KUBEADM_HA_INIT_PROBES: "2",
        ETCDCTL: k8sBinary("etcdctl"),
        ETCDCTL_DIAL_TIMEOUT: "2s",
        ETCDCTL_COMMAND_TIMEOUT: "3s",
        STUB_STATE: this.state,
        STUB_TOKEN: "unused",
        TOKEN_PLACEHOLDER: "__BOOTSTRAP_TOKEN__",
      },
      encoding: "utf8",
      timeout: 120000,
    });
    if (r.error) throw r.error;
    return { status: r.status, stderr: r.stderr };
  }

  calls(): string[] {
    const log = path.join(this.state, "calls.log");
    return fs.existsSync(log) ? fs.readFileSync(log, "utf8").split("\n").filter((l) => l !== "") : [];
  }

  /** The etcd flags of the manifest the kubelet would start, moved to loopback as the harness moves the rendered ones. */
  manifestFlags(): string[] {
    const m = cluster.members[this.i];
    const command: string[] = parse(fs.readFileSync(path.join(this.etc, "etcd.yaml"), "utf8"), { version: "1.1" }).spec.containers[0].command;
    // Member addresses are already on loopback (the constructor moved them); the machine's own 127.0.0.1 is not.
    const own = new Map([...cluster.members.map((x): [string, string] => [x.ip, x.ip]), [RENDERED_LOOPBACK, m.loopback]]);
    return command.slice(1).map((f) => substitute(f, own, [[RENDERED_DATA, m.dataDir], [RENDERED_PKI, m.pkiDir]]));
  }
}

const ipMap = () => new Map(cluster.members.map((m) => [m.renderedIp, m.ip]));

async function expectWholeAndServing(newMember: number): Promise<void> {
  await cluster.healthy();
  expect(memberList().rows).toEqual(startedRows());
  expect(readAll(cluster.endpoints, "l").value).toEqual(written);
  // From the new member's own store: it has the data, not just a way to the leader.
  const own = await until(`member ${newMember} to serve every key`, 15000, () => {
    const r = readAll([cluster.members[newMember].endpoint], "s");
    return { value: r.value && r.value.join() === written.join() ? r.value : undefined, last: r.last };
  }, () => cluster.logTail());
  expect(own).toEqual(written);
}

beforeAll(async () => {
  scripts = shipScripts(["lib.sh", "etcdctl.sh", "etcd-rejoin.sh"]);
  cluster = await startRenderedEtcdCluster({ workPrefix: "etcd-rejoin-real-" });
  await cluster.healthy();
  await writeKeys("before", 25);
}, 90000);

afterAll(async () => {
  if (cluster) await cluster.dispose();
  if (scripts) fs.rmSync(scripts, { recursive: true, force: true });
});

describe("replacing a dead external etcd member with the project's rejoin script (real etcd 3.6)", () => {
  it("removes the dead member, adds the new one, and the new machine starts as existing with every key", async () => {
    // The leader: the case that forces an election before anyone can answer the script.
    const dead = cluster.leader()!;
    expect(dead).toBeDefined();
    const before = memberList();
    const oldId = before.ids[before.rows.findIndex((r) => r[1] === cluster.members[dead].name)];
    await cluster.kill(dead);
    cluster.wipe(dead);
    await writeKeys("while-down", 5);

    const machine = new Machine(dead, "etcd");
    const rendered = machine.manifestFlags();
    const r = machine.rejoin();
    expect(r.stderr).toContain(`this machine replaces etcd member ${oldId}`);
    expect(r.status).toBe(0);
    expect(machine.calls()).toEqual([]);
    // The new member is known and not started; the dead one is gone.
    const pending = memberList(cluster.members.filter((m) => m.index !== dead).map((m) => m.endpoint));
    expect(pending.rows).toEqual(startedRows().map((row) => (row[1] === cluster.members[dead].name ? (["unstarted", "", row[2], ""] as Row) : row)));
    expect(pending.ids).not.toContain(oldId);
    // Exactly one flag differs from the rendered manifest.
    const flags = machine.manifestFlags();
    expect(flags).toEqual(withFlag(rendered, "initial-cluster-state", "existing"));
    expect(rendered).toContain("--initial-cluster-state=new");

    cluster.start(dead, flags);
    await expectWholeAndServing(dead);
  }, 120000);

  it("with two members down, refuses with EXIT_QUORUM and changes nothing; once quorum is back, the same command succeeds", async () => {
    const [dead, alsoDown, survivor] = [0, 1, 2];
    const before = memberList();
    await cluster.kill(dead);
    await cluster.kill(alsoDown);
    cluster.wipe(dead);
    const machine = new Machine(dead, "etcd");
    const manifest = fs.readFileSync(path.join(machine.etc, "etcd.yaml"), "utf8");

    const refused = machine.rejoin();
    expect(refused.status).toBe(EXIT_QUORUM);
    expect(refused.stderr).toContain(`ERROR: refusing to replace this etcd member: 0 of 2 others are healthy`);
    // Without a quorum only a serializable list answers: the survivor's own view.
    expect(memberList([cluster.members[survivor].endpoint], "s")).toEqual(before);
    expect(fs.readFileSync(path.join(machine.etc, "etcd.yaml"), "utf8")).toBe(manifest);
    expect(fs.readdirSync(machine.etc).sort()).toEqual(["etcd.yaml", "node.env"]);

    // The other member comes back on its data: two of three, a quorum again.
    cluster.start(alsoDown);
    await cluster.healthy([cluster.members[alsoDown].endpoint, cluster.members[survivor].endpoint]);
    const r = machine.rejoin();
    expect(r.stderr).toContain(`this machine replaces etcd member`);
    expect(r.status).toBe(0);
    cluster.start(dead, machine.manifestFlags());
    await expectWholeAndServing(dead);
  }, 180000);

  it("as a stacked master: removes only the dead member; kubeadm's join (emulated: member add, start as existing) brings it back", async () => {
    const dead = 2;
    await cluster.kill(dead);
    cluster.wipe(dead);
    const machine = new Machine(dead, "stacked");
    const r = machine.rejoin();
    expect(r.stderr).toContain(`this machine replaces etcd member`);
    expect(r.status).toBe(0);
    expect(machine.calls()).toEqual([`kubeadm init phase certs etcd-healthcheck-client --config ${machine.root}/run/joiner-cluster.yaml`]);
    const live = cluster.members.filter((m) => m.index !== dead).map((m) => m.endpoint);
    expect(memberList(live).rows).toEqual(startedRows().filter((row) => row[1] !== cluster.members[dead].name));

    // What `kubeadm join --control-plane` does for its etcd member, retrying as kubeadm does while
    // etcd refuses changes ("unhealthy cluster": a member restarted in the last 5 s).
    const m = cluster.members[dead];
    await until("member add", 20000, () => {
      const add = cluster.etcdctl(["member", "add", m.name, `--peer-urls=https://${m.ip}:2380`], live);
      return { value: add.ok ? true : undefined, last: add.out };
    });
    cluster.start(dead, withFlag(m.flags, "initial-cluster-state", "existing"));
    await expectWholeAndServing(dead);
  }, 120000);
});
