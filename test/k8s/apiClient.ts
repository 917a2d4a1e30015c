/**
 * A small Kubernetes API client over Node's https, authenticated by a kubeadm kubeconfig (embedded
 * CA and client certificate), for the loopback control plane harness. Each request opens its own
 * connection (no keep-alive), so a request through the load balancer meets whichever API server
 * the balancer picks now, as a new client would.
 */
import * as fs from "fs";
import * as https from "https";
import { parse } from "yaml";

export interface KubeCredentials {
  /** `https://host:port` of the kubeconfig's cluster. */
  server: string;
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

/** Reads the first cluster and user of a kubeconfig with embedded data (as kubeadm writes them). */
export function readKubeconfig(file: string): KubeCredentials {
  const k = parse(fs.readFileSync(file, "utf8"));
  const cluster = k.clusters?.[0]?.cluster;
  const user = k.users?.[0]?.user;
  if (!cluster?.server || !cluster["certificate-authority-data"] || !user?.["client-certificate-data"] || !user?.["client-key-data"])
    throw new Error(`${file}: want a kubeconfig with embedded certificate-authority, client-certificate and client-key data`);
  const b64 = (s: string) => Buffer.from(s, "base64");
  return { server: cluster.server, ca: b64(cluster["certificate-authority-data"]), cert: b64(user["client-certificate-data"]), key: b64(user["client-key-data"]) };
}

export interface ApiResponse {
  status: number;
  body: string;
  /** Parsed JSON body, or undefined when it is not JSON. */
  json?: any;
}

export interface RequestOptions {
  method?: string;
  body?: unknown;
  /** Default `application/json`; `application/merge-patch+json` for a merge patch. */
  contentType?: string;
  /** Whole-request timeout in ms; default 5000. */
  timeoutMs?: number;
  /** Another `https://host:port` than the kubeconfig's (an API server directly instead of the balancer). */
  server?: string;
  /** Skip server certificate verification: kube-controller-manager and kube-scheduler serve with a self-signed one. */
  insecure?: boolean;
}

/** One request; rejects on a transport error or timeout, resolves with any HTTP status. */
export function apiRequest(creds: KubeCredentials, path: string, opts: RequestOptions = {}): Promise<ApiResponse> {
  const url = new URL(path, opts.server ?? creds.server);
  const payload = opts.body === undefined ? undefined : typeof opts.body === "string" ? opts.body : JSON.stringify(opts.body);
  return new Promise((resolve, reject) => {
    const req = https.request(
      url,
      {
        method: opts.method ?? "GET",
        ca: creds.ca,
        rejectUnauthorized: !opts.insecure,
        cert: creds.cert,
        key: creds.key,
        agent: false,
        timeout: opts.timeoutMs ?? 5000,
        headers: {
          accept: "application/json",
          ...(payload !== undefined ? { "content-type": opts.contentType ?? "application/json", "content-length": Buffer.byteLength(payload) } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const body = Buffer.concat(chunks).toString("utf8");
          let json: unknown;
          try {
            json = JSON.parse(body);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, body, json });
        });
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`timed out after ${opts.timeoutMs ?? 5000} ms: ${req.method} ${url}`)));
    req.on("error", reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

/** Like `apiRequest`, but rejects unless the status is 2xx. */
export async function apiOk(creds: KubeCredentials, path: string, opts: RequestOptions = {}): Promise<any> {
  const r = await apiRequest(creds, path, opts);
  if (r.status < 200 || r.status > 299) throw new Error(`${opts.method ?? "GET"} ${path}: HTTP ${r.status}: ${r.body.slice(0, 500)}`);
  return r.json;
}
