/**
 * What the offline render says about a stack beyond each resource's inputs: the machines it runs
 * (masters, etcd, pools with their instance types), a summary for the top of resources.md, the
 * values the mocks invented (marked wherever the render shows them), and the scripts every machine
 * fetches from the bootstrap bucket, written out beside their SHA-256 pins.
 */
import * as path from "path";
import { parse } from "yaml";
import { ETC_DIR } from "../cloud-init/render";
import type { InventedValue, Registration } from "../test/mocks";

const tagOf = (r: Registration, key: string): string | undefined => {
  const tags = r.inputs.tags;
  // Instances take a map, auto scaling groups a list of { key, value, propagateAtLaunch }.
  if (Array.isArray(tags)) return tags.find((t: { key: string }) => t.key === key)?.value;
  return (tags ?? {})[key];
};

/** The machines of one role, or one worker pool. */
export interface MachineGroup {
  role: "control-plane" | "etcd" | "worker";
  /** `masters`, `etcd` or the pool's name. */
  name: string;
  /** Machines running: the instances, or a pool's desired capacity. */
  count: number;
  /** A pool's auto scaling bounds; the count for masters and etcd. */
  min: number;
  max: number;
  /** In the order the pool prefers them. */
  instanceTypes: string[];
  capacity: "on-demand" | "spot";
  /** Root volume (gp3) of each machine, GiB. */
  rootGiB: number;
  zones: string[];
}

/** Masters, external etcd members and every worker pool, from the registrations. */
export function machineGroups(regs: Registration[]): MachineGroup[] {
  const groups: MachineGroup[] = [];
  const subnetZone = new Map(regs.filter((r) => r.type === "aws:ec2/subnet:Subnet").map((r) => [r.id, String(r.inputs.availabilityZone)]));
  const instances = regs.filter((r) => r.type === "aws:ec2/instance:Instance");
  for (const role of ["control-plane", "etcd"] as const) {
    const mine = instances.filter((r) => tagOf(r, "kubeadm-ha/role") === role);
    if (mine.length === 0) continue;
    groups.push({
      role,
      name: role === "control-plane" ? "masters" : "etcd",
      count: mine.length,
      min: mine.length,
      max: mine.length,
      instanceTypes: [...new Set(mine.map((r) => String(r.inputs.instanceType)))],
      capacity: "on-demand",
      rootGiB: Number(mine[0].inputs.rootBlockDevice?.volumeSize ?? 8),
      zones: [...new Set(mine.map((r) => String(r.inputs.availabilityZone ?? subnetZone.get(String(r.inputs.subnetId)))))].sort(),
    });
  }
  const templates = new Map(regs.filter((r) => r.type === "aws:ec2/launchTemplate:LaunchTemplate").map((r) => [r.id, r]));
  for (const asg of regs.filter((r) => r.type === "aws:autoscaling/group:Group")) {
    const mixed = asg.inputs.mixedInstancesPolicy;
    const template = templates.get(String(mixed?.launchTemplate?.launchTemplateSpecification?.launchTemplateId ?? asg.inputs.launchTemplate?.id));
    const types: string[] = mixed ? mixed.launchTemplate.overrides.map((o: { instanceType: string }) => o.instanceType) : [String(template?.inputs.instanceType)];
    groups.push({
      role: "worker",
      name: tagOf(asg, "kubeadm-ha/pool") ?? asg.name,
      count: Number(asg.inputs.desiredCapacity ?? asg.inputs.minSize),
      min: Number(asg.inputs.minSize),
      max: Number(asg.inputs.maxSize),
      instanceTypes: types,
      capacity: mixed?.instancesDistribution?.onDemandPercentageAboveBaseCapacity === 0 ? "spot" : "on-demand",
      rootGiB: Number(template?.inputs.blockDeviceMappings?.[0]?.ebs?.volumeSize ?? 8),
      zones: [...new Set((asg.inputs.vpcZoneIdentifiers ?? []).map((id: string) => subnetZone.get(id) ?? id))].sort() as string[],
    });
  }
  return groups;
}

