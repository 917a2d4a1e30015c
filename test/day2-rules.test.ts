/**
 * The rules of a change to a running cluster (day2/rules.ts), table-driven on the scenarios of
 * issue 14 (test/day2Scenarios.ts): the exact problems that refuse a change, and the exact steps,
 * in order, of one that goes ahead, each with its gate.
 */
import { parseConfig } from "../config";
import { CREATION_ONLY, describePlan, planTransition, transitionProblems, versionProblem, versionStep } from "../day2/rules";
import { SCENARIOS, ScenarioName, changed, configs, snapshot, stackRaw } from "./day2Scenarios";

const plan = (name: ScenarioName) => {
  const { before, after } = configs(SCENARIOS[name]);
  const r = planTransition(snapshot(before), snapshot(after));
  if ("problems" in r) throw new Error(r.problems.join("\n"));
  return describePlan(r.steps);
};

/** The problems of changing the committed stack's raw config by `changes`. */
const refused = (stack: "dev" | "prod", changes: Record<string, unknown>, before: Record<string, unknown> = {}) => {
  const raw = stackRaw(stack);
  return transitionProblems(snapshot(parseConfig(changed(raw, before))), snapshot(parseConfig(changed(raw, changes))));
};

describe("versions", () => {
  it.each([
    ["1.35.0", "1.35.0", "same"],
    ["1.35.0", "1.35.4", "patch"],
    ["1.35.4", "1.36.0", "minor"],
    ["1.35.4", "1.36.7", "minor"],
    ["1.34.2", "1.36.0", "skip"],
    ["1.35.4", "1.35.0", "downgrade"],
    ["1.36.0", "1.35.9", "downgrade"],
    ["1.35.0", "2.0.0", "skip"],
  ])("%s -> %s is a %s", (from, to, step) => {
    expect(versionStep(from, to)).toBe(step);
  });

  it("refuses a skipped minor and a downgrade with the key, both versions, the rule and the way", () => {
    expect(versionProblem("kubernetesVersion", "1.34.2", "1.36.0")).toBe(
      'kubernetesVersion: "1.34.2" → "1.36.0" — skips 1.35: kubeadm upgrades one minor at a time and the version skew policy allows one minor between API servers; set 1.35.x, run pulumi up, then 1.36.0 (README: Upgrading)',
    );
    expect(versionProblem("kubernetesVersion", "1.35.4", "1.35.0")).toBe(
      'kubernetesVersion: "1.35.4" → "1.35.0" — is older than the version the cluster runs: kubeadm does not downgrade; keep 1.35.4, or restore an etcd snapshot taken before the upgrade (README: Upgrading)',
    );
    expect(versionProblem("kubernetesVersion", "1.35.0", "1.36.0")).toBeUndefined();
  });
});

