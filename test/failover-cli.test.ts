/** `npm run failover` as a user runs it, in its own process. Slow tier: it starts node. */
import { spawnSync } from "child_process";
import * as path from "path";

const ROOT = path.resolve(__dirname, "..");

describe("npm run failover", () => {
  const run = (...args: string[]) => spawnSync(process.execPath, ["-r", "@swc-node/register", path.join(ROOT, "scripts/failover.ts"), ...args], { cwd: ROOT, encoding: "utf8" });

  it("prints the prod budget and exits 0", () => {
    const r = run("prod");
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
    expect(r.stdout).toContain("| etcd leader | 1.02 s | 2.12 s |");
    expect(r.stdout).toContain("| kube-controller-manager leader | 13 s | 23.8 s |");
  });

  it("refuses an unknown stack with the known ones", () => {
    const r = run("staging");
    expect({ status: r.status, stderr: r.stderr.trim() }).toEqual({ status: 2, stderr: `unknown stack "staging": no Pulumi.staging.yaml in ${ROOT} (stacks: dev, prod)` });
  });

  it("refuses a missing stack with the usage", () => {
    expect(run()).toMatchObject({ status: 2, stderr: "usage: npm run failover -- <stack> [--write]\nstacks: dev, prod\n" });
  });
});
