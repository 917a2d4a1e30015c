/**
 * etcd-backup.sh and etcd-restore.sh for real: a TLS etcd 3.6 member (built by test/k8s/build.sh)
 * on a free loopback address, the shipped scripts (comments stripped, as machines get them) run with
 * its etcdctl and etcdutl (3.6 moved snapshot restore and status to etcdutl), and only `aws` stubbed (test/stubs/aws-s3.sh: a directory stands in for the
 * bucket). Keys written before the snapshot come back after a restore into a fresh data dir; keys
 * written after it do not. Needs etcd, etcdctl and openssl: a missing tool fails, never skips.
 */
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { issueCert, makeCa, requireTool, tool, until } from "./etcdHarness";
import { k8sBinary } from "./k8s/binaries";
import { shipScripts } from "./shipped";

const STUBS = path.join(__dirname, "stubs");
const NAME = "ip-10-0-0-20.eu-west-1.compute.internal";
const BUCKET = "dev-etcd-backup-20261126000000000000000001";
const PREFIX = "etcd-snapshots";
const KMS_KEY = "arn:aws:kms:eu-west-1:123456789012:key/dev-secrets-kms-key-id";
const KEY_LAYOUT = new RegExp(`^${PREFIX}/${NAME.replace(/\./g, "\\.")}/\\d{8}T\\d{6}Z\\.db$`);
const EXIT = { config: 2, snapshot: 10, s3: 11 };

const canBind = (host: string, port: number) =>
  new Promise<boolean>((resolve) => {
    const s = net.createServer();
    s.once("error", () => resolve(false));
    s.listen(port, host, () => s.close(() => resolve(true)));
  });

/** Every file under `dir`, relative, sorted. */
function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[]).filter((f) => fs.statSync(path.join(dir, f)).isFile()).sort();
}

interface Run {
  status: number | null;
  stderr: string;
}

/** One machine holding one etcd member: its dirs, node.env, PKI, the shipped scripts and the stubs. */
class Machine {
  readonly root = fs.mkdtempSync(path.join(os.tmpdir(), "kubeadm-ha-backup-"));
  readonly scripts = path.join(this.root, "lib");
  readonly etc = path.join(this.root, "etc/kubeadm-ha");
  readonly kube = path.join(this.root, "etc/kubernetes");
  readonly pki = path.join(this.kube, "pki/etcd");
  readonly manifests = path.join(this.kube, "manifests");
  readonly data = path.join(this.root, "var/lib/etcd");
  readonly backupDir = path.join(this.root, "var/lib/kubeadm-ha/etcd-backup");
  readonly s3 = path.join(this.root, "s3");
  readonly state = path.join(this.root, "stub-state");
  readonly bin = path.join(this.root, "bin");
  proc?: ChildProcess;
  log = "";

  constructor(readonly ip: string, env: Record<string, string> = {}) {
    for (const d of [this.scripts, this.etc, this.pki, this.state, this.bin, this.s3]) fs.mkdirSync(d, { recursive: true });
    shipScripts(undefined, this.scripts);
    fs.copyFileSync(path.join(STUBS, "aws-s3.sh"), path.join(this.bin, "aws"));
    fs.chmodSync(path.join(this.bin, "aws"), 0o755);
    fs.copyFileSync(path.join(STUBS, "stub-lib.sh"), path.join(this.bin, "stub-lib.sh"));
    const nodeEnv: Record<string, string> = {
      CLUSTER_NAME: "dev",
      NODE_ROLE: "etcd",
      NODE_NAME: NAME,
      NODE_IP: ip,
      INIT_NODE: "false",
      KUBERNETES_VERSION: "1.35.0",
      KUBERNETES_MINOR: "1.35",
      AWS_REGION: "eu-west-1",
      SECRET_ID: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:dev/bootstrap/etcd-AbCdEf",
      ETCD_MEMBERS: `${NAME}=https://${ip}:2380`,
      ETCD_IMAGE: "registry.k8s.io/etcd:3.6.5-0",
      BACKUP_BUCKET: BUCKET,
      BACKUP_PREFIX: PREFIX,
      BACKUP_KMS_KEY: KMS_KEY,
      TOKEN_PLACEHOLDER: "__BOOTSTRAP_TOKEN__",
      ...env,
    };
    fs.writeFileSync(path.join(this.etc, "node.env"), Object.entries(nodeEnv).map(([k, v]) => `${k}='${v}'\n`).join(""));
  }

