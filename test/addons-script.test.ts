/**
 * cloud-init/scripts/addons.sh (installer `nodes`) run for real under bash, as shipped, on the files
 * components/addons.ts renders for master 0, with recording stubs (test/stubs) first on PATH in
 * place of helm, snap and kubectl. Also the hook in bootstrap.sh: only a fresh `kubeadm init` runs it.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { addonNodeFiles, addonReleases, defaultStorageClass } from "../components/addons";
import { shipScripts } from "./shipped";

const SCRIPTS = shipScripts();
const STUBS = path.join(__dirname, "stubs");

const VALUES = {
  kubernetesVersion: "1.35.0",
  clusterName: "prod",
  region: "eu-west-1",
  podCidr: "10.244.0.0/16",
  cni: "cilium",
  awsCloudControllerManager: true,
  ebsCsiDriver: true,
  clusterAutoscaler: true,
  nodeTermination: { queueUrl: "https://sqs.eu-west-1.amazonaws.com/123456789012/prod-node-termination", managedTag: "aws-node-termination-handler/prod", drainTimeoutSeconds: 300 },
} as const;
const FILES = addonNodeFiles(addonReleases(VALUES), defaultStorageClass());

interface Options {
  /** helm is not installed yet: the snap stub installs it. */
  helmMissing?: boolean;
  /** Files under /etc/kubeadm-ha. Default FILES. */
  files?: Record<string, string>;
  /** Write admin.conf, as kubeadm init does. Default true. */
  adminConf?: boolean;
  env?: Record<string, string>;
}

class Machine {
  readonly root = fs.mkdtempSync(path.join(os.tmpdir(), "kubeadm-ha-addons-"));
  readonly etc = path.join(this.root, "etc/kubeadm-ha");
  readonly kube = path.join(this.root, "etc/kubernetes");
  readonly bin = path.join(this.root, "bin");
  readonly store = path.join(this.root, "snap-store");
  readonly state = path.join(this.root, "stub-state");
  readonly env: Record<string, string>;

  constructor(o: Options = {}) {
    for (const d of [this.etc, this.kube, this.bin, this.store, this.state]) fs.mkdirSync(d, { recursive: true });
    const stub = (file: string, dir: string, cmd: string) => fs.copyFileSync(path.join(STUBS, file), path.join(dir, cmd));
    stub("stub-lib.sh", this.bin, "stub-lib.sh");
    stub("helm.sh", o.helmMissing ? this.store : this.bin, "helm");
    stub("snap.sh", this.bin, "snap");
    stub("kubectl.sh", this.bin, "kubectl");
    for (const cmd of ["helm", "snap", "kubectl"]) if (fs.existsSync(path.join(this.bin, cmd))) fs.chmodSync(path.join(this.bin, cmd), 0o755);
    for (const [rel, content] of Object.entries(o.files ?? FILES)) this.write(path.join(this.etc, rel), content);
    if (o.adminConf ?? true) this.write(this.adminConf, "apiVersion: v1\nkind: Config\n");
    this.env = {
      // No host directory that could hold a real helm; python3 and coreutils live in /usr/bin.
      PATH: `${this.bin}:/usr/bin:/bin`,
      HOME: this.root,
      LANG: "C.UTF-8",
      KUBEADM_HA_ETC: this.etc,
      KUBERNETES_DIR: this.kube,
      KUBEADM_HA_LIB: SCRIPTS,
      KUBEADM_HA_POLL_SECONDS: "0",
      KUBEADM_HA_BACKOFF_SECONDS: "0",
      KUBEADM_HA_ADDON_ATTEMPTS: "3",
      STUB_STATE: this.state,
      STUB_SNAP_STORE: this.store,
      STUB_SNAP_BIN: this.bin,
      ...o.env,
    };
  }

  get adminConf(): string {
    return path.join(this.kube, "admin.conf");
  }

