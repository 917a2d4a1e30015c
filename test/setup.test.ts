/**
 * The README's fresh-machine block is exactly two commands, `npm run setup` and `npm test`; CI runs
 * the same ones; and scripts/setup.sh does what the README says, run for real against stub
 * `apt-get`, `sudo`, `id` and `npm` on a PATH that holds only what each case puts there.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

const ROOT = path.resolve(__dirname, "..");
const README = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
const SETUP = path.join(ROOT, "scripts", "setup.sh");

/** The commands of the first ```sh block after `heading`, comments and blank lines dropped. */
export function shellBlockAfter(markdown: string, heading: string): string[] {
  const at = markdown.indexOf(`\n${heading}\n`);
  if (at < 0) throw new Error(`no heading ${heading}`);
  const m = markdown.slice(at).match(/```sh\n([\s\S]*?)```/);
  if (!m) throw new Error(`no sh block after ${heading}`);
  return m[1]
    .split("\n")
    .map((l) => l.replace(/(^|\s)#.*$/, "").trim())
    .filter((l) => l !== "");
}

describe("the README's fresh-machine block", () => {
  it("is exactly two commands: set up (which renders dev), then every test", () => {
    expect(shellBlockAfter(README, "## On a fresh machine")).toEqual(["npm run setup", "npm test"]);
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8"));
    expect(pkg.scripts.setup).toBe("bash scripts/setup.sh");
    expect(pkg.scripts.test).toBe("tsc --noEmit && jest");
    // The main job is the set-up's last default step.
    expect(fs.readFileSync(SETUP, "utf8")).toMatch(/steps=\(system npm binaries aws render\)\n/);
    expect(fs.readFileSync(SETUP, "utf8")).toMatch(/step_render\(\) \{\n {2}npm run --silent render -- dev\n\}/);
  });

  it("is what CI runs, and CI installs nothing by itself", () => {
    const ci = fs.readFileSync(path.join(ROOT, ".ci", "run"), "utf8");
    const code = ci.split("\n").filter((l) => !/^\s*#/.test(l)).join("\n");
    expect(code).toContain("npm run --silent setup >&2");
    expect(code).toContain('npm test -- --json --outputFile="$report"');
    expect(code.indexOf("npm run --silent setup")).toBeLessThan(code.indexOf("npm test"));
    for (const installer of [/apt-get/, /npm ci/, /\bpip\b/, /build\.sh/, /venv/]) expect({ installer: String(installer), inCi: installer.test(code) }).toEqual({ installer: String(installer), inCi: false });
  });

  it("scripts/setup.sh passes shellcheck", () => {
    const r = spawnSync("shellcheck", [SETUP], { encoding: "utf8" });
    if (r.error) throw new Error(`shellcheck is not installed (npm run setup installs it): ${r.error.message}`);
    expect(r.stdout + r.stderr).toBe("");
    expect(r.status).toBe(0);
  });
});

/** A directory of executables: stubs written from text, real tools linked by name. */
function binDir(stubs: Record<string, string>, real: string[] = []): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "setup-bin-"));
  for (const [name, body] of Object.entries(stubs)) fs.writeFileSync(path.join(dir, name), `#!/bin/bash\n${body}\n`, { mode: 0o755 });
  for (const name of real) {
    const found = spawnSync("bash", ["-c", `command -v ${name}`], { encoding: "utf8" }).stdout.trim();
    if (!found) throw new Error(`${name} is not installed`);
    fs.symlinkSync(found, path.join(dir, name));
  }
  return dir;
}

/** Runs scripts/setup.sh (from `repo`) with PATH = `bin` only. */
function setup(bin: string, steps: string[], repo = ROOT) {
  const r = spawnSync("/bin/bash", [path.join(repo, "scripts", "setup.sh"), ...steps], { encoding: "utf8", env: { PATH: bin, HOME: os.tmpdir() } });
  return { status: r.status, stderr: r.stderr, stdout: r.stdout };
}

const record = (log: string, name: string) => `echo "${name} $*" >> ${log}`;
// What the script itself runs besides the tools it checks for.
const BASE = ["dirname", "env"];
const ALL_TOOLS = ["cloud-init", "shellcheck", "openssl", "systemd-analyze", "haproxy", "ip", "unshare"];

