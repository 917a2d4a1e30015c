import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import * as fc from "fast-check";
import { parse } from "yaml";
import { TOKEN_PLACEHOLDER } from "../cloud-init/kubeadm";
import { USER_DATA_LIMIT, userDataBytes } from "../cloud-init/render";
import { Cluster } from "../components/cluster";
import {
  instanceRefresh,
  WorkerJoin,
  WorkerPool,
  autoscalerTags,
  drains,
  groupTags,
  launchSpec,
  lifecycleHooks,
  machineTags,
  nodeLabels,
  workerDocuments,
} from "../components/workerPool";
import { WorkerPoolInput, isLabelValue, nodeLabelKeyProblem, parseConfig, parseWorkerPool } from "../config";
import { decodeUserData } from "../scripts/renderLib";
import { Registration, ofType, settle, setupMocks, valueOf } from "./mocks";

const HASH = "sha256:" + "ab".repeat(32);
const SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:dev/bootstrap/worker-AbCdEf";
const ENDPOINT = "dev-api.elb.eu-west-1.amazonaws.com:6443";

/** Two pools as different as pools get: one on-demand type, untainted; Spot over two Graviton types, labelled, tainted. */
const GENERAL: WorkerPoolInput = { name: "general", instanceTypes: ["m7i.large"], minSize: 1, maxSize: 3 };
const SPOT: WorkerPoolInput = {
  name: "spot",
  instanceTypes: ["m7g.large", "c7g.large"],
  capacityType: "spot",
  minSize: 0,
  maxSize: 5,
  desiredCapacity: 2,
  labels: { workload: "batch", "node.kubernetes.io/lifecycle": "spot" },
  taints: [
    { key: "workload", value: "batch", effect: "NoSchedule" },
    { key: "example.com/preemptible", effect: "PreferNoSchedule" },
  ],
  rootVolumeGiB: 80,
  extraSecurityGroupIds: ["sg-0123456789abcdef0"],
};

const docValues = { clusterName: "dev", kubernetesVersion: "1.35.0", region: "eu-west-1", apiEndpoint: ENDPOINT, caCertHash: HASH, secretArn: SECRET_ARN };

