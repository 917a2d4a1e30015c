import * as fc from "fast-check";
import {
  ConfigError,
  addonInstaller,
  DEFAULT_KUBERNETES_VERSION,
  MAX_GO_DURATION_NS,
  architectureOf,
  configJsonSchema,
  configReference,
  durationMs,
  durationNs,
  fallbackRule,
  isLabelValue,
  isQualifiedName,
  nodeLabelKeyProblem,
  parseConfig,
  parseStackConfig,
  SECRET_KEYS,
  stackSettings,
  parseWorkerPool,
  suggestion,
} from "../config";

const ZONES = ["eu-west-1a", "eu-west-1b", "eu-west-1c"];
const REGION_SOURCE = "(the regions @pulumi/aws 7.48.0 lists; a region opened since needs a newer @pulumi/aws)";
const TYPE_SOURCE = "(the types @pulumi/aws 7.48.0 lists; a type launched since needs a newer @pulumi/aws)";
const MASTER_RULE = "kubeadm's preflight refuses a control plane machine with fewer than 2 vCPUs or under 1700 MB of memory: use one with 2 vCPUs and 2 GiB or more, such as t3.medium or m7i.large";
const WHOLE_MS = "must be a whole number of milliseconds, such as 500ms or 1.5s: the flag is rendered in milliseconds, and client-go has no use for finer timing";
const ONE_ARCH = "use instance types of one architecture, or remove amiId so each architecture boots its own Ubuntu image";
const TAG_CHARACTERS = "letters, digits, spaces and _ . : / = + - @ only, the characters every AWS service accepts";
const OWN_TAG = "has a key kubeadm-ha sets itself (Name, kubeadm-ha/*, kubernetes.io/cluster/*, k8s.io/cluster-autoscaler/*), so this value would be overwritten; use another key";
const base = () => ({
  region: "eu-west-1",
  clusterName: "dev",
  network: { availabilityZones: [...ZONES] },
  apiLoadBalancer: { allowedCidrs: ["203.0.113.0/24"] } as Record<string, unknown>,
  workerPools: [] as unknown,
});

