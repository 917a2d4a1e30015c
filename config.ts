/**
 * The stack configuration: the one place that knows every key, its default and its rule.
 *
 * Components never read `pulumi.Config`; they receive the `ClusterConfig` this module returns.
 * Validation reports every problem at once, each as `<key>: <value> — <rule>`, and throws before
 * any resource is registered, so a bad stack config never half-applies.
 */
import * as pulumi from "@pulumi/pulumi";
import { Netmask } from "netmask";
import { z } from "zod";

/** Kubernetes minors this blueprint renders for. kubeadm's v1beta4 config API first shipped in 1.31. */
export const SUPPORTED_MINORS = { min: 31, max: 36 } as const;
/** The default Kubernetes release. */
export const DEFAULT_KUBERNETES_VERSION = "1.35.0";

const CLUSTER_NAME = /^[a-z]([a-z0-9-]{0,22}[a-z0-9])?$/;
const INSTANCE_TYPE = /^[a-z][a-z0-9-]*\.[a-z0-9]+$/;
const REGION = /^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$/;
const ZONE = /^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d[a-z]$/;
const GO_DURATION = /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/;
const POOL_NAME = /^[a-z]([a-z0-9-]{0,14}[a-z0-9])?$/;
const SECURITY_GROUP_ID = /^sg-[0-9a-f]{8}([0-9a-f]{9})?$/;

/** Graviton instance families (m7g, c8g, t4g, ...) need arm64 images. */
export function architectureOf(instanceType: string): "arm64" | "amd64" {
  return /^[a-z]+\d+[a-z]*g[a-z]*\./.test(instanceType) ? "arm64" : "amd64";
}

// Kubernetes label syntax (k8s.io/apimachinery validation.IsQualifiedName and IsValidLabelValue).
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

/** A label or taint key: an optional DNS subdomain prefix (at most 253 characters) and `/`, then a name of at most 63. */
export function isQualifiedName(key: string): boolean {
  const parts = key.split("/");
  if (parts.length > 2) return false;
  const name = parts[parts.length - 1];
  if (name.length > 63 || !LABEL_NAME.test(name)) return false;
  return parts.length === 1 || (parts[0].length <= 253 && DNS_SUBDOMAIN.test(parts[0]));
}

/** A label or taint value: empty, or at most 63 characters of the label name alphabet. */
export function isLabelValue(value: string): boolean {
  return value === "" || (value.length <= 63 && LABEL_NAME.test(value));
}

/** The prefix of the labels and tags kubeadm-ha sets itself. */
export const RESERVED_LABEL_PREFIX = "kubeadm-ha/";
/**
 * The cluster-autoscaler learns a pool's labels and taints from tags named with this prefix plus
 * `label/<key>` or `taint/<key>`, so it can scale a pool up from zero nodes.
 */
export const NODE_TEMPLATE_TAG_PREFIX = "k8s.io/cluster-autoscaler/node-template/";
/** AWS tag keys are at most 128 characters; the node-template tag prefix and `label/` use 46 of them. */
export const MAX_TEMPLATED_KEY_LENGTH = 128 - (NODE_TEMPLATE_TAG_PREFIX.length + "label/".length);

/** Labels kubelet and the AWS cloud controller set on every node themselves (k8s.io/kubelet/pkg/apis well_known_labels.go). */
const NODE_OWNED_LABELS = new Set([
  "kubernetes.io/hostname",
  "kubernetes.io/arch",
  "kubernetes.io/os",
  "beta.kubernetes.io/arch",
  "beta.kubernetes.io/os",
  "beta.kubernetes.io/instance-type",
  "node.kubernetes.io/instance-type",
  "topology.kubernetes.io/region",
  "topology.kubernetes.io/zone",
  "failure-domain.beta.kubernetes.io/region",
  "failure-domain.beta.kubernetes.io/zone",
]);

const LABEL_KEY_RULE = 'must be a Kubernetes label key: an optional DNS subdomain prefix and "/", then 1-63 letters, digits, "-", "_" or ".", starting and ending with a letter or digit';
const LABEL_VALUE_RULE = 'must be empty or 1-63 letters, digits, "-", "_" or ".", starting and ending with a letter or digit';

/**
 * Why a pool may not carry this node label, or undefined. kubelet registers the node with the
 * labels (`--node-labels`), and kubelet refuses to start with a label in the kubernetes.io or
 * k8s.io namespaces outside kubelet.kubernetes.io/ and node.kubernetes.io/, the ones the
 * NodeRestriction admission plugin lets a node set on itself
 * (https://kubernetes.io/docs/reference/access-authn-authz/admission-controllers/#noderestriction).
 */
export function nodeLabelKeyProblem(key: string): string | undefined {
  if (!isQualifiedName(key)) return LABEL_KEY_RULE;
  if (key.length > MAX_TEMPLATED_KEY_LENGTH)
    return `must be at most ${MAX_TEMPLATED_KEY_LENGTH} characters: the cluster-autoscaler's node-template tag holds it, and AWS tag keys are at most 128`;
  if (key.startsWith(RESERVED_LABEL_PREFIX)) return `is reserved: kubeadm-ha sets the ${RESERVED_LABEL_PREFIX}pool and ${RESERVED_LABEL_PREFIX}capacity-type labels itself`;
  const namespace = key.includes("/") ? key.split("/")[0] : "";
  const within = (domain: string) => namespace === domain || namespace.endsWith(`.${domain}`);
  if (!within("kubernetes.io") && !within("k8s.io")) return undefined;
  if (NODE_OWNED_LABELS.has(key)) return "is set by kubelet or the AWS cloud controller on every node; remove it";
  if (within("kubelet.kubernetes.io") || within("node.kubernetes.io")) return undefined;
  return "is in the kubernetes.io or k8s.io namespace, where a node may only label itself under kubelet.kubernetes.io/ or node.kubernetes.io/ (NodeRestriction), so kubelet would refuse to start; use one of those or a prefix of your own";
}

