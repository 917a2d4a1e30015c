import { execFileSync } from "child_process";
import * as fs from "fs";
import * as https from "https";
import Module from "module";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { ApiReadiness, readyzUrl, waitForReady } from "../components/readiness";
import { FIXTURES, Registration, settle, setupMocks, valueOf } from "./mocks";

// Two CAs, each signing a server certificate for 127.0.0.1 and localhost, made with openssl so
// Node's real TLS stack verifies them.
let dir: string;
const pki = { ca: "", caKey: "", otherCa: "", cert: "", key: "", otherCert: "", otherKey: "" };
const ssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
function makeCa(name: string): void {
  ssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.crt`, "-days", "1", "-subj", `/CN=${name}`);
}
function makeServer(name: string, ca: string): void {
  ssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", "/CN=kube-apiserver");
  ssl("x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}.crt`, "-CAkey", `${ca}.key`, "-CAcreateserial", "-out", `${name}.crt`, "-days", "1", "-extfile", "server.ext");
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "readiness-"));
  fs.writeFileSync(
    path.join(dir, "server.ext"),
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
  );
  makeCa("ca");
  makeCa("other-ca");
  makeServer("server", "ca");
  makeServer("other-server", "other-ca");
  const read = (f: string) => fs.readFileSync(path.join(dir, f), "utf8");
  Object.assign(pki, {
    ca: read("ca.crt"),
    caKey: read("ca.key"),
    otherCa: read("other-ca.crt"),
    cert: read("server.crt"),
    key: read("server.key"),
    otherCert: read("other-server.crt"),
    otherKey: read("other-server.key"),
  });
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((c) => c()));
});