function problemsOf(raw: Record<string, unknown>): string[] {
  try {
    parseConfig(raw);
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  return [];
}

describe("parseConfig defaults", () => {
  it("fills every default from the one schema", () => {
    expect(parseConfig(base())).toEqual({
      region: "eu-west-1",
      clusterName: "dev",
      kubernetesVersion: DEFAULT_KUBERNETES_VERSION,
      controlPlane: { count: 3, instanceType: "m7i.large", rootVolumeGiB: 50 },
      etcd: { topology: "stacked", nodeCount: 3, instanceType: "m7i.large", rootVolumeGiB: 50, heartbeatIntervalMs: 100, electionTimeoutMs: 1000, backup: { enabled: true, intervalMinutes: 15, retentionDays: 30 } },
      network: {
        vpcCidr: "10.0.0.0/16",
        availabilityZones: ZONES,
        podCidr: "10.244.0.0/16",
        serviceCidr: "10.96.0.0/12",
        natGateways: "perZone",
      },
      apiLoadBalancer: { scheme: "internet-facing", allowedCidrs: ["203.0.113.0/24"] },
      addons: { installer: "auto", cni: "cilium", awsCloudControllerManager: true, ebsCsiDriver: true, readinessTimeoutMinutes: 20, clusterAutoscaler: true, nodeTerminationHandler: true },
      encryptionAtRest: true,
      autoRecovery: true,
      certificates: { renewBeforeDays: 60, joinTokenTtlHours: 24 },
      leaderElection: { leaseDuration: "15s", renewDeadline: "10s", retryPeriod: "2s" },
      workerPools: [],
      tags: {},
    });
  });

  it("never opens an internet-facing API to 0.0.0.0/0 by default: allowedCidrs must be written out (issue 15)", () => {
    const { apiLoadBalancer: _, ...noLb } = base();
    expect(problemsOf(noLb)).toEqual([
      "apiLoadBalancer.allowedCidrs: (not set) — must be set for an internet-facing load balancer: list the client ranges that may reach the API, or [0.0.0.0/0] to open it to the internet on purpose",
    ]);
    expect(problemsOf({ ...noLb, apiLoadBalancer: { scheme: "internet-facing" } })).toHaveLength(1);
    expect(parseConfig({ ...noLb, apiLoadBalancer: { allowedCidrs: ["0.0.0.0/0"] } }).apiLoadBalancer).toEqual({ scheme: "internet-facing", allowedCidrs: ["0.0.0.0/0"] });
  });

  it("an internal load balancer admits the VPC's range unless told otherwise", () => {
    const c = parseConfig({ ...base(), network: { availabilityZones: [...ZONES], vpcCidr: "10.20.0.0/16" }, apiLoadBalancer: { scheme: "internal" } });
    expect(c.apiLoadBalancer).toEqual({ scheme: "internal", allowedCidrs: ["10.20.0.0/16"] });
    expect(parseConfig({ ...base(), apiLoadBalancer: { scheme: "internal", allowedCidrs: ["10.0.0.0/8"] } }).apiLoadBalancer.allowedCidrs).toEqual(["10.0.0.0/8"]);
  });

  it("the EBS CSI driver needs the cloud controller: its node plugin reads the Node's provider ID, not IMDS (issue 15)", () => {
    expect(problemsOf({ ...base(), addons: { awsCloudControllerManager: false } })).toEqual([
      "addons.ebsCsiDriver: true — needs addons.awsCloudControllerManager: pods cannot reach the instance metadata service, so the EBS CSI node plugin reads its instance ID and zone from the Node's provider ID, which only the cloud controller sets; turn the cloud controller on or the driver off",
    ]);
    expect(problemsOf({ ...base(), addons: { awsCloudControllerManager: false, ebsCsiDriver: false } })).toEqual([]);
  });

  it("restoreEncryptionKey: a 32-byte base64 key, only with encryption at rest, never echoed in an error (issue 15)", () => {
    const key = Buffer.alloc(32, 3).toString("base64");
    expect(parseConfig({ ...base(), restoreEncryptionKey: key }).restoreEncryptionKey).toBe(key);
    expect(parseConfig(base()).restoreEncryptionKey).toBeUndefined();
    const short = Buffer.alloc(16, 3).toString("base64");
    expect(problemsOf({ ...base(), restoreEncryptionKey: short })).toEqual([
      'restoreEncryptionKey: "[secret]" — must be a 32-byte secretbox key in base64 (44 characters ending in =)',
    ]);
    expect(problemsOf({ ...base(), restoreEncryptionKey: key, encryptionAtRest: false })).toEqual([
      'restoreEncryptionKey: "[secret]" — applies only with encryptionAtRest: true; remove it or turn encryption at rest on',
    ]);
  });

  it("keeps valid non-default values", () => {
    const c = parseConfig({
      ...base(),
      kubernetesVersion: "1.31.4",
      controlPlane: { count: 5, instanceType: "c7g.xlarge" },
      etcd: { topology: "external", nodeCount: 5, rootVolumeGiB: 100, heartbeatIntervalMs: 250, electionTimeoutMs: 2500 },
      leaderElection: { leaseDuration: "1m", renewDeadline: "40s", retryPeriod: "5s" },
      workerPools: [{ name: "general", minSize: 2, maxSize: 6, desiredCapacity: 3 }],
    });
    expect(c.controlPlane.count).toBe(5);
    expect(c.etcd).toEqual({ topology: "external", nodeCount: 5, instanceType: "m7i.large", rootVolumeGiB: 100, heartbeatIntervalMs: 250, electionTimeoutMs: 2500, backup: { enabled: true, intervalMinutes: 15, retentionDays: 30 } });
    expect(c.workerPools).toEqual([
      {
        name: "general",
        instanceTypes: ["m7i.large"],
        capacityType: "on-demand",
        minSize: 2,
        maxSize: 6,
        desiredCapacity: 3,
        labels: {},
        taints: [],
        rootVolumeGiB: 50,
        extraSecurityGroupIds: [],
        drain: { enabled: true, timeoutSeconds: 300 },
        autoscaling: { enabled: true },
        readyTimeoutSeconds: 900,
      },
    ]);
  });

  it("keeps every pool setting", () => {
    const pool = {
      name: "spot",
      instanceTypes: ["m7g.large", "c7g.large"],
      capacityType: "spot",
      minSize: 0,
      maxSize: 10,
      labels: { "node.kubernetes.io/lifecycle": "spot", "example.com/team": "", "kubelet.kubernetes.io/x": "y" },
      taints: [{ key: "workload", value: "batch", effect: "NoSchedule" }, { key: "example.com/gpu", effect: "NoExecute" }],
      rootVolumeGiB: 100,
      extraSecurityGroupIds: ["sg-0123456789abcdef0", "sg-01234567"],
      drain: { enabled: false, timeoutSeconds: 7200 },
      autoscaling: { enabled: false },
      readyTimeoutSeconds: 300,
    };
    expect(parseConfig({ ...base(), workerPools: [pool] }).workerPools).toEqual([pool]);
  });
});

// One bad input a row: [description, config change, the exact problem reported].
const BAD: Array<[string, (c: any) => void, string]> = [
  ["missing region", (c) => delete c.region, "region: (not set) — must be set (pulumi config set aws:region <region>)"],
  ["malformed region", (c) => (c.region = "Europe"), 'region: "Europe" — must be an AWS region name such as eu-west-1'],
  ["missing cluster name", (c) => delete c.clusterName, "clusterName: (not set) — must be set (pulumi config set clusterName <name>)"],
  ["upper-case cluster name", (c) => (c.clusterName = "Prod"), 'clusterName: "Prod" — must be 1-24 lowercase letters, digits or hyphens, start with a letter and not end with a hyphen (AWS load balancer names are 32 characters at most)'],
  ["cluster name too long", (c) => (c.clusterName = "a".repeat(25)), `clusterName: "${"a".repeat(25)}" — must be 1-24 lowercase letters, digits or hyphens, start with a letter and not end with a hyphen (AWS load balancer names are 32 characters at most)`],
  ["version with a v", (c) => (c.kubernetesVersion = "v1.35.0"), 'kubernetesVersion: "v1.35.0" — must be MAJOR.MINOR.PATCH such as 1.35.0, without a leading v'],
  ["version without patch", (c) => (c.kubernetesVersion = "1.35"), 'kubernetesVersion: "1.35" — must be MAJOR.MINOR.PATCH such as 1.35.0, without a leading v'],
  ["version before v1beta4", (c) => (c.kubernetesVersion = "1.30.9"), 'kubernetesVersion: "1.30.9" — must be 1.31 to 1.36: kubeadm\'s v1beta4 config API first shipped in 1.31, and 1.36 is the newest minor this blueprint is tested with'],
  ["version too new", (c) => (c.kubernetesVersion = "1.40.0"), 'kubernetesVersion: "1.40.0" — must be 1.31 to 1.36: kubeadm\'s v1beta4 config API first shipped in 1.31, and 1.36 is the newest minor this blueprint is tested with'],
  ["even control plane", (c) => (c.controlPlane = { count: 4 }), "controlPlane.count: 4 — must be 3, 5 or 7 (odd so stacked etcd keeps quorum; etcd advises at most 7)"],
  ["single control plane", (c) => (c.controlPlane = { count: 1 }), "controlPlane.count: 1 — must be 3, 5 or 7 (odd so stacked etcd keeps quorum; etcd advises at most 7)"],
  ["fractional control plane", (c) => (c.controlPlane = { count: 3.5 }), "controlPlane.count: 3.5 — must be a whole number"],
  ["bad instance type", (c) => (c.controlPlane = { instanceType: "large" }), 'controlPlane.instanceType: "large" — must be an EC2 instance type such as m7i.large'],
  ["unknown control plane key", (c) => (c.controlPlane = { replicas: 3 }), "controlPlane.replicas: 3 — is not a known setting (see the config reference in README.md)"],
  ["unknown top-level key", (c) => (c.controlplane = { count: 3 }), 'controlplane: {"count":3} — is not a known setting; did you mean controlPlane? (see the config reference in README.md)'],
  ["unknown key, nothing close", (c) => (c.workers = []), "workers: [] — is not a known setting (see the config reference in README.md)"],
  ["bad topology", (c) => (c.etcd = { topology: "local" }), 'etcd.topology: "local" — must be stacked or external'],
  ["even external etcd", (c) => (c.etcd = { topology: "external", nodeCount: 2 }), "etcd.nodeCount: 2 — must be 3, 5 or 7 (odd so etcd keeps quorum; etcd advises at most 7)"],
  ["etcd count with stacked", (c) => (c.etcd = { nodeCount: 5 }), "etcd.nodeCount: 5 — applies only when etcd.topology is external; remove it or set the topology"],
  ["etcd root volume with stacked", (c) => (c.etcd = { rootVolumeGiB: 80 }), "etcd.rootVolumeGiB: 80 — applies only when etcd.topology is external; remove it or set the topology"],
  ["small etcd root volume", (c) => (c.etcd = { topology: "external", rootVolumeGiB: 10 }), "etcd.rootVolumeGiB: 10 — must be at least 20 (the etcd data directory, images and logs)"],
  ["zero heartbeat", (c) => (c.etcd = { heartbeatIntervalMs: 0 }), "etcd.heartbeatIntervalMs: 0 — must be at least 1: etcd requires a heartbeat interval above zero"],
  ["fractional heartbeat", (c) => (c.etcd = { heartbeatIntervalMs: 100.5 }), "etcd.heartbeatIntervalMs: 100.5 — must be a whole number of milliseconds"],
  ["heartbeat as a duration", (c) => (c.etcd = { heartbeatIntervalMs: "100ms" }), 'etcd.heartbeatIntervalMs: "100ms" — must be a whole number of milliseconds'],
  ["election under 5 heartbeats", (c) => (c.etcd = { heartbeatIntervalMs: 250, electionTimeoutMs: 1000 }), "etcd.electionTimeoutMs: 1000 — must be at least 5 x heartbeatIntervalMs (250), as etcd requires"],
  ["election past etcd's limit", (c) => (c.etcd = { electionTimeoutMs: 50001 }), "etcd.electionTimeoutMs: 50001 — must be at most 50000: etcd refuses a longer election timeout"],
  ["zero election timeout", (c) => (c.etcd = { electionTimeoutMs: 0 }), "etcd.electionTimeoutMs: 0 — must be greater than zero"],
  ["missing zones", (c) => delete c.network.availabilityZones, "network.availabilityZones: (not set) — must be a list of availability zone names"],
  ["two zones", (c) => (c.network.availabilityZones = ZONES.slice(0, 2)), 'network.availabilityZones: ["eu-west-1a","eu-west-1b"] — must list at least 3 zones so losing one zone leaves quorum'],
  ["duplicate zone", (c) => (c.network.availabilityZones = [...ZONES, "eu-west-1a"]), 'network.availabilityZones[3]: "eu-west-1a" — zones must be distinct'],
  ["zone of another region", (c) => (c.network.availabilityZones = ["eu-west-1a", "eu-west-1b", "us-east-1c"]), 'network.availabilityZones[2]: "us-east-1c" — must be a zone of region eu-west-1'],
  ["malformed zone", (c) => (c.network.availabilityZones = ["eu-west-1a", "eu-west-1b", "zone-c"]), 'network.availabilityZones[2]: "zone-c" — must be an availability zone name such as eu-west-1a'],
  ["CIDR with host bits", (c) => (c.network.vpcCidr = "10.0.0.1/16"), 'network.vpcCidr: "10.0.0.1/16" — must be an IPv4 CIDR such as 10.0.0.0/16 with no host bits set'],
  ["CIDR that is not one", (c) => (c.network.podCidr = "10.244.0.0"), 'network.podCidr: "10.244.0.0" — must be an IPv4 CIDR such as 10.0.0.0/16 with no host bits set'],
  ["VPC too large", (c) => (c.network.vpcCidr = "10.0.0.0/8"), 'network.vpcCidr: "10.0.0.0/8" — prefix must be /16 to /24 (AWS allows /16 to /28 and every zone needs two subnets of at least /28)'],
  ["service CIDR too large", (c) => (c.network.serviceCidr = "10.96.0.0/11"), 'network.serviceCidr: "10.96.0.0/11" — prefix must be /12 to /28 (kube-apiserver allows at most 2^20 service addresses)'],
  ["pod CIDR too small", (c) => (c.network.podCidr = "10.244.0.0/24"), 'network.podCidr: "10.244.0.0/24" — prefix must be /8 to /20 (the controller manager gives every node a /24 from it)'],
  ["pods overlap VPC", (c) => (c.network.podCidr = "10.0.128.0/17"), 'network.podCidr: "10.0.128.0/17" — must not overlap network.vpcCidr (10.0.0.0/16)'],
  ["pods containing VPC", (c) => (c.network.podCidr = "10.0.0.0/12"), 'network.podCidr: "10.0.0.0/12" — must not overlap network.vpcCidr (10.0.0.0/16)'],
  ["services overlap pods", (c) => (c.network.serviceCidr = "10.244.0.0/16"), 'network.serviceCidr: "10.244.0.0/16" — must not overlap network.podCidr (10.244.0.0/16)'],
  ["services overlap VPC", (c) => (c.network.serviceCidr = "10.0.0.0/12"), 'network.serviceCidr: "10.0.0.0/12" — must not overlap network.vpcCidr (10.0.0.0/16)'],
  ["bad NAT mode", (c) => (c.network.natGateways = "none"), 'network.natGateways: "none" — must be perZone or single'],
  ["bad scheme", (c) => (c.apiLoadBalancer = { scheme: "public" }), 'apiLoadBalancer.scheme: "public" — must be internet-facing or internal'],
  ["no allowed CIDRs", (c) => (c.apiLoadBalancer = { allowedCidrs: [] }), "apiLoadBalancer.allowedCidrs: [] — must list at least one CIDR, or nobody can reach the API"],
  ["renewal threshold a week", (c) => (c.certificates = { renewBeforeDays: 7 }), "certificates.renewBeforeDays: 7 — must be at least 14: the renewal timer runs twice a day, and a master or etcd member down for a week must still renew in time"],
  ["renewal threshold beyond kubeadm's year", (c) => (c.certificates = { renewBeforeDays: 365 }), "certificates.renewBeforeDays: 365 — must be at most 300: kubeadm signs for 365 days, so a larger value would renew again on every run"],
  ["join token of an hour", (c) => (c.certificates = { joinTokenTtlHours: 1 }), "certificates.joinTokenTtlHours: 1 — must be at least 2: the masters rotate it hourly, when half its lifetime is left"],
  ["join token of a month", (c) => (c.certificates = { joinTokenTtlHours: 720 }), "certificates.joinTokenTtlHours: 720 — must be at most 168 (a week): anyone who reads the workers' secret can add nodes until it expires"],
  ["join token of half hours", (c) => (c.certificates = { joinTokenTtlHours: 2.5 }), "certificates.joinTokenTtlHours: 2.5 — must be a whole number of hours"],
  ["bad allowed CIDR", (c) => (c.apiLoadBalancer = { allowedCidrs: ["1.2.3.4"] }), 'apiLoadBalancer.allowedCidrs[0]: "1.2.3.4" — must be an IPv4 CIDR such as 10.0.0.0/16 with no host bits set'],
  ["duration without unit", (c) => (c.leaderElection = { leaseDuration: "15" }), 'leaderElection.leaseDuration: "15" — must be a Go duration string such as 15s or 1m30s'],
  ["duration as number", (c) => (c.leaderElection = { retryPeriod: 2 }), "leaderElection.retryPeriod: 2 — must be a Go duration string such as 15s"],
  ["zero duration", (c) => (c.leaderElection = { retryPeriod: "0s", renewDeadline: "10s" }), 'leaderElection.retryPeriod: "0s" — must be greater than zero'],
  ["lease equal to renew", (c) => (c.leaderElection = { leaseDuration: "10s" }), 'leaderElection.leaseDuration: "10s" — must be longer than renewDeadline (10s), as client-go requires'],
  ["lease shorter than renew", (c) => (c.leaderElection = { leaseDuration: "5s" }), 'leaderElection.leaseDuration: "5s" — must be longer than renewDeadline (10s), as client-go requires'],
  ["renew within retry jitter", (c) => (c.leaderElection = { renewDeadline: "2400ms" }), 'leaderElection.renewDeadline: "2400ms" — must be longer than 1.2 x retryPeriod (2s), as client-go requires'],
  ["duplicate pool names", (c) => (c.workerPools = [{ name: "general" }, { name: "general" }]), 'workerPools[1].name: "general" — pool names must be unique'],
  ["bad pool name", (c) => (c.workerPools = [{ name: "General_1" }]), 'workerPools[0].name: "General_1" — must be 1-16 lowercase letters, digits or hyphens, starting with a letter'],
  ["min above max", (c) => (c.workerPools = [{ name: "a", minSize: 5, maxSize: 2 }]), "workerPools[0].minSize: 5 — must not exceed maxSize (2)"],
  ["desired outside range", (c) => (c.workerPools = [{ name: "a", minSize: 1, maxSize: 3, desiredCapacity: 4 }]), "workerPools[0].desiredCapacity: 4 — must be between minSize (1) and maxSize (3)"],
  ["pools not a list", (c) => (c.workerPools = { name: "a" }), 'workerPools: {"name":"a"} — must be a list of pools'],
  ["pools not set", (c) => delete c.workerPools, "workerPools: (not set) — must be set: the worker pools, or [] for a cluster without workers (a choice, never a default)"],
  ["old instanceType key", (c) => (c.workerPools = [{ name: "a", instanceType: "m7i.large" }]), 'workerPools[0].instanceType: "m7i.large" — was replaced by instanceTypes, a list: instanceTypes: [m7i.large]'],
  ["unknown pool key", (c) => (c.workerPools = [{ name: "a", spot: true }]), "workerPools[0].spot: true — is not a known setting (see the config reference in README.md)"],
  ["no instance types", (c) => (c.workerPools = [{ name: "a", instanceTypes: [] }]), "workerPools[0].instanceTypes: [] — must list at least one instance type"],
  ["instance types not a list", (c) => (c.workerPools = [{ name: "a", instanceTypes: "m7i.large" }]), 'workerPools[0].instanceTypes: "m7i.large" — must be a list of EC2 instance types such as [m7i.large]'],
  ["bad pool instance type", (c) => (c.workerPools = [{ name: "a", instanceTypes: ["m7i.large", "big"] }]), 'workerPools[0].instanceTypes[1]: "big" — must be an EC2 instance type such as m7i.large'],
  ["repeated instance type", (c) => (c.workerPools = [{ name: "a", instanceTypes: ["m7i.large", "m7i.large"] }]), 'workerPools[0].instanceTypes[1]: "m7i.large" — instance types must be distinct'],
  ["mixed architectures", (c) => (c.workerPools = [{ name: "a", instanceTypes: ["m7i.large", "m7g.large"] }]), 'workerPools[0].instanceTypes[1]: "m7g.large" — is arm64 but m7i.large is amd64: a pool boots one AMI, so all its types need one CPU architecture'],
  ["bad capacity type", (c) => (c.workerPools = [{ name: "a", capacityType: "spot-only" }]), 'workerPools[0].capacityType: "spot-only" — must be on-demand or spot'],
  ["malformed label key", (c) => (c.workerPools = [{ name: "a", labels: { "a/b/c": "x" } }]), 'workerPools[0].labels["a/b/c"]: "x" — must be a Kubernetes label key: an optional DNS subdomain prefix and "/", then 1-63 letters, digits, "-", "_" or ".", starting and ending with a letter or digit'],
  ["label name too long", (c) => (c.workerPools = [{ name: "a", labels: { ["n".repeat(64)]: "x" } }]), `workerPools[0].labels.${"n".repeat(64)}: "x" — must be a Kubernetes label key: an optional DNS subdomain prefix and "/", then 1-63 letters, digits, "-", "_" or ".", starting and ending with a letter or digit`],
  ["label key too long for a tag", (c) => (c.workerPools = [{ name: "a", labels: { [`team.platform.example.com/${"n".repeat(63)}`]: "x" } }]), `workerPools[0].labels["team.platform.example.com/${"n".repeat(33)}… (89 characters)]: "x" — must be at most 82 characters: the cluster-autoscaler's node-template tag holds it, and AWS tag keys are at most 128`],
  ["node-role label (NodeRestriction)", (c) => (c.workerPools = [{ name: "a", labels: { "node-role.kubernetes.io/worker": "" } }]), 'workerPools[0].labels["node-role.kubernetes.io/worker"]: "" — is in the kubernetes.io or k8s.io namespace, where a node may only label itself under kubelet.kubernetes.io/ or node.kubernetes.io/ (NodeRestriction), so kubelet would refuse to start; use one of those or a prefix of your own'],
  ["k8s.io label (NodeRestriction)", (c) => (c.workerPools = [{ name: "a", labels: { "example.k8s.io/x": "y" } }]), 'workerPools[0].labels["example.k8s.io/x"]: "y" — is in the kubernetes.io or k8s.io namespace, where a node may only label itself under kubelet.kubernetes.io/ or node.kubernetes.io/ (NodeRestriction), so kubelet would refuse to start; use one of those or a prefix of your own'],
  ["node-restriction label", (c) => (c.workerPools = [{ name: "a", labels: { "node-restriction.kubernetes.io/x": "y" } }]), 'workerPools[0].labels["node-restriction.kubernetes.io/x"]: "y" — is in the kubernetes.io or k8s.io namespace, where a node may only label itself under kubelet.kubernetes.io/ or node.kubernetes.io/ (NodeRestriction), so kubelet would refuse to start; use one of those or a prefix of your own'],
  ["label kubelet sets itself", (c) => (c.workerPools = [{ name: "a", labels: { "topology.kubernetes.io/zone": "eu-west-1a" } }]), 'workerPools[0].labels["topology.kubernetes.io/zone"]: "eu-west-1a" — is set by kubelet or the AWS cloud controller on every node; remove it'],
  ["reserved label", (c) => (c.workerPools = [{ name: "a", labels: { "kubeadm-ha/pool": "b" } }]), 'workerPools[0].labels["kubeadm-ha/pool"]: "b" — is reserved: kubeadm-ha sets the kubeadm-ha/pool and kubeadm-ha/capacity-type labels itself'],
  ["bad label value", (c) => (c.workerPools = [{ name: "a", labels: { team: "data science" } }]), 'workerPools[0].labels.team: "data science" — must be empty or 1-63 letters, digits, "-", "_" or ".", starting and ending with a letter or digit'],
  ["label value not a string", (c) => (c.workerPools = [{ name: "a", labels: { gpu: true } }]), "workerPools[0].labels.gpu: true — must be a string (quote numbers and booleans in YAML)"],
  ["labels not a map", (c) => (c.workerPools = [{ name: "a", labels: ["a=b"] }]), 'workerPools[0].labels: ["a=b"] — must be a map of label keys to values'],
  ["bad taint effect", (c) => (c.workerPools = [{ name: "a", taints: [{ key: "k", effect: "NoScheduling" }] }]), 'workerPools[0].taints[0].effect: "NoScheduling" — must be NoSchedule, PreferNoSchedule or NoExecute'],
  ["taint without effect", (c) => (c.workerPools = [{ name: "a", taints: [{ key: "k", value: "v" }] }]), "workerPools[0].taints[0].effect: (not set) — must be NoSchedule, PreferNoSchedule or NoExecute"],
  ["bad taint key", (c) => (c.workerPools = [{ name: "a", taints: [{ key: "-k", effect: "NoSchedule" }] }]), 'workerPools[0].taints[0].key: "-k" — must be a Kubernetes label key: an optional DNS subdomain prefix and "/", then 1-63 letters, digits, "-", "_" or ".", starting and ending with a letter or digit'],
  ["taint key too long for a tag", (c) => (c.workerPools = [{ name: "a", taints: [{ key: `team.platform.example.com/${"n".repeat(63)}`, effect: "NoSchedule" }] }]), `workerPools[0].taints[0].key: "team.platform.example.com/${"n".repeat(33)}… (89 characters) — must be at most 82 characters: the cluster-autoscaler's node-template tag holds it, and AWS tag keys are at most 128`],
  ["bad taint value", (c) => (c.workerPools = [{ name: "a", taints: [{ key: "k", value: "a b", effect: "NoSchedule" }] }]), 'workerPools[0].taints[0].value: "a b" — must be empty or 1-63 letters, digits, "-", "_" or ".", starting and ending with a letter or digit'],
  ["repeated taint key", (c) => (c.workerPools = [{ name: "a", taints: [{ key: "k", effect: "NoSchedule" }, { key: "k", effect: "NoExecute" }] }]), `workerPools[0].taints[1].key: "k" — taint keys must be unique in a pool (the cluster-autoscaler's node-template tag holds one taint a key)`],
  ["unknown taint key", (c) => (c.workerPools = [{ name: "a", taints: [{ key: "k", effect: "NoSchedule", operator: "Exists" }] }]), 'workerPools[0].taints[0].operator: "Exists" — is not a known setting (see the config reference in README.md)'],
  ["root volume too small", (c) => (c.workerPools = [{ name: "a", rootVolumeGiB: 8 }]), "workerPools[0].rootVolumeGiB: 8 — must be at least 20 (images, logs and pod ephemeral storage)"],
  ["bad security group id", (c) => (c.workerPools = [{ name: "a", extraSecurityGroupIds: ["default"] }]), 'workerPools[0].extraSecurityGroupIds[0]: "default" — must be a security group id such as sg-0123456789abcdef0'],
  ["too many security groups", (c) => (c.workerPools = [{ name: "a", extraSecurityGroupIds: ["sg-00000001", "sg-00000002", "sg-00000003", "sg-00000004", "sg-00000005"] }]), 'workerPools[0].extraSecurityGroupIds: ["sg-00000001","sg-00000002","sg-00000003","sg-00000004","sg-00000005"] — must list at most 4: with the worker security group that makes 5, EC2\'s default limit a network interface'],
  ["drain timeout under a minute", (c) => (c.workerPools = [{ name: "a", drain: { timeoutSeconds: 30 } }]), "workerPools[0].drain.timeoutSeconds: 30 — must be at least 60: a drain waits out each pod's termination grace period (30 s by default)"],
  ["drain timeout past AWS's hook limit", (c) => (c.workerPools = [{ name: "a", drain: { timeoutSeconds: 7201 } }]), "workerPools[0].drain.timeoutSeconds: 7201 — must be at most 7200, the longest heartbeat timeout AWS allows a lifecycle hook"],
  ["fractional drain timeout", (c) => (c.workerPools = [{ name: "a", drain: { timeoutSeconds: 90.5 } }]), "workerPools[0].drain.timeoutSeconds: 90.5 — must be a whole number of seconds"],
  ["drain not a boolean", (c) => (c.workerPools = [{ name: "a", drain: { enabled: "yes" } }]), 'workerPools[0].drain.enabled: "yes" — must be true or false'],
  ["unknown drain key", (c) => (c.workerPools = [{ name: "a", drain: { gracePeriod: 30 } }]), "workerPools[0].drain.gracePeriod: 30 — is not a known setting (see the config reference in README.md)"],
  ["drain asked for without the handler", (c) => ((c.addons = { nodeTerminationHandler: false }), (c.workerPools = [{ name: "a", drain: { enabled: true } }])), "workerPools[0].drain.enabled: true — needs addons.nodeTerminationHandler, which does the draining; turn it on or remove this setting"],
  ["autoscaling not a boolean", (c) => (c.workerPools = [{ name: "a", autoscaling: { enabled: 1 } }]), "workerPools[0].autoscaling.enabled: 1 — must be true or false"],
  ["ready timeout too short to join", (c) => (c.workerPools = [{ name: "a", readyTimeoutSeconds: 120 }]), "workerPools[0].readyTimeoutSeconds: 120 — must be at least 300: a new machine installs containerd and the Kubernetes packages, joins and starts its CNI before its node is Ready"],
  ["ready timeout past AWS's hook limit", (c) => (c.workerPools = [{ name: "a", readyTimeoutSeconds: 7201 }]), "workerPools[0].readyTimeoutSeconds: 7201 — must be at most 7200, the longest heartbeat timeout AWS allows a lifecycle hook"],
  ["autoscaler not a boolean", (c) => (c.addons = { clusterAutoscaler: "on" }), 'addons.clusterAutoscaler: "on" — must be true or false'],
  ["termination handler not a boolean", (c) => (c.addons = { nodeTerminationHandler: "on" }), 'addons.nodeTerminationHandler: "on" — must be true or false'],
  ["malformed AMI id", (c) => (c.amiId = "ubuntu-24.04"), 'amiId: "ubuntu-24.04" — must be an AMI id such as ami-0123456789abcdef0'],
  ["tags not strings", (c) => (c.tags = { team: 7 }), "tags.team: 7 — must be a string (quote numbers and booleans in YAML)"],

  // Regions and instance types EC2 does not have (the AWS provider's own lists).
  ["region that does not exist, a typo", (c) => ((c.region = "eu-wset-1"), (c.network.availabilityZones = ["eu-wset-1a", "eu-wset-1b", "eu-wset-1c"])), `region: "eu-wset-1" — is not an AWS region; did you mean eu-west-1? ${REGION_SOURCE}`],
  ["region that does not exist", (c) => ((c.region = "xx-east-9"), (c.network.availabilityZones = ["xx-east-9a", "xx-east-9b", "xx-east-9c"])), `region: "xx-east-9" — is not an AWS region ${REGION_SOURCE}`],
  ["region as a number", (c) => (c.region = 1), "region: 1 — must be set (pulumi config set aws:region <region>)"],
  ["instance type that does not exist, a typo", (c) => (c.controlPlane = { instanceType: "m7i.larg" }), `controlPlane.instanceType: "m7i.larg" — is not an EC2 instance type; did you mean m7i.large? ${TYPE_SOURCE}`],
  ["instance type that does not exist", (c) => (c.etcd = { topology: "external", instanceType: "zz9.huge" }), `etcd.instanceType: "zz9.huge" — is not an EC2 instance type ${TYPE_SOURCE}`],
  ["pool instance type that does not exist", (c) => (c.workerPools = [{ name: "a", instanceTypes: ["m7i.large", "m7i.xxlarge"] }]), `workerPools[0].instanceTypes[1]: "m7i.xxlarge" — is not an EC2 instance type; did you mean m7i.2xlarge? ${TYPE_SOURCE}`],
  ["instance type as a number", (c) => (c.controlPlane = { instanceType: 7 }), "controlPlane.instanceType: 7 — must be an EC2 instance type such as m7i.large"],
  // kubeadm's preflight on masters: 2 vCPUs, 1700 MB.
  ["master of 1 vCPU", (c) => (c.controlPlane = { instanceType: "m7g.medium" }), `controlPlane.instanceType: "m7g.medium" — has 1 vCPU; ${MASTER_RULE}`],
  ["master of 1 vCPU and 2 GiB", (c) => (c.controlPlane = { instanceType: "t2.small" }), `controlPlane.instanceType: "t2.small" — has 1 vCPU and 2 GiB; ${MASTER_RULE}`],
  ["master of 1 GiB", (c) => (c.controlPlane = { instanceType: "t3.micro" }), `controlPlane.instanceType: "t3.micro" — has 2 vCPUs and 1 GiB; ${MASTER_RULE}`],
  ["master of 0.5 GiB", (c) => (c.controlPlane = { instanceType: "t4g.nano" }), `controlPlane.instanceType: "t4g.nano" — has 2 vCPUs and 0.5 GiB; ${MASTER_RULE}`],
  ["master of 1.7 GiB", (c) => (c.controlPlane = { instanceType: "c1.medium" }), `controlPlane.instanceType: "c1.medium" — has 2 vCPUs and 1.7 GiB; ${MASTER_RULE}`],
  // Durations that are positive but cannot be rendered as a Go duration.
  ["duration far below a millisecond", (c) => (c.leaderElection = { retryPeriod: "500ns" }), `leaderElection.retryPeriod: "500ns" — ${WHOLE_MS}`],
  ["duration with a fraction of a millisecond", (c) => (c.leaderElection = { renewDeadline: "2500500us" }), `leaderElection.renewDeadline: "2500500us" — ${WHOLE_MS}`],
  ["duration with a fraction of a nanosecond", (c) => (c.leaderElection = { retryPeriod: "1.5ns" }), `leaderElection.retryPeriod: "1.5ns" — ${WHOLE_MS}`],
  ["duration beyond Go's largest", (c) => (c.leaderElection = { leaseDuration: "2562047h47m16.855s" }), `leaderElection.leaseDuration: "2562047h47m16.855s" — must be at most 2562047h47m16.854s, Go's largest duration: kube-controller-manager and kube-scheduler would refuse the flag`],
  // Kubernetes versions that parse but name no release.
  ["version with a leading zero", (c) => (c.kubernetesVersion = "1.035.0"), 'kubernetesVersion: "1.035.0" — has a leading zero, and no Kubernetes release is named that way: write 1.35.0'],
  ["version with leading zeros everywhere", (c) => (c.kubernetesVersion = "01.35.00"), 'kubernetesVersion: "01.35.00" — has a leading zero, and no Kubernetes release is named that way: write 1.35.0'],
  ["version as a number", (c) => (c.kubernetesVersion = 1.35), 'kubernetesVersion: 1.35 — must be a string such as "1.35.0" (quote it in YAML)'],
  // One AMI for machines of two CPU architectures.
  ["one AMI, amd64 masters and an arm64 pool", (c) => ((c.amiId = "ami-0123456789abcdef0"), (c.workerPools = [{ name: "a", instanceTypes: ["m7i.large"] }, { name: "b", instanceTypes: ["m7g.large"] }])), `amiId: "ami-0123456789abcdef0" — is one image for every machine, but controlPlane.instanceType m7i.large is amd64 and workerPools[1].instanceTypes[0] m7g.large is arm64: ${ONE_ARCH}`],
  ["one AMI, arm64 masters and amd64 external etcd", (c) => ((c.amiId = "ami-01234567"), (c.controlPlane = { instanceType: "c7g.large" }), (c.etcd = { topology: "external", instanceType: "m7i.large" })), `amiId: "ami-01234567" — is one image for every machine, but controlPlane.instanceType c7g.large is arm64 and etcd.instanceType m7i.large is amd64: ${ONE_ARCH}`],
  // AWS tag rules.
  ["tag key with the aws: prefix", (c) => (c.tags = { "aws:team": "x" }), 'tags["aws:team"]: "x" — has a key starting with "aws:", a prefix AWS reserves for its own tags in any case; rename the key'],
  ["tag key with the AWS: prefix", (c) => (c.tags = { "AwS:team": "x" }), 'tags["AwS:team"]: "x" — has a key starting with "AwS:", a prefix AWS reserves for its own tags in any case; rename the key'],
  ["tag value with the aws: prefix", (c) => (c.tags = { team: "aws:x" }), 'tags.team: "aws:x" — starts with "aws:", a prefix AWS reserves for its own tags in keys and values alike; change the value'],
  ["tag key of 129 characters", (c) => (c.tags = { ["k".repeat(129)]: "x" }), `tags.${"k".repeat(60)}… (129 characters): "x" — has a key of 129 characters; AWS tag keys are at most 128`],
  ["tag value of 257 characters", (c) => (c.tags = { team: "é".repeat(257) }), `tags.team: "${"é".repeat(59)}… (257 characters) — is 257 characters; AWS tag values are at most 256`],
  ["empty tag key", (c) => (c.tags = { "": "x" }), 'tags[""]: "x" — has an empty key; AWS tag keys are 1 to 128 characters'],
  ["tag key with a character AWS refuses", (c) => (c.tags = { "cost#center": "x" }), `tags["cost#center"]: "x" — has a key with a character AWS tags refuse: ${TAG_CHARACTERS}`],
  ["tag value with a character AWS refuses", (c) => (c.tags = { team: "a,b" }), `tags.team: "a,b" — has a character AWS tags refuse: ${TAG_CHARACTERS}`],
  ["tag kubeadm-ha sets itself", (c) => (c.tags = { Name: "x" }), `tags.Name: "x" — ${OWN_TAG}`],
  ["cluster tag kubeadm-ha sets itself", (c) => (c.tags = { "kubernetes.io/cluster/dev": "shared" }), `tags["kubernetes.io/cluster/dev"]: "shared" — ${OWN_TAG}`],
  ["autoscaler tag kubeadm-ha sets itself", (c) => (c.tags = { "k8s.io/cluster-autoscaler/enabled": "false" }), `tags["k8s.io/cluster-autoscaler/enabled"]: "false" — ${OWN_TAG}`],
  ["kubeadm-ha tag", (c) => (c.tags = { "kubeadm-ha/role": "x" }), `tags["kubeadm-ha/role"]: "x" — ${OWN_TAG}`],
  ["46 tags", (c) => (c.tags = Object.fromEntries(Array.from({ length: 46 }, (_, i) => [`t${i}`, "x"]))), `tags: {"t0":"x","t1":"x","t2":"x","t3":"x","t4":"x","t5":"x","t6":… (451 characters) — has 46 tags; AWS allows 50 a resource and kubeadm-ha puts up to 5 of its own on each machine, so at most 45`],
  ["tags not a map", (c) => (c.tags = ["team=x"]), 'tags: ["team=x"] — must be a map of tag keys to string values'],
  ["instance type in capitals", (c) => (c.controlPlane = { instanceType: "M7i.large" }), 'controlPlane.instanceType: "M7i.large" — must be an EC2 instance type such as m7i.large'],
  ["instance type with a trailing space", (c) => (c.workerPools = [{ name: "a", instanceTypes: ["m7i.large "] }]), 'workerPools[0].instanceTypes[0]: "m7i.large " — must be an EC2 instance type such as m7i.large'],
  ["region in capitals", (c) => (c.region = "EU-west-1"), 'region: "EU-west-1" — must be an AWS region name such as eu-west-1'],
  ["region with a trailing zone letter", (c) => (c.region = "eu-west-1a"), 'region: "eu-west-1a" — must be an AWS region name such as eu-west-1'],
  ["zone without its letter", (c) => (c.network.availabilityZones = ["eu-west-1a", "eu-west-1b", "eu-west-1"]), 'network.availabilityZones[2]: "eu-west-1" — must be an availability zone name such as eu-west-1a'],
  // Messages: our words, values shortened.
  ["a value of 81 characters is cut", (c) => (c.clusterName = "x".repeat(79)), `clusterName: "${"x".repeat(59)}… (79 characters) — must be 1-24 lowercase letters, digits or hyphens, start with a letter and not end with a hyphen (AWS load balancer names are 32 characters at most)`],
  ["a value of 80 characters is shown whole", (c) => (c.clusterName = "x".repeat(78)), `clusterName: "${"x".repeat(78)}" — must be 1-24 lowercase letters, digits or hyphens, start with a letter and not end with a hyphen (AWS load balancer names are 32 characters at most)`],
  ["a map key of 80 characters is shown whole", (c) => (c.tags = { ["k".repeat(80)]: "a,b" }), `tags.${"k".repeat(80)}: "a,b" — has a character AWS tags refuse: ${TAG_CHARACTERS}`],
  ["a 20,000-character value", (c) => (c.clusterName = "x".repeat(20000)), `clusterName: "${"x".repeat(59)}… (20000 characters) — must be 1-24 lowercase letters, digits or hyphens, start with a letter and not end with a hyphen (AWS load balancer names are 32 characters at most)`],
  ["unknown nested key, a typo", (c) => (c.etcd = { topolgy: "external" }), 'etcd.topolgy: "external" — is not a known setting; did you mean topology? (see the config reference in README.md)'],
  ["unknown pool key, a typo", (c) => (c.workerPools = [{ name: "a", minsize: 1 }]), "workerPools[0].minsize: 1 — is not a known setting; did you mean minSize? (see the config reference in README.md)"],
  ["unknown backup key, a typo", (c) => (c.etcd = { backup: { intervalMinute: 10 } }), "etcd.backup.intervalMinute: 10 — is not a known setting; did you mean intervalMinutes? (see the config reference in README.md)"],
  ["root volume not a number", (c) => (c.controlPlane = { rootVolumeGiB: "big" }), 'controlPlane.rootVolumeGiB: "big" — must be a whole number of GiB'],
  ["root volume past gp3", (c) => (c.controlPlane = { rootVolumeGiB: 16385 }), "controlPlane.rootVolumeGiB: 16385 — must be at most 16384: an EBS gp3 volume holds at most 16 TiB"],
  ["pool root volume past gp3", (c) => (c.workerPools = [{ name: "a", rootVolumeGiB: 20000 }]), "workerPools[0].rootVolumeGiB: 20000 — must be at most 16384: an EBS gp3 volume holds at most 16 TiB"],
  ["etcd root volume past gp3", (c) => (c.etcd = { topology: "external", rootVolumeGiB: 16385 }), "etcd.rootVolumeGiB: 16385 — must be at most 16384: an EBS gp3 volume holds at most 16 TiB"],
  ["pool size as a string", (c) => (c.workerPools = [{ name: "a", minSize: "1" }]), 'workerPools[0].minSize: "1" — must be a whole number'],
  ["pool max as a fraction", (c) => (c.workerPools = [{ name: "a", maxSize: 2.5 }]), "workerPools[0].maxSize: 2.5 — must be a whole number"],
  ["desired capacity negative", (c) => (c.workerPools = [{ name: "a", desiredCapacity: -1 }]), "workerPools[0].desiredCapacity: -1 — must be 0 or more"],
  ["section not a map", (c) => (c.network = "10.0.0.0/16"), 'network: "10.0.0.0/16" — must be a map of settings'],
  ["zone not a string", (c) => (c.network.availabilityZones = ["eu-west-1a", "eu-west-1b", 3]), "network.availabilityZones[2]: 3 — must be an availability zone name such as eu-west-1a"],
];

describe("parseConfig rejects bad input with the key, the value and the rule", () => {
  it.each(BAD)("%s", (_desc, mutate, expected) => {
    const raw = base();
    mutate(raw);
    expect(problemsOf(raw)).toEqual([expected]);
  });

  it("covers at least 25 bad inputs", () => expect(BAD.length).toBeGreaterThanOrEqual(25));

  it("reports every problem at once, across sections", () => {
    const problems = problemsOf({
      region: "eu-west-1",
      clusterName: "Bad",
      controlPlane: { count: 2 },
      network: { availabilityZones: ZONES, podCidr: "10.0.0.0/18" },
      leaderElection: { leaseDuration: "1s" },
      apiLoadBalancer: { scheme: "internal" },
      workerPools: [{ name: "a", minSize: 4, maxSize: 1 }],
    });
    expect(problems.map((p) => p.split(":")[0])).toEqual([
      "clusterName",
      "controlPlane.count",
      "network.podCidr",
      "leaderElection.leaseDuration",
      "workerPools[0].minSize",
    ]);
  });

  it("throws one ConfigError whose message lists each problem", () => {
    expect(() => parseConfig({ ...base(), clusterName: "X", controlPlane: { count: 2 } })).toThrow(
      /^Invalid stack config \(2 problems\):\n  - clusterName: "X" — .*\n  - controlPlane\.count: 2 — /,
    );
  });
});

// Values at the edge of each new rule, accepted: [description, config change].
const GOOD: Array<[string, (c: any) => void]> = [
  ["a master of 2 vCPUs and 2 GiB (t3.small)", (c) => (c.controlPlane = { instanceType: "t3.small" })],
  ["a master of 2 vCPUs and 4 GiB (t2.medium)", (c) => (c.controlPlane = { instanceType: "t2.medium" })],
  ["a metal master with a sized suffix", (c) => (c.controlPlane = { instanceType: "c7i.metal-48xl" })],
  ["an arm64 master (a1, the first Graviton)", (c) => (c.controlPlane = { instanceType: "a1.large" })],
  ["a small pool type (workers have no preflight minimum)", (c) => (c.workerPools = [{ name: "a", instanceTypes: ["t3.micro"] }])],
  ["a region outside the usual partitions", (c) => ((c.region = "eusc-de-east-1"), (c.network.availabilityZones = ["eusc-de-east-1a", "eusc-de-east-1b", "eusc-de-east-1c"]))],
  ["Go's largest duration in whole milliseconds", (c) => (c.leaderElection = { leaseDuration: "2562047h47m16.854s" })],
  ["durations in microseconds, both micro signs, whole milliseconds", (c) => (c.leaderElection = { leaseDuration: "15000000\u00b5s", renewDeadline: "10000000\u03bcs", retryPeriod: "2000000us" })],
  ["durations with fractions of whole milliseconds", (c) => (c.leaderElection = { leaseDuration: "0.25m", renewDeadline: "1.5s", retryPeriod: "1.249s" })],
  ["one AMI for arm64 masters, etcd and pools", (c) => ((c.amiId = "ami-0123456789abcdef0"), (c.controlPlane = { instanceType: "c7g.large" }), (c.etcd = { topology: "external", instanceType: "r8g.large" }), (c.workerPools = [{ name: "a", instanceTypes: ["m7g.large", "t4g.large"] }]))],
  ["one AMI for arm64 masters and pools with stacked etcd (etcd.instanceType unused)", (c) => ((c.amiId = "ami-0123456789abcdef0"), (c.controlPlane = { instanceType: "c7g.large" }), (c.workerPools = [{ name: "a", instanceTypes: ["m7g.large"] }]))],
  ["tags with aws: inside, not as a prefix", (c) => (c.tags = { "team-aws:x": "cost-aws:y" })],
  ["one AMI with stacked etcd and amd64 everywhere", (c) => ((c.amiId = "ami-0123456789abcdef0"), (c.workerPools = [{ name: "a", instanceTypes: ["m7i.large"] }]))],
  ["mixed architectures without an amiId (one image per architecture)", (c) => (c.workerPools = [{ name: "a", instanceTypes: ["m7i.large"] }, { name: "b", instanceTypes: ["m7g.large"] }])],
  [
    "tags at every AWS limit",
    (c) =>
      (c.tags = {
        ...Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`t${i}`, ""])),
        Namespace: "x",
        "kubernetes.io/role-x": "y",
        ["k".repeat(128)]: "v".repeat(256),
        "Équipe plateforme +-=._:/@": "données 1",
        awsome: "aws-x",
      }),
  ],
];

