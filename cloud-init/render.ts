/**
 * Renders a node's cloud-config: the bootstrap scripts (real files under cloud-init/scripts, read
 * at render time), the node's environment file and its kubeadm documents. Pure and deterministic:
 * the same values give byte-identical user data, or `pulumi up` would replace machines for nothing.
 *
 * Nothing secret is rendered: the node fetches its keys and the bootstrap token from AWS Secrets
 * Manager with its instance role (cloud-init/scripts/fetch-secrets.sh).
 */
import * as fs from "fs";
import * as crypto from "crypto";
import * as path from "path";
import * as zlib from "zlib";
import { Document } from "yaml";
import { TOKEN_PLACEHOLDER } from "./kubeadm";

export const SCRIPTS_DIR = path.join(__dirname, "scripts");
/** Where the scripts land on the machine. */
export const LIB_DIR = "/usr/local/lib/kubeadm-ha";
export const ETC_DIR = "/etc/kubeadm-ha";
/** EC2 rejects user data over 16 KB (before base64). */
export const USER_DATA_LIMIT = 16384;

/** The variables bootstrap.sh reads from /etc/kubeadm-ha/node.env. */
export interface NodeEnv {
  CLUSTER_NAME: string;
  NODE_ROLE: "control-plane" | "worker" | "etcd";
  NODE_NAME: string;
  NODE_IP: string;
  INIT_NODE: "true" | "false";
  KUBERNETES_VERSION: string;
  KUBERNETES_MINOR: string;
  /** `<nlb-dns>:6443`. Every role but etcd, whose members never talk to the API. */
  API_ENDPOINT?: string;
  AWS_REGION: string;
  SECRET_ID: string;
  /** Control plane only: which etcd material fetch-secrets.sh requires (`etcd/ca.key`, or the API server's etcd client certificate). */
  ETCD_TOPOLOGY?: "stacked" | "external";
  /** Control plane with external etcd only: the members' client URLs, comma-separated, which `kubeadm init` waits for. */
  ETCD_ENDPOINTS?: string;
  /** Machines holding an etcd member (stacked masters, external members): every member as etcd's `--initial-cluster` (`name=https://ip:2380,...`). */
  ETCD_MEMBERS?: string;
  /** Machines holding an etcd member: the etcd image the member runs, whose etcdctl and etcdutl the scripts use (etcdctl.sh). */
  ETCD_IMAGE?: string;
  /** Machines holding an etcd member, with etcd backups on: the snapshots' S3 bucket (components/etcdBackup.ts). */
  BACKUP_BUCKET?: string;
  /** With BACKUP_BUCKET: the snapshots' key prefix, `<prefix>/<member name>/<UTC timestamp>.db`. */
  BACKUP_PREFIX?: string;
  /** With BACKUP_BUCKET: ARN of the KMS key each snapshot is encrypted with. */
  BACKUP_KMS_KEY?: string;
  /** Workers with the readiness hook: the launch lifecycle hook node-ready.sh completes once the node is Ready. */
  LAUNCH_HOOK?: string;
  /** Masters and external etcd members: renew certificates this many days before expiry (cert-renew.sh). */
  CERT_RENEW_BEFORE_DAYS?: string;
  /** Control plane only: every master's address, comma-separated; cert-renew.sh checks the others' API servers before a restart. */
  CONTROL_PLANE_IPS?: string;
  /** Control plane only: the workers' secret, into which token-rotate.sh writes a fresh join token. */
  WORKER_SECRET_ID?: string;
  /** Control plane only: the worker join token's lifetime in hours (token-rotate.sh). */
  JOIN_TOKEN_TTL_HOURS?: string;
  /** Master 0 only: every master's fixed address, comma-separated; it asks the others directly before it would initialise. */
  MASTER_IPS?: string;
  /** Master 0 only: the SSM parameter that records the cluster's first successful init (components/initMarker.ts). */
  INIT_MARKER?: string;
  /** The bootstrap bucket boot.sh fetches the other scripts from (components/bootstrapAssets.ts). */
  BOOTSTRAP_BUCKET?: string;
  /** With BOOTSTRAP_BUCKET: the objects' key prefix; an object's key is the prefix and its SHA-256. */
  BOOTSTRAP_PREFIX?: string;
}

/** Key prefix of the bootstrap objects (components/bootstrapAssets.ts). */
export const BOOTSTRAP_PREFIX = "bootstrap/";
/** The scripts user data carries itself: what fetches the others (boot.sh needs the AWS CLI from install.sh). */
export const INLINE_SCRIPTS: readonly string[] = ["boot.sh", "install.sh", "lib.sh"];

