/**
 * External etcd 3 -> 5, for real (issue 14): the prod stack rendered with etcd.nodeCount 5, its
 * first three members running as the cluster created with three (their --initial-cluster names only
 * those), then members 3 and 4 joining one at a time as their machines do: the project's own
 * etcd-rejoin.sh, as shipped, with each machine's rendered node.env and pod, then etcd started from
 * the manifest the script left, as the kubelet would. Real etcd and etcdctl 3.6 (test/k8s/build.sh),
 * everything on loopback (test/etcdHarness.ts).
 *
 * It also shows why the script rewrites --initial-cluster: a new member started with the rendered
 * list of five, while the cluster has four, is refused by etcd.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { parse, stringify } from "yaml";
import { shipScripts } from "./shipped";
import { EtcdCluster, RENDERED_DATA, RENDERED_LOOPBACK, RENDERED_PKI, flagValue, startRenderedEtcdCluster, substitute, tool, until, withFlag } from "./etcdHarness";
import { k8sBinary } from "./k8s/binaries";

let cluster: EtcdCluster;
let scripts: string;
let configFile: string;
const PREFIX = "/kubeadm-ha-scale/";

const ipMap = () => new Map(cluster.members.map((m) => [m.renderedIp, m.ip]));
/** Flags as rendered, with addresses and paths moved to loopback as the harness does for member `i`. */
const local = (i: number, flags: string[]) => {
  const m = cluster.members[i];
  return flags.map((f) => substitute(f, new Map([...ipMap(), [RENDERED_LOOPBACK, m.loopback]]), [[RENDERED_DATA, m.dataDir], [RENDERED_PKI, m.pkiDir]]));
};
const first = (n: number) => cluster.members.slice(0, n).map((m) => `${m.name}=https://${m.ip}:2380`).join(",");

/** Member `i`'s machine: its rendered node.env and etcd.yaml, with etcd-rejoin.sh to run. */
function rejoin(i: number): { status: number | null; stderr: string; flags: string[] } {
  const root = fs.mkdtempSync(path.join(cluster.work, `machine-${i}-`));
  const etc = path.join(root, "etc/kubeadm-ha");
  const kube = path.join(root, "etc/kubernetes");
  for (const d of [etc, path.join(kube, "pki"), path.join(root, "run"), path.join(root, "bin")]) fs.mkdirSync(d, { recursive: true });
  fs.symlinkSync(cluster.members[i].pkiDir, path.join(kube, "pki/etcd"));
  const cloudConfig = parse(fs.readFileSync(path.join(cluster.renderDir, `user-data/${cluster.stack}-etcd-member-${i}.yaml`), "utf8"), { version: "1.1" });
  const file = (p: string): string => cloudConfig.write_files.find((w: { path: string }) => w.path === p).content;
  fs.writeFileSync(path.join(etc, "node.env"), substitute(file("/etc/kubeadm-ha/node.env"), ipMap(), []));
  // The pod's addresses moved to loopback, so etcd-rejoin.sh compares and rewrites what etcd will run.
  const pod = parse(file("/etc/kubeadm-ha/etcd.yaml"), { version: "1.1" });
  pod.spec.containers[0].command = ["etcd", ...local(i, pod.spec.containers[0].command.slice(1))];
  fs.writeFileSync(path.join(etc, "etcd.yaml"), stringify(pod, { version: "1.1", lineWidth: 0 }), { mode: 0o600 });
  for (const cmd of ["kubeadm", "kubectl", "aws", "ctr"]) fs.writeFileSync(path.join(root, "bin", cmd), `#!/bin/bash\necho "${cmd} must not run here" >&2\nexit 97\n`, { mode: 0o755 });
  const r = spawnSync("/bin/bash", [path.join(scripts, "etcd-rejoin.sh")], {
    env: {
      PATH: `${path.join(root, "bin")}:/usr/bin:/bin`,
      HOME: root,
      KUBEADM_HA_ETC: etc,
      KUBERNETES_DIR: kube,
      KUBEADM_HA_RUN: path.join(root, "run"),
      KUBEADM_HA_ETCD_DATA_DIR: cluster.members[i].dataDir,
      KUBEADM_HA_WAIT_SECONDS: "60",
      KUBEADM_HA_POLL_SECONDS: "1",
      KUBEADM_HA_INIT_PROBES: "2",
      ETCDCTL: k8sBinary("etcdctl"),
      ETCDCTL_DIAL_TIMEOUT: "2s",
      TOKEN_PLACEHOLDER: "__BOOTSTRAP_TOKEN__",
    },
    encoding: "utf8",
    timeout: 120000,
  });
  if (r.error) throw r.error;
  const flags: string[] = parse(fs.readFileSync(path.join(etc, "etcd.yaml"), "utf8"), { version: "1.1" }).spec.containers[0].command.slice(1);
  return { status: r.status, stderr: r.stderr, flags };
}

