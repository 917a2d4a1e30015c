/**
 * Certificate renewal for real: the dev (stacked) and prod (external etcd) control planes on the real
 * binaries (test/k8s/localCluster.ts), with kubeadm's certificates signed for 30 days (ClusterConfiguration
 * `certificateValidityPeriod`, v1beta4) and the external members' for one, as a cluster has them near
 * its first anniversary. The shipped cert-renew.sh then runs on every machine at once, as the timers
 * would fire, and the test checks:
 * - every certificate and kubeconfig kubeadm manages, and the external members' own pairs, are renewed
 *   for a year, and every API server and etcd member serves its renewed certificate;
 * - the machines restarted one at a time: the masters' restart windows (under the join lock) never
 *   overlap, nor do the external members' (under the lock in etcd);
 * - etcd and the API are healthy afterwards; a second run renews nothing;
 * - with one etcd member down, the next machine waits, then gives up with exit 13 without renewing or
 *   restarting anything, and succeeds once the member is back.
 *
 * Runs in a private network namespace; about 3 minutes a stack.
 */
import * as path from "path";
import { ClusterConfig } from "../config";
import { localStackConfig } from "./k8s/localCluster";
import { runInPrivateNetwork } from "./k8s/netns";

const ROOT = path.resolve(__dirname, "..");
const EXIT_ETCD_BUSY = 13;

interface Summary {
  machine: string;
  code: number;
  window?: { from: number; to: number };
  log: string[];
  tail?: string[];
}

async function renewScenario(stack: string): Promise<any> {
  const r = await runInPrivateNetwork(path.join(ROOT, "test/k8s/scenarios.ts"), ["renew", stack], { timeoutMs: 900000 });
  const last = r.stdout.trim().split("\n").pop() ?? "";
  if (r.code !== 0 || !last.startsWith("{")) throw new Error(`the renewal scenario on ${stack} failed (exit ${r.code}):\n${r.stderr.split("\n").slice(-80).join("\n")}`);
  return JSON.parse(last);
}

const overlaps = (a: { from: number; to: number }, b: { from: number; to: number }) => a.from < b.to && b.from < a.to;

