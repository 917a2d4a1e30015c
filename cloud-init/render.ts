/**
 * Renders a node's cloud-config: the bootstrap scripts (real files under cloud-init/scripts, read
 * at render time), the node's environment file and its kubeadm documents. Pure and deterministic:
 * the same values give byte-identical user data, or `pulumi up` would replace machines for nothing.
 *
 * Nothing secret is rendered: the node fetches its keys and the bootstrap token from AWS Secrets
 * Manager with its instance role (cloud-init/scripts/fetch-secrets.sh).
 */
import * as fs from "fs";
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
}

/**
 * The scripts one machine runs. Each role gets only its own: EC2's 16 KB user data limit leaves no
 * room to ship every script to every machine. A test checks that every script a selected script
 * calls or sources is selected too, and that every script in the folder is selected for some role.
 */
export function scriptsFor(needs: ScriptNeeds): string[] {
  const out = ["bootstrap.sh", "fetch-secrets.sh", "install.sh", "lib.sh"];
  if (needs.role === "control-plane") out.push("join-lock.sh");
  if (needs.role === "etcd" || (needs.role === "control-plane" && needs.etcdTopology === "stacked")) out.push("etcdctl.sh");
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
}

/** The cloud-config object for one node. */
export function cloudConfig(node: NodeDocuments) {
  const files: WriteFile[] = [
    ...scriptFiles(scriptsFor({ ...node.needs, role: node.env.NODE_ROLE, etcdTopology: node.env.ETCD_TOPOLOGY })),
    { path: `${ETC_DIR}/node.env`, content: envFile(definedValues({ ...node.env, TOKEN_PLACEHOLDER })), permissions: "0644" },
    // kubeadm documents hold no secret, but nothing but root needs them.
    ...Object.entries(node.kubeadm)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, content]) => ({ path: `${ETC_DIR}/${name}`, content, permissions: "0600" })),
  ];
  return {
    write_files: files.map((f) => ({ path: f.path, permissions: f.permissions, owner: f.owner ?? "root:root", content: f.content })),
    runcmd: [[`${LIB_DIR}/bootstrap.sh`]],
  };
}

/** `#cloud-config` text, YAML 1.1 because cloud-init's PyYAML reads 1.1 (`on`, `yes`, `12:30` change meaning). */
export function renderCloudConfig(node: NodeDocuments): string {
  const doc = new Document(cloudConfig(node), { version: "1.1" });
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
