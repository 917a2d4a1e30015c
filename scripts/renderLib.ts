/**
 * The offline render as a library: evaluate the program under mocks for one stack and return the
 * files to write. Tests call it directly; scripts/render.ts writes what it returns.
 */
import * as fs from "fs";
import * as path from "path";
import * as zlib from "zlib";
import * as pulumi from "@pulumi/pulumi";
import { parse } from "yaml";
import { AddonSummary } from "../components/addons";
import { Registration, inventedValues, settle, setupMocks } from "../test/mocks";
import { costDoc, loadPrices } from "./cost";
import { MachineGroup, MockMarker, bootstrapFiles, fetchedScripts, machineGroups, mockValuesDoc, summaryTable } from "./renderReview";

const isMap = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);
const kindOf = (v: unknown) => (v === null ? "nothing" : Array.isArray(v) ? "a list" : typeof v === "object" ? "a map" : `a ${typeof v}`);

/** The path of the first `secure:` value inside `v`, as `pulumi config set --path` spells it. */
function securePath(v: unknown, at: string): string | undefined {
  if (isMap(v) && "secure" in v) return at;
  if (Array.isArray(v)) {
    for (const [i, x] of v.entries()) {
      const p = securePath(x, `${at}[${i}]`);
      if (p) return p;
    }
  } else if (isMap(v)) {
    for (const [k, x] of Object.entries(v)) {
      const p = securePath(x, `${at}.${k}`);
      if (p) return p;
    }
  }
  return undefined;
}

/**
 * A stack file's `config:` as Pulumi passes it to the program: every value a string, objects and
 * lists as JSON. Keys are passed as written, so config.ts refuses a misspelt namespace just as it
 * would under `pulumi up`. `file` names the file in every error.
 */
export function stackConfig(stackYaml: string, file = "the stack file"): Record<string, string> {
  let doc: unknown;
  try {
    doc = parse(stackYaml, { version: "1.1" });
  } catch (e) {
    throw new Error(`${file}: not valid YAML: ${e instanceof Error ? e.message : String(e)}`);
  }
  const shape = "it must be a map with a config: map of keys such as aws:region and kubeadm-ha:clusterName";
  if (!isMap(doc)) throw new Error(`${file}: is ${doc === null || doc === undefined ? "empty" : kindOf(doc)}; ${shape}`);
  if (!("config" in doc)) throw new Error(`${file}: has no config: section; ${shape}`);
  if (!isMap(doc.config)) throw new Error(`${file}: config: is ${kindOf(doc.config)}; ${shape}`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(doc.config)) {
    const secure = securePath(v, k);
    if (secure)
      throw new Error(`${file}: ${secure} is a secure value, which cannot be decrypted offline; render a copy of the stack file without secrets (npm run render -- <stack> --config <copy>)`);
    out[k] = typeof v === "string" ? v : JSON.stringify(v);
  }
  return out;
}

/** Decodes EC2 user data as cloud-init would: base64, then gunzip when gzipped. */
export function decodeUserData(userData: string, base64: boolean): string {
  let buf = base64 ? Buffer.from(userData, "base64") : Buffer.from(userData, "utf8");
  if (buf[0] === 0x1f && buf[1] === 0x8b) buf = zlib.gunzipSync(buf);
  return buf.toString("utf8");
}

const SKIP_KEYS = new Set(["tags", "tagsAll", "userData", "userDataBase64", "secretString", "policy", "assumeRolePolicy", "__defaults"]);

/** A resource's scalar inputs (and small objects), for the review table; `mock` marks invented values. */
export function keySettings(r: Registration, mock?: MockMarker): string {
  const parts: string[] = [];
  const mark = (part: string) => (mock ? mock.mark(part) : part);
  for (const [k, v] of Object.entries(r.inputs).sort(([a], [b]) => a.localeCompare(b))) {
    if (SKIP_KEYS.has(k) || v === undefined || v === null) continue;
    if (typeof v === "object") {
      const json = JSON.stringify(v);
      if (json.length <= 160 && !json.includes("BEGIN")) parts.push(mark(`${k}=${json}`));
    } else {
      const s = String(v);
      if (s.length <= 100 && !s.includes("BEGIN")) parts.push(mark(`${k}=${s}`));
    }
  }
  return parts.join(", ").replace(/\|/g, "\\|");
}

