/**
 * A worker pool: one launch template and one auto scaling group over the private subnets, whose
 * machines join the cluster on their own with `kubeadm join` whenever the group launches them.
 * The Cluster builds the pools of the stack config; a program can build more from the cluster's
 * `workerJoin` output:
 *
 *   new WorkerPool("gpu", { join: cluster.workerJoin, pool: { name: "gpu", instanceTypes: ["g6.xlarge"] } })
 *
 * Every machine of a group boots the same user data, so nothing machine-specific is rendered: the
 * node name (the EC2 private DNS name the AWS cloud controller requires) and the address are
 * placeholders the bootstrap fills from IMDSv2 (cloud-init/scripts/lib.sh, fetch-secrets.sh).
 *
 * Join credential. A machine the group launches weeks after `pulumi up` must still join, with
 * nobody there to mint a token. The worker secret in Secrets Manager (KMS-encrypted, readable only
 * by the worker instance role, components/iam.ts) always holds a valid bootstrap token: it lives
 * `certificates.joinTokenTtlHours` (24 by default) and every master rotates it into the secret
 * once half of that is gone (cloud-init/scripts/token-rotate.sh), as Cluster API refreshes its
 * join tokens. User data carries a placeholder, and the token lives on a machine only in memory
 * and under /run during the join. Whoever reads the secret can add nodes, under any name, only
 * until that token expires; if every master is down the token lapses, scale-out stops, and the
 * node's log says why (fetch-secrets.sh). Identity-based bootstrap as kOps does it (a controller on
 * the masters checks the machine's signed AWS identity) would remove the shared secret, at the cost
 * of a server, its certificate and its permissions to run.
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { NodeValues, joinConfiguration, toYaml } from "../cloud-init/kubeadm";
import { NodeDocuments, assertUserDataSize, encodeUserData, renderCloudConfig } from "../cloud-init/render";
import { ConfigError, NODE_TEMPLATE_TAG_PREFIX, RESERVED_LABEL_PREFIX, WorkerPoolConfig, WorkerPoolInput, architectureOf, parseWorkerPool } from "../config";
import { TERMINATION_HOOK_NAME, managedTagKey } from "./nodeTermination";
import { clusterTags } from "./tags";

/** Stand in the kubeadm documents for the node name and address; fetch-secrets.sh substitutes them at boot. */
export const NODE_NAME_PLACEHOLDER = "__NODE_NAME__";
export const NODE_IP_PLACEHOLDER = "__NODE_IP__";
/** Root device of Canonical's Ubuntu images: the block device mapping must name it to size the root volume. */
export const UBUNTU_ROOT_DEVICE = "/dev/sda1";
/** AWS allows 50 tags on an auto scaling group and on each resource a launch template tags. */
export const AWS_TAG_LIMIT = 50;
/**
 * AWS's recommended Spot strategy: the pools least likely to be interrupted, and among those the
 * cheapest. Plain `capacity-optimized` ignores price; `lowest-price` ignores interruptions.
 */
export const SPOT_ALLOCATION_STRATEGY = "price-capacity-optimized";
/** The launch lifecycle hook a new machine completes itself once its node is Ready (cloud-init/scripts/node-ready.sh). */
export const LAUNCH_HOOK_NAME = "kubeadm-ha-node-ready";

/** How a worker finds and joins the cluster: what a program needs to build a pool of its own. */
export interface WorkerJoin {
  /** Cluster name: AWS names, tags and the cluster-autoscaler discovery tag. Required; plain, it names resources. */
  clusterName: string;
  /** Kubernetes release (x.y.z) of the workers' kubelet and kubeadm. Required. */
  kubernetesVersion: string;
  /** AWS region of the cluster and its worker secret. Required. */
  region: string;
  /** The API endpoint `<nlb-dns>:6443`. Required. */
  apiEndpoint: pulumi.Input<string>;
  /** `sha256:<hex>` of the cluster CA's public key, which `kubeadm join` pins the API to. Required. */
  caCertHash: pulumi.Input<string>;
  /** ARN of the worker bootstrap secret, which holds the join token. Required. */
  secretArn: pulumi.Input<string>;
  /** The bootstrap bucket (`BootstrapAssets.bucketName`) workers fetch their scripts from. Required. */
  bootstrapBucket: pulumi.Input<string>;
  /** Instance profile of the worker role, the only one that may read that secret. Required. */
  instanceProfileName: pulumi.Input<string>;
  /** The cluster's worker security group. Required. */
  securityGroupId: pulumi.Input<string>;
  /** Private subnets, one a zone; every group spreads over all of them. Required. */
  privateSubnetIds: pulumi.Input<pulumi.Input<string>[]>;
  /** Ubuntu 24.04 AMI for each CPU architecture; a pool boots the one of its instance types. Required. */
  amiIds: { amd64: pulumi.Input<string>; arm64: pulumi.Input<string> };
  /** kubelet `--cloud-provider=external`, as the masters': the AWS cloud controller initializes the nodes. Default true. */
  externalCloudProvider?: boolean;
  /**
   * Each new machine waits in its group's launch lifecycle hook until it reports its node Ready;
   * the worker role must allow that report (NodeRoles `workerLaunchHook`), or the group terminates
   * every machine at the pool's readyTimeoutSeconds. Default false.
   */
  readinessHook?: boolean;
  /** The cluster runs aws-node-termination-handler (addons.nodeTerminationHandler): pools with drain.enabled are drained before their machines go. Default false. */
  nodeTerminationHandler?: boolean;
}

