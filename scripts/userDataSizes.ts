/**
 * Gzipped user data of every node role in every topology, from real renders: the numbers in
 * docs/performance.md and the one check that they fit (test/userDataSize.test.ts).
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as zlib from "zlib";
import { parse, stringify } from "yaml";
import { USER_DATA_LIMIT } from "../cloud-init/render";

/** EC2 rejects user data over 16 KB (before base64): https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-add-user-data.html */
export const EC2_USER_DATA_LIMIT = USER_DATA_LIMIT;
/** Room kept for the next script or setting, so a change that would break the limit fails in review, not at launch. */
export const USER_DATA_MARGIN = 4096;
export const USER_DATA_BUDGET = EC2_USER_DATA_LIMIT - USER_DATA_MARGIN;

/** A render to measure: a committed stack, or one with config overrides (top-level `kubeadm-ha:` keys replaced). */
export interface SizeVariant {
  /** Label in the table. */
  id: string;
  stack: string;
  /** Replaces these `config:` keys of Pulumi.<stack>.yaml. */
  overrides?: Record<string, unknown>;
  description: string;
}

export const SIZE_VARIANTS: SizeVariant[] = [
  { id: "dev", stack: "dev", description: "stacked etcd, add-ons by Pulumi (internet-facing NLB)" },
  { id: "dev+nodes-addons", stack: "dev", overrides: { "kubeadm-ha:addons": { installer: "nodes" } }, description: "stacked etcd, add-ons installed by master 0" },
  { id: "prod", stack: "prod", description: "external etcd, internal NLB (add-ons installed by master 0)" },
];

export type NodeRole = "master 0" | "other master" | "etcd member" | "worker";

export interface UserDataSize {
  variant: string;
  /** Resource name, e.g. prod-control-plane-master-0. */
  node: string;
  role: NodeRole;
  topology: "stacked" | "external";
  rawBytes: number;
  gzipBytes: number;
}

export function roleOf(node: string): NodeRole {
  if (/-control-plane-master-0$/.test(node)) return "master 0";
  if (/-control-plane-master-\d+$/.test(node)) return "other master";
  if (/-etcd-member-\d+$/.test(node)) return "etcd member";
  if (/-pool-.+-launch-template$/.test(node)) return "worker";
  throw new Error(`no node role for user data of ${node}`);
}

/** gzip -9, as cloud-init/render.ts sends it. */
export const gzipBytes = (text: string) => zlib.gzipSync(Buffer.from(text, "utf8"), { level: 9 }).length;

/** Every node's user data size in a render's files (`npm run render`'s output, path -> content). */
export function measureFiles(variant: string, files: Record<string, string>): UserDataSize[] {
  const outputs = JSON.parse(files["outputs.json"]) as { etcdTopology: "stacked" | "external" };
  return Object.keys(files)
    .filter((f) => f.startsWith("user-data/"))
    .sort()
    .map((f) => {
      const text = files[f];
      const node = path.basename(f).replace(/\.yaml$/, "");
      return { variant, node, role: roleOf(node), topology: outputs.etcdTopology, rawBytes: Buffer.byteLength(text), gzipBytes: gzipBytes(text) };
    });
}

/** Renders `v` with `npm run render` in a fresh process (the Pulumi runtime is process-global) and measures every node's user data. */
export function measureVariant(root: string, v: SizeVariant): UserDataSize[] {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), `userdata-${v.id}-`));
  try {
    const stackFile = path.join(root, `Pulumi.${v.stack}.yaml`);
    const configFile = path.join(work, `Pulumi.${v.stack}.yaml`);
    const doc = parse(fs.readFileSync(stackFile, "utf8"), { version: "1.1" }) as { config: Record<string, unknown> };
    Object.assign(doc.config, v.overrides ?? {});
    fs.writeFileSync(configFile, stringify(doc, { version: "1.1" }));
    const out = path.join(work, "out");
    const r = spawnSync(process.execPath, ["-r", "@swc-node/register", path.join(root, "scripts/render.ts"), v.stack, "--config", configFile, "--out", out], { cwd: root, encoding: "utf8" });
    if (r.status !== 0) throw new Error(`render ${v.id} failed: ${r.stderr}`);
    const walk = (dir: string): string[] => fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]));
    return measureFiles(v.id, Object.fromEntries(walk(out).map((f) => [path.relative(out, f), fs.readFileSync(f, "utf8")])));
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/** One row a (variant, role): the largest machine of that role, which is the one that can break the limit. */
export function sizeTable(sizes: UserDataSize[]): string {
  const lines = [
    `| render | etcd | role | largest node | gzipped bytes | of ${EC2_USER_DATA_LIMIT} | left under the ${USER_DATA_BUDGET}-byte budget |`,
    "|---|---|---|---|---:|---:|---:|",
  ];
  const roles: NodeRole[] = ["master 0", "other master", "etcd member", "worker"];
  for (const variant of [...new Set(sizes.map((s) => s.variant))])
    for (const role of roles) {
      const of = sizes.filter((s) => s.variant === variant && s.role === role);
      if (of.length === 0) continue;
      const max = of.reduce((a, b) => (b.gzipBytes > a.gzipBytes ? b : a));
      lines.push(`| ${variant} | ${max.topology} | ${role} | ${max.node} | ${max.gzipBytes} | ${((100 * max.gzipBytes) / EC2_USER_DATA_LIMIT).toFixed(0)}% | ${USER_DATA_BUDGET - max.gzipBytes} |`);
    }
  return lines.join("\n");
}