describe("parseConfig accepts values at the edge of each rule", () => {
  it.each(GOOD)("%s", (_desc, mutate) => {
    const raw = base();
    mutate(raw);
    expect(problemsOf(raw)).toEqual([]);
  });
});

describe("durations are exact", () => {
  it.each([
    ["1ns", 1n],
    ["1.5us", 1500n],
    ["2\u00b5s", 2000n],
    ["2\u03bcs", 2000n],
    ["1.000001ms", 1000001n],
    ["1.1s", 1100000000n],
    ["1h1m1s", 3661000000000n],
    ["2562047h47m16.854775807s", MAX_GO_DURATION_NS],
    ["0.1ns", undefined],
  ] as const)("durationNs(%s) = %s", (d, ns) => expect(durationNs(d)).toBe(ns));

  it("durationMs is exact for whole milliseconds past 2^53 nanoseconds, NaN below a nanosecond", () => {
    expect(durationMs("2562047h47m16.854s")).toBe(9223372036854);
    expect(durationMs("1.1s")).toBe(1100);
    expect(durationMs("1500us")).toBe(1.5);
    expect(durationMs("0.5ns")).toBeNaN();
  });
});

describe("architectureOf", () => {
  it.each([
    ["m7i.large", "amd64"],
    ["t3.medium", "amd64"],
    ["g4dn.xlarge", "amd64"],
    ["c7i-flex.large", "amd64"],
    ["m7g.large", "arm64"],
    ["c7gn.xlarge", "arm64"],
    ["t4g.small", "arm64"],
    ["g5g.xlarge", "arm64"],
    ["is4gen.medium", "arm64"],
    ["a1.large", "arm64"],
  ])("%s is %s", (t, arch) => expect(architectureOf(t)).toBe(arch));
});