/** Parses a Go duration string (`15s`, `1m30s`, `500ms`) to milliseconds. */
export function durationMs(d: string): number {
  const unit: Record<string, number> = { ns: 1e-6, us: 1e-3, "µs": 1e-3, ms: 1, s: 1000, m: 60000, h: 3600000 };
  let total = 0;
  for (const m of d.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) total += parseFloat(m[1]) * unit[m[2]];
  return total;
}

/** True when `s` is an IPv4 CIDR in canonical form (no host bits set). */
export function isCanonicalCidr(s: string): boolean {
  if (!/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/.test(s)) return false;
  try {
    const block = new Netmask(s);
    return `${block.base}/${block.bitmask}` === s;
  } catch {
    return false;
  }
}

/** True when two canonical IPv4 CIDRs share any address. */
export function cidrsOverlap(a: string, b: string): boolean {
  const x = new Netmask(a);
  const y = new Netmask(b);
  return x.contains(y.base) || y.contains(x.base);
}

const cidr = (what: string) =>
  z.string({ error: `must be an IPv4 CIDR string (${what})` }).refine(isCanonicalCidr, {
    error: "must be an IPv4 CIDR such as 10.0.0.0/16 with no host bits set",
  });

const prefixBetween = (lo: number, hi: number, why: string) => (s: string) => {
  const bits = Number(s.split("/")[1]);
  return bits >= lo && bits <= hi ? undefined : `prefix must be /${lo} to /${hi} (${why})`;
};

const oddAtLeast3 = (what: string) =>
  z
    .int({ error: "must be a whole number" })
    .refine((n) => n >= 3 && n <= 7 && n % 2 === 1, { error: `must be 3, 5 or 7 (odd so ${what} keeps quorum; etcd advises at most 7)` });

const instanceType = (dflt: string) =>
  z.string().regex(INSTANCE_TYPE, { error: "must be an EC2 instance type such as m7i.large" }).default(dflt);

const duration = (dflt: string) =>
  z
    .string({ error: "must be a Go duration string such as 15s" })
    .regex(GO_DURATION, { error: "must be a Go duration string such as 15s or 1m30s", abort: true })
    .refine((d) => durationMs(d) > 0, { error: "must be greater than zero" })
    .default(dflt);

const KubernetesVersion = z
  .string({ error: "must be a string such as \"1.35.0\" (quote it in YAML)" })
  .regex(/^\d+\.\d+\.\d+$/, { error: "must be MAJOR.MINOR.PATCH such as 1.35.0, without a leading v", abort: true })
  .refine(
    (v) => {
      const [major, minor] = v.split(".").map(Number);
      return major === 1 && minor >= SUPPORTED_MINORS.min && minor <= SUPPORTED_MINORS.max;
    },
    {
      error:
        `must be 1.${SUPPORTED_MINORS.min} to 1.${SUPPORTED_MINORS.max}: kubeadm's v1beta4 config API first ` +
        `shipped in 1.${SUPPORTED_MINORS.min}, and 1.${SUPPORTED_MINORS.max} is the newest minor this blueprint is tested with`,
    },
  );

const ControlPlane = z.strictObject({
  count: oddAtLeast3("stacked etcd").default(3)
    .describe("Control plane machines, one API server and one stacked etcd member each."),
  instanceType: instanceType("m7i.large")
    .describe("EC2 instance type of a control plane machine."),
  rootVolumeGiB: z.int().min(20, { error: "must be at least 20 (images, etcd data and logs)" }).max(16384).default(50)
    .describe("Root volume size in GiB."),
});

const EtcdBackup = z.strictObject({
  enabled: z.boolean({ error: "must be true or false" }).default(true)
    .describe("Snapshot etcd to the stack's S3 bucket on a timer, from every etcd-holding machine (masters when stacked, etcd machines when external)."),
  intervalMinutes: z.int({ error: "must be a whole number of minutes" }).min(5, { error: "must be at least 5: a snapshot of a large keyspace takes minutes and must not overlap the next" }).max(1440, { error: "must be at most 1440 (one a day)" }).default(15)
    .describe("Minutes between snapshots; kOps takes one every 15 minutes."),
  retentionDays: z.int({ error: "must be a whole number of days" }).min(1, { error: "must be at least 1" }).max(3650, { error: "must be at most 3650" }).default(30)
    .describe("Days an S3 lifecycle rule keeps each snapshot (and each noncurrent version) before deleting it."),
});

