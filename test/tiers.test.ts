/**
 * The two test tiers (jest.unit.config.js): `npm run test:unit` runs every file that starts no
 * process, `npm test` runs all. A file that starts one belongs to the slow tier; the fast tier's
 * setup makes every process call throw (test/tier/noProcesses.ts).
 */
import * as fs from "fs";
import * as path from "path";
import { PROCESS_CALLS, guardedChildProcess } from "./tier/guard";

const ROOT = path.resolve(__dirname, "..");
// eslint-disable-next-line @typescript-eslint/no-require-imports
const unit = require("../jest.unit.config.js") as { SLOW_TESTS: string[]; testPathIgnorePatterns: string[]; setupFiles: string[] };
const files = fs.readdirSync(__dirname).filter((f) => f.endsWith(".test.ts")).map((f) => `/test/${f}`);
const slow = (f: string) => unit.SLOW_TESTS.some((p) => new RegExp(p).test(`${ROOT}${f}`));
/** Test sources and the helpers they use that start processes themselves. */
const startsProcesses = (f: string) => /from "(node:)?child_process"|require\("(node:)?child_process"\)|etcdHarness|measureVariant/.test(fs.readFileSync(path.join(ROOT, f), "utf8"));

describe("test tiers", () => {
  it("the fast tier leaves out exactly the slow files and guards against processes", () => {
    expect(unit.testPathIgnorePatterns).toEqual(["/node_modules/", ...unit.SLOW_TESTS]);
    expect(unit.setupFiles).toEqual(["<rootDir>/test/tier/noProcesses.ts"]);
  });

  it("every file that starts a process is in the slow tier", () => {
    // This file names the markers it looks for, so it is left out.
    expect(files.filter((f) => f !== "/test/tiers.test.ts" && startsProcesses(f) && !slow(f))).toEqual([]);
    expect(files.filter(startsProcesses).length).toBeGreaterThanOrEqual(unit.SLOW_TESTS.length);
  });

  it("every slow-tier entry names a file that exists", () => {
    for (const p of unit.SLOW_TESTS) expect({ p, files: files.filter((f) => new RegExp(p).test(`${ROOT}${f}`)).length }).not.toEqual({ p, files: 0 });
  });

  it("keeps more files in the fast tier than in the slow", () => {
    expect(files.filter((f) => !slow(f)).length).toBeGreaterThan(files.filter(slow).length);
  });

  it("in the fast tier every way of starting a process throws, naming the call", () => {
    const guarded = guardedChildProcess({ spawnSync: () => "real", other: 1 });
    expect(guarded.other).toBe(1);
    for (const call of PROCESS_CALLS)
      expect(() => (guarded[call] as (cmd: string) => unknown)("cloud-init")).toThrow(
        `npm run test:unit starts no process, but this test called child_process.${call}("cloud-init"): move it to a slow-tier file and list that file in SLOW_TESTS (jest.unit.config.js)`,
      );
    expect(PROCESS_CALLS).toEqual(["spawn", "spawnSync", "exec", "execSync", "execFile", "execFileSync", "fork"]);
  });
});

describe("mutation testing's test sets (scripts/mutation.ts)", () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { KILLERS, targets, testsFor } = require("../scripts/mutation") as typeof import("../scripts/mutation");

  it("covers config.ts, cloud-init/ and components/, file by file", () => {
    expect(targets()).toEqual(expect.arrayContaining(["config.ts", "cloud-init/kubeadm.ts", "cloud-init/render.ts", "components/controlPlane.ts"]));
    expect(targets().every((f) => /^(config\.ts|cloud-init\/\w+\.ts|components\/\w+\.ts)$/.test(f))).toBe(true);
    for (const f of Object.keys(KILLERS)) expect(targets()).toContain(f);
  });

  it("runs only fast-tier test files that exist", () => {
    for (const f of targets())
      for (const t of testsFor(f)) {
        expect({ f, t, exists: fs.existsSync(path.join(ROOT, t)) }).toEqual({ f, t, exists: true });
        expect({ f, t, slow: slow(`/${t}`) }).toEqual({ f, t, slow: false });
      }
  });

  it("a file without its own set gets the tests importing it and the golden files", () => {
    expect(testsFor("components/recovery.ts")).toEqual(["test/recovery.test.ts", "test/render.test.ts"]);
  });
});