describe("refused at preview", () => {
  it("a skipped minor, a downgrade", () => {
    expect(refused("dev", { kubernetesVersion: "1.36.0" }, { kubernetesVersion: "1.34.2" })).toEqual([expect.stringMatching(/^kubernetesVersion: "1.34.2" → "1.36.0" — skips 1.35: /)]);
    expect(refused("dev", { kubernetesVersion: "1.34.9" })).toEqual([expect.stringMatching(/^kubernetesVersion: "1.35.0" → "1.34.9" — is older than the version the cluster runs: /)]);
  });

  it("every creation-only setting, with its own rule, and nothing else in the same change", () => {
    expect(refused("prod", { network: { vpcCidr: "10.30.0.0/16" } })).toEqual([
      'network.vpcCidr: "10.20.0.0/16" → "10.30.0.0/16" — cannot change on a running cluster: replacing the VPC replaces every subnet and machine; create a new stack with the new value and move the workloads (README: Upgrading)',
    ]);
    expect(refused("prod", { network: { availabilityZones: ["eu-west-1b", "eu-west-1a", "eu-west-1c"] } })).toEqual([
      'network.availabilityZones: ["eu-west-1a","eu-west-1b","eu-west-1c"] → ["eu-west-1b","eu-west-1a","eu-west-1c"] — cannot change on a running cluster: the zones place every master and etcd member and split the VPC into subnets: their order and number fix every machine\'s address; create a new stack with the new value and move the workloads (README: Upgrading)',
    ]);
    expect(refused("prod", { etcd: { topology: "stacked", nodeCount: undefined, instanceType: undefined } })).toEqual([
      'etcd.topology: "external" → "stacked" — cannot change on a running cluster: moving etcd between the masters and machines of its own is a data migration, not a config change; create a new stack with the new value and move the workloads (README: Upgrading)',
    ]);
    expect(refused("dev", { encryptionAtRest: false })).toEqual([
      "encryptionAtRest: true → false — cannot be turned off on a running cluster: the API servers would stop reading every Secret written since it was on; decrypt them first by hand (README: Secrets encryption at rest), or keep true (README: Upgrading)",
    ]);
    // On is rolled (the plan below).
    expect(refused("dev", { encryptionAtRest: true }, { encryptionAtRest: false })).toEqual([]);
    // Every key of the table is caught, each by its own line.
    const all = refused("dev", {
      clusterName: "dev2",
      region: "eu-west-2",
      network: { vpcCidr: "10.11.0.0/16", podCidr: "10.245.0.0/16", serviceCidr: "10.97.0.0/16", availabilityZones: ["eu-west-2a", "eu-west-2b", "eu-west-2c"] },
      etcd: { topology: "external" },
      apiLoadBalancer: { scheme: "internal" },
      encryptionAtRest: false,
      addons: { cni: "calico", awsCloudControllerManager: false, ebsCsiDriver: false, installer: "nodes" },
    });
    expect(all.map((p) => p.split(":")[0])).toEqual([...Object.keys(CREATION_ONLY), "encryptionAtRest"]);
  });

  it("a smaller root volume; a new image together with a new version", () => {
    expect(refused("prod", { etcd: { rootVolumeGiB: 40 } })).toEqual([
      "etcd.rootVolumeGiB: 50 → 40 — is smaller: an EBS volume only grows; keep 50, or replace the machines one at a time from a snapshot of their data (README: Upgrading)",
    ]);
    expect(refused("dev", { kubernetesVersion: "1.35.4", amiId: "ami-0fedcba9876543210" })).toEqual([
      'amiId: (not set) → "ami-0fedcba9876543210" — changes together with kubernetesVersion (1.35.0 → 1.35.4): a machine replaced for the new image would join at the new kubelet before its API servers are upgraded; upgrade Kubernetes first, then change the image in a second pulumi up (README: Upgrading)',
    ]);
  });

  it("nothing to compare on a stack's first run with this program, and nothing refused without a change", () => {
    const s = snapshot(parseConfig(stackRaw("dev")));
    expect(transitionProblems(undefined, s)).toEqual([]);
    expect(planTransition(undefined, s)).toEqual({ steps: [] });
    expect(planTransition(s, s)).toEqual({ steps: [] });
  });
});