const Etcd = z.strictObject({
  topology: z.enum(["stacked", "external"], { error: "must be stacked or external" }).default("stacked")
    .describe("`stacked`: etcd members on the control plane machines; `external`: etcd on its own machines."),
  nodeCount: oddAtLeast3("etcd").default(3)
    .describe("External etcd machines (external topology only)."),
  instanceType: instanceType("m7i.large")
    .describe("EC2 instance type of an external etcd machine."),
  rootVolumeGiB: z.int({ error: "must be a whole number" }).min(20, { error: "must be at least 20 (the etcd data directory, images and logs)" }).max(16384).default(50)
    .describe("Root volume size in GiB of an external etcd machine (encrypted gp3); it holds the data directory."),
  heartbeatIntervalMs: z.int({ error: "must be a whole number of milliseconds" }).min(1, { error: "must be at least 1: etcd requires a heartbeat interval above zero" }).default(100)
    .describe("etcd `--heartbeat-interval` in ms, for stacked and external members alike. etcd advises about the members' round-trip time; across zones of one AWS region that is 1-2 ms, so 100 leaves room for the disk and CPU stalls that dominate on EC2."),
  electionTimeoutMs: z.int({ error: "must be a whole number of milliseconds" }).min(1, { error: "must be greater than zero" }).max(50000, { error: "must be at most 50000: etcd refuses a longer election timeout" }).default(1000)
    .describe("etcd `--election-timeout` in ms: a follower that misses heartbeats this long calls an election. etcd requires 5 x heartbeatIntervalMs to 50000 and advises at least 10 x the round-trip time; 1000 rides out a one-second stall without a leader change and still fails over in about a second."),
  backup: EtcdBackup.prefault({}).describe("etcd snapshots to S3."),
});

const Network = z.strictObject({
  vpcCidr: cidr("the VPC").default("10.0.0.0/16")
    .describe("The VPC's address range, split evenly into one public and one private subnet a zone."),
  availabilityZones: z
    .array(z.string().regex(ZONE, { error: "must be an availability zone name such as eu-west-1a" }), {
      error: "must be a list of availability zone names",
    })
    .min(3, { error: "must list at least 3 zones so losing one zone leaves quorum" })
    .describe("Availability zones, at least three distinct; control plane machines are spread over them."),
  podCidr: cidr("pods").default("10.244.0.0/16")
    .describe("Pod network, kubeadm `networking.podSubnet`."),
  serviceCidr: cidr("services").default("10.96.0.0/12")
    .describe("Service network, kubeadm `networking.serviceSubnet`."),
  natGateways: z.enum(["perZone", "single"], { error: "must be perZone or single" }).default("perZone")
    .describe("`perZone`: a NAT gateway in every zone (no cross-zone egress dependency); `single`: one, cheaper."),
});

const ApiLoadBalancer = z.strictObject({
  scheme: z.enum(["internet-facing", "internal"], { error: "must be internet-facing or internal" }).default("internet-facing")
    .describe("NLB scheme."),
  allowedCidrs: z
    .array(cidr("an allowed client range"), { error: "must be a list of CIDRs" })
    .min(1, { error: "must list at least one CIDR, or nobody can reach the API" })
    .optional()
    .describe("Client CIDRs allowed to reach TCP 6443 on the load balancer people use. Required with an internet-facing load balancer, where nothing defaults to the whole internet: write `[0.0.0.0/0]` to open it on purpose. Default with an internal one: the VPC's range (network.vpcCidr). Nodes never need a range here: they reach the API through the internal load balancer, admitted by security group."),
});

const Certificates = z.strictObject({
  renewBeforeDays: z.int({ error: "must be a whole number of days" })
    .min(14, { error: "must be at least 14: the renewal timer runs twice a day, and a master or etcd member down for a week must still renew in time" })
    .max(300, { error: "must be at most 300: kubeadm signs for 365 days, so a larger value would renew again on every run" })
    .default(60)
    .describe("Masters and external etcd members renew their kubeadm-managed certificates and kubeconfigs this many days before the first expires (`kubeadm-ha-cert-renew.timer`, twice a day), one machine at a time, each only while the others are healthy."),
  joinTokenTtlHours: z.int({ error: "must be a whole number of hours" })
    .min(2, { error: "must be at least 2: the masters rotate it hourly, when half its lifetime is left" })
    .max(168, { error: "must be at most 168 (a week): anyone who reads the workers' secret can add nodes until it expires" })
    .default(24)
    .describe("Lifetime of the worker join token. The masters rotate it into the workers' secret every hour once half of it is gone (`kubeadm-ha-token-rotate.timer`), so a pool can add a node any time."),
});

const LeaderElection = z.strictObject({
  leaseDuration: duration("15s")
    .describe("`--leader-elect-lease-duration` of kube-controller-manager and kube-scheduler."),
  renewDeadline: duration("10s")
    .describe("`--leader-elect-renew-deadline`."),
  retryPeriod: duration("2s")
    .describe("`--leader-elect-retry-period`."),
});

const Addons = z.strictObject({
  installer: z.enum(["auto", "pulumi", "nodes"], { error: "must be auto, pulumi or nodes" }).default("auto")
    .describe("Who installs the add-ons. `pulumi`: Helm releases through @pulumi/kubernetes, which needs the machine running `pulumi up` to reach the API load balancer; `nodes`: the first master installs the same pinned charts with helm after `kubeadm init`; `auto`: `nodes` when apiLoadBalancer.scheme is internal, else `pulumi`."),
  cni: z.enum(["cilium", "calico", "none"], { error: "must be cilium, calico or none" }).default("cilium")
    .describe("Pod network add-on; its pod CIDR is network.podCidr. `none`: bring your own (nodes stay NotReady until you do)."),
  awsCloudControllerManager: z.boolean({ error: "must be true or false" }).default(true)
    .describe("The AWS cloud controller manager on the control plane; sets every kubelet's `--cloud-provider=external`. Off: nodes get no provider ID and no zone labels."),
  ebsCsiDriver: z.boolean({ error: "must be true or false" }).default(true)
    .describe("The EBS CSI driver and a default `gp3` StorageClass with encrypted volumes."),
  readinessTimeoutMinutes: z.int({ error: "must be a whole number of minutes" }).min(1, { error: "must be at least 1" }).max(120, { error: "must be at most 120" }).default(20)
    .describe("How long `pulumi up` waits for the API's /readyz through the load balancer before installing add-ons (installer pulumi)."),
  clusterAutoscaler: z.boolean({ error: "must be true or false" }).default(true)
    .describe("The cluster-autoscaler on the control plane, of the cluster's Kubernetes minor: it finds the pools with `autoscaling.enabled` by their tags and sets their desired capacity between minSize and maxSize from pending pods and idle nodes."),
  nodeTerminationHandler: z.boolean({ error: "must be true or false" }).default(true)
    .describe("aws-node-termination-handler in queue mode on the control plane, with an SQS queue fed by EventBridge (Spot interruption and rebalance, the pools' termination lifecycle hooks, instance stop and termination, scheduled retirement): it cordons and drains the nodes of the pools with `drain.enabled` before they go. Never a master."),
});

