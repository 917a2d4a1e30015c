/**
 * A stack's rendered external etcd, for real, on this machine: render the stack as
 * `npm run render -- <stack>` does, take each member's etcd flags from its rendered static pod, move
 * the members onto free loopback addresses and a temp dir (only addresses and paths change), sign the
 * same kind of certificates with openssl from the program's own certificate requests, and run real
 * etcd processes (etcd 3.6, built by test/k8s/build.sh) with those flags. etcdctl runs with the API
 * server's client certificate, as kube-apiserver connects.
 *
 * Used by jest tests and by benchmark scripts, so it never touches jest globals. Needs the built etcd
 * and etcdctl (`bash test/k8s/build.sh`) and openssl; .ci/run provides them; a missing tool is an
 * error, never a skip.
 */
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { parse, parseAllDocuments } from "yaml";
import { k8sBinary } from "./k8s/binaries";

export const ROOT = path.resolve(__dirname, "..");
const IPV4 = /\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b/g;
/** Where the rendered pod keeps a member's data and certificates. */
export const RENDERED_DATA = "/var/lib/etcd";
export const RENDERED_PKI = "/etc/kubernetes/pki/etcd";
export const RENDERED_LOOPBACK = "127.0.0.1";
/** Ports a rendered member listens on (client, peer, metrics); all must be free on the chosen addresses. */
const PORTS = [2379, 2380, 2381];

/** The built etcd, etcdctl and etcdutl (test/k8s/build.sh), or a plain command such as openssl from PATH. */
export function tool(cmd: string): string {
  return cmd === "etcd" || cmd === "etcdctl" || cmd === "etcdutl" ? k8sBinary(cmd) : cmd;
}

export function requireTool(cmd: string, args: string[]): string {
  const r = spawnSync(tool(cmd), args, { encoding: "utf8" });
  if (r.error || r.status !== 0)
    throw new Error(
      `${cmd} is required by the real-etcd harness but ${r.error ? "is not installed" : `failed (${r.stderr.trim()})`}: ` +
        "bash test/k8s/build.sh builds etcd and etcdctl; apt-get install openssl (npm run setup does both)",
    );
  return r.stdout + r.stderr;
}

/** One row of the render's resources.md: type, name and key settings parsed back into values. */
export interface ResourceRow {
  type: string;
  name: string;
  settings: Record<string, unknown>;
}

