/**
 * A restore after the stack is gone, for real (issue 15): Secrets written through a real
 * kube-apiserver with encryption at rest land in etcd as ciphertext; the snapshot and the
 * encryption configuration sit in the backup bucket (moto, laid out as components/etcdBackup.ts
 * makes it: versioned, SSE-KMS with the bucket's own key, the configuration at
 * ENCRYPTION_CONFIG_KEY) and are all that is left. The runbook (README, "Restore after the stack is
 * gone") then reads the key from the bucket with the real AWS CLI, a new stack takes it as
 * `restoreEncryptionKey`, and a fresh API server on the restored snapshot reads the Secret back.
 * With the new stack's own key instead, it cannot: the key in the bucket is what makes the restore
 * work.
 *
 * Real etcd, etcdctl, etcdutl, kube-apiserver and kubectl from test/k8s/build.sh; plain HTTP etcd on
 * loopback (the restore, not etcd's TLS, is under test); about 30 s.
 */
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { parse } from "yaml";
import { ENCRYPTION_CONFIG_KEY, SNAPSHOT_PREFIX } from "../components/etcdBackup";
import { encryptionConfigYaml } from "../cloud-init/encryption";
import { parseConfig } from "../config";
import { k8sBinary } from "./k8s/binaries";
import { AWS_BIN, Moto, REGION } from "./moto";

const OLD_BUCKET = "dev-etcd-backup-20261126000000000000000001";
const NEW_BUCKET = "dev-etcd-backup-20270101000000000000000002";
const TOKEN = crypto.randomBytes(16).toString("hex");
const SECRET_VALUE = "the database password";

let moto: Moto;
let work: string;
const procs: ChildProcess[] = [];
beforeAll(async () => {
  moto = await Moto.start();
  work = fs.mkdtempSync(path.join(os.tmpdir(), "kubeadm-ha-restore-"));
}, 60000);
afterAll(async () => {
  for (const p of procs) if (p.exitCode === null) p.kill("SIGKILL");
  await moto?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });

function run(cmd: string, args: string[], env: Record<string, string> = {}, input?: string) {
  const r = spawnSync(cmd, args, { encoding: "utf8", env: { PATH: "/usr/bin:/bin", HOME: work, ...env }, input, timeout: 60000 });
  if (r.error) throw r.error;
  return r;
}
const aws = (...args: string[]) => run(path.join(AWS_BIN, "aws"), args, moto.env());

async function start(name: string, cmd: string, args: string[]): Promise<ChildProcess> {
  const log = fs.openSync(path.join(work, `${name}.log`), "a");
  const p = spawn(cmd, args, { stdio: ["ignore", log, log] });
  procs.push(p);
  return p;
}
async function stop(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise((r) => p.once("exit", r));
  p.kill("SIGTERM");
  await exited;
}

