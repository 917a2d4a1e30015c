/**
 * The prod stack's external etcd, for real: render the stack as `npm run render -- prod` does,
 * take each member's etcd flags from its rendered static pod, move the members onto loopback
 * addresses and a temp dir (nothing else changes, and a test checks that), sign the same kind of
 * certificates with openssl from the program's own certificate requests, and run three real etcd
 * processes (Debian's etcd-server, 3.4) with those flags. etcdctl, with the API server's client
 * certificate and the rendered endpoint list, then checks what the API servers rely on: the cluster
 * is healthy, a write on one member is read on another, any one member can die without losing a
 * write or the ability to write, and a member restarted on its data directory rejoins and catches up.
 *
 * Needs etcd, etcdctl and openssl (`apt-get install etcd-server etcd-client openssl`; .ci/run
 * installs them). Missing tools fail the test: they never skip it.
 */
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import * as fc from "fast-check";
import { parse, parseAllDocuments } from "yaml";
import { parseConfig } from "../config";

const ROOT = path.resolve(__dirname, "..");
const STACK = "prod";
const IPV4 = /\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b/g;
/** Where the rendered pod keeps a member's data and certificates. */
const RENDERED_DATA = "/var/lib/etcd";
const RENDERED_PKI = "/etc/kubernetes/pki/etcd";
const RENDERED_LOOPBACK = "127.0.0.1";

function requireTool(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.error || r.status !== 0)
    throw new Error(
      `${cmd} is required by the real-etcd test but ${r.error ? "is not installed" : `failed (${r.stderr.trim()})`}: ` +
        "apt-get install etcd-server etcd-client openssl (.ci/run installs them)",
    );
  return r.stdout + r.stderr;
}

/** `etcd <flags>` exits at once on flags it rejects; a data dir it cannot list stops it just after the flag checks. */
function etcdAcceptsTimings(heartbeat: number, election: number): { ok: boolean; out: string } {
  const r = spawnSync("etcd", ["--data-dir=/dev/null/kubeadm-ha-flag-check", `--heartbeat-interval=${heartbeat}`, `--election-timeout=${election}`], {
    encoding: "utf8",
    env: { PATH: process.env.PATH },
    timeout: 10000,
  });
  const out = r.stdout + r.stderr;
  if (!out.includes("error verifying flags") && !out.includes("error listing data dir"))
    throw new Error(`etcd neither rejected nor accepted the flags: ${out}`);
  return { ok: !out.includes("error verifying flags"), out };
}

/** One row of the render's resources.md: type, name and key settings parsed back into values. */
interface ResourceRow {
  type: string;
  name: string;
  settings: Record<string, unknown>;
}