/** A script one or more machines fetch from the bootstrap bucket, pinned by its SHA-256. */
export interface FetchedScript {
  /** File name under /usr/local/lib/kubeadm-ha on the machine. */
  name: string;
  sha256: string;
  content: string;
  /** The launch template or instance whose user data pins it. */
  machines: string[];
}

/** Each machine's bundle.list (in its user data) joined with the bucket's objects. */
export function fetchedScripts(regs: Registration[], userData: Record<string, string>): FetchedScript[] {
  const objects = new Map(
    regs.filter((r) => r.type === "aws:s3/bucketObjectv2:BucketObjectv2").map((r) => [String(r.inputs.key).split("/").pop()!, String(r.inputs.content)]),
  );
  const byKey = new Map<string, FetchedScript>();
  for (const [machine, text] of Object.entries(userData)) {
    const doc = parse(text, { version: "1.1" }) as { write_files?: Array<{ path: string; content: string }> };
    const list = (doc?.write_files ?? []).find((f) => f.path === `${ETC_DIR}/bundle.list`);
    for (const line of (list?.content ?? "").split("\n").filter(Boolean)) {
      const [sha256, , rel] = line.split(" ");
      const content = objects.get(sha256);
      if (content === undefined) throw new Error(`${machine}: bundle.list pins ${rel} as ${sha256}, but the bootstrap bucket holds no such object`);
      const key = `${path.basename(rel)} ${sha256}`;
      const s = byKey.get(key) ?? { name: path.basename(rel), sha256, content, machines: [] };
      s.machines.push(machine);
      s.machines.sort();
      byKey.set(key, s);
    }
  }
  const scripts = [...byKey.values()].sort((a, b) => a.name.localeCompare(b.name) || a.sha256.localeCompare(b.sha256));
  // Two versions of one name (roles rendered differently) each keep their own file.
  const names = scripts.map((s) => s.name);
  return scripts.map((s) => (names.filter((n) => n === s.name).length > 1 ? { ...s, name: `${s.name}@${s.sha256.slice(0, 12)}` } : s));
}

/** out/<stack>/bootstrap/: each fetched script, and SHA256SUMS (`sha256sum -c` checks them). */
export function bootstrapFiles(scripts: FetchedScript[]): Record<string, string> {
  const files: Record<string, string> = {};
  for (const s of scripts) files[`bootstrap/${s.name}`] = s.content;
  files["bootstrap/SHA256SUMS"] = scripts.map((s) => `${s.sha256}  ${s.name}\n`).join("");
  return files;
}

/** Marks values the mocks invented: `(mock)` after each setting or string that holds one. */
export class MockMarker {
  private readonly values: string[];
  constructor(invented: InventedValue[]) {
    this.values = invented.map((v) => v.value);
  }
  holds(text: string): boolean {
    return this.values.some((v) => text.includes(v));
  }
  mark(text: string): string {
    return this.holds(text) ? `${text} (mock)` : text;
  }
  /** Every string in a JSON value, marked. */
  markJson(v: unknown): unknown {
    if (typeof v === "string") return this.mark(v);
    if (Array.isArray(v)) return v.map((x) => this.markJson(x));
    if (v !== null && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, this.markJson(x)]));
    return v;
  }
}

/** mock-values.md: every invented value a rendered file shows, what it stands for and where. */
export function mockValuesDoc(stack: string, invented: InventedValue[], files: Record<string, string>): string {
  const rows = invented.flatMap((v) => {
    const where = Object.keys(files)
      .filter((f) => files[f].includes(v.value))
      .sort();
    return where.length ? [`| \`${v.value}\` | ${v.source} | ${where.map((f) => `\`${f}\``).join(", ")} |`] : [];
  });
  return [
    `# Values the offline render of stack ${stack} invented`,
    "",
    "The render runs the program under Pulumi's mocks, which answer for AWS: each value below is",
    "made up and will differ on `pulumi up` (AWS assigns IDs, ARNs, DNS names and generated names).",
    "resources.md and outputs.json mark each setting or output that holds one with `(mock)`; user data",
    "and kubeadm documents are shown byte for byte as EC2 would receive them, so this table says which",
    "of them hold one.",
    "",
    "| value | stands for | appears in |",
    "|---|---|---|",
    ...rows,
    "",
  ].join("\n");
}