export const sha256Hex = (content: string) => crypto.createHash("sha256").update(content, "utf8").digest("hex");

/** Every script not carried in user data, as shipped: the bootstrap bucket's contents. */
export function bundledScriptContents(dir: string = SCRIPTS_DIR): string[] {
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith(".sh") && !INLINE_SCRIPTS.includes(f))
    .sort()
    .map((f) => shippedScript(fs.readFileSync(path.join(dir, f), "utf8")));
}

/** boot.sh's list of what to fetch: `<sha256> <mode> lib/<name>` a script, in name order. */
export function bundleList(files: WriteFile[]): string {
  return files.map((f) => `${sha256Hex(f.content)} ${f.permissions} lib/${path.basename(f.path)}\n`).join("");
}

/** etcd backups on a machine holding a member (components/etcdBackup.ts, cloud-init/scripts/etcd-backup.sh). */
export interface EtcdBackupValues {
  /** S3 bucket name. */
  bucket: string;
  /** Key prefix of the snapshots, no slash at either end. */
  prefix: string;
  /** ARN of the KMS key the snapshots are encrypted with. */
  kmsKeyArn: string;
  /** Minutes between snapshots (the systemd timer). */
  intervalMinutes: number;
}

/** The node.env entries of etcd backups; none when `b` is undefined. */
export function backupEnv(b: EtcdBackupValues | undefined): Pick<NodeEnv, "BACKUP_BUCKET" | "BACKUP_PREFIX" | "BACKUP_KMS_KEY"> {
  return b ? { BACKUP_BUCKET: b.bucket, BACKUP_PREFIX: b.prefix, BACKUP_KMS_KEY: b.kmsKeyArn } : {};
}

export interface WriteFile {
  path: string;
  content: string;
  permissions: string;
  owner?: string;
}

