/**
 * Worst-case unavailability per failure, computed from a stack's settings, and warnings for
 * settings outside a sane range. Pure: `npm run failover -- <stack>` (scripts/failover.ts) prints
 * what these return; test/failover.test.ts pins them.
 */
import { ClusterConfig, durationMs, stackSettings } from "../config";
import { nlbHealthCheckProblems } from "../components/apiLoadBalancer";

/** What the NLB health check of the API target group needs (components/apiLoadBalancer.ts API_HEALTH_CHECK). */
export interface HealthCheck {
  interval: number;
  timeout: number;
  healthyThreshold: number;
  unhealthyThreshold: number;
}

/**
 * Environment figures the budget depends on but no setting holds. Defaults are pessimistic,
 * documented bounds, not typical values.
 */
export interface Assumptions {
  /** Round trip between zones of one region. AWS states "single-digit millisecond" latency between zones; 10 is that bound. */
  crossZoneRttMs: number;
  /**
   * One renewal attempt of a leader lease: a GET and an UPDATE of the Lease through the API server.
   * Kubernetes' API SLO allows 1 s at p99 for a single-object mutating call
   * (https://github.com/kubernetes/community/blob/master/sig-scalability/slos/api_call_latency.md).
   */
  leaseRenewAttemptMs: number;
  /** An fsync stall on EBS long enough to happen in normal operation (etcd alerts when WAL fsync p99 passes 10 ms; stalls of ~100 ms are common on network storage). */
  fsyncStallMs: number;
  /** client-go's HTTP/2 health check pings a connection silent this long: HTTP2_READ_IDLE_TIMEOUT_SECONDS, default 30 (kubernetes/kubernetes#95981). */
  http2ReadIdleMs: number;
  /** ... and drops it when the ping gets no answer this long: HTTP2_PING_TIMEOUT_SECONDS, default 15. */
  http2PingTimeoutMs: number;
}

export const DEFAULT_ASSUMPTIONS: Assumptions = { crossZoneRttMs: 10, leaseRenewAttemptMs: 2000, fsyncStallMs: 100, http2ReadIdleMs: 30000, http2PingTimeoutMs: 15000 };

/**
 * client-go's leader election `JitterFactor`: a candidate retries after RetryPeriod x [1, 2.2)
 * (wait.JitterUntil in tools/leaderelection/leaderelection.go `acquire`); the holder renews every
 * RetryPeriod without jitter.
 */
export const LEADER_ELECTION_JITTER = 1.2;

export interface FailoverRow {
  failure: string;
  /** Fastest possible recovery, ms. */
  bestMs: number;
  /** Worst case, ms. */
  worstMs: number;
  /** How the worst case is made up. */
  formula: string;
}

export interface FailoverWarning {
  setting: string;
  message: string;
}

export interface FailoverBudget {
  rows: FailoverRow[];
  warnings: FailoverWarning[];
}

/** The settings the budget reads, from the validated config. */
export type FailoverSettings = Pick<ClusterConfig, "leaderElection" | "etcd">;

/**
 * etcd leader loss. A follower calls an election when no message from the leader arrived for its
 * randomized election timeout, drawn in [electionTimeout, 2 x electionTimeout - 1] ticks of one
 * heartbeat (etcd raft `resetRandomizedElectionTimeout`: electionTimeout + rand.Intn(electionTimeout)),
 * counted in whole ticks, so up to one more heartbeat of phase: at most 2 x electionTimeout after
 * the last heartbeat. The election itself is a pre-vote and a vote round across zones plus an fsync
 * of the new term.
 */
export function etcdLeaderLoss(heartbeatMs: number, electionMs: number, a: Assumptions = DEFAULT_ASSUMPTIONS): FailoverRow {
  const round = 2 * a.crossZoneRttMs + a.fsyncStallMs;
  return {
    failure: "etcd leader",
    bestMs: electionMs - heartbeatMs + round,
    worstMs: 2 * electionMs + round,
    formula: `2 x electionTimeout (${electionMs} ms, randomized up to 2x) + pre-vote and vote rounds (2 x ${a.crossZoneRttMs} ms) + fsync (${a.fsyncStallMs} ms)`,
  };
}

/**
 * A write in flight when the etcd leader dies: the proposal it carried is lost with the leader, and
 * the member that took the request waits out etcd's request timeout before it answers "request timed
 * out, possibly due to previous leader failure" (etcd `ServerConfig.ReqTimeout`: 5 s for queueing,
 * computation and disk, plus 2 x election timeout for a leader election). kube-apiserver passes that
 * on as HTTP 500; the client retries. Writes sent after the election go through at once.
 */
