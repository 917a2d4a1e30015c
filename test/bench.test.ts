/**
 * Pure parts of `npm run bench` (scripts/benchLib.ts): the case matrix and its stack configs, the
 * statistics and the superlinear check, the doc markers.
 */
import { parseConfig } from "../config";
import { MATRIX, QUICK_MATRIX, benchCases, caseConfig, fitLine, growth, median, replaceBetweenMarkers } from "../scripts/benchLib";
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

  it.each<[string, Array<{ x: number; resources: number; programMs: number }>, boolean]>([
    // 1000 ms fixed + 10 ms a resource, 3 resources a pool.
    ["linear with a fixed cost", [1, 10, 50].map((p) => ({ x: p, resources: 90 + 3 * p, programMs: 1000 + 10 * (90 + 3 * p) })), false],
    // The first pool is dearer (warm-up), later ones cheaper: sublinear.
    ["sublinear", [{ x: 1, resources: 93, programMs: 1500 }, { x: 10, resources: 120, programMs: 2300 }, { x: 50, resources: 240, programMs: 3700 }], false],
    // Cost a resource grows with the number of resources: quadratic.
    ["quadratic", [1, 10, 50].map((p) => ({ x: p, resources: 90 + 3 * p, programMs: 500 + 0.1 * (90 + 3 * p) ** 2 })), true],
    // A few resources a step with jitter: large ratio, but within the noise floor.
    ["jitter on a small step", [{ x: 3, resources: 92, programMs: 1500 }, { x: 5, resources: 96, programMs: 1450 }, { x: 7, resources: 100, programMs: 1700 }], false],
  ])("%s: superlinear %s", (_, points, superlinear) => {
    expect(growth("s", points).superlinear).toBe(superlinear);
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
