/**
 * Failovers measured on the loopback control plane (localCluster.ts), one trial at a time. Each
 * trial leaves the cluster as it found it: the stopped process is started again and the trial
 * returns only once the control plane is whole.
 *
 * - apiServerKill: a client sends a request through the load balancer every 100 ms, each on a new
 *   connection, while one API server is SIGKILLed; the errors last until HAProxy's health check
 *   (the NLB's: HTTPS /readyz) takes it out of rotation.
 * - leaderLoss: the kube-controller-manager and kube-scheduler leaders are stopped together (SIGKILL:
 *   the machine died; SIGTERM: a clean shutdown), and each Lease is polled every 50 ms until another
 *   instance holds it. The two leases are independent, so one trial measures both.
 * - localEtcdKill (stacked): API server 0's own etcd member is SIGKILLed while requests go to API
 *   server 0 directly; its --etcd-servers names the other masters' members, so it keeps answering.
 * - etcdLeaderKill: the etcd leader is SIGKILLed under a sequential write load through the load
 *   balancer; the longest gap between acknowledged writes, and every acknowledged write must be
 *   readable afterwards.
 */
import { LocalCluster, LocalMachine, apiOk, apiRequest, waitFor, waitReady } from "./localCluster";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** One request of a probe loop: when it was sent, whether it succeeded, how long it took. */
export interface Probe {
  sentMs: number;
  ok: boolean;
  tookMs: number;
  error?: string;
}

/**
 * The failed stretches of a probe sequence (in sending order): each from its first failed request's
 * send time to the send time of the next successful one. Returns the longest and the count of failures.
 */
export function errorWindows(probes: Probe[]): { failed: number; longestMs: number; windows: Array<{ fromMs: number; toMs: number }> } {
  const sorted = [...probes].sort((a, b) => a.sentMs - b.sentMs);
  const windows: Array<{ fromMs: number; toMs: number }> = [];
  let start: number | undefined;
  for (const p of sorted) {
    if (!p.ok && start === undefined) start = p.sentMs;
    if (p.ok && start !== undefined) {
      windows.push({ fromMs: start, toMs: p.sentMs });
      start = undefined;
    }
  }
  if (start !== undefined) windows.push({ fromMs: start, toMs: sorted[sorted.length - 1].sentMs + sorted[sorted.length - 1].tookMs });
  return { failed: sorted.filter((p) => !p.ok).length, longestMs: Math.max(0, ...windows.map((w) => w.toMs - w.fromMs)), windows };
}

/** The span from the first to the last failed request's send time, plus one period: how long clients saw errors at all. */
export function errorSpanMs(probes: Probe[], periodMs: number): number {
  const failed = probes.filter((p) => !p.ok).map((p) => p.sentMs);
  return failed.length === 0 ? 0 : Math.max(...failed) - Math.min(...failed) + periodMs;
}

/** The longest gap between consecutive acknowledgements, counting from `fromMs` (a write load's start). */
export function longestGapMs(ackMs: number[], fromMs: number): number {
  const sorted = [...ackMs].sort((a, b) => a - b);
  let prev = fromMs;
  let longest = 0;
  for (const t of sorted) {
    longest = Math.max(longest, t - prev);
    prev = t;
  }
  return longest;
}

/** Sends `send()` every `periodMs` without waiting for earlier ones, for `durationMs`; resolves when all answered. */
async function probeLoop(periodMs: number, durationMs: number, t0: number, send: () => Promise<boolean>, onTick?: (elapsedMs: number) => void): Promise<Probe[]> {
  const pending: Array<Promise<Probe>> = [];
  const start = Date.now();
  for (let i = 0; Date.now() - start < durationMs; i++) {
    const sentMs = Date.now() - t0;
    pending.push(
      send().then(
        (ok) => ({ sentMs, ok, tookMs: Date.now() - t0 - sentMs }),
        (e: unknown) => ({ sentMs, ok: false, tookMs: Date.now() - t0 - sentMs, error: e instanceof Error ? e.message : String(e) }),
      ),
    );
    onTick?.(Date.now() - start);
    await sleep(Math.max(0, start + (i + 1) * periodMs - Date.now()));
  }
  return Promise.all(pending);
}

export interface ApiServerKillTrial {
  killed: string;
  requests: number;
  failed: number;
  /** Longest run of consecutive failed requests, first failure to next success. */
  longestErrorWindowMs: number;
  /** First to last failed request: how long any client saw errors. */
  errorSpanMs: number;
}

/** Waits until the load balancer routes to every master again (HAProxy's rise after a restart). */
async function allServing(c: LocalCluster): Promise<void> {
  for (const m of c.masters) await waitReady(c.admin, `https://${m.ip}:6443`, 120000, c.logTail);
  // Enough consecutive successes through the balancer that every backend answered.
  await waitFor("30 consecutive requests through the load balancer", 120000, async () => {
    for (let i = 0; i < 30; i++) if ((await apiRequest(c.admin, "/readyz", { timeoutMs: 2000 }).catch(() => undefined))?.status !== 200) return undefined;
    return true;
  });
}

