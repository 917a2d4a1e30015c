/**
 * The API readiness step: `pulumi up` polls the API server's `/readyz` through the load balancer,
 * trusting only the cluster CA, before anything talks to the cluster, so the Kubernetes provider
 * does not race the masters' bootstrap.
 *
 * `/readyz` needs no credentials: kubeadm keeps anonymous auth on and the
 * system:public-info-viewer role grants it (the NLB health check relies on the same).
 */
import * as pulumi from "@pulumi/pulumi";

export interface WaitForReadyOptions {
  /** `https://` URL to poll, such as `https://<nlb-dns>:6443/readyz`. Required. */
  url: string;
  /** PEM of the only CA trusted for the server certificate (system CAs are not used). Required. */
  caPem: string;
  /** Give up after this many milliseconds. Required. */
  timeoutMs: number;
  /** Pause between attempts, in milliseconds. Required. */
  intervalMs: number;
  /** Limit of one request, in milliseconds; never beyond the time left. Default 10000. */
  requestTimeoutMs?: number;
  /** Clock, in milliseconds. Default `Date.now`. */
  now?: () => number;
  /** Pause. Default a `setTimeout` promise. */
  sleep?: (ms: number) => Promise<void>;
}

export interface ReadyResult {
  /** Requests made, the successful one included. */
  attempts: number;
  /** Milliseconds from the first request to the 200. */
  elapsedMs: number;
}

/**
 * Polls `url` until it answers HTTP 200 over TLS verified against `caPem` alone.
 * Connection errors, TLS errors, request timeouts and any other status are retried.
 * @throws Error naming the URL, the timeout, the attempts, the last failure and what to check.
 */
export async function waitForReady(opts: WaitForReadyOptions): Promise<ReadyResult> {
  // Self-contained (requires inside, no module-level helpers): the ApiReadiness provider below is
  // serialized by Pulumi with everything it references.
  const https = require("https") as typeof import("https");
  const { url, caPem, timeoutMs, intervalMs } = opts;
  const requestTimeoutMs = opts.requestTimeoutMs ?? 10_000;
  const now = opts.now ?? Date.now;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));

  if (!/^https:\/\/[^/\s]+/.test(url)) throw new Error(`waitForReady: url must be an https:// URL (got ${JSON.stringify(url)})`);
  if (!String(caPem).includes("-----BEGIN CERTIFICATE-----")) throw new Error("waitForReady: caPem must be a PEM certificate");
  for (const [key, v, min] of [["timeoutMs", timeoutMs, 1], ["intervalMs", intervalMs, 0], ["requestTimeoutMs", requestTimeoutMs, 1]] as const)
    if (!Number.isFinite(v) || v < min) throw new Error(`waitForReady: ${key} must be a number of at least ${min} (got ${v})`);

  const human = (ms: number) => (ms % 60_000 === 0 ? `${ms / 60_000} min` : ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`);

  // One GET; resolves with what went wrong, or undefined on a 200.
  type Probe = { failure?: string; status?: number; timedOut?: boolean };
  const probe = (limitMs: number): Promise<Probe> =>
    new Promise((resolve) => {
      let done = false;
      let timer: NodeJS.Timeout | undefined;
      const finish = (r: Probe) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve(r);
      };
      // `ca` replaces Node's bundled roots; `agent: false` gives every attempt a fresh TCP and TLS
      // connection, so a kept-alive socket to one healthy NLB target cannot hide the others.
      const req = https.request(url, { method: "GET", ca: caPem, rejectUnauthorized: true, agent: false, headers: { accept: "text/plain" } }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          if (body.length < 512) body += chunk;
        });
        res.on("end", () => {
          const status = res.statusCode ?? 0;
          if (status === 200) finish({});
          else {
            const text = body.replace(/\s+/g, " ").trim().slice(0, 200);
            finish({ status, failure: `HTTP ${status}${text ? ` (${text})` : ""}` });
          }
        });
        res.on("error", (e: NodeJS.ErrnoException) => finish({ failure: `${e.code ?? "ERROR"}: ${e.message}` }));
      });
      timer = setTimeout(() => {
        finish({ failure: `no response within ${human(limitMs)}`, timedOut: true });
        req.destroy();
      }, limitMs);
      req.on("error", (e: NodeJS.ErrnoException) => finish({ failure: `${e.code ?? "ERROR"}: ${e.message}` }));
      req.end();
    });

  const start = now();
  let attempts = 0;
  let last: Probe = {};
  for (;;) {
    const limit = Math.max(1, Math.min(requestTimeoutMs, timeoutMs - (now() - start)));
    attempts++;
    const r = await probe(limit);
    if (r.failure === undefined) return { attempts, elapsedMs: now() - start };
    // An attempt the deadline cut short says nothing new; keep the failure it would hide.
    if (!(r.timedOut && limit < requestTimeoutMs && last.failure !== undefined)) last = r;
    const remaining = timeoutMs - (now() - start);
    if (remaining <= 0) break;
    await sleep(Math.min(intervalMs, remaining));
    if (timeoutMs - (now() - start) <= 0) break;
  }
  const authHint =
    last.status === 401 || last.status === 403 ? " A 401 or 403 means anonymous access to /readyz is off (kube-apiserver --anonymous-auth, system:public-info-viewer)." : "";
  throw new Error(
    `API readiness: ${url} did not answer HTTP 200 within ${human(timeoutMs)} (${attempts} attempt${attempts === 1 ? "" : "s"}); last failure: ${last.failure}.${authHint} ` +
      "Check that the machine running `pulumi up` can reach the API load balancer on its port (apiLoadBalancer.allowedCidrs; " +
      "with an internal load balancer use a VPN or bastion, or set addons.installer to nodes so the first master installs the add-ons), " +
      "and that the masters finished bootstrapping (EC2 console output, /var/log/cloud-init-output.log).",
  );
}

/** `/readyz` of an API endpoint given as `host:port` (or an `https://host:port` URL). */
export function readyzUrl(apiEndpoint: string): string;
export function readyzUrl(apiEndpoint: pulumi.Input<string>): pulumi.Output<string>;
export function readyzUrl(apiEndpoint: pulumi.Input<string>): string | pulumi.Output<string> {
  const of = (e: string) => `https://${e.replace(/^https:\/\//, "").replace(/\/+$/, "")}/readyz`;
  return typeof apiEndpoint === "string" ? of(apiEndpoint) : pulumi.output(apiEndpoint).apply(of);
}

/** Inputs of the dynamic provider, as the engine hands them over. */
interface ReadinessState {
  url: string;
  caCertPem: string;
  timeoutMinutes: number;
  intervalSeconds: number;
  readyAt?: string;
  attempts?: number;
  elapsedMs?: number;
}

/**
 * Pulumi serializes this object, with `waitForReady`, into the state and runs it in the dynamic
 * provider host: it must capture nothing but `waitForReady` and require what it uses.
 * Polls on create and when the URL or CA changes; a changed timeout or interval is only recorded.
 */
export const apiReadinessProvider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: ReadinessState) {
    const r = await waitForReady({ url: inputs.url, caPem: inputs.caCertPem, timeoutMs: inputs.timeoutMinutes * 60_000, intervalMs: inputs.intervalSeconds * 1000 });
    const outs: ReadinessState = { url: inputs.url, caCertPem: inputs.caCertPem, timeoutMinutes: inputs.timeoutMinutes, intervalSeconds: inputs.intervalSeconds, readyAt: new Date().toISOString(), attempts: r.attempts, elapsedMs: r.elapsedMs };
    return { id: inputs.url, outs };
  },
  async diff(_id: string, olds: ReadinessState, news: ReadinessState) {
    const changed = (["url", "caCertPem", "timeoutMinutes", "intervalSeconds"] as const).some((k) => olds[k] !== news[k]);
    return { changes: changed, replaces: [], deleteBeforeReplace: false };
  },
  async update(_id: string, olds: ReadinessState, news: ReadinessState) {
    const settings = { url: news.url, caCertPem: news.caCertPem, timeoutMinutes: news.timeoutMinutes, intervalSeconds: news.intervalSeconds };
    if (olds.url === news.url && olds.caCertPem === news.caCertPem)
      return { outs: { ...settings, readyAt: olds.readyAt, attempts: olds.attempts, elapsedMs: olds.elapsedMs } };
    const r = await waitForReady({ url: news.url, caPem: news.caCertPem, timeoutMs: news.timeoutMinutes * 60_000, intervalMs: news.intervalSeconds * 1000 });
    return { outs: { ...settings, readyAt: new Date().toISOString(), attempts: r.attempts, elapsedMs: r.elapsedMs } };
  },
};

