/**
 * One `npm run bench` run, in its own process because Pulumi's runtime is process-global: loads the
 * Pulumi packages, installs the render's mocks with the case's stack config, then either evaluates
 * the real program (index.ts, as `pulumi preview` would) or, for the floor, registers one resource.
 * Prints one JSON line (RunResult) on stdout.
 *
 * usage: node -r @swc-node/register scripts/benchChild.ts <case JSON>
 */
import { performance } from "perf_hooks";
import * as path from "path";
import type * as Pulumi from "@pulumi/pulumi";
import type { BenchCase, RunResult } from "./benchLib";

async function main(): Promise<void> {
  const c = JSON.parse(process.argv[2]) as BenchCase;
  /* eslint-disable @typescript-eslint/no-require-imports */
  const pulumi = require("@pulumi/pulumi") as typeof import("@pulumi/pulumi");
  const aws = require("@pulumi/aws") as typeof import("@pulumi/aws");
  require("@pulumi/tls");
  require("@pulumi/kubernetes");
  require("@pulumi/random");
  const { setupMocks, settle } = require("../test/mocks") as typeof import("../test/mocks");
  const { caseConfig } = require("./benchLib") as typeof import("./benchLib");
  const imported = performance.now();

  const regs = await setupMocks({ stack: "bench", config: c.kind === "floor" ? { "aws:region": "eu-west-1" } : caseConfig(c), region: "eu-west-1" });
  if (c.kind === "floor") {
    const vpc = new aws.ec2.Vpc("floor", { cidrBlock: "10.0.0.0/16" });
    await new Promise((resolve) => vpc.id.apply(resolve));
  } else {
    const program = require(path.resolve(__dirname, "..", "index")) as Record<string, unknown>;
    // Resolve every output as the engine does at the end of a preview, nested Outputs included.
    await Promise.all(Object.values(program).map((o) => new Promise((resolve) => (pulumi.output(o as Pulumi.Input<unknown>) as Pulumi.Output<unknown>).apply(resolve))));
  }
  await settle();
  /* eslint-enable @typescript-eslint/no-require-imports */
  const done = performance.now();
  const result: RunResult = {
    resources: regs.length,
    importMs: imported,
    programMs: done - imported,
    totalMs: done,
    maxRssKiB: process.resourceUsage().maxRSS,
  };
  process.stdout.write(JSON.stringify(result) + "\n");
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.stack ?? e.message : e);
  process.exit(1);
});
