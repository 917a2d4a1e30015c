/**
 * The rollout (day2/rollout.ts) against SSM Run Command mocked with aws-sdk-client-mock
 * (test/ssmFleet.ts): which machine is asked what, in which order, that a step that fails stops
 * everything after it, and what SSM actually runs (the command's shell lines, run for real).
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { SSMClient } from "@aws-sdk/client-ssm";
import {
  ACTION_TIMEOUT_SECONDS,
  MachineSpec,
  RolloutError,
  RolloutMachine,
  ScriptSet,
  addonsSteps,
  commandLines,
  etcdManifestSteps,
  gateSteps,
  runSteps,
  scaleInSteps,
  shellQuote,
} from "../day2/rollout";
import { SsmFleet, fakeClock } from "./ssmFleet";

const master = (index: number, instanceId = `i-master${index}`): RolloutMachine => ({ role: "control-plane", index, name: `ip-10-0-${index}-10.eu-west-1.compute.internal`, instanceId });
const member = (index: number, instanceId = `i-etcd${index}`): RolloutMachine => ({ role: "etcd", index, name: `ip-10-0-${index}-20.eu-west-1.compute.internal`, instanceId });
const SPEC: MachineSpec = { ami: "ami-0123456789abcdef0", instanceType: "m7i.large", rootVolumeGiB: 50, userDataSha: "u1", kubeadmSha: "k1", kubernetesVersion: "1.35.0" };
const SCRIPTS: ScriptSet = { bucket: "prod-bootstrap-0123", prefix: "bootstrap/", files: { "day2.sh": "a".repeat(64), "etcdctl.sh": "b".repeat(64), "lib.sh": "c".repeat(64) } };
const H = `health --wait ${ACTION_TIMEOUT_SECONDS.health}`;
const show = (steps: ReturnType<typeof gateSteps>) => steps.map((s) => `${s.machine.role === "etcd" ? "etcd" : "master"}-${s.machine.index} ${[s.action, ...s.args].join(" ")}`);

describe("each machine's gate", () => {
  it.each([
    ["a machine Pulumi just launched: health, passing while its cluster is still being created", master(1), undefined, SPEC, [`master-1 ${H} --create`]],
    ["master 0 whose kubeadm configuration moved: upgrade --first (kubeadm upgrade apply), then health", master(0), SPEC, { ...SPEC, userDataSha: "u2", kubeadmSha: "k2", kubernetesVersion: "1.35.4" }, ["master-0 upgrade --first", `master-0 ${H}`]],
    ["another master: upgrade (kubeadm upgrade node), then health", master(2), SPEC, { ...SPEC, userDataSha: "u2", kubeadmSha: "k2", kubernetesVersion: "1.35.4" }, ["master-2 upgrade", `master-2 ${H}`]],
    ["a master whose configuration moved without a new user data (leader election lives in master 0's)", master(1), SPEC, { ...SPEC, kubeadmSha: "k2" }, ["master-1 upgrade", `master-1 ${H}`]],
    ["new user data, nothing for kubeadm: sync, then health", member(1), SPEC, { ...SPEC, userDataSha: "u2" }, ["etcd-1 sync", `etcd-1 ${H}`]],
    ["a new instance type (EC2 stopped and started it): health", master(1), SPEC, { ...SPEC, instanceType: "m7i.xlarge" }, [`master-1 ${H}`]],
    ["a larger volume: health", member(0), SPEC, { ...SPEC, rootVolumeGiB: 80 }, [`etcd-0 ${H}`]],
    ["nothing changed: nothing", master(1), SPEC, SPEC, []],
  ] as const)("%s", (_, machine, old, next, want) => {
    expect(show(gateSteps(machine, old && { ...old, instanceId: machine.instanceId }, next))).toEqual(want);
  });

  it("a replaced machine (a new AMI): health first, since its successor must have joined; a master whose configuration moved then upgrades", () => {
    const replaced = master(0, "i-new");
    expect(show(gateSteps(replaced, { ...SPEC, instanceId: "i-old" }, { ...SPEC, ami: "ami-0fedcba9876543210", userDataSha: "u2" }))).toEqual([`master-0 ${H}`]);
    expect(show(gateSteps(replaced, { ...SPEC, instanceId: "i-old" }, { ...SPEC, ami: "ami-0fedcba9876543210", kubeadmSha: "k2" }))).toEqual([`master-0 ${H}`, "master-0 upgrade --first", `master-0 ${H}`]);
  });
});

describe("cluster-wide steps", () => {
  it("scale-in 5 -> 3 masters: each leaves, highest first, between two health checks of master 0", () => {
    const olds = [0, 1, 2, 3, 4].map((i) => master(i));
    expect(show(scaleInSteps(olds, olds.slice(0, 3)))).toEqual([`master-0 ${H}`, "master-4 leave", `master-0 ${H}`, `master-0 ${H}`, "master-3 leave", `master-0 ${H}`]);
  });

  it("scale-in of masters and external members together: the masters first, then the members around member 0; nothing on create", () => {
    const olds = [master(0), master(1), master(2), master(3), master(4), ...[0, 1, 2, 3, 4].map((i) => member(i))];
    const news = [master(0), master(1), master(2), ...[0, 1, 2].map((i) => member(i))];
    expect(show(scaleInSteps(olds, news)).filter((s) => s.includes("leave"))).toEqual(["master-4 leave", "master-3 leave", "etcd-4 leave", "etcd-3 leave"]);
    expect(show(scaleInSteps(olds, news))[6]).toBe(`etcd-0 ${H}`);
    expect(scaleInSteps(undefined, news)).toEqual([]);
    expect(() => scaleInSteps([member(0)], [])).toThrow("scale-in: no etcd machine would remain");
  });

  it("external etcd's pods: each member whose pod changed, in index order, each followed by its health; members new in this run skipped", () => {
    const m = (i: number, sha: string) => ({ ...member(i), manifestSha: sha });
    expect(show(etcdManifestSteps([m(0, "a"), m(1, "a"), m(2, "a")], [m(2, "b"), m(0, "b"), m(1, "a"), m(3, "b")]))).toEqual(["etcd-0 etcd-manifest", `etcd-0 ${H}`, "etcd-2 etcd-manifest", `etcd-2 ${H}`]);
    expect(etcdManifestSteps(undefined, [m(0, "b")])).toEqual([]);
  });

  it("the add-ons of master 0 (installer nodes): only when their files changed, after master 0's health", () => {
    expect(show(addonsSteps({ addonsSha: "a" }, { addonsSha: "b", master: master(0) }))).toEqual([`master-0 ${H}`, "master-0 addons"]);
    expect(addonsSteps({ addonsSha: "a" }, { addonsSha: "a", master: master(0) })).toEqual([]);
    expect(addonsSteps(undefined, { addonsSha: "a", master: master(0) })).toEqual([]);
  });
});

describe("runSteps over SSM", () => {
  let fleet: SsmFleet;
  const ssm = new SSMClient({ region: "eu-west-1", credentials: { accessKeyId: "test", secretAccessKey: "test" } });
  beforeEach(() => {
    fleet = new SsmFleet();
  });
  afterEach(() => fleet.restore());
  const run = (steps: Parameters<typeof runSteps>[0], clock = fakeClock()) => runSteps(steps, { ssm, region: "eu-west-1", scripts: SCRIPTS, pollMs: 5000, now: clock.now, sleep: clock.sleep });

  it("runs each step to completion before the next, waiting out a machine not yet reporting, a refused first send, a missing invocation and a command in progress", async () => {
    fleet.offlinePolls["i-etcd1"] = 2;
    fleet.notReadyForCommands["i-etcd1"] = 1;
    fleet.outcome = (id, r) => (id === "i-etcd1" && r.startsWith("etcd-manifest") ? { inProgressPolls: 3 } : {});
    const m = (i: number, sha: string) => ({ ...member(i), manifestSha: sha });
    const steps = etcdManifestSteps([0, 1, 2].map((i) => m(i, "a")), [0, 1, 2].map((i) => m(i, "b")));
    const results = await run(steps);
    expect(results.map((r) => r.status)).toEqual(Array(6).fill("Success"));
    expect(fleet.runs()).toEqual(["i-etcd0 etcd-manifest", `i-etcd0 ${H}`, "i-etcd1 etcd-manifest", `i-etcd1 ${H}`, "i-etcd2 etcd-manifest", `i-etcd2 ${H}`]);
    // Each command may run as long as its action needs on the machine.
    expect(fleet.sent.map((s) => s.executionTimeout)).toEqual(["900", "1800", "900", "1800", "900", "1800"]);
  });

  it("machine N+1 is never touched while machine N is unhealthy: the rollout stops at the failed gate with the machine, the step, the output and what to do", async () => {
    fleet.outcome = (id, r) => (id === "i-etcd1" && r.startsWith("health") ? { exitCode: 20, stderr: "2026-01-01T00:00:00+0000 kubeadm-ha[day2]: ERROR: not healthy after 1800s: etcd is not healthy: https://10.0.32.20:2379 is unhealthy\n" } : {});
    const m = (i: number, sha: string) => ({ ...member(i), manifestSha: sha });
    const steps = etcdManifestSteps([0, 1, 2].map((i) => m(i, "a")), [0, 1, 2].map((i) => m(i, "b")));
    const error = await run(steps).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RolloutError);
    expect((error as Error).message).toBe(
      `rollout stopped at etcd member 1 (ip-10-0-1-20.eu-west-1.compute.internal, i-etcd1), step 4 of 6 (day2.sh ${H}): Failed, exit 20:\n` +
        "2026-01-01T00:00:00+0000 kubeadm-ha[day2]: ERROR: not healthy after 1800s: etcd is not healthy: https://10.0.32.20:2379 is unhealthy\n" +
        ". Nothing after it was started; the 3 steps before it completed. Fix the cause (its whole output: aws ssm get-command-invocation --region eu-west-1 --command-id cmd-4 --instance-id i-etcd1), then run pulumi up again: machines already done are skipped (README: Upgrading).",
    );
    expect(fleet.runs()).toEqual(["i-etcd0 etcd-manifest", `i-etcd0 ${H}`, "i-etcd1 etcd-manifest", `i-etcd1 ${H}`]);
    expect(fleet.sent.some((s) => s.instanceId === "i-etcd2")).toBe(false);
  });

  it("scale-in: a leave that etcd refuses stops before the next machine leaves", async () => {
    fleet.outcome = (id, r) => (id === "i-master4" && r === "leave" ? { exitCode: 22, stderr: "another etcd member is unhealthy: not removing this one (nothing changed)" } : {});
    const olds = [0, 1, 2, 3, 4].map((i) => master(i));
    await expect(run(scaleInSteps(olds, olds.slice(0, 3)))).rejects.toThrow(/^rollout stopped at master 4 .*, step 2 of 6 \(day2\.sh leave\): Failed, exit 22:\nanother etcd member is unhealthy/);
    expect(fleet.runs()).toEqual([`i-master0 ${H}`, "i-master4 leave"]);
  });

  it("a machine that never reports to SSM stops the rollout after the online timeout, before any command", async () => {
    fleet.offlinePolls["i-master1"] = 1e9;
    const clock = fakeClock();
    await expect(run(gateSteps(master(1), undefined, SPEC), clock)).rejects.toThrow(
      /^rollout stopped at master 1 \(.*, i-master1\), step 1 of 1 \(day2\.sh health --wait 1800 --create\): the machine did not report to SSM within 20 min \(last: PingStatus ConnectionLost\); check that it runs and its SSM agent can reach the SSM endpoints\. Nothing after it was started\. Fix the cause \(the machine: aws ssm start-session --region eu-west-1 --target i-master1\)/,
    );
    expect(fleet.sent).toEqual([]);
    expect(clock.elapsed()).toBe(20 * 60_000);
  });

  it("a command SSM times out is a failure too", async () => {
    fleet.outcome = () => ({ status: "TimedOut", exitCode: -1 });
    await expect(run(gateSteps(master(0), { ...SPEC, instanceId: "i-master0" }, { ...SPEC, instanceType: "m7i.xlarge" }))).rejects.toThrow(/step 1 of 1 \(day2\.sh health --wait 1800\): TimedOut, exit -1\./);
  });
});

describe("what SSM runs", () => {
  it("fetches day2.sh and what it sources by hash from the bootstrap bucket, then runs the step, every word quoted", () => {
    expect(commandLines({ machine: master(0), action: "upgrade", args: ["--first"] }, SCRIPTS, "eu-west-1")).toEqual([
      "set -eu",
      'PATH="$PATH:/snap/bin"',
      "d=$(mktemp -d /run/kubeadm-ha-day2.XXXXXX)",
      "trap 'rm -rf \"$d\"' EXIT",
      "fetch() {",
      "  if ! aws s3api get-object --region 'eu-west-1' --bucket 'prod-bootstrap-0123' --key \"$1\" \"$d/$3\" >/dev/null; then echo \"kubeadm-ha: could not fetch $3 (s3://prod-bootstrap-0123/$1)\" >&2; exit 14; fi",
      '  if [ "$(sha256sum "$d/$3" | cut -d" " -f1)" != "$2" ]; then echo "kubeadm-ha: $3 is not the content the rollout pins ($2): refusing to run it" >&2; exit 14; fi',
      "}",
      `fetch 'bootstrap/${"a".repeat(64)}' '${"a".repeat(64)}' 'day2.sh'`,
      `fetch 'bootstrap/${"b".repeat(64)}' '${"b".repeat(64)}' 'etcdctl.sh'`,
      `fetch 'bootstrap/${"c".repeat(64)}' '${"c".repeat(64)}' 'lib.sh'`,
      `bash "$d/day2.sh" 'upgrade' '--first'`,
    ]);
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
    expect(() => commandLines({ machine: master(0), action: "sync", args: [] }, { ...SCRIPTS, files: { "day2.sh": "a".repeat(64) } }, "eu-west-1")).toThrow("commandLines: scripts.files has no lib.sh");
  });

  describe("run for real by /bin/sh (dash, as AWS-RunShellScript), with aws a stub serving a directory as the bucket", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kubeadm-ha-ssm-"));
    const bucket = path.join(dir, "bucket");
    const bin = path.join(dir, "bin");
    afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
    const sha = (s: string) => require("crypto").createHash("sha256").update(s).digest("hex") as string;
    const put = (content: string) => {
      fs.mkdirSync(path.join(bucket, "bootstrap"), { recursive: true });
      fs.writeFileSync(path.join(bucket, "bootstrap", sha(content)), content);
      return sha(content);
    };
    const day2 = '#!/usr/bin/env bash\nsource "${BASH_SOURCE[0]%/*}/lib.sh"\necho "day2 ran: $* (lib: $LIB)"\n';
    const lib = "LIB=fetched\n";
    const files = { "day2.sh": put(day2), "lib.sh": put(lib) };
    fs.mkdirSync(bin, { recursive: true });
    fs.copyFileSync(path.join(__dirname, "stubs/aws-s3api.sh"), path.join(bin, "aws"));
    fs.copyFileSync(path.join(__dirname, "stubs/stub-lib.sh"), path.join(bin, "stub-lib.sh"));
    fs.chmodSync(path.join(bin, "aws"), 0o755);
    fs.mkdirSync(path.join(dir, "state"));
    const sh = (lines: string[]) =>
      spawnSync("/bin/sh", ["-c", lines.join("\n").replace("/run/kubeadm-ha-day2.XXXXXX", path.join(dir, "work.XXXXXX"))], {
        encoding: "utf8",
        env: { PATH: `${bin}:/usr/bin:/bin`, STUB_STATE: path.join(dir, "state"), STUB_BUCKET_DIR: bucket },
      });

    it("runs the fetched day2.sh beside the fetched lib.sh, with the step's arguments, and cleans up", () => {
      const r = sh(commandLines({ machine: master(1), action: "health", args: ["--wait", "60"] }, { bucket: "b", prefix: "bootstrap/", files }, "eu-west-1"));
      expect([r.status, r.stdout, r.stderr]).toEqual([0, "day2 ran: health --wait 60 (lib: fetched)\n", ""]);
      expect(fs.readdirSync(dir).filter((f) => f.startsWith("work."))).toEqual([]);
    });

    it("refuses an object whose content is not the pinned one, and a missing one, with exit 14, running nothing", () => {
      fs.writeFileSync(path.join(bucket, "bootstrap", files["day2.sh"]), day2 + "echo tampered\n");
      const r = sh(commandLines({ machine: master(1), action: "sync", args: [] }, { bucket: "b", prefix: "bootstrap/", files }, "eu-west-1"));
      expect([r.status, r.stdout, r.stderr]).toEqual([14, "", `kubeadm-ha: day2.sh is not the content the rollout pins (${files["day2.sh"]}): refusing to run it\n`]);
      fs.writeFileSync(path.join(bucket, "bootstrap", files["day2.sh"]), day2);
      const missing = sh(commandLines({ machine: master(1), action: "sync", args: [] }, { bucket: "b", prefix: "bootstrap/", files: { ...files, "lib.sh": "d".repeat(64) } }, "eu-west-1"));
      expect(missing.status).toBe(14);
      expect(missing.stderr).toContain(`kubeadm-ha: could not fetch lib.sh (s3://b/bootstrap/${"d".repeat(64)})`);
      expect(missing.stdout).toBe("");
    });
  });
});
