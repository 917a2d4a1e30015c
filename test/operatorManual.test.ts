/**
 * The README's operator manual, run: the internal-endpoint steps with the real kubectl against a
 * TLS server on loopback whose certificate names only the NLB (the port forward itself needs AWS),
 * and the teardown's `aws` commands against moto (emptying a versioned snapshot bucket so it
 * deletes, taking back a KMS key pending deletion). The first checks' kubectl lines run on the real
 * control plane in test/control-plane-real.test.ts.
 */
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as https from "https";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { kubeconfig } from "../components/pki";
import { issueCert, makeCa } from "./etcdHarness";
import { k8sBinary } from "./k8s/binaries";
import { Moto, requireAwsVenv, AWS_BIN, REGION } from "./moto";

const ROOT = path.resolve(__dirname, "..");
const README = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");

/** The command lines of every ```sh block in the README section under `heading` (up to the next heading). */
export function sectionCommands(heading: string): string[] {
  const at = README.indexOf(`\n${heading}\n`);
  if (at < 0) throw new Error(`README has no ${heading}`);
  const rest = README.slice(at + heading.length + 2);
  const section = rest.slice(0, rest.search(/\n#{2,3} /) < 0 ? undefined : rest.search(/\n#{2,3} /));
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].flatMap((m) => m[1].split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#")));
}

/** bash, asynchronously: the TLS server below runs in this process and must keep answering. */
function bashAsync(script: string, env: Record<string, string>): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn("bash", ["--norc", "--noprofile", "-euo", "pipefail", "-c", script], { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    p.on("error", reject);
    p.on("close", (status) => resolve({ status, stdout, stderr }));
  });
}

const bash = (script: string, env: Record<string, string>) => spawnSync("bash", ["--norc", "--noprofile", "-euo", "pipefail", "-c", script], { env, encoding: "utf8", timeout: 60000 });

describe("Reaching an internal API endpoint", () => {
  const NLB = "prod-api-0123456789abcdef.elb.eu-west-1.amazonaws.com";
  let server: https.Server;
  let port: number;
  let dir: string;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "port-forward-"));
    makeCa(path.join(dir, "ca"), "kubernetes");
    for (const d of ["server", "client"]) fs.mkdirSync(path.join(dir, d));
    // As kubeadm issues it: the load balancer's name, no loopback address.
    issueCert(path.join(dir, "server"), "apiserver", { commonName: "kube-apiserver", dnsNames: [NLB, "kubernetes"], ipAddresses: ["10.96.0.1"], allowedUses: ["digital_signature", "key_encipherment", "server_auth"] }, path.join(dir, "ca"));
    issueCert(path.join(dir, "client"), "admin", { commonName: "kubernetes-admin", dnsNames: [], ipAddresses: [], allowedUses: ["digital_signature", "key_encipherment", "client_auth"] }, path.join(dir, "ca"));
    const read = (f: string) => fs.readFileSync(path.join(dir, f), "utf8");
    // Just enough of an API server for `kubectl get nodes`: legacy discovery and a Table of nodes.
    server = https.createServer({ key: read("server/apiserver.key"), cert: read("server/apiserver.crt") }, (req, res) => {
      const json = (body: unknown) => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify(body));
      };
      const url = (req.url ?? "").split("?")[0];
      if (url === "/api") return json({ kind: "APIVersions", versions: ["v1"], serverAddressByClientCIDRs: [] });
      if (url === "/apis") return json({ kind: "APIGroupList", apiVersion: "v1", groups: [] });
      if (url === "/api/v1")
        return json({ kind: "APIResourceList", groupVersion: "v1", resources: [{ name: "nodes", singularName: "node", namespaced: false, kind: "Node", verbs: ["get", "list"], shortNames: ["no"] }] });
      if (url === "/api/v1/nodes")
        return json({
          kind: "Table",
          apiVersion: "meta.k8s.io/v1",
          metadata: {},
          columnDefinitions: [{ name: "Name", type: "string", format: "name" }, { name: "Status", type: "string" }],
          rows: [{ cells: ["ip-10-20-0-10.eu-west-1.compute.internal", "Ready"], object: { kind: "PartialObjectMetadata", apiVersion: "meta.k8s.io/v1", metadata: { name: "ip-10-20-0-10.eu-west-1.compute.internal" } } }],
        });
      res.writeHead(404, { "content-type": "application/json" });
      res.end(JSON.stringify({ kind: "Status", apiVersion: "v1", status: "Failure", code: 404 }));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    port = (server.address() as net.AddressInfo).port;
    // The stack's kubeconfig output as the program writes it: the NLB's URL.
    fs.writeFileSync(
      path.join(dir, "kubeconfig"),
      kubeconfig({ clusterName: "prod", server: `https://${NLB}:6443`, caCertPem: read("ca/ca.crt"), clientCertPem: read("client/admin.crt"), clientKeyPem: read("client/admin.key") }),
      { mode: 0o600 },
    );
  });
  afterAll(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

  const kubectlLines = () => sectionCommands("### Reaching an internal API endpoint").filter((l) => l.startsWith("kubectl "));

  it("points the kubeconfig at the forwarded port and still checks the certificate for the NLB's name", async () => {
    expect(kubectlLines()).toEqual([`kubectl config set-cluster prod --server=https://127.0.0.1:6443 --tls-server-name="$NLB"`, "kubectl get nodes"]);
    const env = { PATH: `${path.dirname(k8sBinary("kubectl"))}:/usr/bin:/bin`, HOME: dir, KUBECONFIG: path.join(dir, "kubeconfig"), NLB };
    // The port forward listens on 6443; here the stand-in listens on a free port.
    const script = kubectlLines().map((l) => l.replace("127.0.0.1:6443", `127.0.0.1:${port}`)).join("\n");
    const r = await bashAsync(script, env);
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
    expect(r.stdout).toContain("Cluster \"prod\" set.");
    expect(r.stdout).toMatch(/ip-10-20-0-10\.eu-west-1\.compute\.internal\s+Ready/);
  });

  it("without --tls-server-name the same kubeconfig is refused: the certificate has no 127.0.0.1", async () => {
    const env = { PATH: `${path.dirname(k8sBinary("kubectl"))}:/usr/bin:/bin`, HOME: dir, KUBECONFIG: path.join(dir, "kubeconfig") };
    const r = await bashAsync(`kubectl config set-cluster prod --server=https://127.0.0.1:${port} --tls-server-name= >/dev/null && kubectl get nodes`, env);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("x509: certificate is valid for 10.96.0.1, not 127.0.0.1");
  });
});