export function etcdWriteInFlightLoss(electionMs: number): FailoverRow {
  return {
    failure: "etcd leader (a write in flight when it dies)",
    bestMs: 5000 + 2 * electionMs,
    worstMs: 5000 + 2 * electionMs,
    formula: `etcd's request timeout: 5 s + 2 x electionTimeout (${electionMs} ms), then an error the client retries`,
  };
}

/**
 * kube-controller-manager or kube-scheduler leader loss (client-go leader election). The holder
 * renews every retryPeriod; a standby records the time it last saw the Lease change (its own clock)
 * and takes the Lease on its first try after leaseDuration from then. Each try comes
 * retryPeriod x [1, 2.2) after the previous one, so the standby may see the last renewal up to one
 * jittered period late and try to take the Lease up to one more after it expired.
 */
export function leaderLeaseLoss(component: string, leaseMs: number, retryMs: number): FailoverRow {
  const maxTry = retryMs * (1 + LEADER_ELECTION_JITTER);
  return {
    failure: `${component} leader`,
    bestMs: leaseMs - retryMs,
    worstMs: leaseMs + 2 * maxTry,
    formula: `leaseDuration (${leaseMs / 1000} s) + 2 x retryPeriod x 2.2 (${retryMs / 1000} s, client-go jitter): one late observation, one late try`,
  };
}

/**
 * API server loss for new connections through the NLB: the target goes out of rotation after
 * unhealthyThreshold failed checks. The first check after the failure comes up to one interval
 * later, and a dead host answers nothing, so the last check waits out its timeout.
 */
export function apiServerLoss(hc: HealthCheck): FailoverRow {
  return {
    failure: "API server (new connections via NLB)",
    bestMs: ((hc.unhealthyThreshold - 1) * hc.interval + hc.timeout) * 1000,
    worstMs: (hc.interval * hc.unhealthyThreshold + hc.timeout) * 1000,
    formula: `interval (${hc.interval} s) x unhealthyThreshold (${hc.unhealthyThreshold}) + timeout (${hc.timeout} s) of the last check`,
  };
}

/**
 * API server loss for clients already connected to it (kubelets, controllers, kubectl watches):
 * the NLB does not reset flows to a dead target, so a client notices only through client-go's
 * HTTP/2 health check and then reconnects through the NLB.
 */
export function apiServerConnectedLoss(hc: HealthCheck, a: Assumptions = DEFAULT_ASSUMPTIONS): FailoverRow {
  const dead = a.http2ReadIdleMs + a.http2PingTimeoutMs;
  return {
    failure: "API server (clients already connected)",
    // A connection already silent for the read idle time is pinged at once.
    bestMs: Math.max(a.http2PingTimeoutMs, apiServerLoss(hc).bestMs),
    worstMs: Math.max(dead, apiServerLoss(hc).worstMs),
    formula: `client-go HTTP/2 health check: read idle (${a.http2ReadIdleMs / 1000} s) + ping timeout (${a.http2PingTimeoutMs / 1000} s), then a new connection through the NLB, which has removed the target by then`,
  };
}

