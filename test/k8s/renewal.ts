/**
 * The shipped cert-renew.sh, run on machines of the loopback control plane as the timer runs it on
 * EC2: the script text as machines receive it (comments stripped), node.env and paths of the
 * machine's root, the built kubeadm, kubectl and etcdctl. Every line the script logs is kept with
 * the time it arrived, so a test can order what several machines did.
 */
import { spawn, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { shipScripts } from "../shipped";
import { LocalCluster, LocalMachine } from "./localCluster";

export interface ScriptRun {
  machine: string;
  code: number | null;
  /** Every line the script wrote to stderr, with its arrival in ms since the epoch. */
  lines: Array<{ at: number; line: string }>;
}

let shipped: string | undefined;

/** Runs cloud-init/scripts/`script` on machine `m`; resolves when it exits. */
export function runScript(c: LocalCluster, m: LocalMachine, script: string, env: Record<string, string> = {}): Promise<ScriptRun> {
  shipped ??= shipScripts();
  const lines: ScriptRun["lines"] = [];
  const child = spawn("bash", [path.join(shipped, script)], {
    env: {
      PATH: `${c.binDir}:${process.env.PATH}`,
      HOME: m.root,
      KUBEADM_HA_ETC: path.join(m.root, "etc/kubeadm-ha"),
      KUBERNETES_DIR: path.join(m.root, "etc/kubernetes"),
      KUBEADM_HA_RUN: path.join(m.root, "run/kubeadm-ha"),
      KUBEADM_HA_LIB: shipped,
      KUBEADM_HA_ETCD_DATA_DIR: path.join(m.root, "var/lib/etcd"),
      KUBEADM_HA_ROOTFS: m.root,
      KUBEADM_HA_LOCAL_ADDRESS: m.ip,
      ETCDCTL: path.join(c.binDir, "etcdctl"),
      ETCDUTL: path.join(c.binDir, "etcdutl"),
      KUBEADM_HA_WAIT_SECONDS: "300",
      KUBEADM_HA_POLL_SECONDS: "1",
      ...env,
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let partial = "";
  child.stderr!.on("data", (chunk: Buffer) => {
    const now = Date.now();
    const parts = (partial + chunk.toString()).split("\n");
    partial = parts.pop()!;
    for (const line of parts) lines.push({ at: now, line });
  });
  return new Promise((resolve) => child.once("exit", (code) => resolve({ machine: m.name, code, lines: partial ? [...lines, { at: Date.now(), line: partial }] : lines })));
}

/** Sets one variable of a machine's node.env (where cloud-init puts the stack's settings). */
export function setNodeEnv(m: LocalMachine, key: string, value: string): void {
  const file = path.join(m.root, "etc/kubeadm-ha/node.env");
  const lines = fs.readFileSync(file, "utf8").split("\n").filter((l) => l !== "" && !l.startsWith(`${key}=`));
  fs.writeFileSync(file, [...lines, `${key}='${value}'`].join("\n") + "\n");
}

/** The SHA-256 fingerprint and notAfter (ms) of a PEM certificate file. */
export function certInfo(file: string): { fingerprint: string; notAfter: number } {
  const x = new crypto.X509Certificate(fs.readFileSync(file));
  return { fingerprint: x.fingerprint256, notAfter: Date.parse(x.validTo) };
}

/** The certificate a TLS server presents at `host:port` (none: ""), as `openssl s_client` sees it. */
export function servedFingerprint(hostPort: string): string {
  const r = spawnSync("bash", ["-c", `openssl s_client -connect ${hostPort} </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256 2>/dev/null`], { encoding: "utf8", timeout: 10000 });
  return (r.stdout ?? "").trim().replace(/^sha256 Fingerprint=/i, "");
}

/** When a run restarted components: from its first "restarting" line to its "restarted" summary. */
export function restartWindow(run: ScriptRun): { from: number; to: number } | undefined {
  const from = run.lines.find((l) => l.line.includes("kubeadm-ha[cert-renew]: restarting "))?.at;
  const to = run.lines.find((l) => /kubeadm-ha\[cert-renew\]: certificates renewed and .* restarted/.test(l.line))?.at;
  return from !== undefined && to !== undefined ? { from, to } : undefined;
}