export function resourceRows(md: string): ResourceRow[] {
  const rows: ResourceRow[] = [];
  for (const m of md.matchAll(/^\| `([^`]+)` \| (\S+) \| (.*) \|$/gm)) {
    const settings: Record<string, unknown> = {};
    // keySettings writes `key=<scalar or compact JSON>` joined by ", "; compact JSON has no ", ".
    for (const marked of m[3] === "" ? [] : m[3].split(", ")) {
      // The render marks a setting holding a value the mocks invented.
      const part = marked.replace(/ \(mock\)$/, "");
      const i = part.indexOf("=");
      const raw = part.slice(i + 1);
      try {
        settings[part.slice(0, i)] = JSON.parse(raw);
      } catch {
        settings[part.slice(0, i)] = raw;
      }
    }
    rows.push({ type: m[1], name: m[2], settings });
  }
  return rows;
}

export interface CertSpec {
  commonName: string;
  dnsNames: string[];
  ipAddresses: string[];
  allowedUses: string[];
}

const KEY_USAGE: Record<string, string> = { digital_signature: "digitalSignature", key_encipherment: "keyEncipherment" };
const EXT_KEY_USAGE: Record<string, string> = { server_auth: "serverAuth", client_auth: "clientAuth" };

function openssl(cwd: string, args: string[]): void {
  const r = spawnSync("openssl", args, { cwd, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`openssl ${args.join(" ")} failed: ${r.stderr}`);
}

/** A self-signed RSA-2048 CA `<dir>/ca.{key,crt}`, valid one day. */
export function makeCa(dir: string, commonName = "etcd-ca"): void {
  fs.mkdirSync(dir, { recursive: true });
  openssl(dir, ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-subj", `/CN=${commonName}`, "-days", "1",
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,digitalSignature,keyEncipherment"]);
}

/** An RSA-2048 key and certificate `<dir>/<base>.{key,crt}` signed by the CA in `caDir`, with the program's usages and SANs. */
export function issueCert(dir: string, base: string, spec: CertSpec, caDir: string): void {
  const ku = spec.allowedUses.filter((u) => u in KEY_USAGE).map((u) => KEY_USAGE[u]);
  const eku = spec.allowedUses.filter((u) => u in EXT_KEY_USAGE).map((u) => EXT_KEY_USAGE[u]);
  const unknown = spec.allowedUses.filter((u) => !(u in KEY_USAGE) && !(u in EXT_KEY_USAGE));
  if (unknown.length) throw new Error(`issue ${base}: no openssl name for ${unknown.join(", ")}`);
  const sans = [...spec.dnsNames.map((d) => `DNS:${d}`), ...spec.ipAddresses.map((ip) => `IP:${ip}`)];
  const ext = ["[v3]", "basicConstraints = critical, CA:FALSE", `keyUsage = critical, ${ku.join(", ")}`, `extendedKeyUsage = ${eku.join(", ")}`];
  if (sans.length) ext.push(`subjectAltName = ${sans.join(", ")}`);
  fs.writeFileSync(path.join(dir, `${base}.ext`), ext.join("\n") + "\n");
  openssl(dir, ["req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", `${base}.key`, "-out", `${base}.csr`, "-subj", `/CN=${spec.commonName}`]);
  openssl(dir, ["x509", "-req", "-in", `${base}.csr`, "-CA", path.join(caDir, "ca.crt"), "-CAkey", path.join(caDir, "ca.key"), "-set_serial", `0x${crypto.randomBytes(8).toString("hex")}`,
    "-days", "1", "-out", `${base}.crt`, "-extfile", `${base}.ext`, "-extensions", "v3"]);
}

/** Replaces every IPv4 address through `ips` (an unknown one is an error) and every path prefix through `paths`. */
export function substitute(value: string, ips: Map<string, string>, paths: Array<[string, string]>): string {
  let out = value.replace(IPV4, (ip) => {
    const to = ips.get(ip);
    if (to === undefined) throw new Error(`no mapping for ${ip} in ${value}`);
    return to;
  });
  for (const [from, to] of paths) out = out.split(from).join(to);
  return out;
}

/** `flags` with `--name=value` replaced (or appended when absent); for restarts with, say, `initial-cluster-state=existing`. */
export function withFlag(flags: string[], name: string, value: string): string[] {
  const prefix = `--${name}=`;
  return flags.some((f) => f.startsWith(prefix)) ? flags.map((f) => (f.startsWith(prefix) ? prefix + value : f)) : [...flags, prefix + value];
}

/** One member's `endpoint status`. */
export interface EndpointStatus {
  endpoint: string;
  /** Member IDs as decimal strings: they exceed 2^53. */
  id: string;
  leader: string;
  isLeader: boolean;
  raftTerm: number;
}

/**
 * `etcdctl endpoint status -w json` of `endpoints`, of those that answer (an unreachable one goes to
 * stderr). JSON, not `-w simple`, whose columns etcd 3.6 changed.
 */
export function endpointStatuses(etcdctl: (args: string[], endpoints: string[]) => { stdout: string }, endpoints: string[]): EndpointStatus[] {
  if (endpoints.length === 0) return [];
  const out = etcdctl(["endpoint", "status", "-w", "json"], endpoints).stdout.trim();
  if (!out.startsWith("[")) return [];
  const raw = JSON.parse(out.replace(/:\s*(\d{10,})/g, ':"$1"')) as Array<{ Endpoint: string; Status: { header: { member_id: string; raft_term: string | number }; leader: string } }>;
  return raw.map((r) => ({
    endpoint: r.Endpoint,
    id: String(r.Status.header.member_id),
    leader: String(r.Status.leader),
    isLeader: String(r.Status.header.member_id) === String(r.Status.leader),
    raftTerm: Number(r.Status.header.raft_term),
  }));
}

/** The value of `--name=` in `flags`, or undefined. */
export function flagValue(flags: string[], name: string): string | undefined {
  return flags.find((f) => f.startsWith(`--${name}=`))?.slice(name.length + 3);
}

const canBind = (host: string, port: number) =>
  new Promise<boolean>((resolve) => {
    const s = net.createServer();
    s.once("error", () => resolve(false));
    s.listen(port, host, () => s.close(() => resolve(true)));
  });

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Polls `check` every 200 ms until it returns a value, for at most `ms`; fails with the last result
 * and `context()` (the members' logs, say).
 */
export async function until<T>(what: string, ms: number, check: () => { value?: T; last: string }, context: () => string = () => ""): Promise<T> {
  const deadline = Date.now() + ms;
  let last = "";
  for (;;) {
    const r = check();
    if (r.value !== undefined) return r.value;
    last = r.last;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}; last: ${last}\n${context()}`);
    await sleep(200);
  }
}

