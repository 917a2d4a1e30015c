import { parseAllDocuments } from "yaml";
import {
  KUBEADM_API,
  TOKEN_PLACEHOLDER,
  apiServerEtcdServersPatch,
  clusterConfiguration,
  initConfiguration,
  joinConfiguration,
  kubeletConfiguration,
  leaderElectionArgs,
  stackedEtcdServers,
  toYaml,
} from "../cloud-init/kubeadm";

const LE = { leaseDuration: "15s", renewDeadline: "10s", retryPeriod: "2s" };
const CLUSTER = {
  clusterName: "dev",
  kubernetesVersion: "1.35.0",
  controlPlaneEndpoint: "dev-api.elb.eu-west-1.amazonaws.com:6443",
  podCidr: "10.244.0.0/16",
  serviceCidr: "10.96.0.0/12",
  leaderElection: LE,
};
const NODE = { name: "ip-10-0-0-10.eu-west-1.compute.internal", ip: "10.0.0.10" };

describe("leader election flags", () => {
  it.each([
    [LE, ["true", "15s", "10s", "2s"]],
    [{ leaseDuration: "1m", renewDeadline: "45s", retryPeriod: "5s" }, ["true", "60s", "45s", "5s"]],
    [{ leaseDuration: "1m30s", renewDeadline: "1m", retryPeriod: "1500ms" }, ["true", "90s", "60s", "1500ms"]],
  ])("%j renders as v1beta4 name/value pairs", (le, values) => {
    expect(leaderElectionArgs(le)).toEqual([
      { name: "leader-elect", value: values[0] },
      { name: "leader-elect-lease-duration", value: values[1] },
      { name: "leader-elect-renew-deadline", value: values[2] },
      { name: "leader-elect-retry-period", value: values[3] },
    ]);
  });

  it("reaches both kube-controller-manager and kube-scheduler", () => {
    const le = { leaseDuration: "40s", renewDeadline: "30s", retryPeriod: "4s" };
    const c = clusterConfiguration({ ...CLUSTER, leaderElection: le });
    const flags = (list: Array<{ name: string; value: string }>) => Object.fromEntries(list.map((a) => [a.name, a.value]));
    for (const component of [c.controllerManager.extraArgs, c.scheduler.extraArgs]) {
      expect(flags(component)).toMatchObject({
        "leader-elect": "true",
        "leader-elect-lease-duration": "40s",
        "leader-elect-renew-deadline": "30s",
        "leader-elect-retry-period": "4s",
      });
    }
  });
});

describe("stacked etcd servers", () => {
  it.each([
    ["10.0.0.10", ["10.0.0.10", "10.0.32.10", "10.0.64.10"], ["https://127.0.0.1:2379", "https://10.0.32.10:2379", "https://10.0.64.10:2379"]],
    ["10.0.32.10", ["10.0.0.10", "10.0.32.10", "10.0.64.10"], ["https://127.0.0.1:2379", "https://10.0.0.10:2379", "https://10.0.64.10:2379"]],
    ["10.0.64.11", ["10.0.0.10", "10.0.32.10", "10.0.64.10", "10.0.0.11", "10.0.64.11"], ["https://127.0.0.1:2379", "https://10.0.0.10:2379", "https://10.0.32.10:2379", "https://10.0.64.10:2379", "https://10.0.0.11:2379"]],
  ])("master %s lists its local member first, then the others", (self, all, expected) => {
    expect(stackedEtcdServers(self, all)).toEqual(expected);
  });

  it("is appended to the API server command by a JSON patch, which the flag parser lets win", () => {
    expect(apiServerEtcdServersPatch(["https://127.0.0.1:2379", "https://10.0.0.11:2379"])).toEqual([
      { op: "add", path: "/spec/containers/0/command/-", value: "--etcd-servers=https://127.0.0.1:2379,https://10.0.0.11:2379" },
    ]);
  });
});

