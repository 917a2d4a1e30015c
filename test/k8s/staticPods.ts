/**
 * A stand-in for the kubelet of one control plane machine on loopback: it watches the machine's
 * static pod directory (kubeadm writes it) and runs each pod's container command as a process with
 * the real binary, restarts it when the manifest changes and after a crash (kube-controller-manager
 * and kube-scheduler exit when they lose their lease, and the kubelet restarts them), and keeps what
 * kubeadm reads through the API in step: the Node with a heartbeat Lease, and a mirror Pod per
 * static pod with its Ready condition (kubeadm finds the etcd members from the etcd mirror pods'
 * annotations when a master joins). No containers, no images: the manifest's image tag is ignored
 * and the built binaries run. As the kubelet, it replaces a mirror pod when its manifest changes,
 * with the manifest's hash in `kubernetes.io/config.hash`, which `kubeadm upgrade` waits on, and
 * reports the built release as its kubelet version.
 *
 * Every machine shares this host's loopback, so `hostCommand` moves what a machine would bind on
 * its own 127.0.0.1 to its own loopback address, and maps host paths into the machine's root.
 */
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { parse } from "yaml";
import { KubeCredentials, apiOk, apiRequest } from "./apiClient";

/** One machine of the loopback cluster. */
export interface MachineHost {
  /** Node name (the rendered EC2 private DNS name). */
  name: string;
  /** The machine's address: a loopback address standing in for its private IP. */
  ip: string;
  /** The directory standing in for the machine's `/`. */
  root: string;
}

/** Host paths a static pod's flags name, which live under the machine's root here. */
export const HOST_PATHS = ["/etc/kubernetes", "/var/lib/etcd", "/etc/kubeadm-ha"];

/** The container command of a static pod manifest, as written. */
export function manifestCommand(manifestYaml: string): { pod: any; command: string[] } {
  const pod = parse(manifestYaml, { version: "1.1" });
  const command = pod?.spec?.containers?.[0]?.command;
  if (!Array.isArray(command) || command.length === 0) throw new Error("static pod manifest has no container command");
  return { pod, command: command.map(String) };
}

/**
 * The process to run for a static pod's container command on `host`: the binary from `binDir`, host
 * paths under `host.root`, `127.0.0.1` moved to `host.ip` (three machines cannot all bind the one
 * 127.0.0.1), an API server bound to `host.ip` instead of every address, and etcd's client URLs
 * without the duplicate that moving 127.0.0.1 makes. Nothing else changes.
 */
export function hostCommand(command: string[], host: MachineHost, binDir: string): string[] {
  const [bin, ...flags] = command;
  if (bin.includes("/")) throw new Error(`static pod command ${bin} is a path; kubeadm writes a bare binary name`);
  const mapValue = (v: string) => {
    let out = v.split("127.0.0.1").join(host.ip);
    for (const p of HOST_PATHS) out = out.split(p).join(path.join(host.root, p));
    return out;
  };
  let mapped = flags.map(mapValue);
  if (bin === "kube-apiserver" && !mapped.some((f) => f.startsWith("--bind-address="))) mapped.push(`--bind-address=${host.ip}`);
  if (bin === "etcd")
    mapped = mapped.map((f) => {
      if (!f.startsWith("--listen-client-urls=")) return f;
      const urls = f.slice("--listen-client-urls=".length).split(",");
      return `--listen-client-urls=${[...new Set(urls)].join(",")}`;
    });
  return [path.join(binDir, bin), ...mapped];
}

interface Running {
  file: string;
  hash: string;
  pod: any;
  argv: string[];
  proc?: ChildProcess;
  /** Set by `hold`: a test stopped it, so no restart until `release`. */
  held: boolean;
  restarts: number;
  startedAt: number;
  timer?: NodeJS.Timeout;
}

