/**
 * Pure parts of `npm run bench`: the case matrix, the stack config of a case, statistics, the
 * growth check and the Markdown table. No Pulumi here: the parent process never loads the runtime.
 */

export type Topology = "stacked" | "external";

export interface BenchCase {
  /** `floor`, or `cp<masters>-pools<pools>-<topology>`. */
  id: string;
  kind: "floor" | "program";
  masters: number;
  pools: number;
  topology: Topology;
}

/** Masters, pools and topologies the issue asks for; external etcd gets as many members as masters. */
export const MATRIX = { masters: [3, 5, 7], pools: [1, 10, 50], topologies: ["stacked", "external"] as Topology[] };
/** `--quick`: the corners of the matrix, enough to see a slope in each dimension. */
export const QUICK_MATRIX = { masters: [3, 7], pools: [1, 50], topologies: ["stacked", "external"] as Topology[] };

export const FLOOR: BenchCase = { id: "floor", kind: "floor", masters: 0, pools: 0, topology: "stacked" };

export function caseId(masters: number, pools: number, topology: Topology): string {
  return `cp${masters}-pools${pools}-${topology}`;
}

export function benchCases(m: { masters: number[]; pools: number[]; topologies: Topology[] }): BenchCase[] {
  const out: BenchCase[] = [FLOOR];
  for (const topology of m.topologies)
    for (const masters of m.masters)
      for (const pools of m.pools) out.push({ id: caseId(masters, pools, topology), kind: "program", masters, pools, topology });
  return out;
}

/**
 * The stack config of a case, as Pulumi hands it to the program (`aws:region` and `kubeadm-ha:*`,
 * objects as JSON). Pools alternate on-demand and a three-type Spot pool with a label and a taint,
 * so both launch template shapes scale; external etcd has as many members as there are masters.
 */
export function caseConfig(c: BenchCase): Record<string, string> {
  const pools = Array.from({ length: c.pools }, (_, i) =>
    i % 2 === 0
      ? { name: `p${i}`, instanceTypes: ["m7i.large"], minSize: 1, maxSize: 3 }
      : { name: `p${i}`, instanceTypes: ["m7i.large", "m6i.large", "m5.large"], capacityType: "spot", minSize: 0, maxSize: 4, labels: { workload: `w${i}` }, taints: [{ key: "workload", value: `w${i}`, effect: "NoSchedule" }] },
  );
  const raw: Record<string, unknown> = {
    clusterName: "bench",
    kubernetesVersion: "1.35.0",
    controlPlane: { count: c.masters, instanceType: "m7i.large" },
    etcd: c.topology === "external" ? { topology: "external", nodeCount: c.masters } : { topology: "stacked" },
    network: { vpcCidr: "10.30.0.0/16", availabilityZones: ["eu-west-1a", "eu-west-1b", "eu-west-1c"], natGateways: "perZone" },
    apiLoadBalancer: { scheme: "internet-facing", allowedCidrs: ["0.0.0.0/0"] },
    workerPools: pools,
  };
  const out: Record<string, string> = { "aws:region": "eu-west-1" };
  for (const [k, v] of Object.entries(raw)) out[`kubeadm-ha:${k}`] = typeof v === "string" ? v : JSON.stringify(v);
  return out;
}

/** What one child process reports. */
export interface RunResult {
  /** Resources the mocks saw registered (components and the stack included). */
  resources: number;
  /** From process start until the Pulumi packages are loaded. */
  importMs: number;
  /** From then until every registration has reached the mocks. */
  programMs: number;
  /** From process start to the end of the program, as the child saw it. */
  totalMs: number;
  /** process.resourceUsage().maxRSS, KiB. */
  maxRssKiB: number;
}

export function median(xs: number[]): number {
  if (xs.length === 0) throw new Error("median of nothing");
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Least-squares line y = intercept + slope x. */
export function fitLine(points: Array<[number, number]>): { slope: number; intercept: number } {
  const n = points.length;
  if (n < 2) throw new Error("a line needs two points");
  const mx = points.reduce((a, [x]) => a + x, 0) / n;
  const my = points.reduce((a, [, y]) => a + y, 0) / n;
  const sxx = points.reduce((a, [x]) => a + (x - mx) ** 2, 0);
  if (sxx === 0) throw new Error("a line needs two distinct x values");
  const slope = points.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0) / sxx;
  return { slope, intercept: my - slope * mx };
}

export interface Growth {
  /** What grows: pools or masters, and in which series (topology, the other dimension's value). */
  series: string;
  /** Resources added by one step of the dimension (one pool, one master), from the ends of the series. */
  resourcesPerStep: number;
  /** Program ms per step of the dimension (per pool, per master): slope of the least-squares line. */
  msPerStep: number;
  /** Program ms per resource: slope of the line through (resources, program ms). */
  msPerResource: number;
  /** Program ms per resource of the largest case divided by that of the smallest. */
  marginalRatio: number;
  superlinear: boolean;
}

/**
 * With a fixed cost and a constant cost per resource, the program's ms per resource falls or stays
 * as the cluster grows (ratio <= 1); with a cost per resource that grows with the cluster it rises
 * (a quadratic from 93 to 240 resources: 1.8x). Flags superlinear above `tolerance` (default 1.5)
 * when the excess over the smallest case's rate also exceeds `noiseMs` (default 300 ms). Whole-case
 * averages, not step-to-step differences: a step of a few resources (one master) is within the
 * run-to-run noise of a shared machine, a whole case is not.
 */
