/**
 * The dev (stacked etcd) and prod (external etcd) control planes, for real: test/k8s/localCluster.ts
 * builds each from the same pure builders the program renders with, the real kubeadm initialises
 * master 0 and joins masters 1 and 2 through HAProxy (the NLB's health check) with the bootstrap
 * token and the CA hash, and the real binaries run every static pod kubeadm wrote. The assertions
 * read what kubeadm wrote and what the running cluster reports: etcd membership, the API servers'
 * --etcd-servers on every master (the stacked patch applied on join as on init), the leader-election
 * flags on every controller manager and scheduler, both Leases held, every node marked control plane,
 * /readyz through the balancer, the ClusterConfiguration kubeadm stored, and (external) every
 * rendered etcd pod admitted by the real API server.
 *
 * Runs in a private network namespace (test/k8s/netns.ts); about 35 s a stack.
 */
import * as path from "path";
import { ClusterConfig, durationMs } from "../config";
import { localStackConfig } from "./k8s/localCluster";
import { runInPrivateNetwork } from "./k8s/netns";

const ROOT = path.resolve(__dirname, "..");

/** The value of the last `--name=` flag, the one the Go flag parser keeps. */
const flag = (command: string[], name: string) => command.filter((a) => a.startsWith(`--${name}=`)).pop()?.slice(name.length + 3);

async function facts(stack: string): Promise<any> {
  const r = await runInPrivateNetwork(path.join(ROOT, "test/k8s/scenarios.ts"), ["facts", stack], { timeoutMs: 400000 });
  const last = r.stdout.trim().split("\n").pop() ?? "";
  if (r.code !== 0 || !last.startsWith("{")) throw new Error(`the ${stack} control plane did not come up (exit ${r.code}):\n${r.stderr.split("\n").slice(-80).join("\n")}`);
  return JSON.parse(last);
}