  write(file: string, content: string): void {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, content);
  }

  exec(script = "addons.sh"): { status: number | null; stderr: string } {
    const r = spawnSync("/bin/bash", [path.join(SCRIPTS, script)], { env: this.env, encoding: "utf8", timeout: 30000 });
    if (r.error) throw r.error;
    return { status: r.status, stderr: r.stderr };
  }

  lines(file: string): string[] {
    const p = path.join(this.state, file);
    return fs.existsSync(p) ? fs.readFileSync(p, "utf8").split("\n").filter((l) => l !== "") : [];
  }

  calls(): string[] {
    return this.lines("calls.log");
  }
}

const machines: Machine[] = [];
const machine = (o?: Options) => {
  const m = new Machine(o);
  machines.push(m);
  return m;
};
afterEach(() => {
  for (const m of machines.splice(0)) fs.rmSync(m.root, { recursive: true, force: true });
});

const helmCall = (m: Machine, name: string, chart: string, repo: string, version: string, namespace: string) =>
  `helm upgrade --install ${name} ${chart} --repo ${repo} --version ${version} --namespace ${namespace} --create-namespace --values ${m.etc}/addons/${name}.yaml`;
const ciliumCall = (m: Machine) => helmCall(m, "cilium", "cilium", "https://helm.cilium.io/", "1.19.8", "kube-system");
const ccmCall = (m: Machine) =>
  helmCall(m, "aws-cloud-controller-manager", "aws-cloud-controller-manager", "https://kubernetes.github.io/cloud-provider-aws", "0.0.10", "kube-system");
const ebsCall = (m: Machine) => helmCall(m, "aws-ebs-csi-driver", "aws-ebs-csi-driver", "https://kubernetes-sigs.github.io/aws-ebs-csi-driver", "2.56.1", "kube-system");
const caCall = (m: Machine) => helmCall(m, "cluster-autoscaler", "cluster-autoscaler", "https://kubernetes.github.io/autoscaler", "9.59.0", "kube-system");
// An OCI chart is a reference of its own: helm refuses --repo with it.
const nthCall = (m: Machine) =>
  `helm upgrade --install aws-node-termination-handler oci://public.ecr.aws/aws-ec2/helm/aws-node-termination-handler --version 0.27.6 --namespace kube-system --create-namespace --values ${m.etc}/addons/aws-node-termination-handler.yaml`;
const applyCall = (m: Machine) => `kubectl apply -f ${m.etc}/addons/storageclass.yaml`;
const ALL = (m: Machine) => [ciliumCall(m), ccmCall(m), ebsCall(m), caCall(m), nthCall(m), applyCall(m)];

