/**
 * A stack's HA control plane, for real, on loopback: the same pure builders the program renders with
 * (masterDocuments, etcdNodeDocuments, externalEtcdConfig) at the rendered machine addresses, added to
 * the loopback of a private network namespace (test/k8s/netns.ts says why not 127.0.0.0/8); the real kubeadm generating certificates, kubeconfigs and static pod
 * manifests, and joining masters 1..n through the load balancer with the bootstrap token; a
 * StaticPodRunner per machine running each manifest's command with the real binaries; HAProxy from
 * Debian in front of the API servers with the NLB's health check (HTTPS /readyz, same interval and
 * thresholds). External etcd runs as its own machines from the rendered static pod, with
 * certificates openssl signs from the program's own certificate requests (Pulumi signs them in a
 * real deployment).
 *
 * What differs from EC2, on purpose: no kubelet, containers or images (the runner stands in), one
 * shared loopback instead of a VPC (each machine's own 127.0.0.1 moves to its address) (security groups are checked by the flow matrix instead), CA keys
 * copied between machine roots where fetch-secrets.sh would fetch them, and the add-ons (CNI, cloud
 * controller) are not installed: nothing here runs pods.
 *
 * Runs only inside a private network namespace: tests, the failover benchmark and `npm run local`
 * start test/k8s/scenarios.ts there. Never touches jest globals.
 */
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parseAllDocuments } from "yaml";
import { ClusterConfig, parseConfig } from "../../config";
import { API_HEALTH_CHECK } from "../../components/apiLoadBalancer";
import { MasterDocumentValues, Placement, masterDocuments, placeNodes } from "../../components/controlPlane";
import {
  API_SERVER_ETCD_CLIENT,
  API_SERVER_ETCD_CLIENT_CERTIFICATE,
  EtcdMember,
  ETCD_CLIENT_PORT,
  etcdMembers,
  etcdNodeDocuments,
  externalEtcdConfig,
  peerCertificateArgs,
  serverCertificateArgs,
} from "../../components/etcd";
import { nthHost, planSubnets } from "../../components/network";
import { LeafCertificateArgs, caCertHash } from "../../components/pki";
import { encryptionConfigYaml, ENCRYPTION_CONFIG_FILE } from "../../cloud-init/encryption";
import { TOKEN_PLACEHOLDER, toYaml } from "../../cloud-init/kubeadm";
import { NodeEnv, envFile } from "../../cloud-init/render";
import { rawStackConfig } from "../../scripts/failoverBudget";
import { stackConfig } from "../../scripts/renderLib";
import { CertSpec, issueCert, makeCa } from "../etcdHarness";
import { KubeCredentials, apiOk, apiRequest, readKubeconfig } from "./apiClient";
import { k8sBinDir } from "./binaries";
import { addAddresses } from "./netns";
import { MachineHost, StaticPodRunner } from "./staticPods";

export const API_PORT = 6443;
/** The load balancer's address: a host of the first subnet an NLB of the stack's scheme sits in. */
export const LB_HOST = 5;

/** One machine: its placement as the program computes it, its loopback stand-in and its runner. */
export interface LocalMachine {
  index: number;
  role: "control-plane" | "etcd";
  /** Node name as rendered (the EC2 private DNS name of the rendered address). */
  name: string;
  /** The address the program gave this machine, on the private namespace's loopback. */
  ip: string;
  root: string;
  runner: StaticPodRunner;
}

export interface LocalClusterOptions {
  /** Stack whose config is used; default "dev". */
  stack?: string;
  /** Stack config file; default Pulumi.<stack>.yaml. */
  configFile?: string;
  /** Changes to the validated config before anything is built (shorter leases for a test, say); the result is validated again. */
  configure?: (raw: Record<string, unknown>) => Record<string, unknown>;
  /** Progress lines. */
  log?: (line: string) => void;
  /** Prefix of the temp work dir; default "kubeadm-ha-local-". */
  workPrefix?: string;
  /**
   * kubeadm's `certificateValidityPeriod` for the certificates it signs at init and join (a Go
   * duration), standing in for certificates a year old; the etcd machines' certificates are then
   * signed for one day. Default: kubeadm's own, one year.
   */
  certificateValidityPeriod?: string;
}