  /** An etcd CA and the member's server pair (server and client auth, as the program issues it), also used as peer pair. */
  makePki(): void {
    makeCa(this.pki);
    issueCert(this.pki, "server", { commonName: NAME, dnsNames: [NAME], ipAddresses: [this.ip], allowedUses: ["digital_signature", "key_encipherment", "server_auth", "client_auth"] }, this.pki);
  }

  exec(script: string, args: string[] = [], env: Record<string, string> = {}): Run {
    const r = spawnSync("/bin/bash", [path.join(this.scripts, script), ...args], {
      env: {
        PATH: `${this.bin}:/usr/bin:/bin`,
        HOME: this.root,
        LANG: "C.UTF-8",
        KUBEADM_HA_ETC: this.etc,
        KUBERNETES_DIR: this.kube,
        KUBEADM_HA_RUN: path.join(this.root, "run/kubeadm-ha"),
        KUBEADM_HA_LIB: this.scripts,
        KUBEADM_HA_ETCD_DATA_DIR: this.data,
        KUBEADM_HA_BACKUP_DIR: this.backupDir,
        KUBEADM_HA_WAIT_SECONDS: "20",
        KUBEADM_HA_POLL_SECONDS: "0.2",
        KUBEADM_HA_BACKOFF_SECONDS: "0",
        ETCDCTL: k8sBinary("etcdctl"),
        ETCDUTL: k8sBinary("etcdutl"),
        STUB_STATE: this.state,
        STUB_S3_DIR: this.s3,
        ...env,
      },
      encoding: "utf8",
      timeout: 60000,
    });
    if (r.error) throw r.error;
    return { status: r.status, stderr: r.stderr };
  }

  calls(): string[] {
    const f = path.join(this.state, "calls.log");
    return fs.existsSync(f) ? fs.readFileSync(f, "utf8").split("\n").filter((l) => l !== "") : [];
  }

