/**
 * The plan of day2/rules.ts checked against what the program actually renders for each scenario of
 * issue 14, under Pulumi's mocks: which machines Pulumi changes, how, and what each gate then runs.
 * It evaluates the whole program twice per scenario (about 80 s), so it is in the slow tier
 * (jest.unit.config.js); the dependency graph itself is test/day2-wiring.test.ts.
 */
import * as pulumi from "@pulumi/pulumi";
import { ClusterConfig } from "../config";
import { gateSteps } from "../day2/rollout";
import { planTransition } from "../day2/rules";
import { Registration, ofType, setupMocks } from "./mocks";
import { buildCluster } from "./day2Build";
import { SCENARIOS, ScenarioName, configs, snapshot } from "./day2Scenarios";

let regs: Registration[];
const opts = new Map<string, pulumi.CustomResourceOptions>();
beforeAll(async () => {
  regs = await setupMocks();
});

const build = (name: string, config: ClusterConfig) => buildCluster(name, config, opts);

/** Everything about a rendered cluster that the plan speaks of. */
interface Rendered {
  machines: Map<string, { ami: string; instanceType: string; userData: string; volume: number; gate: any }>;
  members: Map<string, string>;
  releases: string;
  launchTemplates: string;
}

async function rendered(name: string, config: ClusterConfig): Promise<Rendered> {
  const before = regs.length;
  await build(name, config);
  const mine = regs.slice(before);
  const machines = new Map<string, any>();
  for (const r of ofType(mine, "aws:ec2/instance:Instance")) {
    const m = /-(master|etcd-member)-(\d+)$/.exec(r.name)!;
    const key = `${m[1] === "master" ? "master" : "etcd"}-${m[2]}`;
    const gate = mine.find((g) => g.name === `${r.name}-gate`)!.inputs;
    machines.set(key, { ami: r.inputs.ami, instanceType: r.inputs.instanceType, userData: r.inputs.userDataBase64, volume: r.inputs.rootBlockDevice.volumeSize, gate });
  }
  const rollout = mine.find((r) => r.name === `${name}-etcd-rollout`);
  const members = new Map<string, string>((rollout?.inputs.members ?? []).map((m: any) => [`etcd-${m.index}`, m.manifestSha]));
  // The Helm releases (installer pulumi), or the files master 0 installs (installer nodes).
  const releases = JSON.stringify([ofType(mine, "kubernetes:helm.sh/v3:Release").map((r) => [r.inputs.chart, r.inputs.version, r.inputs.values]), mine.find((r) => r.name === `${name}-addons-rollout`)?.inputs.addonsSha]);
  const launchTemplates = JSON.stringify(ofType(mine, "aws:ec2/launchTemplate:LaunchTemplate").map((r) => [r.inputs.imageId, r.inputs.userData]));
  return { machines, members, releases, launchTemplates };
}

/** What the program does in a scenario, in the plan's words: Pulumi's change to each machine, then what its gate runs. */
function actual(a: Rendered, b: Rendered): string[] {
  const out: string[] = [];
  const order = (k: string) => (k.startsWith("etcd") ? 0 : 1000) + Number(k.split("-")[1]);
  for (const key of [...new Set([...a.machines.keys(), ...b.machines.keys()])].sort((x, y) => order(x) - order(y))) {
    const [x, y] = [a.machines.get(key), b.machines.get(key)];
    if (!y) continue;
    if (!x) {
      out.push(`${key}: create`);
      continue;
    }
    const replaced = x.ami !== y.ami;
    if (replaced) out.push(`${key}: replace`);
    else if (x.instanceType !== y.instanceType || x.userData !== y.userData || x.volume !== y.volume) out.push(`${key}: update`);
    // The gate, as its provider would compute it from its old and new inputs.
    const machine = { ...y.gate.machine, instanceId: replaced ? `${y.gate.machine.instanceId}-new` : y.gate.machine.instanceId };
    const steps = gateSteps(machine, { ...x.gate.spec, instanceId: x.gate.machine.instanceId }, y.gate.spec).map((s) => [s.action, ...s.args].join(" "));
    const acts = steps.filter((s) => !s.startsWith("health"));
    for (const s of acts) out.push(`${key}: ${s === "upgrade --first" ? "upgrade-apply" : s === "upgrade" ? "upgrade-node" : s}`);
  }
  for (const key of [...a.machines.keys()].filter((k) => !b.machines.has(k)).sort((x, y) => order(y) - order(x)).sort((x, y) => Number(x.startsWith("etcd")) - Number(y.startsWith("etcd")))) out.push(`${key}: remove`);
  for (const [key, sha] of [...b.members].sort()) if (a.members.has(key) && a.members.get(key) !== sha) out.push(`${key}: etcd-manifest`);
  if (a.releases !== b.releases) out.push("add-ons: add-ons");
  if (a.launchTemplates !== b.launchTemplates) out.push("workers: workers");
  return out;
}

describe("the plan is what the program does", () => {
  it.each([
    "patch upgrade",
    "minor upgrade",
    "minor upgrade with a new etcd image",
    "instance type",
    "masters 3 to 5",
    "masters 5 to 3",
    "external etcd 3 to 5",
    "external etcd 5 to 3",
    "leader election",
    "external etcd timing",
    "encryption at rest on",
    "a new image",
  ] as ScenarioName[])("%s", async (name) => {
    const { before, after } = configs(SCENARIOS[name]);
    const n = name.replace(/[^a-z0-9]+/g, "").slice(0, 14);
    // One name for both renders, as the same stack before and after: its machines' names and addresses.
    const a = await rendered(`${n}`, before);
    const b = await rendered(`${n}`, after);
    const plan = planTransition(snapshot(before), snapshot(after));
    if ("problems" in plan) throw new Error(plan.problems.join("\n"));
    expect(actual(a, b)).toEqual(plan.steps.map((s) => `${s.target}: ${s.action}`));
  }, 60000);
});
