/**
 * What may change on a running cluster, and in what order: the pure rules behind `pulumi up` on a
 * live stack. Given the state the cluster was last brought to (a `ClusterSnapshot`, kept in Pulumi's
 * state by day2/clusterState.ts) and the new config, either the problems that refuse the change
 * (each naming the key, the old and new value, the rule and the way to do it), or the plan: the
 * steps `pulumi up` takes, in order, each machine gated on health before the next is touched.
 *
 * The order follows kubeadm's upgrade procedure
 * (https://kubernetes.io/docs/tasks/administer-cluster/kubeadm/kubeadm-upgrade/) and the version
 * skew policy (https://kubernetes.io/releases/version-skew-policy/): control plane first, one
 * master at a time, `kubeadm upgrade apply` on the first and `kubeadm upgrade node` on the others;
 * external etcd after it; then the add-ons; the workers' kubelets last, never newer than an API
 * server. Cluster API's KubeadmControlPlane and kOps' rolling update do one machine at a time too.
 *
 * Functions here run in Pulumi's dynamic provider host as well (day2/clusterState.ts,
 * day2/rollout.ts serialize them): they use nothing but each other and plain data.
 */
import type { ClusterConfig } from "../config";

/** The cluster as `pulumi up` last left it, or as the new config wants it: plain JSON. */
export interface ClusterSnapshot {
  /** Settings no running cluster can change, each as JSON (`CREATION_ONLY` says why). */
  creationOnly: Record<string, string>;
  /** x.y.z. */
  kubernetesVersion: string;
  controlPlane: { count: number; instanceType: string; rootVolumeGiB: number };
  /** `nodeCount` 0, `instanceType` "" and `rootVolumeGiB` 0 when stacked; `image` the etcd image either way (stacked: kubeadm's). */
  etcd: { nodeCount: number; instanceType: string; rootVolumeGiB: number; image: string };
  /** The config's `amiId`, "" when the stack pins the image itself (day2/imagePin.ts). */
  amiId: string;
  /** Settings the masters (and external etcd members) take through the rollout, each as JSON. */
  rolled: Record<string, string>;
}

/** A setting that no running cluster can change, with the reason and what to do instead. */
export interface CreationOnlyRule {
  rule: string;
  runbook: string;
}

const NEW_STACK = "create a new stack with the new value and move the workloads (README: Upgrading)";

/**
 * Settings fixed when the cluster is created: changing any on a live stack is refused at preview
 * and nothing is touched.
 */
export const CREATION_ONLY: Readonly<Record<string, CreationOnlyRule>> = {
  clusterName: { rule: "names every AWS resource, the kubeadm cluster and etcd's cluster token", runbook: NEW_STACK },
  region: { rule: "a cluster lives in one region", runbook: NEW_STACK },
  "network.vpcCidr": { rule: "replacing the VPC replaces every subnet and machine", runbook: NEW_STACK },
  "network.availabilityZones": {
    rule: "the zones place every master and etcd member and split the VPC into subnets: their order and number fix every machine's address",
    runbook: NEW_STACK,
  },
  "network.podCidr": { rule: "every node's pod range and the CNI's IP pool are allocated from it", runbook: NEW_STACK },
  "network.serviceCidr": { rule: "the API server certificate and the cluster DNS address are taken from it", runbook: NEW_STACK },
  "etcd.topology": { rule: "moving etcd between the masters and machines of its own is a data migration, not a config change", runbook: NEW_STACK },
  "apiLoadBalancer.scheme": {
    rule: "a new scheme is a new load balancer, and its DNS name is the endpoint in every certificate and kubeconfig",
    runbook: NEW_STACK,
  },
  "addons.cni": { rule: "a second CNI would run beside the first on every node", runbook: NEW_STACK },
  "addons.awsCloudControllerManager": { rule: "kubelet's --cloud-provider is fixed when a node registers", runbook: NEW_STACK },
  "addons.installer": {
    rule: "moving the add-ons between Pulumi's Helm releases and master 0 would uninstall them (the CNI first) before anything installs them again",
    runbook: "keep the installer; with an internal load balancer that means nodes, with an internet-facing one pulumi unless set otherwise at creation",
  },
};