export interface EtcdMember {
  index: number;
  /** `--name`, as rendered (the machine's EC2 private DNS name). */
  name: string;
  /** The address the render gave this member. */
  renderedIp: string;
  /** The loopback address standing in for `renderedIp`. */
  ip: string;
  /** Stands in for this member's own 127.0.0.1. */
  loopback: string;
  /** Client URL on `ip`: the rendered endpoint with the address substituted. */
  endpoint: string;
  /** Work dir of this member: `data/` (the rendered /var/lib/etcd) and `pki/` (the rendered /etc/kubernetes/pki/etcd). */
  dir: string;
  dataDir: string;
  pkiDir: string;
  /** The flags of the rendered static pod, untouched. */
  rendered: string[];
  /** `rendered` with only addresses and paths substituted: what `start` runs unless told otherwise. */
  flags: string[];
  /** stdout and stderr of every run, appended. */
  log: string;
  proc?: ChildProcess;
}

export interface EtcdctlResult {
  ok: boolean;
  status: number | null;
  stdout: string;
  stderr: string;
  /** stdout then stderr. */
  out: string;
}

export interface EtcdHarnessOptions {
  /** Stack whose rendered external etcd runs; default "prod" (it must use external etcd). */
  stack?: string;
  /** Stack config file passed to the render as `--config`; default Pulumi.<stack>.yaml. */
  configFile?: string;
  /** Start every member before returning; default true. */
  start?: boolean;
  /** Prefix of the temp work dir under os.tmpdir(); default "etcd-harness-". */
  workPrefix?: string;
}

export interface EtcdCluster {
  stack: string;
  /** Temp dir holding the render, the PKI and every member's dir; removed by `dispose`. */
  work: string;
  /** Where the stack was rendered (`npm run render -- <stack> --out <renderDir>`). */
  renderDir: string;
  /** Rows of the render's resources.md. */
  rows: ResourceRow[];
  /** `ClusterConfiguration.etcd.external` of master 0's rendered init.yaml. */
  external: { endpoints: string[]; caFile: string; certFile: string; keyFile: string };
  /** The rendered endpoints (EC2 addresses). */
  renderedEndpoints: string[];
  /** `renderedEndpoints` with loopback addresses, in the same order: what kube-apiserver would dial. */
  endpoints: string[];
  members: EtcdMember[];
  /** The etcd CA dir (ca.crt, ca.key): sign more certificates with `issueCert(dir, base, spec, caDir)`. */
  caDir: string;
  /** The API server's etcd client pair (apiserver-etcd-client), signed from the program's request. */
  client: { ca: string; cert: string; key: string };
  /** Certificate request of a rendered `<name>-csr`/`<name>-cert` pair, e.g. `prod-etcd-pki-member-0-server`. */
  certSpec(name: string): CertSpec;
  /** etcdctl v3 with the client certificate against `endpoints` (default all), 2 s dial and 4 s command timeouts. */
  etcdctl(args: string[], endpoints?: string[]): EtcdctlResult;
  /** Starts member `i` with its substituted flags, or with `flags` when given; throws if it is running. */
  start(i: number, flags?: string[]): void;
  /** SIGKILL member `i` (a machine dying) and wait for it to exit; no-op when it is not running. */
  kill(i: number): Promise<void>;
  /** SIGTERM member `i` (a clean shutdown), SIGKILL after 10 s; no-op when it is not running. */
  stop(i: number): Promise<void>;
  /** Deletes member `i`'s data dir (a replaced machine's empty disk); the member must not be running. */
  wipe(i: number): void;
  isRunning(i: number): boolean;
  /** Polls `endpoint health` until every one of `endpoints` (default all) is healthy, for at most `ms` (default 20 s). */
  healthy(endpoints?: string[], ms?: number): Promise<string>;
  /** Index of the member that is leader, as the running members report it; undefined if none does. */
  leader(): number | undefined;
  /** The highest raft term the running members report (each election increments it); undefined if none answers. */
  raftTerm(): number | undefined;
  /** The last `lines` (default 15) of every member's log. */
  logTail(lines?: number): string;
  /** SIGKILL every member and wait. */
  stopAll(): Promise<void>;
  /** `stopAll`, then remove the work dir. */
  dispose(): Promise<void>;
}

