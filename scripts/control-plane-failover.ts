/**
 * `npm run bench:control-plane -- <stack> [--trials N] [--write]`: the control plane's failovers,
 * measured on the real binaries. Starts the stack's HA control plane on loopback in a private
 * network namespace (test/k8s/localCluster.ts: kubeadm, three API servers behind HAProxy with the
 * NLB's health check, controller managers and schedulers electing leaders with the stack's leases,
 * stacked or external etcd), runs every failover of test/k8s/failover.ts `trials` times (default 3),
 * and checks each measurement against its bound:
 *
 * - API server killed: the span from the first to the last failed request through the load balancer
 *   (round robin interleaves them with successes) within the NLB budget (failoverBudget apiServerLoss: the
 *   health check's interval x unhealthy threshold + timeout) plus one request period and a margin;
 * - controller-manager and scheduler leaders killed (SIGKILL) and stopped (SIGTERM): another instance
 *   holds the Lease within the leader-election worst case (leaderLeaseLoss: leaseDuration + 2 x
 *   retryPeriod x 2.2) plus a margin; the table also counts the trials within leaseDuration +
 *   retryPeriod, the bound a reader usually has in mind, which client-go's jitter can exceed;
 * - stacked: API server 0's own etcd member killed: API server 0 keeps answering (no error window
 *   longer than ERROR_WINDOW_LOCAL_ETCD_MS);
 * - etcd leader killed under an open-loop write load through the API (a write every 50 ms): the
 *   longest gap between acknowledged writes within the etcd budget (etcdLeaderLoss, one more
 *   2 x election timeout per split vote) plus one period and a margin; the slowest write in flight at
 *   the kill within etcd's request timeout (etcdWriteInFlightLoss) plus a margin; no acknowledged
 *   write lost.
 *
 * The margin (MARGIN_MS) is scheduling on a 2-core CI machine running twelve control plane processes.
 * `--write` puts the tables in docs/performance.md and the figures in docs/failover-measured.json,
 * which `npm run failover -- <stack>` prints beside the computed budget. Exits 1 when a bound is
 * exceeded or a write is lost, 2 on usage errors.
 */
import * as fs from "fs";
import * as path from "path";
import { durationMs, parseConfig } from "../config";
import { API_HEALTH_CHECK } from "../components/apiLoadBalancer";
import { runInPrivateNetwork } from "../test/k8s/netns";
import type { ApiServerKillTrial, EtcdLeaderKillTrial, LeaderLossTrial, LocalEtcdKillTrial } from "../test/k8s/failover";
import { replaceBetweenMarkers } from "./benchLib";
import { apiServerLoss, etcdLeaderLoss, etcdWriteInFlightLoss, leaderLeaseLoss, rawStackConfig } from "./failoverBudget";
import { stackConfig } from "./renderLib";

const ROOT = path.resolve(__dirname, "..");
const USAGE = "usage: npm run bench:control-plane -- <stack> [--trials N] [--write]";
export const MARGIN_MS = 1000;
/** Request period of the probing clients (test/k8s/failover.ts). */
const PERIOD_MS = 100;
/** Request period of the etcd write load. */
const PERIOD_MS_ETCD = 50;
/** How long API server 0 may fail requests while its own etcd member is gone: the etcd client moving to the next endpoint. */
export const ERROR_WINDOW_LOCAL_ETCD_MS = 1000;
export const MEASURED_FILE = path.join(ROOT, "docs", "failover-measured.json");

export interface Measured {
  apiServerKill: ApiServerKillTrial[];
  leaderKill: LeaderLossTrial[];
  leaderTerm: LeaderLossTrial[];
  localEtcdKill: LocalEtcdKillTrial[];
  etcdLeaderKill: EtcdLeaderKillTrial[];
}

/** One line of the comparison: a failure, the worst measured, the bound it was held to. */
export interface MeasuredRow {
  failure: string;
  trials: number;
  /** Every trial's figure, ms. */
  measuredMs: number[];
  boundMs: number;
  ok: boolean;
  note: string;
}