/**
 * The snapshot of a validated config. `installer` is `addonInstaller(c)` and `etcdImage` the etcd
 * image of the config's Kubernetes release (components/etcd.ts), resolved by the caller.
 */
export function snapshotOf(c: ClusterConfig, installer: string, etcdImage: string): ClusterSnapshot {
  const external = c.etcd.topology === "external";
  const creation: Record<string, unknown> = {
    clusterName: c.clusterName,
    region: c.region,
    "network.vpcCidr": c.network.vpcCidr,
    "network.availabilityZones": c.network.availabilityZones,
    "network.podCidr": c.network.podCidr,
    "network.serviceCidr": c.network.serviceCidr,
    "etcd.topology": c.etcd.topology,
    "apiLoadBalancer.scheme": c.apiLoadBalancer.scheme,
    "addons.cni": c.addons.cni,
    "addons.awsCloudControllerManager": c.addons.awsCloudControllerManager,
    "addons.installer": installer,
  };
  return {
    creationOnly: Object.fromEntries(Object.keys(CREATION_ONLY).map((k) => [k, JSON.stringify(creation[k])])),
    kubernetesVersion: c.kubernetesVersion,
    controlPlane: { count: c.controlPlane.count, instanceType: c.controlPlane.instanceType, rootVolumeGiB: c.controlPlane.rootVolumeGiB },
    etcd: external
      ? { nodeCount: c.etcd.nodeCount, instanceType: c.etcd.instanceType, rootVolumeGiB: c.etcd.rootVolumeGiB, image: etcdImage }
      : { nodeCount: 0, instanceType: "", rootVolumeGiB: 0, image: etcdImage },
    amiId: c.amiId ?? "",
    rolled: {
      "leaderElection.leaseDuration": JSON.stringify(c.leaderElection.leaseDuration),
      "leaderElection.renewDeadline": JSON.stringify(c.leaderElection.renewDeadline),
      "leaderElection.retryPeriod": JSON.stringify(c.leaderElection.retryPeriod),
      "etcd.heartbeatIntervalMs": JSON.stringify(c.etcd.heartbeatIntervalMs),
      "etcd.electionTimeoutMs": JSON.stringify(c.etcd.electionTimeoutMs),
      "etcd.backup.enabled": JSON.stringify(c.etcd.backup.enabled),
      "etcd.backup.intervalMinutes": JSON.stringify(c.etcd.backup.intervalMinutes),
      encryptionAtRest: JSON.stringify(c.encryptionAtRest),
    },
  };
}

const UPGRADING = "(README: Upgrading)";
const show = (v: unknown) => (v === undefined ? "(not set)" : JSON.stringify(v));
/** `<key>: <old> → <new> — <rule>`, the config's own problem format (values as JSON) with the old value added. */
export function transitionProblem(key: string, from: unknown, to: unknown, rule: string): string {
  return `${key}: ${show(from)} → ${show(to)} — ${rule}`;
}

/** x.y.z as numbers. */
function versionParts(v: string): [number, number, number] {
  const [a, b, c] = v.split(".").map(Number);
  return [a, b, c];
}

/** Whether `to` is a Kubernetes release kubeadm can upgrade `from` to: the same, a later patch, or the next minor. */
export type VersionStep = "same" | "patch" | "minor" | "downgrade" | "skip";

export function versionStep(from: string, to: string): VersionStep {
  const [fa, fb, fc] = versionParts(from);
  const [ta, tb, tc] = versionParts(to);
  if (fa !== ta) return ta > fa ? "skip" : "downgrade";
  if (tb < fb || (tb === fb && tc < fc)) return "downgrade";
  if (tb === fb) return tc === fc ? "same" : "patch";
  return tb === fb + 1 ? "minor" : "skip";
}