export interface ApiReadinessArgs {
  /** URL polled, normally `readyzUrl(apiEndpoint)`. Required. */
  url: pulumi.Input<string>;
  /** Cluster CA certificate (PEM), the only trusted CA. Public, so not made secret. Required. */
  caCertPem: pulumi.Input<string>;
  /** Give up after this many minutes, 1 to 120 (config addons.readinessTimeoutMinutes). Required. */
  timeoutMinutes: number;
  /** Seconds between attempts, 1 to 300. Default 10. */
  intervalSeconds?: number;
}

/**
 * Succeeds once the API answers `/readyz` with 200 through the load balancer; make the
 * Kubernetes provider depend on it. Replaced never; polls again only when the URL or CA changes.
 */
export class ApiReadiness extends pulumi.dynamic.Resource {
  // `declare`, not `!`: with target ES2022 a field definition would reset the outputs the base
  // constructor just set to undefined.
  /** The URL that answered 200. */
  declare public readonly url: pulumi.Output<string>;
  /** ISO 8601 time of the 200. */
  declare public readonly readyAt: pulumi.Output<string>;
  /** Requests it took, the successful one included. */
  declare public readonly attempts: pulumi.Output<number>;
  /** Milliseconds from the first request to the 200. */
  declare public readonly elapsedMs: pulumi.Output<number>;

  constructor(name: string, args: ApiReadinessArgs, opts?: pulumi.CustomResourceOptions) {
    const intervalSeconds = args.intervalSeconds ?? 10;
    if (!Number.isInteger(args.timeoutMinutes) || args.timeoutMinutes < 1 || args.timeoutMinutes > 120)
      throw new Error(`ApiReadiness: timeoutMinutes: ${args.timeoutMinutes} — must be a whole number from 1 to 120`);
    if (!Number.isInteger(intervalSeconds) || intervalSeconds < 1 || intervalSeconds > 300)
      throw new Error(`ApiReadiness: intervalSeconds: ${intervalSeconds} — must be a whole number from 1 to 300`);
    super(
      apiReadinessProvider,
      name,
      { url: args.url, caCertPem: args.caCertPem, timeoutMinutes: args.timeoutMinutes, intervalSeconds, readyAt: undefined, attempts: undefined, elapsedMs: undefined },
      opts,
      undefined,
      "ApiReadiness",
    );
  }
}