/** Every row and every warning for `s`, with the NLB health check `hc`. */
export function failoverBudget(s: FailoverSettings, hc: HealthCheck, a: Assumptions = DEFAULT_ASSUMPTIONS): FailoverBudget {
  const lease = durationMs(s.leaderElection.leaseDuration);
  const renew = durationMs(s.leaderElection.renewDeadline);
  const retry = durationMs(s.leaderElection.retryPeriod);
  const { heartbeatIntervalMs: hb, electionTimeoutMs: et } = s.etcd;
  const etcd = etcdLeaderLoss(hb, et, a);
  const rows = [
    apiServerLoss(hc),
    apiServerConnectedLoss(hc, a),
    leaderLeaseLoss("kube-controller-manager", lease, retry),
    leaderLeaseLoss("kube-scheduler", lease, retry),
    etcd,
    etcdWriteInFlightLoss(et),
  ];
  const warnings: FailoverWarning[] = [];
  const warn = (setting: string, message: string) => warnings.push({ setting, message });

  // Leader election.
  if (renew < 2 * (retry + a.leaseRenewAttemptMs))
    warn(
      "leaderElection.renewDeadline",
      `${renew / 1000} s leaves the leader fewer than two renewal attempts (retryPeriod ${retry / 1000} s + ${a.leaseRenewAttemptMs / 1000} s for a Lease GET and UPDATE at the API's p99) before it gives up; one slow write makes kube-controller-manager and kube-scheduler drop the lease and restart.`,
    );
  if (renew < etcd.worstMs + a.leaseRenewAttemptMs)
    warn(
      "leaderElection.renewDeadline",
      `${renew / 1000} s is shorter than an etcd leader election (up to ${etcd.worstMs} ms) plus one renewal (${a.leaseRenewAttemptMs / 1000} s): every etcd leader loss also costs the controller manager and scheduler their leases.`,
    );
  if (lease - renew < retry)
    warn(
      "leaderElection.leaseDuration",
      `${lease / 1000} s is within one retryPeriod (${retry / 1000} s) of renewDeadline (${renew / 1000} s): a standby can take the lease while the old leader, which only gives up at renewDeadline, is still stopping its controllers; keep leaseDuration - renewDeadline >= retryPeriod (defaults 15 s / 10 s / 2 s). The ratio leaseDuration / renewDeadline is also the clock rate skew client-go tolerates.`,
    );
  if (lease < 10 * a.crossZoneRttMs + 2 * a.leaseRenewAttemptMs)
    warn(
      "leaderElection.leaseDuration",
      `${lease / 1000} s cannot cover two renewals at the API's p99 (${(2 * a.leaseRenewAttemptMs) / 1000} s) across zones: leadership will flap under normal latency.`,
    );
  if (lease + 2 * retry * (1 + LEADER_ELECTION_JITTER) > 60000)
    warn("leaderElection.leaseDuration", `controllers and the scheduler stop for up to ${(leaderLeaseLoss("", lease, retry).worstMs / 1000).toFixed(1)} s when their leader's machine dies; over a minute, nodes and pods go unmanaged that long.`);

  // etcd.
  if (et < 10 * a.crossZoneRttMs)
    warn("etcd.electionTimeoutMs", `${et} ms is under 10 x the cross-zone round trip (${a.crossZoneRttMs} ms), etcd's advice: a slow packet starts an election and writes stall during it.`);
  if (2 * hb < a.fsyncStallMs)
    warn(
      "etcd.heartbeatIntervalMs",
      `${hb} ms: an EBS fsync stall of ${a.fsyncStallMs} ms delays the leader's heartbeats by more than twice the interval (etcd logs "leader failed to send out heartbeat on time"); raise it to at least ${a.fsyncStallMs / 2} ms.`,
    );
  if (et < 5 * a.fsyncStallMs)
    warn("etcd.electionTimeoutMs", `${et} ms rides out fewer than five ${a.fsyncStallMs} ms fsync stalls on the leader: a stalled disk becomes a leader election.`);
  if (etcd.worstMs > 10000)
    warn("etcd.electionTimeoutMs", `${et} ms: every write to the cluster blocks up to ${(etcd.worstMs / 1000).toFixed(1)} s when the etcd leader dies.`);

  // NLB: AWS's limits, then the budget against client-go's own dead-connection detection.
  const nlb = rows[0];
  for (const p of nlbHealthCheckProblems(hc)) warn("API_HEALTH_CHECK", p);
  if (nlb.worstMs > a.http2ReadIdleMs + a.http2PingTimeoutMs)
    warn(
      "API_HEALTH_CHECK",
      `the NLB keeps sending new connections to a dead API server for up to ${nlb.worstMs / 1000} s, longer than clients take to drop a dead connection (${(a.http2ReadIdleMs + a.http2PingTimeoutMs) / 1000} s): they reconnect to it.`,
    );
  return { rows, warnings };
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(ms % 1000 === 0 ? 0 : ms < 10000 ? 2 : 1)} s`;

export function budgetTable(b: FailoverBudget): string {
  return [
    "| failure | best | worst | worst case made of |",
    "|---|---:|---:|---|",
    ...b.rows.map((r) => `| ${r.failure} | ${seconds(r.bestMs)} | ${seconds(r.worstMs)} | ${r.formula} |`),
  ].join("\n");
}

/** The raw config a stack's `Pulumi.<stack>.yaml` gives the program, as config.ts loadConfig builds it from Pulumi's strings. */
export function rawStackConfig(stackConfig: Record<string, string>, project = "kubeadm-ha"): Record<string, unknown> {
  return stackSettings(stackConfig, project).raw;
}