describe("ClusterConfiguration", () => {
  it("renders the stacked topology", () => {
    const c = clusterConfiguration(CLUSTER);
    expect(c).toMatchObject({
      apiVersion: KUBEADM_API,
      kind: "ClusterConfiguration",
      kubernetesVersion: "v1.35.0",
      controlPlaneEndpoint: "dev-api.elb.eu-west-1.amazonaws.com:6443",
      networking: { podSubnet: "10.244.0.0/16", serviceSubnet: "10.96.0.0/12" },
      apiServer: { certSANs: ["dev-api.elb.eu-west-1.amazonaws.com"] },
      etcd: { local: { dataDir: "/var/lib/etcd" } },
    });
    expect(c.controllerManager.extraArgs).toContainEqual({ name: "cloud-provider", value: "external" });
  });

  it("renders the external topology with every endpoint and no local etcd", () => {
    const external = {
      endpoints: ["https://10.0.0.20:2379", "https://10.0.32.20:2379", "https://10.0.64.20:2379"],
      caFile: "/etc/kubernetes/pki/etcd/ca.crt",
      certFile: "/etc/kubernetes/pki/apiserver-etcd-client.crt",
      keyFile: "/etc/kubernetes/pki/apiserver-etcd-client.key",
    };
    const c = clusterConfiguration({ ...CLUSTER, externalEtcd: external });
    expect(c.etcd).toEqual({ external });
  });

  it("uses only v1beta4 list-shaped extraArgs", () => {
    const c = clusterConfiguration(CLUSTER);
    for (const list of [c.controllerManager.extraArgs, c.scheduler.extraArgs]) {
      expect(Array.isArray(list)).toBe(true);
      for (const a of list) expect(Object.keys(a).sort()).toEqual(["name", "value"]);
    }
  });
});

describe("Init and Join configurations", () => {
  it("init registers the node under its EC2 name with the external cloud provider", () => {
    const i = initConfiguration(NODE);
    expect(i.localAPIEndpoint).toEqual({ advertiseAddress: "10.0.0.10", bindPort: 6443 });
    expect(i.nodeRegistration.name).toBe(NODE.name);
    expect(i.nodeRegistration.kubeletExtraArgs).toEqual([
      { name: "cloud-provider", value: "external" },
      { name: "node-ip", value: "10.0.0.10" },
    ]);
    expect(i.bootstrapTokens[0].token).toBe(TOKEN_PLACEHOLDER);
    // Short-lived: the masters rotate a fresh one into the workers' secret (token-rotate.sh).
    expect(i.bootstrapTokens[0].ttl).toBe("24h");
    expect(initConfiguration(NODE, { tokenTtlHours: 6 }).bootstrapTokens[0].ttl).toBe("6h");
  });

  it("control plane join carries discovery by token and CA hash and a local endpoint", () => {
    const j = joinConfiguration(NODE, { apiServerEndpoint: CLUSTER.controlPlaneEndpoint, caCertHash: "sha256:abc", controlPlane: true });
    expect(j.discovery.bootstrapToken).toEqual({ apiServerEndpoint: CLUSTER.controlPlaneEndpoint, token: TOKEN_PLACEHOLDER, caCertHashes: ["sha256:abc"] });
    expect(j).toHaveProperty("controlPlane", { localAPIEndpoint: { advertiseAddress: "10.0.0.10", bindPort: 6443 } });
    expect(j).not.toHaveProperty("patches");
  });

  it("names a patches directory only when given one (kubeadm fails on a directory that does not exist)", () => {
    expect(initConfiguration(NODE)).not.toHaveProperty("patches");
    expect(initConfiguration(NODE, { patchesDirectory: "/etc/kubeadm-ha/patches" }).patches).toEqual({ directory: "/etc/kubeadm-ha/patches" });
    const j = joinConfiguration(NODE, { apiServerEndpoint: "x:6443", caCertHash: "sha256:abc", controlPlane: true, patchesDirectory: "/p" });
    expect(j).toHaveProperty("patches", { directory: "/p" });
    expect(joinConfiguration(NODE, { apiServerEndpoint: "x:6443", caCertHash: "sha256:abc", controlPlane: false, patchesDirectory: "/p" })).not.toHaveProperty("patches");
  });

  it("worker join has no control plane section and no taint", () => {
    const j = joinConfiguration({ ...NODE, labels: { pool: "general" } }, { apiServerEndpoint: "x:6443", caCertHash: "sha256:abc", controlPlane: false });
    expect(j).not.toHaveProperty("controlPlane");
    expect(j.nodeRegistration.taints).toEqual([]);
    expect(j.nodeRegistration.kubeletExtraArgs).toContainEqual({ name: "node-labels", value: "pool=general" });
  });

  // awsCloudControllerManager: kubelet waits for the cloud controller only when one runs.
  const cloudProvider = { name: "cloud-provider", value: "external" };
  it.each([
    ["default", undefined, true],
    ["cloud controller on", true, true],
    ["cloud controller off", false, false],
  ])("--cloud-provider=external on every kubelet and the controller manager: %s", (_, externalCloudProvider, expected) => {
    const node = { ...NODE, externalCloudProvider };
    const registrations = [
      initConfiguration(node).nodeRegistration,
      joinConfiguration(node, { apiServerEndpoint: "x:6443", caCertHash: "sha256:abc", controlPlane: true }).nodeRegistration,
      joinConfiguration(node, { apiServerEndpoint: "x:6443", caCertHash: "sha256:abc", controlPlane: false }).nodeRegistration,
    ];
    for (const r of registrations)
      expect(r.kubeletExtraArgs).toEqual(expected ? [cloudProvider, { name: "node-ip", value: "10.0.0.10" }] : [{ name: "node-ip", value: "10.0.0.10" }]);
    const kcm = clusterConfiguration({ ...CLUSTER, externalCloudProvider }).controllerManager.extraArgs;
    expect(kcm.filter((a) => a.name === "cloud-provider")).toEqual(expected ? [cloudProvider] : []);
  });

  it("every node registers with containerd's /run socket, not the deprecated /var/run spelling (issue 15)", () => {
    const registrations = [
      initConfiguration(NODE).nodeRegistration,
      joinConfiguration(NODE, { apiServerEndpoint: "x:6443", caCertHash: "sha256:abc", controlPlane: true }).nodeRegistration,
      joinConfiguration(NODE, { apiServerEndpoint: "x:6443", caCertHash: "sha256:abc", controlPlane: false }).nodeRegistration,
    ];
    for (const r of registrations) expect(r.criSocket).toBe("unix:///run/containerd/containerd.sock");
  });

  it("init and every join give kubeadm's API calls five minutes, not the default minute (kubeadm#3294, issue 15)", () => {
    expect(initConfiguration(NODE).timeouts).toEqual({ kubernetesAPICall: "5m0s" });
    for (const controlPlane of [true, false])
      expect(joinConfiguration(NODE, { apiServerEndpoint: "x:6443", caCertHash: "sha256:abc", controlPlane }).timeouts).toEqual({ kubernetesAPICall: "5m0s" });
  });

  it("kubelet uses the systemd cgroup driver", () => {
    expect(kubeletConfiguration().cgroupDriver).toBe("systemd");
  });
});