describe("pure pool rendering", () => {
  const spot = parseWorkerPool(SPOT);
  const general = parseWorkerPool(GENERAL);

  it("adds kubeadm-ha's pool and capacity labels and sorts the keys", () => {
    expect(Object.entries(nodeLabels(spot))).toEqual([
      ["kubeadm-ha/capacity-type", "spot"],
      ["kubeadm-ha/pool", "spot"],
      ["node.kubernetes.io/lifecycle", "spot"],
      ["workload", "batch"],
    ]);
  });

  it("leaves the node's name and address to the machine: auto in node.env, placeholders in join.yaml", () => {
    const docs = workerDocuments(docValues, general);
    expect(docs.env).toEqual({
      CLUSTER_NAME: "dev",
      NODE_ROLE: "worker",
      NODE_NAME: "auto",
      NODE_IP: "auto",
      INIT_NODE: "false",
      KUBERNETES_VERSION: "1.35.0",
      KUBERNETES_MINOR: "1.35",
      API_ENDPOINT: ENDPOINT,
      AWS_REGION: "eu-west-1",
      SECRET_ID: SECRET_ARN,
    });
    expect(Object.keys(docs.kubeadm)).toEqual(["join.yaml"]);
  });

  it("tags the group for cluster-autoscaler discovery and scale from zero", () => {
    expect(autoscalerTags("dev", spot)).toEqual({
      "k8s.io/cluster-autoscaler/enabled": "true",
      "k8s.io/cluster-autoscaler/dev": "owned",
      "k8s.io/cluster-autoscaler/node-template/label/kubeadm-ha/capacity-type": "spot",
      "k8s.io/cluster-autoscaler/node-template/label/kubeadm-ha/pool": "spot",
      "k8s.io/cluster-autoscaler/node-template/label/node.kubernetes.io/lifecycle": "spot",
      "k8s.io/cluster-autoscaler/node-template/label/workload": "batch",
      "k8s.io/cluster-autoscaler/node-template/taint/workload": "batch:NoSchedule",
      "k8s.io/cluster-autoscaler/node-template/taint/example.com/preemptible": ":PreferNoSchedule",
    });
  });

  it("uses the launch template alone for one on-demand type", () => {
    expect(launchSpec(general, { id: "lt-1", version: "7" })).toEqual({ launchTemplate: { id: "lt-1", version: "7" } });
  });

  it("prefers on-demand types in the order listed", () => {
    const pool = parseWorkerPool({ name: "multi", instanceTypes: ["m7i.large", "m6i.large"] });
    expect(launchSpec(pool, { id: "lt-1", version: "7" })).toEqual({
      mixedInstancesPolicy: {
        instancesDistribution: { onDemandBaseCapacity: 0, onDemandPercentageAboveBaseCapacity: 100, onDemandAllocationStrategy: "prioritized" },
        launchTemplate: {
          launchTemplateSpecification: { launchTemplateId: "lt-1", version: "7" },
          overrides: [{ instanceType: "m7i.large" }, { instanceType: "m6i.large" }],
        },
      },
    });
  });

  it("refuses more tags than AWS allows on a group", () => {
    const tags = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`t${i}`, "x"]));
    expect(() => groupTags("dev", spot, tags)).toThrow(
      "WorkerPool spot: the auto scaling group would carry 53 tags (40 extra tags, 2 labels, 2 taints and kubeadm-ha's own); AWS allows 50",
    );
    expect(groupTags("dev", spot, Object.fromEntries(Object.entries(tags).slice(0, 37)))).toHaveLength(50);
  });

  // kubelet reads --node-labels as k=v pairs split on "," and the first "=": every accepted label
  // must come back out of the rendered flag unchanged.
  it("every label the config accepts survives kubelet's --node-labels parsing", () => {
    const key = fc
      .tuple(fc.option(fc.stringMatching(/^[a-z0-9]([a-z0-9.-]{0,20}[a-z0-9])?$/), { nil: undefined }), fc.stringMatching(/^[A-Za-z0-9]([A-Za-z0-9._-]{0,20}[A-Za-z0-9])?$/))
      .map(([prefix, name]) => (prefix ? `${prefix}/${name}` : name))
      .filter((k) => nodeLabelKeyProblem(k) === undefined);
    const value = fc.stringMatching(/^([A-Za-z0-9]([A-Za-z0-9._-]{0,20}[A-Za-z0-9])?)?$/).filter(isLabelValue);
    fc.assert(
      fc.property(fc.dictionary(key, value, { maxKeys: 8 }), (labels) => {
        const pool = parseWorkerPool({ name: "p", labels });
        const join = parse(workerDocuments(docValues, pool).kubeadm["join.yaml"], { version: "1.1" });
        const flag = join.nodeRegistration.kubeletExtraArgs.find((a: { name: string }) => a.name === "node-labels").value as string;
        const parsed = Object.fromEntries(flag.split(",").map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]));
        expect(parsed).toEqual(nodeLabels(pool));
      }),
    );
  });
});