/** An HTTPS server answering the given statuses in turn (the last one forever); records request paths. */
async function apiServer(statuses: number[], cert = pki.cert, key = pki.key): Promise<{ url: string; paths: string[] }> {
  const paths: string[] = [];
  const server = https.createServer({ cert, key }, (req, res) => {
    paths.push(req.url ?? "");
    const status = statuses[Math.min(paths.length - 1, statuses.length - 1)];
    res.writeHead(status, { "content-type": "text/plain" });
    res.end(status === 200 ? "ok" : "[-]etcd failed: reason withheld\nreadyz check failed\n");
  });
  const port = await listen(server);
  closers.push(() => close(server));
  return { url: `https://127.0.0.1:${port}/readyz`, paths };
}

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as net.AddressInfo).port)));
}
function close(server: net.Server & { closeAllConnections?: () => void }): Promise<void> {
  server.closeAllConnections?.();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** A TCP server that accepts and never says anything: no TLS handshake, no HTTP. */
async function silentServer(): Promise<string> {
  const sockets: net.Socket[] = [];
  const server = net.createServer((s) => sockets.push(s));
  const port = await listen(server);
  closers.push(async () => {
    sockets.forEach((s) => s.destroy());
    await close(server);
  });
  return `https://127.0.0.1:${port}/readyz`;
}

/** A port nothing listens on. */
async function closedPort(): Promise<string> {
  const server = net.createServer();
  const port = await listen(server);
  await close(server);
  return `https://127.0.0.1:${port}/readyz`;
}

const HINT =
  "Check that the machine running `pulumi up` can reach the API load balancer on its port (apiLoadBalancer.allowedCidrs; " +
  "with an internal load balancer use a VPN or bastion, or set addons.installer to nodes so the first master installs the add-ons), " +
  "and that the masters finished bootstrapping (EC2 console output, /var/log/cloud-init-output.log).";
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

describe("waitForReady against real HTTPS servers", () => {
  it("503 three times, then 200: ready on attempt 4, one pause between attempts", async () => {
    const api = await apiServer([503, 503, 503, 200]);
    const pauses: number[] = [];
    const r = await waitForReady({ url: api.url, caPem: pki.ca, timeoutMs: 5000, intervalMs: 25, sleep: async (ms) => void pauses.push(ms) });
    expect(r.attempts).toBe(4);
    expect(api.paths).toEqual(["/readyz", "/readyz", "/readyz", "/readyz"]);
    expect(pauses).toEqual([25, 25, 25]);
    expect(r.elapsedMs).toBeGreaterThanOrEqual(0);
    expect(r.elapsedMs).toBeLessThan(5000);
  });

  it("200 on the first try: one request, no pause", async () => {
    const api = await apiServer([200]);
    const pauses: number[] = [];
    const r = await waitForReady({ url: api.url, caPem: pki.ca, timeoutMs: 5000, intervalMs: 1000, sleep: async (ms) => void pauses.push(ms) });
    expect(r.attempts).toBe(1);
    expect(api.paths).toEqual(["/readyz"]);
    expect(pauses).toEqual([]);
  });

  it("also waits with the real clock and sleep", async () => {
    const api = await apiServer([503, 200]);
    const t0 = Date.now();
    const r = await waitForReady({ url: api.url, caPem: pki.ca, timeoutMs: 5000, intervalMs: 100 });
    expect(r.attempts).toBe(2);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(100);
  });

  // Budget 600 ms, 50 ms between attempts, 200 ms a request: the error must come within the budget
  // plus scheduling slack, never after a full extra request.
  const NEVER: Array<[string, () => Promise<string>, RegExp]> = [
    ["a TCP server that accepts and hangs", silentServer, /^no response within \d+ ms$/],
    ["a closed port", closedPort, /^ECONNREFUSED: connect ECONNREFUSED 127\.0\.0\.1:\d+$/],
    ["a server that keeps answering 503", async () => (await apiServer([503])).url, /^HTTP 503 \(\[-\]etcd failed: reason withheld readyz check failed\)$/],
  ];
  it.each(NEVER)("never ready with %s: one clear timeout error within the budget", async (_, start, lastFailure) => {
    const url = await start();
    const t0 = Date.now();
    const err: Error = await waitForReady({ url, caPem: pki.ca, timeoutMs: 600, intervalMs: 50, requestTimeoutMs: 200 }).then(
      () => {
        throw new Error("resolved");
      },
      (e) => e,
    );
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(550);
    expect(took).toBeLessThan(1000);
    const m = new RegExp(`^API readiness: ${escape(url)} did not answer HTTP 200 within 600 ms \\((\\d+) attempts?\\); last failure: (.*)\\. ${escape(HINT)}$`).exec(err.message);
    expect(m).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThanOrEqual(2);
    expect(m![2]).toMatch(lastFailure);
  });

  it("a server certificate from another CA is never trusted; the TLS failure is reported", async () => {
    const api = await apiServer([200], pki.otherCert, pki.otherKey);
    const err: Error = await waitForReady({ url: api.url, caPem: pki.ca, timeoutMs: 400, intervalMs: 50, requestTimeoutMs: 200 }).catch((e) => e);
    expect(err.message).toMatch(
      new RegExp(`^API readiness: ${escape(api.url)} did not answer HTTP 200 within 400 ms \\(\\d+ attempts\\); last failure: UNABLE_TO_VERIFY_LEAF_SIGNATURE: unable to verify the first certificate\\. `),
    );
    // The handshake failed every time: the handler never saw a request.
    expect(api.paths).toEqual([]);
    // The same server is ready for a client trusting its own CA: the failure above is the CA alone.
    await expect(waitForReady({ url: api.url, caPem: pki.otherCa, timeoutMs: 2000, intervalMs: 50 })).resolves.toMatchObject({ attempts: 1 });
  });

  it("reports 401/403 as anonymous access being off", async () => {
    const api = await apiServer([403]);
    const err: Error = await waitForReady({ url: api.url, caPem: pki.ca, timeoutMs: 200, intervalMs: 50 }).catch((e) => e);
    expect(err.message).toContain(
      "; last failure: HTTP 403 ([-]etcd failed: reason withheld readyz check failed). A 401 or 403 means anonymous access to /readyz is off (kube-apiserver --anonymous-auth, system:public-info-viewer). Check that",
    );
  });

  it.each([
    [{ url: "http://127.0.0.1:1/readyz" }, 'waitForReady: url must be an https:// URL (got "http://127.0.0.1:1/readyz")'],
    [{ caPem: "not a pem" }, "waitForReady: caPem must be a PEM certificate"],
    [{ timeoutMs: 0 }, "waitForReady: timeoutMs must be a number of at least 1 (got 0)"],
    [{ intervalMs: -1 }, "waitForReady: intervalMs must be a number of at least 0 (got -1)"],
    [{ requestTimeoutMs: NaN }, "waitForReady: requestTimeoutMs must be a number of at least 1 (got NaN)"],
  ])("rejects bad options %j", async (change, message) => {
    await expect(waitForReady({ url: "https://127.0.0.1:1/readyz", caPem: pki.ca, timeoutMs: 100, intervalMs: 10, ...change })).rejects.toThrow(new Error(message));
  });
});

describe("readyzUrl", () => {
  it.each([
    ["kh-api-0123456789abcdef.elb.eu-west-1.amazonaws.com:6443", "https://kh-api-0123456789abcdef.elb.eu-west-1.amazonaws.com:6443/readyz"],
    ["https://kh-api.example:6443", "https://kh-api.example:6443/readyz"],
    ["https://kh-api.example:6443/", "https://kh-api.example:6443/readyz"],
    ["10.0.0.10:6443", "https://10.0.0.10:6443/readyz"],
  ])("%s -> %s", async (endpoint, url) => {
    expect(readyzUrl(endpoint)).toBe(url);
    expect(await valueOf(readyzUrl(pulumi.output(endpoint)))).toBe(url);
  });
});

describe("ApiReadiness dynamic resource", () => {
  let regs: Registration[];
  beforeAll(async () => {
    regs = await setupMocks();
  });

  async function build(name: string, args: ConstructorParameters<typeof ApiReadiness>[1]): Promise<{ res: ApiReadiness; mine: Registration[] }> {
    const before = regs.length;
    const res = new ApiReadiness(name, args);
    await settle();
    return { res, mine: regs.slice(before) };
  }

  /** Loads the provider text Pulumi serialized into the inputs the way the dynamic provider host does. */
  function deserialize(text: string): pulumi.dynamic.ResourceProvider {
    const m = new Module(path.join(dir, "provider.js"));
    m.filename = path.join(dir, "provider.js");
    m.paths = (Module as unknown as { _nodeModulePaths(d: string): string[] })._nodeModulePaths(dir);
    (m as unknown as { _compile(code: string, file: string): void })._compile(text, m.filename);
    return (m.exports as { handler(): pulumi.dynamic.ResourceProvider }).handler();
  }

  it("registers exactly one resource with the URL, the CA (not secret: it is public) and the timings", async () => {
    const { res, mine } = await build("kh-api-readiness", {
      url: readyzUrl(pulumi.output("kh-api.elb.eu-west-1.amazonaws.com:6443")),
      caCertPem: pulumi.output(FIXTURES.caCert),
      timeoutMinutes: 20,
    });
    expect(mine.map((r) => [r.type, r.name])).toEqual([["pulumi-nodejs:dynamic:ApiReadiness", "kh-api-readiness"]]);
    const { __provider, ...inputs } = mine[0].inputs;
    expect(inputs).toEqual({ url: "https://kh-api.elb.eu-west-1.amazonaws.com:6443/readyz", caCertPem: FIXTURES.caCert, timeoutMinutes: 20, intervalSeconds: 10 });
    expect(typeof __provider).toBe("string");
    expect(await valueOf(res.url)).toBe("https://kh-api.elb.eu-west-1.amazonaws.com:6443/readyz");
    expect(await (res.url as any).isSecret).toBe(false);
  });

  it("the serialized provider is self-contained: it polls a real server, diffs and updates", async () => {
    const { mine } = await build("serialized", { url: "https://127.0.0.1:1/readyz", caCertPem: pki.ca, timeoutMinutes: 1, intervalSeconds: 1 });
    const text: string = mine[0].inputs.__provider;
    // It carries the polling code and nothing of the AWS or Kubernetes SDKs.
    expect(text).toContain("did not answer HTTP 200");
    expect(text).not.toMatch(/@pulumi\/(aws|kubernetes)/);
    expect(text.length).toBeLessThan(30_000);
    const provider = deserialize(text);

    const api = await apiServer([503, 200]);
    const inputs = { url: api.url, caCertPem: pki.ca, timeoutMinutes: 1, intervalSeconds: 1 };
    const created = await provider.create(inputs);
    expect(created.id).toBe(api.url);
    expect(created.outs).toMatchObject({ ...inputs, attempts: 2 });
    expect(new Date(created.outs.readyAt).toISOString()).toBe(created.outs.readyAt);
    expect(api.paths).toHaveLength(2);

    const olds = created.outs;
    const diff = (news: object) => provider.diff!(created.id, olds, { ...inputs, ...news });
    await expect(diff({})).resolves.toEqual({ changes: false, replaces: [], deleteBeforeReplace: false });
    await expect(diff({ url: "https://other:6443/readyz" })).resolves.toEqual({ changes: true, replaces: [], deleteBeforeReplace: false });
    await expect(diff({ caCertPem: pki.otherCa })).resolves.toEqual({ changes: true, replaces: [], deleteBeforeReplace: false });
    await expect(diff({ timeoutMinutes: 5 })).resolves.toEqual({ changes: true, replaces: [], deleteBeforeReplace: false });

    // A new timeout is recorded without polling again.
    const kept = await provider.update!(created.id, olds, { ...inputs, timeoutMinutes: 5 });
    expect(kept.outs).toEqual({ ...olds, timeoutMinutes: 5 });
    expect(api.paths).toHaveLength(2);

    // A new URL polls the new server.
    const moved = await apiServer([200]);
    const updated = await provider.update!(created.id, olds, { ...inputs, url: moved.url });
    expect(updated.outs).toMatchObject({ url: moved.url, attempts: 1 });
    expect(moved.paths).toEqual(["/readyz"]);
  });

  it.each([
    [{ timeoutMinutes: 0 }, "ApiReadiness: timeoutMinutes: 0 — must be a whole number from 1 to 120"],
    [{ timeoutMinutes: 1.5 }, "ApiReadiness: timeoutMinutes: 1.5 — must be a whole number from 1 to 120"],
    [{ timeoutMinutes: 121 }, "ApiReadiness: timeoutMinutes: 121 — must be a whole number from 1 to 120"],
    [{ intervalSeconds: 0 }, "ApiReadiness: intervalSeconds: 0 — must be a whole number from 1 to 300"],
  ])("rejects %j before registering anything", async (change, message) => {
    const before = regs.length;
    expect(() => new ApiReadiness("bad", { url: "https://x:6443/readyz", caCertPem: FIXTURES.caCert, timeoutMinutes: 20, ...change })).toThrow(new Error(message));
    await settle();
    expect(regs.length).toBe(before);
  });
});