export interface LocalCluster {
  stack: string;
  config: ClusterConfig;
  work: string;
  binDir: string;
  /** The load balancer's `https://<ip>:6443`. */
  apiUrl: string;
  lbIp: string;
  masters: LocalMachine[];
  /** External etcd machines; empty when stacked. */
  etcd: LocalMachine[];
  /** Every etcd member's client URL, as the API servers reach them. */
  etcdEndpoints: string[];
  /** master 0's admin.conf (server: the load balancer). */
  adminKubeconfig: string;
  admin: KubeCredentials;
  /**
   * Runs kubeadm chrooted into a machine's root; rejects with its output unless it exits 0. Never
   * synchronous: kubeadm waits for static pods that the runners start meanwhile.
   */
  kubeadm(machine: LocalMachine, args: string[], opts?: { timeoutMs?: number }): Promise<string>;
  /** etcdctl with a client certificate of the etcd CA (master 0's healthcheck client when stacked, the API server's etcd client when external). */
  etcdctl(args: string[], endpoints?: string[]): { ok: boolean; stdout: string; out: string };
  /** The holder of a kube-system Lease (kube-controller-manager, kube-scheduler), or undefined. */
  leaseHolder(name: string): Promise<string | undefined>;
  /** The master whose `component` holds its leader election Lease now, read from each instance's metrics. */
  leaderOf(component: "kube-controller-manager" | "kube-scheduler"): Promise<LocalMachine | undefined>;
  /** Tail of every component log and HAProxy's. */
  logTail(lines?: number): string;
  /** Stops every process and removes the work dir (unless `keep`). */
  dispose(keep?: boolean): Promise<void>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Reads and validates a stack's config the way the program does, with `configure` applied to the raw values first. */
export function localStackConfig(root: string, stack: string, configFile?: string, configure?: LocalClusterOptions["configure"]): ClusterConfig {
  const file = configFile ?? path.join(root, `Pulumi.${stack}.yaml`);
  const raw = rawStackConfig(stackConfig(fs.readFileSync(file, "utf8")));
  return parseConfig(configure ? configure(raw) : raw);
}

/** A bootstrap token of kubeadm's form, `[a-z0-9]{6}.[a-z0-9]{16}`. */
export function randomToken(): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  const pick = (n: number) => Array.from({ length: n }, () => alphabet[crypto.randomInt(alphabet.length)]).join("");
  return `${pick(6)}.${pick(16)}`;
}

/** HAProxy in TCP mode with the NLB's target group health check: HTTPS GET /readyz, its matcher, interval, timeout and thresholds. */
export function haproxyConfig(lbIp: string, masters: Array<{ name: string; ip: string }>, hc = API_HEALTH_CHECK): string {
  const [lo, hi] = hc.matcher.split("-").map(Number);
  // rstatus: the NLB's matcher is a range; HAProxy takes a regular expression over the status code.
  const statuses = Array.from({ length: hi - lo + 1 }, (_, i) => lo + i).join("|");
  return [
    "global",
    "  maxconn 4096",
    "defaults",
    "  mode tcp",
    "  timeout connect 5s",
    "  timeout client 1h",
    "  timeout server 1h",
    `  timeout check ${hc.timeout}s`,
    "frontend api",
    `  bind ${lbIp}:${API_PORT}`,
    "  default_backend masters",
    "backend masters",
    // An NLB never retries a connection on another target: neither does this.
    "  retries 0",
    `  option httpchk GET ${hc.path}`,
    `  http-check expect rstatus ^(${statuses})$`,
    // NLB health checks do not verify the target's certificate.
    `  default-server check check-ssl verify none inter ${hc.interval}s fall ${hc.unhealthyThreshold} rise ${hc.healthyThreshold}`,
    ...masters.map((m) => `  server ${m.name} ${m.ip}:${API_PORT}`),
    "",
  ].join("\n");
}

