/**
 * The failover budget (scripts/failoverBudget.ts): exact numbers for the defaults, which warning
 * fires for which setting. The CLI's exit codes: test/failover-cli.test.ts.
 */
import { API_HEALTH_CHECK } from "../components/apiLoadBalancer";
import { DEFAULT_ASSUMPTIONS, FailoverSettings, HealthCheck, budgetTable, etcdLeaderLoss, etcdWriteInFlightLoss, failoverBudget, leaderLeaseLoss, rawStackConfig } from "../scripts/failoverBudget";

const settings = (le: Partial<FailoverSettings["leaderElection"]> = {}, etcd: { heartbeatIntervalMs?: number; electionTimeoutMs?: number } = {}): FailoverSettings =>
  ({
    leaderElection: { leaseDuration: "15s", renewDeadline: "10s", retryPeriod: "2s", ...le },
    etcd: { heartbeatIntervalMs: 100, electionTimeoutMs: 1000, ...etcd },
  }) as FailoverSettings;

describe("failoverBudget", () => {
  it("defaults: exact best and worst case per failure, no warnings", () => {
    const b = failoverBudget(settings(), API_HEALTH_CHECK);
    expect(b.rows.map((r) => [r.failure, r.bestMs, r.worstMs])).toEqual([
      // 5 s x 2 + 3 s timeout of the last check; best: the first check fails at once.
      ["API server (new connections via NLB)", 8000, 13000],
      ["API server (clients already connected)", 15000, 45000],
      // 15 s + 2 x 2 s x 2.2; best 15 s - 2 s.
      ["kube-controller-manager leader", 13000, 23800],
      ["kube-scheduler leader", 13000, 23800],
      // 2 x 1000 + 2 x 10 + 100; best 1000 - 100 + 120.
      ["etcd leader", 1020, 2120],
      // etcd's request timeout: 5 s + 2 x 1000 ms, best and worst alike (measured: test/k8s/failover.ts).
      ["etcd leader (a write in flight when it dies)", 7000, 7000],
    ]);
    expect(b.warnings).toEqual([]);
  });

  it.each<[string, FailoverSettings, HealthCheck, Array<[string, string]>]>([
    [
      "leases too tight for API latency and an etcd election",
      settings({ leaseDuration: "5s", renewDeadline: "4s", retryPeriod: "1s" }),
      API_HEALTH_CHECK,
      [
        ["leaderElection.renewDeadline", "fewer than two renewal attempts"],
        ["leaderElection.renewDeadline", "shorter than an etcd leader election (up to 2120 ms)"],
      ],
    ],
    ["renewDeadline within one retry of leaseDuration", settings({ leaseDuration: "11s" }), API_HEALTH_CHECK, [["leaderElection.leaseDuration", "within one retryPeriod (2 s) of renewDeadline (10 s)"]]],
    ["lease so long controllers stop over a minute", settings({ leaseDuration: "60s", renewDeadline: "40s", retryPeriod: "5s" }), API_HEALTH_CHECK, [["leaderElection.leaseDuration", "up to 82.0 s"]]],
    ["lease shorter than two renewals", settings({ leaseDuration: "3s", renewDeadline: "2500ms", retryPeriod: "2s" }), API_HEALTH_CHECK, [
      ["leaderElection.renewDeadline", "fewer than two renewal attempts"],
      ["leaderElection.renewDeadline", "shorter than an etcd leader election"],
      ["leaderElection.leaseDuration", "within one retryPeriod"],
      ["leaderElection.leaseDuration", "cannot cover two renewals"],
    ]],
    [
      "etcd timings below RTT and fsync stalls",
      settings({}, { heartbeatIntervalMs: 10, electionTimeoutMs: 50 }),
      API_HEALTH_CHECK,
      [
        ["etcd.electionTimeoutMs", "under 10 x the cross-zone round trip (10 ms)"],
        ["etcd.heartbeatIntervalMs", "raise it to at least 50 ms"],
        ["etcd.electionTimeoutMs", "fewer than five 100 ms fsync stalls"],
      ],
    ],
    [
      "etcd election so slow writes block for seconds and leases fall with it",
      settings({}, { heartbeatIntervalMs: 1000, electionTimeoutMs: 10000 }),
      API_HEALTH_CHECK,
      [
        ["leaderElection.renewDeadline", "shorter than an etcd leader election (up to 20120 ms)"],
        ["etcd.electionTimeoutMs", "blocks up to 20.1 s"],
      ],
    ],
    ["slow NLB health check", settings(), { interval: 30, timeout: 10, healthyThreshold: 2, unhealthyThreshold: 2 }, [["API_HEALTH_CHECK", "up to 70 s, longer than clients take to drop a dead connection (45 s)"]]],
    ["NLB health check AWS rejects", settings(), { interval: 5, timeout: 5, healthyThreshold: 2, unhealthyThreshold: 2 }, [["API_HEALTH_CHECK", "timeout: 5 — must be shorter than interval (5)"]]],
  ])("%s", (_, s, hc, expected) => {
    const warnings = failoverBudget(s, hc).warnings;
    expect(warnings.map((w) => w.setting)).toEqual(expected.map(([k]) => k));
    expected.forEach(([, text], i) => expect(warnings[i].message).toContain(text));
  });
});