describe("suggestion: a did-you-mean only when the typo is close", () => {
  it.each([
    ["controlplane", ["controlPlane", "etcd"], "controlPlane"],
    ["m7i.larg", ["m7i.large", "m7i.xlarge"], "m7i.large"],
    ["etcd", ["etcd"], undefined],
    ["ab", ["ac"], undefined],
    ["abcd", ["abxy"], undefined],
    ["network", ["etcd", "tags"], undefined],
    ["anything", [], undefined],
  ] as const)("%s among %j: %s", (input, candidates, expected) => expect(suggestion(input, candidates)).toBe(expected));
});

describe("no message in zod's words", () => {
  // Every leaf of the schema, fed a value of each wrong kind, must be refused in our wording.
  type Json = { type?: string; properties?: Record<string, Json>; items?: Json; enum?: unknown[] };
  const root = configJsonSchema() as Json;
  const leaves: Array<[string[], Json]> = [];
  const walk = (j: Json, path: string[]) => {
    if (j.type === "object" && j.properties) for (const [k, v] of Object.entries(j.properties)) walk(v, [...path, k]);
    else if (j.type === "array" && j.items?.properties) {
      leaves.push([path, j]);
      for (const [k, v] of Object.entries(j.items.properties)) walk(v, [...path, "0", k]);
    } else leaves.push([path, j]);
  };
  walk(root, []);
  const wrong = (j: Json): unknown[] => (j.type === "string" || j.enum ? [12345, true, { a: 1 }] : j.type === "integer" || j.type === "number" ? ["x", 1.5, []] : j.type === "boolean" ? ["yes", 0] : j.type === "array" ? ["x", { a: 1 }, [{}]] : ["x", 3, [1]]);
  const zodWords = /Invalid|expected|received|Too (big|small)|Unrecognized/;

  it("walks every leaf", () => expect(leaves.length).toBe(57));

  it.each(leaves.map(([p, j]) => [p.join("."), p, j] as const))("%s", (_name, path, j) => {
    for (const value of wrong(j)) {
      const raw: any = base();
      raw.workerPools = [{ name: "a", taints: [{ key: "k", effect: "NoSchedule" }] }];
      let at = raw;
      for (const [i, k] of path.slice(0, -1).entries()) {
        const next = path[i + 1];
        if (at[k] === undefined || typeof at[k] !== "object") at[k] = /^\d+$/.test(next) ? [] : {};
        at = at[k];
      }
      at[path[path.length - 1]] = value;
      const problems = problemsOf(raw);
      expect({ path, value, problems: problems.filter((p) => zodWords.test(p)) }).toEqual({ path, value, problems: [] });
      expect({ path, value, none: problems.length }).not.toEqual({ path, value, none: 0 });
    }
  });
});