/** The program's certificate request as openssl's input; the etcd requests are plain values, never Outputs. */
export function certSpec(a: LeafCertificateArgs): CertSpec {
  const plain = (v: unknown): string[] => {
    if (v === undefined) return [];
    if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) throw new Error(`certSpec: ${a.commonName}: want plain string lists`);
    return v;
  };
  return { commonName: String(a.commonName), dnsNames: plain(a.dnsNames), ipAddresses: plain(a.ipAddresses), allowedUses: plain(a.allowedUses) };
}

/** The init document with kubeadm's `certificateValidityPeriod` set on its ClusterConfiguration. */
function withValidity(initYaml: string, period: string): string {
  const docs = parseAllDocuments(initYaml, { version: "1.1" }).map((d) => d.toJS());
  for (const d of docs) if (d.kind === "ClusterConfiguration") d.certificateValidityPeriod = period;
  return toYaml(...docs);
}

/** cloud-init's node.env of a machine, as cloud-init/render.ts writes it. */
function writeNodeEnv(m: LocalMachine, env: NodeEnv): void {
  const values = Object.fromEntries(Object.entries({ ...env, TOKEN_PLACEHOLDER }).filter((e): e is [string, string] => e[1] !== undefined));
  writeFile(path.join(m.root, "etc/kubeadm-ha/node.env"), envFile(values), 0o644);
}

function writeFile(file: string, content: string | Buffer, mode = 0o600): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, content, { mode });
}

function copyInto(fromRoot: string, toRoot: string, rel: string): void {
  const from = path.join(fromRoot, rel);
  writeFile(path.join(toRoot, rel), fs.readFileSync(from), fs.statSync(from).mode & 0o777);
}

/**
 * Starts a stack's control plane on loopback and waits until the API answers /readyz through the
 * load balancer with every master joined and (stacked) every etcd member started.
 */
