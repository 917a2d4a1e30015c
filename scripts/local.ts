/**
 * `npm run local -- <stack>`: the stack's HA control plane on this machine, for a person to try:
 * the real kubeadm, API servers, controller managers, schedulers and etcd (built by
 * test/k8s/build.sh), HAProxy in front, all in a private network namespace (test/k8s/localCluster.ts).
 * Prints the kubeconfig path and how to reach the API; Ctrl-C (or SIGTERM) stops everything: the
 * control plane's own shutdown first, and its PID namespace guarantees no process outlives it.
 * KUBEADM_HA_LOCAL_KEEP=1 keeps the work dir.
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
const child = spawnInPrivateNetwork(path.join(ROOT, "test/k8s/scenarios.ts"), ["local", stack], { stdio: "pipe" });
let innerPid: number | undefined;
let workDir: string | undefined;
let buffered = "";
child.stdout!.pipe(process.stdout);
child.stderr!.on("data", (chunk: Buffer) => {
  process.stderr.write(chunk);
  buffered += chunk.toString();
  innerPid ??= Number(/host pid (\d+)/.exec(buffered)?.[1]) || undefined;
  workDir ??= /work dir (\S+)/.exec(buffered)?.[1];
});
// The scenario is its namespace's PID 1, which gets only the signals it handles: ask it to stop by
// its host PID, so it disposes of the cluster itself.
const stop = () => {
  if (innerPid) {
    try {
      process.kill(innerPid, "SIGTERM");
      return;
    } catch {
      /* already gone */
    }
  }
  child.kill("SIGTERM");
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
child.once("exit", (code, signal) => {
  // Killed before it could clean up (its namespace took every process with it): the files remain.
  if (workDir && !process.env.KUBEADM_HA_LOCAL_KEEP) fs.rmSync(workDir, { recursive: true, force: true });
  process.exit(code ?? (signal ? 1 : 0));
});