export interface WorkerPoolArgs {
  /** Where and how the machines join: `cluster.workerJoin`, or the stack's `workerJoin` output. Required. */
  join: WorkerJoin;
  /** The pool, by the rules and defaults of the stack config's `workerPools[]` (config.ts reference). Required. */
  pool: WorkerPoolInput;
  /** Extra tags on every AWS resource. Default none. */
  tags?: Record<string, string>;
  /** Resources the launch template waits for, such as the worker secret's version, so no machine boots before its token is stored. Default none. */
  dependsOn?: pulumi.Input<pulumi.Resource>[];
}

/** Labels a pool's nodes register with: the pool's own plus kubeadm-ha's, sorted so the render is stable. */
export function nodeLabels(pool: WorkerPoolConfig): Record<string, string> {
  const all: Record<string, string> = { ...pool.labels, [`${RESERVED_LABEL_PREFIX}pool`]: pool.name, [`${RESERVED_LABEL_PREFIX}capacity-type`]: pool.capacityType };
  return Object.fromEntries(Object.keys(all).sort().map((k) => [k, all[k]]));
}

export interface WorkerDocumentValues {
  clusterName: string;
  kubernetesVersion: string;
  region: string;
  apiEndpoint: string;
  caCertHash: string;
  secretArn: string;
  /** kubelet `--cloud-provider=external`. Default true. */
  externalCloudProvider?: boolean;
  /** The machine completes its group's launch lifecycle hook once its node is Ready. Default false. */
  readinessHook?: boolean;
}

/** Everything cloud-init writes on a machine of `pool`: env file and JoinConfiguration. */
export function workerDocuments(v: WorkerDocumentValues, pool: WorkerPoolConfig): NodeDocuments {
  const node: NodeValues = {
    name: NODE_NAME_PLACEHOLDER,
    ip: NODE_IP_PLACEHOLDER,
    labels: nodeLabels(pool),
    taints: pool.taints.map((t) => ({ key: t.key, ...(t.value !== undefined ? { value: t.value } : {}), effect: t.effect })),
    externalCloudProvider: v.externalCloudProvider,
  };
  return {
    env: {
      CLUSTER_NAME: v.clusterName,
      NODE_ROLE: "worker",
      // lib.sh resolves `auto` from IMDSv2: local-hostname (the EC2 private DNS name) and local-ipv4.
      NODE_NAME: "auto",
      NODE_IP: "auto",
      INIT_NODE: "false",
      KUBERNETES_VERSION: v.kubernetesVersion,
      KUBERNETES_MINOR: v.kubernetesVersion.split(".").slice(0, 2).join("."),
      API_ENDPOINT: v.apiEndpoint,
      AWS_REGION: v.region,
      SECRET_ID: v.secretArn,
      ...(v.readinessHook ? { LAUNCH_HOOK: LAUNCH_HOOK_NAME } : {}),
    },
    kubeadm: { "join.yaml": toYaml(joinConfiguration(node, { apiServerEndpoint: v.apiEndpoint, caCertHash: v.caCertHash, controlPlane: false })) },
    ...(v.readinessHook ? { needs: { launchHook: true } } : {}),
  };
}

/** Whether the pool's machines are drained before they go: the cluster runs the handler and the pool asks for it. */
export function drains(join: Pick<WorkerJoin, "nodeTerminationHandler">, pool: WorkerPoolConfig): boolean {
  return (join.nodeTerminationHandler ?? false) && pool.drain.enabled;
}