/** The problem with moving `key` from `from` to `to`, or undefined when kubeadm can. */
export function versionProblem(key: string, from: string, to: string): string | undefined {
  const step = versionStep(from, to);
  if (step === "downgrade")
    return transitionProblem(key, from, to, `is older than the version the cluster runs: kubeadm does not downgrade; keep ${from}, or restore an etcd snapshot taken before the upgrade ${UPGRADING}`);
  if (step === "skip") {
    const [a, b] = versionParts(from);
    const next = `${a}.${b + 1}`;
    return transitionProblem(
      key, from, to,
      `skips ${next}: kubeadm upgrades one minor at a time and the version skew policy allows one minor between API servers; set ${next}.x, run pulumi up, then ${to} ${UPGRADING}`,
    );
  }
  return undefined;
}

/**
 * Everything that refuses the move from `prev` to `next`, in key order; empty when `pulumi up`
 * may go ahead. No `prev` (the stack's first `pulumi up` with this program): nothing to compare.
 */
export function transitionProblems(prev: ClusterSnapshot | undefined, next: ClusterSnapshot): string[] {
  if (!prev || !prev.creationOnly) return [];
  const out: string[] = [];
  for (const [key, { rule, runbook }] of Object.entries(CREATION_ONLY)) {
    const [from, to] = [prev.creationOnly[key], next.creationOnly[key]];
    if (from !== undefined && to !== undefined && from !== to)
      out.push(transitionProblem(key, JSON.parse(from), JSON.parse(to), `cannot change on a running cluster: ${rule}; ${runbook}`));
  }
  // On is rolled: each master takes the key file and its API server the flags, one at a time.
  if (prev.rolled?.encryptionAtRest === "true" && next.rolled.encryptionAtRest === "false")
    out.push(
      transitionProblem("encryptionAtRest", true, false, `cannot be turned off on a running cluster: the API servers would stop reading every Secret written since it was on; decrypt them first by hand (README: Secrets encryption at rest), or keep true ${UPGRADING}`),
    );
  const version = versionProblem("kubernetesVersion", prev.kubernetesVersion, next.kubernetesVersion);
  if (version) out.push(version);
  for (const [key, from, to] of [
    ["controlPlane.rootVolumeGiB", prev.controlPlane.rootVolumeGiB, next.controlPlane.rootVolumeGiB],
    ["etcd.rootVolumeGiB", prev.etcd.rootVolumeGiB, next.etcd.rootVolumeGiB],
  ] as const)
    if (from > 0 && to > 0 && to < from)
      out.push(transitionProblem(key, from, to, `is smaller: an EBS volume only grows; keep ${from}, or replace the machines one at a time from a snapshot of their data ${UPGRADING}`));
  if (prev.kubernetesVersion !== next.kubernetesVersion && prev.amiId !== next.amiId)
    out.push(
      transitionProblem("amiId", prev.amiId || undefined, next.amiId || undefined, `changes together with kubernetesVersion (${prev.kubernetesVersion} → ${next.kubernetesVersion}): a machine replaced for the new image would join at the new kubelet before its API servers are upgraded; upgrade Kubernetes first, then change the image in a second pulumi up ${UPGRADING}`),
    );
  return out;
}


/** One master (`control-plane`) or external etcd member (`etcd`). */
export type MachineRole = "control-plane" | "etcd";

