/**
 * The day-2 machinery as Pulumi resources. Pulumi's state is where the cluster's last applied
 * state lives: each of these dynamic resources records what it last brought about, and compares
 * the new config against it.
 *
 * - `ClusterState`: the config the cluster was last brought to. Its `check` refuses, at preview and
 *   before anything is touched, every change a running cluster cannot take (day2/rules.ts).
 * - `MachineGate`: one a master or etcd member, after it. Runs the machine's gate (day2/rollout.ts
 *   gateSteps) whenever Pulumi created or changed it; the next machine depends on it, so Pulumi
 *   touches that one only after this one is healthy. Its `check` refuses a version the machine
 *   cannot be upgraded to, from the version it runs.
 * - `Rollout`: cluster-wide steps after the masters: scale-in, external etcd's pods, the add-ons
 *   master 0 installs.
 * - `ImagePin`: the Ubuntu image a stack runs, resolved once and kept until an explicit
 *   `pulumi up --replace` of the pin adopts the newest.
 *
 * The engine does not check a dynamic provider for data it cannot serialize: the providers here
 * use only day2/rules.ts, day2/rollout.ts and what they require inside (test/day2-resources.test.ts
 * evaluates their serialized text).
 */
import * as pulumi from "@pulumi/pulumi";
import { ClusterSnapshot, describePlan, planTransition, transitionProblems, versionProblem } from "./rules";
import {
  MachineSpec,
  MemberManifest,
  RemoteStep,
  RolloutMachine,
  ScriptSet,
  addonsSteps,
  etcdManifestSteps,
  gateSteps,
  runSteps,
  scaleInSteps,
} from "./rollout";

/** What `ClusterState` records. */
export interface ClusterStateInputs {
  snapshot: ClusterSnapshot;
  /** The steps of the last `pulumi up` that changed the snapshot (describePlan); output only. */
  plan?: string[];
}

/** Check failures without a property: the engine prints `resource '<name>' has a problem: <reason>`. */
const failures = (reasons: string[]) => reasons.map((reason) => ({ property: "", reason }));

export const clusterStateProvider: pulumi.dynamic.ResourceProvider = {
  async check(olds: ClusterStateInputs, news: ClusterStateInputs) {
    return { inputs: news, failures: failures(transitionProblems(olds?.snapshot, news.snapshot)) };
  },
  async diff(_id: string, olds: ClusterStateInputs, news: ClusterStateInputs) {
    return { changes: JSON.stringify(olds.snapshot) !== JSON.stringify(news.snapshot), replaces: [], deleteBeforeReplace: false };
  },
  async create(news: ClusterStateInputs) {
    return { id: "cluster-state", outs: { snapshot: news.snapshot, plan: [] } };
  },
  async update(_id: string, olds: ClusterStateInputs, news: ClusterStateInputs) {
    const r = planTransition(olds.snapshot, news.snapshot);
    // check refused these already; a second look costs nothing.
    if ("problems" in r) throw new Error(r.problems.join("\n"));
    return { outs: { snapshot: news.snapshot, plan: describePlan(r.steps) } };
  },
};

/** The config the cluster was last brought to; `pulumi preview` fails on a change it cannot take. */
export class ClusterState extends pulumi.dynamic.Resource {
  declare public readonly snapshot: pulumi.Output<ClusterSnapshot>;
  /** What the last `pulumi up` that changed the cluster did, one line a step. */
  declare public readonly plan: pulumi.Output<string[]>;

  constructor(name: string, args: { snapshot: ClusterSnapshot }, opts?: pulumi.CustomResourceOptions) {
    super(clusterStateProvider, name, { snapshot: args.snapshot, plan: undefined }, opts, undefined, "ClusterState");
  }
}

/** The inputs of a `Rollout` or `MachineGate`, as the engine hands them over. */
export interface RolloutInputs {
  kind: "machine" | "scale-in" | "etcd-manifests" | "addons";
  region: string;
  scripts: ScriptSet;
  /** Milliseconds between SSM polls. Default 5000. */
  pollMs?: number;
  /** machine */
  machine?: RolloutMachine;
  spec?: MachineSpec;
  /** scale-in: every master and external member there is. */
  machines?: RolloutMachine[];
  /** etcd-manifests */
  members?: MemberManifest[];
  /** addons */
  master?: RolloutMachine;
  addonsSha?: string;
}

/** The remote steps from `olds` (undefined on create) to `news`. */
export function rolloutSteps(olds: RolloutInputs | undefined, news: RolloutInputs): RemoteStep[] {
  switch (news.kind) {
    case "machine":
      return gateSteps(news.machine!, olds?.spec ? { ...olds.spec, instanceId: olds.machine?.instanceId } : undefined, news.spec!);
    case "scale-in":
      return scaleInSteps(olds?.machines, news.machines!);
    case "etcd-manifests":
      return etcdManifestSteps(olds?.members, news.members!);
    case "addons":
      return addonsSteps(olds?.addonsSha === undefined ? undefined : { addonsSha: olds.addonsSha }, { addonsSha: news.addonsSha!, master: news.master! });
  }
}