/**
 * Tags of the pool's machines and volumes (through the launch template) and of the template
 * itself. A drained pool's machines carry the handler's managed tag, the handler's only sign that
 * a machine is one to drain (components/nodeTermination.ts).
 */
export function machineTags(clusterName: string, pool: WorkerPoolConfig, tags: Record<string, string> = {}, drained = false): Record<string, string> {
  return clusterTags(
    clusterName,
    { ...tags, "kubeadm-ha/role": "worker", "kubeadm-ha/pool": pool.name, ...(drained ? { [managedTagKey(clusterName)]: "managed" } : {}) },
    `${clusterName}-worker-${pool.name}`,
  );
}

/**
 * cluster-autoscaler tags: auto-discovery (`--node-group-auto-discovery=asg:tag=k8s.io/cluster-autoscaler/enabled,k8s.io/cluster-autoscaler/<cluster>`)
 * and the node template, from which it predicts a new node's labels and taints when the group has
 * no node to copy them from (scale from zero). None with `autoscaling.enabled` false: the
 * autoscaler then neither finds the group nor may resize it (its IAM policy requires the
 * `k8s.io/cluster-autoscaler/<cluster>` tag).
 * https://github.com/kubernetes/autoscaler/blob/master/cluster-autoscaler/cloudprovider/aws/README.md
 */
export function autoscalerTags(clusterName: string, pool: WorkerPoolConfig): Record<string, string> {
  if (!pool.autoscaling.enabled) return {};
  const out: Record<string, string> = {
    "k8s.io/cluster-autoscaler/enabled": "true",
    [`k8s.io/cluster-autoscaler/${clusterName}`]: "owned",
  };
  for (const [k, v] of Object.entries(nodeLabels(pool))) out[`${NODE_TEMPLATE_TAG_PREFIX}label/${k}`] = v;
  for (const t of pool.taints) out[`${NODE_TEMPLATE_TAG_PREFIX}taint/${t.key}`] = `${t.value ?? ""}:${t.effect}`;
  return out;
}

/**
 * The group's tags. None propagates at launch: machines and volumes get theirs from the launch
 * template (the only way to tag volumes), so each tag has one source, and the autoscaler's tags
 * describe the group, not a machine.
 * @throws when the tags exceed AWS's 50 a group.
 */
export function groupTags(clusterName: string, pool: WorkerPoolConfig, tags: Record<string, string> = {}, drained = false): aws.types.input.autoscaling.GroupTag[] {
  const all = { ...machineTags(clusterName, pool, tags, drained), ...autoscalerTags(clusterName, pool) };
  const n = Object.keys(all).length;
  if (n > AWS_TAG_LIMIT)
    throw new Error(
      `WorkerPool ${pool.name}: the auto scaling group would carry ${n} tags (${Object.keys(tags).length} extra tags, ${Object.keys(pool.labels).length} labels, ${pool.taints.length} taints and kubeadm-ha's own); AWS allows ${AWS_TAG_LIMIT}`,
    );
  return Object.entries(all).map(([key, value]) => ({ key, value, propagateAtLaunch: false }));
}

/** True when the group needs a mixed instances policy: Spot, or more than one instance type. */
export function isMixed(pool: WorkerPoolConfig): boolean {
  return pool.capacityType === "spot" || pool.instanceTypes.length > 1;
}

/** How the group launches machines: the template alone, or a mixed instances policy over the listed types. */
export function launchSpec(
  pool: WorkerPoolConfig,
  template: { id: pulumi.Input<string>; version: pulumi.Input<string> },
): Pick<aws.autoscaling.GroupArgs, "launchTemplate" | "mixedInstancesPolicy"> {
  if (!isMixed(pool)) return { launchTemplate: { id: template.id, version: template.version } };
  const spot = pool.capacityType === "spot";
  return {
    mixedInstancesPolicy: {
      instancesDistribution: spot
        ? { onDemandBaseCapacity: 0, onDemandPercentageAboveBaseCapacity: 0, spotAllocationStrategy: SPOT_ALLOCATION_STRATEGY }
        : { onDemandBaseCapacity: 0, onDemandPercentageAboveBaseCapacity: 100, onDemandAllocationStrategy: "prioritized" },
      launchTemplate: {
        launchTemplateSpecification: { launchTemplateId: template.id, version: template.version },
        overrides: pool.instanceTypes.map((instanceType) => ({ instanceType })),
      },
    },
  };
}