describe("addons.sh", () => {
  test("installs helm from the pinned snap channel, then every release in order, then the StorageClass", () => {
    const m = machine({ helmMissing: true });
    const r = m.exec();
    expect(r.stderr).toContain("add-ons installed");
    expect(r.status).toBe(0);
    expect(m.calls()).toEqual([
      "snap wait system seed.loaded",
      "snap install helm --classic --channel=3/stable",
      ...ALL(m),
    ]);
    // Each helm call used the cluster-admin kubeconfig kubeadm init wrote, and its own values file.
    expect(m.lines("helm-state.log")).toEqual([
      `kubeconfig=${m.adminConf} exists=yes values=routingMode: tunnel`,
      `kubeconfig=${m.adminConf} exists=yes values=args:`,
      `kubeconfig=${m.adminConf} exists=yes values=controller:`,
      `kubeconfig=${m.adminConf} exists=yes values=cloudProvider: aws`,
      `kubeconfig=${m.adminConf} exists=yes values=enableSqsTerminationDraining: true`,
    ]);
    expect(m.lines("kubectl-apply.log")).toEqual([`${m.etc}/addons/storageclass.yaml kubeconfig=${m.adminConf}`]);
  });

  test("helm already installed: no snap call", () => {
    const m = machine();
    expect(m.exec().status).toBe(0);
    expect(m.calls().filter((c) => c.startsWith("snap "))).toEqual([]);
    expect(m.calls()).toEqual(ALL(m));
  });

  test("a release that fails twice is retried and the rest follow", () => {
    const m = machine({ env: { STUB_HELM_FAILS: "2" } });
    const r = m.exec();
    expect(r.status).toBe(0);
    expect(m.calls()).toEqual([ciliumCall(m), ciliumCall(m), ...ALL(m)]);
    expect(r.stderr).toContain("helm: attempt 2/3 failed, retrying in 0s");
  });

  test("a release that never installs stops the script with exit 8 and installs nothing after it", () => {
    const m = machine({ env: { STUB_HELM_FAILS: "always" } });
    const r = m.exec();
    expect(r.status).toBe(8);
    expect(r.stderr).toContain("helm: failed 3 times, giving up");
    expect(r.stderr).toContain("ERROR: could not install add-on cilium (cilium 1.19.8) after 3 attempts");
    expect(m.calls()).toEqual([ciliumCall(m), ciliumCall(m), ciliumCall(m)]);
    expect(r.stderr).not.toContain("add-ons installed");
  });

  test("a StorageClass the API never takes: exit 8 after the retries", () => {
    const m = machine({ env: { STUB_KUBECTL_APPLY_FAILS: "always" } });
    const r = m.exec();
    expect(r.status).toBe(8);
    expect(r.stderr).toContain(`ERROR: could not apply ${m.etc}/addons/storageclass.yaml after 3 attempts`);
    expect(m.calls().filter((c) => c.startsWith("kubectl "))).toEqual(Array(3).fill(applyCall(m)));
  });

  test("without the EBS CSI driver: its release and the StorageClass are not there, and nothing is applied", () => {
    const files = addonNodeFiles(addonReleases({ ...VALUES, cni: "calico", ebsCsiDriver: false, clusterAutoscaler: false, nodeTermination: undefined }));
    const m = machine({ files });
    expect(m.exec().status).toBe(0);
    expect(m.calls()).toEqual([helmCall(m, "calico", "tigera-operator", "https://docs.tigera.io/calico/charts", "v3.31.3", "tigera-operator"), ccmCall(m)]);
  });

  test.each([
    ["the release list", (f: Record<string, string>) => delete f["addons/releases"], (m: Machine) => `${m.etc}/addons/releases is missing`],
    ["a values file", (f: Record<string, string>) => delete f["addons/aws-cloud-controller-manager.yaml"], (m: Machine) => `${m.etc}/addons/aws-cloud-controller-manager.yaml is missing`],
  ])("missing %s: exit 2 with the file named", (_, drop, message) => {
    const files = { ...FILES };
    drop(files);
    const m = machine({ files });
    const r = m.exec();
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(message(m));
  });

  test("no admin.conf (kubeadm init did not run): exit 2, no helm call", () => {
    const m = machine({ adminConf: false });
    const r = m.exec();
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`${m.adminConf} is missing: kubeadm init should have written it`);
    expect(m.calls()).toEqual([]);
  });

  test("a malformed release line: exit 2", () => {
    const m = machine({ files: { ...FILES, "addons/releases": "cilium cilium https://helm.cilium.io/ 1.19.8\n" } });
    const r = m.exec();
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("malformed line for 'cilium'");
  });
});

