/**
 * Runs the first-boot scripts in cloud-init/scripts for real, under bash, with recording stubs
 * (test/stubs) first on PATH in place of every command that would touch the machine or the network.
 * Every path root points into a fresh temp dir, so nothing here needs root.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { shipScripts } from "./shipped";

const REPO = path.join(__dirname, "..");
const SOURCES = path.join(REPO, "cloud-init", "scripts");
/** The scripts as machines receive them (comments stripped by render.ts): what these tests run. */
const SCRIPTS = shipScripts();
const STUBS = path.join(__dirname, "stubs");

const NODE = "ip-10-0-1-11.eu-west-1.compute.internal";
const TOKEN = "abcdef.0123456789abcdef";
const PLACEHOLDER = "__BOOTSTRAP_TOKEN__";
const LEASE = "kubeadm-ha-control-plane-join";
const API = "k8s-api-0123456789.elb.eu-west-1.amazonaws.com:6443";

/** Stub file -> the commands it stands in for. */
const STUB_COMMANDS: Record<string, string[]> = {
  "apt-get.sh": ["apt-get"],
  "aws.sh": ["aws"],
  "containerd.sh": ["containerd"],
  "curl.sh": ["curl"],
  "etcdctl-cluster.sh": ["etcdctl"],
  "gpg.sh": ["gpg"],
  "kubeadm.sh": ["kubeadm"],
  "kubectl.sh": ["kubectl"],
  "record.sh": ["apt-mark", "modprobe", "snap", "swapoff", "sysctl", "systemctl"],
};

const CP_SECRET: Record<string, string> = {
  "ca.crt": "CA CERT\n",
  "ca.key": "CA KEY\n",
  "front-proxy-ca.crt": "FRONT PROXY CERT\n",
  "front-proxy-ca.key": "FRONT PROXY KEY\n",
  "etcd/ca.crt": "ETCD CERT\n",
  "etcd/ca.key": "ETCD KEY\n",
  "sa.key": "SA KEY\n",
  "sa.pub": "SA PUB\n",
  "bootstrap-token": TOKEN,
};

/** An external etcd member's secret: the CA pair and every member's pairs (fetch-secrets.sh takes only its own). */
const OTHER = "ip-10-0-2-12.eu-west-1.compute.internal";
const ETCD_SECRET: Record<string, string> = {
  "etcd/ca.crt": "ETCD CA CERT\n",
  "etcd/ca.key": "ETCD CA KEY\n",
  ...Object.fromEntries(
    [NODE, OTHER].flatMap((n) => ["server.crt", "server.key", "peer.crt", "peer.key"].map((f) => [`members/${n}/${f}`, `${n} ${f}\n`])),
  ),
};
const ETCD_ENDPOINTS = ["https://10.0.0.20:2379", "https://10.0.32.20:2379", "https://10.0.64.20:2379"];
/** Every member of this machine's etcd cluster (stacked masters and external members alike). */
const ETCD_MEMBERS = `${NODE}=https://10.0.1.11:2380,${OTHER}=https://10.0.2.12:2380,ip-10-0-3-13.eu-west-1.compute.internal=https://10.0.3.13:2380`;
/** A control plane secret with external etcd: the API server's etcd client pair beside the etcd CA pair, which renews it. */
const CP_EXTERNAL_SECRET: Record<string, string> = Object.fromEntries([
  ...Object.entries(CP_SECRET),
  ["apiserver-etcd-client.crt", "AEC CERT\n"],
  ["apiserver-etcd-client.key", "AEC KEY\n"],
]);

interface NodeOptions {
  role?: "control-plane" | "worker" | "etcd";
  /** Control plane only. Default stacked. */
  etcdTopology?: "stacked" | "external";
  initNode?: boolean;
  secret?: Record<string, unknown>;
  env?: Record<string, string>;
  /** Worker only: node.env's LAUNCH_HOOK, the group's launch lifecycle hook node-ready.sh completes. Default none. */
  launchHook?: string;
}

interface Run {
  status: number | null;
  stderr: string;
  stdout: string;
}

class Machine {
  readonly root = fs.mkdtempSync(path.join(os.tmpdir(), "kubeadm-ha-"));
  readonly etc = path.join(this.root, "etc/kubeadm-ha");
  readonly kube = path.join(this.root, "etc/kubernetes");
  readonly run = path.join(this.root, "run/kubeadm-ha");
  readonly etcd = path.join(this.root, "var/lib/etcd");
  readonly state = path.join(this.root, "stub-state");
  readonly bin = path.join(this.root, "bin");
  readonly fstab = path.join(this.root, "etc/fstab");
  readonly env: Record<string, string>;

  constructor(opts: NodeOptions = {}) {
    const role = opts.role ?? "control-plane";
    const initNode = opts.initNode ?? false;
    const topology = opts.etcdTopology ?? "stacked";
    for (const d of [this.etc, this.state, this.bin]) fs.mkdirSync(d, { recursive: true });
    for (const [file, commands] of Object.entries(STUB_COMMANDS))
      for (const cmd of commands) fs.copyFileSync(path.join(STUBS, file), path.join(this.bin, cmd));
    for (const cmd of fs.readdirSync(this.bin)) fs.chmodSync(path.join(this.bin, cmd), 0o755);
    fs.copyFileSync(path.join(STUBS, "stub-lib.sh"), path.join(this.bin, "stub-lib.sh"));

    const nodeEnv: Record<string, string> = {
      CLUSTER_NAME: "dev",
      NODE_ROLE: role,
      NODE_NAME: NODE,
      NODE_IP: "10.0.1.11",
      INIT_NODE: String(initNode),
      KUBERNETES_VERSION: "1.35.0",
      KUBERNETES_MINOR: "1.35",
      ...(role === "etcd" ? {} : { API_ENDPOINT: API }),
      AWS_REGION: "eu-west-1",
      SECRET_ID: `arn:aws:secretsmanager:eu-west-1:123456789012:secret:dev-${role}`,
      ...(role === "control-plane" ? { ETCD_TOPOLOGY: topology } : {}),
      ...(role === "control-plane" && topology === "external" ? { ETCD_ENDPOINTS: ETCD_ENDPOINTS.join(",") } : {}),
      ...(role === "etcd" || (role === "control-plane" && topology === "stacked") ? { ETCD_MEMBERS } : {}),
      ...(opts.launchHook ? { LAUNCH_HOOK: opts.launchHook } : {}),
      TOKEN_PLACEHOLDER: PLACEHOLDER,
    };
    this.write(
      path.join(this.etc, "node.env"),
      Object.entries(nodeEnv).map(([k, v]) => `${k}='${v}'\n`).join(""),
    );
    if (initNode)
      this.write(
        path.join(this.etc, "init.yaml"),
        `kind: InitConfiguration\nbootstrapTokens:\n- token: ${PLACEHOLDER}\n---\nkind: ClusterConfiguration\n`,
      );
    if (role === "etcd") {
      this.write(path.join(this.etc, "etcd.yaml"), "kind: Pod\nmetadata:\n  name: etcd\n");
      this.write(path.join(this.etc, "kubelet-etcd.yaml"), "kind: KubeletConfiguration\n");
    } else
      this.write(
        path.join(this.etc, "join.yaml"),
        `kind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n    token: ${PLACEHOLDER}\n    apiServerEndpoint: ${API}\n`,
      );
    const secret =
      opts.secret ??
      (role === "etcd" ? ETCD_SECRET : role === "worker" ? { "bootstrap-token": TOKEN } : topology === "external" ? CP_EXTERNAL_SECRET : CP_SECRET);
    this.write(path.join(this.state, "secret.json"), JSON.stringify(secret));
    this.write(this.fstab, "LABEL=cloudimg-rootfs / ext4 discard,errors=remount-ro 0 1\n/swap.img none swap sw 0 0\n");

    this.env = {
      // No host directory that could hold a real aws or kubeadm; python3 and coreutils live in /usr/bin.
      PATH: `${this.bin}:/usr/bin:/bin`,
      HOME: this.root,
      LANG: "C.UTF-8",
      KUBEADM_HA_ETC: this.etc,
      KUBERNETES_DIR: this.kube,
      KUBEADM_HA_RUN: this.run,
      KUBEADM_HA_LIB: SCRIPTS,
      KUBEADM_HA_ETCD_DATA_DIR: this.etcd,
      SYSTEMD_DIR: path.join(this.root, "etc/systemd/system"),
      KUBEADM_HA_WAIT_SECONDS: "20",
      KUBEADM_HA_POLL_SECONDS: "0",
      KUBEADM_HA_BACKOFF_SECONDS: "0",
      KUBEADM_HA_JOIN_ATTEMPTS: "5",
      KUBEADM_HA_LOCK_STALE_SECONDS: "900",
      SYSCTL_DIR: path.join(this.root, "etc/sysctl.d"),
      MODULES_DIR: path.join(this.root, "etc/modules-load.d"),
      APT_KEYRINGS: path.join(this.root, "etc/apt/keyrings"),
      APT_SOURCES: path.join(this.root, "etc/apt/sources.list.d"),
      CONTAINERD_CONFIG: path.join(this.root, "etc/containerd/config.toml"),
      FSTAB: this.fstab,
      STUB_STATE: this.state,
      // etcdctl.sh runs the named binary instead of the etcd image; without etcd.json no member answers.
      ETCDCTL: path.join(this.bin, "etcdctl"),
      STUB_TOKEN: TOKEN,
      TOKEN_PLACEHOLDER: PLACEHOLDER,
      ...opts.env,
    };
  }