describe("npm run setup -- system", () => {
  let log: string;
  beforeEach(() => {
    log = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "setup-log-")), "calls");
    fs.writeFileSync(log, "");
  });
  const calls = () => fs.readFileSync(log, "utf8").trim().split("\n").filter(Boolean);

  it("without root or sudo: names the missing tools and the Debian packages to install, and fails", () => {
    const bin = binDir({ id: "echo 1000", "apt-get": record(log, "apt-get") }, [...BASE, "openssl"]);
    const r = setup(bin, ["system"]);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(
      "[setup] missing cloud-init shellcheck systemd-analyze haproxy ip unshare python3; install the Debian packages as root, then run npm run setup again:\n" +
        "    apt-get update && apt-get install -y --no-install-recommends cloud-init shellcheck systemd haproxy iproute2 util-linux python3\n",
    );
    expect(calls()).toEqual([]);
  });

  it("as root: installs exactly the missing packages with apt-get", () => {
    const bin = binDir({ id: "echo 0", "apt-get": record(log, "apt-get"), python3: "exit 0" }, [...BASE, "openssl", "shellcheck"]);
    const r = setup(bin, ["system"]);
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: expect.stringContaining("installing Debian packages: cloud-init systemd haproxy iproute2 util-linux\n") });
    expect(calls()).toEqual(["apt-get update -qq", "apt-get install -y -qq --no-install-recommends cloud-init systemd haproxy iproute2 util-linux"]);
  });

  it("with passwordless sudo: installs through sudo; Python without ensurepip gets python3-venv", () => {
    const bin = binDir(
      {
        id: "echo 1000",
        sudo: `${record(log, "sudo")}\n[ "$1" = -n ] && shift\n[ "$1" = true ] && exit 0\nexec "$@"`,
        "apt-get": record(log, "apt-get"),
        // Debian's python3 before python3-venv: `import ensurepip` fails.
        python3: '[ "$1" = -c ] && exit 1; exit 0',
      },
      [...BASE, ...ALL_TOOLS],
    );
    const r = setup(bin, ["system"]);
    expect(r.status).toBe(0);
    expect(calls()).toEqual([
      "sudo -n true",
      "sudo -n env DEBIAN_FRONTEND=noninteractive apt-get update -qq",
      "apt-get update -qq",
      "sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv",
      "apt-get install -y -qq --no-install-recommends python3-venv",
    ]);
  });

  it("with everything present: installs nothing", () => {
    const bin = binDir({ id: "echo 1000", "apt-get": record(log, "apt-get"), python3: "exit 0" }, [...BASE, ...ALL_TOOLS]);
    const r = setup(bin, ["system"]);
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: expect.stringMatching(/^\[setup\] system tools: all present\n\[setup\] done in \d+ s\n$/) });
    expect(calls()).toEqual([]);
  });

  it("refuses an unknown step before doing anything", () => {
    const bin = binDir({ id: "echo 0", "apt-get": record(log, "apt-get") }, BASE);
    expect(setup(bin, ["system", "sytem"])).toEqual({ status: 1, stdout: "", stderr: "[setup] unknown step sytem (steps: system npm binaries aws render)\n" });
    expect(calls()).toEqual([]);
  });
});

describe("npm run setup -- npm", () => {
  it("runs npm ci once, again only when package-lock.json or Node changes", () => {
    const repo = fs.mkdtempSync(path.join(os.tmpdir(), "setup-repo-"));
    fs.mkdirSync(path.join(repo, "scripts"));
    fs.copyFileSync(SETUP, path.join(repo, "scripts", "setup.sh"));
    fs.writeFileSync(path.join(repo, "package-lock.json"), '{"lockfileVersion": 3}\n');
    const log = path.join(repo, "calls");
    const npm = `${record(log, "npm")}\n[ "$1" = ci ] && rm -rf node_modules && mkdir node_modules\nexit 0`;
    const nodeVersion = (v: string) => `if [ "$1" = --version ]; then echo v${v}; else echo ${v.split(".")[0]}; fi`;
    const run = (v = "20.20.2") => setup(binDir({ npm, node: nodeVersion(v) }, [...BASE, "sha256sum", "cut", "cat", "rm", "mkdir"]), ["npm"], repo);
    const npmCalls = () => fs.readFileSync(log, "utf8").trim().split("\n").filter((l) => l.startsWith("npm ci"));

    expect(run().status).toBe(0);
    expect(npmCalls()).toEqual(["npm ci --no-audit --no-fund"]);
    const again = run();
    expect(again.status).toBe(0);
    expect(again.stderr).toContain("npm dependencies: node_modules matches package-lock.json");
    expect(npmCalls()).toHaveLength(1);

    fs.writeFileSync(path.join(repo, "package-lock.json"), '{"lockfileVersion": 3, "packages": {}}\n');
    run();
    expect(npmCalls()).toHaveLength(2);
    run("22.11.0");
    expect(npmCalls()).toHaveLength(3);
    const old = run("18.20.0");
    expect({ status: old.status, stderr: old.stderr }).toEqual({ status: 1, stderr: "[setup] node v18.20.0 is unsupported: kubeadm-ha needs Node.js 20 or 22\n" });
  });
});