  start(): void {
    const url = (port: number) => `https://${this.ip}:${port}`;
    const pki = (f: string) => path.join(this.pki, f);
    const flags = [
      `--name=${NAME}`,
      `--data-dir=${this.data}`,
      `--listen-client-urls=${url(2379)}`,
      `--advertise-client-urls=${url(2379)}`,
      `--listen-peer-urls=${url(2380)}`,
      `--initial-advertise-peer-urls=${url(2380)}`,
      `--initial-cluster=${NAME}=${url(2380)}`,
      "--initial-cluster-state=new",
      "--initial-cluster-token=kubeadm-ha-dev",
      "--client-cert-auth=true",
      `--trusted-ca-file=${pki("ca.crt")}`,
      `--cert-file=${pki("server.crt")}`,
      `--key-file=${pki("server.key")}`,
      "--peer-client-cert-auth=true",
      `--peer-trusted-ca-file=${pki("ca.crt")}`,
      `--peer-cert-file=${pki("server.crt")}`,
      `--peer-key-file=${pki("server.key")}`,
    ];
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, ...(process.arch === "arm64" ? { ETCD_UNSUPPORTED_ARCH: "arm64" } : {}) };
    const p = spawn(tool("etcd"), flags, { env, stdio: ["ignore", "pipe", "pipe"] });
    p.stdout!.on("data", (d) => (this.log += d));
    p.stderr!.on("data", (d) => (this.log += d));
    this.proc = p;
  }

  async stop(): Promise<void> {
    const p = this.proc;
    this.proc = undefined;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once("exit", r));
    p.kill("SIGTERM");
    await exited;
  }

  etcdctl(args: string[]): { ok: boolean; out: string } {
    const r = spawnSync(
      tool("etcdctl"),
      [`--endpoints=https://${this.ip}:2379`, `--cacert=${path.join(this.pki, "ca.crt")}`, `--cert=${path.join(this.pki, "server.crt")}`,
        `--key=${path.join(this.pki, "server.key")}`, "--dial-timeout=2s", "--command-timeout=10s", ...args],
      { env: { PATH: process.env.PATH }, encoding: "utf8", timeout: 30000 },
    );
    return { ok: r.status === 0, out: (r.stdout ?? "") + (r.stderr ?? "") };
  }

  healthy(): Promise<string> {
    return until(`etcd at ${this.ip}`, 20000, () => {
      const r = this.etcdctl(["endpoint", "health"]);
      return { value: r.ok && r.out.includes("is healthy") ? r.out : undefined, last: r.out };
    }, () => this.log.split("\n").slice(-15).join("\n"));
  }

  /** Writes `count` keys `<prefix>NNN` in one transaction; returns what it wrote. */
  put(prefix: string, count: number, tag: string): Record<string, string> {
    const kv = Object.fromEntries(Array.from({ length: count }, (_, i) => [`${prefix}${String(i).padStart(3, "0")}`, `${tag}-${i}-${crypto.randomBytes(6).toString("hex")}`]));
    const ops = Object.entries(kv).map(([k, v]) => `put ${k} ${v}`).join("\n");
    const r = spawnSync(
      tool("etcdctl"),
      [`--endpoints=https://${this.ip}:2379`, `--cacert=${path.join(this.pki, "ca.crt")}`, `--cert=${path.join(this.pki, "server.crt")}`, `--key=${path.join(this.pki, "server.key")}`, "txn"],
      { env: { PATH: process.env.PATH }, input: `\n${ops}\n\n\n`, encoding: "utf8", timeout: 30000 },
    );
    if (r.status !== 0 || !r.stdout.startsWith("SUCCESS")) throw new Error(`txn failed: ${r.stdout}${r.stderr}`);
    return kv;
  }

  /** Every key and value under `prefix`. */
  get(prefix: string): Record<string, string> {
    const r = this.etcdctl(["get", "--prefix", prefix]);
    if (!r.ok) throw new Error(`get failed: ${r.out}`);
    const lines = r.out.split("\n").filter((l) => l !== "");
    const out: Record<string, string> = {};
    for (let i = 0; i + 1 < lines.length; i += 2) out[lines[i]] = lines[i + 1];
    return out;
  }

  /** `ClusterID` of the running member. */
  clusterId(): string {
    const r = this.etcdctl(["endpoint", "status", "-w", "fields"]);
    const m = /^"ClusterID" : (\d+)$/m.exec(r.out);
    if (!m) throw new Error(`no ClusterID in ${r.out}`);
    return m[1];
  }

  async dispose(): Promise<void> {
    await this.stop();
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}

/** A loopback address whose etcd ports are free, so a default etcd on 127.0.0.1 or a parallel run cannot collide. */
async function freeLoopback(): Promise<string> {
  for (let attempt = 0; attempt < 6; attempt++) {
    const ip = `127.${100 + crypto.randomInt(150)}.${crypto.randomInt(250)}.${11 + crypto.randomInt(200)}`;
    if ((await Promise.all([2379, 2380].map((p) => canBind(ip, p)))).every(Boolean)) return ip;
  }
  throw new Error("no free loopback address for etcd after 6 tries");
}

beforeAll(() => {
  requireTool("etcd", ["--version"]);
  requireTool("etcdctl", ["version"]);
  requireTool("openssl", ["version"]);
});

