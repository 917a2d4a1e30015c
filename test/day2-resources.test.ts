/**
 * The day-2 dynamic providers (day2/resources.ts) called as the engine calls them: `check` at
 * preview (what refuses a change before anything is touched), `diff`, then `create` or `update`
 * (what runs on the machines, SSM mocked with aws-sdk-client-mock), and the same providers as Pulumi
 * serializes them into the state, evaluated on their own. Pulumi's mocks never call a dynamic
 * provider, so this is where they run.
 */
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { ClusterStateInputs, RolloutInputs, clusterStateProvider, imagePinProvider, rolloutProvider } from "../day2/resources";
import { ACTION_TIMEOUT_SECONDS, MachineSpec, RolloutMachine, ScriptSet } from "../day2/rollout";
import { SCENARIOS, configs, snapshot } from "./day2Scenarios";
import { SsmFleet } from "./ssmFleet";

const SCRIPTS: ScriptSet = { bucket: "dev-bootstrap-0123", prefix: "bootstrap/", files: { "day2.sh": "a".repeat(64), "etcdctl.sh": "b".repeat(64), "lib.sh": "c".repeat(64) } };
const master = (index: number): RolloutMachine => ({ role: "control-plane", index, name: `ip-10-10-${index * 32}-10.eu-west-1.compute.internal`, instanceId: `i-master${index}` });
const SPEC: MachineSpec = { ami: "ami-0123456789abcdef0", instanceType: "t3.medium", rootVolumeGiB: 50, userDataSha: "u1", kubeadmSha: "k1", kubernetesVersion: "1.35.0" };
const gate = (i: number, spec: MachineSpec): RolloutInputs => ({ kind: "machine", region: "eu-west-1", scripts: SCRIPTS, pollMs: 1, machine: master(i), spec });
const H = `health --wait ${ACTION_TIMEOUT_SECONDS.health}`;
const state = (name: keyof typeof SCENARIOS): [ClusterStateInputs, ClusterStateInputs] => {
  const { before, after } = configs(SCENARIOS[name]);
  return [{ snapshot: snapshot(before) }, { snapshot: snapshot(after) }];
};

describe("ClusterState", () => {
  const p = clusterStateProvider;

  it("check refuses at preview what a running cluster cannot take, each problem a line the engine prints as is", async () => {
    const [olds, news] = state("patch upgrade");
    const skip = { snapshot: { ...news.snapshot, kubernetesVersion: "1.37.0" } };
    const zones = { snapshot: { ...news.snapshot, creationOnly: { ...news.snapshot.creationOnly, "network.availabilityZones": '["eu-west-1b","eu-west-1a","eu-west-1c"]' } } };
    expect((await p.check!({ ...olds, snapshot: { ...olds.snapshot } }, { ...skip, ...{ snapshot: { ...skip.snapshot, creationOnly: zones.snapshot.creationOnly } } })).failures).toEqual([
      { property: "", reason: expect.stringMatching(/^network\.availabilityZones: \["eu-west-1a","eu-west-1b","eu-west-1c"\] → \["eu-west-1b","eu-west-1a","eu-west-1c"\] — cannot change on a running cluster: /) },
      { property: "", reason: expect.stringMatching(/^kubernetesVersion: "1\.35\.0" → "1\.37\.0" — skips 1\.36: /) },
    ]);
    expect(await p.check!(olds, news)).toEqual({ inputs: news, failures: [] });
    // The stack's first run with this program: nothing to compare.
    expect((await p.check!(undefined as never, news)).failures).toEqual([]);
  });

  it("records the snapshot; an update also records the plan it took", async () => {
    const [olds, news] = state("instance type");
    expect(await p.diff!("cluster-state", olds, news)).toEqual({ changes: true, replaces: [], deleteBeforeReplace: false });
    expect(await p.diff!("cluster-state", olds, olds)).toEqual({ changes: false, replaces: [], deleteBeforeReplace: false });
    expect(await p.create(news)).toEqual({ id: "cluster-state", outs: { snapshot: news.snapshot, plan: [] } });
    expect((await p.update!("cluster-state", olds, news)).outs).toEqual({
      snapshot: news.snapshot,
      plan: [0, 1, 2].map((i) => `master-${i}: update (instanceType t3.medium → t3.large), then health`),
    });
  });
});