/** AWS allows a lifecycle hook a heartbeat timeout of 30 to 7200 seconds. */
export const LIFECYCLE_HOOK_TIMEOUT = { min: 30, max: 7200 } as const;
/** Bounds of a pool's drain timeout, the termination lifecycle hook's heartbeat timeout. */
export const DRAIN_TIMEOUT_SECONDS = { min: 60, max: LIFECYCLE_HOOK_TIMEOUT.max, default: 300 } as const;
/** Bounds of a pool's ready timeout, the launch lifecycle hook's heartbeat timeout. */
export const READY_TIMEOUT_SECONDS = { min: 300, max: LIFECYCLE_HOOK_TIMEOUT.max, default: 900 } as const;

const PoolDrain = z.strictObject({
  enabled: z.boolean({ error: "must be true or false" }).default(true)
    .describe("Cordon and drain a node before its machine goes: scale-in, instance refresh, Spot interruption or rebalance recommendation, a stop or termination through EC2, a scheduled retirement. Needs addons.nodeTerminationHandler."),
  timeoutSeconds: z.int({ error: "must be a whole number of seconds" })
    .min(DRAIN_TIMEOUT_SECONDS.min, { error: `must be at least ${DRAIN_TIMEOUT_SECONDS.min}: a drain waits out each pod's termination grace period (30 s by default)` })
    .max(DRAIN_TIMEOUT_SECONDS.max, { error: `must be at most ${DRAIN_TIMEOUT_SECONDS.max}, the longest heartbeat timeout AWS allows a lifecycle hook` })
    .default(DRAIN_TIMEOUT_SECONDS.default)
    .describe("The longest a drain may hold a machine the group terminates (the termination lifecycle hook's heartbeat timeout); then the machine goes, drained or not. A Spot interruption allows two minutes whatever this says."),
});

const PoolAutoscaling = z.strictObject({
  enabled: z.boolean({ error: "must be true or false" }).default(true)
    .describe("Tag the group for the cluster-autoscaler's discovery (addons.clusterAutoscaler, or one of your own), which then scales it between minSize and maxSize, from zero when minSize is 0. Off: the group keeps the size `pulumi up` or a human sets."),
});

const WorkerPool = z.strictObject({
  name: z.string().regex(POOL_NAME, { error: "must be 1-16 lowercase letters, digits or hyphens, starting with a letter" })
    .describe("Pool name, unique in the cluster; part of AWS resource names."),
  instanceTypes: z
    .array(z.string().regex(INSTANCE_TYPE, { error: "must be an EC2 instance type such as m7i.large" }), {
      error: "must be a list of EC2 instance types such as [m7i.large]",
    })
    .min(1, { error: "must list at least one instance type" })
    .default(["m7i.large"])
    .describe("EC2 instance types, all of one CPU architecture (one AMI a pool). More than one, or spot, gives the group a mixed instances policy; on-demand capacity prefers them in the order listed."),
  capacityType: z.enum(["on-demand", "spot"], { error: "must be on-demand or spot" }).default("on-demand")
    .describe("`on-demand`, or `spot`: every machine a Spot Instance from the price-capacity-optimized pools of the listed types."),
  minSize: z.int().min(0, { error: "must be 0 or more" }).default(1)
    .describe("Auto scaling group minimum."),
  maxSize: z.int().min(1, { error: "must be 1 or more" }).default(3)
    .describe("Auto scaling group maximum."),
  desiredCapacity: z.int().min(0, { error: "must be 0 or more" }).optional()
    .describe("Initial desired capacity; later left to the autoscaler (`pulumi up` never resets it). Default minSize."),
  labels: z
    .record(z.string(), z.string({ error: "must be a string (quote numbers and booleans in YAML)" }).refine(isLabelValue, { error: LABEL_VALUE_RULE }), {
      error: "must be a map of label keys to values",
    })
    .superRefine((labels, ctx) => {
      for (const key of Object.keys(labels)) {
        const rule = nodeLabelKeyProblem(key);
        if (rule) ctx.addIssue({ code: "custom", message: rule, path: [key], input: labels[key] });
      }
    })
    .default({})
    .describe("Node labels, applied by kubelet when the node registers; only kubelet.kubernetes.io/ and node.kubernetes.io/ of the kubernetes.io namespaces. kubeadm-ha adds `kubeadm-ha/pool` and `kubeadm-ha/capacity-type`."),
  taints: z
    .array(
      z.strictObject({
        key: z.string({ error: "must be a string" }).refine(isQualifiedName, { error: LABEL_KEY_RULE, abort: true })
          .refine((k) => k.length <= MAX_TEMPLATED_KEY_LENGTH, {
            error: `must be at most ${MAX_TEMPLATED_KEY_LENGTH} characters: the cluster-autoscaler's node-template tag holds it, and AWS tag keys are at most 128`,
          })
          .describe("Taint key, label key syntax."),
        value: z.string({ error: "must be a string (quote numbers and booleans in YAML)" }).refine(isLabelValue, { error: LABEL_VALUE_RULE }).optional()
          .describe("Taint value, label value syntax. Default none."),
        effect: z.enum(["NoSchedule", "PreferNoSchedule", "NoExecute"], { error: "must be NoSchedule, PreferNoSchedule or NoExecute" })
          .describe("Taint effect."),
      }),
      { error: "must be a list of taints such as [{key: dedicated, value: batch, effect: NoSchedule}]" },
    )
    .default([])
    .describe("Taints the node registers with, one a key."),
  rootVolumeGiB: z.int().min(20, { error: "must be at least 20 (images, logs and pod ephemeral storage)" }).max(16384).default(50)
    .describe("Root volume size in GiB (encrypted gp3)."),
  extraSecurityGroupIds: z
    .array(z.string().regex(SECURITY_GROUP_ID, { error: "must be a security group id such as sg-0123456789abcdef0" }), { error: "must be a list of security group ids" })
    .max(4, { error: "must list at most 4: with the worker security group that makes 5, EC2's default limit a network interface" })
    .default([])
    .describe("Security groups attached besides the cluster's worker group."),
  drain: PoolDrain.prefault({}).describe("Draining the pool's nodes before they go (addons.nodeTerminationHandler)."),
  autoscaling: PoolAutoscaling.prefault({}).describe("The cluster-autoscaler's control of the pool's size."),
  readyTimeoutSeconds: z.int({ error: "must be a whole number of seconds" })
    .min(READY_TIMEOUT_SECONDS.min, { error: `must be at least ${READY_TIMEOUT_SECONDS.min}: a new machine installs containerd and the Kubernetes packages, joins and starts its CNI before its node is Ready` })
    .max(READY_TIMEOUT_SECONDS.max, { error: `must be at most ${READY_TIMEOUT_SECONDS.max}, the longest heartbeat timeout AWS allows a lifecycle hook` })
    .default(READY_TIMEOUT_SECONDS.default)
    .describe("How long a new machine may take to join and report its node Ready (the launch lifecycle hook's heartbeat timeout). It completes the hook itself once Ready; past the timeout, or when it reports failure, the group terminates it, so an instance refresh never replaces old nodes with ones that did not join."),
});