describe("snapshot to S3 and restore, with a real etcd", () => {
  let m: Machine;
  afterAll(async () => m && (await m.dispose()));

  test("every key written before the snapshot comes back into a fresh data dir, none written after", async () => {
    m = new Machine(await freeLoopback());
    m.makePki();
    m.start();
    await m.healthy();
    const before = m.put("/kubeadm-ha-test/before/", 100, "before");
    const oldClusterId = m.clusterId();

    const backup = m.exec("etcd-backup.sh");
    expect({ status: backup.status, stderr: backup.stderr }).toMatchObject({ status: 0 });
    const objects = filesUnder(path.join(m.s3, BUCKET));
    expect(objects).toHaveLength(2);
    const key = objects.find((o) => o.endsWith(".db"))!;
    expect(key).toMatch(KEY_LAYOUT);
    expect(fs.readFileSync(path.join(m.s3, BUCKET, `${key}.sse`), "utf8")).toBe(`--sse aws:kms --sse-kms-key-id ${KMS_KEY}\n`);
    expect(m.calls()).toEqual([expect.stringMatching(new RegExp(`^aws s3 cp --only-show-errors --sse aws:kms --sse-kms-key-id ${KMS_KEY} ${m.backupDir}/\\d{8}T\\d{6}Z\\.db s3://${BUCKET}/${key}$`))]);
    // No copy of the cluster's Secrets stays on the machine.
    expect(filesUnder(m.backupDir)).toEqual([]);
    expect(backup.stderr).toContain(`uploaded s3://${BUCKET}/${key}`);

    const after = m.put("/kubeadm-ha-test/after/", 20, "after");
    const changed = m.put("/kubeadm-ha-test/before/", 1, "changed");
    expect(Object.keys(changed)).toEqual(["/kubeadm-ha-test/before/000"]);
    expect(Object.keys(m.get("/kubeadm-ha-test/after/"))).toHaveLength(Object.keys(after).length);

    await m.stop();
    fs.mkdirSync(m.manifests, { recursive: true });
    fs.writeFileSync(path.join(m.manifests, "etcd.yaml"), "kind: Pod\nmetadata:\n  name: etcd\n");
    const restore = m.exec("etcd-restore.sh", [key]);
    expect({ status: restore.status, stderr: restore.stderr }).toMatchObject({ status: 0 });
    // The manifest is back, the old data dir kept aside, nothing left in the work dir.
    expect(fs.readdirSync(m.manifests)).toEqual(["etcd.yaml"]);
    const aside = fs.readdirSync(path.dirname(m.data)).filter((d) => d.startsWith("etcd.before-restore-"));
    expect(aside).toEqual([expect.stringMatching(/^etcd\.before-restore-\d{8}T\d{6}Z$/)]);
    expect(fs.existsSync(path.join(path.dirname(m.data), aside[0], "member", "snap", "db"))).toBe(true);
    expect(fs.statSync(m.data).mode & 0o777).toBe(0o700);
    expect(filesUnder(m.backupDir)).toEqual([]);

    m.start();
    await m.healthy();
    expect(m.get("/kubeadm-ha-test/before/")).toEqual(before);
    expect(m.get("/kubeadm-ha-test/after/")).toEqual({});
    // A new cluster: its ID comes from the restore's token, so no old member is ever taken for it.
    expect(m.clusterId()).not.toBe(oldClusterId);
    const members = m.etcdctl(["member", "list", "-w", "simple"]);
    expect(members.out.trim().split("\n").map((l) => l.split(", ").slice(1, 4))).toEqual([["started", NAME, `https://${m.ip}:2380`]]);
  }, 120000);
});