describe("fallbackRule: our wording for issues a schema has no message for", () => {
  it.each([
    [{ code: "invalid_type", expected: "string", input: 3 }, "must be a string"],
    [{ code: "invalid_type", expected: "int", input: "x" }, "must be a whole number"],
    [{ code: "invalid_type", expected: "number", input: "x" }, "must be a number"],
    [{ code: "invalid_type", expected: "boolean", input: "x" }, "must be true or false"],
    [{ code: "invalid_type", expected: "object", input: "x" }, "must be a map of settings"],
    [{ code: "invalid_type", expected: "array", input: "x" }, "must be a list"],
    [{ code: "invalid_type", expected: "record", input: "x" }, "must be a map"],
    [{ code: "invalid_type", expected: "bigint", input: "x" }, "must be a bigint"],
    [{ code: "invalid_type", expected: "string", input: undefined }, "must be set"],
    [{ code: "too_small", origin: "number", minimum: 3, input: 1 }, "must be at least 3"],
    [{ code: "too_small", origin: "array", minimum: 1, input: [] }, "must list at least 1"],
    [{ code: "too_small", origin: "string", minimum: 2, input: "" }, "must be at least 2 characters"],
    [{ code: "too_big", origin: "number", maximum: 9, input: 10 }, "must be at most 9"],
    [{ code: "too_big", origin: "array", maximum: 4, input: [] }, "must list at most 4"],
    [{ code: "too_big", origin: "string", maximum: 8, input: "" }, "must be at most 8 characters"],
    [{ code: "invalid_value", values: ["a", "b", 3], input: "c" }, "must be a or b or 3"],
    [{ code: "custom", input: 1 }, "is not valid here (see the config reference in README.md)"],
  ])("%j -> %s", (issue, rule) => expect(fallbackRule(issue as never)).toBe(rule));
});

