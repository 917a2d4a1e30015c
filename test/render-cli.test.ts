/**
 * `npm run render` as a user runs it, one process a stack, and cloud-init's own schema check of
 * every machine's user data. Slow tier: it starts node and cloud-init. What the render contains is
 * asserted in test/render.test.ts on the run's shared evaluation; here the command must write
 * exactly that, and refuse a bad stack file with a clear message and nothing written.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { VARIANTS, captured } from "./capture";

const ROOT = path.resolve(__dirname, "..");

/** Runs `npm run render` as a user would (one process a stack: the Pulumi runtime is process-global). */
function render(stack: string, extra: string[] = []): { status: number | null; stderr: string; files: Record<string, string> } {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), `render-${stack}-`));
  const r = spawnSync(process.execPath, ["-r", "@swc-node/register", path.join(ROOT, "scripts/render.ts"), stack, "--out", out, ...extra], {
    cwd: ROOT,
    encoding: "utf8",
  });
  const walk = (dir: string): string[] =>
    fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]));
  // A failed render removes the output directory: nothing stale stays behind.
  const files = Object.fromEntries((fs.existsSync(out) ? walk(out) : []).map((f) => [path.relative(out, f), fs.readFileSync(f, "utf8")]));
  fs.rmSync(out, { recursive: true, force: true });
  return { status: r.status, stderr: r.stderr, files };
}

const rendered: Record<string, Record<string, string>> = {};
beforeAll(() => {
  for (const stack of ["dev", "prod"]) {
    const r = render(stack);
    if (r.status !== 0) throw new Error(`render ${stack} failed: ${r.stderr}`);
    rendered[stack] = r.files;
  }
}, 120000);

describe.each(["dev", "prod"] as const)("npm run render -- %s", (stack) => {
  it("writes exactly what the program gives under the test mocks, deterministically", async () => {
    expect(rendered[stack]).toEqual((await captured(VARIANTS[stack])).files);
  });

  it("every user data passes cloud-init's own schema check", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cloud-config-"));
    const userData = Object.entries(rendered[stack]).filter(([k]) => k.startsWith("user-data/"));
    expect(userData.map(([k]) => k).filter((k) => k.includes("-pool-"))).toHaveLength(2);
    for (const [name, text] of userData) {
      const file = path.join(dir, path.basename(name));
      fs.writeFileSync(file, text);
      const r = spawnSync("cloud-init", ["schema", "--config-file", file], { encoding: "utf8" });
      if (r.error) throw new Error(`cloud-init is not installed (apt-get install cloud-init; npm run setup does): ${r.error.message}`);
      expect({ name, status: r.status, out: r.stdout + r.stderr }).toEqual({ name, status: 0, out: expect.stringContaining("Valid cloud-config") });
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe("npm run render with a bad stack file", () => {
  const withStackFile = (text: string) => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "stack-")), "Pulumi.bad.yaml");
    fs.writeFileSync(file, text);
    return { file, r: render("bad", ["--config", file]) };
  };

  it("fails with every problem and writes nothing", () => {
    const { r } = withStackFile("config:\n  aws:region: eu-west-1\n  kubeadm-ha:clusterName: Bad\n");
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(
      /Invalid stack config \(4 problems\):\n  - clusterName: "Bad" — .*\n  - network: \(not set\) — .*\n  - workerPools: \(not set\) — must be set.*\n  - apiLoadBalancer.allowedCidrs: \(not set\) — must be set/,
    );
    expect(r.files).toEqual({});
  });

  it("refuses a key in a misspelt namespace instead of rendering the default", () => {
    const stack = fs.readFileSync(path.join(ROOT, "Pulumi.prod.yaml"), "utf8").replace("kubeadm-ha:etcd:", "kubeadm_ha:etcd:");
    const { r } = withStackFile(stack);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(
      'Invalid stack config (1 problem):\n  - kubeadm_ha:etcd: {"topology":"external","nodeCount":3,"instanceType":"m7i.large"} — is in namespace kubeadm_ha, not kubeadm-ha, so the program never reads it; write it as kubeadm-ha:etcd\n',
    );
    expect(r.files).toEqual({});
  });

  it("names the file on a YAML syntax error", () => {
    const { file, r } = withStackFile("config:\n  aws:region: [eu-west-1\n");
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: not valid YAML: `));
  });
});
