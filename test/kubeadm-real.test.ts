/**
 * The real kubeadm (built by test/k8s/build.sh) on every document the program renders, for the dev
 * (stacked etcd) and prod (external etcd) stacks:
 * - every node's kubeadm documents, with the placeholders replaced the way the node replaces them
 *   (fetch-secrets.sh: the bootstrap token; an auto scaling group machine's name and address), pass
 *   `kubeadm config validate`; every KubeletConfiguration passes the kubelet's own validation;
 * - `kubeadm init phase` certs, kubeconfig, etcd local (stacked) and control-plane run on master 0's
 *   init document in a scratch root (`--rootfs`, the files placed as cloud-init writes them), and the
 *   assertions read the static pod manifests kubeadm itself wrote: `--etcd-servers` per topology, the
 *   `--leader-elect*` values from config on both controller manager and scheduler,
 *   `--cloud-provider=external`, the encryption-at-rest flags, the etcd raft timings.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parse, parseAllDocuments } from "yaml";
import { ClusterConfig, durationMs } from "../config";
import { ENCRYPTION_CONFIG_PATH } from "../cloud-init/encryption";
import { TOKEN_PLACEHOLDER } from "../cloud-init/kubeadm";
import { issueCert, makeCa, renderStackTo } from "./etcdHarness";
import { chrootable, k8sBinary } from "./k8s/binaries";
import { localStackConfig } from "./k8s/localCluster";

const ROOT = path.resolve(__dirname, "..");
const TOKEN = "abcdef.0123456789abcdef";
// What IMDS would give a pool machine in the first private subnet of either stack.
const POOL_NODE = { name: "ip-10-0-7-42.eu-west-1.compute.internal", ip: "10.0.7.42" };

/** fetch-secrets.sh's substitution: the token, and an auto scaling group machine's name and address. */
function asOnNode(text: string): string {
  const out = text.split(TOKEN_PLACEHOLDER).join(TOKEN).split("__NODE_NAME__").join(POOL_NODE.name).split("__NODE_IP__").join(POOL_NODE.ip);
  const left = /__[A-Z_]+__/.exec(out);
  if (left) throw new Error(`a placeholder the node does not replace is left: ${left[0]}`);
  return out;
}

function run(bin: string, args: string[]): { status: number | null; out: string } {
  const r = spawnSync(bin, args, { encoding: "utf8", timeout: 120000 });
  return { status: r.status, out: `${r.stdout ?? ""}${r.stderr ?? ""}` };
}

/** The value of the last `--name=` flag (the one a Go flag parser keeps), or undefined. */
function flag(command: string[], name: string): string | undefined {
  const prefix = `--${name}=`;
  return command.filter((a) => a.startsWith(prefix)).pop()?.slice(prefix.length);
}

const manifestCommand = (file: string): string[] => parse(fs.readFileSync(file, "utf8")).spec.containers[0].command;