/** Renders a stack into `out` in a child process, exactly as `npm run render -- <stack> --out <out>` does. */
export function renderStackTo(stack: string, out: string, configFile?: string): void {
  const args = ["-r", "@swc-node/register", path.join(ROOT, "scripts/render.ts"), stack, "--out", out, ...(configFile ? ["--config", configFile] : [])];
  const r = spawnSync(process.execPath, args, { cwd: ROOT, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`render ${stack} failed: ${r.stderr}`);
}

/**
 * Renders `opts.stack` (default prod), builds its external etcd members on free loopback addresses
 * with certificates signed from the program's requests, and (unless `start: false`) starts them.
 * The members are not yet known healthy: call `healthy()`.
 */
export async function startRenderedEtcdCluster(opts: EtcdHarnessOptions = {}): Promise<EtcdCluster> {
  const stack = opts.stack ?? "prod";
  requireTool("etcd", ["--version"]);
  requireTool("etcdctl", ["version"]);
  requireTool("openssl", ["version"]);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), opts.workPrefix ?? "etcd-harness-"));

  // 1. Render the stack exactly as `npm run render -- <stack> --out <dir>` does.
  const renderDir = path.join(work, "render");
  renderStackTo(stack, renderDir, opts.configFile);
  const read = (rel: string) => fs.readFileSync(path.join(renderDir, rel), "utf8");
  const rows = resourceRows(read("resources.md"));
  const init = parseAllDocuments(read(`kubeadm/${stack}-control-plane-master-0/init.yaml`), { version: "1.1" }).map((d) => d.toJS());
  const external = init.find((d) => d.kind === "ClusterConfiguration")?.etcd?.external;
  if (!external) throw new Error(`stack ${stack} does not use external etcd: master 0's ClusterConfiguration has no etcd.external`);
  const renderedEndpoints: string[] = external.endpoints;

  // 2. Each etcd machine's static pod, from its user data as EC2 would run it.
  const members: EtcdMember[] = [];
  const userData = fs.readdirSync(path.join(renderDir, "user-data")).filter((f) => f.startsWith(`${stack}-etcd-member-`)).sort();
  if (userData.length !== renderedEndpoints.length)
    throw new Error(`${renderedEndpoints.length} endpoints but ${userData.length} etcd members in the ${stack} render: ${userData.join(", ")}`);
  userData.forEach((f, index) => {
    const cloudConfig = parse(read(`user-data/${f}`), { version: "1.1" });
    const manifest = cloudConfig.write_files.find((w: { path: string }) => w.path === "/etc/kubeadm-ha/etcd.yaml").content;
    const command: string[] = parse(manifest, { version: "1.1" }).spec.containers[0].command;
    if (command[0] !== "etcd") throw new Error(`${f}: the container command is not etcd: ${command[0]}`);
    const rendered = command.slice(1);
    const dir = path.join(work, `member-${index}`);
    members.push({
      index,
      name: flagValue(rendered, "name")!,
      renderedIp: new URL(flagValue(rendered, "listen-peer-urls")!).hostname,
      ip: "",
      loopback: "",
      endpoint: "",
      dir,
      dataDir: path.join(dir, "data"),
      pkiDir: path.join(dir, "pki"),
      rendered,
      flags: [],
      log: path.join(work, `member-${index}.log`),
    });
  });

  // 3. Loopback addresses nobody else uses, so a default etcd on 127.0.0.1:2379 (or a parallel run) cannot collide.
  for (let attempt = 0; ; attempt++) {
    const base = `127.${100 + crypto.randomInt(150)}.${crypto.randomInt(250)}`;
    for (const m of members) {
      m.ip = `${base}.${11 + m.index}`;
      m.loopback = `${base}.${111 + m.index}`;
    }
    const free = await Promise.all(members.flatMap((m) => [m.ip, m.loopback].flatMap((h) => PORTS.map((p) => canBind(h, p)))));
    if (free.every(Boolean)) break;
    if (attempt === 5) throw new Error("no free loopback addresses for etcd after 6 tries");
  }

  // 4. PKI: an etcd CA, and each certificate the program requests, with its SANs mapped the same way.
  const caDir = path.join(work, "pki");
  makeCa(caDir);
  const certSpec = (name: string): CertSpec => {
    const csr = rows.find((row) => row.name === `${name}-csr`)?.settings;
    const cert = rows.find((row) => row.name === `${name}-cert`)?.settings;
    if (!csr || !cert) throw new Error(`${name}: no certificate request in the render's resources.md`);
    return {
      commonName: (csr.subject as { commonName: string }).commonName,
      dnsNames: (csr.dnsNames as string[] | undefined) ?? [],
      ipAddresses: (csr.ipAddresses as string[] | undefined) ?? [],
      allowedUses: cert.allowedUses as string[],
    };
  };
  const ipMap = new Map(members.map((m) => [m.renderedIp, m.ip]));
  for (const m of members) {
    const own = new Map([...ipMap, [RENDERED_LOOPBACK, m.loopback]]);
    fs.mkdirSync(m.pkiDir, { recursive: true });
    fs.copyFileSync(path.join(caDir, "ca.crt"), path.join(m.pkiDir, "ca.crt"));
    for (const kind of ["server", "peer"]) {
      const s = certSpec(`${stack}-etcd-pki-member-${m.index}-${kind}`);
      if (s.commonName !== m.name) throw new Error(`member ${m.index}: ${kind} certificate CN ${s.commonName} is not the member name ${m.name}`);
      const ips = s.ipAddresses.map((ip) => own.get(ip)!);
      // On loopback, Linux sends every connection from 127.0.0.1 whatever the destination, and
      // etcd matches a connecting peer's certificate against its source address; on EC2 that
      // source is the member's own address, which the rendered peer certificate names.
      if (kind === "peer") ips.push(RENDERED_LOOPBACK);
      issueCert(m.pkiDir, kind, { ...s, ipAddresses: ips }, caDir);
    }
  }
  issueCert(caDir, "apiserver-etcd-client", certSpec(`${stack}-etcd-pki-apiserver-etcd-client`), caDir);
  const client = { ca: path.join(caDir, "ca.crt"), cert: path.join(caDir, "apiserver-etcd-client.crt"), key: path.join(caDir, "apiserver-etcd-client.key") };

  // 5. The rendered flags with only addresses and paths substituted.
  for (const m of members) {
    const own = new Map([...ipMap, [RENDERED_LOOPBACK, m.loopback]]);
    const paths: Array<[string, string]> = [[RENDERED_DATA, m.dataDir], [RENDERED_PKI, m.pkiDir]];
    m.flags = m.rendered.map((f) => substitute(f, own, paths));
  }
  const endpoints = renderedEndpoints.map((e) => substitute(e, ipMap, []));
  for (const m of members) m.endpoint = endpoints[m.index];

  const member = (i: number) => {
    const m = members[i];
    if (!m) throw new Error(`no etcd member ${i} (members 0..${members.length - 1})`);
    return m;
  };
  const isRunning = (i: number) => {
    const p = member(i).proc;
    return !!p && p.exitCode === null && p.signalCode === null;
  };
  const killAllNow = () => {
    for (const m of members) if (m.proc && m.proc.exitCode === null && m.proc.signalCode === null) m.proc.kill("SIGKILL");
  };
  process.once("exit", killAllNow);

  const start = (i: number, flags?: string[]) => {
    const m = member(i);
    if (isRunning(i)) throw new Error(`etcd member ${i} is already running`);
    const fd = fs.openSync(m.log, "a");
    // No ETCD_* variables from the environment: the flags alone configure the member.
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH };
    m.proc = spawn(tool("etcd"), flags ?? m.flags, { env, stdio: ["ignore", fd, fd] });
    fs.closeSync(fd);
  };
  const signal = async (i: number, sig: NodeJS.Signals, graceMs: number) => {
    const m = member(i);
    const p = m.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) {
      m.proc = undefined;
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    const exited = new Promise((r) => p.once("exit", r));
    p.kill(sig);
    await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
    if (p.exitCode === null && p.signalCode === null) {
      p.kill("SIGKILL");
      await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, 5000)))]);
      clearTimeout(timer);
    }
    m.proc = undefined;
  };
  const logTail = (lines = 15) =>
    members.map((m) => `--- ${path.basename(m.dir)} ---\n${fs.existsSync(m.log) ? fs.readFileSync(m.log, "utf8").split("\n").slice(-lines).join("\n") : ""}`).join("\n");
  const etcdctl = (args: string[], eps: string[] = endpoints): EtcdctlResult => {
    const r = spawnSync(
      tool("etcdctl"),
      [`--endpoints=${eps.join(",")}`, `--cacert=${client.ca}`, `--cert=${client.cert}`, `--key=${client.key}`, "--dial-timeout=2s", "--command-timeout=4s", ...args],
      { env: { PATH: process.env.PATH }, encoding: "utf8", timeout: 15000 },
    );
    const stdout = r.stdout ?? "";
    const stderr = r.stderr ?? "";
    return { ok: r.status === 0, status: r.status, stdout, stderr, out: stdout + stderr };
  };
  const stopAll = async () => {
    await Promise.all(members.map((m) => signal(m.index, "SIGKILL", 5000)));
    killAllNow();
  };

  const cluster: EtcdCluster = {
    stack,
    work,
    renderDir,
    rows,
    external,
    renderedEndpoints,
    endpoints,
    members,
    caDir,
    client,
    certSpec,
    etcdctl,
    start,
    kill: (i) => signal(i, "SIGKILL", 5000),
    stop: (i) => signal(i, "SIGTERM", 10000),
    wipe: (i) => {
      if (isRunning(i)) throw new Error(`etcd member ${i} is running: stop it before wiping its data dir`);
      fs.rmSync(member(i).dataDir, { recursive: true, force: true });
    },
    isRunning,
    healthy: (eps = endpoints, ms = 20000) =>
      until(`${eps.join(" ")} healthy`, ms, () => {
        const r = etcdctl(["endpoint", "health"], eps);
        return { value: r.ok && (r.out.match(/is healthy/g) ?? []).length === eps.length ? r.out : undefined, last: r.out };
      }, logTail),
    leader: () => {
      const leader = endpointStatuses(etcdctl, members.filter((m) => isRunning(m.index)).map((m) => m.endpoint)).find((s) => s.isLeader);
      const i = leader ? endpoints.indexOf(leader.endpoint) : -1;
      return i < 0 ? undefined : i;
    },
    raftTerm: () => {
      const terms = endpointStatuses(etcdctl, members.filter((m) => isRunning(m.index)).map((m) => m.endpoint)).map((s) => s.raftTerm);
      return terms.length ? Math.max(...terms) : undefined;
    },
    logTail,
    stopAll,
    dispose: async () => {
      await stopAll();
      process.removeListener("exit", killAllNow);
      fs.rmSync(work, { recursive: true, force: true });
    },
  };
  if (opts.start ?? true) for (const m of members) start(m.index);
  return cluster;
}