describe("draining and autoscaling follow their add-ons", () => {
  it("without the handler, a pool's default drain is simply off: no problem", () => {
    const c = parseConfig({ ...base(), addons: { nodeTerminationHandler: false }, workerPools: [{ name: "a" }, { name: "b", drain: { enabled: false } }] });
    expect(c.workerPools.map((p) => p.drain.enabled)).toEqual([true, false]);
  });

  it("the autoscaling tags serve an autoscaler of your own: asking for them without the add-on is no problem", () => {
    expect(problemsOf({ ...base(), addons: { clusterAutoscaler: false }, workerPools: [{ name: "a", autoscaling: { enabled: true } }] })).toEqual([]);
  });

  it("every pool that asks for a drain the cluster cannot do is named", () => {
    expect(problemsOf({ ...base(), addons: { nodeTerminationHandler: false }, workerPools: [{ name: "a" }, { name: "b", drain: { enabled: true } }, { name: "c", drain: { enabled: true } }] })).toEqual([
      "workerPools[1].drain.enabled: true — needs addons.nodeTerminationHandler, which does the draining; turn it on or remove this setting",
      "workerPools[2].drain.enabled: true — needs addons.nodeTerminationHandler, which does the draining; turn it on or remove this setting",
    ]);
  });

  it("accepts every drain and ready timeout AWS's hooks accept within the bounds", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 8000 }), fc.integer({ min: 0, max: 8000 }), (drain, ready) => {
        const raw = { ...base(), workerPools: [{ name: "a", drain: { timeoutSeconds: drain }, readyTimeoutSeconds: ready }] };
        expect(problemsOf(raw).length === 0).toBe(drain >= 60 && drain <= 7200 && ready >= 300 && ready <= 7200);
      }),
    );
  });
});

describe("leader election timing", () => {
  it.each([
    ["15s", 15000],
    ["1m30s", 90000],
    ["500ms", 500],
    ["1h", 3600000],
    ["1.5s", 1500],
  ])("durationMs(%s) = %d", (d, ms) => expect(durationMs(d)).toBe(ms));

  it("accepts exactly the timings client-go accepts", () => {
    const ms = fc.integer({ min: 1, max: 120 });
    fc.assert(
      fc.property(ms, ms, ms, (lease, renew, retry) => {
        const raw = { ...base(), leaderElection: { leaseDuration: `${lease}s`, renewDeadline: `${renew}s`, retryPeriod: `${retry}s` } };
        const clientGoValid = lease > renew && renew > 1.2 * retry;
        expect(problemsOf(raw).length === 0).toBe(clientGoValid);
      }),
    );
  });
});

describe("etcd raft timing", () => {
  it("accepts exactly the heartbeat and election timeouts etcd accepts", () => {
    // etcd's rules (server/etcdmain/config.go): heartbeat > 0, 5 x heartbeat <= election <= 50000.
    // test/etcd-real.test.ts checks the same property against the etcd binary itself.
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 12000 }), fc.integer({ min: 1, max: 60000 }), (heartbeat, election) => {
        const raw = { ...base(), etcd: { heartbeatIntervalMs: heartbeat, electionTimeoutMs: election } };
        expect(problemsOf(raw).length === 0).toBe(election >= 5 * heartbeat && election <= 50000);
      }),
    );
  });
});