describe("MachineGate and Rollout", () => {
  let fleet: SsmFleet;
  beforeEach(() => {
    fleet = new SsmFleet();
  });
  afterEach(() => fleet.restore());
  const p = rolloutProvider;

  it("check refuses a version the machine cannot be upgraded to from the one its gate last brought it to", async () => {
    const olds = gate(1, { ...SPEC, kubernetesVersion: "1.35.4" });
    expect((await p.check!(olds, gate(1, { ...SPEC, kubernetesVersion: "1.37.0" }))).failures).toEqual([
      { property: "", reason: expect.stringMatching(/^kubernetesVersion on ip-10-10-32-10\.eu-west-1\.compute\.internal: "1\.35\.4" → "1\.37\.0" — skips 1\.36: /) },
    ]);
    expect((await p.check!(olds, gate(1, { ...SPEC, kubernetesVersion: "1.36.2" }))).failures).toEqual([]);
    expect((await p.check!(undefined as never, gate(1, SPEC))).failures).toEqual([]);
  });

  it("diff: a change only when the machine would be acted on; new script hashes alone are recorded", async () => {
    expect((await p.diff!("x", gate(0, SPEC), { ...gate(0, SPEC), scripts: { ...SCRIPTS, files: { ...SCRIPTS.files, "day2.sh": "e".repeat(64) } } })).changes).toBe(false);
    expect((await p.diff!("x", gate(0, SPEC), gate(0, { ...SPEC, instanceType: "t3.large" }))).changes).toBe(true);
  });

  it("create: the new machine's health, allowing a cluster still being created", async () => {
    expect(await p.create(gate(2, SPEC))).toEqual({ id: "machine-ip-10-10-64-10.eu-west-1.compute.internal", outs: gate(2, SPEC) });
    expect(fleet.runs()).toEqual([`i-master2 ${H} --create`]);
  });

  it("a patch upgrade through the chain as the engine runs it: each gate after its master, master 0 first; a failed gate stops the chain and keeps its old state", async () => {
    const next = { ...SPEC, userDataSha: "u2", kubeadmSha: "k2", kubernetesVersion: "1.35.4" };
    fleet.outcome = (id, r) => (id === "i-master1" && r === "upgrade" ? { exitCode: 21, stderr: "kubeadm-ha[day2]: ERROR: the cluster's configuration is at v1.35.0, not v1.35.4" } : {});
    // The engine starts a gate's update only after the one before it finished (day2/chain.ts).
    const done: number[] = [];
    let error: unknown;
    for (const i of [0, 1, 2]) {
      try {
        await p.update!(`machine-${i}`, gate(i, SPEC), gate(i, next));
        done.push(i);
      } catch (e) {
        error = e;
        break;
      }
    }
    expect(done).toEqual([0]);
    expect((error as Error).message).toMatch(/^rollout stopped at master 1 \(.*, i-master1\), step 1 of 2 \(day2\.sh upgrade\): Failed, exit 21:\nkubeadm-ha\[day2\]: ERROR: the cluster's configuration is at v1\.35\.0, not v1\.35\.4\n\. Nothing after it was started\./);
    expect(fleet.runs()).toEqual(["i-master0 upgrade --first", `i-master0 ${H}`, "i-master1 upgrade"]);
  });

  it("the cluster-wide kinds: nothing on create, their steps on update; delete removes nothing from etcd", async () => {
    const machines = [0, 1, 2, 3, 4].map(master);
    const scaleIn = (ms: RolloutMachine[]): RolloutInputs => ({ kind: "scale-in", region: "eu-west-1", scripts: SCRIPTS, pollMs: 1, machines: ms });
    expect(await p.create(scaleIn(machines))).toEqual({ id: "scale-in-cluster", outs: scaleIn(machines) });
    expect(fleet.runs()).toEqual([]);
    await p.update!("scale-in-cluster", scaleIn(machines), scaleIn(machines.slice(0, 3)));
    expect(fleet.runs()).toEqual([`i-master0 ${H}`, "i-master4 leave", `i-master0 ${H}`, `i-master0 ${H}`, "i-master3 leave", `i-master0 ${H}`]);
    await p.delete!("scale-in-cluster", scaleIn(machines.slice(0, 3)));
    expect(fleet.runs()).toHaveLength(6);
  });
});

describe("ImagePin", () => {
  const p = imagePinProvider;
  it("pins the image found when it is created; a newer one changes nothing until the pin is replaced", async () => {
    expect(await p.create({ arch: "amd64", candidate: "ami-0123456789abcdef0" })).toEqual({ id: "amd64-ami-0123456789abcdef0", outs: { arch: "amd64", candidate: "ami-0123456789abcdef0", imageId: "ami-0123456789abcdef0" } });
    const pinned = { arch: "amd64", candidate: "ami-0123456789abcdef0", imageId: "ami-0123456789abcdef0" };
    expect(await p.diff!("x", pinned, { arch: "amd64", candidate: "ami-0fedcba9876543210" })).toEqual({ changes: false, replaces: [], deleteBeforeReplace: false });
    // `pulumi up --replace <urn>` creates it anew: the newest candidate.
    expect((await p.create({ arch: "amd64", candidate: "ami-0fedcba9876543210" })).outs.imageId).toBe("ami-0fedcba9876543210");
    await expect(p.create({ arch: "amd64", candidate: "" })).rejects.toThrow('ImagePin: candidate "" is not an AMI id');
  });
});

describe("as Pulumi serializes them into the state", () => {
  const dir = path.join(__dirname, "..", ".cache", "day2-serialized");
  let fleet: SsmFleet;
  beforeAll(() => fs.mkdirSync(dir, { recursive: true }));
  beforeEach(() => {
    fleet = new SsmFleet();
  });
  afterEach(() => fleet.restore());

  /** The provider as the dynamic provider host loads it: serialized, written, required alone. */
  async function loaded(name: string, provider: pulumi.dynamic.ResourceProvider): Promise<pulumi.dynamic.ResourceProvider> {
    const f = await pulumi.runtime.serializeFunction(() => provider);
    const file = path.join(dir, `${name}.js`);
    fs.writeFileSync(file, f.text);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(file)[f.exportName]();
  }

  it("ClusterState: the serialized check refuses what the module's own refuses", async () => {
    const p = await loaded("cluster-state", clusterStateProvider);
    const [olds, news] = state("patch upgrade");
    const skip = { snapshot: { ...news.snapshot, kubernetesVersion: "1.37.0" } };
    expect(await p.check!(olds, skip)).toEqual(await clusterStateProvider.check!(olds, skip));
    expect((await p.check!(olds, skip)).failures).toHaveLength(1);
    expect((await p.update!("cluster-state", olds, news)).outs.plan).toHaveLength(7);
  });

  it("Rollout: the serialized provider runs its steps through SSM", async () => {
    const p = await loaded("rollout", rolloutProvider);
    await p.update!("machine-0", gate(0, SPEC), gate(0, { ...SPEC, userDataSha: "u2" }));
    expect(fleet.runs()).toEqual(["i-master0 sync", `i-master0 ${H}`]);
  });

  it("ImagePin", async () => {
    const p = await loaded("image-pin", imagePinProvider);
    expect((await p.diff!("x", { arch: "arm64", candidate: "a", imageId: "a" }, { arch: "arm64", candidate: "b" })).changes).toBe(false);
  });
});