/** What happens to one machine, or to the cluster, in a rollout. */
export interface PlanStep {
  /** `master-<i>`, `etcd-<i>`, `add-ons` or `workers`. */
  target: string;
  /**
   * - `create`: Pulumi launches the machine; it joins by itself (the join lock, etcd-rejoin.sh).
   * - `update`: Pulumi changes the machine in place: EC2 stops and starts it for a new instance
   *   type or user data, and grows its volume without a restart.
   * - `replace`: Pulumi deletes the machine, then launches its successor at the same address and
   *   name, which rejoins (etcd-rejoin.sh).
   * - `sync`: the machine takes its new user data's files: node.env, documents, scripts, timers
   *   (day2.sh sync); nothing restarts.
   * - `upgrade-apply`, `upgrade-node`: sync, then kubeadm on the master: its packages, `kubeadm
   *   upgrade apply` (the first master: the cluster's stored configuration) or `kubeadm upgrade
   *   node` (the others), the kubelet (day2.sh upgrade).
   * - `remove`: the member leaves etcd, and a master the cluster, before Pulumi terminates its machine (day2.sh leave).
   * - `etcd-manifest`: an external member's static pod takes its new rendered manifest (day2.sh etcd-manifest).
   * - `add-ons`: the Helm releases move to the pins of the new minor.
   * - `workers`: the pools' launch templates change; each group's instance refresh replaces its
   *   machines with nodes that joined and are Ready, draining each old one.
   */
  action: "create" | "update" | "replace" | "sync" | "upgrade-apply" | "upgrade-node" | "remove" | "etcd-manifest" | "add-ons" | "workers";
  /** Why, one phrase a change: `instanceType m7i.large → m7i.xlarge`. */
  because: string[];
  /** What must hold before the next step starts: `health` (the machine's and its cluster's, day2.sh health) or nothing. */
  gate: "health" | "none";
}

const machineName = (role: MachineRole, index: number) => `${role === "etcd" ? "etcd" : "master"}-${index}`;
const change = (what: string, from: unknown, to: unknown) => `${what} ${from} → ${to}`;
const minorOf = (v: string) => v.split(".").slice(0, 2).join(".");

/**
 * The steps `pulumi up` takes from `prev` to `next`, in order, or the problems that refuse it.
 * Each machine's steps end at a health gate, and the program touches the next machine only after
 * it: components/cluster.ts chains the machines in this order, day2/rollout.ts runs the gates.
 * Nothing to plan without `prev` (a new cluster, or a stack's first `pulumi up` with this program).
 */