describe("failure paths", () => {
  let m: Machine;
  beforeAll(async () => {
    m = new Machine(await freeLoopback());
    m.makePki();
    m.start();
    await m.healthy();
    m.put("/kubeadm-ha-test/", 5, "v");
  }, 60000);
  afterAll(async () => m && (await m.dispose()));
  beforeEach(() => {
    fs.rmSync(m.state, { recursive: true, force: true });
    fs.mkdirSync(m.state);
    fs.rmSync(m.s3, { recursive: true, force: true });
    fs.mkdirSync(m.s3);
  });

  test("S3 refusing every upload: three attempts, exit EXIT_S3, no snapshot left on disk", () => {
    const r = m.exec("etcd-backup.sh", [], { STUB_AWS_S3_FAILS: "always" });
    expect(r.status).toBe(EXIT.s3);
    expect(r.stderr).toMatch(new RegExp(`ERROR: upload to s3://${BUCKET}/${PREFIX}/${NAME.replace(/\./g, "\\.")}/\\d{8}T\\d{6}Z\\.db failed`));
    expect(m.calls().filter((c) => c.startsWith("aws s3 cp "))).toHaveLength(3);
    expect(filesUnder(m.backupDir)).toEqual([]);
    expect(filesUnder(m.s3)).toEqual([]);
  });

  test("an upload failing once is retried and lands once", () => {
    const r = m.exec("etcd-backup.sh", [], { STUB_AWS_S3_FAILS: "1" });
    expect(r.status).toBe(0);
    expect(m.calls()).toHaveLength(2);
    expect(filesUnder(path.join(m.s3, BUCKET)).filter((f) => f.endsWith(".db"))).toEqual([expect.stringMatching(KEY_LAYOUT)]);
    expect(filesUnder(m.backupDir)).toEqual([]);
  });

  test("a follower skips: exit 0, no snapshot, no upload", () => {
    const stub = path.join(m.bin, "etcdctl");
    fs.copyFileSync(path.join(STUBS, "etcdctl.sh"), stub);
    fs.chmodSync(stub, 0o755);
    const r = m.exec("etcd-backup.sh", [], { ETCDCTL: stub, STUB_ETCD_MEMBER_ID: "257833716354389741", STUB_ETCD_LEADER_ID: "11400745385339414433" });
    expect(r.status).toBe(0);
    expect(r.stderr).toContain("member 257833716354389741 is not the leader (11400745385339414433)");
    expect(m.calls()).toEqual([`etcdctl --endpoints https://${m.ip}:2379 endpoint status -w fields`]);
    expect(filesUnder(m.s3)).toEqual([]);
  });

  test("backups without a bucket in node.env stop with EXIT_CONFIG before any etcd call", () => {
    const bare = new Machine(m.ip, { BACKUP_BUCKET: "" });
    try {
      const r = bare.exec("etcd-backup.sh");
      expect(r.status).toBe(EXIT.config);
      expect(r.stderr).toContain("BACKUP_BUCKET is not set in");
      expect(bare.calls()).toEqual([]);
    } finally {
      fs.rmSync(bare.root, { recursive: true, force: true });
    }
  });

  const restoreTouchesNothing = () => {
    expect(fs.readdirSync(m.manifests)).toEqual(["etcd.yaml"]);
    expect(fs.readdirSync(path.dirname(m.data)).filter((d) => d.startsWith("etcd.before-restore-"))).toEqual([]);
    expect(filesUnder(m.backupDir)).toEqual([]);
  };

  test.each([
    ["a key that is not a snapshot's", "../etc/passwd", undefined, EXIT.config, "is not the key of a snapshot"],
    ["a snapshot missing from the bucket", `${PREFIX}/${NAME}/20260101T000000Z.db`, undefined, EXIT.s3, "download of s3://"],
    ["a corrupt snapshot", `${PREFIX}/${NAME}/20260101T000000Z.db`, "not a bolt database", EXIT.snapshot, "does not verify"],
  ])("restore from %s stops with its exit code before stopping the member", (_, key, content, code, message) => {
    fs.mkdirSync(m.manifests, { recursive: true });
    fs.writeFileSync(path.join(m.manifests, "etcd.yaml"), "kind: Pod\n");
    if (content !== undefined) {
      fs.mkdirSync(path.dirname(path.join(m.s3, BUCKET, key)), { recursive: true });
      fs.writeFileSync(path.join(m.s3, BUCKET, key), content);
    }
    const r = m.exec("etcd-restore.sh", [key]);
    expect(r.status).toBe(code);
    expect(r.stderr).toContain(message);
    restoreTouchesNothing();
    // The member never stopped.
    expect(m.etcdctl(["endpoint", "health"]).ok).toBe(true);
  });

  test("restore on a member that never stops puts the manifest back and keeps the data dir", () => {
    const backup = m.exec("etcd-backup.sh");
    expect(backup.status).toBe(0);
    const key = filesUnder(path.join(m.s3, BUCKET)).find((f) => f.endsWith(".db"))!;
    fs.writeFileSync(path.join(m.manifests, "etcd.yaml"), "kind: Pod\n");
    // Nothing stops this etcd: the manifest is a stand-in, no kubelet watches it.
    const r = m.exec("etcd-restore.sh", [key], { KUBEADM_HA_WAIT_SECONDS: "1" });
    expect(r.status).toBe(7);
    expect(r.stderr).toContain(`timed out after 1s waiting for etcd on ${m.ip}:2379 to stop`);
    restoreTouchesNothing();
    expect(fs.existsSync(path.join(m.data, "member", "snap", "db"))).toBe(true);
  });
});