const Schema = z.strictObject({
  region: z.string({ error: "must be set (pulumi config set aws:region <region>)" }).regex(REGION, {
    error: "must be an AWS region name such as eu-west-1",
  })
    .describe("AWS region, from `aws:region`."),
  clusterName: z
    .string({ error: "must be set (pulumi config set clusterName <name>)" })
    .regex(CLUSTER_NAME, {
      error: "must be 1-24 lowercase letters, digits or hyphens, start with a letter and not end with a hyphen (AWS load balancer names are 32 characters at most)",
    })
    .describe("Cluster name: tags, AWS names and the kubeconfig context."),
  kubernetesVersion: KubernetesVersion.default(DEFAULT_KUBERNETES_VERSION)
    .describe("Kubernetes release for kubeadm, kubelet and kubectl."),
  controlPlane: ControlPlane.prefault({}).describe("The masters."),
  etcd: Etcd.prefault({}).describe("etcd topology, chosen by one flag."),
  network: Network.describe("VPC, zones and in-cluster address ranges."),
  apiLoadBalancer: ApiLoadBalancer.prefault({}).describe("The Network Load Balancer in front of the API servers on TCP 6443."),
  addons: Addons.prefault({}).describe("In-cluster add-ons, each pinned to a version matched to the Kubernetes minor."),
  encryptionAtRest: z.boolean({ error: "must be true or false" }).default(true)
    .describe("Encrypt Secrets in etcd with an API server EncryptionConfiguration (secretbox, a 32-byte random key); the key lives only in Pulumi state and the control plane's secret. Takes effect at cluster creation."),
  certificates: Certificates.prefault({}).describe("Renewal of the machines' certificates and rotation of the worker join token."),
  restoreEncryptionKey: z
    .string({ error: "must be a string: the base64 key of the cluster whose snapshots you restore" })
    .refine((k) => /^[A-Za-z0-9+/]{43}=$/.test(k) && Buffer.from(k, "base64").length === 32, { error: "must be a 32-byte secretbox key in base64 (44 characters ending in =)" })
    .optional()
    .describe("Only when creating a stack that restores another cluster's etcd snapshots: that cluster's Secrets key (`secret` of `key1` in `encryption-at-rest/encryption-config.yaml` of its backup bucket), used instead of a new one. Set it with `--secret`. On an existing stack it would replace the key and every Secret in etcd would become unreadable."),
  autoRecovery: z.boolean({ error: "must be true or false" }).default(true)
    .describe("CloudWatch alarms on each master and etcd machine: EC2 auto recovery when the system status check fails, a reboot when the instance status check fails."),
  leaderElection: LeaderElection.prefault({}).describe("Leader election of kube-controller-manager and kube-scheduler; client-go requires leaseDuration > renewDeadline > 1.2 x retryPeriod."),
  workerPools: z
    .array(WorkerPool, {
      error: (iss) =>
        iss.input === undefined ? "must be set: the worker pools, or [] for a cluster without workers (a choice, never a default)" : "must be a list of pools",
    })
    .describe("Worker pools, each an auto scaling group over the private subnets; `[]` for none."),
  amiId: z.string().regex(/^ami-[0-9a-f]{8}([0-9a-f]{9})?$/, { error: "must be an AMI id such as ami-0123456789abcdef0" }).optional()
    .describe("AMI for every node; must be Ubuntu 24.04 or a derivative (the bootstrap uses apt and snap). Default: the newest Canonical Ubuntu 24.04 LTS image for the instance type's architecture."),
  tags: z.record(z.string(), z.string(), { error: "must be a map of strings" }).default({})
    .describe("Extra tags on every AWS resource."),
});