describe("WorkerPool component", () => {
  let regs: Registration[];
  const childOpts = new Map<string, pulumi.CustomResourceOptions>();
  let tokenVersion: aws.secretsmanager.SecretVersion;
  let pools: WorkerPool[];
  const join: WorkerJoin = {
    clusterName: "dev",
    kubernetesVersion: "1.35.0",
    region: "eu-west-1",
    apiEndpoint: ENDPOINT,
    caCertHash: pulumi.output(HASH),
    secretArn: pulumi.output(SECRET_ARN),
    bootstrapBucket: "dev-bootstrap-0123",
    instanceProfileName: "dev-worker",
    securityGroupId: "sg-worker",
    privateSubnetIds: ["subnet-a", "subnet-b", "subnet-c"],
    amiIds: { amd64: "ami-amd64", arm64: "ami-arm64" },
  };
  const record = {
    transformations: [
      (a: pulumi.ResourceTransformationArgs) => {
        childOpts.set(a.name, a.opts as pulumi.CustomResourceOptions);
        return undefined;
      },
    ],
  };

  beforeAll(async () => {
    regs = await setupMocks();
    tokenVersion = new aws.secretsmanager.SecretVersion("token-version", { secretId: "worker-secret", secretString: "{}" });
    pools = [GENERAL, SPOT].map((pool) => new WorkerPool(`dev-pool-${pool.name}`, { join, pool, tags: { team: "platform" }, dependsOn: [tokenVersion] }, record));
    await valueOf(pulumi.all(pools.map((p) => p.userData)));
    await settle();
  });

  const templates = () => ofType(regs, "aws:ec2/launchTemplate:LaunchTemplate").filter((r) => r.name.startsWith("dev-pool-"));
  const groups = () => ofType(regs, "aws:autoscaling/group:Group").filter((r) => r.name.startsWith("dev-pool-"));
  const template = (pool: string) => templates().find((r) => r.name === `dev-pool-${pool}-launch-template`)!;
  const group = (pool: string) => groups().find((r) => r.name === `dev-pool-${pool}-group`)!;
  const cloudConfig = (pool: string) => parse(decodeUserData(template(pool).inputs.userData, true), { version: "1.1" });
  const written = (pool: string, file: string) => cloudConfig(pool).write_files.find((f: { path: string }) => f.path === file).content as string;

  const machineTags = (pool: string) => ({
    team: "platform",
    "kubeadm-ha/role": "worker",
    "kubeadm-ha/pool": pool,
    "kubernetes.io/cluster/dev": "owned",
    "kubeadm-ha/cluster": "dev",
    Name: `dev-worker-${pool}`,
  });

  it("creates one component, launch template and auto scaling group a pool", () => {
    expect(ofType(regs, "kubeadm-ha:index:WorkerPool").map((r) => r.name).sort()).toEqual(["dev-pool-general", "dev-pool-spot"]);
    expect(templates().map((r) => r.name).sort()).toEqual(["dev-pool-general-launch-template", "dev-pool-spot-launch-template"]);
    expect(groups().map((r) => r.name).sort()).toEqual(["dev-pool-general-group", "dev-pool-spot-group"]);
  });

  it("launch template: IMDSv2, encrypted gp3 root, worker profile and groups, no key pair, tagged machines and volumes", () => {
    const { userData, ...general } = template("general").inputs;
    expect(typeof userData).toBe("string");
    expect(general).toEqual({
      namePrefix: "dev-general-",
      description: "dev: worker pool general",
      imageId: "ami-amd64",
      instanceType: "m7i.large",
      iamInstanceProfile: { name: "dev-worker" },
      vpcSecurityGroupIds: ["sg-worker"],
      metadataOptions: { httpEndpoint: "enabled", httpTokens: "required", httpPutResponseHopLimit: 1 },
      blockDeviceMappings: [{ deviceName: "/dev/sda1", ebs: { volumeType: "gp3", volumeSize: 50, encrypted: "true", deleteOnTermination: "true" } }],
      privateDnsNameOptions: { hostnameType: "ip-name" },
      updateDefaultVersion: true,
      tagSpecifications: [
        { resourceType: "instance", tags: machineTags("general") },
        { resourceType: "volume", tags: machineTags("general") },
      ],
      tags: machineTags("general"),
    });
    expect(general.keyName).toBeUndefined();
  });

  it("launch template of the Spot pool: arm64 image, no instance type of its own, extra security group, bigger root", () => {
    const { userData, ...spot } = template("spot").inputs;
    expect(typeof userData).toBe("string");
    expect(spot).toEqual({
      namePrefix: "dev-spot-",
      description: "dev: worker pool spot",
      imageId: "ami-arm64",
      iamInstanceProfile: { name: "dev-worker" },
      vpcSecurityGroupIds: ["sg-worker", "sg-0123456789abcdef0"],
      metadataOptions: { httpEndpoint: "enabled", httpTokens: "required", httpPutResponseHopLimit: 1 },
      blockDeviceMappings: [{ deviceName: "/dev/sda1", ebs: { volumeType: "gp3", volumeSize: 80, encrypted: "true", deleteOnTermination: "true" } }],
      privateDnsNameOptions: { hostnameType: "ip-name" },
      updateDefaultVersion: true,
      tagSpecifications: [
        { resourceType: "instance", tags: machineTags("spot") },
        { resourceType: "volume", tags: machineTags("spot") },
      ],
      tags: machineTags("spot"),
    });
  });

  it("on-demand group: the template's latest version over every private subnet, desired = min", () => {
    const { tags, ...general } = group("general").inputs;
    expect(general).toEqual({
      namePrefix: "dev-general-",
      vpcZoneIdentifiers: ["subnet-a", "subnet-b", "subnet-c"],
      minSize: 1,
      maxSize: 3,
      desiredCapacity: 1,
      launchTemplate: { id: "dev-pool-general-launch-template-id", version: "1" },
      capacityRebalance: false,
      // No readiness hook in this join: five minutes of warmup stand in for it.
      instanceRefresh: { strategy: "Rolling", preferences: { minHealthyPercentage: 100, maxHealthyPercentage: 110, skipMatching: true, autoRollback: true, instanceWarmup: "300" } },
    });
    expect(tags).toEqual([
      ...Object.entries(machineTags("general")).map(([key, value]) => ({ key, value, propagateAtLaunch: false })),
      { key: "k8s.io/cluster-autoscaler/enabled", value: "true", propagateAtLaunch: false },
      { key: "k8s.io/cluster-autoscaler/dev", value: "owned", propagateAtLaunch: false },
      { key: "k8s.io/cluster-autoscaler/node-template/label/kubeadm-ha/capacity-type", value: "on-demand", propagateAtLaunch: false },
      { key: "k8s.io/cluster-autoscaler/node-template/label/kubeadm-ha/pool", value: "general", propagateAtLaunch: false },
    ]);
  });

  it("Spot group: mixed instances policy, price-capacity-optimized, capacity rebalancing", () => {
    const { tags, ...spot } = group("spot").inputs;
    expect(spot).toEqual({
      namePrefix: "dev-spot-",
      vpcZoneIdentifiers: ["subnet-a", "subnet-b", "subnet-c"],
      minSize: 0,
      maxSize: 5,
      desiredCapacity: 2,
      mixedInstancesPolicy: {
        instancesDistribution: { onDemandBaseCapacity: 0, onDemandPercentageAboveBaseCapacity: 0, spotAllocationStrategy: "price-capacity-optimized" },
        launchTemplate: {
          launchTemplateSpecification: { launchTemplateId: "dev-pool-spot-launch-template-id", version: "1" },
          overrides: [{ instanceType: "m7g.large" }, { instanceType: "c7g.large" }],
        },
      },
      capacityRebalance: true,
      instanceRefresh: instanceRefresh(false),
    });
    expect(Object.fromEntries(tags.map((t: { key: string; value: string }) => [t.key, t.value]))).toEqual({
      ...machineTags("spot"),
      "k8s.io/cluster-autoscaler/enabled": "true",
      "k8s.io/cluster-autoscaler/dev": "owned",
      "k8s.io/cluster-autoscaler/node-template/label/kubeadm-ha/capacity-type": "spot",
      "k8s.io/cluster-autoscaler/node-template/label/kubeadm-ha/pool": "spot",
      "k8s.io/cluster-autoscaler/node-template/label/node.kubernetes.io/lifecycle": "spot",
      "k8s.io/cluster-autoscaler/node-template/label/workload": "batch",
      "k8s.io/cluster-autoscaler/node-template/taint/workload": "batch:NoSchedule",
      "k8s.io/cluster-autoscaler/node-template/taint/example.com/preemptible": ":PreferNoSchedule",
    });
    expect(tags.every((t: { propagateAtLaunch: boolean }) => t.propagateAtLaunch === false)).toBe(true);
  });

  it("never resets the desired capacity on `pulumi up`", () => {
    for (const pool of ["general", "spot"]) expect(childOpts.get(`dev-pool-${pool}-group`)?.ignoreChanges).toEqual(["desiredCapacity"]);
  });

  it("no launch template exists before the join token's secret version", () => {
    for (const pool of ["general", "spot"]) expect(childOpts.get(`dev-pool-${pool}-launch-template`)?.dependsOn).toEqual([tokenVersion]);
  });

  it("registers labels and taints through the rendered JoinConfiguration", () => {
    const spot = parse(written("spot", "/etc/kubeadm-ha/join.yaml"), { version: "1.1" });
    expect(spot).toEqual({
      apiVersion: "kubeadm.k8s.io/v1beta4",
      kind: "JoinConfiguration",
      discovery: { bootstrapToken: { apiServerEndpoint: ENDPOINT, token: TOKEN_PLACEHOLDER, caCertHashes: [HASH] } },
      nodeRegistration: {
        name: "__NODE_NAME__",
        criSocket: "unix:///run/containerd/containerd.sock",
        kubeletExtraArgs: [
          { name: "cloud-provider", value: "external" },
          { name: "node-ip", value: "__NODE_IP__" },
          { name: "node-labels", value: "kubeadm-ha/capacity-type=spot,kubeadm-ha/pool=spot,node.kubernetes.io/lifecycle=spot,workload=batch" },
        ],
        taints: [
          { key: "workload", value: "batch", effect: "NoSchedule" },
          { key: "example.com/preemptible", effect: "PreferNoSchedule" },
        ],
      },
      timeouts: { kubernetesAPICall: "5m0s" },
    });
    const general = parse(written("general", "/etc/kubeadm-ha/join.yaml"), { version: "1.1" });
    expect(general.nodeRegistration.taints).toEqual([]);
    expect(general.nodeRegistration.kubeletExtraArgs).toContainEqual({ name: "node-labels", value: "kubeadm-ha/capacity-type=on-demand,kubeadm-ha/pool=general" });
    expect(general.controlPlane).toBeUndefined();
  });

  it("writes a worker node.env that resolves name and address from IMDS", () => {
    expect(written("spot", "/etc/kubeadm-ha/node.env")).toBe(
      [
        "CLUSTER_NAME='dev'",
        "NODE_ROLE='worker'",
        "NODE_NAME='auto'",
        "NODE_IP='auto'",
        "INIT_NODE='false'",
        "KUBERNETES_VERSION='1.35.0'",
        "KUBERNETES_MINOR='1.35'",
        `API_ENDPOINT='${ENDPOINT}'`,
        "AWS_REGION='eu-west-1'",
        `SECRET_ID='${SECRET_ARN}'`,
        "BOOTSTRAP_BUCKET='dev-bootstrap-0123'",
        "BOOTSTRAP_PREFIX='bootstrap/'",
        `TOKEN_PLACEHOLDER='${TOKEN_PLACEHOLDER}'`,
        "",
      ].join("\n"),
    );
    expect(cloudConfig("spot").runcmd).toEqual([["/usr/local/lib/kubeadm-ha/boot.sh"]]);
  });

  it("user data carries no secret and is the pool's output", async () => {
    for (const pool of pools) {
      const text = decodeUserData(await valueOf(pool.userData), true);
      expect(text).not.toMatch(/-----BEGIN [A-Z ]*PRIVATE KEY-----/);
      expect(text.match(/\b[a-z0-9]{6}\.[a-z0-9]{16}\b/g) ?? []).toEqual([]);
      expect(text).toContain(TOKEN_PLACEHOLDER);
      expect(await valueOf(pool.userData)).toBe(template(pool.settings.name).inputs.userData);
    }
  });

  // test/render-cli.test.ts runs cloud-init's schema check on the stacks' pools' user data.

  it("user data leaves at least 4 KB of EC2's 16 KB", () => {
    for (const pool of ["general", "spot"]) expect(userDataBytes(template(pool).inputs.userData)).toBeLessThanOrEqual(USER_DATA_LIMIT - 4096);
  });

  it("exposes the filled settings and the group name", async () => {
    expect(pools[1].settings).toEqual({ ...SPOT, drain: { enabled: true, timeoutSeconds: 300 }, autoscaling: { enabled: true }, readyTimeoutSeconds: 900 });
    expect(pools[0].settings.capacityType).toBe("on-demand");
    expect(await valueOf(pools[1].autoScalingGroupName)).toBe("dev-spot-0001");
  });

  it("rejects bad pool settings before registering anything", () => {
    const before = regs.length;
    expect(() => new WorkerPool("bad", { join, pool: { name: "bad", minSize: 5, maxSize: 2, labels: { "node-role.kubernetes.io/worker": "" } } })).toThrow(
      "WorkerPool bad: invalid pool settings:\n" +
        '  - pool.labels["node-role.kubernetes.io/worker"]: "" — is in the kubernetes.io or k8s.io namespace, where a node may only label itself under kubelet.kubernetes.io/ or node.kubernetes.io/ (NodeRestriction), so kubelet would refuse to start; use one of those or a prefix of your own',
    );
    expect(() => new WorkerPool("bad", { join, pool: { name: "bad", minSize: 5, maxSize: 2 } })).toThrow(
      "WorkerPool bad: invalid pool settings:\n  - pool.minSize: 5 — must not exceed maxSize (2)",
    );
    expect(regs.length).toBe(before);
  });
});