describe.each(["dev", "prod"])("the real kubeadm on the %s stack's documents", (stack) => {
  let work: string;
  let render: string;
  let config: ClusterConfig;
  const kubeadmDir = () => path.join(render, "kubeadm");
  const machines = () => fs.readdirSync(kubeadmDir()).sort();

  beforeAll(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), `kubeadm-real-${stack}-`));
    render = path.join(work, "render");
    renderStackTo(stack, render);
    config = localStackConfig(ROOT, stack);
  }, 120000);
  afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

  it("kubeadm config validate accepts every node's init and join documents", () => {
    const checked: string[] = [];
    for (const m of machines())
      for (const doc of ["init.yaml", "join.yaml"]) {
        const src = path.join(kubeadmDir(), m, doc);
        if (!fs.existsSync(src)) continue;
        const file = path.join(work, `${m}-${doc}`);
        fs.writeFileSync(file, asOnNode(fs.readFileSync(src, "utf8")));
        const r = run(k8sBinary("kubeadm"), ["config", "validate", "--config", file]);
        expect({ doc: `${m}/${doc}`, status: r.status, out: r.out.trim() }).toEqual({ doc: `${m}/${doc}`, status: 0, out: "ok" });
        checked.push(`${m}/${doc}`);
      }
    const masters = config.controlPlane.count;
    const pools = config.workerPools.length;
    // Every master has a join document, master 0 an init document too; every pool a join document.
    expect(checked).toHaveLength(masters + 1 + pools);
    expect(checked.filter((c) => c.endsWith("init.yaml"))).toEqual([`${stack}-control-plane-master-0/init.yaml`]);
  });

  it("the kubelet's own validation accepts every KubeletConfiguration (kubeadm passes them through unchecked)", () => {
    const files = machines().flatMap((m) => ["init.yaml", "kubelet-etcd.yaml"].map((f) => path.join(kubeadmDir(), m, f)).filter((f) => fs.existsSync(f)));
    expect(files).toHaveLength(1 + (config.etcd.topology === "external" ? config.etcd.nodeCount : 0));
    const r = run(k8sBinary("kubelet-config-validate"), files);
    expect(r).toEqual({ status: 0, out: files.map((f) => `${f}: 1 KubeletConfiguration document(s) valid\n`).join("") });
  });

  describe("kubeadm init phase on master 0", () => {
    let rootfs: string;
    const manifests = () => path.join(rootfs, "etc/kubernetes/manifests");
    let masterIps: string[];

    beforeAll(async () => {
      rootfs = path.join(work, "master-0");
      // The files cloud-init writes, at their paths.
      const userData = parse(fs.readFileSync(path.join(render, "user-data", `${stack}-control-plane-master-0.yaml`), "utf8"), { version: "1.1" });
      for (const f of userData.write_files as Array<{ path: string; content: string }>) {
        const p = path.join(rootfs, f.path);
        fs.mkdirSync(path.dirname(p), { recursive: true });
        fs.writeFileSync(p, f.content);
      }
      // fetch-secrets.sh: the token-bearing copy in /run; with external etcd, the etcd CA certificate
      // and the API server's client pair (kubeadm checks they exist).
      fs.mkdirSync(path.join(rootfs, "run/kubeadm-ha"), { recursive: true });
      fs.writeFileSync(path.join(rootfs, "run/kubeadm-ha/init.yaml"), asOnNode(fs.readFileSync(path.join(rootfs, "etc/kubeadm-ha/init.yaml"), "utf8")));
      if (config.etcd.topology === "external") {
        const pki = path.join(rootfs, "etc/kubernetes/pki");
        makeCa(path.join(pki, "etcd"), "etcd-ca");
        issueCert(pki, "apiserver-etcd-client", { commonName: "kube-apiserver-etcd-client", dnsNames: [], ipAddresses: [], allowedUses: ["digital_signature", "key_encipherment", "client_auth"] }, path.join(pki, "etcd"));
      }
      const phases = [["certs", "all"], ["kubeconfig", "all"], ...(config.etcd.topology === "stacked" ? [["etcd", "local"]] : []), ["control-plane", "all"]];
      for (const phase of phases) {
        const r = run(...chrootable(k8sBinary("kubeadm"), ["init", "phase", ...phase, "--config", "/run/kubeadm-ha/init.yaml", "--rootfs", rootfs]));
        if (r.status !== 0) throw new Error(`kubeadm init phase ${phase.join(" ")} failed:\n${r.out}`);
      }
      const docs = (m: string, f: string) => parseAllDocuments(fs.readFileSync(path.join(kubeadmDir(), m, f), "utf8"), { version: "1.1" }).map((d) => d.toJS());
      masterIps = machines()
        .filter((m) => m.includes("-control-plane-master-"))
        .map((m) => docs(m, "join.yaml")[0].controlPlane.localAPIEndpoint.advertiseAddress);
    }, 120000);

    it("writes the static pods of the topology, and the kubeconfigs point at the load balancer", () => {
      expect(fs.readdirSync(manifests()).sort()).toEqual(
        [...(config.etcd.topology === "stacked" ? ["etcd.yaml"] : []), "kube-apiserver.yaml", "kube-controller-manager.yaml", "kube-scheduler.yaml"],
      );
      const admin = parse(fs.readFileSync(path.join(rootfs, "etc/kubernetes/admin.conf"), "utf8"));
      const init = parseAllDocuments(fs.readFileSync(path.join(kubeadmDir(), `${stack}-control-plane-master-0`, "init.yaml"), "utf8")).map((d) => d.toJS());
      expect(admin.clusters[0].cluster.server).toBe(`https://${init.find((d) => d.kind === "ClusterConfiguration").controlPlaneEndpoint}`);
    });

    it("kube-apiserver's --etcd-servers follows the etcd topology", () => {
      const api = manifestCommand(path.join(manifests(), "kube-apiserver.yaml"));
      expect(flag(api, "advertise-address")).toBe(masterIps[0]);
      if (config.etcd.topology === "stacked") {
        // kubeadm writes its local member; the rendered patch appends this master's member first, then the others'.
        expect(api.filter((a) => a.startsWith("--etcd-servers="))).toEqual([
          "--etcd-servers=https://127.0.0.1:2379",
          `--etcd-servers=${["https://127.0.0.1:2379", ...masterIps.slice(1).map((ip) => `https://${ip}:2379`)].join(",")}`,
        ]);
        expect(flag(api, "etcd-cafile")).toBe("/etc/kubernetes/pki/etcd/ca.crt");
        expect(flag(api, "etcd-certfile")).toBe("/etc/kubernetes/pki/apiserver-etcd-client.crt");
      } else {
        const members = machines()
          .filter((m) => m.includes("-etcd-member-"))
          .map((m) => parse(fs.readFileSync(path.join(kubeadmDir(), m, "etcd.yaml"), "utf8")).metadata.annotations["kubeadm.kubernetes.io/etcd.advertise-client-urls"]);
        expect(members).toHaveLength(config.etcd.nodeCount);
        expect(api.filter((a) => a.startsWith("--etcd-servers="))).toEqual([`--etcd-servers=${members.join(",")}`]);
        expect(flag(api, "etcd-cafile")).toBe("/etc/kubernetes/pki/etcd/ca.crt");
        expect(flag(api, "etcd-certfile")).toBe("/etc/kubernetes/pki/apiserver-etcd-client.crt");
        expect(flag(api, "etcd-keyfile")).toBe("/etc/kubernetes/pki/apiserver-etcd-client.key");
      }
    });

    it("kube-apiserver reads the encryption configuration exactly when encryptionAtRest is on", () => {
      const api = manifestCommand(path.join(manifests(), "kube-apiserver.yaml"));
      expect(config.encryptionAtRest).toBe(true);
      expect(flag(api, "encryption-provider-config")).toBe(ENCRYPTION_CONFIG_PATH);
      expect(flag(api, "encryption-provider-config-automatic-reload")).toBe("true");
      // kubeadm mounts the pki directory that holds the file.
      const pod = parse(fs.readFileSync(path.join(manifests(), "kube-apiserver.yaml"), "utf8"));
      expect(pod.spec.volumes).toContainEqual({ name: "k8s-certs", hostPath: { path: "/etc/kubernetes/pki", type: "DirectoryOrCreate" } });
    });

    it.each(["kube-controller-manager", "kube-scheduler"])("%s runs the leader election of the config", (component) => {
      const cmd = manifestCommand(path.join(manifests(), `${component}.yaml`));
      const le = config.leaderElection;
      expect(flag(cmd, "leader-elect")).toBe("true");
      // The same durations, whatever their spelling (1m and 60s are one value to the Go flag parser).
      expect(["lease-duration", "renew-deadline", "retry-period"].map((f) => durationMs(flag(cmd, `leader-elect-${f}`) ?? ""))).toEqual(
        [le.leaseDuration, le.renewDeadline, le.retryPeriod].map(durationMs),
      );
      expect(cmd.filter((a) => a.startsWith("--leader-elect"))).toHaveLength(4);
    });

    it("kube-controller-manager leaves node lifecycle to the external cloud controller", () => {
      const kcm = manifestCommand(path.join(manifests(), "kube-controller-manager.yaml"));
      expect(config.addons.awsCloudControllerManager).toBe(true);
      expect(flag(kcm, "cloud-provider")).toBe("external");
      expect(flag(kcm, "cluster-cidr")).toBe(config.network.podCidr);
      expect(flag(kcm, "service-cluster-ip-range")).toBe(config.network.serviceCidr);
    });

    it("stacked etcd runs the raft timings of the config; external etcd runs no local member", () => {
      const file = path.join(manifests(), "etcd.yaml");
      if (config.etcd.topology === "external") {
        expect(fs.existsSync(file)).toBe(false);
        return;
      }
      const cmd = manifestCommand(file);
      expect(flag(cmd, "heartbeat-interval")).toBe(String(config.etcd.heartbeatIntervalMs));
      expect(flag(cmd, "election-timeout")).toBe(String(config.etcd.electionTimeoutMs));
      expect(flag(cmd, "initial-cluster")).toMatch(new RegExp(`=https://${masterIps[0].replace(/\./g, "\\.")}:2380$`));
      expect(flag(cmd, "listen-client-urls")).toBe(`https://127.0.0.1:2379,https://${masterIps[0]}:2379`);
    });
  });
});

describe("the validators can fail", () => {
  it("kubeadm refuses an unknown field and a bad subnet", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kubeadm-bad-"));
    try {
      const bad = (name: string, text: string) => {
        fs.writeFileSync(path.join(dir, name), text);
        return run(k8sBinary("kubeadm"), ["config", "validate", "--config", path.join(dir, name)]);
      };
      const init = (extra: string) => `apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n${extra}\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnetworking:\n  podSubnet: 10.244.0.0/16\n`;
      expect(bad("unknown.yaml", init("localAPIEndpoint:\n  bindPort: 6443\n  bogus: 1"))).toMatchObject({ status: 1, out: expect.stringContaining('unknown field "localAPIEndpoint.bogus"') });
      expect(bad("subnet.yaml", init("").replace("10.244.0.0/16", "10.244.0.0/33"))).toMatchObject({ status: 1, out: expect.stringContaining("couldn't parse subnet") });
      fs.writeFileSync(path.join(dir, "kubelet.yaml"), "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\nfoo: 1\n");
      expect(run(k8sBinary("kubelet-config-validate"), [path.join(dir, "kubelet.yaml")])).toMatchObject({ status: 1, out: expect.stringContaining('unknown field "foo"') });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