function resourceRows(md: string): ResourceRow[] {
  const rows: ResourceRow[] = [];
  for (const m of md.matchAll(/^\| `([^`]+)` \| (\S+) \| (.*) \|$/gm)) {
    const settings: Record<string, unknown> = {};
    // keySettings writes `key=<scalar or compact JSON>` joined by ", "; compact JSON has no ", ".
    for (const part of m[3] === "" ? [] : m[3].split(", ")) {
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

interface CertSpec {
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

/** An RSA-2048 key and certificate `<dir>/<base>.{key,crt}` signed by the CA in `caDir`, with the program's usages and SANs. */
function issue(dir: string, base: string, spec: CertSpec, caDir: string): void {
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
function substitute(value: string, ips: Map<string, string>, paths: Array<[string, string]>): string {
  let out = value.replace(IPV4, (ip) => {
    const to = ips.get(ip);
    if (to === undefined) throw new Error(`no mapping for ${ip} in ${value}`);
    return to;
  });
  for (const [from, to] of paths) out = out.split(from).join(to);
  return out;
}

const canBind = (host: string, port: number) =>
  new Promise<boolean>((resolve) => {
    const s = net.createServer();
    s.once("error", () => resolve(false));
    s.listen(port, host, () => s.close(() => resolve(true)));
  });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Member {
  index: number;
  name: string;
  renderedIp: string;
  ip: string;
  /** Stands in for this member's own 127.0.0.1. */
  loopback: string;
  dir: string;
  rendered: string[];
  flags: string[];
  proc?: ChildProcess;
  log: string;
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), "etcd-real-"));
const members: Member[] = [];
let renderedEndpoints: string[] = [];
let endpoints: string[] = [];
let client: { ca: string; cert: string; key: string };

function start(m: Member): void {
  const fd = fs.openSync(m.log, "a");
  // No ETCD_* variables from the environment: the flags alone configure the member. etcd 3.4
  // refuses to start on arm64 without its opt-in variable (3.5+ supports arm64).
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, ...(process.arch === "arm64" ? { ETCD_UNSUPPORTED_ARCH: "arm64" } : {}) };
  m.proc = spawn("etcd", m.flags, { env, stdio: ["ignore", fd, fd] });
  fs.closeSync(fd);
}

async function stop(m: Member): Promise<void> {
  const p = m.proc;
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  let timer: NodeJS.Timeout | undefined;
  const exited = new Promise((r) => p.once("exit", r));
  p.kill("SIGKILL");
  await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, 5000)))]);
  clearTimeout(timer);
  m.proc = undefined;
}

const killAll = () => {
  for (const m of members) if (m.proc && m.proc.exitCode === null) m.proc.kill("SIGKILL");
};
process.once("exit", killAll);

function etcdctl(eps: string[], args: string[]): { ok: boolean; out: string } {
  const r = spawnSync(
    "etcdctl",
    [`--endpoints=${eps.join(",")}`, `--cacert=${client.ca}`, `--cert=${client.cert}`, `--key=${client.key}`, "--dial-timeout=2s", "--command-timeout=4s", ...args],
    { env: { PATH: process.env.PATH, ETCDCTL_API: "3" }, encoding: "utf8", timeout: 15000 },
  );
  return { ok: r.status === 0, out: (r.stdout ?? "") + (r.stderr ?? "") };
}

const logTail = () => members.map((m) => `--- ${path.basename(m.dir)} ---\n${fs.existsSync(m.log) ? fs.readFileSync(m.log, "utf8").split("\n").slice(-15).join("\n") : ""}`).join("\n");

/** Polls `check` until it returns a value, for at most `ms`; fails with the last result and the members' logs. */
async function until<T>(what: string, ms: number, check: () => { value?: T; last: string }): Promise<T> {
  const deadline = Date.now() + ms;
  let last = "";
  for (;;) {
    const r = check();
    if (r.value !== undefined) return r.value;
    last = r.last;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}; last: ${last}\n${logTail()}`);
    await sleep(200);
  }
}

const endpointOf = (m: Member) => endpoints[m.index];
const healthy = (eps: string[]) => until(`${eps.join(" ")} healthy`, 20000, () => {
  const r = etcdctl(eps, ["endpoint", "health"]);
  return { value: r.ok && (r.out.match(/is healthy/g) ?? []).length === eps.length ? r.out : undefined, last: r.out };
});
const put = (eps: string[], key: string, value: string) => until(`put ${key}`, 15000, () => {
  const r = etcdctl(eps, ["put", key, value]);
  return { value: r.ok && r.out.trim() === "OK" ? true : undefined, last: r.out };
});
/** Every key under /kubeadm-ha-test/ as key=value lines, read linearizably or from the member's own store. */
const readAll = (eps: string[], consistency: "l" | "s") => {
  const r = etcdctl(eps, ["get", "/kubeadm-ha-test/", "--prefix", `--consistency=${consistency}`]);
  if (!r.ok) return { last: r.out };
  const lines = r.out.trim().split("\n").filter((l) => l !== "");
  const pairs: string[] = [];
  for (let i = 0; i + 1 < lines.length; i += 2) pairs.push(`${lines[i]}=${lines[i + 1]}`);
  return { value: pairs, last: r.out };
};