describe("parseStackConfig: the stack's keys as Pulumi passes them to the program", () => {
  it("parses structured keys as JSON and keeps scalar strings as strings", () => {
    const c = parseStackConfig({
      "aws:region": "eu-west-1",
      "kubeadm-ha:clusterName": "dev",
      "kubeadm-ha:kubernetesVersion": "1.31.0",
      "kubeadm-ha:amiId": "ami-01234567",
      "kubeadm-ha:network": JSON.stringify({ availabilityZones: ZONES }),
      "kubeadm-ha:etcd": JSON.stringify({ topology: "external" }),
      "kubeadm-ha:apiLoadBalancer": JSON.stringify({ allowedCidrs: ["0.0.0.0/0"] }),
      "kubeadm-ha:encryptionAtRest": "false",
      "kubeadm-ha:workerPools": "[]",
    });
    expect([c.kubernetesVersion, c.amiId, c.etcd.topology, c.encryptionAtRest, c.network.availabilityZones]).toEqual(["1.31.0", "ami-01234567", "external", false, ZONES]);
  });

  it("a value that is not JSON stays a string, refused by its rule", () => {
    expect(stackSettings({ "kubeadm-ha:tags": "team=x", "kubeadm-ha:clusterName": "123" }).raw).toEqual({ tags: "team=x", clusterName: "123" });
  });

  const VALID = {
    "aws:region": "eu-west-1",
    "kubeadm-ha:clusterName": "dev",
    "kubeadm-ha:network": JSON.stringify({ availabilityZones: ZONES }),
    "kubeadm-ha:apiLoadBalancer": JSON.stringify({ allowedCidrs: ["203.0.113.0/24"] }),
    "kubeadm-ha:workerPools": "[]",
  };
  const loadProblems = (extra: Record<string, string>): string[] => {
    try {
      parseStackConfig({ ...VALID, ...extra });
    } catch (e) {
      if (e instanceof ConfigError) return e.problems;
      throw e;
    }
    return [];
  };
  const NEVER_READ = "so the program never reads it; write it as kubeadm-ha:etcd";

  it.each([
    ["a key without a namespace", { etcd: '{"topology":"external"}' }, `etcd: {"topology":"external"} — has no namespace, ${NEVER_READ}`],
    ["a namespace with _ for -", { "kubeadm_ha:etcd": '{"topology":"external"}' }, `kubeadm_ha:etcd: {"topology":"external"} — is in namespace kubeadm_ha, not kubeadm-ha, ${NEVER_READ}`],
    ["a namespace with a Cyrillic a", { "kubeadm-h\u0430:etcd": '{"topology":"external"}' }, `kubeadm-h\\u0430:etcd: {"topology":"external"} — is in namespace kubeadm-h\\u0430 (non-ASCII characters shown as \\u escapes), not kubeadm-ha, ${NEVER_READ}`],
    ["a namespace in capitals", { "Kubeadm-HA:etcd": "{}" }, `Kubeadm-HA:etcd: {} — is in namespace Kubeadm-HA, not kubeadm-ha, ${NEVER_READ}`],
    ["a namespace missing a letter", { "kubeadmha:etcd": "{}" }, `kubeadmha:etcd: {} — is in namespace kubeadmha, not kubeadm-ha, ${NEVER_READ}`],
    [
      "a namespace nothing reads",
      { "myorg:etcd": "{}" },
      "myorg:etcd: {} — is in namespace myorg, which nothing in this program reads (it reads kubeadm-ha: settings, and aws:, kubernetes:, tls:, random:, pulumi: for its providers and Pulumi); remove it or correct the namespace",
    ],
    [
      "a flat dotted key, as the README's table spells it",
      { "kubeadm-ha:controlPlane.count": "5" },
      "kubeadm-ha:controlPlane.count: 5 — is one flat key: Pulumi does not nest keys at dots, so controlPlane.count would keep its default; nest it under kubeadm-ha:controlPlane in Pulumi.<stack>.yaml, or run pulumi config set --path 'controlPlane.count' 5",
    ],
    [
      "a flat key with a longer value, shown in the command",
      { "kubeadm-ha:controlPlane.instanceType": "m7i.xlarge" },
      "kubeadm-ha:controlPlane.instanceType: \"m7i.xlarge\" — is one flat key: Pulumi does not nest keys at dots, so controlPlane.instanceType would keep its default; nest it under kubeadm-ha:controlPlane in Pulumi.<stack>.yaml, or run pulumi config set --path 'controlPlane.instanceType' m7i.xlarge",
    ],
    [
      "a flat key into a list",
      { "kubeadm-ha:workerPools[0].name": "big pool" },
      `kubeadm-ha:workerPools[0].name: "big pool" — is one flat key: Pulumi does not nest keys at dots, so workerPools[0].name would keep its default; nest it under kubeadm-ha:workerPools in Pulumi.<stack>.yaml, or run pulumi config set --path 'workerPools[0].name' <value>`,
    ],
  ])("refuses %s", (_desc, extra, expected) => expect(loadProblems(extra)).toEqual([expected]));

  it("lists key problems before the settings' own, all at once", () => {
    expect(loadProblems({ "kubeadm_ha:etcd": "{}", "kubeadm-ha:controlPlane": '{"count":4}' })).toEqual([
      `kubeadm_ha:etcd: {} — is in namespace kubeadm_ha, not kubeadm-ha, ${NEVER_READ}`,
      "controlPlane.count: 4 — must be 3, 5 or 7 (odd so stacked etcd keeps quorum; etcd advises at most 7)",
    ]);
  });

  it("accepts the providers' and Pulumi's own namespaces", () => {
    expect(loadProblems({ "aws:profile": "ops", "aws:skipMetadataApiCheck": "false", "kubernetes:context": "x", "tls:proxy": "{}", "random:x": "y", "pulumi:tags": "{}" })).toEqual([]);
  });

  it("a program of another name reads its own namespace", () => {
    expect(parseStackConfig({ "aws:region": "eu-west-1", "fork:clusterName": "dev", "fork:network": JSON.stringify({ availabilityZones: ZONES }), "fork:apiLoadBalancer": JSON.stringify({ scheme: "internal" }), "fork:workerPools": "[]" }, "fork").clusterName).toBe("dev");
  });
});

describe("stackSettings: keys that must be secrets", () => {
  const all = { "kubeadm-ha:clusterName": "dev", "kubeadm-ha:registryPassword": "hunter2" };
  const secret = new Set(["registryPassword"]);

  it("refuses a secret setting in plain text, without repeating it", () => {
    const { raw, problems } = stackSettings(all, "kubeadm-ha", secret, () => false);
    expect(problems).toEqual(["registryPassword: (value not shown) — must be a secret, not plain text: pulumi config set --secret kubeadm-ha:registryPassword <value>"]);
    expect(raw).toEqual({ clusterName: "dev" });
  });

  it("takes it when Pulumi holds it as a secret", () => {
    const asked: string[] = [];
    const { raw, problems } = stackSettings(all, "kubeadm-ha", secret, (k) => (asked.push(k), true));
    expect(problems).toEqual([]);
    expect(raw).toEqual({ clusterName: "dev", registryPassword: "hunter2" });
    expect(asked).toEqual(["kubeadm-ha:registryPassword"]);
  });

  it("today's one is the restore key, refused in plain text without its value (issue 15)", () => {
    expect([...SECRET_KEYS]).toEqual(["restoreEncryptionKey"]);
    const key = Buffer.alloc(32, 7).toString("base64");
    const { raw, problems } = stackSettings({ "kubeadm-ha:clusterName": "dev", "kubeadm-ha:restoreEncryptionKey": key }, "kubeadm-ha", SECRET_KEYS, () => false);
    expect(problems).toEqual(["restoreEncryptionKey: (value not shown) — must be a secret, not plain text: pulumi config set --secret kubeadm-ha:restoreEncryptionKey <value>"]);
    expect(problems.join("\n")).not.toContain(key);
    expect(raw).toEqual({ clusterName: "dev" });
  });
});

describe("Kubernetes label syntax", () => {
  it.each([
    ["app", true],
    ["example.com/app", true],
    ["a.b-c.example/x_y.z-1", true],
    ["n".repeat(63), true],
    ["n".repeat(64), false],
    [`${"d".repeat(253)}/x`, true],
    [`${"d".repeat(254)}/x`, false],
    ["Example.com/app", false],
    ["/app", false],
    ["a/b/c", false],
    ["-app", false],
    ["app_", false],
    ["", false],
  ])("isQualifiedName(%j) = %s", (key, ok) => expect(isQualifiedName(key)).toBe(ok));

  it.each([
    ["", true],
    ["batch", true],
    ["v1.2_3-x", true],
    ["x".repeat(63), true],
    ["x".repeat(64), false],
    ["a b", false],
    ["a=b", false],
    ["a,b", false],
    [".a", false],
  ])("isLabelValue(%j) = %s", (value, ok) => expect(isLabelValue(value)).toBe(ok));

  // The namespaces kubelet's --node-labels accepts (k8s.io/kubelet/pkg/apis IsKubeletLabel).
  it.each([
    ["workload", undefined],
    ["example.com/team", undefined],
    ["node.kubernetes.io/lifecycle", undefined],
    ["sub.node.kubernetes.io/x", undefined],
    ["kubelet.kubernetes.io/x", undefined],
    ["kubernetes.io.example.com/x", undefined],
    ["node-role.kubernetes.io/worker", "NodeRestriction"],
    ["kubernetes.io/role", "NodeRestriction"],
    ["k8s.io/x", "NodeRestriction"],
    ["node-restriction.kubernetes.io/x", "NodeRestriction"],
    ["kubernetes.io/hostname", "set by kubelet"],
    ["node.kubernetes.io/instance-type", "set by kubelet"],
    ["kubeadm-ha/capacity-type", "reserved"],
  ])("nodeLabelKeyProblem(%j) mentions %s", (key, fragment) => {
    const rule = nodeLabelKeyProblem(key);
    if (fragment === undefined) expect(rule).toBeUndefined();
    else expect(rule).toContain(fragment);
  });
});