  write(file: string, content: string): void {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, content);
  }

  exec(script: string, env: Record<string, string> = {}): Run {
    const r = spawnSync("/bin/bash", [path.join(SCRIPTS, script)], {
      env: { ...this.env, ...env },
      encoding: "utf8",
      timeout: 30000,
    });
    if (r.error) throw r.error;
    return { status: r.status, stderr: r.stderr, stdout: r.stdout };
  }

  /** Every stub call, in order: "<command> <args...>". */
  calls(): string[] {
    return this.lines("calls.log");
  }

  /** What kubeadm init/join saw when it ran (see test/stubs/kubeadm.sh). */
  kubeadmState(): string[] {
    return this.lines("kubeadm-state.log");
  }

  /** The documents kubectl received on stdin, parsed: [verb, document]. */
  kubectlStdin(): [string, any][] {
    return this.lines("kubectl-stdin.log").map((l) => {
      const i = l.indexOf(" ");
      return [l.slice(0, i), JSON.parse(l.slice(i + 1))];
    });
  }

  lines(file: string): string[] {
    const p = path.join(this.state, file);
    return fs.existsSync(p) ? fs.readFileSync(p, "utf8").split("\n").filter((l) => l !== "") : [];
  }

  /** Puts a lease in the fake API server, as another master would have. */
  seedLease(holder: string, renewTime: string): void {
    const lease = {
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: { name: LEASE, namespace: "kube-system", resourceVersion: "41", creationTimestamp: "2025-01-01T00:00:00Z" },
      spec: { holderIdentity: holder, acquireTime: renewTime, renewTime, leaseDurationSeconds: 900 },
    };
    this.write(path.join(this.state, "lease.json"), JSON.stringify(lease));
  }

  leaseExists(): boolean {
    return fs.existsSync(path.join(this.state, "lease.json"));
  }

  mode(rel: string): number {
    return fs.statSync(path.join(this.root, rel)).mode & 0o777;
  }

  /** Every file under dir whose content contains needle. */
  filesContaining(dir: string, needle: string): string[] {
    if (!fs.existsSync(dir)) return [];
    return (fs.readdirSync(dir, { recursive: true }) as string[])
      .map((f) => path.join(dir, f))
      .filter((f) => fs.statSync(f).isFile() && fs.readFileSync(f, "utf8").includes(needle));
  }
}

const machines: Machine[] = [];
function machine(opts?: NodeOptions): Machine {
  const m = new Machine(opts);
  machines.push(m);
  return m;
}
afterEach(() => {
  for (const m of machines.splice(0)) fs.rmSync(m.root, { recursive: true, force: true });
});

/** The calls that matter for ordering: the API probe, kubeadm and kubectl, without flags noise. */
function flow(m: Machine): string[] {
  return m
    .calls()
    .filter((c) => /^(kubeadm|kubectl) /.test(c) || (c.startsWith("curl ") && c.endsWith("/readyz")))
    .map((c) => {
      if (c.startsWith("curl ")) return "curl readyz";
      if (c.startsWith("kubeadm kubeconfig user")) return "kubeadm kubeconfig user";
      if (c.startsWith("kubeadm init phase certs")) return "kubeadm certs";
      if (c.startsWith("kubectl ")) return "kubectl " + c.split(" ").filter((a) => /^(create|replace|get|delete)$/.test(a))[0] + (c.includes(" node ") ? " node" : "");
      return c.split(" ").slice(0, 2).join(" ");
    });
}

const count = (xs: string[], x: string) => xs.filter((y) => y === x).length;
const joinCmd = (m: Machine) => `kubeadm join --config ${m.run}/join.yaml`;
const deleteLease = (c: string) => c.startsWith("kubectl ") && c.endsWith(`delete lease ${LEASE}`);