describe("toYaml", () => {
  it("writes a YAML 1.1 stream that parses back to the same documents", () => {
    const docs = [initConfiguration(NODE), clusterConfiguration(CLUSTER), kubeletConfiguration()];
    const text = toYaml(...docs);
    const parsed = parseAllDocuments(text, { version: "1.1" }).map((d) => d.toJS());
    expect(parsed).toEqual(JSON.parse(JSON.stringify(docs)));
  });

  it('quotes values YAML 1.1 would read as booleans ("true", "on", "yes")', () => {
    const text = toYaml({ a: "true", b: "on", c: "yes", d: "12:30" });
    const back = parseAllDocuments(text, { version: "1.1" })[0].toJS();
    expect(back).toEqual({ a: "true", b: "on", c: "yes", d: "12:30" });
  });
});

// Every field of every document, exactly: a value the builders change is a change to what kubeadm
// runs, and the golden files (test/render.test.ts) are too costly to run for each mutant.
describe("whole documents, exactly", () => {
  const LE_ARGS = [
    { name: "leader-elect", value: "true" },
    { name: "leader-elect-lease-duration", value: "15s" },
    { name: "leader-elect-renew-deadline", value: "10s" },
    { name: "leader-elect-retry-period", value: "2s" },
  ];
  const MASTER_TAINT = [{ key: "node-role.kubernetes.io/control-plane", effect: "NoSchedule" }];
  const registration = (taints: object[], extra: object[] = []) => ({
    name: NODE.name,
    criSocket: "unix:///run/containerd/containerd.sock",
    kubeletExtraArgs: [{ name: "cloud-provider", value: "external" }, { name: "node-ip", value: "10.0.0.10" }, ...extra],
    taints,
  });

  it("ClusterConfiguration, stacked, with etcd timing, SANs and API server flags", () => {
    expect(
      clusterConfiguration({
        ...CLUSTER,
        etcdTimings: { heartbeatIntervalMs: 150, electionTimeoutMs: 1500 },
        extraCertSans: ["10.0.0.10"],
        apiServerExtraArgs: [{ name: "encryption-provider-config", value: "/x" }],
      }),
    ).toEqual({
      apiVersion: "kubeadm.k8s.io/v1beta4",
      kind: "ClusterConfiguration",
      clusterName: "dev",
      kubernetesVersion: "v1.35.0",
      controlPlaneEndpoint: "dev-api.elb.eu-west-1.amazonaws.com:6443",
      networking: { podSubnet: "10.244.0.0/16", serviceSubnet: "10.96.0.0/12", dnsDomain: "cluster.local" },
      apiServer: { certSANs: ["dev-api.elb.eu-west-1.amazonaws.com", "10.0.0.10"], extraArgs: [{ name: "encryption-provider-config", value: "/x" }] },
      controllerManager: { extraArgs: [...LE_ARGS, { name: "cloud-provider", value: "external" }] },
      scheduler: { extraArgs: LE_ARGS },
      etcd: { local: { dataDir: "/var/lib/etcd", extraArgs: [{ name: "heartbeat-interval", value: "150" }, { name: "election-timeout", value: "1500" }] } },
      certificatesDir: "/etc/kubernetes/pki",
      encryptionAlgorithm: "RSA-2048",
    });
  });

  it("ClusterConfiguration without timing, extra SANs or flags: no empty sections", () => {
    const c = clusterConfiguration({ ...CLUSTER, apiServerExtraArgs: [] });
    expect(c.apiServer).toEqual({ certSANs: ["dev-api.elb.eu-west-1.amazonaws.com"] });
    expect(c.etcd).toEqual({ local: { dataDir: "/var/lib/etcd" } });
  });

  it("InitConfiguration", () => {
    expect(initConfiguration(NODE)).toEqual({
      apiVersion: "kubeadm.k8s.io/v1beta4",
      kind: "InitConfiguration",
      bootstrapTokens: [
        {
          token: "__BOOTSTRAP_TOKEN__",
          description: "kubeadm-ha node join token, held in AWS Secrets Manager",
          ttl: "24h",
          usages: ["signing", "authentication"],
          groups: ["system:bootstrappers:kubeadm:default-node-token"],
        },
      ],
      localAPIEndpoint: { advertiseAddress: "10.0.0.10", bindPort: 6443 },
      nodeRegistration: registration(MASTER_TAINT),
      timeouts: { kubernetesAPICall: "5m0s" },
    });
  });

  it("JoinConfiguration of a master", () => {
    expect(joinConfiguration(NODE, { apiServerEndpoint: "api:6443", caCertHash: "sha256:abc", controlPlane: true })).toEqual({
      apiVersion: "kubeadm.k8s.io/v1beta4",
      kind: "JoinConfiguration",
      discovery: { bootstrapToken: { apiServerEndpoint: "api:6443", token: "__BOOTSTRAP_TOKEN__", caCertHashes: ["sha256:abc"] } },
      nodeRegistration: registration(MASTER_TAINT),
      controlPlane: { localAPIEndpoint: { advertiseAddress: "10.0.0.10", bindPort: 6443 } },
      timeouts: { kubernetesAPICall: "5m0s" },
    });
  });

  it("JoinConfiguration of a worker with labels and taints", () => {
    const taints = [{ key: "workload", value: "batch", effect: "NoSchedule" as const }];
    expect(joinConfiguration({ ...NODE, labels: { a: "1", "b.io/c": "" }, taints }, { apiServerEndpoint: "api:6443", caCertHash: "sha256:abc", controlPlane: false })).toEqual({
      apiVersion: "kubeadm.k8s.io/v1beta4",
      kind: "JoinConfiguration",
      discovery: { bootstrapToken: { apiServerEndpoint: "api:6443", token: "__BOOTSTRAP_TOKEN__", caCertHashes: ["sha256:abc"] } },
      nodeRegistration: registration(taints, [{ name: "node-labels", value: "a=1,b.io/c=" }]),
      timeouts: { kubernetesAPICall: "5m0s" },
    });
  });

  it("a master with its own taints and no labels keeps exactly those", () => {
    expect(initConfiguration({ ...NODE, taints: [], labels: {} }).nodeRegistration).toEqual(registration([]));
  });

  it("KubeletConfiguration", () => {
    expect(kubeletConfiguration()).toEqual({ apiVersion: "kubelet.config.k8s.io/v1beta1", kind: "KubeletConfiguration", cgroupDriver: "systemd", serverTLSBootstrap: false });
  });

  it.each([
    ["1.5s", "1500ms"],
    ["2m", "120s"],
    ["1h", "3600s"],
    ["250ms", "250ms"],
  ])("a duration of %s is rendered %s", (d, flag) => {
    expect(leaderElectionArgs({ leaseDuration: d, renewDeadline: d, retryPeriod: d }).map((a) => a.value)).toEqual(["true", flag, flag, flag]);
  });

  it("toYaml: one document per object, separated by ---, lines never folded", () => {
    const long = "a flag value with spaces ".repeat(8).trim();
    expect(toYaml({ a: 1 }, { b: long })).toBe(`a: 1\n---\nb: ${long}\n`);
  });

  it("no cloud controller: the controller manager gets the leader election flags only", () => {
    expect(clusterConfiguration({ ...CLUSTER, externalCloudProvider: false }).controllerManager).toEqual({ extraArgs: LE_ARGS });
  });
});