describe("pool lifecycle, pure", () => {
  const pool = parseWorkerPool({ name: "p", drain: { timeoutSeconds: 600 }, readyTimeoutSeconds: 1200 });

  it("the readiness hook abandons, the drain hook continues, each with the pool's timeout", () => {
    expect(lifecycleHooks(pool, true, true)).toEqual([
      { name: "kubeadm-ha-node-ready", lifecycleTransition: "autoscaling:EC2_INSTANCE_LAUNCHING", defaultResult: "ABANDON", heartbeatTimeout: 1200 },
      { name: "kubeadm-ha-drain", lifecycleTransition: "autoscaling:EC2_INSTANCE_TERMINATING", defaultResult: "CONTINUE", heartbeatTimeout: 600 },
    ]);
    expect(lifecycleHooks(pool, false, true).map((h) => h.name)).toEqual(["kubeadm-ha-drain"]);
    expect(lifecycleHooks(pool, true, false).map((h) => h.name)).toEqual(["kubeadm-ha-node-ready"]);
    expect(lifecycleHooks(pool, false, false)).toEqual([]);
  });

  it.each([
    [true, true, true],
    [true, false, false],
    [false, true, false],
    [undefined, true, false],
  ])("handler %s, pool drain %s: drained %s", (handler, enabled, drained) => {
    expect(drains({ nodeTerminationHandler: handler }, parseWorkerPool({ name: "p", drain: { enabled } }))).toBe(drained);
  });

  it("instance refresh: launch before terminate, roll back on failure; a minute of warmup once InService means Ready", () => {
    expect(instanceRefresh(true)).toEqual({
      strategy: "Rolling",
      preferences: { minHealthyPercentage: 100, maxHealthyPercentage: 110, skipMatching: true, autoRollback: true, instanceWarmup: "60" },
    });
    expect(instanceRefresh(false).preferences!).toEqual(expect.objectContaining({ minHealthyPercentage: 100, autoRollback: true, instanceWarmup: "300" }));
  });

  it("a drained pool's machines carry the handler's managed tag; the group counts it against AWS's 50", () => {
    expect(machineTags("dev", pool, {}, true)["aws-node-termination-handler/dev"]).toBe("managed");
    expect(Object.keys(machineTags("dev", pool, {}, false)).filter((k) => k.startsWith("aws-node-termination-handler/"))).toEqual([]);
    expect(groupTags("dev", pool, {}, true).length - groupTags("dev", pool, {}, false).length).toBe(1);
  });

  it("autoscaling off: no discovery and no node-template tags", () => {
    expect(autoscalerTags("dev", parseWorkerPool({ name: "p", autoscaling: { enabled: false }, labels: { a: "b" } }))).toEqual({});
  });
});