const list = (xs: string[]) => xs.join(", ");

/** The summary at the top of resources.md. */
export function summaryTable(
  regs: Registration[],
  groups: MachineGroup[],
  scripts: FetchedScript[],
  addons: Array<{ name: string; installer: string }>,
): string {
  const of = (type: string) => regs.filter((r) => r.type === type);
  const masters = groups.find((g) => g.role === "control-plane");
  const etcd = groups.find((g) => g.role === "etcd");
  const pools = groups.filter((g) => g.role === "worker");
  const nlb = of("aws:lb/loadBalancer:LoadBalancer")[0];
  const real = regs.filter((r) => !r.type.startsWith("pulumi:") && !r.type.startsWith("kubeadm-ha:"));
  const byProvider = new Map<string, number>();
  for (const r of real) byProvider.set(r.type.split(":")[0], (byProvider.get(r.type.split(":")[0]) ?? 0) + 1);
  const rows: Array<[string, string]> = [];
  if (masters)
    rows.push([
      "masters",
      `${masters.count} x ${list(masters.instanceTypes)} in ${list(masters.zones)}, ${masters.rootGiB} GiB gp3 each; each runs an API server, ${etcd ? "" : "an etcd member (stacked), "}the controller-manager and the scheduler`,
    ]);
  rows.push(["etcd", etcd ? `${etcd.count} x ${list(etcd.instanceTypes)} in ${list(etcd.zones)}, ${etcd.rootGiB} GiB gp3 each (external)` : "stacked: one member on each master"]);
  for (const p of pools)
    rows.push([
      `worker pool ${p.name}`,
      `${list(p.instanceTypes)}, ${p.capacity}, min ${p.min} / desired ${p.count} / max ${p.max}, ${p.rootGiB} GiB gp3 each, over ${list(p.zones)}`,
    ]);
  if (pools.length === 0) rows.push(["worker pools", "none"]);
  if (nlb) rows.push(["API load balancer", `NLB \`${nlb.inputs.name}\`, ${nlb.inputs.internal ? "internal" : "internet-facing"}, TCP 6443`]);
  rows.push(["NAT gateways", String(of("aws:ec2/natGateway:NatGateway").length)]);
  rows.push(["S3 buckets", list(of("aws:s3/bucket:Bucket").map((b) => `\`${b.inputs.bucketPrefix ?? b.inputs.bucket ?? b.name}*\``)) || "none"]);
  rows.push(["secrets", `${of("aws:secretsmanager/secret:Secret").length} in Secrets Manager under ${of("aws:kms/key:Key").length} KMS key(s)`]);
  rows.push(["CloudWatch alarms", String(of("aws:cloudwatch/metricAlarm:MetricAlarm").length)]);
  for (const q of of("aws:sqs/queue:Queue"))
    rows.push(["SQS queues", `\`${q.inputs.name ?? q.name}\`, fed by ${of("aws:cloudwatch/eventRule:EventRule").length} EventBridge rule(s)`]);
  rows.push(["add-ons", addons.length ? list(addons.map((a) => `${a.name} (${a.installer})`)) : "none"]);
  rows.push(["bootstrap scripts", `${scripts.length} in the bootstrap bucket, written to bootstrap/ with SHA256SUMS`]);
  rows.push(["resources", `${real.length}: ${[...byProvider.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([p, n]) => `${n} ${p}`).join(", ")}`]);
  const script = scripts.map((s) => `| ${s.name} | ${s.sha256.slice(0, 16)}... | ${s.machines.join(", ")} |`);
  return [
    "## Summary",
    "",
    "| what | |",
    "|---|---|",
    ...rows.map(([k, v]) => `| ${k} | ${v.replace(/\|/g, "\\|")} |`),
    "",
    "## Scripts fetched from the bootstrap bucket",
    "",
    "| script (bootstrap/) | sha256 | pinned by the user data of |",
    "|---|---|---|",
    ...script,
    "",
  ].join("\n");
}