const written: string[] = [];
async function write(eps: string[], key: string): Promise<void> {
  const value = `v-${crypto.randomBytes(4).toString("hex")}`;
  await put(eps, `/kubeadm-ha-test/${key}`, value);
  written.push(`/kubeadm-ha-test/${key}=${value}`);
  written.sort();
}

beforeAll(async () => {
  requireTool("etcd", ["--version"]);
  requireTool("etcdctl", ["version"]);
  requireTool("openssl", ["version"]);

  // 1. Render the prod stack exactly as `npm run render -- prod --out <dir>` does.
  const out = path.join(work, "render");
  const r = spawnSync(process.execPath, ["-r", "@swc-node/register", path.join(ROOT, "scripts/render.ts"), STACK, "--out", out], { cwd: ROOT, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`render ${STACK} failed: ${r.stderr}`);
  const read = (rel: string) => fs.readFileSync(path.join(out, rel), "utf8");
  const rows = resourceRows(read("resources.md"));
  const init = parseAllDocuments(read(`kubeadm/${STACK}-control-plane-master-0/init.yaml`), { version: "1.1" }).map((d) => d.toJS());
  const external = init.find((d) => d.kind === "ClusterConfiguration").etcd.external;
  renderedEndpoints = external.endpoints;

  // 2. Each etcd machine's static pod, from its user data as EC2 would run it.
  const userData = fs.readdirSync(path.join(out, "user-data")).filter((f) => f.startsWith(`${STACK}-etcd-member-`)).sort();
  if (userData.length !== 3) throw new Error(`expected three etcd members in the ${STACK} render, found ${userData.join(", ")}`);
  userData.forEach((f, index) => {
    const cloudConfig = parse(read(`user-data/${f}`), { version: "1.1" });
    const manifest = cloudConfig.write_files.find((w: { path: string }) => w.path === "/etc/kubeadm-ha/etcd.yaml").content;
    const command: string[] = parse(manifest, { version: "1.1" }).spec.containers[0].command;
    if (command[0] !== "etcd") throw new Error(`${f}: the container command is not etcd: ${command[0]}`);
    const rendered = command.slice(1);
    const flag = (name: string) => rendered.find((a) => a.startsWith(`--${name}=`))!.slice(name.length + 3);
    const dir = path.join(work, `member-${index}`);
    members.push({ index, name: flag("name"), renderedIp: new URL(flag("listen-peer-urls")).hostname, ip: "", loopback: "", dir, rendered, flags: [], log: path.join(work, `member-${index}.log`) });
  });

  // 3. Loopback addresses nobody else uses, so a default etcd on 127.0.0.1:2379 (or a parallel run) cannot collide.
  const ports = [2379, 2380, 2381];
  for (let attempt = 0; ; attempt++) {
    const base = `127.${100 + crypto.randomInt(150)}.${crypto.randomInt(250)}`;
    for (const m of members) {
      m.ip = `${base}.${11 + m.index}`;
      m.loopback = `${base}.${111 + m.index}`;
    }
    const free = await Promise.all(members.flatMap((m) => [m.ip, m.loopback].flatMap((h) => ports.map((p) => canBind(h, p)))));
    if (free.every(Boolean)) break;
    if (attempt === 5) throw new Error("no free loopback addresses for etcd after 6 tries");
  }

  // 4. PKI: an etcd CA, and each certificate the program requests, with its SANs mapped the same way.
  const pki = path.join(work, "pki");
  fs.mkdirSync(pki);
  openssl(pki, ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=etcd-ca", "-days", "1",
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,digitalSignature,keyEncipherment"]);
  const spec = (name: string): CertSpec => {
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
    fs.mkdirSync(path.join(m.dir, "pki"), { recursive: true });
    fs.copyFileSync(path.join(pki, "ca.crt"), path.join(m.dir, "pki/ca.crt"));
    for (const kind of ["server", "peer"]) {
      const s = spec(`${STACK}-etcd-pki-member-${m.index}-${kind}`);
      if (s.commonName !== m.name) throw new Error(`member ${m.index}: ${kind} certificate CN ${s.commonName} is not the member name ${m.name}`);
      const ips = s.ipAddresses.map((ip) => own.get(ip)!);
      // On loopback, Linux sends every connection from 127.0.0.1 whatever the destination, and
      // etcd matches a connecting peer's certificate against its source address; on EC2 that
      // source is the member's own address, which the rendered peer certificate names.
      if (kind === "peer") ips.push(RENDERED_LOOPBACK);
      issue(path.join(m.dir, "pki"), kind, { ...s, ipAddresses: ips }, pki);
    }
  }
  issue(pki, "apiserver-etcd-client", spec(`${STACK}-etcd-pki-apiserver-etcd-client`), pki);
  client = { ca: path.join(pki, "ca.crt"), cert: path.join(pki, "apiserver-etcd-client.crt"), key: path.join(pki, "apiserver-etcd-client.key") };
  expect([external.caFile, external.certFile, external.keyFile]).toEqual([
    `${RENDERED_PKI}/ca.crt`,
    "/etc/kubernetes/pki/apiserver-etcd-client.crt",
    "/etc/kubernetes/pki/apiserver-etcd-client.key",
  ]);

  // 5. The rendered flags with only addresses and paths substituted.
  for (const m of members) {
    const own = new Map([...ipMap, [RENDERED_LOOPBACK, m.loopback]]);
    const paths: Array<[string, string]> = [[RENDERED_DATA, path.join(m.dir, "data")], [RENDERED_PKI, path.join(m.dir, "pki")]];
    m.flags = m.rendered.map((f) => substitute(f, own, paths));
  }
  endpoints = renderedEndpoints.map((e) => substitute(e, ipMap, []));
  for (const m of members) start(m);
}, 60000);

afterAll(async () => {
  await Promise.all(members.map(stop));
  killAll();
  fs.rmSync(work, { recursive: true, force: true });
});

describe(`real etcd 3.4 with the ${STACK} stack's rendered flags`, () => {
  it("runs the rendered flags with only addresses and file paths substituted", () => {
    expect(members.map((m) => m.renderedIp)).toEqual(renderedEndpoints.map((e) => new URL(e).hostname));
    for (const m of members) {
      // Both sides with every address and path replaced by what it stands for must be identical.
      const roles = (ipOf: (x: Member) => string, loopback: string, data: string, pki: string): [Map<string, string>, Array<[string, string]>] => [
        new Map([...members.map((x) => [ipOf(x), `<ip of member ${x.index}>`] as [string, string]), [loopback, "<this member's loopback>"]]),
        [[data, "<data dir>"], [pki, "<pki dir>"]],
      ];
      const rendered = m.rendered.map((f) => substitute(f, ...roles((x) => x.renderedIp, RENDERED_LOOPBACK, RENDERED_DATA, RENDERED_PKI)));
      const running = m.flags.map((f) => substitute(f, ...roles((x) => x.ip, m.loopback, path.join(m.dir, "data"), path.join(m.dir, "pki"))));
      expect(running).toEqual(rendered);
      // And nothing of the machine's own layout is left.
      for (const f of m.flags) expect(f).not.toMatch(/10\.20\.|127\.0\.0\.1|\/var\/lib\/etcd|\/etc\/kubernetes/);
    }
    // The flags that carry neither an address nor a path are passed as rendered.
    const untouched = members[0].rendered.filter((f, i) => f === members[0].flags[i]).map((f) => f.split("=")[0]);
    expect(untouched).toEqual([
      "--name",
      "--initial-cluster-state",
      "--initial-cluster-token",
      "--client-cert-auth",
      "--peer-client-cert-auth",
      "--heartbeat-interval",
      "--election-timeout",
      "--snapshot-count",
    ]);
  });

  it("forms a healthy three-member cluster reachable at the rendered endpoints with the API server's certificate", async () => {
    await healthy(endpoints);
    const list = etcdctl(endpoints, ["member", "list"]);
    expect(list.ok).toBe(true);
    // <id>, started, <name>, <peer URLs>, <client URLs>, <is learner>
    const rows = list.out.trim().split("\n").map((l) => l.split(", ").slice(1, 5)).sort((a, b) => a[1].localeCompare(b[1]));
    expect(rows).toEqual(members.map((m) => ["started", m.name, `https://${m.ip}:2380`, `https://${m.ip}:2379`]).sort((a, b) => a[1].localeCompare(b[1])));
  }, 30000);

  it("refuses a client without a certificate from the etcd CA", () => {
    const r = spawnSync("etcdctl", [`--endpoints=${endpoints[0]}`, `--cacert=${client.ca}`, "--dial-timeout=1s", "--command-timeout=1s", "get", "x"], {
      env: { PATH: process.env.PATH, ETCDCTL_API: "3" },
      encoding: "utf8",
      timeout: 15000,
    });
    expect(r.status).not.toBe(0);
  });

  it("reads on one member what was written on another", async () => {
    await write([endpoints[0]], "written-on-0");
    for (const e of [endpoints[1], endpoints[2]]) expect(readAll([e], "l").value).toEqual(written);
  }, 30000);

  it("survives any one member dying, loses nothing, and the member rejoins on its data dir", async () => {
    // The leader first: the case that forces an election.
    const status = etcdctl(endpoints, ["endpoint", "status", "-w", "simple"]);
    expect(status.ok).toBe(true);
    const leader = status.out.trim().split("\n").find((l) => l.split(", ")[4] === "true")!.split(", ")[0];
    const order = [...members].sort((a, b) => Number(endpointOf(b) === leader) - Number(endpointOf(a) === leader));
    expect(endpointOf(order[0])).toBe(leader);

    for (const down of order) {
      await stop(down);
      const up = members.filter((m) => m !== down).map(endpointOf);
      // Two of three keep a quorum: writes go on, after an election if the leader died.
      await write(up, `while-${down.index}-down`);
      expect(await until("every write on the surviving members", 10000, () => {
        const r = readAll(up, "l");
        return { value: r.value && JSON.stringify(r.value) === JSON.stringify(written) ? r.value : undefined, last: r.last };
      })).toEqual(written);

      start(down);
      await healthy([endpointOf(down)]);
      // Read from the member's own store: it has caught up on what it missed.
      expect(await until(`member ${down.index} to catch up`, 10000, () => {
        const r = readAll([endpointOf(down)], "s");
        return { value: r.value && JSON.stringify(r.value) === JSON.stringify(written) ? r.value : undefined, last: r.last };
      })).toEqual(written);
    }
    await healthy(endpoints);
    expect(etcdctl(endpoints, ["member", "list"]).out.match(/, started, /g)).toHaveLength(3);
    expect(written).toHaveLength(4);
  }, 60000);
});

describe("etcd raft timing against the etcd binary", () => {
  const valid = (heartbeat: number, election: number) => {
    try {
      parseConfig({ region: "eu-west-1", clusterName: "t", network: { availabilityZones: ["eu-west-1a", "eu-west-1b", "eu-west-1c"] }, workerPools: [], etcd: { heartbeatIntervalMs: heartbeat, electionTimeoutMs: election } });
      return true;
    } catch {
      return false;
    }
  };

  it.each([
    [100, 1000],
    [100, 500],
    [100, 499],
    [1, 5],
    [10000, 50000],
    [10000, 50001],
    [250, 1000],
  ])("heartbeat %d ms, election %d ms: the config accepts it exactly when etcd does", (heartbeat, election) => {
    expect(valid(heartbeat, election)).toBe(etcdAcceptsTimings(heartbeat, election).ok);
  });

  it("agrees with etcd on random timings", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 12000 }), fc.integer({ min: 1, max: 60000 }), (heartbeat, election) => {
        expect({ heartbeat, election, config: valid(heartbeat, election) }).toEqual({ heartbeat, election, config: etcdAcceptsTimings(heartbeat, election).ok });
      }),
      { numRuns: 40 },
    );
  });
});
