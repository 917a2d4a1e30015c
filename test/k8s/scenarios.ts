/**
 * Entry point run inside a private network namespace (netns.ts spawnInPrivateNetwork): starts a
 * stack's loopback control plane and runs one scenario on it. Progress goes to stderr; the result is
 * one JSON line on stdout. As the namespace's PID 1 it handles SIGINT and SIGTERM itself, and every
 * process it started dies with it.
 *
 *   scenarios.ts facts <stack>                start, report what kubeadm wrote and what runs, stop
 *   scenarios.ts failover <stack> [trials]    every failover of failover.ts, `trials` times each (default 3)
 *   scenarios.ts local <stack>                start and wait for SIGINT (`npm run local`)
 *   scenarios.ts renew <stack>                kubeadm certificates of 30 days; the shipped cert-renew.sh on every
 *                                             machine at once, again, and while a member is down
 *   scenarios.ts upgrade <stack> <version>   the rollout's day2.sh upgrade on each master in turn, each
 *                                            followed by its health gate, to <version> with
 *                                            leaderElection.leaseDuration 20s (issue 14)
 */
import { spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { parse } from "yaml";
import { apiServerKill, ensureNamespace, etcdLeaderKill, leaderLoss, localEtcdKill } from "./failover";
import { LocalCluster, LocalMachine, apiOk, apiRequest, startLocalCluster, waitFor } from "./localCluster";
import { ScriptRun, certInfo, restartWindow, runScript, servedFingerprint, setNodeEnv } from "./renewal";
import { durationMs } from "../../config";
import { API_HEALTH_CHECK } from "../../components/apiLoadBalancer";
import { apiServerLoss, etcdWriteInFlightLoss, leaderLeaseLoss } from "../../scripts/failoverBudget";
import * as zlib from "zlib";
import { MasterDocumentValues, masterDocuments, placeNodes } from "../../components/controlPlane";
import { initMarkerName } from "../../components/initMarker";
import { planSubnets } from "../../components/network";
import { caCertHash } from "../../components/pki";
import { renderCloudConfig } from "../../cloud-init/render";
import { shipScripts } from "../shipped";
import { prepareDay2, runDay2, setUserData } from "./day2";

/**
 * The README's first checks after `pulumi up` (its kubectl lines), run as an operator would: the
 * built kubectl, the admin kubeconfig (server: the load balancer).
 */
function readmeFirstChecks(c: LocalCluster): Array<{ command: string; status: number | null; out: string }> {
  const readme = fs.readFileSync(path.join(__dirname, "..", "..", "README.md"), "utf8");
  const at = readme.indexOf("\n### First checks after `pulumi up`\n");
  const block = at < 0 ? undefined : readme.slice(at).match(/```sh\n([\s\S]*?)```/);
  const commands = (block?.[1] ?? "").split("\n").filter((l) => l.startsWith("kubectl "));
  return commands.map((command) => {
    const r = spawnSync("bash", ["--norc", "--noprofile", "-c", command], {
      env: { PATH: `${c.binDir}:/usr/bin:/bin`, KUBECONFIG: c.adminKubeconfig, HOME: c.work },
      encoding: "utf8",
      timeout: 30000,
    });
    return { command, status: r.status, out: r.stdout + r.stderr };
  });
}

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
  // /proc is the host's mount, so /proc/self names this process as the host sees it: npm run local signals it there.
  log(`host pid ${fs.readlinkSync("/proc/self")}`);
  // Certificates 30 days from expiry, within the default 60-day threshold: what a year-old cluster has.
  cluster = await startLocalCluster({ stack, log, ...(scenario === "renew" ? { certificateValidityPeriod: "720h" } : {}) });
  const c = cluster;
  switch (scenario) {
    case "facts": {
      const api = (p: string) => apiOk(c.admin, p, { timeoutMs: 10000 });
      const manifest = (m: LocalMachine, f: string) => parse(fs.readFileSync(path.join(m.root, "etc/kubernetes/manifests", f), "utf8"));
      const nodes = await api("/api/v1/nodes");
      const readyz = await apiRequest(c.admin, "/readyz?verbose", { timeoutMs: 10000 });
      const kubeadmConfig = await api("/api/v1/namespaces/kube-system/configmaps/kubeadm-config");
      // Every rendered external etcd pod, as the API server would admit it (server-side dry run).
      const etcdPods = await Promise.all(
        c.etcd.map(async (m) => {
          const pod = parse(fs.readFileSync(path.join(m.root, "etc/kubeadm-ha/etcd.yaml"), "utf8"));
          pod.metadata.name = `etcd-${m.name}`;
          pod.spec.nodeName = m.name;
          const r = await apiRequest(c.admin, "/api/v1/namespaces/kube-system/pods?dryRun=All", { method: "POST", body: pod, timeoutMs: 10000 });
          return { machine: m.name, status: r.status, message: r.status === 201 ? "" : r.body.slice(0, 300) };
        }),
      );
      const out = {
        apiUrl: c.apiUrl,
        masters: c.masters.map((m) => ({
          name: m.name,
          ip: m.ip,
          running: Object.fromEntries(m.runner.components().map((k) => [k, m.runner.isRunning(k)])),
          manifests: Object.fromEntries(fs.readdirSync(path.join(m.root, "etc/kubernetes/manifests")).sort().map((f) => [f, manifest(m, f).spec.containers[0].command])),
        })),
        etcdMachines: c.etcd.map((m) => ({ name: m.name, ip: m.ip, running: m.runner.isRunning("etcd") })),
        etcdMembers: JSON.parse(c.etcdctl(["member", "list", "-w", "json"]).stdout.replace(/:\s*(\d{10,})/g, ':"$1"')).members,
        nodes: (nodes.items as any[]).map((n) => ({ name: n.metadata.name, controlPlane: "node-role.kubernetes.io/control-plane" in (n.metadata.labels ?? {}), taints: n.spec.taints ?? [] })),
        readyz: { status: readyz.status, body: readyz.body },
        leases: { "kube-controller-manager": await c.leaseHolder("kube-controller-manager"), "kube-scheduler": await c.leaseHolder("kube-scheduler") },
        leaders: { "kube-controller-manager": (await c.leaderOf("kube-controller-manager"))?.name, "kube-scheduler": (await c.leaderOf("kube-scheduler"))?.name },
        clusterConfiguration: parse(kubeadmConfig.data.ClusterConfiguration),
        etcdPods,
        readmeFirstChecks: readmeFirstChecks(c),
      };
      process.stdout.write(JSON.stringify(out) + "\n");
      break;
    }
    case "failover": {
      const trials = Number(process.argv[4] ?? 3);
      // Optional: only these failovers (comma-separated keys of `out`), for investigating one.
      const only = process.argv[5]?.split(",");
      const want = (k: string) => !only || only.includes(k);
      const le = c.config.leaderElection;
      const leaderWorst = leaderLeaseLoss("", durationMs(le.leaseDuration), durationMs(le.retryPeriod)).worstMs;
      const etcdInFlight = etcdWriteInFlightLoss(c.config.etcd.electionTimeoutMs).worstMs;
      await ensureNamespace(c, "failover");
      const out: Record<string, unknown[]> = { apiServerKill: [], leaderKill: [], leaderTerm: [], localEtcdKill: [], etcdLeaderKill: [] };
      for (let t = 0; t < trials; t++) {
        // A different master each time: round-robin order and leadership differ between them.
        const victim = c.masters[(t + 1) % c.masters.length];
        if (want("apiServerKill")) {
          log(`trial ${t + 1}/${trials}: kill the API server of ${victim.name}`);
          out.apiServerKill.push(await apiServerKill(c, victim, { afterKillMs: apiServerLoss(API_HEALTH_CHECK).worstMs + 5000 }));
        }
        if (want("leaderKill")) {
          log(`trial ${t + 1}/${trials}: SIGKILL the controller-manager and scheduler leaders`);
          out.leaderKill.push(...(await leaderLoss(c, "SIGKILL", leaderWorst + 30000)));
        }
        if (want("leaderTerm")) {
          log(`trial ${t + 1}/${trials}: SIGTERM the controller-manager and scheduler leaders`);
          out.leaderTerm.push(...(await leaderLoss(c, "SIGTERM", leaderWorst + 30000)));
        }
        if (c.config.etcd.topology === "stacked" && want("localEtcdKill")) {
          log(`trial ${t + 1}/${trials}: kill API server 0's own etcd member`);
          out.localEtcdKill.push(await localEtcdKill(c, c.masters[0], { afterKillMs: 5000, namespace: "failover" }));
        }
        if (want("etcdLeaderKill")) {
          log(`trial ${t + 1}/${trials}: kill the etcd leader under write load`);
          out.etcdLeaderKill.push(await etcdLeaderKill(c, { afterKillMs: etcdInFlight + 3000, namespace: "failover" }));
        }
        log(`trial ${t + 1}/${trials} done: ${JSON.stringify(Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.slice(-2)])))}`);
      }
      process.stdout.write(JSON.stringify({ stack, config: { leaderElection: le, etcd: { heartbeatIntervalMs: c.config.etcd.heartbeatIntervalMs, electionTimeoutMs: c.config.etcd.electionTimeoutMs, topology: c.config.etcd.topology } }, results: out }) + "\n");
      break;
    }
    case "renew": {
      const stacked = c.config.etcd.topology === "stacked";
      const machines = [...c.etcd, ...c.masters];
      const files = (m: LocalMachine) =>
        (m.role === "etcd"
          ? ["etcd/server.crt", "etcd/peer.crt"]
          : ["apiserver.crt", "apiserver-kubelet-client.crt", "front-proxy-client.crt", ...(stacked ? ["etcd/server.crt", "etcd/peer.crt", "etcd/healthcheck-client.crt"] : ["apiserver-etcd-client.crt"])]
        ).map((f) => path.join(m.root, "etc/kubernetes/pki", f));
      // super-admin.conf exists on master 0 only: kubeadm writes it at init.
      const kubeconfigs = (m: LocalMachine) =>
        m.role === "etcd" ? [] : ["admin.conf", "super-admin.conf", "controller-manager.conf", "scheduler.conf"].filter((f) => fs.existsSync(path.join(m.root, "etc/kubernetes", f)));
      const kubeconfigExpiry = (m: LocalMachine, f: string) => {
        const k = parse(fs.readFileSync(path.join(m.root, "etc/kubernetes", f), "utf8"));
        return Date.parse(new crypto.X509Certificate(Buffer.from(k.users[0].user["client-certificate-data"], "base64")).validTo);
      };
      const days = (ms: number) => Math.round((ms - Date.now()) / 86400000);
      const expiries = () =>
        Object.fromEntries(machines.map((m) => [m.name, Object.fromEntries([...files(m).map((f) => [path.relative(m.root, f), days(certInfo(f).notAfter)]), ...kubeconfigs(m).map((f) => [f, days(kubeconfigExpiry(m, f))])])]));
      const served = () =>
        Object.fromEntries(machines.map((m) => {
          const [addr, file] = m.role === "etcd" ? [`${m.ip}:2379`, "etcd/server.crt"] : [`${m.ip}:6443`, "apiserver.crt"];
          return [m.name, servedFingerprint(addr) === certInfo(path.join(m.root, "etc/kubernetes/pki", file)).fingerprint];
        }));
      const summary = (r: ScriptRun) => ({
        machine: r.machine,
        code: r.code,
        window: restartWindow(r),
        log: r.lines.map((l) => l.line.replace(/^\S+ /, "")).filter((l) => l.startsWith("kubeadm-ha[")),
        ...(r.code === 0 ? {} : { tail: r.lines.slice(-15).map((l) => l.line) }),
      });
      const before = expiries();
      log("every machine renews at once");
      const first = await Promise.all(machines.map((m) => runScript(c, m, "cert-renew.sh")));
      const afterFirst = { expiries: expiries(), served: served(), etcdHealthy: c.etcdctl(["endpoint", "health"]).ok, readyz: (await apiRequest(c.admin, "/readyz", { timeoutMs: 5000 })).status };
      log("again: nothing left to renew");
      const again = await runScript(c, c.masters[0], "cert-renew.sh");
      // A member down: the next machine must neither renew nor restart anything.
      const down = stacked ? c.masters[2] : c.etcd[2];
      const blocked = stacked ? c.masters[0] : c.etcd[0];
      const pidBefore = blocked.runner.pid(stacked ? "kube-apiserver" : "etcd");
      await down.runner.hold("etcd", "SIGKILL");
      log(`etcd on ${down.name} down; ${blocked.name} renews anyway (threshold 400 days)`);
      // A threshold beyond the certificates' year makes everything due again.
      setNodeEnv(blocked, "CERT_RENEW_BEFORE_DAYS", "400");
      const whileDown = await runScript(c, blocked, "cert-renew.sh", { KUBEADM_HA_WAIT_SECONDS: "15" });
      const pidAfter = blocked.runner.pid(stacked ? "kube-apiserver" : "etcd");
      down.runner.release("etcd");
      await waitFor("etcd healthy again", 120000, async () => (c.etcdctl(["endpoint", "health"]).ok ? true : undefined), c.logTail);
      log("member back: the same renewal goes through");
      const afterBack = await runScript(c, blocked, "cert-renew.sh");
      process.stdout.write(
        JSON.stringify({
          before,
          first: first.map(summary),
          afterFirst,
          again: summary(again),
          whileDown: { ...summary(whileDown), down: down.name, restartedAnyway: pidBefore !== pidAfter },
          afterBack: summary(afterBack),
          healthyAtEnd: c.etcdctl(["endpoint", "health"]).ok,
        }) + "\n",
      );
      break;
    }
    case "local": {
      const hostPid = fs.readlinkSync("/proc/self");
      process.stderr.write(
        [
          "",
          `The ${stack} control plane runs in a private network namespace (test/k8s/netns.ts).`,
          `kubeconfig: ${c.adminKubeconfig}`,
          "Use kubectl from inside the namespace, from another terminal:",
          `  sudo nsenter --net=/proc/${hostPid}/ns/net ${c.binDir}/kubectl --kubeconfig ${c.adminKubeconfig} get nodes`,
          "Ctrl-C stops everything.",
          "",
        ].join("\n"),
      );
      await new Promise<never>(() => undefined);
      break;
    }
    case "upgrade": {
      const version = process.argv[4] ?? "1.35.4";
      const cfg = c.config;
      const leaderElection = { ...cfg.leaderElection, leaseDuration: "20s" };
      // The user data Pulumi renders for each master after the change, as EC2 then serves it.
      const placements = placeNodes(cfg.controlPlane.count, cfg.network.availabilityZones, planSubnets(cfg.network.vpcCidr, cfg.network.availabilityZones).map((x) => x.privateCidr), cfg.region);
      const values: MasterDocumentValues = {
        clusterName: cfg.clusterName,
        kubernetesVersion: version,
        region: cfg.region,
        apiEndpoint: c.apiUrl.replace(/^https:\/\//, ""),
        caCertHash: caCertHash(fs.readFileSync(path.join(c.masters[0].root, "etc/kubernetes/pki/ca.crt"), "utf8")),
        secretArn: "arn:aws:secretsmanager:local",
        podCidr: cfg.network.podCidr,
        serviceCidr: cfg.network.serviceCidr,
        leaderElection,
        externalEtcd: undefined,
        etcdTimings: { heartbeatIntervalMs: cfg.etcd.heartbeatIntervalMs, electionTimeoutMs: cfg.etcd.electionTimeoutMs },
        encryptionAtRest: cfg.encryptionAtRest,
        externalCloudProvider: cfg.addons.awsCloudControllerManager,
        initMarker: initMarkerName(cfg.clusterName),
        masters: placements,
      };
      if (cfg.etcd.topology !== "stacked") throw new Error("the upgrade scenario renders stacked masters");
      const scripts = shipScripts();
      const userData = (v: MasterDocumentValues, i: number) => zlib.gzipSync(renderCloudConfig(masterDocuments(v, placements[i]), "local-bootstrap"));
      // What cloud-init wrote at first boot (node.env, the scripts), from the user data the cluster was created with.
      const before = { ...values, kubernetesVersion: cfg.kubernetesVersion, leaderElection: cfg.leaderElection };
      for (const m of c.masters) {
        await prepareDay2(c, m, userData(before, m.index));
        const sync = await runDay2(c, m, scripts, ["sync"]);
        if (sync.code !== 0) throw new Error(`day2.sh sync on ${m.name}: ${sync.stderr}`);
        setUserData(c, m, userData(values, m.index));
      }
      const last = (r: { stderr: string }) => r.stderr.trim().split("\n").pop() ?? "";
      // The rollout's order, checked on the real cluster: master 1 before master 0 stored the new configuration.
      log("master 1 before master 0: must refuse");
      const early = await runDay2(c, c.masters[1], scripts, ["upgrade"]);
      const steps: Array<{ master: number; step: string; code: number | null; ms: number; last: string; lock: string[] }> = [];
      for (const m of c.masters) {
        for (const args of [["upgrade", ...(m.index === 0 ? ["--first"] : [])], ["health", "--wait", "300"]]) {
          log(`master ${m.index}: day2.sh ${args.join(" ")}`);
          const r = await runDay2(c, m, scripts, args);
          // What the step did with the join lock (join-lock.sh), in order.
          const lock = r.stderr.split("\n").flatMap((l) => /(acquired|released|renewed) join lock|join lock already held by this node|breaking stale join lock/.exec(l)?.[0] ?? []);
          steps.push({ master: m.index, step: args.join(" "), code: r.code, ms: r.ms, last: last(r), lock });
          log(`master ${m.index}: day2.sh ${args.join(" ")} exited ${r.code} after ${r.ms} ms: ${last(r)}`);
          if (r.code !== 0) break;
        }
        if (steps[steps.length - 1].code !== 0) break;
      }
      const manifest = (m: LocalMachine, f: string) => parse(fs.readFileSync(path.join(m.root, "etc/kubernetes/manifests", f), "utf8")).spec.containers[0];
      const stored = parse((await apiOk(c.admin, "/api/v1/namespaces/kube-system/configmaps/kubeadm-config", { timeoutMs: 10000 })).data.ClusterConfiguration);
      const nodes = await apiOk(c.admin, "/api/v1/nodes", { timeoutMs: 10000 });
      process.stdout.write(
        JSON.stringify({
          early: { code: early.code, last: last(early) },
          steps,
          masters: c.masters.map((m) => ({
            name: m.name,
            images: Object.fromEntries(["kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"].map((k) => [k, manifest(m, `${k}.yaml`).image])),
            commands: Object.fromEntries(["kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"].map((k) => [k, manifest(m, `${k}.yaml`).command])),
            running: Object.fromEntries(m.runner.components().map((k) => [k, m.runner.isRunning(k)])),
          })),
          stored: { kubernetesVersion: stored.kubernetesVersion, controllerManager: stored.controllerManager, scheduler: stored.scheduler },
          nodes: (nodes.items as any[]).map((n) => ({ name: n.metadata.name, unschedulable: !!n.spec.unschedulable })),
          etcdMembers: JSON.parse(c.etcdctl(["member", "list", "-w", "json"]).stdout.replace(/:\s*(\d{10,})/g, ':"$1"')).members.map((x: any) => x.name).sort(),
        }) + "\n",
      );
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