export function resourceTable(regs: Registration[], mock?: MockMarker): string {
  const rows = regs
    .filter((r) => !r.type.startsWith("pulumi:"))
    .sort((a, b) => a.type.localeCompare(b.type) || a.name.localeCompare(b.name))
    .map((r) => `| \`${r.type}\` | ${r.name} | ${keySettings(r, mock)} |`);
  return ["| type | name | key settings |", "|---|---|---|", ...rows].join("\n") + `\n\n${rows.length} resources.\n`;
}

/** The add-ons with their pinned chart versions and installer, in install order. */
export function addonTable(addons: AddonSummary[]): string {
  const rows = addons.map((a) => `| ${a.name} | \`${a.chart}\` from ${a.repo} | ${a.version} | ${a.namespace} | ${a.installer} |`);
  return ["| add-on | chart | version | namespace | installer |", "|---|---|---|---|---|", ...rows].join("\n") + `\n\n${rows.length} add-ons.\n`;
}

const tagOf = (r: Registration, key: string): string | undefined => {
  const tags = r.inputs.tags;
  if (Array.isArray(tags)) return tags.find((t: { key: string }) => t.key === key)?.value;
  return (tags ?? {})[key];
};

/**
 * Mermaid flowchart: the NLBs on top, one box a zone with its NAT and machines, etcd's peer links
 * (2380) between the machines that hold a member (the masters when stacked), worker pools across
 * zones with their instance types.
 */
export function topologyDiagram(regs: Registration[], groups: MachineGroup[] = machineGroups(regs)): string {
  const zones = [...new Set(regs.filter((r) => r.type === "aws:ec2/subnet:Subnet").map((r) => String(r.inputs.availabilityZone)))].sort();
  const subnetZone = new Map(regs.filter((r) => r.type === "aws:ec2/subnet:Subnet").map((r) => [r.id, String(r.inputs.availabilityZone)]));
  const id = (s: string) => s.replace(/[^A-Za-z0-9_]/g, "_");
  const lines = ["flowchart TB"];
  // The internal NLB is every node's endpoint; an internet-facing one, when there is one, is for people.
  const nlbs = regs.filter((r) => r.type === "aws:lb/loadBalancer:LoadBalancer");
  const nlb = nlbs.find((r) => r.inputs.internal);
  const publicNlb = nlbs.find((r) => !r.inputs.internal);
  if (nlb) lines.push(`  nlb(["NLB ${nlb.inputs.name} (internal${publicNlb ? ", nodes" : ""}) TCP 6443"])`);
  if (publicNlb) lines.push(`  publicNlb(["NLB ${publicNlb.inputs.name} (internet-facing, people) TCP 6443"])`);
  const instances = regs.filter((r) => r.type === "aws:ec2/instance:Instance");
  const masters = instances.filter((r) => tagOf(r, "kubeadm-ha/role") === "control-plane");
  const etcd = instances.filter((r) => tagOf(r, "kubeadm-ha/role") === "etcd");
  const stacked = etcd.length === 0;
  const runs = (i: Registration) =>
    tagOf(i, "kubeadm-ha/role") === "control-plane" ? (stacked ? "apiserver, etcd, KCM, scheduler" : "apiserver, KCM, scheduler") : "etcd member";
  for (const zone of zones) {
    lines.push(`  subgraph ${id(zone)}["${zone}"]`);
    for (const nat of regs.filter((r) => r.type === "aws:ec2/natGateway:NatGateway" && subnetZone.get(String(r.inputs.subnetId)) === zone))
      lines.push(`    ${id(nat.name)}[/"NAT ${nat.name}"/]`);
    for (const i of instances.filter((r) => (r.inputs.availabilityZone ?? subnetZone.get(String(r.inputs.subnetId))) === zone)) {
      const role = tagOf(i, "kubeadm-ha/role") ?? "node";
      lines.push(`    ${id(i.name)}["${role} ${i.name}<br/>${i.inputs.privateIp ?? ""} ${i.inputs.instanceType ?? ""}<br/>${runs(i)}"]`);
    }
    lines.push("  end");
  }
  for (const i of masters) {
    lines.push(`  nlb --> ${id(i.name)}`);
    if (publicNlb) lines.push(`  publicNlb --> ${id(i.name)}`);
  }
  for (const m of masters) for (const e of etcd) lines.push(`  ${id(m.name)} -. etcd 2379 .-> ${id(e.name)}`);
  // Every pair of members talks raft on 2380: a full mesh.
  const members = stacked ? masters : etcd;
  for (let a = 0; a < members.length; a++)
    for (let b = a + 1; b < members.length; b++) lines.push(`  ${id(members[a].name)} <-. etcd peer 2380 .-> ${id(members[b].name)}`);
  const pools = groups.filter((g) => g.role === "worker");
  for (const asg of regs.filter((r) => r.type === "aws:autoscaling/group:Group")) {
    const pool = pools.find((p) => p.name === tagOf(asg, "kubeadm-ha/pool"));
    const types = pool ? `${pool.instanceTypes.join(", ")}, ${pool.capacity}<br/>` : "";
    lines.push(`  ${id(asg.name)}[["worker pool ${asg.name}<br/>${types}min ${asg.inputs.minSize} / max ${asg.inputs.maxSize}, all zones"]]`, `  ${id(asg.name)} -- join via NLB --> nlb`);
  }
  return lines.join("\n") + "\n";
}