describe("bootstrap.sh runs addons.sh", () => {
  const TOKEN = "abcdef.0123456789abcdef";
  const PLACEHOLDER = "__BOOTSTRAP_TOKEN__";
  const API = "k8s-api-0123456789.elb.eu-west-1.amazonaws.com:6443";

  /** A master 0 with the add-on files, whose install and secret fetch run against stubs. */
  function master0(env: Record<string, string>, topology: "stacked" | "external" = "stacked"): Machine {
    const m = machine({ adminConf: false });
    for (const [cmd, file] of Object.entries({ "apt-get": "apt-get.sh", aws: "aws.sh", containerd: "containerd.sh", curl: "curl.sh", gpg: "gpg.sh", kubeadm: "kubeadm.sh" }))
      fs.copyFileSync(path.join(STUBS, file), path.join(m.bin, cmd));
    for (const cmd of ["apt-mark", "modprobe", "swapoff", "sysctl", "systemctl"]) fs.copyFileSync(path.join(STUBS, "record.sh"), path.join(m.bin, cmd));
    for (const cmd of fs.readdirSync(m.bin)) fs.chmodSync(path.join(m.bin, cmd), 0o755);
    const nodeEnv = {
      CLUSTER_NAME: "prod",
      NODE_ROLE: "control-plane",
      NODE_NAME: "ip-10-0-1-10.eu-west-1.compute.internal",
      NODE_IP: "10.0.1.10",
      INIT_NODE: "true",
      KUBERNETES_VERSION: "1.35.0",
      KUBERNETES_MINOR: "1.35",
      API_ENDPOINT: API,
      AWS_REGION: "eu-west-1",
      SECRET_ID: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod-control-plane",
      ETCD_TOPOLOGY: topology,
      ...(topology === "external" ? { ETCD_ENDPOINTS: "https://10.0.0.20:2379" } : {}),
      TOKEN_PLACEHOLDER: PLACEHOLDER,
    };
    m.write(path.join(m.etc, "node.env"), Object.entries(nodeEnv).map(([k, v]) => `${k}='${v}'\n`).join(""));
    m.write(path.join(m.etc, "init.yaml"), `kind: InitConfiguration\nbootstrapTokens:\n- token: ${PLACEHOLDER}\n`);
    m.write(path.join(m.etc, "join.yaml"), `kind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n    token: ${PLACEHOLDER}\n`);
    const secret = {
      "ca.crt": "C\n", "ca.key": "K\n", "front-proxy-ca.crt": "C\n", "front-proxy-ca.key": "K\n", "etcd/ca.crt": "C\n", "etcd/ca.key": "K\n", "sa.key": "K\n", "sa.pub": "P\n", "bootstrap-token": TOKEN,
      ...(topology === "external" ? { "apiserver-etcd-client.crt": "C\n", "apiserver-etcd-client.key": "K\n" } : {}),
    };
    m.write(path.join(m.state, "secret.json"), JSON.stringify(secret));
    m.write(path.join(m.root, "etc/fstab"), "");
    Object.assign(m.env, {
      KUBEADM_HA_RUN: path.join(m.root, "run/kubeadm-ha"),
      KUBEADM_HA_ETCD_DATA_DIR: path.join(m.root, "var/lib/etcd"),
      SYSTEMD_DIR: path.join(m.root, "etc/systemd/system"),
      KUBEADM_HA_WAIT_SECONDS: "20",
      SYSCTL_DIR: path.join(m.root, "etc/sysctl.d"),
      MODULES_DIR: path.join(m.root, "etc/modules-load.d"),
      APT_KEYRINGS: path.join(m.root, "etc/apt/keyrings"),
      APT_SOURCES: path.join(m.root, "etc/apt/sources.list.d"),
      CONTAINERD_CONFIG: path.join(m.root, "etc/containerd/config.toml"),
      FSTAB: path.join(m.root, "etc/fstab"),
      STUB_TOKEN: TOKEN,
      TOKEN_PLACEHOLDER: PLACEHOLDER,
      ...env,
    });
    return m;
  }

  test("first master that initialises the cluster installs the add-ons right after kubeadm init", () => {
    const m = master0({ STUB_CURL_READYZ_FAILS: "always" });
    const r = m.exec("bootstrap.sh");
    expect(r.stderr).toContain("bootstrap complete: init");
    expect(r.status).toBe(0);
    const flow = m.calls().filter((c) => /^(kubeadm|helm|kubectl) /.test(c));
    expect(flow).toEqual([`kubeadm init --config ${m.env.KUBEADM_HA_RUN}/init.yaml --skip-token-print`, ...ALL(m)]);
  });

  test("a replacement first master joins the existing cluster and installs nothing", () => {
    // The API answers: the cluster exists. External etcd keeps the join free of member repair.
    const m = master0({}, "external");
    const r = m.exec("bootstrap.sh");
    expect(r.stderr).toContain("bootstrap complete: control-plane-join");
    expect(r.status).toBe(0);
    expect(m.calls().filter((c) => /^(helm|snap) /.test(c) || c.startsWith("kubectl apply"))).toEqual([]);
  });

  test("add-ons that fail make the bootstrap fail with their exit code", () => {
    const m = master0({ STUB_CURL_READYZ_FAILS: "always", STUB_HELM_FAILS: "always" });
    const r = m.exec("bootstrap.sh");
    expect(r.status).toBe(8);
    expect(r.stderr).not.toContain("bootstrap complete");
  });
});