export async function apiServerKill(c: LocalCluster, victim: LocalMachine, opts: { periodMs?: number; afterKillMs: number }): Promise<ApiServerKillTrial> {
  const period = opts.periodMs ?? 100;
  await allServing(c);
  const t0 = Date.now();
  let killed = false;
  const probes = await probeLoop(period, 2000 + opts.afterKillMs, t0, async () => (await apiRequest(c.admin, "/api/v1/namespaces/default", { timeoutMs: 5000 })).status === 200, (elapsed) => {
    if (!killed && elapsed >= 2000) {
      killed = true;
      void victim.runner.hold("kube-apiserver", "SIGKILL");
    }
  });
  victim.runner.release("kube-apiserver");
  const w = errorWindows(probes);
  await allServing(c);
  return { killed: victim.name, requests: probes.length, failed: w.failed, longestErrorWindowMs: w.longestMs, errorSpanMs: errorSpanMs(probes, period) };
}

export interface LeaderLossTrial {
  signal: string;
  component: string;
  /** Master whose instance held the Lease and was stopped. */
  stopped: string;
  /** From the signal to another instance holding the Lease. */
  failoverMs: number;
}

/** Stops the kube-controller-manager and kube-scheduler leaders with `signal` together and times each Lease's handover. */
export async function leaderLoss(c: LocalCluster, signal: "SIGKILL" | "SIGTERM", timeoutMs: number): Promise<LeaderLossTrial[]> {
  const components = ["kube-controller-manager", "kube-scheduler"] as const;
  // Every instance up and a settled leader for both, so the standbys have seen the current holder.
  for (const m of c.masters) for (const k of components) await waitFor(`${k} on ${m.name}`, 60000, async () => (m.runner.isRunning(k) ? true : undefined));
  const leaders = await Promise.all(components.map((k) => waitFor(`the ${k} leader`, 120000, () => c.leaderOf(k))));
  const holders = await Promise.all(components.map((k) => c.leaseHolder(k)));
  await sleep(5000);
  const t0 = Date.now();
  await Promise.all(components.map((k, i) => leaders[i].runner.hold(k, signal)));
  const results = await Promise.all(
    components.map(async (k, i) => {
      const next = await waitFor(`another ${k} holding the Lease`, timeoutMs, async () => {
        const h = await c.leaseHolder(k).catch(() => undefined);
        return h && h !== holders[i] ? Date.now() : undefined;
      }, c.logTail);
      return { signal, component: k, stopped: leaders[i].name, failoverMs: next - t0 };
    }),
  );
  for (const [i, k] of components.entries()) leaders[i].runner.release(k);
  return results;
}

export interface LocalEtcdKillTrial {
  master: string;
  requests: number;
  failed: number;
  longestErrorWindowMs: number;
}

/** Stacked only: API server `m`'s own etcd member SIGKILLed while writes and reads go to API server `m` directly. */
export async function localEtcdKill(c: LocalCluster, m: LocalMachine, opts: { periodMs?: number; afterKillMs: number; namespace: string }): Promise<LocalEtcdKillTrial> {
  const period = opts.periodMs ?? 100;
  const server = `https://${m.ip}:6443`;
  let killed = false;
  let n = 0;
  const t0 = Date.now();
  const probes = await probeLoop(period, 2000 + opts.afterKillMs, t0, async () => {
    const i = n++;
    // Alternate a write and a quorum read: both need etcd.
    const r = i % 2 === 0
      ? await apiRequest(c.admin, `/api/v1/namespaces/${opts.namespace}/configmaps`, { server, method: "POST", body: { metadata: { name: `local-${t0}-${i}` }, data: { i: String(i) } }, timeoutMs: 5000 })
      : await apiRequest(c.admin, `/api/v1/namespaces/${opts.namespace}/configmaps?limit=1`, { server, timeoutMs: 5000 });
    return r.status === 200 || r.status === 201;
  }, (elapsed) => {
    if (!killed && elapsed >= 2000) {
      killed = true;
      void m.runner.hold("etcd", "SIGKILL");
    }
  });
  m.runner.release("etcd");
  await etcdHealthy(c);
  const w = errorWindows(probes);
  return { master: m.name, requests: probes.length, failed: w.failed, longestErrorWindowMs: w.longestMs };
}

async function etcdHealthy(c: LocalCluster): Promise<void> {
  await waitFor("every etcd member healthy", 120000, async () => {
    const r = c.etcdctl(["endpoint", "health"]);
    return r.ok && (r.out.match(/is healthy/g) ?? []).length === c.etcdEndpoints.length ? true : undefined;
  }, c.logTail);
}

interface EndpointStatus {
  Endpoint: string;
  Status: { header: { member_id: string; raft_term: string }; leader: string };
}