describe("WorkerPool with the readiness hook and the termination handler", () => {
  let regs: Registration[];
  const join: WorkerJoin = {
    clusterName: "dev",
    kubernetesVersion: "1.35.0",
    region: "eu-west-1",
    apiEndpoint: ENDPOINT,
    caCertHash: HASH,
    secretArn: SECRET_ARN,
    bootstrapBucket: "dev-bootstrap-0123",
    instanceProfileName: "dev-worker",
    securityGroupId: "sg-worker",
    privateSubnetIds: ["subnet-a", "subnet-b", "subnet-c"],
    amiIds: { amd64: "ami-amd64", arm64: "ami-arm64" },
    readinessHook: true,
    nodeTerminationHandler: true,
  };
  let pools: WorkerPool[];

  beforeAll(async () => {
    regs = await setupMocks();
    pools = [
      new WorkerPool("lc-hooked", { join, pool: { name: "hooked", drain: { timeoutSeconds: 600 }, readyTimeoutSeconds: 1200, labels: { team: "a" } } }),
      new WorkerPool("lc-fixed", { join, pool: { name: "fixed", minSize: 2, maxSize: 2, drain: { enabled: false }, autoscaling: { enabled: false } } }),
    ];
    await valueOf(pulumi.all(pools.map((p) => p.userData)));
    await settle();
  });

  const byName = (n: string) => regs.find((r) => r.name === n)!;
  const written = (pool: string, file: string) =>
    parse(decodeUserData(byName(`lc-${pool}-launch-template`).inputs.userData, true), { version: "1.1" }).write_files.find((f: { path: string }) => f.path === file)
      .content as string;

  it("exactly the hooks each pool asks for, on its own group", () => {
    // Registration order across pools follows when each group's name resolves: compare by name.
    const hooks = ofType(regs, "aws:autoscaling/lifecycleHook:LifecycleHook").map((r) => [r.name, r.inputs]).sort(([a], [b]) => String(a).localeCompare(String(b)));
    expect(hooks).toEqual([
      ["lc-fixed-ready-hook", { autoscalingGroupName: "dev-fixed-0001", name: "kubeadm-ha-node-ready", lifecycleTransition: "autoscaling:EC2_INSTANCE_LAUNCHING", defaultResult: "ABANDON", heartbeatTimeout: 900 }],
      ["lc-hooked-drain-hook", { autoscalingGroupName: "dev-hooked-0001", name: "kubeadm-ha-drain", lifecycleTransition: "autoscaling:EC2_INSTANCE_TERMINATING", defaultResult: "CONTINUE", heartbeatTimeout: 600 }],
      ["lc-hooked-ready-hook", { autoscalingGroupName: "dev-hooked-0001", name: "kubeadm-ha-node-ready", lifecycleTransition: "autoscaling:EC2_INSTANCE_LAUNCHING", defaultResult: "ABANDON", heartbeatTimeout: 1200 }],
    ]);
  });

  it("only the drained pool's machines and group carry the managed tag; only the autoscaled group the autoscaler's", () => {
    const tagsOf = (pool: string) => Object.fromEntries(byName(`lc-${pool}-group`).inputs.tags.map((t: { key: string; value: string }) => [t.key, t.value]));
    expect(byName("lc-hooked-launch-template").inputs.tagSpecifications[0].tags["aws-node-termination-handler/dev"]).toBe("managed");
    expect(tagsOf("hooked")["aws-node-termination-handler/dev"]).toBe("managed");
    expect(tagsOf("hooked")).toEqual(expect.objectContaining({ "k8s.io/cluster-autoscaler/enabled": "true", "k8s.io/cluster-autoscaler/dev": "owned", "k8s.io/cluster-autoscaler/node-template/label/team": "a" }));
    expect(JSON.stringify(byName("lc-fixed-launch-template").inputs)).not.toContain("aws-node-termination-handler");
    expect(Object.keys(tagsOf("fixed")).filter((k) => k.startsWith("k8s.io/cluster-autoscaler/") || k.startsWith("aws-node-termination-handler/"))).toEqual([]);
  });

  it("the group rolls onto Ready nodes: a minute's warmup, launch before terminate, auto rollback", () => {
    for (const pool of ["hooked", "fixed"]) expect(byName(`lc-${pool}-group`).inputs.instanceRefresh).toEqual(instanceRefresh(true));
  });

  it("machines learn their hook from node.env and fetch node-ready.sh", () => {
    expect(written("hooked", "/etc/kubeadm-ha/node.env")).toContain("LAUNCH_HOOK='kubeadm-ha-node-ready'\n");
    expect(written("hooked", "/etc/kubeadm-ha/bundle.list")).toMatch(/^[0-9a-f]{64} 0755 lib\/node-ready\.sh$/m);
  });
});