describe.each(["dev", "prod"])("certificate renewal on the %s stack's real control plane", (stack) => {
  let f: any;
  let config: ClusterConfig;
  beforeAll(async () => {
    config = localStackConfig(ROOT, stack);
    f = await renewScenario(stack);
  }, 960000);

  const first = (): Summary[] => f.first;

  it("starts from certificates within the renewal threshold", () => {
    for (const [machine, certs] of Object.entries<Record<string, number>>(f.before))
      for (const [cert, days] of Object.entries(certs)) expect({ machine, cert, due: days <= config.certificates.renewBeforeDays }).toEqual({ machine, cert, due: true });
  });

  it("renews every certificate and kubeconfig for a year on every machine", () => {
    expect(first().map((r) => ({ machine: r.machine, code: r.code }))).toEqual(first().map((r) => ({ machine: r.machine, code: 0 })));
    expect(Object.keys(f.afterFirst.expiries).sort()).toEqual(Object.keys(f.before).sort());
    for (const [machine, certs] of Object.entries<Record<string, number>>(f.afterFirst.expiries)) {
      expect(Object.keys(certs).sort()).toEqual(Object.keys(f.before[machine]).sort());
      for (const [cert, days] of Object.entries(certs)) expect({ machine, cert, days: days >= 364 }).toEqual({ machine, cert, days: true });
    }
    // What kubeadm manages on each kind of machine, and nothing forgotten.
    const masterCerts = config.etcd.topology === "stacked"
      ? ["admin.conf", "controller-manager.conf", "etc/kubernetes/pki/apiserver-kubelet-client.crt", "etc/kubernetes/pki/apiserver.crt", "etc/kubernetes/pki/etcd/healthcheck-client.crt", "etc/kubernetes/pki/etcd/peer.crt", "etc/kubernetes/pki/etcd/server.crt", "etc/kubernetes/pki/front-proxy-client.crt", "scheduler.conf"]
      : ["admin.conf", "controller-manager.conf", "etc/kubernetes/pki/apiserver-etcd-client.crt", "etc/kubernetes/pki/apiserver-kubelet-client.crt", "etc/kubernetes/pki/apiserver.crt", "etc/kubernetes/pki/front-proxy-client.crt", "scheduler.conf"];
    const kinds = Object.values<Record<string, number>>(f.afterFirst.expiries).map((c) => Object.keys(c).filter((k) => k !== "super-admin.conf").sort());
    expect(kinds.filter((k) => k.includes("admin.conf"))).toEqual(Array(config.controlPlane.count).fill(masterCerts));
    expect(kinds.filter((k) => !k.includes("admin.conf"))).toEqual(Array(config.etcd.topology === "external" ? config.etcd.nodeCount : 0).fill(["etc/kubernetes/pki/etcd/peer.crt", "etc/kubernetes/pki/etcd/server.crt"]));
  });

  it("restarts what reads them: every API server and etcd member serves its renewed certificate, and the cluster is healthy", () => {
    expect(Object.values(f.afterFirst.served)).toEqual(Array(Object.keys(f.afterFirst.served).length).fill(true));
    expect(f.afterFirst.etcdHealthy).toBe(true);
    expect(f.afterFirst.readyz).toBe(200);
    expect(f.healthyAtEnd).toBe(true);
  });

  it("restarts one machine at a time: no two masters', and no two etcd members', restart windows overlap", () => {
    const groups = [first().filter((r) => f.before[r.machine]["admin.conf"] !== undefined), first().filter((r) => f.before[r.machine]["admin.conf"] === undefined)];
    expect(groups[0]).toHaveLength(config.controlPlane.count);
    for (const group of groups) {
      for (const r of group) expect(r.window).toBeDefined();
      for (let i = 0; i < group.length; i++)
        for (let j = i + 1; j < group.length; j++) expect({ a: group[i].machine, b: group[j].machine, overlap: overlaps(group[i].window!, group[j].window!) }).toEqual({ a: group[i].machine, b: group[j].machine, overlap: false });
    }
    // The masters queued at the join lock; the members at the lock in etcd.
    expect(groups[0].every((r) => r.log.some((l) => l.includes("acquired join lock lease/kubeadm-ha-control-plane-join")))).toBe(true);
    for (const r of groups[1]) expect(r.log.find((l) => l.includes("within 60 days of expiry:"))?.split(": ").pop()!.split(" ").sort()).toEqual(["etcd-peer", "etcd-server"]);
    expect(groups[1].every((r) => r.log.some((l) => l.startsWith("kubeadm-ha[cert-renew]: holding the etcd members' lock (/kubeadm-ha/locks/cert-renew, lease ")))).toBe(true);
  });

  it("is idempotent: a second run renews nothing", () => {
    expect(f.again.code).toBe(0);
    expect(f.again.log.at(-1)).toMatch(/^kubeadm-ha\[cert-renew\]: every certificate here has more than 60 days left \(soonest: .*, 36[45] days\): nothing to renew$/);
    expect(f.again.window).toBeUndefined();
  });

  it("a member that is down blocks the next renewal: it waits, gives up with exit 13, renews and restarts nothing; then succeeds", () => {
    const w = f.whileDown;
    expect(w.code).toBe(EXIT_ETCD_BUSY);
    expect(w.log).toContainEqual(
      `kubeadm-ha[cert-renew]: ERROR: timed out after 15s waiting for every other API server and etcd member to be healthy (last exit 1: etcd members not healthy: ${w.down})`,
    );
    expect(w.log.some((l: string) => l.includes("renewed") || l.includes("restarting"))).toBe(false);
    expect(w.restartedAnyway).toBe(false);
    expect(w.log.some((l: string) => l.includes("could not revoke"))).toBe(false);
    expect(f.afterBack.code).toBe(0);
    expect(f.afterBack.window).toBeDefined();
  });
});