/** A POSIX shell env file: every value single-quoted, embedded quotes escaped, so nothing expands. */
export function envFile(env: Record<string, string>): string {
  const quote = (v: string) => `'${v.replace(/'/g, `'\\''`)}'`;
  return Object.entries(env)
    .map(([k, v]) => {
      if (!/^[A-Z_][A-Z0-9_]*$/.test(k)) throw new Error(`env file key ${JSON.stringify(k)} is not a shell variable name`);
      return `${k}=${quote(v)}`;
    })
    .join("\n") + "\n";
}

/** The entries of `o` whose value is set: an unset optional variable gets no line in the env file. */
function definedValues(o: object): Record<string, string> {
  return Object.fromEntries(Object.entries(o).filter((e): e is [string, string] => e[1] !== undefined));
}

export type NodeRole = NodeEnv["NODE_ROLE"];

/** What decides which scripts a machine needs besides its role. */
export interface ScriptNeeds {
  role: NodeRole;
  /** Control plane only: a stacked master holds an etcd member. */
  etcdTopology?: "stacked" | "external";
  /** A machine holding an etcd member, with backups on: the backup and restore scripts. */
  backup?: boolean;
  /** Control plane only: master 0 installs the add-ons after `kubeadm init` (addons.installer nodes). */
  addons?: boolean;
  /** Worker only: the machine completes its group's launch lifecycle hook once its node is Ready (node-ready.sh). */
  launchHook?: boolean;
}

/** Stacked masters and external etcd members hold an etcd member; workers and masters of external etcd do not. */
export function holdsEtcdMember(n: { role: NodeRole; etcdTopology?: "stacked" | "external" }): boolean {
  return n.role === "etcd" || (n.role === "control-plane" && n.etcdTopology === "stacked");
}

/**
 * The scripts one machine runs. Each role gets only its own: EC2's 16 KB user data limit leaves no
 * room to ship every script to every machine. A test checks that every script a selected script
 * calls or sources is selected too, and that every script in the folder is selected for some role.
 */
export function scriptsFor(needs: ScriptNeeds): string[] {
  const out = ["boot.sh", "bootstrap.sh", "fetch-secrets.sh", "install.sh", "lib.sh"];
  if (needs.role === "control-plane") out.push("join-lock.sh", "token-rotate.sh");
  // Masters and external members renew their certificates and run the day-2 steps (the rollout fetches its own day2.sh; this one is for a person on the machine).
  if (needs.role !== "worker") out.push("cert-renew.sh", "etcdctl.sh", "day2.sh");
  if (holdsEtcdMember(needs)) out.push("etcd-rejoin.sh");
  if (needs.backup && holdsEtcdMember(needs)) out.push("etcd-backup.sh", "etcd-restore.sh");
  if (needs.addons && needs.role === "control-plane") out.push("addons.sh");
  if (needs.launchHook && needs.role === "worker") out.push("node-ready.sh");
  return out.sort();
}

/**
 * A script as shipped: without its comment lines, which are for the reader of the repository and
 * would take about a fifth of EC2's 16 KB. Kept: the shebang, shellcheck directives, and every
 * line of a here-document, whose `#` lines are data. The bootstrap tests and shellcheck run the
 * shipped text, so stripping cannot change behaviour unnoticed.
 */
export function shippedScript(text: string): string {
  const out: string[] = [];
  let heredocEnd: string | undefined;
  for (const [i, line] of text.split("\n").entries()) {
    if (heredocEnd !== undefined) {
      out.push(line);
      if (line.trim() === heredocEnd) heredocEnd = undefined;
      continue;
    }
    const comment = /^\s*#/.test(line) && !(i === 0 && line.startsWith("#!")) && !/^\s*# shellcheck /.test(line);
    if (!comment) out.push(line);
    const start = /<<-?\s*(['"]?)([A-Za-z_][A-Za-z0-9_]*)\1/.exec(line.replace(/<<</g, ""));
    if (start) heredocEnd = start[2];
  }
  return out.join("\n");
}

/** Scripts as cloud-init write_files entries, in name order. */
export function scriptFiles(names: string[], dir: string = SCRIPTS_DIR): WriteFile[] {
  return [...names]
    .sort()
    .map((f) => ({ path: `${LIB_DIR}/${f}`, content: shippedScript(fs.readFileSync(path.join(dir, f), "utf8")), permissions: "0755" }));
}

export interface NodeDocuments {
  env: NodeEnv;
  /** What selects the scripts beyond the role (`scriptsFor`). Default: the role's own scripts only. */
  needs?: Omit<ScriptNeeds, "role">;
  /** File name under /etc/kubeadm-ha -> content (init.yaml, join.yaml, patches/...; etcd.yaml and kubelet-etcd.yaml on an external etcd member). */
  kubeadm: Record<string, string>;
  /** Minutes between etcd snapshots: with `env.BACKUP_BUCKET`, on a machine holding a member, writes the backup scripts and timer. Default: no backups. */
  backupIntervalMinutes?: number;
}

/** Where the systemd units live in the repository: real files with `@NAME@` placeholders. */
export const SYSTEMD_UNITS_DIR = path.join(__dirname, "systemd");
export const BACKUP_UNITS = ["kubeadm-ha-etcd-backup.service", "kubeadm-ha-etcd-backup.timer"];

/** The etcd backup service and timer for /etc/systemd/system, the interval filled in, comment lines dropped. */
export function backupUnitFiles(intervalMinutes: number, dir: string = SYSTEMD_UNITS_DIR): WriteFile[] {
  if (!Number.isInteger(intervalMinutes) || intervalMinutes < 1)
    throw new Error(`backupUnitFiles: intervalMinutes must be a whole number of minutes above 0 (got ${intervalMinutes})`);
  return BACKUP_UNITS.map((f) => {
    const content = shippedScript(fs.readFileSync(path.join(dir, f), "utf8")).replace(/@INTERVAL_MINUTES@/g, String(intervalMinutes));
    const left = /@[A-Z_]+@/.exec(content);
    if (left) throw new Error(`backupUnitFiles: ${f} has a placeholder nobody fills: ${left[0]}`);
    return { path: `/etc/systemd/system/${f}`, content, permissions: "0644" };
  });
}

/** The day-2 timers of a role: certificate renewal on masters and etcd members, join token rotation on masters. */
export function dayTwoUnits(role: NodeRole): string[] {
  const renew = ["kubeadm-ha-cert-renew.service", "kubeadm-ha-cert-renew.timer"];
  if (role === "control-plane") return [...renew, "kubeadm-ha-token-rotate.service", "kubeadm-ha-token-rotate.timer"];
  return role === "etcd" ? renew : [];
}

/** The day-2 units of a role for /etc/systemd/system, comment lines dropped; they read their settings from node.env. */
export function dayTwoUnitFiles(role: NodeRole, dir: string = SYSTEMD_UNITS_DIR): WriteFile[] {
  return dayTwoUnits(role).map((f) => {
    const content = shippedScript(fs.readFileSync(path.join(dir, f), "utf8"));
    const left = /@[A-Z_]+@/.exec(content);
    if (left) throw new Error(`dayTwoUnitFiles: ${f} has a placeholder nobody fills: ${left[0]}`);
    return { path: `/etc/systemd/system/${f}`, content, permissions: "0644" };
  });
}

/** Keeps pods off the instance metadata service on the Kubernetes nodes (masters and workers). */
export const IMDS_GUARD_UNIT = "kubeadm-ha-imds-guard.service";

/** The IMDS guard unit for /etc/systemd/system, comment lines dropped; install.sh enables it. */
export function imdsGuardUnitFile(dir: string = SYSTEMD_UNITS_DIR): WriteFile {
  return { path: `/etc/systemd/system/${IMDS_GUARD_UNIT}`, content: shippedScript(fs.readFileSync(path.join(dir, IMDS_GUARD_UNIT), "utf8")), permissions: "0644" };
}

/** Whether `node` takes etcd backups; throws when the env and the interval disagree or the machine holds no member. */
function backupNeeded(node: NodeDocuments): boolean {
  const on = node.backupIntervalMinutes !== undefined;
  if (on !== (node.env.BACKUP_BUCKET !== undefined))
    throw new Error("cloudConfig: backupIntervalMinutes and env.BACKUP_BUCKET must be given together");
  if (on && !holdsEtcdMember({ role: node.env.NODE_ROLE, etcdTopology: node.env.ETCD_TOPOLOGY }))
    throw new Error(`cloudConfig: etcd backups run only on machines holding an etcd member, not on ${node.env.NODE_NAME}`);
  return on;
}

/**
 * The cloud-config object for one node: INLINE_SCRIPTS and the node's documents, plus
 * bundle.list, which pins every other script the node needs by its hash in `bootstrapBucket`
 * (components/bootstrapAssets.ts); boot.sh fetches them.
 */
export function cloudConfig(node: NodeDocuments, bootstrapBucket: string) {
  const scripts = scriptFiles(scriptsFor({ ...node.needs, role: node.env.NODE_ROLE, etcdTopology: node.env.ETCD_TOPOLOGY, backup: backupNeeded(node) }));
  const inline = scripts.filter((f) => INLINE_SCRIPTS.includes(path.basename(f.path)));
  const fetched = scripts.filter((f) => !INLINE_SCRIPTS.includes(path.basename(f.path)));
  const env = { ...node.env, BOOTSTRAP_BUCKET: bootstrapBucket, BOOTSTRAP_PREFIX };
  const files: WriteFile[] = [
    ...inline,
    { path: `${ETC_DIR}/bundle.list`, content: bundleList(fetched), permissions: "0644" },
    { path: `${ETC_DIR}/node.env`, content: envFile(definedValues({ ...env, TOKEN_PLACEHOLDER })), permissions: "0644" },
    // kubeadm documents hold no secret, but nothing but root needs them.
    ...Object.entries(node.kubeadm)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, content]) => ({ path: `${ETC_DIR}/${name}`, content, permissions: "0600" })),
    ...(node.backupIntervalMinutes === undefined ? [] : backupUnitFiles(node.backupIntervalMinutes)),
    ...dayTwoUnitFiles(node.env.NODE_ROLE),
    // External etcd members run no pods.
    ...(node.env.NODE_ROLE === "etcd" ? [] : [imdsGuardUnitFile()]),
  ];
  return {
    write_files: files.map((f) => ({ path: f.path, permissions: f.permissions, owner: f.owner ?? "root:root", content: f.content })),
    runcmd: [[`${LIB_DIR}/boot.sh`]],
  };
}