describe("Cluster builds the configured pools", () => {
  let regs: Registration[];
  const opts = new Map<string, pulumi.CustomResourceOptions>();
  let cluster: Cluster;

  beforeAll(async () => {
    regs = await setupMocks();
    const config = parseConfig({
      region: "eu-west-1",
      clusterName: "wired",
      network: { availabilityZones: ["eu-west-1a", "eu-west-1b", "eu-west-1c"] },
      apiLoadBalancer: { allowedCidrs: ["203.0.113.0/24"] },
      workerPools: [GENERAL, SPOT],
    });
    cluster = new Cluster("wired", { config }, {
      transformations: [
        (a) => {
          opts.set(a.name, a.opts as pulumi.CustomResourceOptions);
          return undefined;
        },
      ],
    });
    await valueOf(pulumi.all(cluster.workerPools.map((p) => p.userData)));
    await settle();
  });

  it("one pool a config entry, each launch template waiting for the worker secret's version, the bootstrap objects, the control plane's rollout and the add-ons", async () => {
    expect(ofType(regs, "kubeadm-ha:index:WorkerPool").filter((r) => r.name.startsWith("wired-")).map((r) => r.name)).toEqual(["wired-pool-general", "wired-pool-spot"]);
    for (const pool of ["general", "spot"]) {
      const deps = (opts.get(`wired-pool-${pool}-launch-template`)?.dependsOn ?? []) as pulumi.Resource[];
      const urns = await Promise.all(deps.map((d) => valueOf(d.urn)));
      expect(urns.slice(0, 2)).toEqual([
        expect.stringMatching(/aws:secretsmanager\/secretVersion:SecretVersion::wired-secrets-worker-version$/),
        expect.stringMatching(/kubeadm-ha:index:BootstrapAssets::wired-bootstrap$/),
      ]);
      // Then the way out and the internal API listener the first boot uses (test/firstBoot.test.ts).
      const way = (u: string) => /::wired-(network-(nat-\d|private-default-route-\d|private-rta-\d|s3-endpoint)|api-listener)$/.test(u);
      expect(urns.slice(2).filter(way)).toHaveLength(urns.length - 5);
      // A new kubelet only after every master's gate and the scale-in (test/day2-wiring.test.ts),
      // then the add-ons; like every child, after the check of the change (ClusterState).
      expect(urns.slice(2).filter((u) => !way(u))).toEqual([
        expect.stringMatching(/dynamic:Rollout::wired-scale-in$/),
        expect.stringMatching(/kubeadm-ha:index:Addons::wired-addons$/),
        expect.stringMatching(/dynamic:ClusterState::wired-state$/),
      ]);
    }
  });

  it("joins workers with the worker role, group, secret and the private subnets", async () => {
    const j = await valueOf(pulumi.output(cluster.workerJoin));
    expect(j).toEqual({
      clusterName: "wired",
      kubernetesVersion: "1.35.0",
      region: "eu-west-1",
      apiEndpoint: expect.stringMatching(/^wired-api-.*\.elb\.eu-west-1\.amazonaws\.com:6443$/),
      caCertHash: expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
      secretArn: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:wired/bootstrap/worker-AbCdEf",
      bootstrapBucket: "wired-bootstrap-bucket",
      instanceProfileName: "wired-eu-west-1-worker",
      securityGroupId: "wired-sg-worker-id",
      privateSubnetIds: ["wired-network-private-0-id", "wired-network-private-1-id", "wired-network-private-2-id"],
      amiIds: { amd64: "ami-0123456789abcdef0", arm64: "ami-0123456789abcdef0" },
      externalCloudProvider: true,
      readinessHook: true,
      nodeTerminationHandler: true,
    });
    const lt = ofType(regs, "aws:ec2/launchTemplate:LaunchTemplate").find((r) => r.name === "wired-pool-spot-launch-template")!;
    expect(lt.inputs.iamInstanceProfile).toEqual({ name: "wired-eu-west-1-worker" });
    expect(await valueOf(pulumi.output(cluster.workerAutoScalingGroups))).toEqual({ general: "wired-general-0001", spot: "wired-spot-0001" });
  });
});

describe("Cluster checks every pool's tag count first", () => {
  it("throws before registering any child when a pool would exceed AWS's 50 tags", async () => {
    const regs = await setupMocks();
    const config = parseConfig({
      region: "eu-west-1",
      clusterName: "tagged",
      network: { availabilityZones: ["eu-west-1a", "eu-west-1b", "eu-west-1c"] },
      apiLoadBalancer: { allowedCidrs: ["203.0.113.0/24"] },
      workerPools: [SPOT],
      tags: Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`t${i}`, "x"])),
    });
    // 53 of the pool's own and the handler's managed tag: the cluster drains the pool by default.
    expect(() => new Cluster("tagged", { config })).toThrow("WorkerPool spot: the auto scaling group would carry 54 tags");
    await settle();
    expect(regs.filter((r) => r.name.startsWith("tagged-"))).toEqual([]);
  });
});