describe("bootstrap.sh", () => {
  test("(a) first master with no API answering: kubeadm init once, no join, no lock", () => {
    const m = machine({ initNode: true, env: { STUB_CURL_READYZ_FAILS: "always" } });
    const r = m.exec("bootstrap.sh");
    expect(r.stderr).toContain("bootstrap complete: init");
    expect(r.status).toBe(0);
    expect(m.calls().filter((c) => c.startsWith("kubeadm "))).toEqual([
      `kubeadm init --config ${m.run}/init.yaml --skip-token-print`,
    ]);
    expect(m.calls().filter((c) => c.startsWith("kubectl "))).toEqual([]);
    // Three probes, all refused, before deciding that no cluster exists.
    expect(flow(m)).toEqual(["curl readyz", "curl readyz", "curl readyz", "kubeadm init"]);
    expect(m.kubeadmState()).toEqual(["init lease-holder=none ca-key=yes token=yes placeholder=no"]);
  });

  test("(a) a failed kubeadm init is reset, the secrets re-fetched, and init retried", () => {
    const m = machine({ initNode: true, env: { STUB_CURL_READYZ_FAILS: "always", STUB_KUBEADM_INIT_FAILS: "1" } });
    const r = m.exec("bootstrap.sh");
    expect(r.status).toBe(0);
    expect(flow(m).filter((c) => c.startsWith("kubeadm"))).toEqual(["kubeadm init", "kubeadm reset", "kubeadm init"]);
    expect(m.calls().filter((c) => c.startsWith("aws "))).toHaveLength(2);
    // kubeadm reset empties pki; the retry must find the CA key again.
    expect(m.kubeadmState()[1]).toBe("init lease-holder=none ca-key=yes token=yes placeholder=no");
    expect(fs.existsSync(path.join(m.etcd, "member"))).toBe(false);
    expect(fs.readdirSync(path.join(m.kube, "manifests"))).toEqual([]);
  });

  test("(a) first master never initialises when something answers at the endpoint, even with an error", () => {
    // curl exit 22: an HTTP error status. A cluster is there (not ready yet): join it.
    const m = machine({ initNode: true, env: { STUB_CURL_READYZ_FAILS: "4", STUB_CURL_READYZ_FAIL_CODE: "22" } });
    const r = m.exec("bootstrap.sh");
    expect(r.status).toBe(0);
    expect(r.stderr).toContain("answers (curl exit 22)");
    expect(flow(m)).not.toContain("kubeadm init");
    expect(flow(m)).toContain("kubeadm join");
  });

  test("(b) first master replacing a live one: joins under the lock, never inits", () => {
    const m = machine({ initNode: true });
    const r = m.exec("bootstrap.sh");
    expect(r.status).toBe(0);
    expect(r.stderr).toContain("the cluster exists (this node replaces it): joining");
    expect(r.stderr).toContain("bootstrap complete: control-plane-join");
    expect(flow(m)).toEqual([
      "curl readyz", // the init-or-join probe
      "curl readyz", // wait_for_api
      "kubeadm kubeconfig user",
      "kubectl create",
      "kubeadm token", // a join token of its own
      "kubectl get node", // no stale Node of a predecessor
      "kubeadm certs", // etcd-rejoin.sh: the etcd client pair; no other member answers
      "kubeadm join",
      "kubectl get",
      "kubectl delete",
    ]);
    expect(m.kubeadmState()).toEqual([`join lease-holder=${NODE} ca-key=yes token=own placeholder=no`]);
    expect(m.leaseExists()).toBe(false);
  });

  test("(c) second master: waits for the API, takes the lock, joins, releases the lock", () => {
    const m = machine({ env: { STUB_CURL_READYZ_FAILS: "2" } });
    const r = m.exec("bootstrap.sh");
    expect(r.status).toBe(0);
    expect(flow(m)).toEqual([
      "curl readyz",
      "curl readyz",
      "curl readyz",
      "kubeadm kubeconfig user",
      "kubectl create",
      "kubeadm token", // a join token of its own
      "kubectl get node", // no stale Node of a predecessor
      "kubeadm certs", // etcd-rejoin.sh: the etcd client pair; no other member answers
      "kubeadm join",
      "kubectl get",
      "kubectl delete",
    ]);
    // Control-plane nodes verify the API's certificate against the cluster CA from the secret.
    const probes = m.calls().filter((c) => c.startsWith("curl ") && c.endsWith("/readyz"));
    expect(probes).toHaveLength(3);
    for (const p of probes) expect(p).toContain(`--cacert ${m.kube}/pki/ca.crt`);
    for (const p of probes) expect(p).not.toContain("--insecure");
    expect(m.calls()).toContain(
      `kubeadm kubeconfig user --config ${m.run}/joiner-cluster.yaml --client-name kubeadm-ha-joiner:${NODE} --org kubeadm:cluster-admins --validity-period 1h`,
    );
    expect(JSON.parse(fs.readFileSync(path.join(m.run, "joiner-cluster.yaml"), "utf8"))).toEqual({
      apiVersion: "kubeadm.k8s.io/v1beta4",
      kind: "ClusterConfiguration",
      clusterName: "dev",
      kubernetesVersion: "v1.35.0",
      controlPlaneEndpoint: API,
      certificatesDir: `${m.kube}/pki`,
    });
    expect(m.calls()).toContain(`kubectl --kubeconfig ${m.run}/joiner.conf --request-timeout=30s -n kube-system create -f -`);
    expect(m.calls()).toContain(joinCmd(m));
    // The token in the secret lives only a day after kubeadm init: the master joins with its own,
    // minted with the credential it signed, rendered into its join document as fetch-secrets.sh would.
    expect(m.calls()).toContain(`kubeadm token create --kubeconfig ${m.run}/joiner.conf --ttl 1h --description kubeadm-ha: ${NODE} joining the control plane`);
    const join = fs.readFileSync(path.join(m.run, "join.yaml"), "utf8");
    expect(join).toContain("token: qrstuv.0123456789qrstuv");
    expect(join).not.toContain(TOKEN);
    expect(join).not.toContain("__BOOTSTRAP_TOKEN__");
    expect(fs.statSync(path.join(m.run, "join.yaml")).mode & 0o777).toBe(0o600);
    const [[verb, lease]] = m.kubectlStdin();
    expect(verb).toBe("create");
    expect(lease.metadata).toEqual({ name: LEASE, namespace: "kube-system", labels: { "app.kubernetes.io/managed-by": "kubeadm-ha" } });
    expect(lease.spec.holderIdentity).toBe(NODE);
    expect(lease.spec.leaseDurationSeconds).toBe(900);
    expect(lease.spec.renewTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    expect(lease.spec.acquireTime).toBe(lease.spec.renewTime);
    expect(m.kubeadmState()).toEqual([`join lease-holder=${NODE} ca-key=yes token=own placeholder=no`]);
    expect(m.leaseExists()).toBe(false);
    // The short-lived cluster-admin credential does not outlive the script.
    expect(fs.existsSync(path.join(m.run, "joiner.conf"))).toBe(false);
  });

  test("(d) join fails twice then succeeds: a reset between each, the lock kept and released once", () => {
    const m = machine({ env: { STUB_KUBEADM_JOIN_FAILS: "2" } });
    const r = m.exec("bootstrap.sh");
    expect(r.status).toBe(0);
    const kubeadm = m.calls().filter((c) => /^kubeadm (join|reset)/.test(c));
    expect(kubeadm).toEqual([joinCmd(m), "kubeadm reset -f", joinCmd(m), "kubeadm reset -f", joinCmd(m)]);
    expect(m.calls().filter(deleteLease)).toHaveLength(1);
    // Every attempt ran under this node's lease, with the key material re-fetched after each reset.
    expect(m.kubeadmState()).toEqual(Array(3).fill(`join lease-holder=${NODE} ca-key=yes token=own placeholder=no`));
    expect(m.calls().filter((c) => c.startsWith("aws "))).toHaveLength(3);
    // The leftovers kubeadm reset tells the operator to remove are gone.
    expect(fs.existsSync(path.join(m.etcd, "member"))).toBe(false);
    expect(fs.readdirSync(path.join(m.kube, "manifests"))).toEqual([]);
    // The retries refreshed the lease rather than queueing behind themselves.
    expect(m.kubectlStdin().map(([verb]) => verb)).toEqual(["create", "create", "replace", "create", "replace"]);
    expect(m.leaseExists()).toBe(false);
  });

  test("(e) join always fails: gives up after KUBEADM_HA_JOIN_ATTEMPTS, resets, releases the lock", () => {
    const m = machine({ env: { STUB_KUBEADM_JOIN_FAILS: "always", KUBEADM_HA_JOIN_ATTEMPTS: "3" } });
    const r = m.exec("bootstrap.sh");
    expect(r.status).toBe(5);
    expect(r.stderr).toContain("ERROR: giving up: kubeadm join failed 3 times; the node has been reset");
    expect(r.stderr).not.toContain("bootstrap complete");
    expect(count(m.calls(), joinCmd(m))).toBe(3);
    expect(count(m.calls(), "kubeadm reset -f")).toBe(3);
    expect(m.calls().filter(deleteLease)).toHaveLength(1);
    expect(m.leaseExists()).toBe(false);
    // A half-joined node must not look joined on the next boot.
    expect(fs.existsSync(path.join(m.kube, "kubelet.conf"))).toBe(false);
  });

  test("(f) lock held by another live master: waits for its release, then joins", () => {
    const m = machine({ env: { STUB_LEASE_RELEASED_AFTER_GETS: "3" } });
    m.seedLease("ip-10-0-2-12.eu-west-1.compute.internal", new Date().toISOString());
    const r = m.exec("bootstrap.sh");
    expect(r.status).toBe(0);
    expect(r.stderr).toContain("join lock held by 'ip-10-0-2-12.eu-west-1.compute.internal'");
    expect(r.stderr).not.toContain("breaking stale");
    expect(flow(m)).toEqual([
      "curl readyz",
      "kubeadm kubeconfig user",
      "kubectl create",
      "kubectl get",
      "kubectl create",
      "kubectl get",
      "kubectl create",
      "kubectl get", // the holder released it just now
      "kubectl create",
      "kubeadm token", // a join token of its own
      "kubectl get node", // no stale Node of a predecessor
      "kubeadm certs", // etcd-rejoin.sh: the etcd client pair; no other member answers
      "kubeadm join",
      "kubectl get",
      "kubectl delete",
    ]);
    expect(m.kubeadmState()).toEqual([`join lease-holder=${NODE} ca-key=yes token=own placeholder=no`]);
    expect(m.calls().filter((c) => c.startsWith("kubectl ") && c.includes(" replace "))).toEqual([]);
  });

  test("(f) a lock that a live master keeps holding times out with a clear error", () => {
    const m = machine({ env: { KUBEADM_HA_WAIT_SECONDS: "1", KUBEADM_HA_POLL_SECONDS: "0.2" } });
    m.seedLease("ip-10-0-2-12.eu-west-1.compute.internal", new Date().toISOString());
    const r = m.exec("bootstrap.sh");
    expect(r.status).toBe(4);
    expect(r.stderr).toContain(`ERROR: timed out after 1s waiting for join lock lease/${LEASE} in kube-system`);
    expect(m.calls()).not.toContain(joinCmd(m));
    // Never deletes a lease it does not hold.
    expect(m.calls().filter(deleteLease)).toEqual([]);
    expect(m.leaseExists()).toBe(true);
  });

  test("(g) a stale lock is broken by an atomic takeover and taken", () => {
    const m = machine();
    m.seedLease("ip-10-0-3-13.eu-west-1.compute.internal", "2000-01-01T00:00:00.000000Z");
    const r = m.exec("bootstrap.sh");
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/breaking stale join lock held by 'ip-10-0-3-13\.eu-west-1\.compute\.internal' \(last renewed \d+s ago, limit 900s\)/);
    const [, [verb, lease]] = m.kubectlStdin();
    expect(verb).toBe("replace");
    expect(lease.metadata.resourceVersion).toBe("41");
    expect(lease.spec.holderIdentity).toBe(NODE);
    expect(lease.spec.leaseTransitions).toBe(1);
    expect(m.kubeadmState()).toEqual([`join lease-holder=${NODE} ca-key=yes token=own placeholder=no`]);
    expect(m.calls().filter(deleteLease)).toHaveLength(1);
    expect(m.leaseExists()).toBe(false);
  });

  test("(g) two masters breaking the same stale lock: the loser waits for the winner", () => {
    const winner = "ip-10-0-2-12.eu-west-1.compute.internal";
    const m = machine({ env: { STUB_LEASE_TAKEN_BY: winner, STUB_LEASE_RELEASED_AFTER_GETS: "3" } });
    m.seedLease("ip-10-0-3-13.eu-west-1.compute.internal", "2000-01-01T00:00:00.000000Z");
    const r = m.exec("bootstrap.sh");
    expect(r.status).toBe(0);
    expect(r.stderr).toContain(`lost the race for lease/${LEASE}: Error from server (Conflict)`);
    expect(r.stderr).toContain(`join lock held by '${winner}'`);
    // The winner's fresh lease was never deleted or replaced by the loser.
    expect(m.kubectlStdin().map(([verb]) => verb)).toEqual(["create", "replace", "create", "create", "create"]);
    expect(m.calls().filter(deleteLease)).toHaveLength(1);
    expect(m.kubeadmState()).toEqual([`join lease-holder=${NODE} ca-key=yes token=own placeholder=no`]);
  });

  test("(h) the API never answers: times out with a clear error", () => {
    const m = machine({
      role: "worker",
      env: { STUB_CURL_READYZ_FAILS: "always", KUBEADM_HA_WAIT_SECONDS: "1", KUBEADM_HA_POLL_SECONDS: "0.2" },
    });
    const r = m.exec("bootstrap.sh");
    expect(r.status).toBe(3);
    expect(r.stderr).toContain(
      `ERROR: timed out after 1s waiting for the Kubernetes API at https://${API}/readyz (last curl exit 7: curl: (7) Failed to connect`,
    );
    expect(m.calls().filter((c) => c.startsWith("kubeadm "))).toEqual([]);
  });

  test("(i) already bootstrapped (kubelet.conf present): exits 0 and calls nothing", () => {
    const m = machine();
    m.write(path.join(m.kube, "kubelet.conf"), "kind: Config\n");
    const r = m.exec("bootstrap.sh");
    expect(r.status).toBe(0);
    expect(r.stderr).toContain("this node already joined the cluster, nothing to do");
    expect(m.calls()).toEqual([]);
  });

  test("(j) worker: joins without any lock and without CA key material", () => {
    // Even a secret that wrongly carries the CA key must not put it on a worker.
    const m = machine({ role: "worker", secret: { "bootstrap-token": TOKEN, "ca.key": "CA KEY\n" }, env: { STUB_CURL_READYZ_FAILS: "1" } });
    const r = m.exec("bootstrap.sh");
    expect(r.status).toBe(0);
    expect(r.stderr).toContain("bootstrap complete: worker-join");
    expect(r.stderr).toContain("ignoring secret entry ca.key: workers only use the bootstrap token");
    expect(flow(m)).toEqual(["curl readyz", "curl readyz", "kubeadm join"]);
    expect(m.calls()).toContain(joinCmd(m));
    expect(m.calls().filter((c) => c.startsWith("curl ") && c.endsWith("/readyz")).every((c) => c.includes("--insecure"))).toBe(true);
    expect(m.kubeadmState()).toEqual(["join lease-holder=none ca-key=no token=yes placeholder=no"]);
    expect(fs.existsSync(path.join(m.kube, "pki"))).toBe(false);
    expect(m.filesContaining(m.root, "CA KEY").filter((f) => !f.startsWith(m.state))).toEqual([]);
  });

  test("a worker joins with the token the masters rotated, and logs until when it is good", () => {
    const until = new Date(Date.now() + 20 * 3600 * 1000).toISOString().replace(/\.\d+Z$/, "Z");
    const m = machine({ role: "worker", secret: { "bootstrap-token": TOKEN, "bootstrap-token-expires": until } });
    const r = m.exec("bootstrap.sh");
    expect(r.status).toBe(0);
    expect(r.stderr).toContain(`the join token is good until ${until}`);
    expect(m.kubeadmState()).toEqual(["join lease-holder=none ca-key=no token=yes placeholder=no"]);
  });

  test("a worker whose secret holds an expired token stops at once with what to check, and never runs kubeadm", () => {
    const m = machine({ role: "worker", secret: { "bootstrap-token": TOKEN, "bootstrap-token-expires": "2026-01-01T00:00:00Z" } });
    const r = m.exec("bootstrap.sh");
    expect(r.status).toBe(6);
    expect(r.stderr).toContain(
      `the join token in arn:aws:secretsmanager:eu-west-1:123456789012:secret:dev-worker expired at 2026-01-01T00:00:00Z: the masters renew it every hour (kubeadm-ha-token-rotate.timer); check that a master is up and that timer runs on it (journalctl -u kubeadm-ha-token-rotate.service)`,
    );
    expect(m.calls().filter((c) => c.startsWith("kubeadm "))).toEqual([]);
    expect(fs.existsSync(path.join(m.run, "join.yaml"))).toBe(false);
  });

  test("a worker's failed join is reset and retried, still without a lock", () => {
    const m = machine({ role: "worker", env: { STUB_KUBEADM_JOIN_FAILS: "1" } });
    const r = m.exec("bootstrap.sh");
    expect(r.status).toBe(0);
    expect(flow(m)).toEqual(["curl readyz", "kubeadm join", "kubeadm reset", "curl readyz", "kubeadm join"]);
  });

  test("an auto scaling group worker learns its name and address from IMDSv2 and renders them into join.yaml", () => {
    const m = machine({ role: "worker", env: { STUB_IMDS_HOSTNAME: "ip-10-0-77-5.eu-west-1.compute.internal", STUB_IMDS_IPV4: "10.0.77.5" } });
    m.write(path.join(m.etc, "node.env"), fs.readFileSync(path.join(m.etc, "node.env"), "utf8").replace(`NODE_NAME='${NODE}'`, "NODE_NAME='auto'").replace("NODE_IP='10.0.1.11'", "NODE_IP='auto'"));
    m.write(path.join(m.etc, "join.yaml"), `kind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n    token: ${PLACEHOLDER}\nnodeRegistration:\n  name: __NODE_NAME__\n  kubeletExtraArgs:\n  - name: node-ip\n    value: __NODE_IP__\n`);
    const r = m.exec("bootstrap.sh");
    expect(r.status).toBe(0);
    const imds = m.calls().filter((c) => c.includes("169.254.169.254"));
    expect(imds).toEqual([
      "curl --silent --show-error --fail --max-time 5 -X PUT -H X-aws-ec2-metadata-token-ttl-seconds: 300 http://169.254.169.254/latest/api/token",
      "curl --silent --show-error --fail --max-time 5 -H X-aws-ec2-metadata-token: stub-imds-token http://169.254.169.254/latest/meta-data/local-hostname",
      "curl --silent --show-error --fail --max-time 5 -X PUT -H X-aws-ec2-metadata-token-ttl-seconds: 300 http://169.254.169.254/latest/api/token",
      "curl --silent --show-error --fail --max-time 5 -H X-aws-ec2-metadata-token: stub-imds-token http://169.254.169.254/latest/meta-data/local-ipv4",
    ].concat(imds.slice(4)));
    // Every metadata read carries an IMDSv2 session token (the instances require one).
    expect(imds.filter((c) => c.includes("/meta-data/")).every((c) => c.includes("X-aws-ec2-metadata-token: stub-imds-token"))).toBe(true);
    expect(r.stderr).toContain("bootstrapping ip-10-0-77-5.eu-west-1.compute.internal:");
    const joined = fs.readFileSync(path.join(m.run, "join.yaml"), "utf8");
    expect(joined).toContain("name: ip-10-0-77-5.eu-west-1.compute.internal");
    expect(joined).toContain("value: 10.0.77.5");
    expect(joined).not.toContain("__NODE_");
  });

  test("a malformed node.env stops before touching the machine", () => {
    const m = machine();
    m.write(path.join(m.etc, "node.env"), fs.readFileSync(path.join(m.etc, "node.env"), "utf8").replace("NODE_ROLE='control-plane'", "NODE_ROLE='master'"));
    const r = m.exec("bootstrap.sh");
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("ERROR: NODE_ROLE must be control-plane, worker or etcd, got 'master'");
    expect(m.calls()).toEqual([]);
  });
});