/** `etcdctl endpoint status -w json` of the members that answer; member IDs kept as strings (they exceed 2^53). */
function endpointStatuses(c: LocalCluster): EndpointStatus[] {
  const out = c.etcdctl(["endpoint", "status", "-w", "json"]).stdout.trim();
  return out.startsWith("[") ? (JSON.parse(out.replace(/:\s*(\d{10,})/g, ':"$1"')) as EndpointStatus[]) : [];
}

/** The machine running the etcd leader now (a master when stacked, an etcd machine when external). */
export function etcdLeader(c: LocalCluster): LocalMachine | undefined {
  const statuses = endpointStatuses(c);
  const leader = statuses.find((s) => String(s.Status.header.member_id) === String(s.Status.leader));
  if (!leader) return undefined;
  const ip = new URL(leader.Endpoint).hostname;
  return [...c.etcd, ...c.masters].find((m) => m.ip === ip && m.runner.components().includes("etcd"));
}

/** The highest raft term any member reports: each election increments it. */
function raftTerm(c: LocalCluster): number {
  return Math.max(0, ...endpointStatuses(c).map((s) => Number(s.Status.header.raft_term)));
}

export interface EtcdLeaderKillTrial {
  killed: string;
  /** Writes sent, one every `periodMs`. */
  writes: number;
  acknowledged: number;
  /** Writes answered with an error (etcd's "request timed out, possibly due to previous leader failure"). */
  failed: number;
  /** The longest time without an acknowledgement, from 1 s before the kill to the end of the load. */
  longestGapMs: number;
  /** The slowest write sent before the kill: a proposal in flight to the dead leader waits out etcd's request timeout. */
  longestInFlightMs: number;
  /** Raft terms the recovery took: 1 is one election, more are split votes. */
  elections: number;
  /** Acknowledged writes missing afterwards: must be 0. */
  lost: number;
}

/**
 * An open-loop write load through the load balancer (a new ConfigMap every `periodMs`, each on its
 * own connection, none waiting for another, as many clients would), the etcd leader SIGKILLed after
 * 2 s, and every acknowledged write read back once the member is back.
 */
export async function etcdLeaderKill(c: LocalCluster, opts: { afterKillMs: number; namespace: string; periodMs?: number }): Promise<EtcdLeaderKillTrial> {
  const period = opts.periodMs ?? 50;
  await etcdHealthy(c);
  const victim = await waitFor("an etcd leader", 30000, async () => etcdLeader(c));
  const termBefore = raftTerm(c);
  const t0 = Date.now();
  let killAt = Number.POSITIVE_INFINITY;
  const results: Array<{ name: string; sentMs: number; doneMs: number; ok: boolean }> = [];
  let n = 0;
  await probeLoop(period, 2000 + opts.afterKillMs, t0, async () => {
    const name = `w-${t0}-${String(n++).padStart(6, "0")}`;
    const sentMs = Date.now() - t0;
    const r = await apiRequest(c.admin, `/api/v1/namespaces/${opts.namespace}/configmaps`, { method: "POST", body: { metadata: { name, labels: { trial: String(t0) } } }, timeoutMs: 60000 }).catch(() => undefined);
    const ok = r?.status === 201;
    results.push({ name, sentMs, doneMs: Date.now() - t0, ok });
    return ok;
  }, (elapsed) => {
    if (killAt === Number.POSITIVE_INFINITY && elapsed >= 2000) {
      killAt = Date.now() - t0;
      void victim.runner.hold("etcd", "SIGKILL");
    }
  });
  const elections = raftTerm(c) - termBefore;
  victim.runner.release("etcd");
  await etcdHealthy(c);
  const list = await apiOk(c.admin, `/api/v1/namespaces/${opts.namespace}/configmaps?labelSelector=trial%3D${t0}`, { timeoutMs: 30000 });
  const present = new Set((list.items as Array<{ metadata: { name: string } }>).map((i) => i.metadata.name));
  const acked = results.filter((r) => r.ok);
  const lastSent = Math.max(...results.map((r) => r.sentMs));
  // A trailing stretch without acknowledgements counts up to the last write sent.
  const gap = longestGapMs([...acked.map((r) => r.doneMs).filter((t) => t >= killAt - 1000), lastSent], killAt - 1000);
  return {
    killed: victim.name,
    writes: results.length,
    acknowledged: acked.length,
    failed: results.length - acked.length,
    longestGapMs: gap,
    longestInFlightMs: Math.max(0, ...results.filter((r) => r.sentMs <= killAt).map((r) => r.doneMs - r.sentMs)),
    elections,
    lost: acked.filter((r) => !present.has(r.name)).length,
  };
}

/** Creates a namespace for the trials' objects. */
export async function ensureNamespace(c: LocalCluster, name: string): Promise<void> {
  const r = await apiRequest(c.admin, "/api/v1/namespaces", { method: "POST", body: { metadata: { name } } });
  if (r.status !== 201 && r.status !== 409) throw new Error(`create namespace ${name}: HTTP ${r.status}: ${r.body}`);
}