export interface StaticPodRunnerOptions {
  host: MachineHost;
  binDir: string;
  /** Where each component's stdout and stderr go, `<logDir>/<node>-<component>.log`. */
  logDir: string;
  /** Admin credentials for the Node, its Lease and the mirror pods; set later with `attachApi`. */
  api?: KubeCredentials;
  /** Manifest poll period in ms; default 200. */
  pollMs?: number;
}

/** How long a crashed component waits before its next start: the kubelet's back-off, shortened. */
export function restartDelayMs(restarts: number): number {
  return Math.min(1000 * 2 ** restarts, 10000);
}

export class StaticPodRunner {
  readonly host: MachineHost;
  private readonly binDir: string;
  private readonly logDir: string;
  private readonly pollMs: number;
  private api?: KubeCredentials;
  private readonly pods = new Map<string, Running>();
  private poller?: NodeJS.Timeout;
  private heartbeat?: NodeJS.Timeout;
  private stopped = false;
  private syncing = Promise.resolve();

  constructor(o: StaticPodRunnerOptions) {
    this.host = o.host;
    this.binDir = o.binDir;
    this.logDir = o.logDir;
    this.pollMs = o.pollMs ?? 200;
    this.api = o.api;
  }

  get manifestDir(): string {
    return path.join(this.host.root, "etc/kubernetes/manifests");
  }

  /** Starts watching the manifest directory. */
  start(): void {
    fs.mkdirSync(this.manifestDir, { recursive: true });
    this.poller = setInterval(() => this.scan(), this.pollMs);
    this.scan();
  }

  /** From now on register the Node, keep its Lease and mirror every static pod. */
  async attachApi(api: KubeCredentials): Promise<void> {
    this.api = api;
    await this.registerNode();
    this.heartbeat = setInterval(() => void this.renewNodeLease().catch(() => undefined), 10000);
    for (const r of this.pods.values()) this.mirrorLater(r);
  }

  /** Components with a manifest, by the manifest's pod name (etcd, kube-apiserver, ...). */
  components(): string[] {
    return [...this.pods.keys()].sort();
  }

  isRunning(component: string): boolean {
    const p = this.pods.get(component)?.proc;
    return !!p && p.exitCode === null && p.signalCode === null;
  }

  pid(component: string): number | undefined {
    return this.isRunning(component) ? this.pods.get(component)!.proc!.pid : undefined;
  }

  /** The command line the component runs with (mapped), for assertions. */
  argv(component: string): string[] {
    const r = this.pods.get(component);
    if (!r) throw new Error(`${this.host.name}: no static pod ${component} (have ${this.components().join(", ") || "none"})`);
    return r.argv;
  }

  /** Sends `signal` to a component and holds it down (no restart) until `release`; resolves when it exited. */
  async hold(component: string, signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const r = this.pods.get(component);
    if (!r) throw new Error(`${this.host.name}: no static pod ${component}`);
    r.held = true;
    clearTimeout(r.timer);
    await this.terminate(r, signal, 15000);
    this.mirrorLater(r);
  }

  /** Lets a held component run again, as the kubelet would restart it. */
  release(component: string): void {
    const r = this.pods.get(component);
    if (!r) throw new Error(`${this.host.name}: no static pod ${component}`);
    r.held = false;
    r.restarts = 0;
    if (!this.isRunning(component)) this.launch(r);
  }

