/**
 * day2.sh (cloud-init/scripts/day2.sh) run for real under bash, as shipped, against recording stubs
 * (test/stubs/day2 for curl, kubectl and kubeadm; the bootstrap tests' apt-get, gpg, aws, etcdctl and
 * the rest), on a machine laid out in a temp dir. The user data the machine reads from IMDS is the
 * program's own render (masterDocuments, etcdNodeDocuments, renderCloudConfig), so `sync` installs
 * exactly what Pulumi gives the machine.
 */
import { spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { parse, stringify } from "yaml";
import { MasterDocumentValues, masterDocuments } from "../components/controlPlane";
import { etcdMembers, etcdNodeDocuments } from "../components/etcd";
import { clusterConfiguration } from "../cloud-init/kubeadm";
import { BOOTSTRAP_PREFIX, bundledScriptContents, encodeUserData, renderCloudConfig, shippedScript, SCRIPTS_DIR } from "../cloud-init/render";
import { shipScripts } from "./shipped";
import { masterValues, SUBNETS, ZONES } from "./values";

const SCRIPTS = shipScripts();
const STUBS = path.join(__dirname, "stubs");
const BUCKET = "dev-bootstrap-0123";

/** Stub file -> the commands it stands in for. */
const STUB_COMMANDS: Record<string, string[]> = {
  "day2/curl.sh": ["curl"],
  "day2/kubectl.sh": ["kubectl"],
  "day2/kubeadm.sh": ["kubeadm"],
  "apt-get.sh": ["apt-get"],
  "gpg.sh": ["gpg"],
  "day2/aws.sh": ["aws"],
  "aws-s3api.sh": ["aws-s3api"],
  "aws.sh": ["aws-secrets"],
  "etcdctl-cluster.sh": ["etcdctl"],
  "record.sh": ["apt-mark", "systemctl"],
};

const sha = (s: string) => crypto.createHash("sha256").update(s, "utf8").digest("hex");

/** The bootstrap bucket as the program fills it: every bundled script under bootstrap/<sha256>. */
function fillBucket(dir: string): void {
  fs.mkdirSync(path.join(dir, BOOTSTRAP_PREFIX), { recursive: true });
  for (const c of [...bundledScriptContents(), shippedScript(fs.readFileSync(path.join(SCRIPTS_DIR, "lib.sh"), "utf8"))])
    fs.writeFileSync(path.join(dir, BOOTSTRAP_PREFIX, sha(c)), c);
}

/** A call of the join lock: its credential, or kubectl with it. */
const isLockCall = (c: string) => c.startsWith("kubeadm kubeconfig user") || /--kubeconfig \S*\/joiner\.conf /.test(c);
/** The etcd members' lock's etcdctl calls of the last run, with the health checks between them as "health". */
const etcdLock = (m: { calls(): string[] }) =>
  m
    .calls()
    .filter((c) => /^etcdctl .*(lease |txn$|endpoint health)/.test(c))
    .map((c) => (/endpoint health/.test(c) ? "health" : c.replace(/^etcdctl /, "")));

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

class Machine {
  readonly root = fs.mkdtempSync(path.join(os.tmpdir(), "kubeadm-ha-day2-"));
  readonly etc = path.join(this.root, "etc/kubeadm-ha");
  readonly kube = path.join(this.root, "etc/kubernetes");
  readonly lib = path.join(this.root, "usr/local/lib/kubeadm-ha");
  readonly systemd = path.join(this.root, "etc/systemd/system");
  readonly state = path.join(this.root, "stub-state");
  readonly bin = path.join(this.root, "bin");
  readonly env: Record<string, string>;

  constructor(readonly ip: string, readonly role: "control-plane" | "etcd") {
    for (const d of [this.state, this.bin, this.lib, path.join(this.kube, "pki/etcd"), path.join(this.kube, "manifests")]) fs.mkdirSync(d, { recursive: true });
    for (const [file, commands] of Object.entries(STUB_COMMANDS))
      for (const cmd of commands) {
        fs.copyFileSync(path.join(STUBS, file), path.join(this.bin, cmd));
        fs.chmodSync(path.join(this.bin, cmd), 0o755);
      }
    fs.copyFileSync(path.join(STUBS, "stub-lib.sh"), path.join(this.bin, "stub-lib.sh"));
    fillBucket(path.join(this.root, "bucket"));
    for (const f of ["ca.crt", "etcd/ca.crt", "etcd/healthcheck-client.crt", "etcd/healthcheck-client.key", "etcd/server.crt", "etcd/server.key"]) this.write(path.join(this.kube, "pki", f), "PEM\n");
    this.env = {
      PATH: `${this.bin}:/usr/bin:/bin`,
      HOME: this.root,
      LANG: "C.UTF-8",
      KUBEADM_HA_ETC: this.etc,
      KUBERNETES_DIR: this.kube,
      KUBEADM_HA_RUN: path.join(this.root, "run/kubeadm-ha"),
      KUBEADM_HA_LIB: this.lib,
      KUBEADM_HA_ETCD_DATA_DIR: path.join(this.root, "var/lib/etcd"),
      SYSTEMD_DIR: this.systemd,
      APT_KEYRINGS: path.join(this.root, "etc/apt/keyrings"),
      APT_SOURCES: path.join(this.root, "etc/apt/sources.list.d"),
      KUBEADM_HA_WAIT_SECONDS: "5",
      KUBEADM_HA_POLL_SECONDS: "0",
      STUB_STATE: this.state,
      STUB_BUCKET_DIR: path.join(this.root, "bucket"),
      ETCDCTL: path.join(this.bin, "etcdctl"),
    };
  }

  write(file: string, content: string): void {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, content);
  }

  read(file: string): string {
    return fs.readFileSync(file, "utf8");
  }

  /** EC2 now has this user data for the instance (base64 of gzipped cloud-config, as Pulumi sends it). */
  userData(base64: string): void {
    fs.writeFileSync(path.join(this.state, "user-data"), Buffer.from(base64, "base64"));
  }

  day2(...args: string[]): Run {
    fs.rmSync(path.join(this.state, "calls.log"), { force: true });
    const r = spawnSync("/bin/bash", [path.join(SCRIPTS, "day2.sh"), ...args], { env: this.env, encoding: "utf8", timeout: 60000 });
    if (r.error) throw r.error;
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  /** Every stub call of the last run, in order. */
  calls(): string[] {
    const p = path.join(this.state, "calls.log");
    // The aws dispatcher (test/stubs/day2/aws.sh) runs the s3api and secrets stubs under their own names.
    return fs.existsSync(p) ? fs.readFileSync(p, "utf8").split("\n").filter(Boolean).map((c) => c.replace(/^aws-(s3api|secrets) /, "aws ")) : [];
  }

  /** The calls that change something, paths shortened; the join lock's are `lock()`. */
  flow(): string[] {
    return this.calls()
      .filter((c) => !isLockCall(c))
      .map((c) => c.split(this.root).join("").replace(/--kubeconfig \S+ /, "").replace(/ --request-timeout=30s/, ""))
      .filter((c) => /^(kubeadm|kubectl (replace|drain|uncordon|delete)|apt-get .*install|systemctl (daemon-reload|restart|enable|disable)|etcdctl .*member remove)/.test(c));
  }

  /** The join lock's calls (join-lock.sh), in order: `mint`, then the Lease operations. */
  lock(): string[] {
    return this.calls()
      .filter(isLockCall)
      .map((c) => (c.startsWith("kubeadm kubeconfig user") ? "mint" : c.replace(/^kubectl --kubeconfig \S+ --request-timeout=30s -n kube-system /, "")));
  }

  /** The Node kubectl reads. */
  node(over: { ready?: string; message?: string; kubelet?: string; unschedulable?: boolean } = {}): void {
    const node = {
      spec: { unschedulable: over.unschedulable ?? false },
      status: {
        conditions: [{ type: "Ready", status: over.ready ?? "True", reason: over.ready === "False" ? "KubeletNotReady" : "KubeletReady", message: over.message ?? "kubelet is posting ready status" }],
        nodeInfo: { kubeletVersion: over.kubelet ?? "v1.35.0" },
      },
    };
    this.write(path.join(this.state, "node.json"), JSON.stringify(node));
  }

  /** The etcd cluster etcdctl answers for (test/stubs/etcdctl-cluster.sh). */
  etcd(members: Array<{ ip: string; started?: boolean; health?: string }>): void {
    this.write(
      path.join(this.state, "etcd.json"),
      JSON.stringify({
        members: members.map((m, i) => ({ ID: 0x1000 + i, name: `m${i}`, peerURLs: [`https://${m.ip}:2380`], ...(m.started === false ? {} : { clientURLs: [`https://${m.ip}:2379`] }) })),
        endpoints: Object.fromEntries(members.map((m) => [`https://${m.ip}:2379`, m.health ?? "healthy"])),
      }),
    );
  }

  cleanup(): void {
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}

const machines: Machine[] = [];
afterEach(() => {
  for (const m of machines.splice(0)) m.cleanup();
});

const MASTERS = masterValues().masters;
const render = (v: MasterDocumentValues, i: number) => encodeUserData(renderCloudConfig(masterDocuments(v, v.masters[i]), BUCKET));

/** ClusterConfiguration as kubeadm stores it in kube-system/kubeadm-config. */
function storedConfig(v: MasterDocumentValues) {
  const c = clusterConfiguration({ ...v, controlPlaneEndpoint: v.apiEndpoint });
  return { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "kubeadm-config", namespace: "kube-system", resourceVersion: "7", managedFields: [{ manager: "kubeadm" }] }, data: { ClusterConfiguration: stringify({ ...c, imageRepository: "registry.k8s.io" }) } };
}

/** Master `i` of the dev stack, joined and healthy at `v`, its files from its user data. */
function master(i: number, v: MasterDocumentValues = masterValues()): Machine {
  const m = new Machine(v.masters[i].ip, "control-plane");
  machines.push(m);
  m.userData(render(v, i));
  expect(m.day2("sync").status).toBe(0);
  m.write(path.join(m.kube, "kubelet.conf"), "kubelet\n");
  m.write(path.join(m.kube, "admin.conf"), "admin\n");
  m.write(path.join(m.kube, "manifests/kube-apiserver.yaml"), `spec:\n  containers:\n  - image: registry.k8s.io/kube-apiserver:v${v.kubernetesVersion}\n`);
  m.write(path.join(m.state, "kubeadm-config.json"), JSON.stringify(storedConfig(v)));
  m.node({ kubelet: `v${v.kubernetesVersion}` });
  m.etcd(v.masters.map((x) => ({ ip: x.ip })));
  return m;
}

describe("sync: the machine's files follow the user data EC2 has now", () => {
  it("installs node.env, the kubeadm documents and patches, and every script of bundle.list by its hash; a second run changes nothing", () => {
    const m = master(1);
    const next = masterValues({ kubernetesVersion: "1.35.4" });
    m.userData(render(next, 1));
    const r = m.day2("sync");
    expect(r.status).toBe(0);
    expect(m.read(path.join(m.etc, "node.env"))).toContain("KUBERNETES_VERSION='1.35.4'\n");
    expect(r.stderr).toMatch(/updated .*\/etc\/kubeadm-ha\/node\.env from the user data/);
    expect(r.stderr).toMatch(/sync: 1 files changed/);
    // A fresh machine got every script of its bundle from the bucket, each checked against its hash.
    const fresh = new Machine(MASTERS[2].ip, "control-plane");
    machines.push(fresh);
    fresh.userData(render(next, 2));
    expect(fresh.day2("sync").status).toBe(0);
    const list = fresh.read(path.join(fresh.etc, "bundle.list")).trim().split("\n");
    expect(fs.readdirSync(fresh.lib).sort()).toEqual([...list.map((l) => l.split("lib/")[1]), "boot.sh", "install.sh", "lib.sh"].sort());
    for (const l of list) expect(sha(fresh.read(path.join(fresh.lib, l.split("lib/")[1])))).toBe(l.split(" ")[0]);
    expect(fresh.calls().filter((c) => c.startsWith("aws ")).map((c) => c.split(" ").slice(0, 9).join(" "))).toEqual(
      list.map((l) => `aws s3api get-object --region eu-west-1 --bucket ${BUCKET} --key ${BOOTSTRAP_PREFIX}${l.split(" ")[0]}`),
    );
    expect(fresh.read(path.join(fresh.etc, "patches/kube-apiserver0+json.yaml"))).toContain("--etcd-servers=https://127.0.0.1:2379,https://10.0.0.10:2379,https://10.0.32.10:2379");
    const again = fresh.day2("sync");
    expect([again.status, again.stderr.match(/sync: \d+ files changed/)?.[0]]).toEqual([0, "sync: 0 files changed"]);
    expect(fresh.calls().filter((c) => c.startsWith("aws "))).toEqual([]);
  });

  it("backups follow: a new interval restarts the timer, backups off remove it", () => {
    const backup = { bucket: "dev-etcd-backups", prefix: "etcd-snapshots", kmsKeyArn: "arn:aws:kms:eu-west-1:123456789012:key/k", intervalMinutes: 15 };
    const m = master(0, masterValues({ etcdBackup: backup }));
    expect(m.read(path.join(m.systemd, "kubeadm-ha-etcd-backup.timer"))).toContain("OnUnitActiveSec=15min");
    m.userData(render(masterValues({ etcdBackup: { ...backup, intervalMinutes: 30 } }), 0));
    expect(m.day2("sync").status).toBe(0);
    expect(m.read(path.join(m.systemd, "kubeadm-ha-etcd-backup.timer"))).toContain("OnUnitActiveSec=30min");
    expect(m.flow()).toEqual(["systemctl daemon-reload", "systemctl enable kubeadm-ha-etcd-backup.timer", "systemctl restart kubeadm-ha-etcd-backup.timer"]);
    m.userData(render(masterValues(), 0));
    expect(m.day2("sync").status).toBe(0);
    expect(m.flow()).toEqual(["systemctl disable --now kubeadm-ha-etcd-backup.timer", "systemctl daemon-reload"]);
    expect(fs.existsSync(path.join(m.systemd, "kubeadm-ha-etcd-backup.timer"))).toBe(false);
  });

  it("refuses user data that is not a cloud-config, and IMDS that does not answer", () => {
    const m = master(1);
    fs.writeFileSync(path.join(m.state, "user-data"), "#!/bin/sh\necho hi\n");
    expect(m.day2("sync")).toMatchObject({ status: 2, stderr: expect.stringContaining("could not read the user data") });
    fs.rmSync(path.join(m.state, "user-data"));
    expect(m.day2("sync")).toMatchObject({ status: 2, stderr: expect.stringContaining("could not read this instance's user data from the instance metadata service") });
  });
});

describe("health: the gate after each machine", () => {
  it("passes on a master whose components, Node, API through the load balancer and every etcd member are healthy", () => {
    const m = master(1);
    const r = m.day2("health");
    expect([r.status, r.stderr.trim().split("\n").pop()]).toEqual([0, expect.stringMatching(/kubeadm-ha\[day2\]: healthy: ip-10-0-32-10\.eu-west-1\.compute\.internal \(control-plane\)$/)]);
    expect(m.calls().filter((c) => c.startsWith("curl")).map((c) => c.split(" ").pop())).toEqual([
      "https://10.0.32.10:6443/readyz",
      "https://127.0.0.1:10257/healthz",
      "https://127.0.0.1:10259/healthz",
      "https://dev-api.elb.eu-west-1.amazonaws.com:6443/readyz",
    ]);
    expect(m.calls().filter((c) => c.startsWith("etcdctl")).map((c) => c.replace(/^etcdctl /, ""))).toEqual([
      "--endpoints=https://10.0.32.10:2379 member list -w json",
      "--endpoints=https://10.0.0.10:2379,https://10.0.32.10:2379,https://10.0.64.10:2379 endpoint health",
    ]);
  });

  it.each([
    ["the API server", () => "curl-fail:https://10.0.32.10:6443/readyz 7", "this master's API server is not ready: curl: (7) Failed to connect to 10.0.32.10:6443/readyz"],
    ["the load balancer", () => "curl-fail:https://dev-api.elb.eu-west-1.amazonaws.com:6443/readyz 28", "the API does not answer through the load balancer: curl: (28) Failed to connect to dev-api.elb.eu-west-1.amazonaws.com:6443/readyz"],
    ["a NotReady node", () => "node:ready=False", "node ip-10-0-32-10.eu-west-1.compute.internal: the node is not Ready (KubeletNotReady: kubelet is posting ready status)"],
    ["a cordoned node", () => "node:unschedulable", "node ip-10-0-32-10.eu-west-1.compute.internal: the node is cordoned"],
    ["an old kubelet", () => "node:kubelet=v1.34.9", "node ip-10-0-32-10.eu-west-1.compute.internal: its kubelet runs v1.34.9, not v1.35.0"],
    ["an unhealthy member", () => "etcd:unhealthy", "etcd is not healthy: https://10.0.64.10:2379 is unhealthy: failed to commit proposal: context deadline exceeded"],
    ["a member not started", () => "etcd:unstarted", "etcd is not healthy: etcd: m2 is not started"],
  ])("fails, after its wait, on %s, naming it (exit 20)", (_, what, message) => {
    const m = master(1);
    const [kind, detail] = what().split(/:(.*)/s);
    if (kind === "curl-fail") m.write(path.join(m.state, "curl-fail"), detail + "\n");
    if (detail === "ready=False") m.node({ ready: "False" });
    if (detail === "unschedulable") m.node({ unschedulable: true });
    if (detail?.startsWith("kubelet=")) m.node({ kubelet: detail.split("=")[1] });
    if (detail === "unhealthy") m.etcd(MASTERS.map((x, i) => ({ ip: x.ip, health: i === 2 ? "unhealthy" : "healthy" })));
    if (detail === "unstarted") m.etcd(MASTERS.map((x, i) => ({ ip: x.ip, started: i !== 2 })));
    const r = m.day2("health", "--wait", "0");
    expect(r.status).toBe(20);
    expect(r.stderr.trim().split("\n").pop()).toMatch(new RegExp(`ERROR: not healthy after 0s: ${message.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`));
  });

  it("passes a Node NotReady only because no network plugin is installed yet (the add-ons come after the control plane)", () => {
    const m = master(1);
    m.node({ ready: "False", message: "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized" });
    expect(m.day2("health").status).toBe(0);
  });

  it("--wait polls until the machine is healthy", () => {
    const m = master(1);
    m.etcd(MASTERS.map((x, i) => ({ ip: x.ip, health: i === 1 ? "unhealthy" : "healthy" })));
    const etcd = JSON.parse(m.read(path.join(m.state, "etcd.json")));
    etcd.healthyAfter = { "https://10.0.32.10:2379": 3 };
    m.write(path.join(m.state, "etcd.json"), JSON.stringify(etcd));
    const r = m.day2("health", "--wait", "60");
    expect(r.status).toBe(0);
    expect(r.stderr.match(/waiting: etcd is not healthy/g)).toHaveLength(2);
  });

  it("--create: a new machine passes while its cluster is being created; once the cluster answers it must be healthy, members launched after it excepted", () => {
    const m = new Machine(MASTERS[0].ip, "control-plane");
    machines.push(m);
    m.userData(render(masterValues(), 0));
    expect(m.day2("sync").status).toBe(0);
    // No kubelet.conf, and the load balancer has no target yet: connection refused.
    m.write(path.join(m.state, "curl-fail"), "https://dev-api.elb.eu-west-1.amazonaws.com:6443/readyz 7\n");
    expect(m.day2("health", "--wait", "0", "--create")).toMatchObject({ status: 0, stderr: expect.stringContaining("healthy enough: this machine's cluster is being created, nothing of it answers yet") });
    // Without --create the same machine is simply unhealthy.
    expect(m.day2("health", "--wait", "0").status).toBe(20);
    const joined = master(1);
    joined.etcd(MASTERS.map((x, i) => ({ ip: x.ip, started: i !== 2 })));
    expect(joined.day2("health", "--wait", "0", "--create").status).toBe(0);
    expect(joined.day2("health", "--wait", "0").status).toBe(20);
  });

  it("--create on an external etcd member: passes while no other member's client port is open, not once one is", async () => {
    // Loopback addresses: a test dials nothing else.
    const members = etcdMembers(3, ZONES, SUBNETS, "eu-west-1").map((x, i) => ({ ...x, ip: `127.77.0.${i + 1}`, clientUrl: `https://127.77.0.${i + 1}:2379`, peerUrl: `https://127.77.0.${i + 1}:2380` }));
    const m = new Machine(members[0].ip, "etcd");
    machines.push(m);
    const doc = etcdNodeDocuments({ clusterName: "prod", kubernetesVersion: "1.35.0", timings: { heartbeatIntervalMs: 100, electionTimeoutMs: 1000 }, members, region: "eu-west-1", secretArn: "arn:aws:secretsmanager:eu-west-1:1:secret:e" }, members[0]);
    m.userData(encodeUserData(renderCloudConfig(doc, BUCKET)));
    expect(m.day2("sync").status).toBe(0);
    expect(m.day2("health", "--wait", "0", "--create")).toMatchObject({ status: 0, stderr: expect.stringContaining("being created") });
    const listener = net.createServer().listen(2379, members[2].ip);
    await new Promise((r) => listener.once("listening", r));
    try {
      const r = m.day2("health", "--wait", "0", "--create");
      expect(r.status).toBe(20);
      expect(r.stderr).toContain("etcd is not healthy");
    } finally {
      listener.close();
    }
  });
});

describe("upgrade: kubeadm's procedure on one master", () => {
  it("encryption at rest turned on: the key file comes from the control plane's secret (fetch-secrets.sh) before kubeadm renders the API server with it", () => {
    const m = master(0, masterValues({ encryptionAtRest: false }));
    m.write(path.join(m.state, "secret.json"), JSON.stringify({
      "ca.crt": "CA\n", "ca.key": "CA KEY\n", "front-proxy-ca.crt": "FP\n", "front-proxy-ca.key": "FP KEY\n", "etcd/ca.crt": "E\n", "etcd/ca.key": "E KEY\n",
      "sa.key": "SA\n", "sa.pub": "SA PUB\n", "bootstrap-token": "abcdef.0123456789abcdef", "encryption-config.yaml": "kind: EncryptionConfiguration\n",
    }));
    m.userData(render(masterValues({ encryptionAtRest: true }), 0));
    const r = m.day2("upgrade", "--first");
    expect(r.status).toBe(0);
    expect(m.read(path.join(m.kube, "pki/encryption-config.yaml"))).toBe("kind: EncryptionConfiguration\n");
    expect(fs.statSync(path.join(m.kube, "pki/encryption-config.yaml")).mode & 0o777).toBe(0o600);
    const calls = m.calls().map((c) => c.split(" ").slice(0, 3).join(" "));
    expect(calls.indexOf("aws secretsmanager get-secret-value")).toBeLessThan(calls.indexOf("kubeadm upgrade apply"));
    expect(r.stderr).toContain("the API server encrypts Secrets now: installing");
    // Once there, it is not fetched again.
    m.userData(render(masterValues({ encryptionAtRest: true, leaderElection: { leaseDuration: "20s", renewDeadline: "10s", retryPeriod: "2s" } }), 0));
    expect(m.day2("upgrade", "--first").status).toBe(0);
    expect(m.calls().filter((c) => c.startsWith("aws secretsmanager"))).toEqual([]);
  });

  const next = masterValues({ kubernetesVersion: "1.35.4" });
  const PATCHES = "/etc/kubeadm-ha/patches";

  it("master 0 (--first): the rendered ClusterConfiguration stored at the running version, the kubeadm package, kubeadm upgrade apply with the stacked etcd patch, drain, kubelet and kubectl, restart, uncordon", () => {
    const m = master(0);
    m.userData(render({ ...next, leaderElection: { ...next.leaderElection, leaseDuration: "20s" } }, 0));
    const r = m.day2("upgrade", "--first");
    expect(r.status).toBe(0);
    expect(m.flow()).toEqual([
      "apt-get -o DPkg::Lock::Timeout=300 -q install -y --allow-change-held-packages kubeadm=1.35.4-*",
      "kubectl replace -f -",
      `kubeadm upgrade apply v1.35.4 --yes --patches ${PATCHES}`,
      "kubectl drain ip-10-0-0-10.eu-west-1.compute.internal --ignore-daemonsets --delete-emptydir-data --timeout=600s",
      "apt-get -o DPkg::Lock::Timeout=300 -q install -y --allow-change-held-packages kubelet=1.35.4-* kubectl=1.35.4-*",
      "systemctl daemon-reload",
      "systemctl restart kubelet",
      "kubectl uncordon ip-10-0-0-10.eu-west-1.compute.internal",
    ]);
    const stored = parse(JSON.parse(m.read(path.join(m.state, "kubeadm-config.json"))).data.ClusterConfiguration);
    expect(stored.kubernetesVersion).toBe("v1.35.4");
    expect(stored.controllerManager.extraArgs).toContainEqual({ name: "leader-elect-lease-duration", value: "20s" });
    expect(m.read(path.join(m.root, "etc/apt/sources.list.d/kubernetes.list"))).toContain("https://pkgs.k8s.io/core:/stable:/v1.35/deb/ /");
    expect(r.stderr).toContain("upgrade: control plane v1.35.0 -> v1.35.4 (first master: kubeadm upgrade apply)");
    // The join lock, as cert-renew.sh takes it: from before kubeadm to after the uncordon (a run
    // shorter than a third of its staleness renews nothing).
    expect(m.lock()).toEqual(["mint", "create -f -", "get lease kubeadm-ha-control-plane-join -o json", "delete lease kubeadm-ha-control-plane-join"]);
    const calls = m.calls();
    const at = (re: RegExp) => calls.findIndex((c) => re.test(c));
    const last = (re: RegExp) => calls.length - 1 - [...calls].reverse().findIndex((c) => re.test(c));
    expect(at(/joiner\.conf .*create -f -$/)).toBeLessThan(at(/^kubectl .*admin\.conf .*replace -f -$/));
    expect(last(/joiner\.conf .*delete lease/)).toBeGreaterThan(at(/^kubectl .* uncordon /));
    expect(fs.existsSync(path.join(m.state, "lease.json"))).toBe(false);
  });

  it("a kubeadm step longer than a third of the lock's staleness: the lease is renewed in the background while it runs, and no renewal outlives the release", () => {
    const m = master(0);
    m.userData(render(next, 0));
    Object.assign(m.env, { KUBEADM_HA_LOCK_STALE_SECONDS: "3", STUB_UPGRADE_SECONDS: "2.5" });
    const r = m.day2("upgrade", "--first");
    expect(r.status).toBe(0);
    const calls = m.calls();
    const at = (re: RegExp) => calls.findIndex((c) => re.test(c));
    const renewals = calls.map((c, i) => [c, i] as const).filter(([c]) => /joiner\.conf .*replace -f -$/.test(c)).map(([, i]) => i);
    // Every second (3 / 3) while kubeadm's 2.5 s run, each a compare-and-swap of the lease this node holds.
    expect(renewals.length).toBeGreaterThanOrEqual(2);
    for (const i of renewals) expect([i > at(/^kubeadm upgrade apply/), /get lease kubeadm-ha-control-plane-join -o json$/.test(calls[i - 1])]).toEqual([true, true]);
    expect(r.stderr.match(/renewed join lock lease\/kubeadm-ha-control-plane-join/g)?.length).toBe(renewals.length);
    expect(fs.existsSync(path.join(m.state, "lease.json"))).toBe(false);
    // Released and stopped: no lease comes back after the script ended.
    const after = m.calls().length;
    spawnSync("sleep", ["1.5"]);
    expect([m.calls().length, fs.existsSync(path.join(m.state, "lease.json"))]).toEqual([after, false]);
  });

  it("a holder killed mid-step (SIGKILL, no EXIT trap): its renewer stops, so the lease goes stale as a dead holder's should", () => {
    const m = master(0);
    m.userData(render(next, 0));
    Object.assign(m.env, { KUBEADM_HA_LOCK_STALE_SECONDS: "3", STUB_UPGRADE_SECONDS: "6" });
    fs.rmSync(path.join(m.state, "calls.log"), { force: true });
    // No pipes: the orphaned kubeadm stub's sleep would hold them open.
    spawnSync("/bin/bash", [path.join(SCRIPTS, "day2.sh"), "upgrade", "--first"], { env: m.env, stdio: "ignore", timeout: 2500, killSignal: "SIGKILL" });
    const renewals = () => m.calls().filter((c) => /joiner\.conf .*replace -f -$/.test(c)).length;
    // A renewal already under way when the holder died may still finish.
    spawnSync("sleep", ["1.2"]);
    const atKill = renewals();
    expect(atKill).toBeGreaterThanOrEqual(1);
    spawnSync("sleep", ["2.5"]);
    expect(renewals()).toBe(atKill);
    expect(JSON.parse(m.read(path.join(m.state, "lease.json"))).spec.holderIdentity).toBe("ip-10-0-0-10.eu-west-1.compute.internal");
  });

  it("waits while another master's certificate renewal holds the join lock, changing nothing (exit 4), and goes ahead once it is released", () => {
    const m = master(1);
    m.userData(render(next, 1));
    m.write(path.join(m.state, "kubeadm-config.json"), JSON.stringify(storedConfig(next)));
    const now = new Date().toISOString().replace("Z", "000Z");
    const renewal = { apiVersion: "coordination.k8s.io/v1", kind: "Lease", metadata: { name: "kubeadm-ha-control-plane-join", namespace: "kube-system" }, spec: { holderIdentity: "ip-10-0-0-10.eu-west-1.compute.internal", acquireTime: now, renewTime: now, leaseDurationSeconds: 900 } };
    m.write(path.join(m.state, "lease.json"), JSON.stringify(renewal));
    Object.assign(m.env, { KUBEADM_HA_WAIT_SECONDS: "2", KUBEADM_HA_POLL_SECONDS: "1" });
    const held = m.day2("upgrade");
    expect(held.status).toBe(4);
    expect(held.stderr).toContain("join lock held by 'ip-10-0-0-10.eu-west-1.compute.internal'");
    expect(held.stderr).toContain("timed out after 2s waiting for join lock lease/kubeadm-ha-control-plane-join in kube-system");
    expect(m.flow().filter((c) => /^(kubeadm upgrade|kubectl (drain|uncordon))|kubelet/.test(c))).toEqual([]);
    // Still the renewal's: a waiter never deletes a lock it does not hold.
    expect(JSON.parse(m.read(path.join(m.state, "lease.json"))).spec.holderIdentity).toBe("ip-10-0-0-10.eu-west-1.compute.internal");
    fs.rmSync(path.join(m.state, "lease.json"));
    expect(m.day2("upgrade").status).toBe(0);
    expect(m.flow().filter((c) => /^kubeadm/.test(c))).toEqual([`kubeadm upgrade node --patches ${PATCHES}`]);
    expect(fs.existsSync(path.join(m.state, "lease.json"))).toBe(false);
  });

  it("another master waits for master 0: it refuses while the stored configuration is old (exit 21), then runs kubeadm upgrade node", () => {
    const m = master(1);
    m.userData(render(next, 1));
    const early = m.day2("upgrade");
    expect(early.status).toBe(21);
    expect(early.stderr).toContain("the cluster's configuration is at v1.35.0, not v1.35.4: master 0 runs kubeadm upgrade apply first (the rollout's order)");
    expect(m.flow().filter((c) => c.startsWith("kubeadm"))).toEqual([]);
    m.write(path.join(m.state, "kubeadm-config.json"), JSON.stringify(storedConfig(next)));
    expect(m.day2("upgrade").status).toBe(0);
    expect(m.flow().filter((c) => /^(kubeadm|kubectl)/.test(c))).toEqual([
      `kubeadm upgrade node --patches ${PATCHES}`,
      "kubectl drain ip-10-0-32-10.eu-west-1.compute.internal --ignore-daemonsets --delete-emptydir-data --timeout=600s",
      "kubectl uncordon ip-10-0-32-10.eu-west-1.compute.internal",
    ]);
    expect(m.read(path.join(m.kube, "manifests/kube-apiserver.yaml"))).toContain("kube-apiserver:v1.35.4");
  });

  it("the same version with new settings: kubeadm renders the pods anew from the stored configuration, no packages, no drain", () => {
    const m = master(0);
    m.userData(render(masterValues({ etcdTimings: { heartbeatIntervalMs: 100, electionTimeoutMs: 1500 } }), 0));
    expect(m.day2("upgrade", "--first").status).toBe(0);
    expect(m.flow()).toEqual(["kubectl replace -f -", `kubeadm upgrade apply v1.35.0 --yes --patches ${PATCHES}`]);
    expect(parse(JSON.parse(m.read(path.join(m.state, "kubeadm-config.json"))).data.ClusterConfiguration).etcd.local.extraArgs).toContainEqual({ name: "election-timeout", value: "1500" });
  });

  it("a failed kubeadm stops before the drain and the kubelet", () => {
    const m = master(1);
    m.userData(render(next, 1));
    m.write(path.join(m.state, "kubeadm-config.json"), JSON.stringify(storedConfig(next)));
    m.write(path.join(m.state, "upgrade-fails"), "");
    expect(m.day2("upgrade").status).not.toBe(0);
    expect(m.flow().filter((c) => /drain|kubelet/.test(c))).toEqual([]);
  });
});

describe("leave: scale-in", () => {
  it("a stacked master: drain, remove its own member through the others, kubeadm reset without touching etcd again, delete its Node", () => {
    const m = master(2);
    const r = m.day2("leave");
    expect(r.status).toBe(0);
    expect(m.flow()).toEqual([
      "kubectl drain ip-10-0-64-10.eu-west-1.compute.internal --ignore-daemonsets --delete-emptydir-data --timeout=600s",
      "etcdctl --endpoints=https://10.0.0.10:2379,https://10.0.32.10:2379 member remove 1002",
      "kubeadm reset -f --skip-phases remove-etcd-member",
      "kubectl delete node ip-10-0-64-10.eu-west-1.compute.internal --ignore-not-found",
    ]);
    expect(JSON.parse(m.read(path.join(m.state, "etcd.json"))).members.map((x: any) => x.name)).toEqual(["m0", "m1"]);
  });

  it("refuses (exit 22) and removes nothing while another member is unhealthy", () => {
    const m = master(2);
    m.etcd(MASTERS.map((x, i) => ({ ip: x.ip, health: i === 0 ? "unhealthy" : "healthy" })));
    const r = m.day2("leave");
    expect(r.status).toBe(22);
    expect(r.stderr).toContain("another etcd member is unhealthy: not removing this one (nothing changed)");
    expect(m.flow().filter((c) => /member remove|kubeadm/.test(c))).toEqual([]);
  });
});

describe("etcd-manifest: an external member's new pod", () => {
  const members = etcdMembers(3, ZONES, SUBNETS, "eu-west-1");
  const doc = (version: string, electionTimeoutMs = 1000) =>
    etcdNodeDocuments({ clusterName: "prod", kubernetesVersion: version, timings: { heartbeatIntervalMs: 100, electionTimeoutMs }, members, region: "eu-west-1", secretArn: "arn:aws:secretsmanager:eu-west-1:1:secret:e" }, members[1]);

  it("takes the new image and timing, keeps the flags of the member's first start, and waits for its health", () => {
    const m = new Machine(members[1].ip, "etcd");
    machines.push(m);
    m.userData(encodeUserData(renderCloudConfig(doc("1.33.7"), BUCKET)));
    expect(m.day2("sync").status).toBe(0);
    // Installed as etcd-rejoin.sh leaves a member that joined later: started as existing.
    m.write(path.join(m.kube, "manifests/etcd.yaml"), m.read(path.join(m.etc, "etcd.yaml")).replace("--initial-cluster-state=new", "--initial-cluster-state=existing"));
    m.etcd(members.map((x) => ({ ip: x.ip })));
    m.userData(encodeUserData(renderCloudConfig(doc("1.34.0", 1500), BUCKET)));
    const r = m.day2("etcd-manifest");
    expect(r.status).toBe(0);
    const pod = m.read(path.join(m.kube, "manifests/etcd.yaml"));
    expect(pod).toContain("image: registry.k8s.io/etcd:3.6.9-0");
    expect(pod).toContain("- --election-timeout=1500");
    expect(pod).toContain("- --initial-cluster-state=existing");
    expect(r.stderr).toContain("this etcd member to be healthy again is ready");
    // The etcd members' lock (etcdctl.sh), as cert-renew.sh takes it: through every member, held
    // from before the whole cluster's health check until this member is healthy again, then revoked.
    const all = members.map((x) => `https://${x.ip}:2379`).join(",");
    expect(etcdLock(m)).toEqual([`--endpoints=${all} lease grant 900`, `--endpoints=${all} txn`, "health", "health", `--endpoints=${all} lease revoke 694d9a6f1c2b3a01`]);
    expect(r.stderr).toContain(`holding the etcd members' lock (/kubeadm-ha/locks/cert-renew, lease 694d9a6f1c2b3a01)`);
    expect(JSON.parse(m.read(path.join(m.state, "etcd.json")))).toMatchObject({ kv: {}, leases: {} });
    const again = m.day2("etcd-manifest");
    expect([again.status, again.stderr]).toEqual([0, expect.stringContaining("etcd-manifest: the pod is up to date")]);
    expect(etcdLock(m)).toEqual([]);
  });

  it("waits while another member's certificate renewal holds the etcd members' lock, changing nothing (exit 4)", () => {
    const m = new Machine(members[1].ip, "etcd");
    machines.push(m);
    m.userData(encodeUserData(renderCloudConfig(doc("1.33.7"), BUCKET)));
    expect(m.day2("sync").status).toBe(0);
    const installed = m.read(path.join(m.etc, "etcd.yaml"));
    m.write(path.join(m.kube, "manifests/etcd.yaml"), installed);
    m.etcd(members.map((x) => ({ ip: x.ip })));
    const cluster = JSON.parse(m.read(path.join(m.state, "etcd.json")));
    m.write(path.join(m.state, "etcd.json"), JSON.stringify({ ...cluster, leases: { "1a": 900 }, kv: { "/kubeadm-ha/locks/cert-renew": { value: "etcd-2", lease: "1a" } } }));
    m.userData(encodeUserData(renderCloudConfig(doc("1.34.0"), BUCKET)));
    Object.assign(m.env, { KUBEADM_HA_WAIT_SECONDS: "2", KUBEADM_HA_POLL_SECONDS: "1" });
    const held = m.day2("etcd-manifest");
    expect(held.status).toBe(4);
    expect(held.stderr).toContain("another member holds the etcd members' lock; waiting");
    expect(held.stderr).toContain("timed out after 2s waiting for the etcd members' lock /kubeadm-ha/locks/cert-renew (held by etcd-2)");
    expect(m.read(path.join(m.kube, "manifests/etcd.yaml"))).toBe(installed);
    // Each attempt's own lease is revoked; the renewal's lock stays its own.
    const after = JSON.parse(m.read(path.join(m.state, "etcd.json")));
    expect([after.kv, after.leases]).toEqual([{ "/kubeadm-ha/locks/cert-renew": { value: "etcd-2", lease: "1a" } }, { "1a": 900 }]);
  });
});

describe("addons: master 0 with addons.installer nodes", () => {
  it("refuses on another master, and on a master 0 whose user data carries no add-ons", () => {
    expect(master(1).day2("addons")).toMatchObject({ status: 2, stderr: expect.stringContaining("addons runs on master 0") });
    expect(master(0).day2("addons")).toMatchObject({ status: 2, stderr: expect.stringContaining("this master's user data has no add-ons (addons.installer is not nodes)") });
  });
});

describe("usage", () => {
  it("refuses an unknown step, and a master step on an etcd member", () => {
    const m = master(0);
    expect(m.day2("reboot")).toMatchObject({ status: 2, stderr: expect.stringContaining("usage: day2.sh health [--wait SECONDS] [--create] | sync | upgrade [--first] | etcd-manifest | leave | addons") });
    expect(m.day2("etcd-manifest")).toMatchObject({ status: 2, stderr: expect.stringContaining("etcd-manifest runs on external etcd members") });
  });
});