async function until(what: string, ok: () => boolean, ms = 60000, log?: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${log ? `\n${fs.readFileSync(path.join(work, log), "utf8").split("\n").slice(-30).join("\n")}` : ""}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** One etcd member on loopback over plain HTTP, from `dataDir` (restored or new). */
async function etcd(name: string, dataDir: string, ports: { client: number; peer: number }): Promise<ChildProcess> {
  const p = await start(name, k8sBinary("etcd"), [
    "--name", "m0", "--data-dir", dataDir,
    "--listen-client-urls", `http://127.0.0.1:${ports.client}`, "--advertise-client-urls", `http://127.0.0.1:${ports.client}`,
    "--listen-peer-urls", `http://127.0.0.1:${ports.peer}`, "--initial-advertise-peer-urls", `http://127.0.0.1:${ports.peer}`,
    "--initial-cluster", `m0=http://127.0.0.1:${ports.peer}`,
  ]);
  await until(`${name} healthy`, () => run(k8sBinary("etcdctl"), ["--endpoints", `http://127.0.0.1:${ports.client}`, "endpoint", "health"]).status === 0, 30000, `${name}.log`);
  return p;
}

/** A kube-apiserver on etcd at `etcdPort`, its Secrets encrypted with `configYaml`; static token auth as system:masters. */
async function apiServer(
  name: string,
  etcdPort: number,
  configYaml: string,
  readyPath = "/readyz",
): Promise<{ proc: ChildProcess; kubectl: (...args: string[]) => ReturnType<typeof run> }> {
  const dir = fs.mkdtempSync(path.join(work, `${name}-`));
  run("openssl", ["genrsa", "-out", path.join(dir, "sa.key"), "2048"]);
  run("openssl", ["rsa", "-in", path.join(dir, "sa.key"), "-pubout", "-out", path.join(dir, "sa.pub")]);
  fs.writeFileSync(path.join(dir, "tokens.csv"), `${TOKEN},admin,admin,"system:masters"\n`);
  fs.writeFileSync(path.join(dir, "encryption-config.yaml"), configYaml, { mode: 0o600 });
  const port = await freePort();
  const proc = await start(name, k8sBinary("kube-apiserver"), [
    `--etcd-servers=http://127.0.0.1:${etcdPort}`,
    "--bind-address=127.0.0.1", `--secure-port=${port}`, `--cert-dir=${path.join(dir, "certs")}`,
    "--service-account-issuer=https://kubernetes.default.svc", `--service-account-key-file=${path.join(dir, "sa.pub")}`,
    `--service-account-signing-key-file=${path.join(dir, "sa.key")}`, "--service-cluster-ip-range=10.96.0.0/12",
    `--token-auth-file=${path.join(dir, "tokens.csv")}`, "--authorization-mode=RBAC",
    `--encryption-provider-config=${path.join(dir, "encryption-config.yaml")}`,
  ]);
  const kubectl = (...args: string[]) => run(k8sBinary("kubectl"), [`--server=https://127.0.0.1:${port}`, `--token=${TOKEN}`, "--insecure-skip-tls-verify", ...args]);
  await until(`${name} at ${readyPath}`, () => kubectl("get", "--raw", readyPath).status === 0, 60000, `${name}.log`);
  return { proc, kubectl };
}

/** The bucket as components/etcdBackup.ts makes it: versioned, SSE-KMS with a key of its own. */
function backupBucket(bucket: string): string {
  return moto.python<string>(
    `key = client("kms").create_key(Description="etcd snapshots")["KeyMetadata"]["Arn"]
s3 = client("s3")
s3.create_bucket(Bucket=args["bucket"], CreateBucketConfiguration={"LocationConstraint": args["region"]})
s3.put_bucket_versioning(Bucket=args["bucket"], VersioningConfiguration={"Status": "Enabled"})
s3.put_bucket_encryption(Bucket=args["bucket"], ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key}, "BucketKeyEnabled": True}]})
out = key`,
    { bucket, region: REGION },
  );
}

it("the key kept in the backup bucket decrypts the Secrets of a snapshot restored into a new stack; a new key does not", async () => {
  // The old cluster: its key, its bucket with the configuration Pulumi kept there, a Secret written through the API.
  const oldKey = crypto.randomBytes(32).toString("base64");
  const oldConfig = encryptionConfigYaml([{ name: "key1", secret: oldKey }]);
  const oldBackupKey = backupBucket(OLD_BUCKET);
  fs.writeFileSync(path.join(work, "kept.yaml"), oldConfig);
  expect(aws("s3api", "put-object", "--bucket", OLD_BUCKET, "--key", ENCRYPTION_CONFIG_KEY, "--body", path.join(work, "kept.yaml"), "--server-side-encryption", "aws:kms", "--ssekms-key-id", oldBackupKey).status).toBe(0);

  const oldPorts = { client: await freePort(), peer: await freePort() };
  const oldEtcd = await etcd("etcd-old", path.join(work, "etcd-old"), oldPorts);
  const oldApi = await apiServer("apiserver-old", oldPorts.client, oldConfig);
  const created = oldApi.kubectl("create", "secret", "generic", "db", "-n", "default", `--from-literal=password=${SECRET_VALUE}`);
  expect({ status: created.status, err: created.stderr }).toEqual({ status: 0, err: "" });
  // etcd holds ciphertext: secretbox under key1.
  const raw = run(k8sBinary("etcdctl"), ["--endpoints", `http://127.0.0.1:${oldPorts.client}`, "get", "/registry/secrets/default/db", "--print-value-only"]);
  expect(raw.stdout.startsWith("k8s:enc:secretbox:v1:key1:")).toBe(true);
  expect(raw.stdout).not.toContain(SECRET_VALUE);

  // The leader's snapshot goes to the bucket (etcd-backup.sh's upload), then the old cluster is gone.
  const snapshot = path.join(work, "snapshot.db");
  expect(run(k8sBinary("etcdctl"), ["--endpoints", `http://127.0.0.1:${oldPorts.client}`, "snapshot", "save", snapshot]).status).toBe(0);
  const snapKey = `${SNAPSHOT_PREFIX}/ip-10-10-0-10.eu-west-1.compute.internal/20261126T021500Z.db`;
  expect(aws("s3", "cp", snapshot, `s3://${OLD_BUCKET}/${snapKey}`, "--sse", "aws:kms", "--sse-kms-key-id", oldBackupKey).status).toBe(0);
  await stop(oldApi.proc);
  await stop(oldEtcd);
  fs.rmSync(snapshot);
  fs.rmSync(path.join(work, "etcd-old"), { recursive: true });

  // The runbook. 1: the key, from the bucket that outlived the stack.
  const fetched = aws("s3", "cp", `s3://${OLD_BUCKET}/${ENCRYPTION_CONFIG_KEY}`, "-");
  expect(fetched.status).toBe(0);
  const kept = parse(fetched.stdout) as { resources: Array<{ providers: Array<{ secretbox?: { keys: Array<{ name: string; secret: string }> } }> }> };
  const restoreEncryptionKey = kept.resources[0].providers[0].secretbox!.keys.find((k) => k.name === "key1")!.secret;
  // 2: the new stack takes it (config restoreEncryptionKey), and its API servers' configuration holds it.
  const config = parseConfig({
    region: REGION, clusterName: "dev", network: { availabilityZones: ["eu-west-1a", "eu-west-1b", "eu-west-1c"] }, apiLoadBalancer: { scheme: "internal" }, workerPools: [],
    restoreEncryptionKey,
  });
  const newConfig = encryptionConfigYaml([{ name: "key1", secret: config.restoreEncryptionKey! }]);
  // 3: the snapshot into the new stack's bucket (its own key), then down onto the member (etcd-restore.sh's download).
  const newBackupKey = backupBucket(NEW_BUCKET);
  expect(aws("s3", "cp", `s3://${OLD_BUCKET}/${snapKey}`, `s3://${NEW_BUCKET}/${snapKey}`, "--sse", "aws:kms", "--sse-kms-key-id", newBackupKey).status).toBe(0);
  const restored = path.join(work, "restored.db");
  expect(aws("s3", "cp", `s3://${NEW_BUCKET}/${snapKey}`, restored).status).toBe(0);
  const newPorts = { client: await freePort(), peer: await freePort() };
  const restore = run(k8sBinary("etcdutl"), [
    "snapshot", "restore", restored, "--data-dir", path.join(work, "etcd-new"), "--name", "m0",
    "--initial-cluster", `m0=http://127.0.0.1:${newPorts.peer}`, "--initial-advertise-peer-urls", `http://127.0.0.1:${newPorts.peer}`,
  ]);
  expect({ status: restore.status, err: restore.status === 0 ? "" : restore.stderr }).toEqual({ status: 0, err: "" });
  const newEtcd = await etcd("etcd-new", path.join(work, "etcd-new"), newPorts);

  // A new stack's own key cannot read the restored Secret: the API server never gets ready (its
  // Secret cache cannot list), and a read fails. It only gets as far as /livez.
  const fresh = await apiServer("apiserver-fresh-key", newPorts.client, encryptionConfigYaml([{ name: "key1", secret: crypto.randomBytes(32).toString("base64") }]), "/livez");
  const unreadable = fresh.kubectl("get", "secret", "db", "-n", "default", "-o", "jsonpath={.data.password}");
  expect(unreadable.status).not.toBe(0);
  expect(unreadable.stdout).not.toContain(Buffer.from(SECRET_VALUE).toString("base64"));
  expect(fs.readFileSync(path.join(work, "apiserver-fresh-key.log"), "utf8")).toContain('unable to transform key "/registry/secrets/default/db"');
  await stop(fresh.proc);

  // The kept key can.
  const api = await apiServer("apiserver-restored", newPorts.client, newConfig);
  const got = api.kubectl("get", "secret", "db", "-n", "default", "-o", "jsonpath={.data.password}");
  expect({ status: got.status, err: got.stderr }).toEqual({ status: 0, err: "" });
  expect(Buffer.from(got.stdout, "base64").toString("utf8")).toBe(SECRET_VALUE);
  await stop(api.proc);
  await stop(newEtcd);
}, 240000);
