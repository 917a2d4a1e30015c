/**
 * Pure parts of `npm run bench` (scripts/benchLib.ts): the case matrix and its stack configs, the
 * statistics and the superlinear check, the doc markers.
 */
import { parseConfig } from "../config";
import * as fc from "fast-check";
import {
  MATRIX,
  MIN_VERDICT_ROUNDS,
  QUICK_MATRIX,
  benchCases,
  caseConfig,
  fitLine,
  growth,
  median,
  overFloorMsPerResource,
  replaceBetweenMarkers,
  roundOrder,
  summarize,
} from "../scripts/benchLib";
import { rawStackConfig } from "../scripts/failoverBudget";

describe("benchCases", () => {
  it("full matrix: the floor and 3 x 3 x 2 program cases", () => {
    const cases = benchCases(MATRIX);
    expect(cases).toHaveLength(19);
    expect(cases.slice(0, 4).map((c) => c.id)).toEqual(["floor", "cp3-pools1-stacked", "cp3-pools10-stacked", "cp3-pools50-stacked"]);
    expect(cases[cases.length - 1].id).toBe("cp7-pools50-external");
  });

  it("quick: the floor and the corners", () => {
    expect(benchCases(QUICK_MATRIX).map((c) => c.id)).toEqual([
      "floor",
      "cp3-pools1-stacked", "cp3-pools50-stacked", "cp7-pools1-stacked", "cp7-pools50-stacked",
      "cp3-pools1-external", "cp3-pools50-external", "cp7-pools1-external", "cp7-pools50-external",
    ]);
  });

  it.each(benchCases(MATRIX).filter((c) => c.kind === "program").map((c) => [c.id, c] as const))("%s is a valid stack config of its size", (_, c) => {
    const config = parseConfig(rawStackConfig(caseConfig(c)));
    expect([config.controlPlane.count, config.workerPools.length, config.etcd.topology, config.etcd.topology === "external" ? config.etcd.nodeCount : 0]).toEqual([
      c.masters, c.pools, c.topology, c.topology === "external" ? c.masters : 0,
    ]);
  });
});