describe("a worker held by its group's launch hook (node-ready.sh)", () => {
  const HOOK = "kubeadm-ha-node-ready";
  const INSTANCE = "i-0123456789abcdef0";
  const GROUP = "dev-general-0001";
  const describe = `aws autoscaling describe-auto-scaling-instances --region eu-west-1 --instance-ids ${INSTANCE} --query AutoScalingInstances[0].[AutoScalingGroupName,LifecycleState] --output text`;
  const complete = (result: string) =>
    `aws autoscaling complete-lifecycle-action --region eu-west-1 --lifecycle-hook-name ${HOOK} --auto-scaling-group-name ${GROUP} --instance-id ${INSTANCE} --lifecycle-action-result ${result}`;
  const unhealthy = `aws autoscaling set-instance-health --region eu-west-1 --instance-id ${INSTANCE} --health-status Unhealthy --no-should-respect-grace-period`;
  const getNode = (m: Machine) =>
    `kubectl --kubeconfig ${m.kube}/kubelet.conf --request-timeout=10s get node ${NODE} -o jsonpath={.status.conditions[?(@.type=="Ready")].status}`;
  /** kubeadm, kubectl and aws autoscaling calls, in order; the secret fetch left out. */
  const lifecycle = (m: Machine) => m.calls().filter((c) => /^(kubeadm (join|reset)|kubectl |aws autoscaling )/.test(c)).map((c) => (c.startsWith("kubeadm ") ? c.split(" ").slice(0, 2).join(" ") : c));
  const worker = (env: Record<string, string> = {}) => machine({ role: "worker", launchHook: HOOK, env });

  test("joins, waits until the node is Ready, then completes the hook with CONTINUE", () => {
    const m = worker({ STUB_NODE_READY_AFTER_GETS: "3" });
    m.write(path.join(m.state, "node-ready"), "False");
    const r = m.exec("bootstrap.sh");
    expect(r.stderr).toContain("bootstrap complete: worker-join");
    expect(r.status).toBe(0);
    expect(lifecycle(m)).toEqual(["kubeadm join", getNode(m), getNode(m), getNode(m), describe, complete("CONTINUE")]);
    expect(r.stderr).toContain(`waiting for node ${NODE} to be Ready (exit 1: Ready is 'False')`);
    expect(r.stderr).toContain(`reporting CONTINUE to lifecycle hook ${HOOK} of group ${GROUP} for ${INSTANCE}`);
    // The instance ID comes from IMDSv2, with a session token.
    expect(m.calls()).toContain("curl --silent --show-error --fail --max-time 5 -H X-aws-ec2-metadata-token: stub-imds-token http://169.254.169.254/latest/meta-data/instance-id");
  });

  test("a node that never becomes Ready is abandoned, and the bootstrap fails with exit 15", () => {
    const m = worker({ KUBEADM_HA_WAIT_SECONDS: "1", KUBEADM_HA_POLL_SECONDS: "0.2" });
    m.write(path.join(m.state, "node-ready"), "False");
    const r = m.exec("bootstrap.sh");
    expect(r.status).toBe(15);
    expect(r.stderr).toContain(`ERROR: node ${NODE} did not become Ready; reported the failure to group ${GROUP}`);
    const calls = lifecycle(m);
    expect(calls.slice(-2)).toEqual([describe, complete("ABANDON")]);
    // Reported once: node-ready.sh reports the outcome itself, bootstrap.sh's own report is off by then.
    expect(calls.filter((c) => c.startsWith("aws autoscaling complete-lifecycle-action"))).toHaveLength(1);
    expect(r.stderr).not.toContain("bootstrap complete");
  });

  test("a join that fails for good reports ABANDON at once, without waiting for readiness", () => {
    const m = worker({ STUB_KUBEADM_JOIN_FAILS: "always" });
    const r = m.exec("bootstrap.sh");
    expect(r.status).toBe(5);
    expect(lifecycle(m).filter((c) => !c.startsWith("kubeadm"))).toEqual([describe, complete("ABANDON")]);
    expect(r.stderr).toContain("giving up: kubeadm join failed 5 times");
  });

  test("a failure before the join (no secret) is reported too", () => {
    const m = worker({ STUB_AWS_FAILS: "always", KUBEADM_HA_WAIT_SECONDS: "1" });
    const r = m.exec("bootstrap.sh");
    expect(r.status).toBe(6);
    expect(lifecycle(m)).toEqual([describe, complete("ABANDON")]);
  });

  test("a machine no hook held (already InService) is marked Unhealthy on failure, and reports nothing once Ready", () => {
    const failed = worker({ STUB_ASG_STATE: "InService", STUB_KUBEADM_JOIN_FAILS: "always" });
    expect(failed.exec("bootstrap.sh").status).toBe(5);
    expect(lifecycle(failed).filter((c) => c.startsWith("aws "))).toEqual([describe, unhealthy]);

    const ready = worker({ STUB_ASG_STATE: "InService" });
    ready.write(path.join(ready.state, "node-ready"), "True");
    const r = ready.exec("bootstrap.sh");
    expect(r.status).toBe(0);
    expect(lifecycle(ready).filter((c) => c.startsWith("aws "))).toEqual([describe]);
    expect(r.stderr).toContain(`${INSTANCE} is already in service in ${GROUP} (no hook held it): nothing to report`);
  });

  test("a machine the group is already terminating reports nothing", () => {
    const m = worker({ STUB_ASG_STATE: "Terminating:Wait" });
    m.write(path.join(m.state, "node-ready"), "True");
    const r = m.exec("bootstrap.sh");
    expect(r.status).toBe(0);
    expect(lifecycle(m).filter((c) => c.startsWith("aws "))).toEqual([describe]);
    expect(r.stderr).toContain(`${INSTANCE} is Terminating:Wait in ${GROUP}: nothing to report`);
  });

  test("the group lookup is retried while the role's policy propagates", () => {
    const m = worker({ STUB_ASG_DESCRIBE_FAILS: "2" });
    m.write(path.join(m.state, "node-ready"), "True");
    expect(m.exec("bootstrap.sh").status).toBe(0);
    expect(lifecycle(m).filter((c) => c.startsWith("aws "))).toEqual([describe, describe, describe, complete("CONTINUE")]);
  });

  test("a report the group never takes: exit 16, naming the hook and the fallback", () => {
    const m = worker({ STUB_ASG_REPORT_FAILS: "always" });
    m.write(path.join(m.state, "node-ready"), "True");
    const r = m.exec("bootstrap.sh");
    expect(r.status).toBe(16);
    expect(r.stderr).toContain(`ERROR: could not complete lifecycle hook ${HOOK}; the group applies its default (ABANDON) at the hook's timeout`);
    expect(lifecycle(m).filter((c) => c.startsWith("aws autoscaling complete"))).toHaveLength(5);
  });

  test("without LAUNCH_HOOK a worker never calls Auto Scaling", () => {
    const m = machine({ role: "worker", env: { STUB_KUBEADM_JOIN_FAILS: "always" } });
    expect(m.exec("bootstrap.sh").status).toBe(5);
    expect(m.calls().filter((c) => c.startsWith("aws autoscaling") || c.includes("instance-id"))).toEqual([]);
  });

  test.each([
    [["now"], "usage: node-ready.sh ready|failed (got 'now')"],
    [[], "usage: node-ready.sh ready|failed (got '')"],
  ])("node-ready.sh %j: exit 2", (argv, message) => {
    const m = worker();
    const r = spawnSync("/bin/bash", [path.join(SCRIPTS, "node-ready.sh"), ...argv], { env: m.env, encoding: "utf8" });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(message);
    expect(m.calls()).toEqual([]);
  });

  test("node-ready.sh without LAUNCH_HOOK in node.env: exit 2", () => {
    const m = machine({ role: "worker" });
    const r = spawnSync("/bin/bash", [path.join(SCRIPTS, "node-ready.sh"), "failed"], { env: m.env, encoding: "utf8" });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("LAUNCH_HOOK is not set in");
  });
});