type ParsedConfig = z.output<typeof Schema>;
/** The validated config with every default filled, `apiLoadBalancer.allowedCidrs` included (`parseConfig`). */
export type ClusterConfig = Omit<ParsedConfig, "apiLoadBalancer"> & { apiLoadBalancer: Required<ParsedConfig["apiLoadBalancer"]> };
export type WorkerPoolConfig = z.output<typeof WorkerPool>;
export type EtcdTopology = ClusterConfig["etcd"]["topology"];
export type AddonsConfig = ClusterConfig["addons"];

/** Who installs the add-ons once `auto` is resolved: `nodes` when the API load balancer is internal. */
export function addonInstaller(c: Pick<ClusterConfig, "addons" | "apiLoadBalancer">): "pulumi" | "nodes" {
  if (c.addons.installer !== "auto") return c.addons.installer;
  return c.apiLoadBalancer.scheme === "internal" ? "nodes" : "pulumi";
}

/** Thrown with every problem in the stack config; nothing has been registered when it is. */
export class ConfigError extends Error {
  constructor(public readonly problems: string[]) {
    super(`Invalid stack config (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n` + problems.map((p) => `  - ${p}`).join("\n"));
    this.name = "ConfigError";
  }
}

// Map keys that are not plain words (label keys such as node.kubernetes.io/lifecycle) are quoted.
const keyOf = (path: PropertyKey[]) =>
  path.reduce<string>(
    (acc, p) =>
      typeof p === "number" ? `${acc}[${p}]` : !/^[A-Za-z_][A-Za-z0-9_-]*$/.test(String(p)) ? `${acc}[${JSON.stringify(String(p))}]` : acc ? `${acc}.${String(p)}` : String(p),
    "",
  );

function valueAt(raw: unknown, path: PropertyKey[]): unknown {
  let v: unknown = raw;
  for (const p of path) v = v !== null && typeof v === "object" ? (v as Record<PropertyKey, unknown>)[p] : undefined;
  return v;
}

const show = (v: unknown) => (v === undefined ? "(not set)" : JSON.stringify(v));
const problem = (key: string, value: unknown, rule: string) => `${key}: ${show(value)} — ${rule}`;

/**
 * Rules across fields. Each runs only when the fields it reads are individually valid, so a
 * single bad value gives one message, not a cascade.
 */
function crossFieldProblems(raw: Record<string, unknown>, c: Partial<ParsedConfig>): string[] {
  const out: string[] = [];
  const net = c.network;
  if (net) {
    const vpc = prefixBetween(16, 24, "AWS allows /16 to /28 and every zone needs two subnets of at least /28")(net.vpcCidr);
    if (vpc) out.push(problem("network.vpcCidr", net.vpcCidr, vpc));
    const svc = prefixBetween(12, 28, "kube-apiserver allows at most 2^20 service addresses")(net.serviceCidr);
    if (svc) out.push(problem("network.serviceCidr", net.serviceCidr, svc));
    const pod = prefixBetween(8, 20, "the controller manager gives every node a /24 from it")(net.podCidr);
    if (pod) out.push(problem("network.podCidr", net.podCidr, pod));
    // A range already rejected for its size is left out, so one bad value gives one message.
    const named = (
      [
        ["network.vpcCidr", net.vpcCidr, vpc],
        ["network.podCidr", net.podCidr, pod],
        ["network.serviceCidr", net.serviceCidr, svc],
      ] as const
    ).filter(([, , bad]) => !bad);
    for (let i = 0; i < named.length; i++)
      for (let j = i + 1; j < named.length; j++)
        if (cidrsOverlap(named[i][1], named[j][1]))
          out.push(problem(named[j][0], named[j][1], `must not overlap ${named[i][0]} (${named[i][1]})`));
    const seen = new Set<string>();
    net.availabilityZones.forEach((zone, i) => {
      if (seen.has(zone)) out.push(problem(`network.availabilityZones[${i}]`, zone, "zones must be distinct"));
      seen.add(zone);
    });
    if (seen.size < 3 && net.availabilityZones.length >= 3)
      out.push(problem("network.availabilityZones", net.availabilityZones, "must list at least 3 distinct zones so losing one zone leaves quorum"));
    if (c.region)
      net.availabilityZones.forEach((zone, i) => {
        if (!zone.startsWith(c.region!) || zone.length !== c.region!.length + 1)
          out.push(problem(`network.availabilityZones[${i}]`, zone, `must be a zone of region ${c.region}`));
      });
    const subnetBits = Math.ceil(Math.log2(2 * net.availabilityZones.length));
    const bits = Number(net.vpcCidr.split("/")[1]);
    if (!vpc && bits + subnetBits > 28)
      out.push(problem("network.vpcCidr", net.vpcCidr, `too small for ${2 * net.availabilityZones.length} subnets of at least /28`));
  }
  const le = c.leaderElection;
  if (le) {
    const [lease, renew, retry] = [le.leaseDuration, le.renewDeadline, le.retryPeriod].map(durationMs);
    if (!(lease > renew))
      out.push(problem("leaderElection.leaseDuration", le.leaseDuration, `must be longer than renewDeadline (${le.renewDeadline}), as client-go requires`));
    if (!(renew > 1.2 * retry))
      out.push(problem("leaderElection.renewDeadline", le.renewDeadline, `must be longer than 1.2 x retryPeriod (${le.retryPeriod}), as client-go requires`));
  }
  // An API open to the internet must be asked for: a forgotten allowedCidrs must not mean 0.0.0.0/0.
  const lb = c.apiLoadBalancer;
  if (lb && lb.scheme === "internet-facing" && lb.allowedCidrs === undefined)
    out.push(
      problem(
        "apiLoadBalancer.allowedCidrs",
        undefined,
        "must be set for an internet-facing load balancer: list the client ranges that may reach the API, or [0.0.0.0/0] to open it to the internet on purpose",
      ),
    );
  // No pod reaches IMDS (hop limit 1): the EBS CSI node plugin learns its instance from the provider ID the cloud controller sets.
  if (c.addons && c.addons.ebsCsiDriver && !c.addons.awsCloudControllerManager)
    out.push(
      problem(
        "addons.ebsCsiDriver",
        true,
        "needs addons.awsCloudControllerManager: pods cannot reach the instance metadata service, so the EBS CSI node plugin reads its instance ID and zone from the Node's provider ID, which only the cloud controller sets; turn the cloud controller on or the driver off",
      ),
    );
  if (c.encryptionAtRest === false && raw.restoreEncryptionKey !== undefined)
    out.push(problem("restoreEncryptionKey", "[secret]", "applies only with encryptionAtRest: true; remove it or turn encryption at rest on"));
  const etcdRaw = raw.etcd as Record<string, unknown> | undefined;
  if (c.etcd && c.etcd.topology === "stacked")
    for (const k of ["nodeCount", "instanceType", "rootVolumeGiB"])
      if (etcdRaw && etcdRaw[k] !== undefined)
        out.push(problem(`etcd.${k}`, etcdRaw[k], "applies only when etcd.topology is external; remove it or set the topology"));
  if (c.etcd && c.etcd.electionTimeoutMs < 5 * c.etcd.heartbeatIntervalMs)
    out.push(problem("etcd.electionTimeoutMs", c.etcd.electionTimeoutMs, `must be at least 5 x heartbeatIntervalMs (${c.etcd.heartbeatIntervalMs}), as etcd requires`));
  const pools = c.workerPools;
  if (pools) {
    const names = new Set<string>();
    pools.forEach((p, i) => {
      if (names.has(p.name)) out.push(problem(`workerPools[${i}].name`, p.name, "pool names must be unique"));
      names.add(p.name);
      out.push(...poolProblems(p, `workerPools[${i}]`));
    });
  }
  if (pools && c.addons) out.push(...poolAddonProblems(raw, c.addons));
  return out;
}

