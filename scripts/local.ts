/**
 * `npm run local -- <stack>`: the stack's HA control plane on this machine, for a person to try:
 * the real kubeadm, API servers, controller managers, schedulers and etcd (built by
 * test/k8s/build.sh), HAProxy in front, all in a private network namespace (test/k8s/localCluster.ts).
 * Prints the kubeconfig path and how to reach the API; Ctrl-C stops everything, and the namespace's
 * PID namespace guarantees no process outlives it. KUBEADM_HA_LOCAL_KEEP=1 keeps the work dir.
 */
import * as fs from "fs";
import * as path from "path";
import { spawnInPrivateNetwork } from "../test/k8s/netns";

const ROOT = path.resolve(__dirname, "..");
const stacks = fs.readdirSync(ROOT).filter((f) => /^Pulumi\.[^.]+\.yaml$/.test(f)).map((f) => f.split(".")[1]).sort();
const stack = process.argv[2];
if (!stack || process.argv.length > 3 || !stacks.includes(stack)) {
  console.error(`usage: npm run local -- <stack>\nstacks: ${stacks.join(", ")}`);
  process.exit(2);
}
const child = spawnInPrivateNetwork(path.join(ROOT, "test/k8s/scenarios.ts"), ["local", stack], { stdio: "inherit" });
// The terminal's Ctrl-C reaches the child too (same process group); it stops the cluster and exits.
process.on("SIGINT", () => undefined);
process.on("SIGTERM", () => child.kill("SIGTERM"));
child.once("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