/**
 * Rolling replacement when the launch template changes (new user data, AMI, instance type),
 * launching before terminating: no old machine goes until its replacement is in service
 * (minimum 100% healthy), one machine or a tenth of the group at a time (maximum 110%; AWS
 * replaces at least one). Machines already on the new version are skipped.
 *
 * With the readiness hook, "in service" means the node joined and is Ready: a machine that fails
 * to join is abandoned and terminated by its launch hook, so the refresh never terminates an old
 * machine for it; when the refresh then fails, `autoRollback` (the provider sends the group's
 * template as the desired configuration, which rollback requires) puts back the previous template
 * version and replaces what it already launched. Each old machine goes through the termination
 * hook, so it is drained first. Without the hook, a machine is in service once EC2 runs it, and
 * five minutes of warmup (package install and `kubeadm join`) stand in for readiness.
 * Checkpoints stay off: they pause for a fixed delay with nobody checking anything in between.
 */
export function instanceRefresh(readinessHook: boolean): aws.types.input.autoscaling.GroupInstanceRefresh {
  return {
    strategy: "Rolling",
    preferences: {
      minHealthyPercentage: 100,
      maxHealthyPercentage: 110,
      skipMatching: true,
      autoRollback: true,
      instanceWarmup: readinessHook ? "60" : "300",
    },
  };
}

/** A group's lifecycle hook, as `aws.autoscaling.LifecycleHook` takes it less the group's name. */
export interface HookSpec {
  name: string;
  lifecycleTransition: "autoscaling:EC2_INSTANCE_LAUNCHING" | "autoscaling:EC2_INSTANCE_TERMINATING";
  defaultResult: "CONTINUE" | "ABANDON";
  heartbeatTimeout: number;
}

/**
 * The pool's lifecycle hooks:
 * - readiness (with `readinessHook`): a new machine waits in Pending:Wait until node-ready.sh
 *   completes the action once its node is Ready; a machine that never reports is abandoned
 *   (terminated) after readyTimeoutSeconds, so a group never counts a machine that did not join.
 * - drain (when the pool is drained): a machine the group terminates waits in Terminating:Wait
 *   until the termination handler has drained it and completed the action, or drain.timeoutSeconds
 *   pass; then it goes anyway (CONTINUE), so a stuck drain cannot keep a machine forever.
 */
export function lifecycleHooks(pool: WorkerPoolConfig, readinessHook: boolean, drained: boolean): HookSpec[] {
  return [
    ...(readinessHook
      ? [{ name: LAUNCH_HOOK_NAME, lifecycleTransition: "autoscaling:EC2_INSTANCE_LAUNCHING" as const, defaultResult: "ABANDON" as const, heartbeatTimeout: pool.readyTimeoutSeconds }]
      : []),
    ...(drained
      ? [{ name: TERMINATION_HOOK_NAME, lifecycleTransition: "autoscaling:EC2_INSTANCE_TERMINATING" as const, defaultResult: "CONTINUE" as const, heartbeatTimeout: pool.drain.timeoutSeconds }]
      : []),
  ];
}

export class WorkerPool extends pulumi.ComponentResource {
  /** The pool's settings with every default filled. */
  public readonly settings: WorkerPoolConfig;
  /** Labels every node of the pool registers with, kubeadm-ha's included. */
  public readonly nodeLabels: Record<string, string>;
  /** ID of the pool's launch template. */
  public readonly launchTemplateId: pulumi.Output<string>;
  /** Name of the pool's auto scaling group (`<cluster>-<pool>-<suffix>`), for scaling it by hand or in the cluster-autoscaler's `--nodes`. */
  public readonly autoScalingGroupName: pulumi.Output<string>;
  /** The pool's user data as EC2 gets it (gzipped cloud-config, base64), the same for every machine. */
  public readonly userData: pulumi.Output<string>;

