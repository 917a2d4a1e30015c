/**
 * The program's day-2 wiring under Pulumi's mocks (components/cluster.ts, day2/chain.ts): the order
 * in which Pulumi may touch the machines is the dependency graph the program builds, since the
 * engine starts a resource's step only once those it depends on finished theirs. These tests read
 * that graph; test/day2-plan-program.test.ts checks the plan of day2/rules.ts against what the
 * program renders for each scenario.
 */
import * as pulumi from "@pulumi/pulumi";
import { ClusterConfig } from "../config";
import { Registration, ofType, setupMocks, valueOf } from "./mocks";
import { buildCluster } from "./day2Build";
import { configs } from "./day2Scenarios";

let regs: Registration[];
const opts = new Map<string, pulumi.CustomResourceOptions>();
/** Each committed stack built once, under its own name, and the registrations it made. */
const built = new Map<string, Registration[]>();
beforeAll(async () => {
  regs = await setupMocks();
  for (const stack of ["dev", "prod"] as const) {
    const before = regs.length;
    await build(`chain${stack}`, configs({ stack, after: {} }).after);
    built.set(stack, regs.slice(before));
  }
}, 60000);

const build = (name: string, config: ClusterConfig) => buildCluster(name, config, opts);

/** A resource's explicit dependencies, by name; `all` keeps the ClusterState every resource depends on. */
async function dependsOn(name: string, all = false): Promise<string[]> {
  const deps = (opts.get(name)?.dependsOn ?? []) as pulumi.Resource[];
  const names = (await Promise.all(deps.map((d) => valueOf(d.urn)))).map((u) => u.split("::").pop()!);
  return all ? names : names.filter((n) => !n.endsWith("-state"));
}

describe("one machine at a time: the chain", () => {
  it.each([
    ["dev", "stacked etcd"],
    ["prod", "external etcd"],
  ] as const)("%s (%s): ClusterState, then each etcd member and each master after the gate of the machine before it, then scale-in, etcd's pods, the add-ons, the workers", async (stack, _) => {
    const n = `chain${stack}`;
    const { after: config } = configs({ stack, after: {} });
    const external = stack === "prod";
    const machines = [...(external ? [0, 1, 2].map((i) => `${n}-etcd-member-${i}`) : []), ...[0, 1, 2].map((i) => `${n}-control-plane-master-${i}`)];
    for (const [i, m] of machines.entries()) {
      const own = m.includes("etcd") ? [`${n}-secrets-etcd-version`, `${n}-bootstrap`] : [`${n}-secrets-control-plane-version`, `${n}-bootstrap`];
      const master = !m.includes("etcd");
      const deps = await dependsOn(m, true);
      // The first boot's way out (test/firstBoot.test.ts): the NAT routes and the S3 endpoint.
      const egress = deps.filter((d) => /-network-(nat-\d|private-default-route-\d|private-rta-\d|s3-endpoint)$/.test(d));
      expect(egress.length).toBeGreaterThanOrEqual(stack === "prod" ? 10 : 8);
      // A master also waits for the init marker and the internal API listener it joins through.
      // The first after the ClusterState as the chain's start (and, as everything, through the transformation).
      expect([m, deps]).toEqual([
        m,
        [
          ...own,
          ...(master ? [`${n}-init-marker`] : []),
          ...egress,
          ...(master ? [`${n}-api-listener`] : []),
          i === 0 ? `${n}-state` : `${machines[i - 1]}-gate`,
          `${n}-state`,
        ],
      ]);
      // Each gate waits for the bootstrap objects its commands fetch, and for its machine through its inputs.
      expect(await dependsOn(`${m}-gate`)).toEqual([`${n}-bootstrap`]);
      const gate = ofType(regs, "pulumi-nodejs:dynamic:MachineGate").find((r) => r.name === `${m}-gate`)!;
      expect(gate.inputs.machine.instanceId).toBe(`${m}-id`);
    }
    expect(await dependsOn(`${n}-scale-in`)).toEqual([`${machines[machines.length - 1]}-gate`]);
    const done = external ? `${n}-addons-rollout` : `${n}-scale-in`;
    if (external) {
      expect(await dependsOn(`${n}-etcd-rollout`)).toEqual([`${n}-scale-in`]);
      expect(await dependsOn(`${n}-addons-rollout`)).toEqual([`${n}-etcd-rollout`]);
    } else expect(opts.has(`${n}-etcd-rollout`)).toBe(false);
    for (const pool of config.workerPools) {
      const deps = await dependsOn(`${n}-pool-${pool.name}-launch-template`);
      const egress = deps.filter((d) => /-network-(nat-\d|private-default-route-\d|private-rta-\d|s3-endpoint)$/.test(d));
      expect(egress.length).toBeGreaterThanOrEqual(8);
      expect(deps).toEqual([
        `${n}-secrets-worker-version`,
        `${n}-bootstrap`,
        ...egress,
        `${n}-api-listener`,
        done,
        ...(external ? [] : [`${n}-addons`]),
      ]);
    }
    if (!external) expect(await dependsOn(`${n}-addons`)).toEqual([`${n}-scale-in`]);
  });

  it("every other resource of the cluster depends on the ClusterState, so the engine checks it before it touches anything", async () => {
    const n = "chaindev";
    const mine = built.get("dev")!.filter((r) => !r.type.startsWith("kubeadm-ha:index:"));
    expect(mine[0].name).toBe(`${n}-state`);
    expect(mine[0].inputs.snapshot.kubernetesVersion).toBe("1.35.0");
    const without: string[] = [];
    for (const r of mine.slice(1)) if (!(await dependsOn(r.name, true)).includes(`${n}-state`)) without.push(r.name);
    expect(without).toEqual([]);
    expect(mine.length).toBeGreaterThan(100);
  });

  it("the image is pinned: every master, member and pool boots the pin's image, not the lookup's", async () => {
    const n = "chainprod";
    const pins = ofType(regs, "pulumi-nodejs:dynamic:ImagePin").filter((r) => r.name.startsWith(`${n}-`));
    expect(pins.map((p) => [p.name, p.inputs.arch, p.inputs.candidate])).toEqual([
      [`${n}-image-amd64`, "amd64", "ami-0123456789abcdef0"],
      [`${n}-image-arm64`, "arm64", "ami-0123456789abcdef0"],
    ]);
    const gates = ofType(regs, "pulumi-nodejs:dynamic:MachineGate").filter((r) => r.name.startsWith(`${n}-`));
    expect(gates.map((g) => g.inputs.spec.ami)).toEqual(Array(6).fill("ami-0123456789abcdef0"));
  });
});