/**
 * A pool that asks for draining in a cluster without the add-on that drains: its termination hook
 * would hold every machine for the whole timeout with nobody to complete it. Only a setting
 * written in the stack config counts; the default follows the add-on. (Autoscaling needs no such
 * rule: the tags serve a cluster-autoscaler of your own as well as the add-on.)
 */
function poolAddonProblems(raw: Record<string, unknown>, addons: AddonsConfig): string[] {
  const out: string[] = [];
  const rawPools = Array.isArray(raw.workerPools) ? (raw.workerPools as unknown[]) : [];
  rawPools.forEach((rp, i) => {
    if (valueAt(rp, ["drain", "enabled"]) === true && !addons.nodeTerminationHandler)
      out.push(problem(`workerPools[${i}].drain.enabled`, true, "needs addons.nodeTerminationHandler, which does the draining; turn it on or remove this setting"));
  });
  return out;
}

/** Rules across one pool's fields, each problem keyed under `key`. */
function poolProblems(p: WorkerPoolConfig, key: string): string[] {
  const out: string[] = [];
  if (p.minSize > p.maxSize) out.push(problem(`${key}.minSize`, p.minSize, `must not exceed maxSize (${p.maxSize})`));
  const d = p.desiredCapacity;
  if (d !== undefined && (d < p.minSize || d > p.maxSize))
    out.push(problem(`${key}.desiredCapacity`, d, `must be between minSize (${p.minSize}) and maxSize (${p.maxSize})`));
  const seenTypes = new Set<string>();
  p.instanceTypes.forEach((t, j) => {
    if (seenTypes.has(t)) out.push(problem(`${key}.instanceTypes[${j}]`, t, "instance types must be distinct"));
    seenTypes.add(t);
    const arch = architectureOf(p.instanceTypes[0]);
    if (architectureOf(t) !== arch)
      out.push(problem(`${key}.instanceTypes[${j}]`, t, `is ${architectureOf(t)} but ${p.instanceTypes[0]} is ${arch}: a pool boots one AMI, so all its types need one CPU architecture`));
  });
  const seenTaints = new Set<string>();
  p.taints.forEach((t, j) => {
    if (seenTaints.has(t.key))
      out.push(problem(`${key}.taints[${j}].key`, t.key, "taint keys must be unique in a pool (the cluster-autoscaler's node-template tag holds one taint a key)"));
    seenTaints.add(t.key);
  });
  return out;
}

/** Parses each top-level section on its own so one bad section does not hide another's rules. */
function parsedSections(raw: Record<string, unknown>): Partial<ParsedConfig> {
  const out: Record<string, unknown> = {};
  for (const [key, schema] of Object.entries(Schema.shape)) {
    const r = (schema as z.ZodType).safeParse(raw[key]);
    if (r.success) out[key] = r.data;
  }
  return out as Partial<ParsedConfig>;
}

/**
 * Validates raw stack config and fills every default.
 * @throws ConfigError listing every problem, each naming the key, the value and the rule.
 */