/** The started members' names, by `member list`. */
function started(): string[] {
  const r = cluster.etcdctl(["member", "list", "-w", "json"], cluster.endpoints.slice(0, 3));
  if (!r.ok) throw new Error(r.out);
  const members = JSON.parse(r.stdout.replace(/"ID":\s*(\d+)/g, '"ID":"$1"')).members as Array<{ name?: string; clientURLs?: string[] }>;
  return members.filter((m) => m.clientURLs?.length).map((m) => m.name!).sort();
}

beforeAll(async () => {
  scripts = shipScripts(["lib.sh", "etcdctl.sh", "etcd-rejoin.sh"]);
  const stack = fs.readFileSync(path.join(__dirname, "..", "Pulumi.prod.yaml"), "utf8");
  configFile = path.join(fs.mkdtempSync(path.join(require("os").tmpdir(), "etcd-scale-config-")), "Pulumi.prod.yaml");
  fs.writeFileSync(configFile, stack.replace("    nodeCount: 3\n", "    nodeCount: 5\n"));
  cluster = await startRenderedEtcdCluster({ configFile, start: false, workPrefix: "etcd-scale-real-" });
  // The cluster as it was created with etcd.nodeCount 3.
  for (const i of [0, 1, 2]) cluster.start(i, withFlag(cluster.members[i].flags, "initial-cluster", first(3)));
  await cluster.healthy(cluster.endpoints.slice(0, 3));
  for (let k = 0; k < 20; k++) expect(cluster.etcdctl(["put", `${PREFIX}${k}`, `v${k}`], cluster.endpoints.slice(0, 3)).ok).toBe(true);
}, 120000);

afterAll(async () => {
  if (cluster) await cluster.dispose();
  if (scripts) fs.rmSync(scripts, { recursive: true, force: true });
  if (configFile) fs.rmSync(path.dirname(configFile), { recursive: true, force: true });
});

describe("external etcd 3 -> 5 with the project's rejoin script (real etcd 3.6)", () => {
  it("the rendered pod of a new member names five members, which etcd refuses while the cluster has four", async () => {
    expect(cluster.members).toHaveLength(5);
    expect(flagValue(cluster.members[3].flags, "initial-cluster")).toBe(first(5));
    // What member 3 would run without the rewrite: added, then started as existing with five names.
    // etcd refuses membership changes for 5 s after its leader got its quorum ("unhealthy cluster").
    await until("member add", 30000, () => {
      const add = cluster.etcdctl(["member", "add", cluster.members[3].name, `--peer-urls=https://${cluster.members[3].ip}:2380`], cluster.endpoints.slice(0, 3));
      return { value: add.ok ? true : undefined, last: add.out };
    });
    const r = spawnSync(tool("etcd"), withFlag(cluster.members[3].flags, "initial-cluster-state", "existing"), { encoding: "utf8", timeout: 60000, env: { PATH: process.env.PATH } });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("member count is unequal");
    // Undo the add: the script runs from a clean cluster of three.
    // Member IDs are 64-bit: read them as strings, not as JavaScript numbers.
    const json = cluster.etcdctl(["member", "list", "-w", "json"], cluster.endpoints.slice(0, 3)).stdout.replace(/"ID":\s*(\d+)/g, '"ID":"$1"');
    const pending = (JSON.parse(json).members as Array<{ ID: string; clientURLs?: string[] }>).find((m) => !m.clientURLs?.length)!;
    await until("member remove", 30000, () => {
      const r = cluster.etcdctl(["member", "remove", BigInt(pending.ID).toString(16)], cluster.endpoints.slice(0, 3));
      return { value: r.ok ? true : undefined, last: r.out };
    });
    expect(started()).toEqual(cluster.members.slice(0, 3).map((m) => m.name).sort());
    fs.rmSync(cluster.members[3].dataDir, { recursive: true, force: true });
  }, 90000);

  it("members 3 and 4 join one at a time, each started from the manifest the script left, and every key is on the new ones", async () => {
    for (const i of [3, 4]) {
      const r = rejoin(i);
      expect([i, r.status]).toEqual([i, 0]);
      expect(r.stderr).toContain(`adding ${cluster.members[i].name}`);
      // The cluster's members, itself included: four, then five.
      expect(flagValue(r.flags, "initial-cluster")?.split(",").sort()).toEqual(first(i + 1).split(",").sort());
      expect(flagValue(r.flags, "initial-cluster-state")).toBe("existing");
      cluster.start(i, r.flags);
      await cluster.healthy(cluster.endpoints.slice(0, i + 1), 60000);
      expect(started()).toEqual(cluster.members.slice(0, i + 1).map((m) => m.name).sort());
    }
    const own = await until("member 4 to serve every key", 20000, () => {
      const r = cluster.etcdctl(["get", PREFIX, "--prefix", "--keys-only", "--consistency=s"], [cluster.endpoints[4]]);
      const keys = r.stdout.split("\n").filter(Boolean);
      return { value: keys.length === 20 ? keys : undefined, last: r.out };
    }, () => cluster.logTail());
    expect(own).toHaveLength(20);
  }, 240000);
});
