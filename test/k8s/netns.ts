/**
 * A private network for the loopback control plane: a new Linux network namespace whose only
 * device is its own loopback, with the rendered machine addresses added to it.
 *
 * Why not 127.0.0.0/8 addresses: kubeadm refuses a loopback advertise address (it takes it as a
 * request to pick a global unicast address from the loopback device, cmd/kubeadm/app/util/config
 * SetAPIEndpointDynamicDefaults), and the API server's endpoint reconciler cannot publish one (Endpoints
 * validation rejects 127.0.0.0/8). In a namespace of its own the machines keep their rendered private
 * addresses, nothing can leave (there is no other device), and the host's network is untouched.
 */
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as path from "path";

/** Set in the environment of a process started by `spawnInPrivateNetwork`. */
export const PRIVATE_NETWORK_ENV = "KUBEADM_HA_PRIVATE_NETWORK";

const REPO = path.resolve(__dirname, "..", "..");

/** True inside a namespace made by `spawnInPrivateNetwork`, whose only link is loopback. */
export function inPrivateNetwork(): boolean {
  if (process.env[PRIVATE_NETWORK_ENV] !== "1") return false;
  const links = spawnSync("ip", ["-o", "link", "show"], { encoding: "utf8" }).stdout.trim().split("\n");
  return links.length === 1 && /^\d+: lo:/.test(links[0]);
}

/**
 * Adds `ips` to the namespace's loopback. Connections between them leave from 127.0.0.1 (the local
 * route's preferred source): otherwise Linux sends them from the destination address, and etcd,
 * which checks a peer's certificate against the address it connects from, would refuse every peer.
 * kubeadm's etcd peer certificates name 127.0.0.1.
 */
export function addAddresses(ips: string[]): void {
  if (!inPrivateNetwork()) throw new Error("addAddresses: not inside a private network namespace (spawnInPrivateNetwork); refusing to change this host's network");
  for (const ip of new Set(ips)) {
    for (const args of [
      ["addr", "replace", `${ip}/32`, "dev", "lo"],
      ["route", "replace", "local", ip, "dev", "lo", "table", "local", "proto", "kernel", "scope", "host", "src", "127.0.0.1"],
    ]) {
      const r = spawnSync("ip", args, { encoding: "utf8" });
      if (r.status !== 0) throw new Error(`ip ${args.join(" ")}: ${r.stderr}`);
    }
  }
}

/**
 * Runs `node -r @swc-node/register <script> ...args` in a new network namespace with loopback up.
 * Root makes the namespace directly; otherwise an unprivileged user namespace maps this user to root
 * inside it (kubeadm's --rootfs needs chroot, which that allows too).
 */
export function spawnInPrivateNetwork(script: string, args: string[], opts: { stdio?: "pipe" | "inherit"; env?: NodeJS.ProcessEnv } = {}): ChildProcess {
  const root = process.getuid?.() === 0;
  const unshare = root ? ["--net"] : ["--user", "--map-root-user", "--net"];
  const probe = spawnSync("unshare", [...unshare, "true"], { encoding: "utf8" });
  if (probe.status !== 0)
    throw new Error(`the loopback control plane needs a private network namespace, and \`unshare ${unshare.join(" ")}\` failed: ${probe.stderr.trim()} (run as root, or enable unprivileged user namespaces)`);
  const node = [process.execPath, "-r", "@swc-node/register", script, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(" ");
  // A PID namespace too, whose init is the script: when it exits, however, the kernel kills every
  // process it started (API servers, etcd, HAProxy), so nothing outlives a run. As PID 1 the script
  // only gets the signals it handles: it must handle SIGINT and SIGTERM itself.
  return spawn("unshare", [...unshare, "--pid", "--fork", "--kill-child", "--", "bash", "-c", `ip link set lo up && exec ${node}`], {
    cwd: REPO,
    stdio: opts.stdio === "inherit" ? "inherit" : ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...opts.env, [PRIVATE_NETWORK_ENV]: "1" },
  });
}

/** Runs a script in a private network and resolves with its exit code, stdout and stderr. */
export function runInPrivateNetwork(script: string, args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; onStderr?: (chunk: string) => void } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawnInPrivateNetwork(script, args, { env: opts.env });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on("data", (c: Buffer) => {
    stderr += c.toString();
    opts.onStderr?.(c.toString());
  });
  return new Promise((resolve) => {
    const timer = opts.timeoutMs ? setTimeout(() => child.kill("SIGTERM"), opts.timeoutMs) : undefined;
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
