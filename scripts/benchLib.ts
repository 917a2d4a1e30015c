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

/** One case's measurement in one round. */
export interface RoundPoint {
  /** Pools or masters. */
  x: number;
  resources: number;
  programMs: number;
}

export interface Growth {
  /** What grows: pools or masters, and in which series (topology, the other dimension's value). */
  series: string;
  /** Resources added by one step of the dimension (one pool, one master), from the ends of the series. */
  resourcesPerStep: number;
  /**
   * Program ms per step of the dimension: the median over rounds of each round's least-squares
   * slope, never below 0 (a negative slope is noise: adding pools never makes the program faster).
   */
  msPerStep: number;
  /** Program ms per resource: the same, through (resources, program ms). */
  msPerResource: number;
  /** The median over rounds of (ms per resource of the largest case) / (of the smallest), both from that round. */
  marginalRatio: number;
  /** The smallest of those per-round ratios. */
  minRatio: number;
  /** Rounds the verdict rests on. */
  rounds: number;
  /** `superlinear`, `linear`, or `no verdict` with fewer than MIN_VERDICT_ROUNDS rounds. */
  verdict: "superlinear" | "linear" | "no verdict";
  superlinear: boolean;
}

/** Rounds a growth verdict needs: one noisy round must not decide it. */
export const MIN_VERDICT_ROUNDS = 3;

/**
 * Whether cost per resource grows with the cluster, from rounds of interleaved runs: round r holds
 * every size of the series measured in round r, next to each other in time, so a burst of load on a
 * shared machine slows the sizes of one round alike and cancels out of their ratio. With a fixed
 * cost and a constant cost per resource the ratio (ms per resource, largest / smallest) stays at or
 * below 1; with a cost per resource that grows with the cluster it rises (a quadratic from 93 to 240
 * resources: 1.8x). Superlinear only when the ratio exceeds `tolerance` (default 1.5) in every
 * round, and the median excess over the smallest case's rate exceeds `noiseMs` (default 300 ms):
 * noise would have to slow the largest case in every round, and by more than a whole case's noise.
 * Fewer than MIN_VERDICT_ROUNDS rounds give no verdict.
 */
export function growth(series: string, rounds: RoundPoint[][], tolerance = 1.5, noiseMs = 300): Growth {
  if (rounds.length === 0) throw new Error(`${series}: growth needs at least one round`);
  const sorted = rounds.map((r) => [...r].sort((a, b) => a.x - b.x));
  for (const r of sorted) if (r.length < 2) throw new Error(`${series}: growth needs two sizes in every round`);
  const [first, last] = [sorted[0][0], sorted[0][sorted[0].length - 1]];
  const ratios = sorted.map((r) => r[r.length - 1].programMs / r[r.length - 1].resources / (r[0].programMs / r[0].resources));
  const excess = median(sorted.map((r) => r[r.length - 1].programMs - r[r.length - 1].resources * (r[0].programMs / r[0].resources)));
  const enough = sorted.length >= MIN_VERDICT_ROUNDS;
  const superlinear = enough && Math.min(...ratios) > tolerance && excess > noiseMs;
  return {
    series,
    resourcesPerStep: (last.resources - first.resources) / (last.x - first.x),
    msPerStep: Math.max(0, median(sorted.map((r) => fitLine(r.map((q) => [q.x, q.programMs])).slope))),
    msPerResource: Math.max(0, median(sorted.map((r) => fitLine(r.map((q) => [q.resources, q.programMs])).slope))),
    marginalRatio: median(ratios),
    minRatio: Math.min(...ratios),
    rounds: sorted.length,
    verdict: !enough ? "no verdict" : superlinear ? "superlinear" : "linear",
    superlinear,
  };
}

export interface CaseSummary {
  c: BenchCase;
  runs: number;
  resources: number;
  wallMs: number;
  programMs: number;
  maxRssMiB: number;
  /** Each round's wall and program ms, in round order. */
  wallMsRuns: number[];
  programMsRuns: number[];
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
    wallMsRuns: wallMs,
    programMsRuns: runs.map((r) => r.programMs),
  };
}