export function planTransition(prev: ClusterSnapshot | undefined, next: ClusterSnapshot): { problems: string[] } | { steps: PlanStep[] } {
  const problems = transitionProblems(prev, next);
  if (problems.length > 0) return { problems };
  if (!prev) return { steps: [] };
  const external = next.etcd.nodeCount > 0;
  const moved = (key: string) => (prev.rolled[key] !== next.rolled[key] ? [change(key, prev.rolled[key], next.rolled[key])] : []);
  const version = prev.kubernetesVersion !== next.kubernetesVersion ? [change("kubernetesVersion", prev.kubernetesVersion, next.kubernetesVersion)] : [];
  const leader = ["leaderElection.leaseDuration", "leaderElection.renewDeadline", "leaderElection.retryPeriod"].flatMap(moved);
  const timings = ["etcd.heartbeatIntervalMs", "etcd.electionTimeoutMs"].flatMap(moved);
  const backup = ["etcd.backup.enabled", "etcd.backup.intervalMinutes"].flatMap(moved);
  const encryption = moved("encryptionAtRest");
  const masterCount = prev.controlPlane.count !== next.controlPlane.count ? [change("etcd members", prev.controlPlane.count, next.controlPlane.count)] : [];
  const etcdCount = prev.etcd.nodeCount !== next.etcd.nodeCount ? [change(external ? "etcd members" : "etcd.nodeCount", prev.etcd.nodeCount, next.etcd.nodeCount)] : [];
  const image = prev.amiId !== next.amiId ? [change("amiId", prev.amiId || "(pinned)", next.amiId || "(pinned)")] : [];

  // What the masters' kubeadm configuration holds: the ClusterConfiguration stored in the cluster
  // (version, leader election, encryption flags, stacked etcd's raft timing, external etcd's endpoints) and each
  // stacked master's --etcd-servers patch (every master's member). It changes on every master.
  const kubeadm = [...version, ...leader, ...encryption, ...(external ? etcdCount : [...timings, ...masterCount])];
  // What each machine's user data holds. Only master 0's carries the ClusterConfiguration (init.yaml).
  const masterUserData = (i: number) => [
    ...version,
    ...(i === 0 ? [...leader, ...encryption, ...(external ? [] : timings)] : []),
    ...(external ? etcdCount : [...masterCount, ...backup]),
  ];
  const memberUserData = [...version, ...timings, ...etcdCount, ...backup];

  const steps: PlanStep[] = [];
  const machines = (role: MachineRole, from: { count: number; instanceType: string; rootVolumeGiB: number }, to: typeof from) => {
    for (let i = 0; i < to.count; i++) {
      const target = machineName(role, i);
      if (i >= from.count) {
        steps.push({ target, action: "create", because: [change(role === "etcd" ? "etcd.nodeCount" : "controlPlane.count", from.count, to.count)], gate: "health" });
        continue;
      }
      const ud = role === "etcd" ? memberUserData : masterUserData(i);
      const shape = [
        ...(from.instanceType !== to.instanceType ? [change("instanceType", from.instanceType, to.instanceType)] : []),
        ...(from.rootVolumeGiB !== to.rootVolumeGiB ? [change("rootVolumeGiB", from.rootVolumeGiB, to.rootVolumeGiB)] : []),
      ];
      const upgrade = role === "control-plane" && kubeadm.length > 0;
      if (image.length > 0) steps.push({ target, action: "replace", because: [...image, ...shape, ...ud], gate: "health" });
      else if (shape.length > 0 || ud.length > 0)
        steps.push({ target, action: "update", because: [...shape, ...(ud.length > 0 ? ["user data"] : [])], gate: ud.length > 0 || upgrade ? "none" : "health" });
      if (upgrade) steps.push({ target, action: i === 0 ? "upgrade-apply" : "upgrade-node", because: kubeadm, gate: "health" });
      else if (ud.length > 0 && image.length === 0) steps.push({ target, action: "sync", because: ud, gate: "health" });
    }
  };
  if (external) machines("etcd", { count: prev.etcd.nodeCount, ...prev.etcd }, { count: next.etcd.nodeCount, ...next.etcd });
  machines("control-plane", prev.controlPlane, next.controlPlane);
  for (let i = prev.controlPlane.count - 1; i >= next.controlPlane.count; i--)
    steps.push({ target: machineName("control-plane", i), action: "remove", because: [change("controlPlane.count", prev.controlPlane.count, next.controlPlane.count)], gate: "health" });
  for (let i = prev.etcd.nodeCount - 1; i >= next.etcd.nodeCount; i--)
    steps.push({ target: machineName("etcd", i), action: "remove", because: [change("etcd.nodeCount", prev.etcd.nodeCount, next.etcd.nodeCount)], gate: "health" });
  // An external member's pod changes with the etcd image (kubeadm's pin per minor) and the raft
  // timing; members created in this run already run theirs.
  const pod = [...(prev.etcd.image !== next.etcd.image ? [change("etcd image", prev.etcd.image, next.etcd.image)] : []), ...timings];
  if (external && pod.length > 0)
    for (let i = 0; i < Math.min(prev.etcd.nodeCount, next.etcd.nodeCount); i++) steps.push({ target: machineName("etcd", i), action: "etcd-manifest", because: pod, gate: "health" });
  if (minorOf(prev.kubernetesVersion) !== minorOf(next.kubernetesVersion)) steps.push({ target: "add-ons", action: "add-ons", because: version, gate: "none" });
  if (version.length > 0 || image.length > 0) steps.push({ target: "workers", action: "workers", because: [...version, ...(image.length > 0 ? ["image"] : [])], gate: "none" });
  return { steps };
}

/** One line a step, for the operator: `master-1: upgrade-node (kubernetesVersion 1.35.0 → 1.36.0), then health`. */
export function describePlan(steps: PlanStep[]): string[] {
  return steps.map((s) => `${s.target}: ${s.action}${s.because.length > 0 ? ` (${s.because.join("; ")})` : ""}${s.gate === "health" ? ", then health" : ""}`);
}