describe("a machine replacing a dead one (etcd-rejoin.sh, delete_stale_node)", () => {
  const THIRD = "ip-10-0-3-13.eu-west-1.compute.internal";
  const ips: Record<string, string> = { [NODE]: "10.0.1.11", [OTHER]: "10.0.2.12", [THIRD]: "10.0.3.13" };
  /** Three started members, this machine's the dead one (ID 0x11); the others' health as given. */
  const seedCluster = (m: Machine, others: "healthy" | "unhealthy") =>
    m.write(
      path.join(m.state, "etcd.json"),
      JSON.stringify({
        members: [NODE, OTHER, THIRD].map((n, i) => ({ ID: 0x11 + i, name: n, peerURLs: [`https://${ips[n]}:2380`], clientURLs: [`https://${ips[n]}:2379`] })),
        endpoints: { "https://10.0.2.12:2379": others, "https://10.0.3.13:2379": others },
      }),
    );
  const etcdCalls = (m: Machine) => m.calls().filter((c) => / member (remove|add) /.test(c)).map((c) => c.split(" ").slice(2).join(" "));

  test("stacked master: under the lock, deletes its predecessor's NotReady Node and dead etcd member, then joins", () => {
    const m = machine({ initNode: true });
    seedCluster(m, "healthy");
    m.write(path.join(m.state, "node-ready"), "Unknown");
    const r = m.exec("bootstrap.sh");
    expect(r.status).toBe(0);
    expect(r.stderr).toContain(`deleted node/${NODE} left by the machine this one replaces (Ready: Unknown)`);
    expect(flow(m)).toEqual([
      "curl readyz",
      "curl readyz",
      "kubeadm kubeconfig user",
      "kubectl create",
      "kubeadm token", // a join token of its own
      "kubectl get node",
      "kubectl delete node",
      "kubeadm certs",
      "kubeadm join",
      "kubectl get",
      "kubectl delete",
    ]);
    expect(m.calls()).toContain(`kubectl --kubeconfig ${m.run}/joiner.conf --request-timeout=30s -n kube-system delete node ${NODE} --ignore-not-found`);
    // The member goes before kubeadm join adds this machine anew (kubeadm adds it; nothing else does).
    expect(etcdCalls(m)).toEqual(["member remove 11"]);
    const calls = m.calls();
    expect(calls.findIndex((c) => c.includes(" member remove "))).toBeLessThan(calls.indexOf(joinCmd(m)));
    expect(m.lines("etcd.json").map((l) => JSON.parse(l).members.map((x: { name: string }) => x.name))).toEqual([[OTHER, THIRD]]);
  });

  test("a Ready Node of that name is left to kubeadm's preflight", () => {
    const m = machine();
    m.write(path.join(m.state, "node-ready"), "True");
    const r = m.exec("bootstrap.sh");
    expect(r.status).toBe(0);
    expect(r.stderr).toContain(`node/${NODE} exists and is Ready: leaving it`);
    expect(m.calls().filter((c) => c.includes(" delete node "))).toEqual([]);
  });

  test("stacked master whose etcd lost its quorum: stops with EXIT_QUORUM before kubeadm join and releases the lock", () => {
    const m = machine({ env: { KUBEADM_HA_INIT_PROBES: "2" } });
    seedCluster(m, "unhealthy");
    const r = m.exec("bootstrap.sh");
    expect(r.status).toBe(12);
    expect(r.stderr).toContain("ERROR: refusing to replace this etcd member: 0 of 2 others are healthy");
    expect(m.calls()).not.toContain(joinCmd(m));
    expect(etcdCalls(m)).toEqual([]);
    expect(m.calls().filter(deleteLease)).toHaveLength(1);
    expect(m.leaseExists()).toBe(false);
  });

  test("external member: removes and re-adds itself, and the kubelet gets the manifest with initial-cluster-state existing", () => {
    const m = machine({ role: "etcd" });
    seedCluster(m, "healthy");
    m.write(path.join(m.etc, "etcd.yaml"), "kind: Pod\nspec:\n  containers:\n    - command:\n        - etcd\n        - --initial-cluster-state=new\n");
    const r = m.exec("bootstrap.sh");
    expect(r.status).toBe(0);
    expect(etcdCalls(m)).toEqual(["member remove 11", `member add ${NODE} --peer-urls=https://10.0.1.11:2380`]);
    expect(fs.readFileSync(path.join(m.kube, "manifests/etcd.yaml"), "utf8")).toBe(
      "kind: Pod\nspec:\n  containers:\n    - command:\n        - etcd\n        - --initial-cluster-state=existing\n",
    );
    const calls = m.calls();
    expect(calls.findIndex((c) => c.includes(" member add "))).toBeLessThan(calls.indexOf("systemctl restart kubelet"));
  });
});

