/**
 * Mutation testing, one source file at a time: `npm run test:mutation -- config.ts`,
 * `npm run test:mutation -- cloud-init/kubeadm.ts components/controlPlane.ts`, or with no file
 * every file of config.ts, cloud-init/ and components/ in turn (hours on 2 cores).
 *
 * Stryker runs, for each mutant, the fast-tier tests that cover it among those listed here for
 * its file: a test set per file, because nearly every test imports config.ts and jest's related
 * tests would run the whole tier for each of its hundreds of mutants. `--concurrency N` is passed
 * through (default 1; the machine is shared). Reports: reports/mutation/<file>.json.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";

const ROOT = path.resolve(__dirname, "..");

/**
 * The tests that pin each file's behaviour, chosen for cost as well: a test file that builds
 * components in a hook runs for every mutant it reaches. A file not listed gets the fast-tier
 * tests that import it directly and render.test.ts (the golden files).
 */
export const KILLERS: Record<string, string[]> = {
  "config.ts": ["config", "ec2", "readme"],
  "cloud-init/kubeadm.ts": ["kubeadm", "controlPlane"],
  "cloud-init/render.ts": ["cloudConfig", "scripts-selection", "etcdBackup", "bootstrapAssets"],
  "cloud-init/encryption.ts": ["encryption"],
  "components/controlPlane.ts": ["controlPlane"],
};

/** The source files mutation testing covers. */
export function targets(root = ROOT): string[] {
  const ts = (dir: string) => fs.readdirSync(path.join(root, dir)).filter((f) => f.endsWith(".ts")).sort().map((f) => `${dir}/${f}`);
  return ["config.ts", ...ts("cloud-init"), ...ts("components")];
}

/** The fast-tier test files run against `file`'s mutants. */
export function testsFor(file: string, root = ROOT): string[] {
  const slow: string[] = require(path.join(root, "jest.unit.config.js")).SLOW_TESTS;
  const fast = (t: string) => !slow.some((p) => new RegExp(p).test(`${root}/${t}`));
  const listed = KILLERS[file];
  if (listed) return listed.map((t) => `test/${t}.test.ts`).filter(fast);
  const base = path.basename(file, ".ts");
  const importers = fs
    .readdirSync(path.join(root, "test"))
    .filter((f) => f.endsWith(".test.ts") && fs.readFileSync(path.join(root, "test", f), "utf8").includes(`/${path.dirname(file)}/${base}"`))
    .map((f) => `test/${f}`);
  return [...new Set([...importers, "test/render.test.ts"])].filter(fast).sort();
}

function main(argv: string[]): number {
  const i = argv.indexOf("--concurrency");
  const concurrency = i >= 0 ? argv.splice(i, 2)[1] : "1";
  const files = argv.length ? argv : targets();
  const unknown = files.filter((f) => !targets().includes(f));
  if (unknown.length) {
    console.error(`not a file mutation testing covers: ${unknown.join(", ")} (config.ts, cloud-init/*.ts, components/*.ts)`);
    return 2;
  }
  let status = 0;
  for (const file of files) {
    const tests = testsFor(file);
    console.log(`\n== ${file}: ${tests.join(", ")}`);
    const report = path.join("reports", "mutation", `${file.replace(/\//g, "_")}.json`);
    const r = spawnSync("npx", ["stryker", "run", "stryker.config.mjs", "--mutate", file, "--concurrency", concurrency], {
      cwd: ROOT,
      stdio: "inherit",
      env: { ...process.env, MUTATION_TESTS: tests.join(","), MUTATION_REPORT: report },
    });
    if (r.status !== 0) status = r.status ?? 1;
  }
  return status;
}

if (require.main === module) process.exitCode = main(process.argv.slice(2));