describe("budget pieces", () => {
  it.each([
    // heartbeat, election -> etcd raft draws [election, 2 x election - 1 heartbeat] plus up to one heartbeat of tick phase.
    [100, 1000, 1020, 2120],
    [250, 2500, 2370, 5120],
    [50, 500, 570, 1120],
  ])("etcd heartbeat %d ms, election %d ms: best %d ms, worst %d ms", (hb, et, best, worst) => {
    expect(etcdLeaderLoss(hb, et)).toMatchObject({ bestMs: best, worstMs: worst });
  });

  it.each([
    [15000, 2000, 13000, 23800],
    [60000, 5000, 55000, 82000],
    [137000, 26000, 111000, 251400],
  ])("lease %d ms, retry %d ms: best %d ms, worst %d ms", (lease, retry, best, worst) => {
    expect(leaderLeaseLoss("x", lease, retry)).toMatchObject({ bestMs: best, worstMs: worst });
  });

  it("assumptions are the documented bounds", () => {
    expect(DEFAULT_ASSUMPTIONS).toEqual({ crossZoneRttMs: 10, leaseRenewAttemptMs: 2000, fsyncStallMs: 100, http2ReadIdleMs: 30000, http2PingTimeoutMs: 15000 });
  });

  it.each([[1000, 7000], [2500, 10000], [50000, 105000]])("a write in flight when an etcd leader with a %i ms election timeout dies waits %i ms", (election, ms) => {
    expect(etcdWriteInFlightLoss(election)).toMatchObject({ bestMs: ms, worstMs: ms });
  });

  it("renders one table row a failure", () => {
    expect(budgetTable(failoverBudget(settings(), API_HEALTH_CHECK)).split("\n").slice(0, 3)).toEqual([
      "| failure | best | worst | worst case made of |",
      "|---|---:|---:|---|",
      "| API server (new connections via NLB) | 8 s | 13 s | interval (5 s) x unhealthyThreshold (2) + timeout (3 s) of the last check |",
    ]);
  });

  it("reads Pulumi's config strings as loadConfig does", () => {
    expect(rawStackConfig({ "aws:region": "eu-west-1", "kubeadm-ha:kubernetesVersion": "1.35", "kubeadm-ha:etcd": '{"electionTimeoutMs":2000}', "other:x": "1" })).toEqual({
      region: "eu-west-1",
      kubernetesVersion: "1.35",
      etcd: { electionTimeoutMs: 2000 },
    });
  });
});