describe("fetch-secrets.sh", () => {
  test("(k) writes keys 0600 and certs 0644, renders the token only into KUBEADM_HA_RUN", () => {
    const m = machine({ initNode: true, env: { STUB_AWS_FAILS: "2" } });
    const r = m.exec("fetch-secrets.sh");
    expect(r.status).toBe(0);
    // The instance profile may not be there yet: retried.
    expect(m.calls().filter((c) => c.startsWith("aws "))).toEqual(
      Array(3).fill(
        "aws secretsmanager get-secret-value --region eu-west-1 --secret-id arn:aws:secretsmanager:eu-west-1:123456789012:secret:dev-control-plane --query SecretString --output text",
      ),
    );
    const modes = Object.fromEntries(
      Object.keys(CP_SECRET)
        .filter((k) => k !== "bootstrap-token")
        .map((k) => [k, m.mode(`etc/kubernetes/pki/${k}`).toString(8)]),
    );
    expect(modes).toEqual({
      "ca.crt": "644",
      "ca.key": "600",
      "front-proxy-ca.crt": "644",
      "front-proxy-ca.key": "600",
      "etcd/ca.crt": "644",
      "etcd/ca.key": "600",
      "sa.key": "600",
      "sa.pub": "644",
    });
    expect(fs.readFileSync(path.join(m.kube, "pki/etcd/ca.key"), "utf8")).toBe("ETCD KEY\n");
    expect(fs.existsSync(path.join(m.kube, "pki/bootstrap-token"))).toBe(false);
    for (const doc of ["init.yaml", "join.yaml"]) {
      const text = fs.readFileSync(path.join(m.run, doc), "utf8");
      expect(text).toContain(`token: ${TOKEN}`);
      expect(text).not.toContain(PLACEHOLDER);
      expect(m.mode(`run/kubeadm-ha/${doc}`).toString(8)).toBe("600");
    }
    expect(m.mode("run/kubeadm-ha").toString(8)).toBe("700");
    expect(m.filesContaining(m.kube, TOKEN)).toEqual([]);
    expect(m.filesContaining(m.etc, TOKEN)).toEqual([]);
    expect(r.stderr).not.toContain(TOKEN);
  });

  test.each([
    ["ABCDEF.0123456789abcdef", "upper case"],
    ["abcdef0123456789abcdef", "no dot"],
    ["abcdef.0123456789abcde", "secret part too short"],
    ["abcdef.0123456789abcdef\n", "trailing newline"],
  ])("(k) rejects the malformed token %j (%s)", (token) => {
    const m = machine({ secret: { ...CP_SECRET, "bootstrap-token": token } });
    const r = m.exec("fetch-secrets.sh");
    expect(r.status).toBe(6);
    expect(r.stderr).toContain("the secret's bootstrap-token is missing or malformed (want [a-z0-9]{6}.[a-z0-9]{16})");
    expect(r.stderr).toContain("ERROR: could not install secret");
    expect(fs.existsSync(path.join(m.run, "join.yaml"))).toBe(false);
    expect(fs.existsSync(path.join(m.kube, "pki"))).toBe(false);
  });

  test("installs encryption-config.yaml 0600 beside the keys, not 0644 like the certificates", () => {
    const config = "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n";
    const m = machine({ secret: { ...CP_SECRET, "encryption-config.yaml": config } });
    const r = m.exec("fetch-secrets.sh");
    expect(r.status).toBe(0);
    expect(fs.readFileSync(path.join(m.kube, "pki/encryption-config.yaml"), "utf8")).toBe(config);
    expect(["encryption-config.yaml", "sa.key", "sa.pub", "ca.crt"].map((f) => m.mode(`etc/kubernetes/pki/${f}`).toString(8))).toEqual(["600", "600", "644", "644"]);
    expect(r.stderr).not.toContain("EncryptionConfiguration");
  });

  test("rejects a control-plane secret without the CA key, and unsafe file names", () => {
    const { ["etcd/ca.key"]: _dropped, ...partial } = CP_SECRET;
    const m = machine({ secret: partial });
    const r = m.exec("fetch-secrets.sh");
    expect(r.status).toBe(6);
    expect(r.stderr).toContain("the control-plane secret lacks etcd/ca.key");

    const m2 = machine({ secret: { ...CP_SECRET, "../kubelet.conf": "x" } });
    const r2 = m2.exec("fetch-secrets.sh");
    expect(r2.status).toBe(6);
    expect(r2.stderr).toContain("refusing secret entry with an unsafe file name: '../kubelet.conf'");
    expect(fs.existsSync(path.join(m2.kube, "kubelet.conf"))).toBe(false);
  });

  test("fails clearly when a kubeadm document lacks the token placeholder", () => {
    const m = machine();
    m.write(path.join(m.etc, "join.yaml"), "kind: JoinConfiguration\n");
    const r = m.exec("fetch-secrets.sh");
    expect(r.status).toBe(6);
    expect(r.stderr).toContain(`${m.etc}/join.yaml does not contain the token placeholder ${PLACEHOLDER}`);
  });

  test("gives up with a clear error when the secret cannot be read", () => {
    const m = machine({ env: { STUB_AWS_FAILS: "always" } });
    const r = m.exec("fetch-secrets.sh");
    expect(r.status).toBe(6);
    expect(r.stderr).toContain("get_secret: failed 10 times, giving up");
    expect(r.stderr).toContain("ERROR: could not read secret arn:aws:secretsmanager:eu-west-1:123456789012:secret:dev-control-plane");
  });
});