export function growth(series: string, points: Array<{ x: number; resources: number; programMs: number }>, tolerance = 1.5, noiseMs = 300): Growth {
  const p = [...points].sort((a, b) => a.x - b.x);
  if (p.length < 2) throw new Error(`${series}: growth needs two sizes`);
  const [first, last] = [p[0], p[p.length - 1]];
  const rateFirst = first.programMs / first.resources;
  const ratio = last.programMs / last.resources / rateFirst;
  return {
    series,
    resourcesPerStep: (last.resources - first.resources) / (last.x - first.x),
    msPerStep: fitLine(p.map((q) => [q.x, q.programMs])).slope,
    msPerResource: fitLine(p.map((q) => [q.resources, q.programMs])).slope,
    marginalRatio: ratio,
    superlinear: ratio > tolerance && last.programMs - last.resources * rateFirst > noiseMs,
  };
}

export interface CaseSummary {
  c: BenchCase;
  runs: number;
  resources: number;
  wallMs: number;
  programMs: number;
  maxRssMiB: number;
}

export function summarize(c: BenchCase, wallMs: number[], runs: RunResult[]): CaseSummary {
  const counts = new Set(runs.map((r) => r.resources));
  if (counts.size !== 1) throw new Error(`${c.id}: resource count differs between runs (${[...counts].join(", ")}): the program is not deterministic`);
  return {
    c,
    runs: runs.length,
    resources: runs[0].resources,
    wallMs: median(wallMs),
    programMs: median(runs.map((r) => r.programMs)),
    maxRssMiB: median(runs.map((r) => r.maxRssKiB)) / 1024,
  };
}

export function benchTable(rows: CaseSummary[]): string {
  const floor = rows.find((r) => r.c.kind === "floor");
  const lines = [
    "| case | masters | pools | etcd | resources | wall ms (median) | program ms | ms / resource over floor | peak RSS MiB |",
    "|---|---:|---:|---|---:|---:|---:|---:|---:|",
  ];
  for (const r of rows) {
    const over = floor && r !== floor ? ((r.wallMs - floor.wallMs) / Math.max(1, r.resources - floor.resources)).toFixed(2) : "";
    lines.push(
      `| ${r.c.id} | ${r.c.kind === "floor" ? "" : r.c.masters} | ${r.c.kind === "floor" ? "" : r.c.pools} | ${r.c.kind === "floor" ? "" : r.c.topology} | ${r.resources} | ${Math.round(r.wallMs)} | ${Math.round(r.programMs)} | ${over} | ${r.maxRssMiB.toFixed(0)} |`,
    );
  }
  return lines.join("\n");
}

/** Every growth series the matrix allows: along pools for each (topology, masters), along masters for each (topology, pools). */
export function growthSeries(rows: CaseSummary[]): Growth[] {
  const prog = rows.filter((r) => r.c.kind === "program");
  const out: Growth[] = [];
  for (const topology of [...new Set(prog.map((r) => r.c.topology))]) {
    const t = prog.filter((r) => r.c.topology === topology);
    for (const masters of [...new Set(t.map((r) => r.c.masters))]) {
      const s = t.filter((r) => r.c.masters === masters);
      if (s.length >= 2) out.push(growth(`${topology}, ${masters} masters, pools grow`, s.map((r) => ({ x: r.c.pools, resources: r.resources, programMs: r.programMs }))));
    }
    for (const pools of [...new Set(t.map((r) => r.c.pools))]) {
      const s = t.filter((r) => r.c.pools === pools);
      if (s.length >= 2) out.push(growth(`${topology}, ${pools} pools, masters grow`, s.map((r) => ({ x: r.c.masters, resources: r.resources, programMs: r.programMs }))));
    }
  }
  return out;
}

export function growthTable(gs: Growth[]): string {
  const lines = ["| series | resources per step | program ms per step | program ms per resource | ms per resource, largest / smallest | |", "|---|---:|---:|---:|---:|---|"];
  for (const g of gs)
    lines.push(
      `| ${g.series} | ${g.resourcesPerStep.toFixed(1)} | ${g.msPerStep.toFixed(0)} | ${g.msPerResource.toFixed(1)} | ${g.marginalRatio.toFixed(2)} | ${g.superlinear ? "**superlinear**" : "linear"} |`,
    );
  return lines.join("\n");
}

/** Replaces the text between `<!-- begin:<name> -->` and `<!-- end:<name> -->`; both markers must exist once. */
export function replaceBetweenMarkers(doc: string, name: string, body: string): string {
  const begin = `<!-- begin:${name} -->`;
  const end = `<!-- end:${name} -->`;
  const i = doc.indexOf(begin);
  const j = doc.indexOf(end);
  if (i < 0 || j < 0 || j < i || doc.indexOf(begin, i + 1) >= 0 || doc.indexOf(end, j + 1) >= 0)
    throw new Error(`expected exactly one ${begin} ... ${end} pair`);
  return doc.slice(0, i + begin.length) + "\n" + body.trimEnd() + "\n" + doc.slice(j);
}