describe("Tearing a stack down (the aws commands against moto)", () => {
  let moto: Moto;
  beforeAll(async () => {
    requireAwsVenv();
    moto = await Moto.start();
  }, 60000);
  afterAll(() => moto?.stop());

  const aws = (args: string[]) => {
    const r = spawnSync(path.join(AWS_BIN, "aws"), [...args, "--region", REGION, "--output", "json"], { env: { ...moto.env(), PATH: `${AWS_BIN}:/usr/bin:/bin` }, encoding: "utf8" });
    if (r.status !== 0) throw new Error(`aws ${args.join(" ")}: ${r.stderr}`);
    return r.stdout ? JSON.parse(r.stdout) : undefined;
  };
  /** Runs README lines with `pulumi stack output ...` already answered by `vars`. */
  const run = (lines: string[], vars: Record<string, string>) =>
    bash(lines.filter((l) => !/^[A-Z]+=\$\(pulumi /.test(l) && !l.startsWith("pulumi ")).join("\n"), { ...moto.env(), PATH: `${AWS_BIN}:/usr/bin:/bin`, AWS_DEFAULT_REGION: REGION, ...vars });

  it("copies the snapshots out, empties the versioned bucket (versions and delete markers) and it deletes", () => {
    const bucket = "dev-etcd-backups-0123";
    aws(["s3api", "create-bucket", "--bucket", bucket, "--create-bucket-configuration", `LocationConstraint=${REGION}`]);
    aws(["s3api", "put-bucket-versioning", "--bucket", bucket, "--versioning-configuration", "Status=Enabled"]);
    aws(["s3api", "create-bucket", "--bucket", "my-archive-bucket", "--create-bucket-configuration", `LocationConstraint=${REGION}`]);
    const body = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "snap-")), "snap.db");
    fs.writeFileSync(body, "snapshot");
    for (const i of [0, 1, 2]) for (const _ of [0, 1]) aws(["s3api", "put-object", "--bucket", bucket, "--key", `etcd-snapshots/m${i}/2026.db`, "--body", body]);
    aws(["s3api", "delete-object", "--bucket", bucket, "--key", "etcd-snapshots/m2/2026.db"]);
    const before = aws(["s3api", "list-object-versions", "--bucket", bucket]);
    expect([before.Versions.length, before.DeleteMarkers.length]).toEqual([6, 1]);

    const lines = sectionCommands("### Tearing a stack down");
    const copy = lines.filter((l) => l.startsWith("aws s3 cp"));
    const empty = lines.filter((l) => l.startsWith("while "));
    expect([copy.length, empty.length]).toEqual([1, 1]);
    const r = run([...copy, ...empty], { BUCKET: bucket });
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });

    expect((aws(["s3api", "list-objects-v2", "--bucket", "my-archive-bucket"]).Contents ?? []).map((o: { Key: string }) => o.Key).sort()).toEqual([
      "dev/etcd-snapshots/m0/2026.db",
      "dev/etcd-snapshots/m1/2026.db",
    ]);
    const after = aws(["s3api", "list-object-versions", "--bucket", bucket]) ?? {};
    expect([after.Versions ?? [], after.DeleteMarkers ?? []]).toEqual([[], []]);
    aws(["s3api", "delete-bucket", "--bucket", bucket]);
  });

  it("takes back the cluster's KMS key pending deletion, found by its description", () => {
    // As components/secrets.ts creates it, then as `pulumi destroy` leaves it.
    const key = aws(["kms", "create-key", "--description", "dev: kubeadm bootstrap material in Secrets Manager"]).KeyMetadata.KeyId;
    const other = aws(["kms", "create-key", "--description", "prod: kubeadm bootstrap material in Secrets Manager"]).KeyMetadata.KeyId;
    for (const k of [key, other]) aws(["kms", "schedule-key-deletion", "--key-id", k, "--pending-window-in-days", "7"]);

    const lines = sectionCommands("### Tearing a stack down");
    const kms = lines.slice(lines.findIndex((l) => l.startsWith("KEY=$(aws kms list-keys")));
    expect(kms).toHaveLength(2);
    const r = run(kms, {});
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
    expect(aws(["kms", "describe-key", "--key-id", key]).KeyMetadata.KeyState).toBe("Enabled");
    expect(aws(["kms", "describe-key", "--key-id", other]).KeyMetadata.KeyState).toBe("PendingDeletion");
  });
});
