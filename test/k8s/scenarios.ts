/**
 * Entry point run inside a private network namespace (netns.ts spawnInPrivateNetwork): starts a
 * stack's loopback control plane and runs one scenario on it. Progress goes to stderr; the result is
 * one JSON line on stdout. As the namespace's PID 1 it handles SIGINT and SIGTERM itself, and every
 * process it started dies with it.
 *
 *   scenarios.ts facts <stack>          start, report what kubeadm wrote and what runs, stop
 */
import { LocalCluster, startLocalCluster } from "./localCluster";

const t0 = Date.now();
const log = (line: string) => process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(1)}s] ${line}\n`);

let cluster: LocalCluster | undefined;
let stopping = false;
async function shutdown(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    await cluster?.dispose(!!process.env.KUBEADM_HA_LOCAL_KEEP).catch(() => undefined);
  }
  process.exit(code);
}
process.on("SIGINT", () => void shutdown(130));
process.on("SIGTERM", () => void shutdown(143));

async function main(): Promise<void> {
  const [scenario, stack = "dev"] = process.argv.slice(2);
  cluster = await startLocalCluster({ stack, log });
  const c = cluster;
  switch (scenario) {
    case "facts": {
      const out = {
        masters: c.masters.map((m) => ({ name: m.name, ip: m.ip, components: m.runner.components(), argv: Object.fromEntries(m.runner.components().map((k) => [k, m.runner.argv(k)])) })),
        etcdMembers: c.etcdctl(["member", "list", "-w", "json"]).out,
        kcmLeader: (await c.leaderOf("kube-controller-manager"))?.name,
        schedulerLeader: (await c.leaderOf("kube-scheduler"))?.name,
      };
      process.stdout.write(JSON.stringify(out) + "\n");
      break;
    }
    default:
      throw new Error(`unknown scenario ${scenario}`);
  }
}

main().then(
  () => shutdown(0),
  (e: unknown) => {
    log(`FAILED: ${e instanceof Error ? e.message : String(e)}`);
    void shutdown(1);
  },
);