/** Measurements against their bounds for a stack's settings. Pure: the bench and `npm run failover` share it. */
export function measuredRows(settings: { leaseDuration: string; retryPeriod: string; heartbeatIntervalMs: number; electionTimeoutMs: number }, m: Measured): MeasuredRow[] {
  const api = apiServerLoss(API_HEALTH_CHECK).worstMs + PERIOD_MS + MARGIN_MS;
  const lease = durationMs(settings.leaseDuration);
  const retry = durationMs(settings.retryPeriod);
  const leader = leaderLeaseLoss("", lease, retry).worstMs + MARGIN_MS;
  const et = settings.electionTimeoutMs;
  // New writes wait for the election (one more randomized timeout per split vote), plus one request period.
  const etcdBound = (elections: number) => etcdLeaderLoss(settings.heartbeatIntervalMs, et).worstMs + Math.max(0, elections - 1) * 2 * et + PERIOD_MS_ETCD + MARGIN_MS;
  const inFlight = etcdWriteInFlightLoss(et).worstMs + MARGIN_MS;
  const rows: MeasuredRow[] = [];
  const row = (failure: string, ms: number[], boundMs: number, note: string, extraOk = true) =>
    rows.push({ failure, trials: ms.length, measuredMs: ms, boundMs, ok: extraOk && ms.every((x) => x <= boundMs), note });
  const a = m.apiServerKill;
  // Round robin interleaves the dead server with live ones: clients see scattered errors until the
  // health check removes it, so the span of the errors is the figure the NLB budget bounds.
  row("API server killed: first to last failed request via the load balancer", a.map((t) => t.errorSpanMs), api,
    `${a.reduce((s, t) => s + t.failed, 0)} of ${a.reduce((s, t) => s + t.requests, 0)} requests failed; the longest run of consecutive failures ${Math.max(...a.map((t) => t.longestErrorWindowMs))} ms`);
  for (const [list, how] of [[m.leaderKill, "SIGKILL"], [m.leaderTerm, "SIGTERM"]] as const)
    for (const component of ["kube-controller-manager", "kube-scheduler"]) {
      const ms = list.filter((t) => t.component === component).map((t) => t.failoverMs);
      const within = ms.filter((x) => x <= lease + retry).length;
      row(`${component} leader stopped (${how}): until another holds the Lease`, ms, leader, `${within} of ${ms.length} within leaseDuration + retryPeriod (${(lease + retry) / 1000} s)`);
    }
  if (m.localEtcdKill.length > 0) {
    const l = m.localEtcdKill;
    row("stacked: API server 0's own etcd member killed: longest run of failed requests to API server 0", l.map((t) => t.longestErrorWindowMs), ERROR_WINDOW_LOCAL_ETCD_MS,
      `${l.reduce((s, t) => s + t.failed, 0)} of ${l.reduce((s, t) => s + t.requests, 0)} requests to API server 0 failed`);
  }
  const e = m.etcdLeaderKill;
  rows.push({
    failure: "etcd leader killed under writes through the API: longest gap between acknowledged writes",
    trials: e.length,
    measuredMs: e.map((t) => t.longestGapMs),
    boundMs: etcdBound(1),
    ok: e.every((t) => t.longestGapMs <= etcdBound(t.elections) && t.lost === 0 && t.elections >= 1),
    note: `${e.reduce((s, t) => s + t.acknowledged, 0)} of ${e.reduce((s, t) => s + t.writes, 0)} writes acknowledged, ${e.reduce((s, t) => s + t.lost, 0)} lost; elections ${e.map((t) => t.elections).join(", ")} (${2 * et} ms more bound per split vote)`,
  });
  row("etcd leader killed: the slowest write in flight at the kill (answered HTTP 500, retried by the client)", e.map((t) => t.longestInFlightMs), inFlight,
    `${e.reduce((s, t) => s + t.failed, 0)} writes failed in all`);
  return rows;
}

const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

/** What `--write` stores per stack in docs/failover-measured.json. */
export interface MeasuredRecord {
  measured: string;
  trials: number;
  settings: { leaseDuration: string; renewDeadline?: string; retryPeriod: string; heartbeatIntervalMs: number; electionTimeoutMs: number };
  results: Measured;
}

/** The stored measurements of `stack`, or undefined when it was never measured. */
export function readMeasured(stack: string, file = MEASURED_FILE): MeasuredRecord | undefined {
  if (!fs.existsSync(file)) return undefined;
  return (JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, MeasuredRecord>)[stack];
}