  /** Stops watching and kills every component (SIGKILL, a machine switched off). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.poller);
    clearInterval(this.heartbeat);
    await this.syncing;
    await Promise.all([...this.pods.values()].map((r) => {
      clearTimeout(r.timer);
      return this.terminate(r, "SIGKILL", 5000);
    }));
  }

  logFile(component: string): string {
    return path.join(this.logDir, `${this.host.name}-${component}.log`);
  }

  private scan(): void {
    if (this.stopped) return;
    let files: string[];
    try {
      files = fs.readdirSync(this.manifestDir).filter((f) => f.endsWith(".yaml")).sort();
    } catch {
      return;
    }
    const seen = new Set<string>();
    for (const f of files) {
      const file = path.join(this.manifestDir, f);
      let text: string;
      try {
        text = fs.readFileSync(file, "utf8");
      } catch {
        continue;
      }
      const hash = crypto.createHash("sha256").update(text).digest("hex");
      let parsed: { pod: any; command: string[] };
      try {
        parsed = manifestCommand(text);
      } catch {
        continue; // a manifest being written; the next scan reads it whole
      }
      const component = String(parsed.pod.metadata?.name ?? path.basename(f, ".yaml"));
      seen.add(component);
      const old = this.pods.get(component);
      if (old && old.hash === hash) continue;
      const r: Running = { file, hash, pod: parsed.pod, argv: hostCommand(parsed.command, this.host, this.binDir), held: old?.held ?? false, restarts: 0, startedAt: 0 };
      this.pods.set(component, r);
      this.syncing = this.syncing.then(async () => {
        if (old) {
          clearTimeout(old.timer);
          await this.terminate(old, "SIGTERM", 30000);
        }
        if (!r.held && !this.stopped) this.launch(r);
      });
    }
    for (const [component, r] of this.pods)
      if (!seen.has(component)) {
        this.pods.delete(component);
        clearTimeout(r.timer);
        this.syncing = this.syncing.then(() => this.terminate(r, "SIGTERM", 30000)).then(() => this.unmirror(component));
      }
  }

  private launch(r: Running): void {
    if (this.stopped) return;
    const component = String(r.pod.metadata.name);
    const fd = fs.openSync(this.logFile(component), "a");
    fs.writeSync(fd, `\n=== ${new Date().toISOString()} start ${r.argv.join(" ")}\n`);
    // Only PATH: the flags alone configure each component, as in its container.
    const proc = spawn(r.argv[0], r.argv.slice(1), { env: { PATH: process.env.PATH }, stdio: ["ignore", fd, fd] });
    fs.closeSync(fd);
    r.proc = proc;
    r.startedAt = Date.now();
    proc.once("exit", () => {
      this.mirrorLater(r);
      if (this.stopped || r.held || this.pods.get(component) !== r) return;
      // A component that ran a minute counts as healthy again, as the kubelet resets its back-off.
      if (Date.now() - r.startedAt > 60000) r.restarts = 0;
      r.timer = setTimeout(() => {
        if (!this.stopped && !r.held && this.pods.get(component) === r && !this.isRunning(component)) this.launch(r);
      }, restartDelayMs(r.restarts++));
    });
    this.mirrorLater(r);
  }

  private terminate(r: Running, signal: NodeJS.Signals, graceMs: number): Promise<void> {
    const p = r.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => p.kill("SIGKILL"), graceMs);
      p.once("exit", () => {
        clearTimeout(timer);
        resolve();
      });
      p.kill(signal);
    });
  }

  /** The release of the built binaries (`kube-apiserver --version`), which this stand-in reports as its kubelet's. */
  private kubeletVersion(): string {
    const r = spawnSync(path.join(this.binDir, "kube-apiserver"), ["--version"], { encoding: "utf8" });
    return /v\d+\.\d+\.\d+/.exec(r.stdout ?? "")?.[0] ?? "unknown";
  }