/** cloud-config `write_files` entries whose path ends in .yaml under /etc/kubeadm-ha: the kubeadm documents. */
function kubeadmDocuments(cloudConfig: string): Array<{ path: string; content: string }> {
  const body = parse(cloudConfig, { version: "1.1" }) as { write_files?: Array<{ path: string; content: string; encoding?: string }> };
  return (body?.write_files ?? [])
    .filter((f) => f.path.startsWith("/etc/kubeadm-ha/") && f.path.endsWith(".yaml") && !f.path.includes("/patches/") && !f.path.includes("/addons/"))
    .map((f) => ({ path: f.path, content: f.encoding === "b64" ? Buffer.from(f.content, "base64").toString("utf8") : f.content }));
}

function plainOutputs(outputs: Record<string, unknown>): Promise<Record<string, unknown>> {
  return Promise.all(
    Object.entries(outputs).map(async ([k, raw]) => {
      // pulumi.output also resolves Outputs nested in plain objects and lists (workerJoin), as `pulumi up` does.
      const v = pulumi.output(raw as pulumi.Input<unknown>) as pulumi.Output<unknown>;
      const secret = await (v as any).isSecret;
      const value = await new Promise((resolve) => v.apply((x) => resolve(x)));
      return [k, secret ? "[secret]" : value] as const;
    }),
  ).then((entries) => Object.fromEntries(entries));
}

/** The program's registrations and its stack outputs (secrets shown as `[secret]`), as `pulumi up` would see them. */
export interface ProgramCapture {
  registrations: Registration[];
  outputs: Record<string, unknown>;
}

/**
 * resources.md (a summary, the fetched scripts, every resource), topology.mmd, outputs.json, the
 * scripts under bootstrap/ and mock-values.md, from the registrations, the outputs and the files
 * rendered so far (user data).
 */