  constructor(name: string, args: WorkerPoolArgs, opts?: pulumi.ComponentResourceOptions) {
    let pool: WorkerPoolConfig;
    try {
      pool = parseWorkerPool(args.pool);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      throw new Error(`WorkerPool ${name}: invalid pool settings:\n` + e.problems.map((p) => `  - ${p}`).join("\n"));
    }
    const { join } = args;
    const tags = args.tags ?? {};
    const drained = drains(join, pool);
    const readinessHook = join.readinessHook ?? false;
    // Validated before anything registers, so a bad pool leaves nothing half-built.
    const asgTags = groupTags(join.clusterName, pool, tags, drained);
    super("kubeadm-ha:index:WorkerPool", name, {}, opts);
    this.settings = pool;
    this.nodeLabels = nodeLabels(pool);

    this.userData = pulumi.all([join.apiEndpoint, join.caCertHash, join.secretArn, join.bootstrapBucket]).apply(([apiEndpoint, caCertHash, secretArn, bootstrapBucket]) => {
      const text = renderCloudConfig(
        workerDocuments(
          { clusterName: join.clusterName, kubernetesVersion: join.kubernetesVersion, region: join.region, apiEndpoint, caCertHash, secretArn, externalCloudProvider: join.externalCloudProvider, readinessHook },
          pool,
        ),
        bootstrapBucket,
      );
      const encoded = encodeUserData(text);
      assertUserDataSize(`worker pool ${pool.name}`, encoded);
      return encoded;
    });

    const instanceTags = machineTags(join.clusterName, pool, tags, drained);
    const template = new aws.ec2.LaunchTemplate(
      `${name}-launch-template`,
      {
        namePrefix: `${join.clusterName}-${pool.name}-`,
        description: `${join.clusterName}: worker pool ${pool.name}`,
        imageId: join.amiIds[architectureOf(pool.instanceTypes[0])],
        // A mixed instances policy names the types itself.
        instanceType: isMixed(pool) ? undefined : pool.instanceTypes[0],
        iamInstanceProfile: { name: join.instanceProfileName },
        vpcSecurityGroupIds: [join.securityGroupId, ...pool.extraSecurityGroupIds],
        // Required tokens stop SSRF-style credential theft; hop limit 2 lets pods behind the
        // node's network namespace (the cloud controller, CSI) still reach IMDS.
        metadataOptions: { httpEndpoint: "enabled", httpTokens: "required", httpPutResponseHopLimit: 2 },
        blockDeviceMappings: [
          { deviceName: UBUNTU_ROOT_DEVICE, ebs: { volumeType: "gp3", volumeSize: pool.rootVolumeGiB, encrypted: "true", deleteOnTermination: "true" } },
        ],
        // The node name is IMDS local-hostname; with resource-based hostnames it would be the
        // instance id instead of the ip-a-b-c-d private DNS name the cloud controller looks up.
        privateDnsNameOptions: { hostnameType: "ip-name" },
        userData: this.userData,
        // New machines, and the instance refresh below, use the newest version.
        updateDefaultVersion: true,
        tagSpecifications: [
          { resourceType: "instance", tags: instanceTags },
          { resourceType: "volume", tags: instanceTags },
        ],
        tags: instanceTags,
      },
      { parent: this, dependsOn: args.dependsOn },
    );

    const group = new aws.autoscaling.Group(
      `${name}-group`,
      {
        namePrefix: `${join.clusterName}-${pool.name}-`,
        vpcZoneIdentifiers: join.privateSubnetIds,
        minSize: pool.minSize,
        maxSize: pool.maxSize,
        desiredCapacity: pool.desiredCapacity ?? pool.minSize,
        // The version number, not $Latest: a new template version then changes the group, which
        // is what starts the instance refresh.
        ...launchSpec(pool, { id: template.id, version: template.latestVersion.apply((v) => String(v)) }),
        // Spot: launch a replacement when AWS signals a machine is at elevated risk of interruption.
        capacityRebalance: pool.capacityType === "spot",
        instanceRefresh: instanceRefresh(readinessHook),
        tags: asgTags,
      },
      // The cluster-autoscaler (or a human) owns the desired capacity after creation; `pulumi up`
      // must not reset it and scale the pool back.
      { parent: this, ignoreChanges: ["desiredCapacity"] },
    );

    // Separate resources rather than the group's initialLifecycleHooks, which the provider applies
    // only when it creates a group (and replaces the group to change): an existing pool gets its
    // hooks in place. The machines the group launches before its hooks exist join unheld.
    for (const hook of lifecycleHooks(pool, readinessHook, drained))
      new aws.autoscaling.LifecycleHook(
        `${name}-${hook.name === LAUNCH_HOOK_NAME ? "ready" : "drain"}-hook`,
        { autoscalingGroupName: group.name, ...hook },
        { parent: this },
      );

    this.launchTemplateId = template.id;
    this.autoScalingGroupName = group.name;
    this.registerOutputs({
      settings: this.settings,
      nodeLabels: this.nodeLabels,
      launchTemplateId: this.launchTemplateId,
      autoScalingGroupName: this.autoScalingGroupName,
    });
  }
}
