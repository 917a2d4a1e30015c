/**
 * `npm run bench [-- --runs N] [--quick] [--write]`: what evaluating the program costs as the
 * cluster grows. Each run is a fresh `node` (Pulumi's runtime is process-global) evaluating index.ts
 * under the render's mocks (scripts/benchChild.ts), for control plane 3/5/7 x worker pools 1/10/50 x
 * stacked/external etcd, plus a floor that only loads the Pulumi packages and registers one
 * resource. Reports resources, median wall time, program time and peak RSS per case, checks that
 * cost per added resource stays flat as pools and masters grow, and with --write puts the tables,
 * the user data sizes and the machine into docs/performance.md.
 */
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
  BenchCase,
  CaseSummary,
  MATRIX,
  QUICK_MATRIX,
  RunResult,
  benchCases,
  benchTable,
  growthSeries,
  growthTable,
  MIN_VERDICT_ROUNDS,
  replaceBetweenMarkers,
  roundOrder,
  summarize,
} from "./benchLib";
import { SIZE_VARIANTS, USER_DATA_BUDGET, measureVariant, sizeTable } from "./userDataSizes";

const ROOT = path.resolve(__dirname, "..");
const DOC = path.join(ROOT, "docs", "performance.md");
const USAGE = "usage: npm run bench [-- --runs N (default 3)] [--quick] [--write]";

function runChild(c: BenchCase): Promise<{ wallMs: number; result: RunResult }> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const p = spawn(process.execPath, ["-r", "@swc-node/register", path.join(__dirname, "benchChild.ts"), JSON.stringify(c)], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (err += d));
    p.on("error", reject);
    p.on("close", (code) => {
      const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
      if (code !== 0) return reject(new Error(`${c.id}: child exited ${code}: ${err.trim()}`));
      try {
        resolve({ wallMs, result: JSON.parse(out.trim().split("\n").pop()!) as RunResult });
      } catch {
        reject(new Error(`${c.id}: no result line from the child: ${out}${err}`));
      }
    });
  });
}

export function machine(): string {
  const cpus = os.cpus();
  return `${cpus[0]?.model.trim() ?? "unknown CPU"}, ${cpus.length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${os.platform()} ${os.release()}`;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  let runs = 3;
  let quick = false;
  let write = false;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--runs") {
      runs = Number(argv[++i]);
      if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs needs a whole number of at least 1\n${USAGE}`);
    } else if (argv[i] === "--quick") quick = true;
    else if (argv[i] === "--write") write = true;
    else throw new Error(`unknown argument ${argv[i]}\n${USAGE}`);
  }
  const cases = benchCases(quick ? QUICK_MATRIX : MATRIX);
  const started = Date.now();
  const wall = new Map<string, number[]>(cases.map((c) => [c.id, []]));
  const results = new Map<string, RunResult[]>(cases.map((c) => [c.id, []]));
  // Round-robin over the cases, so a burst of background load spreads over all of them instead of
  // skewing one; each round in a rotated order, and the growth check compares sizes within a round.
  for (let round = 1; round <= runs; round++) {
    for (const c of roundOrder(cases, round)) {
      const r = await runChild(c);
      wall.get(c.id)!.push(r.wallMs);
      results.get(c.id)!.push(r.result);
    }
    console.error(`round ${round}/${runs} done (${((Date.now() - started) / 1000).toFixed(0)} s)`);
  }
  const rows: CaseSummary[] = cases.map((c) => summarize(c, wall.get(c.id)!, results.get(c.id)!));
  const growths = growthSeries(rows);
  const sizes = SIZE_VARIANTS.flatMap((v) => measureVariant(ROOT, v));
  const elapsed = (Date.now() - started) / 1000;

  const bench = benchTable(rows);
  const growthMd = growthTable(growths);
  const sizeMd = sizeTable(sizes);
  console.log(bench + "\n\n" + growthMd + "\n\n" + sizeMd);
  const superlinear = growths.filter((g) => g.superlinear);
  for (const g of superlinear)
    console.log(`WARNING superlinear: ${g.series}: the largest case costs ${g.minRatio.toFixed(2)}x to ${g.marginalRatio.toFixed(2)}x (lowest round, median) the smallest per resource in every round`);
  if (runs < MIN_VERDICT_ROUNDS) console.log(`no growth verdict: ${runs} run(s); the verdict needs ${MIN_VERDICT_ROUNDS} rounds (--runs ${MIN_VERDICT_ROUNDS})`);
  const over = sizes.filter((s) => s.gzipBytes > USER_DATA_BUDGET);
  for (const s of over) console.log(`WARNING user data: ${s.variant} ${s.node} is ${s.gzipBytes} bytes gzipped, over the ${USER_DATA_BUDGET}-byte budget`);
  console.log(`\n${cases.length} cases x ${runs} runs in ${elapsed.toFixed(0)} s on ${machine()}`);

  if (write) {
    const stamp = `Measured ${new Date().toISOString().slice(0, 10)} on ${machine()}; \`npm run bench -- ${quick ? "--quick " : ""}--runs ${runs} --write\`, ${elapsed.toFixed(0)} s.`;
    let doc = fs.readFileSync(DOC, "utf8");
    doc = replaceBetweenMarkers(doc, "bench", `${stamp}\n\n${bench}\n\n${growthMd}`);
    doc = replaceBetweenMarkers(doc, "user-data", `Measured ${new Date().toISOString().slice(0, 10)} from the renders of this commit.\n\n${sizeMd}`);
    fs.writeFileSync(DOC, doc);
    console.log(`updated ${path.relative(process.cwd(), DOC)}`);
  }
  if (superlinear.length || over.length) process.exitCode = 1;
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