describe("statistics", () => {
  it.each([
    [[3], 3],
    [[5, 1, 3], 3],
    [[4, 1, 3, 2], 2.5],
  ])("median of %j is %d", (xs, m) => expect(median(xs)).toBe(m));

  it("fits a line exactly through collinear points", () => {
    const line = fitLine([[1, 12], [2, 14], [4, 18]]);
    expect(line.slope).toBeCloseTo(2, 10);
    expect(line.intercept).toBeCloseTo(10, 10);
  });

  type Points = Array<{ x: number; resources: number; programMs: number }>;
  const rounds = (p: Points, n = 3) => Array.from({ length: n }, () => p);

  it.each<[string, Points, boolean]>([
    // 1000 ms fixed + 10 ms a resource, 3 resources a pool.
    ["linear with a fixed cost", [1, 10, 50].map((p) => ({ x: p, resources: 90 + 3 * p, programMs: 1000 + 10 * (90 + 3 * p) })), false],
    // The first pool is dearer (warm-up), later ones cheaper: sublinear.
    ["sublinear", [{ x: 1, resources: 93, programMs: 1500 }, { x: 10, resources: 120, programMs: 2300 }, { x: 50, resources: 240, programMs: 3700 }], false],
    // Cost a resource grows with the number of resources: quadratic.
    ["quadratic", [1, 10, 50].map((p) => ({ x: p, resources: 90 + 3 * p, programMs: 500 + 0.1 * (90 + 3 * p) ** 2 })), true],
    // A few resources a step with jitter: large ratio, but within the noise floor.
    ["jitter on a small step", [{ x: 3, resources: 92, programMs: 1500 }, { x: 5, resources: 96, programMs: 1450 }, { x: 7, resources: 100, programMs: 1700 }], false],
  ])("%s: superlinear %s", (_, points, superlinear) => {
    expect(growth("s", rounds(points)).superlinear).toBe(superlinear);
  });

  const linear = [1, 10, 50].map((p) => ({ x: p, resources: 90 + 3 * p, programMs: 1000 + 10 * (90 + 3 * p) }));

  it("one round slowed at its largest case (a burst of load) cannot make linear growth superlinear", () => {
    const burst = linear.map((q) => (q.x === 50 ? { ...q, programMs: q.programMs * 3 } : q));
    const g = growth("s", [linear, burst, linear]);
    expect([g.superlinear, g.verdict, g.minRatio < 1.5, g.marginalRatio < 1.5]).toEqual([false, "linear", true, true]);
  });

  it("a machine slowed for a whole round slows every size alike: the ratio does not move", () => {
    const slow = linear.map((q) => ({ ...q, programMs: q.programMs * 2.5 }));
    expect(growth("s", [linear, slow, slow]).marginalRatio).toBeCloseTo(growth("s", [linear, linear, linear]).marginalRatio, 10);
  });

  it("fewer than three rounds give no verdict, and never fail the bench", () => {
    const quadratic = [1, 10, 50].map((p) => ({ x: p, resources: 90 + 3 * p, programMs: 500 + 0.1 * (90 + 3 * p) ** 2 }));
    expect([growth("s", [quadratic]).verdict, growth("s", [quadratic]).superlinear]).toEqual(["no verdict", false]);
    expect(growth("s", rounds(quadratic, MIN_VERDICT_ROUNDS)).verdict).toBe("superlinear");
  });

  it("never reports a negative ms per step or per resource, whatever the noise (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(fc.double({ min: 0.3, max: 3, noNaN: true }), { minLength: 3, maxLength: 3 }), { minLength: 1, maxLength: 5 }),
        (noise) => {
          const g = growth("s", noise.map((f) => linear.map((q, i) => ({ ...q, programMs: q.programMs * f[i] }))));
          return g.msPerStep >= 0 && g.msPerResource >= 0 && Number.isFinite(g.marginalRatio);
        },
      ),
    );
  });

  it("noise that slows cases at random, up to 2x, never makes linear growth superlinear (property)", () => {
    fc.assert(
      fc.property(fc.array(fc.array(fc.double({ min: 1, max: 2, noNaN: true }), { minLength: 3, maxLength: 3 }), { minLength: 3, maxLength: 7 }), (noise) => {
        // Each round's smallest case is slowed too, by its own factor: only the largest being slowed in every round by over 1.5x could trip it.
        const rs = noise.map((f) => linear.map((q, i) => ({ ...q, programMs: q.programMs * f[i] })));
        const g = growth("s", rs);
        return !g.superlinear || rs.every((r) => r[2].programMs / r[2].resources / (r[0].programMs / r[0].resources) > 1.5);
      }),
    );
  });

  it("ms per resource over the floor pairs each round with its own floor, and is never negative", () => {
    const c = benchCases(QUICK_MATRIX)[1];
    const row = summarize(c, [3000, 9000, 3100], [1, 2, 3].map(() => ({ resources: 101, importMs: 0, programMs: 0, totalMs: 0, maxRssKiB: 0 })));
    const floor = summarize(benchCases(QUICK_MATRIX)[0], [1000, 7000, 1100], [1, 2, 3].map(() => ({ resources: 1, importMs: 0, programMs: 0, totalMs: 0, maxRssKiB: 0 })));
    expect(overFloorMsPerResource(row, floor)).toBe(20);
    const fastCase = summarize(c, [900, 950, 990], [1, 2, 3].map(() => ({ resources: 101, importMs: 0, programMs: 0, totalMs: 0, maxRssKiB: 0 })));
    expect(overFloorMsPerResource(fastCase, floor)).toBe(0);
  });

  it("rotates the order of the cases each round", () => {
    expect([1, 2, 3, 4].map((r) => roundOrder(["a", "b", "c"], r).join(""))).toEqual(["abc", "bca", "cab", "abc"]);
  });
});

describe("replaceBetweenMarkers", () => {
  it("replaces only the named section", () => {
    const doc = "a\n<!-- begin:x -->\nold\n<!-- end:x -->\nb\n<!-- begin:y -->\nkeep\n<!-- end:y -->\n";
    expect(replaceBetweenMarkers(doc, "x", "new\n")).toBe("a\n<!-- begin:x -->\nnew\n<!-- end:x -->\nb\n<!-- begin:y -->\nkeep\n<!-- end:y -->\n");
  });

  it.each(["no markers", "<!-- end:x --><!-- begin:x -->", "<!-- begin:x --><!-- end:x --><!-- begin:x --><!-- end:x -->"])("refuses %j", (doc) => {
    expect(() => replaceBetweenMarkers(doc, "x", "")).toThrow("expected exactly one <!-- begin:x --> ... <!-- end:x --> pair");
  });
});