export function reviewFiles(stack: string, regs: Registration[], outputs: Record<string, unknown>, rendered: Record<string, string>): Record<string, string> {
  const invented = inventedValues(regs);
  const mock = new MockMarker(invented);
  const groups = machineGroups(regs);
  const userData = Object.fromEntries(
    Object.entries(rendered)
      .filter(([f]) => f.startsWith("user-data/"))
      .map(([f, text]) => [path.basename(f, ".yaml"), text]),
  );
  const scripts = fetchedScripts(regs, userData);
  const files: Record<string, string> = {};
  files["resources.md"] =
    `# Resources of stack ${stack}\n\n` +
    "An offline render under Pulumi's mocks: what `pulumi up` would create. Values AWS assigns (IDs, ARNs, DNS names,\n" +
    "generated names) are invented by the mocks and marked `(mock)`; mock-values.md lists them.\n\n" +
    summaryTable(regs, groups, scripts, (outputs.addons as AddonSummary[] | undefined) ?? []) +
    "\n## Every resource\n\n" +
    resourceTable(regs, mock);
  files["topology.mmd"] = topologyDiagram(regs, groups);
  const region = String((outputs.workerJoin as { region?: string } | undefined)?.region ?? "");
  files["cost.md"] = costDoc(stack, region, regs, groups, loadPrices(region));
  files["outputs.json"] = JSON.stringify(mock.markJson(outputs), null, 2) + "\n";
  Object.assign(files, bootstrapFiles(scripts));
  files["mock-values.md"] = mockValuesDoc(stack, invented, { ...rendered, ...files });
  return files;
}

/**
 * Evaluates the program for `stack` with `config` (Pulumi's strings) under mocks. The program
 * registers its resources when its module is loaded, so `load` must load it afresh: Node's
 * `require` does once per process, a test uses `jest.isolateModules`.
 */
export async function evaluateProgram(
  stack: string,
  config: Record<string, string>,
  load: () => Record<string, unknown>,
): Promise<ProgramCapture> {
  const registrations = await setupMocks({ stack, config, region: config["aws:region"] });
  const program = load();
  const outputs = await plainOutputs(program);
  await settle();
  return { registrations, outputs };
}

/** What `npm run render` writes for a capture: relative path -> file content. */
export function renderFiles(stack: string, { registrations: regs, outputs }: ProgramCapture): Record<string, string> {
  const files: Record<string, string> = {};
  for (const r of regs) {
    const ud = r.inputs.userDataBase64 ?? r.inputs.userData;
    if (typeof ud !== "string") continue;
    const text = decodeUserData(ud, r.inputs.userDataBase64 !== undefined || r.type === "aws:ec2/launchTemplate:LaunchTemplate");
    files[`user-data/${r.name}.yaml`] = text;
    for (const doc of kubeadmDocuments(text)) files[`kubeadm/${r.name}/${path.basename(doc.path)}`] = doc.content;
  }
  files["addons.md"] = `# Add-ons of stack ${stack}\n\n` + addonTable((outputs.addons as AddonSummary[] | undefined) ?? []);
  Object.assign(files, reviewFiles(stack, regs, outputs, files));
  return files;
}

/** The stack file's config with top-level keys replaced by `overrides` (values as YAML would give them). */
export function withOverrides(config: Record<string, string>, overrides: Record<string, unknown> = {}): Record<string, string> {
  const out = { ...config };
  for (const [k, v] of Object.entries(overrides)) out[k] = typeof v === "string" ? v : JSON.stringify(v);
  return out;
}

/** Reads `Pulumi.<stack>.yaml` (or `stackFile`) as the program would receive it, naming the file in any error. */
export function readStackFile(root: string, stack: string, stackFile = path.join(root, `Pulumi.${stack}.yaml`)): Record<string, string> {
  if (!fs.existsSync(stackFile)) throw new Error(`no stack config ${stackFile} (stacks: ${fs.readdirSync(root).filter((f) => /^Pulumi\.[^.]+\.yaml$/.test(f)).map((f) => f.split(".")[1]).join(", ")})`);
  // Named as the user knows it: Pulumi.dev.yaml for the project's own, the path as given otherwise.
  return stackConfig(fs.readFileSync(stackFile, "utf8"), path.dirname(stackFile) === root ? path.basename(stackFile) : stackFile);
}

/**
 * Evaluates the program (index.ts) for `stack` under mocks; returns relative path -> file content.
 * Once per process: the program registers its resources when its module is first loaded.
 */
export async function renderStack(root: string, stack: string, stackFile = path.join(root, `Pulumi.${stack}.yaml`)): Promise<Record<string, string>> {
  const config = readStackFile(root, stack, stackFile);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const capture = await evaluateProgram(stack, config, () => require(path.join(root, "index")) as Record<string, unknown>);
  return renderFiles(stack, capture);
}