export async function startLocalCluster(opts: LocalClusterOptions = {}): Promise<LocalCluster> {
  const repo = path.resolve(__dirname, "..", "..");
  const stack = opts.stack ?? "dev";
  const log = opts.log ?? (() => undefined);
  const config = localStackConfig(repo, stack, opts.configFile, opts.configure);
  const binDir = k8sBinDir();
  if (spawnSync("haproxy", ["-v"]).status !== 0) throw new Error("haproxy is required by the loopback control plane: apt-get install haproxy (npm run setup installs it)");
  const work = fs.mkdtempSync(path.join(os.tmpdir(), opts.workPrefix ?? "kubeadm-ha-local-"));
  const logDir = path.join(work, "logs");
  log(`work dir ${work}`);
  fs.mkdirSync(logDir);
  const external = config.etcd.topology === "external";
  const plan = planSubnets(config.network.vpcCidr, config.network.availabilityZones);
  const privateCidrs = plan.map((s) => s.privateCidr);
  const renderedMasters = placeNodes(config.controlPlane.count, config.network.availabilityZones, privateCidrs, config.region);
  const renderedEtcd = external ? etcdMembers(config.etcd.nodeCount, config.network.availabilityZones, privateCidrs, config.region) : [];

  const subnet = plan[0][config.apiLoadBalancer.scheme === "internal" ? "privateCidr" : "publicCidr"];
  const lbIp = nthHost(subnet, LB_HOST);
  const apiEndpoint = `${lbIp}:${API_PORT}`;
  const machine = (role: LocalMachine["role"], p: Placement): LocalMachine => {
    const root = path.join(work, p.name);
    const host: MachineHost = { name: p.name, ip: p.ip, root };
    return { index: p.index, role, name: p.name, ip: p.ip, root, runner: new StaticPodRunner({ host, binDir, logDir }) };
  };
  const masters = renderedMasters.map((p) => machine("control-plane", p));
  const etcd = renderedEtcd.map((p) => machine("etcd", p));
  addAddresses([lbIp, ...masters.map((m) => m.ip), ...etcd.map((m) => m.ip)]);
  const masterPlacements: Placement[] = renderedMasters;
  const etcdPlacements: EtcdMember[] = renderedEtcd;
  const etcdEndpoints = external ? etcdPlacements.map((m) => m.clientUrl) : masters.map((m) => `https://${m.ip}:${ETCD_CLIENT_PORT}`);

  let haproxy: ChildProcess | undefined;
  const haproxyLog = path.join(logDir, "haproxy.log");
  const all = [...etcd, ...masters];
  const logTail = (lines = 20) =>
    fs
      .readdirSync(logDir)
      .sort()
      .map((f) => `--- ${f} ---\n${fs.readFileSync(path.join(logDir, f), "utf8").split("\n").slice(-lines).join("\n")}`)
      .join("\n");
  const dispose = async (keep = false) => {
    await Promise.all(all.map((m) => m.runner.stop()));
    if (haproxy && haproxy.exitCode === null) {
      const exited = new Promise((r) => haproxy!.once("exit", r));
      haproxy.kill("SIGKILL");
      await exited;
    }
    process.removeListener("exit", killNow);
    if (!keep) fs.rmSync(work, { recursive: true, force: true });
  };
  // A test runner that exits mid-test must not leave API servers behind.
  const killNow = () => {
    haproxy?.kill("SIGKILL");
    for (const m of all) for (const c of m.runner.components()) {
      const pid = m.runner.pid(c);
      if (pid) try { process.kill(pid, "SIGKILL"); } catch { /* gone */ }
    }
  };
  process.once("exit", killNow);

  const kubeadm = (m: LocalMachine, args: string[], o: { timeoutMs?: number } = {}) =>
    new Promise<string>((resolve, reject) => {
      const p = spawn(path.join(binDir, "kubeadm"), [...args, "--rootfs", m.root, "-v=1"], { env: { PATH: process.env.PATH }, stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      p.stdout.on("data", (c: Buffer) => (out += c.toString()));
      p.stderr.on("data", (c: Buffer) => (out += c.toString()));
      const timer = setTimeout(() => p.kill("SIGKILL"), o.timeoutMs ?? 300000);
      p.once("exit", (code, signal) => {
        clearTimeout(timer);
        fs.appendFileSync(path.join(logDir, `${m.name}-kubeadm.log`), `\n=== kubeadm ${args.join(" ")}\n${out}`);
        if (code === 0) resolve(out);
        else reject(new Error(`kubeadm ${args.join(" ")} on ${m.name} failed (exit ${code ?? signal}):\n${out.split("\n").slice(-30).join("\n")}\n${logTail(10)}`));
      });
    });

  try {
    const token = randomToken();
    const keys = [{ name: "key1", secret: crypto.randomBytes(32).toString("base64") }];
    const run = (m: LocalMachine, name: string) => path.join(m.root, "run/kubeadm-ha", name);
    for (const m of all) {
      fs.mkdirSync(path.join(m.root, "tmp"), { recursive: true });
      // kubeadm join defaults an advertise address before it takes the JoinConfiguration's, from the
      // default route in /proc/net/route; in the chroot an empty table makes it fall back to 0.0.0.0
      // (ChooseAPIServerBindAddress) instead of failing. The private namespace has no default route.
      writeFile(path.join(m.root, "proc/net/route"), "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n", 0o644);
    }

    // External etcd: its own CA, and each member's certificates from the program's requests.
    let etcdCaDir: string | undefined;
    if (external) {
      etcdCaDir = path.join(work, "etcd-ca");
      makeCa(etcdCaDir, "etcd-ca");
      const values = { clusterName: config.clusterName, kubernetesVersion: config.kubernetesVersion, timings: { heartbeatIntervalMs: config.etcd.heartbeatIntervalMs, electionTimeoutMs: config.etcd.electionTimeoutMs }, members: etcdPlacements };
      for (const [i, m] of etcd.entries()) {
        const pki = path.join(m.root, "etc/kubernetes/pki/etcd");
        fs.mkdirSync(pki, { recursive: true });
        fs.copyFileSync(path.join(etcdCaDir, "ca.crt"), path.join(pki, "ca.crt"));
        issueCert(pki, "server", certSpec(serverCertificateArgs(etcdPlacements[i])), etcdCaDir);
        // Connections between the namespace's addresses leave from 127.0.0.1 (netns.ts addAddresses), and
        // etcd checks a peer's certificate against its source address; on EC2 that is the member's own.
        const peer = certSpec(peerCertificateArgs(etcdPlacements[i]));
        issueCert(pki, "peer", { ...peer, ipAddresses: [...peer.ipAddresses, "127.0.0.1"] }, etcdCaDir);
        const docs = etcdNodeDocuments({ ...values, region: config.region, secretArn: "arn:aws:secretsmanager:local" }, etcdPlacements[i]);
        for (const [name, content] of Object.entries(docs.kubeadm)) writeFile(path.join(m.root, "etc/kubeadm-ha", name), content);
        writeNodeEnv(m, docs.env);
        // fetch-secrets.sh installs the etcd CA pair, with which cert-renew.sh renews the member's own.
        fs.copyFileSync(path.join(etcdCaDir, "ca.key"), path.join(pki, "ca.key"));
        m.runner.start();
        writeFile(path.join(m.root, "etc/kubernetes/manifests/etcd.yaml"), docs.kubeadm["etcd.yaml"]);
      }
      log(`external etcd: ${etcd.length} members starting`);
      const client = path.join(work, "apiserver-etcd-client");
      fs.mkdirSync(client);
      issueCert(client, "apiserver-etcd-client", certSpec(API_SERVER_ETCD_CLIENT_CERTIFICATE), etcdCaDir);
      for (const m of masters) {
        writeFile(path.join(m.root, API_SERVER_ETCD_CLIENT.caFile.slice(1)), fs.readFileSync(path.join(etcdCaDir, "ca.crt")), 0o644);
        writeFile(path.join(m.root, "etc/kubernetes/pki/etcd/ca.key"), fs.readFileSync(path.join(etcdCaDir, "ca.key")));
        writeFile(path.join(m.root, API_SERVER_ETCD_CLIENT.certFile.slice(1)), fs.readFileSync(path.join(client, "apiserver-etcd-client.crt")), 0o644);
        writeFile(path.join(m.root, API_SERVER_ETCD_CLIENT.keyFile.slice(1)), fs.readFileSync(path.join(client, "apiserver-etcd-client.key")));
      }
    }

    const documents = (hash: string) => {
      const values: MasterDocumentValues = {
        clusterName: config.clusterName,
        kubernetesVersion: config.kubernetesVersion,
        region: config.region,
        apiEndpoint,
        caCertHash: hash,
        secretArn: "arn:aws:secretsmanager:local",
        podCidr: config.network.podCidr,
        serviceCidr: config.network.serviceCidr,
        leaderElection: config.leaderElection,
        externalEtcd: external ? externalEtcdConfig(etcdPlacements) : undefined,
        etcdTimings: { heartbeatIntervalMs: config.etcd.heartbeatIntervalMs, electionTimeoutMs: config.etcd.electionTimeoutMs },
        encryptionAtRest: config.encryptionAtRest,
        externalCloudProvider: config.addons.awsCloudControllerManager,
        masters: masterPlacements,
      };
      for (const m of masters) {
        const docs = masterDocuments(values, masterPlacements[m.index]);
        for (const [name, raw] of Object.entries(docs.kubeadm)) {
          const content = name === "init.yaml" && opts.certificateValidityPeriod ? withValidity(raw, opts.certificateValidityPeriod) : raw;
          writeFile(path.join(m.root, "etc/kubeadm-ha", name), content);
          // fetch-secrets.sh's substitution, into the machine's /run.
          if (name === "init.yaml" || name === "join.yaml") writeFile(run(m, name), content.split(TOKEN_PLACEHOLDER).join(token));
        }
        writeNodeEnv(m, docs.env);
        if (config.encryptionAtRest) writeFile(path.join(m.root, "etc/kubernetes/pki", ENCRYPTION_CONFIG_FILE), encryptionConfigYaml(keys));
      }
    };

    // Master 0: kubeadm makes the CAs and every certificate; the CA hash then goes into the join documents.
    const m0 = masters[0];
    documents("sha256:" + "0".repeat(64));
    await kubeadm(m0, ["init", "phase", "certs", "all", "--config", "/run/kubeadm-ha/init.yaml"]);
    const hash = caCertHash(fs.readFileSync(path.join(m0.root, "etc/kubernetes/pki/ca.crt"), "utf8"));
    documents(hash);
    // What fetch-secrets.sh installs on every other master: the CAs, the service-account key pair.
    const shared = ["ca.crt", "ca.key", "front-proxy-ca.crt", "front-proxy-ca.key", "sa.key", "sa.pub", ...(external ? [] : ["etcd/ca.crt", "etcd/ca.key"])];
    for (const m of masters.slice(1)) for (const f of shared) copyInto(m0.root, m.root, path.join("etc/kubernetes/pki", f));

    writeFile(path.join(work, "haproxy.cfg"), haproxyConfig(lbIp, masters), 0o644);
    const check = spawnSync("haproxy", ["-c", "-f", path.join(work, "haproxy.cfg")], { encoding: "utf8" });
    if (check.status !== 0) throw new Error(`haproxy rejects its configuration: ${check.stdout}${check.stderr}`);
    const hfd = fs.openSync(haproxyLog, "a");
    haproxy = spawn("haproxy", ["-db", "-f", path.join(work, "haproxy.cfg")], { stdio: ["ignore", hfd, hfd] });
    fs.closeSync(hfd);

    await kubeadm(m0, ["init", "phase", "kubeconfig", "all", "--config", "/run/kubeadm-ha/init.yaml"]);
    if (!external) await kubeadm(m0, ["init", "phase", "etcd", "local", "--config", "/run/kubeadm-ha/init.yaml"]);
    await kubeadm(m0, ["init", "phase", "control-plane", "all", "--config", "/run/kubeadm-ha/init.yaml"]);
    m0.runner.start();
    const adminKubeconfig = path.join(m0.root, "etc/kubernetes/admin.conf");
    const admin = readKubeconfig(adminKubeconfig);
    const superAdmin = readKubeconfig(path.join(m0.root, "etc/kubernetes/super-admin.conf"));
    log(`master 0 (${m0.name} at ${m0.ip}): control plane starting`);
    await waitReady(superAdmin, `https://${m0.ip}:${API_PORT}`, 240000, logTail);
    await waitReady(superAdmin, `https://${apiEndpoint}`, 60000, logTail);
    await kubeadm(m0, ["init", "phase", "upload-config", "all", "--config", "/run/kubeadm-ha/init.yaml"]);
    await kubeadm(m0, ["init", "phase", "bootstrap-token", "--config", "/run/kubeadm-ha/init.yaml"]);
    await m0.runner.attachApi(superAdmin);
    await kubeadm(m0, ["init", "phase", "mark-control-plane", "--config", "/run/kubeadm-ha/init.yaml"]);
    log("master 0 initialised; joining the others one at a time");

    // The other masters, one at a time as the join lock orders them, through the load balancer.
    for (const m of masters.slice(1)) {
      await kubeadm(m, ["join", "phase", "control-plane-prepare", "all", "--config", "/run/kubeadm-ha/join.yaml"]);
      m.runner.start();
      await m.runner.attachApi(superAdmin);
      if (!external) await kubeadm(m, ["join", "phase", "etcd-join", "--config", "/run/kubeadm-ha/join.yaml"]);
      await waitReady(superAdmin, `https://${m.ip}:${API_PORT}`, 240000, logTail);
      await kubeadm(m, ["join", "phase", "control-plane-join", "mark-control-plane", "--config", "/run/kubeadm-ha/join.yaml"]);
      log(`master ${m.index} (${m.name} at ${m.ip}) joined`);
    }

    const etcdClient = external
      ? { ca: path.join(etcdCaDir!, "ca.crt"), cert: path.join(work, "apiserver-etcd-client/apiserver-etcd-client.crt"), key: path.join(work, "apiserver-etcd-client/apiserver-etcd-client.key") }
      : { ca: path.join(m0.root, "etc/kubernetes/pki/etcd/ca.crt"), cert: path.join(m0.root, "etc/kubernetes/pki/etcd/healthcheck-client.crt"), key: path.join(m0.root, "etc/kubernetes/pki/etcd/healthcheck-client.key") };
    const etcdctl = (args: string[], eps = etcdEndpoints) => {
      const r = spawnSync(path.join(binDir, "etcdctl"), [`--endpoints=${eps.join(",")}`, `--cacert=${etcdClient.ca}`, `--cert=${etcdClient.cert}`, `--key=${etcdClient.key}`, "--dial-timeout=2s", "--command-timeout=4s", ...args], { encoding: "utf8", timeout: 15000, env: { PATH: process.env.PATH } });
      return { ok: r.status === 0, stdout: r.stdout ?? "", out: `${r.stdout ?? ""}${r.stderr ?? ""}` };
    };
    const leaseHolder = async (name: string) => {
      const r = await apiRequest(admin, `/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/${name}`, { timeoutMs: 2000 });
      return r.status === 200 ? (r.json?.spec?.holderIdentity as string | undefined) : undefined;
    };
    const leaderOf = async (component: "kube-controller-manager" | "kube-scheduler") => {
      const port = component === "kube-controller-manager" ? 10257 : 10259;
      for (const m of masters) {
        if (!m.runner.isRunning(component)) continue;
        const r = await apiRequest(admin, "/metrics", { server: `https://${m.ip}:${port}`, timeoutMs: 2000, insecure: true }).catch(() => undefined);
        const line = r?.body.split("\n").find((l) => l.startsWith("leader_election_master_status{") && l.includes(`name="${component}"`));
        if (line && line.trim().endsWith(" 1")) return m;
      }
      return undefined;
    };
    const cluster: LocalCluster = {
      stack,
      config,
      work,
      binDir,
      apiUrl: `https://${apiEndpoint}`,
      lbIp,
      masters,
      etcd,
      etcdEndpoints,
      adminKubeconfig,
      admin,
      kubeadm,
      etcdctl,
      leaseHolder,
      leaderOf,
      logTail,
      dispose,
    };
    await waitFor("every etcd member healthy", 120000, async () => {
      const r = etcdctl(["endpoint", "health"]);
      return r.ok && (r.out.match(/is healthy/g) ?? []).length === etcdEndpoints.length ? true : undefined;
    }, logTail);
    await waitFor("a controller-manager and a scheduler leader", 120000, async () => ((await leaseHolder("kube-controller-manager")) && (await leaseHolder("kube-scheduler")) ? true : undefined), logTail);
    log(`control plane ready: ${cluster.apiUrl} (kubeconfig ${adminKubeconfig})`);
    return cluster;
  } catch (e) {
    await dispose(!!process.env.KUBEADM_HA_LOCAL_KEEP);
    throw e;
  }
}

/** Polls `check` every 250 ms until it returns a value, for at most `ms`. */
export async function waitFor<T>(what: string, ms: number, check: () => Promise<T | undefined>, context: () => string = () => ""): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? `: ${last}` : ""}\n${context()}`);
    await sleep(250);
  }
}

/** Waits until `server`/readyz answers 200 with these credentials. */
export function waitReady(creds: KubeCredentials, server: string, ms: number, context: () => string): Promise<true> {
  return waitFor(`${server}/readyz`, ms, async () => ((await apiRequest(creds, "/readyz", { server, timeoutMs: 3000 })).status === 200 ? true : undefined), context);
}

export { apiOk, apiRequest };