describe("install.sh", () => {
  test("(l) prepares the host and pins the kube packages to KUBERNETES_VERSION", () => {
    const m = machine();
    const r = m.exec("install.sh");
    expect(r.status).toBe(0);
    const read = (rel: string) => fs.readFileSync(path.join(m.root, rel), "utf8");
    expect(read("etc/fstab")).toBe(
      "LABEL=cloudimg-rootfs / ext4 discard,errors=remount-ro 0 1\n#kubeadm-ha# /swap.img none swap sw 0 0\n",
    );
    expect(read("etc/modules-load.d/kubeadm-ha.conf")).toBe("overlay\nbr_netfilter\n");
    expect(read("etc/sysctl.d/99-kubeadm-ha.conf")).toBe(
      "net.ipv4.ip_forward=1\nnet.bridge.bridge-nf-call-iptables=1\nnet.bridge.bridge-nf-call-ip6tables=1\n",
    );
    const containerd = read("etc/containerd/config.toml");
    expect(containerd).toContain("    SystemdCgroup = true\n");
    expect(containerd).not.toContain("SystemdCgroup = false");
    const keyring = path.join(m.root, "etc/apt/keyrings/kubernetes-apt-keyring.gpg");
    expect(read("etc/apt/sources.list.d/kubernetes.list")).toBe(
      `deb [signed-by=${keyring}] https://pkgs.k8s.io/core:/stable:/v1.35/deb/ /\n`,
    );
    expect(read("etc/apt/keyrings/kubernetes-apt-keyring.gpg")).toBe(
      "DEARMORED FAKE PGP KEY for https://pkgs.k8s.io/core:/stable:/v1.35/deb/Release.key\n",
    );
    expect(m.mode("etc/apt/keyrings/kubernetes-apt-keyring.gpg").toString(8)).toBe("644");

    const calls = m.calls();
    const apt = calls.filter((c) => c.startsWith("apt-get "));
    for (const c of apt) expect(c).toContain("apt-get -o DPkg::Lock::Timeout=300 ");
    expect(apt.find((c) => c.includes(" kubeadm="))).toBe(
      "apt-get -o DPkg::Lock::Timeout=300 -q install -y --allow-change-held-packages kubelet=1.35.0-* kubeadm=1.35.0-* kubectl=1.35.0-*",
    );
    expect(calls).toContain("apt-mark hold kubelet kubeadm kubectl");
    // Order matters: the swap is off before the kubelet exists; the repo before its packages.
    const i = (c: string) => calls.indexOf(c);
    expect(i("swapoff -a")).toBe(0);
    expect(i("modprobe overlay")).toBeGreaterThan(0);
    expect(i("modprobe br_netfilter")).toBeGreaterThan(0);
    expect(i("sysctl --system")).toBeGreaterThan(i("modprobe br_netfilter"));
    expect(i("containerd config default")).toBeGreaterThan(apt.findIndex((c) => c.includes(" containerd ")));
    expect(i("systemctl restart containerd")).toBeGreaterThan(i("containerd config default"));
    expect(calls.findIndex((c) => c.endsWith("/Release.key"))).toBeLessThan(calls.findIndex((c) => c.includes(" kubeadm=")));
    expect(i("apt-mark hold kubelet kubeadm kubectl")).toBeGreaterThan(calls.findIndex((c) => c.includes(" kubeadm=")));
    expect(calls).toContain("systemctl enable kubelet");
    // aws is on PATH (the stub): no snap.
    expect(calls.filter((c) => c.startsWith("snap "))).toEqual([]);
  });

  test("(l) is idempotent: a second run leaves the same files", () => {
    const m = machine();
    expect(m.exec("install.sh").status).toBe(0);
    const files = ["etc/fstab", "etc/modules-load.d/kubeadm-ha.conf", "etc/sysctl.d/99-kubeadm-ha.conf", "etc/containerd/config.toml", "etc/apt/sources.list.d/kubernetes.list"];
    const before = files.map((f) => fs.readFileSync(path.join(m.root, f), "utf8"));
    // After a reboot /run is empty, so the whole preparation runs again.
    fs.rmSync(path.join(m.run, "install.done"));
    expect(m.exec("install.sh").status).toBe(0);
    expect(files.map((f) => fs.readFileSync(path.join(m.root, f), "utf8"))).toEqual(before);
  });

  test("(l) runs once a boot: boot.sh's run makes bootstrap.sh's a no-op", () => {
    const m = machine();
    expect(m.exec("install.sh").status).toBe(0);
    const n = m.calls().length;
    const r = m.exec("install.sh");
    expect(r.status).toBe(0);
    expect(r.stderr).toContain("host already prepared on this boot");
    expect(m.calls()).toHaveLength(n);
  });

  test("(l) adds SystemdCgroup when containerd's default config leaves it out (containerd 2.0/2.1)", () => {
    const m = machine({ env: { STUB_CONTAINERD_MAJOR: "2" } });
    expect(m.exec("install.sh").status).toBe(0);
    expect(fs.readFileSync(m.env.CONTAINERD_CONFIG, "utf8")).toBe(
      "version = 3\n\n[plugins]\n  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]\n            SystemdCgroup = true\n    BinaryName = ''\n    ShimCgroup = ''\n\n  [plugins.'io.containerd.grpc.v1.cri']\n    disable_tcp_service = true\n",
    );
  });

  test("(l) installs the AWS CLI snap only when aws is missing", () => {
    const m = machine();
    fs.rmSync(path.join(m.bin, "aws"));
    const r = m.exec("install.sh");
    expect(r.status).toBe(0);
    expect(m.calls().filter((c) => c.startsWith("snap "))).toEqual(["snap wait system seed.loaded", "snap install aws-cli --classic"]);
  });
});

describe("etcd backups", () => {
  const withBucket = (m: Machine) => {
    fs.appendFileSync(path.join(m.etc, "node.env"), "BACKUP_BUCKET='dev-etcd-backup-x'\nBACKUP_PREFIX='etcd-snapshots'\n");
    return m;
  };
  const ENABLE = "systemctl enable --now kubeadm-ha-etcd-backup.timer";

  test.each([
    ["an external etcd member, once its cluster is healthy", { role: "etcd" as const }, (c: string) => c.endsWith("/health")],
    ["a joining stacked master, once kubeadm join succeeded", {}, (c: string) => c.startsWith("kubeadm join ")],
    ["the first master, once kubeadm init succeeded", { initNode: true, env: { KUBEADM_HA_INIT_PROBES: "1" } }, (c: string) => c.startsWith("kubeadm init ")],
  ])("%s: enables the backup timer last", (_, opts, milestone) => {
    const m = withBucket(machine(opts));
    const r = m.exec("bootstrap.sh");
    expect(r.status).toBe(0);
    const calls = m.calls();
    expect(calls.filter((c) => c === ENABLE)).toHaveLength(1);
    expect(calls.indexOf(ENABLE)).toBeGreaterThan(calls.map(milestone).lastIndexOf(true));
  });

  test("without a bucket in node.env no timer is enabled", () => {
    const m = machine({ role: "etcd" });
    expect(m.exec("bootstrap.sh").status).toBe(0);
    expect(m.calls().filter((c) => c.includes("etcd-backup"))).toEqual([]);
  });

  test("a failed join enables nothing", () => {
    const m = withBucket(machine({ env: { STUB_KUBEADM_JOIN_FAILS: "always", KUBEADM_HA_JOIN_ATTEMPTS: "1" } }));
    expect(m.exec("bootstrap.sh").status).toBe(5);
    expect(m.calls()).not.toContain(ENABLE);
  });
});

