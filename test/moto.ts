/**
 * moto in server mode on loopback, as the AWS endpoint the shipped scripts call with the real AWS
 * CLI. Both come pinned from PyPI into a virtual environment (npm run setup installs it into
 * .cache/aws; KUBEADM_HA_AWS_VENV names another). Each test file starts its own server on a free
 * port and stops it; a missing environment fails, never skips.
 */
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as path from "path";

export const AWS_VENV = process.env.KUBEADM_HA_AWS_VENV ?? path.join(__dirname, "..", ".cache", "aws");
export const AWS_BIN = path.join(AWS_VENV, "bin");
export const REGION = "eu-west-1";
/** moto's default account, which the ARNs it returns carry. */
export const ACCOUNT = "123456789012";

/** Throws unless the pinned moto server, AWS CLI and boto3 are installed. */
export function requireAwsVenv(): void {
  for (const tool of ["moto_server", "aws", "python"])
    if (!fs.existsSync(path.join(AWS_BIN, tool)))
      throw new Error(`${path.join(AWS_BIN, tool)} is missing: the moto tests need the pinned moto[server] and awscli in ${AWS_VENV} (npm run setup installs them: npm run setup -- aws)`);
}

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });

export class Moto {
  private constructor(
    readonly endpoint: string,
    private readonly proc: ChildProcess,
    private log: { text: string },
  ) {}

  /** Starts a moto server on a free loopback port and waits until it answers. */
  static async start(): Promise<Moto> {
    requireAwsVenv();
    const port = await freePort();
    const log = { text: "" };
    const proc = spawn(path.join(AWS_BIN, "moto_server"), ["-H", "127.0.0.1", "-p", String(port)], { stdio: ["ignore", "pipe", "pipe"] });
    proc.stdout!.on("data", (d) => (log.text += d));
    proc.stderr!.on("data", (d) => (log.text += d));
    const moto = new Moto(`http://127.0.0.1:${port}`, proc, log);
    const deadline = Date.now() + 30000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`moto_server exited with ${proc.exitCode}: ${log.text}`);
      try {
        const r = await fetch(`${moto.endpoint}/moto-api/data.json`);
        if (r.ok) return moto;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        await moto.stop();
        throw new Error(`moto_server did not answer on ${moto.endpoint} within 30 s: ${log.text}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** Stops the server and waits for it to exit. */
  async stop(): Promise<void> {
    const p = this.proc;
    if (p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once("exit", r));
    p.kill("SIGTERM");
    const timer = setTimeout(() => p.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  }

  /**
   * From now on every request must be signed by an IAM user of this server and allowed by its
   * policies (moto's IAM access control: identity policies, no bucket policies), or none is checked.
   */
  async enforceIam(on: boolean): Promise<void> {
    const r = await fetch(`${this.endpoint}/moto-api/reset-auth`, { method: "POST", body: on ? "0" : "inf" });
    if (!r.ok) throw new Error(`moto reset-auth: ${r.status} ${await r.text()}`);
  }

  /** The environment that points the AWS CLI at this server with `credentials`, and at nothing of the host. */
  env(credentials: Credentials = { accessKeyId: "testing", secretAccessKey: "testing" }): Record<string, string> {
    return {
      AWS_ENDPOINT_URL: this.endpoint,
      AWS_ACCESS_KEY_ID: credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
      AWS_DEFAULT_REGION: REGION,
      AWS_CONFIG_FILE: "/dev/null",
      AWS_SHARED_CREDENTIALS_FILE: "/dev/null",
      AWS_EC2_METADATA_DISABLED: "true",
    };
  }

  /**
   * Runs `script` (Python with boto3 and `json`, `args` as the dict `args`) against this server;
   * returns what it assigns to `out`, as JSON.
   */
  python<T = unknown>(script: string, args: unknown = {}): T {
    const prelude = [
      "import json, sys, boto3",
      "args = json.loads(sys.stdin.read())",
      `def client(service): return boto3.client(service, region_name=${JSON.stringify(REGION)})`,
      "out = None",
    ].join("\n");
    const r = spawnSync(path.join(AWS_BIN, "python"), ["-c", `${prelude}\n${script}\nprint(json.dumps(out, default=str))`], {
      input: JSON.stringify(args),
      env: { PATH: "/usr/bin:/bin", ...this.env() },
      encoding: "utf8",
      timeout: 60000,
    });
    if (r.status !== 0) throw new Error(`boto3 script failed (${r.status}): ${r.stderr}\n${this.log.text.slice(-2000)}`);
    return JSON.parse(r.stdout) as T;
  }

  /** An IAM user whose only permissions are `policy` (an identity policy document), and its access key. */
  user(name: string, policy: object): Credentials {
    return this.python<Credentials>(
      `iam = client("iam")
iam.create_user(UserName=args["name"])
iam.put_user_policy(UserName=args["name"], PolicyName="node", PolicyDocument=json.dumps(args["policy"]))
k = iam.create_access_key(UserName=args["name"])["AccessKey"]
out = {"accessKeyId": k["AccessKeyId"], "secretAccessKey": k["SecretAccessKey"]}`,
      { name, policy },
    );
  }
}

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}