describe("parseWorkerPool: the stack config's pool rules for programs", () => {
  it("fills the same defaults as workerPools[]", () => {
    expect(parseWorkerPool({ name: "extra" })).toEqual(parseConfig({ ...base(), workerPools: [{ name: "extra" }] }).workerPools[0]);
  });

  it("reports every problem keyed under the argument's name", () => {
    expect(() => parseWorkerPool({ name: "extra", minSize: 4, maxSize: 2, labels: { "node-role.kubernetes.io/gpu": "" } }, "pool")).toThrow(ConfigError);
    try {
      parseWorkerPool({ name: "extra", capacityType: "spot", instanceTypes: ["m7i.large", "m7g.large"], minSize: 4, maxSize: 2 } as never, "pool");
    } catch (e) {
      expect((e as ConfigError).problems).toEqual([
        "pool.minSize: 4 — must not exceed maxSize (2)",
        'pool.instanceTypes[1]: "m7g.large" — is arm64 but m7i.large is amd64: a pool boots one AMI, so all its types need one CPU architecture',
      ]);
    }
    expect.assertions(2);
  });
});

describe("config reference", () => {
  it("lists every pool field with its default", () => {
    const rows = configReference()
      .split("\n")
      .filter((l) => l.startsWith("| `kubeadm-ha:workerPools"))
      .map((l) => l.split(" | ").slice(0, 3).map((c) => c.replace(/^\| /, "")));
    expect(rows).toEqual([
      ["`kubeadm-ha:workerPools`", "list of objects", "required"],
      ["`kubeadm-ha:workerPools[].name`", "string", "required"],
      ["`kubeadm-ha:workerPools[].instanceTypes`", "list of string", '`["m7i.large"]`'],
      ["`kubeadm-ha:workerPools[].capacityType`", "`on-demand` \\| `spot`", '`"on-demand"`'],
      ["`kubeadm-ha:workerPools[].minSize`", "integer", "`1`"],
      ["`kubeadm-ha:workerPools[].maxSize`", "integer", "`3`"],
      ["`kubeadm-ha:workerPools[].desiredCapacity`", "integer", ""],
      ["`kubeadm-ha:workerPools[].labels`", "object", ""],
      ["`kubeadm-ha:workerPools[].taints`", "list of objects", "`[]`"],
      ["`kubeadm-ha:workerPools[].taints[].key`", "string", "required"],
      ["`kubeadm-ha:workerPools[].taints[].value`", "string", ""],
      ["`kubeadm-ha:workerPools[].taints[].effect`", "`NoSchedule` \\| `PreferNoSchedule` \\| `NoExecute`", "required"],
      ["`kubeadm-ha:workerPools[].rootVolumeGiB`", "integer", "`50`"],
      ["`kubeadm-ha:workerPools[].extraSecurityGroupIds`", "list of string", "`[]`"],
      ["`kubeadm-ha:workerPools[].drain`", "object", ""],
      ["`kubeadm-ha:workerPools[].drain.enabled`", "boolean", "`true`"],
      ["`kubeadm-ha:workerPools[].drain.timeoutSeconds`", "integer", "`300`"],
      ["`kubeadm-ha:workerPools[].autoscaling`", "object", ""],
      ["`kubeadm-ha:workerPools[].autoscaling.enabled`", "boolean", "`true`"],
      ["`kubeadm-ha:workerPools[].readyTimeoutSeconds`", "integer", "`900`"],
    ]);
  });
});

describe("boundaries the mutation run found unpinned (docs/mutation-testing.md)", () => {
  it("a pool's desiredCapacity may equal minSize or maxSize, and minSize may equal maxSize; below minSize is refused", () => {
    expect(problemsOf({ ...base(), workerPools: [{ name: "a", minSize: 1, maxSize: 3, desiredCapacity: 1 }] })).toEqual([]);
    expect(problemsOf({ ...base(), workerPools: [{ name: "a", minSize: 1, maxSize: 3, desiredCapacity: 3 }] })).toEqual([]);
    expect(problemsOf({ ...base(), workerPools: [{ name: "a", minSize: 2, maxSize: 2, desiredCapacity: 2 }] })).toEqual([]);
    expect(problemsOf({ ...base(), workerPools: [{ name: "a", minSize: 2, maxSize: 3, desiredCapacity: 1 }] })).toEqual([
      "workerPools[0].desiredCapacity: 1 — must be between minSize (2) and maxSize (3)",
    ]);
  });

  it("three zones of which two are the same: a duplicate and too few distinct zones", () => {
    expect(problemsOf({ ...base(), network: { availabilityZones: ["eu-west-1a", "eu-west-1b", "eu-west-1a"] } })).toEqual([
      'network.availabilityZones[2]: "eu-west-1a" — zones must be distinct',
      'network.availabilityZones: ["eu-west-1a","eu-west-1b","eu-west-1a"] — must list at least 3 distinct zones so losing one zone leaves quorum',
    ]);
  });

  it("control plane and etcd counts: 3, 5 and 7 only", () => {
    for (const n of [3, 5, 7]) expect([n, problemsOf({ ...base(), controlPlane: { count: n } })]).toEqual([n, []]);
    for (const n of [1, 2, 4, 6, 9]) expect([n, problemsOf({ ...base(), controlPlane: { count: n } }).length]).toEqual([n, 1]);
  });

  it("an election timeout of exactly 5 x the heartbeat is what etcd accepts", () => {
    expect(problemsOf({ ...base(), etcd: { heartbeatIntervalMs: 100, electionTimeoutMs: 500 } })).toEqual([]);
    expect(problemsOf({ ...base(), etcd: { heartbeatIntervalMs: 100, electionTimeoutMs: 499 } })).toEqual([
      "etcd.electionTimeoutMs: 499 — must be at least 5 x heartbeatIntervalMs (100), as etcd requires",
    ]);
  });

  it("the newest supported minor is accepted, the next is not", () => {
    expect(problemsOf({ ...base(), kubernetesVersion: "1.36.0" })).toEqual([]);
    expect(problemsOf({ ...base(), kubernetesVersion: "1.31.0" })).toEqual([]);
    expect(problemsOf({ ...base(), kubernetesVersion: "1.37.0" })).toHaveLength(1);
    expect(problemsOf({ ...base(), kubernetesVersion: "1.30.0" })).toHaveLength(1);
  });

  it("addonInstaller: auto is nodes behind an internal load balancer and pulumi behind an internet-facing one; an explicit choice stands", () => {
    const c = (installer: "auto" | "pulumi" | "nodes", scheme: "internal" | "internet-facing") => ({ addons: { installer }, apiLoadBalancer: { scheme } }) as unknown as Parameters<typeof addonInstaller>[0];
    expect(addonInstaller(c("auto", "internal"))).toBe("nodes");
    expect(addonInstaller(c("auto", "internet-facing"))).toBe("pulumi");
    expect(addonInstaller(c("pulumi", "internal"))).toBe("pulumi");
    expect(addonInstaller(c("nodes", "internet-facing"))).toBe("nodes");
  });

  it("a VPC too small for two /28 subnets a zone is refused, naming the subnet count; the largest that fits is accepted", () => {
    const zones = (n: number) => "abcdefghi".slice(0, n).split("").map((l) => `eu-west-1${l}`);
    expect(problemsOf({ ...base(), network: { availabilityZones: zones(9), vpcCidr: "10.0.0.0/24" } })).toEqual(['network.vpcCidr: "10.0.0.0/24" — too small for 18 subnets of at least /28']);
    expect(problemsOf({ ...base(), network: { availabilityZones: zones(8), vpcCidr: "10.0.0.0/24" } })).toEqual([]);
    expect(problemsOf({ ...base(), network: { availabilityZones: zones(9), vpcCidr: "10.0.0.0/23" } })).toEqual([]);
    expect(problemsOf({ ...base(), network: { availabilityZones: [...ZONES], vpcCidr: "10.0.0.0/25" } })).toEqual([
      'network.vpcCidr: "10.0.0.0/25" — prefix must be /16 to /24 (AWS allows /16 to /28 and every zone needs two subnets of at least /28)',
    ]);
  });

  it("Kubernetes majors other than 1 are refused", () => {
    for (const v of ["2.35.0", "0.35.0"]) expect(problemsOf({ ...base(), kubernetesVersion: v })).toEqual([expect.stringMatching(new RegExp(`^kubernetesVersion: "${v}" — must be 1\\.31 to 1\\.36: `))]);
  });

  it("restoreEncryptionKey: exactly base64 (not base64url, no surrounding whitespace), 32 bytes", () => {
    const key = Buffer.alloc(32, 7).toString("base64");
    const refused = ['restoreEncryptionKey: "[secret]" — must be a 32-byte secretbox key in base64 (44 characters ending in =)'];
    expect(problemsOf({ ...base(), restoreEncryptionKey: key })).toEqual([]);
    // Each decodes to 32 bytes in Node, which also reads base64url and skips whitespace.
    for (const k of ["-".repeat(43) + "=", ` ${key}`, `${key}\n`]) {
      expect(Buffer.from(k, "base64")).toHaveLength(32);
      expect(problemsOf({ ...base(), restoreEncryptionKey: k })).toEqual(refused);
    }
  });

  it("zones: three distinct among four is enough (one problem, the repeat); a zone of another region is refused", () => {
    expect(problemsOf({ ...base(), network: { availabilityZones: [...ZONES, ZONES[0]] } })).toEqual([`network.availabilityZones[3]: "${ZONES[0]}" — zones must be distinct`]);
    expect(problemsOf({ ...base(), network: { availabilityZones: [ZONES[0], ZONES[1], "us-east-1c"] } })).toEqual(['network.availabilityZones[2]: "us-east-1c" — must be a zone of region eu-west-1']);
  });

  it("ConfigError says how many problems, in the singular for one, and is named", () => {
    const one = new ConfigError(["a: 1 — rule"]);
    expect(one.message).toMatch(/^Invalid stack config \(1 problem\):/);
    expect(one.name).toBe("ConfigError");
    expect(new ConfigError(["a", "b"]).message).toMatch(/^Invalid stack config \(2 problems\):/);
  });
});