describe("external etcd", () => {
  const health = (m: Machine) => m.calls().filter((c) => c.startsWith("curl ") && c.endsWith("/health"));
  const pkiFiles = (m: Machine) =>
    (fs.readdirSync(path.join(m.kube, "pki"), { recursive: true }) as string[]).filter((f) => fs.statSync(path.join(m.kube, "pki", f)).isFile()).sort();

  test("etcd member: installs only its own certificates, hands the kubelet its static pod, waits for a healthy cluster", () => {
    const m = machine({ role: "etcd", env: { STUB_CURL_ETCD_HEALTH_FAILS: "2" } });
    const r = m.exec("bootstrap.sh");
    expect(r.stderr).toContain("bootstrap complete: etcd-member");
    expect(r.status).toBe(0);
    // No kubeadm, no API, no token: the member never talks to Kubernetes.
    expect(m.calls().filter((c) => /^(kubeadm|kubectl) /.test(c) || c.endsWith("/readyz"))).toEqual([]);
    expect(r.stderr).toContain("role=etcd init_node=false kubernetes=1.35.0 api=none");
    // Its own pairs and the CA pair it renews them with (cert-renew.sh).
    expect(pkiFiles(m)).toEqual(["etcd/ca.crt", "etcd/ca.key", "etcd/peer.crt", "etcd/peer.key", "etcd/server.crt", "etcd/server.key"]);
    for (const f of ["server.crt", "server.key", "peer.crt", "peer.key"])
      expect(fs.readFileSync(path.join(m.kube, "pki/etcd", f), "utf8")).toBe(`${NODE} ${f}\n`);
    expect(fs.readFileSync(path.join(m.kube, "pki/etcd/ca.crt"), "utf8")).toBe("ETCD CA CERT\n");
    expect(["server.key", "peer.key", "ca.key", "server.crt", "ca.crt"].map((f) => m.mode(`etc/kubernetes/pki/etcd/${f}`).toString(8))).toEqual(["600", "600", "600", "644", "644"]);
    // Another member's keys never land on this machine (its name does, in ETCD_MEMBERS).
    expect(m.filesContaining(m.root, `${OTHER} `).filter((f) => !f.startsWith(m.state))).toEqual([]);
    expect(r.stderr).toContain("ignoring 4 secret entries that are not this member's");
    expect(fs.readFileSync(path.join(m.kube, "manifests/etcd.yaml"), "utf8")).toBe("kind: Pod\nmetadata:\n  name: etcd\n");
    expect(m.mode("etc/kubernetes/manifests/etcd.yaml").toString(8)).toBe("600");
    expect(fs.readdirSync(path.join(m.kube, "manifests"))).toEqual(["etcd.yaml"]);
    expect(m.mode("var/lib/etcd").toString(8)).toBe("700");
    expect(fs.readFileSync(path.join(m.root, "etc/systemd/system/kubelet.service.d/20-etcd-service-manager.conf"), "utf8")).toBe(
      `[Service]\nExecStart=\nExecStart=/usr/bin/kubelet --config=${m.etc}/kubelet-etcd.yaml\nRestart=always\n`,
    );
    const calls = m.calls();
    const i = (c: string) => calls.indexOf(c);
    expect(i("systemctl daemon-reload")).toBeGreaterThan(i("systemctl enable kubelet"));
    expect(i("systemctl restart kubelet")).toBeGreaterThan(i("systemctl daemon-reload"));
    // Polled on the loopback metrics port until the cluster has a leader.
    expect(health(m)).toEqual(Array(3).fill("curl --silent --show-error --fail --max-time 5 --output /dev/null http://127.0.0.1:2381/health"));
    expect(calls.findIndex((c) => c.endsWith("/health"))).toBeGreaterThan(i("systemctl restart kubelet"));
    expect(fs.existsSync(path.join(m.run, "join.yaml"))).toBe(false);
  });

  test("etcd member already set up (its manifest present): exits 0 and calls nothing", () => {
    const m = machine({ role: "etcd" });
    m.write(path.join(m.kube, "manifests/etcd.yaml"), "kind: Pod\n");
    const r = m.exec("bootstrap.sh");
    expect(r.status).toBe(0);
    expect(r.stderr).toContain("etcd.yaml exists: this etcd member is already set up, nothing to do");
    expect(m.calls()).toEqual([]);
  });

  test("etcd member whose cluster never gets healthy gives up with a clear error", () => {
    const m = machine({ role: "etcd", env: { STUB_CURL_ETCD_HEALTH_FAILS: "always", KUBEADM_HA_WAIT_SECONDS: "1", KUBEADM_HA_POLL_SECONDS: "0.2" } });
    const r = m.exec("bootstrap.sh");
    expect(r.status).toBe(7);
    expect(r.stderr).toContain("ERROR: timed out after 1s waiting for etcd at http://127.0.0.1:2381/health (last exit 7: curl: (7) Failed to connect");
    expect(r.stderr).not.toContain("bootstrap complete");
  });

  test.each([
    [`members/${NODE}/peer.key`, "the etcd secret lacks members/" + NODE + "/peer.key"],
    ["etcd/ca.crt", "the etcd secret lacks etcd/ca.crt"],
  ])("an etcd secret without %s is refused and nothing is written", (drop, message) => {
    const { [drop]: _gone, ...secret } = ETCD_SECRET;
    const m = machine({ role: "etcd", secret });
    const r = m.exec("fetch-secrets.sh");
    expect(r.status).toBe(6);
    expect(r.stderr).toContain(message);
    expect(fs.existsSync(path.join(m.kube, "pki"))).toBe(false);
  });

  test("an etcd member refuses a secret without the etcd CA key it renews with", () => {
    const { "etcd/ca.key": _key, ...withoutKey } = ETCD_SECRET;
    const m = machine({ role: "etcd", secret: withoutKey });
    const r = m.exec("fetch-secrets.sh");
    expect(r.status).toBe(6);
    expect(r.stderr).toContain("the etcd secret lacks etcd/ca.key");
    expect(fs.existsSync(path.join(m.kube, "pki"))).toBe(false);
  });

  test("first master with external etcd: the client pair and the etcd CA pair that renews it; kubeadm init only after every member is healthy", () => {
    const m = machine({
      initNode: true,
      etcdTopology: "external",
      env: { STUB_CURL_READYZ_FAILS: "always", STUB_CURL_ETCD_HEALTH_FAILS: "2" },
    });
    const r = m.exec("bootstrap.sh");
    expect(r.status).toBe(0);
    expect(r.stderr).toContain("bootstrap complete: init");
    expect(pkiFiles(m)).toEqual(["apiserver-etcd-client.crt", "apiserver-etcd-client.key", "ca.crt", "ca.key", "etcd/ca.crt", "etcd/ca.key", "front-proxy-ca.crt", "front-proxy-ca.key", "sa.key", "sa.pub"]);
    expect(m.mode("etc/kubernetes/pki/etcd/ca.key").toString(8)).toBe("600");
    expect(m.mode("etc/kubernetes/pki/apiserver-etcd-client.key").toString(8)).toBe("600");
    const pki = `${m.kube}/pki`;
    const probe = (url: string) =>
      `curl --silent --show-error --fail --max-time 10 --output /dev/null --cacert ${pki}/etcd/ca.crt --cert ${pki}/apiserver-etcd-client.crt --key ${pki}/apiserver-etcd-client.key ${url}/health`;
    // The first member is down twice, then every member answers once.
    expect(health(m)).toEqual([ETCD_ENDPOINTS[0], ETCD_ENDPOINTS[0], ...ETCD_ENDPOINTS].map(probe));
    expect(flow(m)).toEqual(["curl readyz", "curl readyz", "curl readyz", "kubeadm init"]);
    expect(m.calls().findIndex((c) => c.startsWith("kubeadm init"))).toBeGreaterThan(m.calls().lastIndexOf(probe(ETCD_ENDPOINTS[2])));
  });

  test("a master with external etcd that never becomes healthy stops before kubeadm init", () => {
    const m = machine({
      initNode: true,
      etcdTopology: "external",
      env: { STUB_CURL_READYZ_FAILS: "always", STUB_CURL_ETCD_HEALTH_FAILS: "always", KUBEADM_HA_WAIT_SECONDS: "1", KUBEADM_HA_POLL_SECONDS: "0.2" },
    });
    const r = m.exec("bootstrap.sh");
    expect(r.status).toBe(7);
    expect(r.stderr).toContain(`ERROR: timed out after 1s waiting for etcd at ${ETCD_ENDPOINTS[0]} (last exit 7: curl: (7) Failed to connect`);
    expect(m.calls().filter((c) => c.startsWith("kubeadm "))).toEqual([]);
  });

  test("a joining master with external etcd joins as usual: the API answering means etcd is up", () => {
    const m = machine({ etcdTopology: "external" });
    const r = m.exec("bootstrap.sh");
    expect(r.status).toBe(0);
    expect(health(m)).toEqual([]);
    expect(flow(m)).toContain("kubeadm join");
  });

  test.each([
    ["stacked", Object.fromEntries(Object.entries(CP_SECRET).filter(([k]) => k !== "etcd/ca.key")), "the control-plane secret lacks etcd/ca.key"],
    ["external", CP_SECRET, "the control-plane secret lacks apiserver-etcd-client.crt, apiserver-etcd-client.key"],
  ] as const)("with %s etcd, a master refuses a secret without what the topology needs", (topology, secret, message) => {
    const m = machine({ etcdTopology: topology, secret });
    const r = m.exec("fetch-secrets.sh");
    expect(r.status).toBe(6);
    expect(r.stderr).toContain(message);
  });

  test.each([
    ["ETCD_TOPOLOGY='stacked'", "", "ETCD_TOPOLOGY must be stacked or external on a control-plane node, got ''"],
    ["ETCD_TOPOLOGY='stacked'", "ETCD_TOPOLOGY='external'", "ETCD_ENDPOINTS is not set in"],
  ])("a master's node.env with %s replaced by %j is a config error", (from, to, message) => {
    const m = machine();
    m.write(path.join(m.etc, "node.env"), fs.readFileSync(path.join(m.etc, "node.env"), "utf8").replace(from, to));
    const r = m.exec("bootstrap.sh");
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(message);
    expect(m.calls()).toEqual([]);
  });

  test("only etcd members may lack API_ENDPOINT", () => {
    const m = machine({ role: "worker" });
    m.write(path.join(m.etc, "node.env"), fs.readFileSync(path.join(m.etc, "node.env"), "utf8").replace(`API_ENDPOINT='${API}'\n`, ""));
    const r = m.exec("bootstrap.sh");
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("API_ENDPOINT is not set in");
  });
});

describe("shellcheck", () => {
  test("every script and stub is shellcheck-clean", () => {
    const probe = spawnSync("shellcheck", ["--version"], { encoding: "utf8" });
    if (probe.error)
      throw new Error("shellcheck is not installed: install it (apt-get install shellcheck, brew install shellcheck); CI installs it");
    for (const dir of [SOURCES, SCRIPTS, STUBS]) {
      const files = fs.readdirSync(dir).filter((f) => f.endsWith(".sh")).map((f) => path.join(dir, f));
      expect(files.length).toBeGreaterThan(0);
      const r = spawnSync("shellcheck", ["--external-sources", "--source-path", dir, ...files], { encoding: "utf8" });
      expect(r.stdout + r.stderr).toBe("");
      expect(r.status).toBe(0);
    }
  });
});