/** `#cloud-config` text, YAML 1.1 because cloud-init's PyYAML reads 1.1 (`on`, `yes`, `12:30` change meaning). */
export function renderCloudConfig(node: NodeDocuments, bootstrapBucket: string): string {
  const doc = new Document(cloudConfig(node, bootstrapBucket), { version: "1.1" });
  return "#cloud-config\n" + doc.toString({ lineWidth: 0 });
}

/**
 * What EC2 receives: gzip, then base64 for `userDataBase64`. cloud-init recognizes gzipped user
 * data by its magic bytes (CAPA compresses for the same reason: the 16 KB limit). Node's gzip
 * header carries no timestamp, so the same text gives the same bytes.
 */
export function encodeUserData(cloudConfigText: string): string {
  return zlib.gzipSync(Buffer.from(cloudConfigText, "utf8"), { level: 9 }).toString("base64");
}

/** Size EC2 counts for `userDataBase64`: the decoded bytes. */
export function userDataBytes(base64: string): number {
  return Buffer.from(base64, "base64").length;
}

/** Throws unless the user data fits EC2's limit with `marginBytes` to spare. */
export function assertUserDataSize(name: string, userDataBase64: string, marginBytes = 4096): void {
  const size = userDataBytes(userDataBase64);
  if (size > USER_DATA_LIMIT - marginBytes)
    throw new Error(`user data of ${name} is ${size} bytes; EC2 allows ${USER_DATA_LIMIT} and we keep ${marginBytes} spare`);
}