/** Runs the steps with an SSM client of the stack's region (credentials from the environment of `pulumi up`). */
async function apply(olds: RolloutInputs | undefined, news: RolloutInputs): Promise<void> {
  const steps = rolloutSteps(olds, news);
  if (steps.length === 0) return;
  const { SSMClient } = require("@aws-sdk/client-ssm") as typeof import("@aws-sdk/client-ssm");
  const ssm = new SSMClient({ region: news.region });
  try {
    await runSteps(steps, { ssm, region: news.region, scripts: news.scripts, pollMs: news.pollMs });
  } finally {
    ssm.destroy();
  }
}

export const rolloutProvider: pulumi.dynamic.ResourceProvider = {
  async check(olds: RolloutInputs, news: RolloutInputs) {
    // The version the machine runs is the one its gate last brought it to.
    const from = olds?.spec?.kubernetesVersion;
    const to = news.spec?.kubernetesVersion;
    const problem = news.kind === "machine" && from && to ? versionProblem(`kubernetesVersion on ${news.machine?.name ?? "this machine"}`, from, to) : undefined;
    return { inputs: news, failures: failures(problem ? [problem] : []) };
  },
  async diff(_id: string, olds: RolloutInputs, news: RolloutInputs) {
    // Only what changes a machine runs the rollout; new script hashes or poll settings are recorded.
    return { changes: rolloutSteps(olds, news).length > 0, replaces: [], deleteBeforeReplace: false };
  },
  async create(news: RolloutInputs) {
    await apply(undefined, news);
    return { id: `${news.kind}-${news.machine?.name ?? "cluster"}`, outs: news };
  },
  async update(_id: string, olds: RolloutInputs, news: RolloutInputs) {
    await apply(olds, news);
    return { outs: news };
  },
  // Scale-in is `Rollout`'s update, before Pulumi deletes the machines; a destroy removes nothing from etcd.
  async delete() {},
};

export interface MachineGateArgs {
  region: string;
  scripts: pulumi.Input<ScriptSet>;
  machine: pulumi.Input<RolloutMachine>;
  spec: pulumi.Input<MachineSpec>;
}

/** A master's or etcd member's health gate, after the machine; the next machine depends on it. */
export class MachineGate extends pulumi.dynamic.Resource {
  declare public readonly machine: pulumi.Output<RolloutMachine>;
  declare public readonly spec: pulumi.Output<MachineSpec>;

  constructor(name: string, args: MachineGateArgs, opts?: pulumi.CustomResourceOptions) {
    super(rolloutProvider, name, { kind: "machine", region: args.region, scripts: args.scripts, machine: args.machine, spec: args.spec }, opts, undefined, "MachineGate");
  }
}

export interface RolloutArgs {
  kind: "scale-in" | "etcd-manifests" | "addons";
  region: string;
  scripts: pulumi.Input<ScriptSet>;
  machines?: pulumi.Input<pulumi.Input<RolloutMachine>[]>;
  members?: pulumi.Input<pulumi.Input<MemberManifest>[]>;
  master?: pulumi.Input<RolloutMachine>;
  addonsSha?: pulumi.Input<string>;
}

/** Cluster-wide steps after the masters (`kind`), one machine at a time. */
export class Rollout extends pulumi.dynamic.Resource {
  constructor(name: string, args: RolloutArgs, opts?: pulumi.CustomResourceOptions) {
    super(rolloutProvider, name, { ...args }, opts, undefined, "Rollout");
  }
}

/** What `ImagePin` records. */
export interface ImagePinInputs {
  arch: string;
  /** The newest image the lookup finds now. */
  candidate: string;
  /** The image the stack runs: the candidate when the pin was created. */
  imageId?: string;
}

export const imagePinProvider: pulumi.dynamic.ResourceProvider = {
  async diff(_id: string, olds: ImagePinInputs, news: ImagePinInputs) {
    // A newer candidate changes nothing: the pin moves only when it is replaced.
    return { changes: olds.arch !== news.arch, replaces: olds.arch !== news.arch ? ["arch"] : [], deleteBeforeReplace: false };
  },
  async create(news: ImagePinInputs) {
    if (!/^ami-[0-9a-f]{8}([0-9a-f]{9})?$/.test(news.candidate)) throw new Error(`ImagePin: candidate ${JSON.stringify(news.candidate)} is not an AMI id`);
    return { id: `${news.arch}-${news.candidate}`, outs: { arch: news.arch, candidate: news.candidate, imageId: news.candidate } };
  },
};

/**
 * The image of one CPU architecture, resolved once: a later `pulumi up` keeps it whatever the
 * lookup finds, so a new Canonical release rolls nothing by surprise. `pulumi up --replace <urn>`
 * of the pin adopts the newest (README: Upgrading).
 */
export class ImagePin extends pulumi.dynamic.Resource {
  /** The pinned AMI id. */
  declare public readonly imageId: pulumi.Output<string>;

  constructor(name: string, args: { arch: "amd64" | "arm64"; candidate: pulumi.Input<string> }, opts?: pulumi.CustomResourceOptions) {
    super(imagePinProvider, name, { arch: args.arch, candidate: args.candidate, imageId: undefined }, opts, undefined, "ImagePin");
  }
}