export function parseConfig(raw: Record<string, unknown>): ClusterConfig {
  const result = Schema.safeParse(raw);
  const problems = result.success ? [] : schemaProblems(result.error.issues, raw);
  problems.push(...crossFieldProblems(raw, result.success ? result.data : parsedSections(raw)));
  if (problems.length > 0) throw new ConfigError(problems);
  const c = result.data!;
  // People inside the VPC (a bastion, Session Manager port forwarding) reach an internal load balancer.
  return { ...c, apiLoadBalancer: { ...c.apiLoadBalancer, allowedCidrs: c.apiLoadBalancer.allowedCidrs ?? [c.network.vpcCidr] } };
}

/** Settings that were renamed: the rule tells the user the new spelling instead of "not a known setting". */
function renamedRule(path: PropertyKey[], key: string, value: unknown): string | undefined {
  // Every other object with an instanceType still has one, so an unknown one is a pool's.
  if (key === "instanceType" && path.length > 0)
    return `was replaced by instanceTypes, a list: instanceTypes: [${typeof value === "string" ? value : "..."}]`;
  return undefined;
}

/** Stack config keys whose values are secrets. */
const SECRET_KEYS = new Set(["restoreEncryptionKey"]);

/** zod issues as `<key>: <value> — <rule>` lines; `prefix` is prepended to every key. */
function schemaProblems(issues: z.core.$ZodIssue[], raw: unknown, prefix: PropertyKey[] = []): string[] {
  const problems: string[] = [];
  for (const issue of issues) {
    const path = [...prefix, ...issue.path];
    if (issue.code === "unrecognized_keys") {
      for (const k of issue.keys) {
        const value = valueAt(raw, [...issue.path, k]);
        const rule = renamedRule(path, k, value) ?? "is not a known setting (see the config reference in README.md)";
        problems.push(problem(keyOf([...path, k]), value, rule));
      }
    } else {
      // A secret's value never appears in an error message.
      problems.push(problem(keyOf(path), SECRET_KEYS.has(String(path[0])) ? "[secret]" : valueAt(raw, issue.path), issue.message));
    }
  }
  return problems;
}

/** What a program passes for one pool: `workerPools[]` of the stack config, defaults not yet filled. */
export type WorkerPoolInput = z.input<typeof WorkerPool>;

/**
 * Validates one pool by exactly the rules of the stack config's `workerPools[]` and fills its
 * defaults, for programs that build a `WorkerPool` themselves. Problems are keyed under `key`.
 * @throws ConfigError listing every problem.
 */
export function parseWorkerPool(raw: WorkerPoolInput, key = "pool"): WorkerPoolConfig {
  const result = WorkerPool.safeParse(raw);
  const problems = result.success ? poolProblems(result.data, key) : schemaProblems(result.error.issues, raw, [key]);
  if (problems.length > 0) throw new ConfigError(problems);
  return result.data!;
}

/** Stack config keys that are plain strings; every other key holds an object or list, stored by Pulumi as JSON. */
const STRING_KEYS = new Set(["clusterName", "kubernetesVersion", "amiId", "restoreEncryptionKey"]);

/**
 * Reads the current stack's config (`kubeadm-ha:*` plus `aws:region`) and validates it.
 * Unknown `kubeadm-ha:` keys are errors: a typo must not fall back to a default silently.
 */
export function loadConfig(project = "kubeadm-ha"): ClusterConfig {
  const all = pulumi.runtime.allConfig();
  const raw: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(all)) {
    if (!k.startsWith(`${project}:`)) continue;
    const key = k.slice(project.length + 1);
    if (!STRING_KEYS.has(key)) {
      try {
        raw[key] = JSON.parse(v);
      } catch {
        raw[key] = v;
      }
    } else {
      raw[key] = v;
    }
  }
  if (all["aws:region"] !== undefined) raw.region = all["aws:region"];
  return parseConfig(raw);
}

/**
 * The config reference as a Markdown table, generated from the schema so the README cannot drift
 * from the code (a test compares them; `npm run docs:config` prints it).
 */
export function configReference(): string {
  type Json = { type?: string; description?: string; default?: unknown; properties?: Record<string, Json>; items?: Json; enum?: unknown[]; required?: string[] };
  const root = z.toJSONSchema(Schema, { io: "input", unrepresentable: "any" }) as Json;
  const rows: string[] = [];
  const typeOf = (j: Json): string => (j.enum ? j.enum.map((e) => `\`${e}\``).join(" \\| ") : j.type === "array" ? `list of ${j.items?.type === "object" ? "objects" : (j.items?.type ?? "values")}` : (j.type ?? "value"));
  const walk = (props: Record<string, Json>, required: string[], prefix: string) => {
    for (const [key, j] of Object.entries(props)) {
      const name = prefix + key;
      const stackKey = name === "region" ? "aws:region" : `kubeadm-ha:${name}`;
      const dflt = j.default !== undefined && !(typeof j.default === "object" && j.default !== null && Object.keys(j.default).length === 0 && !Array.isArray(j.default)) ? `\`${JSON.stringify(j.default)}\`` : required.includes(key) && j.default === undefined ? "required" : "";
      rows.push(`| \`${stackKey}\` | ${typeOf(j)} | ${dflt} | ${(j.description ?? "").replace(/\|/g, "\\|")} |`);
      if (j.type === "object" && j.properties) walk(j.properties, j.required ?? [], `${name}.`);
      if (j.type === "array" && j.items?.properties) walk(j.items.properties, j.items.required ?? [], `${name}[].`);
    }
  };
  walk(root.properties ?? {}, root.required ?? [], "");
  return ["| key | type | default | meaning |", "|---|---|---|---|", ...rows].join("\n") + "\n";
}