export function measuredTable(rows: MeasuredRow[]): string {
  return [
    "| failure | trials | worst measured | each trial | bound | within | notes |",
    "|---|---:|---:|---|---:|---|---|",
    ...rows.map((r) => `| ${r.failure} | ${r.trials} | ${s(Math.max(...r.measuredMs))} | ${r.measuredMs.map((x) => (x / 1000).toFixed(2)).join(", ")} | ${s(r.boundMs)} | ${r.ok ? "yes" : "**NO**"} | ${r.note} |`),
  ].join("\n");
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  let trials = 3;
  let write = false;
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--trials") {
      trials = Number(argv[++i]);
      if (!Number.isInteger(trials) || trials < 1) {
        console.error(`--trials needs a whole number of at least 1\n${USAGE}`);
        return 2;
      }
    } else if (argv[i] === "--write") write = true;
    else rest.push(argv[i]);
  }
  const stacks = fs.readdirSync(ROOT).filter((f) => /^Pulumi\.[^.]+\.yaml$/.test(f)).map((f) => f.split(".")[1]).sort();
  if (rest.length !== 1 || !stacks.includes(rest[0])) {
    console.error(`${USAGE}\nstacks: ${stacks.join(", ")}`);
    return 2;
  }
  const stack = rest[0];
  const config = parseConfig(rawStackConfig(stackConfig(fs.readFileSync(path.join(ROOT, `Pulumi.${stack}.yaml`), "utf8"))));
  const started = Date.now();
  const r = await runInPrivateNetwork(path.join(ROOT, "test/k8s/scenarios.ts"), ["failover", stack, String(trials)], {
    // Progress lines only; the components' own logs stay in the work dir.
    onStderr: (chunk) => {
      for (const line of chunk.split("\n")) if (/^\[\d+(\.\d+)?s\]/.test(line)) console.error(line);
    },
  });
  const last = r.stdout.trim().split("\n").pop() ?? "";
  if (r.code !== 0 || !last.startsWith("{")) {
    console.error(`the failover scenarios failed (exit ${r.code}):\n${r.stderr.split("\n").slice(-60).join("\n")}`);
    return 1;
  }
  const measured = JSON.parse(last).results as Measured;
  const settings = { ...config.leaderElection, heartbeatIntervalMs: config.etcd.heartbeatIntervalMs, electionTimeoutMs: config.etcd.electionTimeoutMs };
  const rows = measuredRows(settings, measured);
  const elapsed = Math.round((Date.now() - started) / 1000);
  const header = `Stack ${stack} (etcd ${config.etcd.topology}; leases ${config.leaderElection.leaseDuration}/${config.leaderElection.renewDeadline}/${config.leaderElection.retryPeriod}; etcd heartbeat ${config.etcd.heartbeatIntervalMs} ms, election ${config.etcd.electionTimeoutMs} ms), measured ${new Date().toISOString().slice(0, 10)} with \`npm run bench:control-plane -- ${stack} --trials ${trials} --write\` (${elapsed} s): Kubernetes ${config.kubernetesVersion.replace(/\.\d+$/, "")} binaries built from source, ${config.controlPlane.count} masters behind HAProxy with the NLB's health check, all on one 2-core machine.`;
  const table = measuredTable(rows);
  console.log(`${header}\n\n${table}`);
  if (write) {
    const doc = path.join(ROOT, "docs", "performance.md");
    fs.writeFileSync(doc, replaceBetweenMarkers(fs.readFileSync(doc, "utf8"), `control-plane-${stack}`, `${header}\n\n${table}`));
    const all = fs.existsSync(MEASURED_FILE) ? JSON.parse(fs.readFileSync(MEASURED_FILE, "utf8")) : {};
    all[stack] = { measured: new Date().toISOString().slice(0, 10), trials, settings, results: measured };
    fs.writeFileSync(MEASURED_FILE, JSON.stringify(all, null, 2) + "\n");
    console.log(`updated ${path.relative(process.cwd(), doc)} and ${path.relative(process.cwd(), MEASURED_FILE)}`);
  }
  const bad = rows.filter((x) => !x.ok);
  for (const b of bad) console.error(`FAIL: ${b.failure}: ${b.measuredMs.map((x) => x.toFixed(0)).join(", ")} ms against a bound of ${b.boundMs} ms (${b.note})`);
  return bad.length > 0 ? 1 : 0;
}

if (require.main === module)
  main().then(
    (rc) => (process.exitCode = rc),
    (e: unknown) => {
      console.error(e instanceof Error ? e.message : e);
      process.exitCode = 1;
    },
  );