describe("the plan of each change, in order, with its gates", () => {
  const masters = (n: number, action: (i: number) => string[]) => Array.from({ length: n }, (_, i) => action(i)).flat();
  const etcdMembers = masters;

  it("patch upgrade (stacked): master 0 runs kubeadm upgrade apply, the others upgrade node, each after its new user data and before the next; then the workers; no add-ons within a minor", () => {
    expect(plan("patch upgrade")).toEqual([
      ...masters(3, (i) => [`master-${i}: update (user data)`, `master-${i}: upgrade-${i === 0 ? "apply" : "node"} (kubernetesVersion 1.35.0 → 1.35.4), then health`]),
      "workers: workers (kubernetesVersion 1.35.0 → 1.35.4)",
    ]);
  });

  it("minor upgrade (external etcd): the members' new user data, the masters one at a time, then the add-ons of the new minor, then the workers", () => {
    const v = "kubernetesVersion 1.35.4 → 1.36.0";
    expect(plan("minor upgrade")).toEqual([
      ...etcdMembers(3, (i) => [`etcd-${i}: update (user data)`, `etcd-${i}: sync (${v}), then health`]),
      ...masters(3, (i) => [`master-${i}: update (user data)`, `master-${i}: upgrade-${i === 0 ? "apply" : "node"} (${v}), then health`]),
      `add-ons: add-ons (${v})`,
      `workers: workers (${v})`,
    ]);
  });

  it("a minor whose etcd image is new: external etcd takes it after the control plane, one member at a time", () => {
    expect(plan("minor upgrade with a new etcd image").slice(12)).toEqual([
      ...etcdMembers(3, (i) => [`etcd-${i}: etcd-manifest (etcd image registry.k8s.io/etcd:3.5.24-0 → registry.k8s.io/etcd:3.6.9-0), then health`]),
      "add-ons: add-ons (kubernetesVersion 1.33.7 → 1.34.0)",
      "workers: workers (kubernetesVersion 1.33.7 → 1.34.0)",
    ]);
  });

  it("instance type: EC2 stops and starts one master at a time, each gated", () => {
    expect(plan("instance type")).toEqual(masters(3, (i) => [`master-${i}: update (instanceType t3.medium → t3.large), then health`]));
  });

  it("masters 3 -> 5 -> 3: new masters join one at a time after the others know them; leaving ones go highest first, after the others forgot them", () => {
    const existing = (from: number, to: number) =>
      masters(3, (i) => [`master-${i}: update (user data)`, `master-${i}: upgrade-${i === 0 ? "apply" : "node"} (etcd members ${from} → ${to}), then health`]);
    expect(plan("masters 3 to 5")).toEqual([
      ...existing(3, 5),
      "master-3: create (controlPlane.count 3 → 5), then health",
      "master-4: create (controlPlane.count 3 → 5), then health",
    ]);
    expect(plan("masters 5 to 3")).toEqual([
      ...existing(5, 3),
      "master-4: remove (controlPlane.count 5 → 3), then health",
      "master-3: remove (controlPlane.count 5 → 3), then health",
    ]);
  });

  it("external etcd 3 -> 5: the new members join one at a time, then the API servers take the new endpoints; 5 -> 3 removes them last, highest first", () => {
    const apiServers = (from: number, to: number) =>
      masters(3, (i) => [`master-${i}: update (user data)`, `master-${i}: upgrade-${i === 0 ? "apply" : "node"} (etcd members ${from} → ${to}), then health`]);
    const members = (from: number, to: number) => etcdMembers(3, (i) => [`etcd-${i}: update (user data)`, `etcd-${i}: sync (etcd members ${from} → ${to}), then health`]);
    expect(plan("external etcd 3 to 5")).toEqual([
      ...members(3, 5),
      "etcd-3: create (etcd.nodeCount 3 → 5), then health",
      "etcd-4: create (etcd.nodeCount 3 → 5), then health",
      ...apiServers(3, 5),
    ]);
    expect(plan("external etcd 5 to 3")).toEqual([
      ...members(5, 3),
      ...apiServers(5, 3),
      "etcd-4: remove (etcd.nodeCount 5 → 3), then health",
      "etcd-3: remove (etcd.nodeCount 5 → 3), then health",
    ]);
  });

  it("a setting the masters take through kubeadm: only master 0's user data holds it, every master renders its pods anew", () => {
    const le = 'leaderElection.leaseDuration "15s" → "20s"';
    expect(plan("leader election")).toEqual([
      "master-0: update (user data)",
      `master-0: upgrade-apply (${le}), then health`,
      `master-1: upgrade-node (${le}), then health`,
      `master-2: upgrade-node (${le}), then health`,
    ]);
  });

  it("encryption at rest turned on: master 0's ClusterConfiguration names the key file, every master takes it and renders its API server anew", () => {
    expect(plan("encryption at rest on")).toEqual([
      "master-0: update (user data)",
      "master-0: upgrade-apply (encryptionAtRest false → true), then health",
      "master-1: upgrade-node (encryptionAtRest false → true), then health",
      "master-2: upgrade-node (encryptionAtRest false → true), then health",
    ]);
  });

  it("external etcd's raft timing: each member's pod, after the control plane", () => {
    expect(plan("external etcd timing").slice(6)).toEqual(etcdMembers(3, (i) => [`etcd-${i}: etcd-manifest (etcd.electionTimeoutMs 1000 → 1500), then health`]));
  });

  it("a new image: every member, then every master, replaced one at a time, then the workers", () => {
    const ami = "amiId ami-0123456789abcdef0 → ami-0fedcba9876543210";
    expect(plan("a new image")).toEqual([
      ...etcdMembers(3, (i) => [`etcd-${i}: replace (${ami}), then health`]),
      ...masters(3, (i) => [`master-${i}: replace (${ami}), then health`]),
      "workers: workers (image)",
    ]);
  });
});