describe.each(["dev", "prod"])("the %s stack's control plane on the real binaries", (stack) => {
  let f: any;
  let config: ClusterConfig;
  beforeAll(async () => {
    config = localStackConfig(ROOT, stack);
    f = await facts(stack);
  }, 420000);

  const stacked = () => config.etcd.topology === "stacked";

  it("runs every control plane component on every master, and etcd where the topology puts it", () => {
    expect(f.masters).toHaveLength(config.controlPlane.count);
    for (const m of f.masters)
      expect(m.running).toEqual({
        ...(stacked() ? { etcd: true } : {}),
        "kube-apiserver": true,
        "kube-controller-manager": true,
        "kube-scheduler": true,
      });
    expect(f.etcdMachines).toHaveLength(stacked() ? 0 : config.etcd.nodeCount);
    for (const e of f.etcdMachines) expect(e.running).toBe(true);
  });

  it("forms one etcd cluster of every member, named after its machine, none left a learner", () => {
    const machines = stacked() ? f.masters : f.etcdMachines;
    const members = f.etcdMembers.map((m: any) => ({ name: m.name, peerURLs: m.peerURLs, learner: !!m.isLearner })).sort((a: any, b: any) => a.name.localeCompare(b.name));
    expect(members).toEqual(machines.map((m: any) => ({ name: m.name, peerURLs: [`https://${m.ip}:2380`], learner: false })).sort((a: any, b: any) => a.name.localeCompare(b.name)));
  });

  it("points every API server at etcd as the topology says, kubeadm's patch applied on join as on init", () => {
    const ips = f.masters.map((m: any) => m.ip);
    for (const [i, m] of f.masters.entries()) {
      const api = m.manifests["kube-apiserver.yaml"];
      expect(flag(api, "advertise-address")).toBe(m.ip);
      const servers = stacked()
        ? ["https://127.0.0.1:2379", ...ips.filter((_: string, j: number) => j !== i).map((ip: string) => `https://${ip}:2379`)]
        : f.etcdMachines.map((e: any) => `https://${e.ip}:2379`);
      expect(flag(api, "etcd-servers")).toBe(servers.join(","));
    }
  });

  it("runs every controller manager and scheduler with the config's leader election, and both Leases are held by a master", () => {
    const le = config.leaderElection;
    for (const m of f.masters)
      for (const c of ["kube-controller-manager.yaml", "kube-scheduler.yaml"]) {
        const cmd = m.manifests[c];
        expect(flag(cmd, "leader-elect")).toBe("true");
        expect(["lease-duration", "renew-deadline", "retry-period"].map((x) => durationMs(flag(cmd, `leader-elect-${x}`) ?? ""))).toEqual(
          [le.leaseDuration, le.renewDeadline, le.retryPeriod].map(durationMs),
        );
      }
    const names = f.masters.map((m: any) => m.name);
    expect(names).toContain(f.leaders["kube-controller-manager"]);
    expect(names).toContain(f.leaders["kube-scheduler"]);
    expect(f.leases["kube-controller-manager"]).toMatch(/_[0-9a-f-]{36}$/);
    expect(f.leases["kube-scheduler"]).toMatch(/_[0-9a-f-]{36}$/);
  });

  it("answers /readyz through the load balancer with etcd checked, and every master is a tainted control-plane node", () => {
    expect(f.readyz.status).toBe(200);
    expect(f.readyz.body).toContain("[+]etcd ok");
    expect(f.nodes.map((n: any) => n.name).sort()).toEqual(f.masters.map((m: any) => m.name).sort());
    for (const n of f.nodes) {
      expect(n.controlPlane).toBe(true);
      expect(n.taints).toContainEqual({ key: "node-role.kubernetes.io/control-plane", effect: "NoSchedule" });
    }
  });

  it("passes the README's first checks after pulumi up: nodes, /readyz?verbose, both Leases held, /readyz/etcd", () => {
    const checks: Array<{ command: string; status: number; out: string }> = f.readmeFirstChecks;
    expect(checks.map((c) => c.command.split(" ").slice(0, 3).join(" "))).toEqual(["kubectl get nodes", "kubectl get --raw='/readyz?verbose'", "kubectl -n kube-system", "kubectl get --raw='/readyz/etcd'"]);
    for (const c of checks) expect({ command: c.command, status: c.status }).toEqual({ command: c.command, status: 0 });
    const [nodes, readyz, leases, etcd] = checks.map((c) => c.out);
    for (const m of f.masters) expect(nodes).toMatch(new RegExp(`^${m.name.replace(/\./g, "\\.")}\\s`, "m"));
    expect(readyz).toContain("[+]etcd ok");
    expect(readyz.trim().split("\n").pop()).toBe("readyz check passed");
    const holders = leases.trim().split("\n").slice(1).map((l) => l.split(/\s+/));
    expect(holders.map((h) => h[0])).toEqual(["kube-controller-manager", "kube-scheduler"]);
    // <hostname>_<uuid>: on EC2 the hostname is the node name; here every runner shares this machine's.
    for (const h of holders) expect(h[1]).toBe(f.leases[h[0]]);
    expect(etcd.trim()).toBe("ok");
  });

  it("stores the ClusterConfiguration joining masters read, with the topology's etcd section", () => {
    const cc = f.clusterConfiguration;
    expect(cc.controlPlaneEndpoint).toBe(f.apiUrl.replace("https://", ""));
    expect(cc.networking).toMatchObject({ podSubnet: config.network.podCidr, serviceSubnet: config.network.serviceCidr });
    if (stacked()) expect(cc.etcd).toEqual({ local: { dataDir: "/var/lib/etcd", extraArgs: [{ name: "heartbeat-interval", value: String(config.etcd.heartbeatIntervalMs) }, { name: "election-timeout", value: String(config.etcd.electionTimeoutMs) }] } });
    else expect(cc.etcd.external.endpoints).toEqual(f.etcdMachines.map((e: any) => `https://${e.ip}:2379`));
  });

  it("external etcd: the API server admits every rendered etcd pod (server-side dry run)", () => {
    expect(f.etcdPods).toEqual(f.etcdMachines.map((e: any) => ({ machine: e.name, status: 201, message: "" })));
  });
});