  private async registerNode(): Promise<void> {
    const api = this.api!;
    const now = new Date().toISOString();
    const node = {
      apiVersion: "v1",
      kind: "Node",
      metadata: { name: this.host.name, labels: { "kubernetes.io/hostname": this.host.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64" } },
      status: {
        conditions: [{ type: "Ready", status: "True", reason: "KubeletReady", message: "loopback harness", lastHeartbeatTime: now, lastTransitionTime: now }],
        addresses: [{ type: "InternalIP", address: this.host.ip }, { type: "Hostname", address: this.host.name }],
      },
    };
    const r = await apiRequest(api, "/api/v1/nodes", { method: "POST", body: node });
    if (r.status !== 201 && r.status !== 409) throw new Error(`register node ${this.host.name}: HTTP ${r.status}: ${r.body}`);
    // The API server drops the status of a created Node: the kubelet posts it to the status subresource.
    const status = { ...node.status, nodeInfo: { kubeletVersion: this.kubeletVersion(), kubeProxyVersion: "", operatingSystem: "linux", architecture: "amd64" } };
    const st = await apiRequest(api, `/api/v1/nodes/${this.host.name}/status`, { method: "PATCH", body: { status }, contentType: "application/merge-patch+json" });
    if (st.status !== 200) throw new Error(`node ${this.host.name} status: HTTP ${st.status}: ${st.body}`);
    await this.renewNodeLease();
  }

  private async renewNodeLease(): Promise<void> {
    const api = this.api!;
    const base = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases";
    const renewTime = new Date().toISOString().replace("Z", "000Z");
    const lease = { apiVersion: "coordination.k8s.io/v1", kind: "Lease", metadata: { name: this.host.name }, spec: { holderIdentity: this.host.name, leaseDurationSeconds: 40, renewTime } };
    const r = await apiRequest(api, `${base}/${this.host.name}`, { method: "PATCH", body: { spec: { holderIdentity: this.host.name, leaseDurationSeconds: 40, renewTime } }, contentType: "application/merge-patch+json" });
    if (r.status === 404) await apiRequest(api, base, { method: "POST", body: lease });
  }

  /** Mirrors in the background; a failure is logged to the component's log and retried on the next change. */
  private mirrorLater(r: Running): void {
    this.mirror(r).catch((e: unknown) => {
      if (!this.stopped) fs.appendFileSync(this.logFile(String(r.pod.metadata.name)), `\n=== mirror pod: ${e instanceof Error ? e.message : String(e)}\n`);
    });
  }

  private mirrorName(component: string): string {
    return `${component}-${this.host.name}`;
  }

  private async mirror(r: Running): Promise<void> {
    const api = this.api;
    if (!api || this.stopped) return;
    const component = String(r.pod.metadata.name);
    // A pod its manifest replaced mirrors nothing any more.
    if (this.pods.get(component) !== r) return;
    const name = this.mirrorName(component);
    const url = `/api/v1/namespaces/kube-system/pods/${name}`;
    let current = await apiRequest(api, url);
    const hash = r.hash.slice(0, 32);
    // A changed manifest is a new pod: the kubelet deletes the old mirror and creates one with the new hash.
    if (current.status === 200 && current.json?.metadata?.annotations?.["kubernetes.io/config.hash"] !== hash) {
      await apiRequest(api, `${url}?gracePeriodSeconds=0`, { method: "DELETE" });
      current = await apiRequest(api, url);
    }
    if (current.status === 404) {
      const pod = structuredClone(r.pod);
      pod.metadata = {
        ...pod.metadata,
        name,
        namespace: "kube-system",
        annotations: { ...(pod.metadata.annotations ?? {}), "kubernetes.io/config.mirror": hash, "kubernetes.io/config.hash": hash, "kubernetes.io/config.source": "file" },
      };
      pod.spec.nodeName = this.host.name;
      await apiOk(api, "/api/v1/namespaces/kube-system/pods", { method: "POST", body: pod });
      current = await apiRequest(api, url);
    }
    if (current.status !== 200) return;
    const ready = this.isRunning(component) ? "True" : "False";
    const now = new Date().toISOString();
    const status = {
      phase: "Running",
      podIP: this.host.ip,
      podIPs: [{ ip: this.host.ip }],
      hostIP: this.host.ip,
      startTime: now,
      conditions: ["Initialized", "PodScheduled", "ContainersReady", "Ready"].map((type) => ({ type, status: type === "Ready" || type === "ContainersReady" ? ready : "True", lastTransitionTime: now })),
    };
    await apiRequest(api, `${url}/status`, { method: "PATCH", body: { status }, contentType: "application/merge-patch+json" });
  }

  private async unmirror(component: string): Promise<void> {
    if (!this.api || this.stopped) return;
    await apiRequest(this.api, `/api/v1/namespaces/kube-system/pods/${this.mirrorName(component)}`, { method: "DELETE" }).catch(() => undefined);
  }
}