/**
 * Wall ms per resource over the floor: each round's (case - floor of the same round) over the
 * resources the case adds, median over rounds; never below 0 (the program cannot cost less than
 * loading the packages: a negative difference is the floor's run being slowed).
 */
export function overFloorMsPerResource(row: CaseSummary, floor: CaseSummary): number {
  const n = Math.min(row.wallMsRuns.length, floor.wallMsRuns.length);
  const per = Array.from({ length: n }, (_, i) => (row.wallMsRuns[i] - floor.wallMsRuns[i]) / Math.max(1, row.resources - floor.resources));
  return Math.max(0, median(per));
}

export function benchTable(rows: CaseSummary[]): string {
  const floor = rows.find((r) => r.c.kind === "floor");
  const lines = [
    "| case | masters | pools | etcd | resources | wall ms (median) | program ms | ms / resource over floor | peak RSS MiB |",
    "|---|---:|---:|---|---:|---:|---:|---:|---:|",
  ];
  for (const r of rows) {
    const over = floor && r !== floor ? overFloorMsPerResource(r, floor).toFixed(2) : "";
    lines.push(
      `| ${r.c.id} | ${r.c.kind === "floor" ? "" : r.c.masters} | ${r.c.kind === "floor" ? "" : r.c.pools} | ${r.c.kind === "floor" ? "" : r.c.topology} | ${r.resources} | ${Math.round(r.wallMs)} | ${Math.round(r.programMs)} | ${over} | ${r.maxRssMiB.toFixed(0)} |`,
    );
  }
  return lines.join("\n");
}

/** Every growth series the matrix allows: along pools for each (topology, masters), along masters for each (topology, pools). */
export function growthSeries(rows: CaseSummary[]): Growth[] {
  const prog = rows.filter((r) => r.c.kind === "program");
  const rounds = (s: CaseSummary[], x: (r: CaseSummary) => number): RoundPoint[][] =>
    Array.from({ length: Math.min(...s.map((r) => r.programMsRuns.length)) }, (_, i) => s.map((r) => ({ x: x(r), resources: r.resources, programMs: r.programMsRuns[i] })));
  const out: Growth[] = [];
  for (const topology of [...new Set(prog.map((r) => r.c.topology))]) {
    const t = prog.filter((r) => r.c.topology === topology);
    for (const masters of [...new Set(t.map((r) => r.c.masters))]) {
      const s = t.filter((r) => r.c.masters === masters);
      if (s.length >= 2) out.push(growth(`${topology}, ${masters} masters, pools grow`, rounds(s, (r) => r.c.pools)));
    }
    for (const pools of [...new Set(t.map((r) => r.c.pools))]) {
      const s = t.filter((r) => r.c.pools === pools);
      if (s.length >= 2) out.push(growth(`${topology}, ${pools} pools, masters grow`, rounds(s, (r) => r.c.masters)));
    }
  }
  return out;
}

export function growthTable(gs: Growth[]): string {
  const lines = [
    "| series | resources per step | program ms per step | program ms per resource | ms per resource, largest / smallest (median, lowest round) | |",
    "|---|---:|---:|---:|---:|---|",
  ];
  for (const g of gs)
    lines.push(
      `| ${g.series} | ${g.resourcesPerStep.toFixed(1)} | ${g.msPerStep.toFixed(0)} | ${g.msPerResource.toFixed(1)} | ${g.marginalRatio.toFixed(2)}, ${g.minRatio.toFixed(2)} | ${g.verdict === "superlinear" ? "**superlinear**" : g.verdict} |`,
    );
  return lines.join("\n");
}

/**
 * The order of the cases in round `round` (from 1): rotated by one each round, so no case always
 * runs first (cold disk cache) or right after the largest one (a collector still busy).
 */
export function roundOrder<T>(cases: T[], round: number): T[] {
  const k = (round - 1) % Math.max(1, cases.length);
  return [...cases.slice(k), ...cases.slice(0, k)];
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
