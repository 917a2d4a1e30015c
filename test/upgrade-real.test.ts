/**
 * A patch upgrade with a setting change, for real (issue 14): the dev stack's HA control plane on
 * the real binaries (test/k8s/localCluster.ts), created at its kubernetesVersion 1.35.0, then the
 * rollout's own steps on each master in turn, as its gates run them: the shipped day2.sh `upgrade`
 * (`--first` on master 0) with the user data the program renders for 1.35.4 and
 * leaderElection.leaseDuration 20s, then day2.sh `health`, the gate before the next master.
 * kubeadm upgrade apply and node are the real kubeadm v1.35.4 (test/k8s/day2.ts says what the
 * loopback machine stands in for). About 2 minutes on 2 cores.
 */
import * as path from "path";
import { runInPrivateNetwork } from "./k8s/netns";

const ROOT = path.resolve(__dirname, "..");
const flag = (command: string[], name: string) => command.filter((a) => a.startsWith(`--${name}=`)).pop()?.slice(name.length + 3);

describe("dev: 1.35.0 -> 1.35.4 and a new lease duration, one master at a time, on the real kubeadm", () => {
  let r: any;
  beforeAll(async () => {
    const run = await runInPrivateNetwork(path.join(ROOT, "test/k8s/scenarios.ts"), ["upgrade", "dev", "1.35.4"], { timeoutMs: 1200000 });
    const last = run.stdout.trim().split("\n").pop() ?? "";
    if (run.code !== 0 || !last.startsWith("{")) throw new Error(`the upgrade scenario failed (exit ${run.code}):\n${run.stderr.split("\n").slice(-60).join("\n")}`);
    r = JSON.parse(last);
  }, 1250000);

  it("refuses master 1 before master 0 stored the new configuration, changing nothing (exit 21)", () => {
    expect(r.early.code).toBe(21);
    expect(r.early.last).toMatch(/ERROR: the cluster's configuration is at v1\.35\.0, not v1\.35\.4: master 0 runs kubeadm upgrade apply first/);
  });

  it("upgrades master 0 with kubeadm upgrade apply, then each other master with upgrade node, each passing its health gate before the next starts", () => {
    expect(r.steps.map((s: any) => [s.master, s.step, s.code])).toEqual([
      [0, "upgrade --first", 0],
      [0, "health --wait 300", 0],
      [1, "upgrade", 0],
      [1, "health --wait 300", 0],
      [2, "upgrade", 0],
      [2, "health --wait 300", 0],
    ]);
    // Each upgrade under the join lock that certificate renewal takes, renewed in the background
    // while kubeadm works (every 4 s here: test/k8s/day2.ts), then released; never broken.
    const upgrades = r.steps.filter((x: any) => x.step.startsWith("upgrade"));
    for (const s of upgrades) expect([s.master, s.lock.join(", ")]).toEqual([s.master, expect.stringMatching(/^acquired join lock(, renewed join lock)*, released join lock$/)]);
    expect(upgrades.flatMap((s: any) => s.lock).filter((l: string) => l === "renewed join lock").length).toBeGreaterThan(0);
    for (const s of r.steps.filter((x: any) => x.step.startsWith("health"))) expect([s.master, s.lock]).toEqual([s.master, []]);
    for (const s of r.steps.filter((x: any) => x.step.startsWith("health"))) expect(s.last).toMatch(/kubeadm-ha\[day2\]: healthy: ip-10-10-\d+-10\.eu-west-1\.compute\.internal \(control-plane\)$/);
  });

  it("every master runs 1.35.4 with the new lease duration, its stacked etcd patch kept, every component up and its node uncordoned", () => {
    expect(r.masters).toHaveLength(3);
    const ips = r.masters.map((m: any) => /^ip-(\d+)-(\d+)-(\d+)-(\d+)/.exec(m.name)!.slice(1).join("."));
    r.masters.forEach((m: any, i: number) => {
      for (const c of ["kube-apiserver", "kube-controller-manager", "kube-scheduler"]) expect(m.images[c]).toBe(`registry.k8s.io/${c}:v1.35.4`);
      for (const c of ["kube-controller-manager", "kube-scheduler"]) expect(flag(m.commands[c], "leader-elect-lease-duration")).toBe("20s");
      expect(flag(m.commands["kube-apiserver"], "etcd-servers")).toBe(["https://127.0.0.1:2379", ...ips.filter((_: string, j: number) => j !== i).map((ip: string) => `https://${ip}:2379`)].join(","));
      expect(m.running).toEqual({ etcd: true, "kube-apiserver": true, "kube-controller-manager": true, "kube-scheduler": true });
    });
    expect(r.nodes.map((n: any) => n.unschedulable)).toEqual([false, false, false]);
    expect(r.etcdMembers).toEqual(r.masters.map((m: any) => m.name).sort());
  });

  it("the stored ClusterConfiguration is the rendered one at the new version", () => {
    expect(r.stored.kubernetesVersion).toBe("v1.35.4");
    expect(r.stored.controllerManager.extraArgs).toContainEqual({ name: "leader-elect-lease-duration", value: "20s" });
    expect(r.stored.scheduler.extraArgs).toContainEqual({ name: "leader-elect-lease-duration", value: "20s" });
  });
});
