/**
 * The stack configuration: the one place that knows every key, its default and its rule.
 *
 * Components never read `pulumi.Config`; they receive the `ClusterConfig` this module returns.
 * Validation reports every problem at once, each as `<key>: <value> — <rule>`, and throws before
 * any resource is registered, so a bad stack config never half-applies.
 */
import type * as Pulumi from "@pulumi/pulumi";
import { closest, distance } from "fastest-levenshtein";
import { Netmask } from "netmask";
import { z } from "zod";
import { AWS_PROVIDER_VERSION, INSTANCE_TYPES, REGIONS, minimumSize } from "./ec2";

/** Kubernetes minors this blueprint renders for. kubeadm's v1beta4 config API first shipped in 1.31. */
export const SUPPORTED_MINORS = { min: 31, max: 36 } as const;
/** The default Kubernetes release. */
export const DEFAULT_KUBERNETES_VERSION = "1.35.0";

const CLUSTER_NAME = /^[a-z]([a-z0-9-]{0,22}[a-z0-9])?$/;
const INSTANCE_TYPE = /^[a-z][a-z0-9-]*\.[a-z0-9-]+$/;
const REGION = /^[a-z]{2,4}(-[a-z]+)+-\d+$/;
const ZONE = /^[a-z]{2,4}(-[a-z]+)+-\d+[a-z]$/;
// Go's time.ParseDuration units; it accepts both micro signs, U+00B5 and U+03BC.
const GO_DURATION = /^(\d+(\.\d+)?(ns|us|\u00b5s|\u03bcs|ms|s|m|h))+$/;
const POOL_NAME = /^[a-z]([a-z0-9-]{0,14}[a-z0-9])?$/;
const SECURITY_GROUP_ID = /^sg-[0-9a-f]{8}([0-9a-f]{9})?$/;

/** Graviton instance families (a1, m7g, c8g, t4g, ...) need arm64 images. */
export function architectureOf(instanceType: string): "arm64" | "amd64" {
  return /^([a-z]+\d+[a-z]*g[a-z]*|a1)\./.test(instanceType) ? "arm64" : "amd64";
}

/**
 * The candidate closest to `input` by edit distance, when it is close enough to be the intended
 * one (at most 2 edits, and fewer than half the input's length): a "did you mean" for typos.
 */
export function suggestion(input: string, candidates: Iterable<string>): string | undefined {
  const list = [...candidates];
  if (list.length === 0) return undefined;
  const best = closest(input, list);
  const d = distance(input, best);
  return d > 0 && d <= 2 && d < input.length / 2 ? best : undefined;
}

const didYouMean = (input: string, candidates: Iterable<string>) => {
  const s = suggestion(input, candidates);
  return s === undefined ? "" : `; did you mean ${s}?`;
};

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

const UNIT_NS: Record<string, bigint> = {
  ns: 1n,
  us: 1000n,
  "\u00b5s": 1000n,
  "\u03bcs": 1000n,
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};
const NS_PER_MS = 1_000_000n;
/** Go's largest duration: math.MaxInt64 nanoseconds, 2562047h47m16.854775807s. */
export const MAX_GO_DURATION_NS = 2n ** 63n - 1n;

/**
 * A Go duration string (`15s`, `1m30s`, `500ms`) in nanoseconds, exactly; undefined when it
 * names a fraction of a nanosecond.
 */
export function durationNs(d: string): bigint | undefined {
  let total = 0n;
  for (const m of d.matchAll(/(\d+)(?:\.(\d+))?(ns|us|\u00b5s|\u03bcs|ms|s|m|h)/g)) {
    const unit = UNIT_NS[m[3]];
    const fraction = m[2] ?? "";
    const scaled = BigInt(fraction || "0") * unit;
    const scale = 10n ** BigInt(fraction.length);
    if (scaled % scale !== 0n) return undefined;
    total += BigInt(m[1]) * unit + scaled / scale;
  }
  return total;
}

/** Parses a Go duration string to milliseconds; exact for whole milliseconds, NaN below a nanosecond. */
export function durationMs(d: string): number {
  const ns = durationNs(d);
  if (ns === undefined) return NaN;
  return ns % NS_PER_MS === 0n ? Number(ns / NS_PER_MS) : Number(ns) / 1e6;
}

/**
 * Why a leader-election duration cannot be rendered as a kube-controller-manager flag, or
 * undefined. Whole milliseconds: the flags are written in ms or s, and client-go has no use for
 * finer timing.
 */
export function durationProblem(d: string): string | undefined {
  const ns = durationNs(d);
  if (ns === 0n) return "must be greater than zero";
  if (ns === undefined || ns % NS_PER_MS !== 0n)
    return "must be a whole number of milliseconds, such as 500ms or 1.5s: the flag is rendered in milliseconds, and client-go has no use for finer timing";
  if (ns > MAX_GO_DURATION_NS)
    return "must be at most 2562047h47m16.854s, Go's largest duration: kube-controller-manager and kube-scheduler would refuse the flag";
  return undefined;
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

const INSTANCE_TYPE_RULE = "must be an EC2 instance type such as m7i.large";

/** Why `t` is not an instance type EC2 has, or undefined. */
export function instanceTypeProblem(t: string): string | undefined {
  if (!INSTANCE_TYPE.test(t)) return INSTANCE_TYPE_RULE;
  if (!INSTANCE_TYPES.has(t))
    return `is not an EC2 instance type${didYouMean(t, INSTANCE_TYPES)} (the types @pulumi/aws ${AWS_PROVIDER_VERSION} lists; a type launched since needs a newer @pulumi/aws)`;
  return undefined;
}

/** kubeadm's preflight on a control plane machine (kubeadm constants ControlPlaneNumCPU and ControlPlaneMem). */
export const MASTER_MIN_VCPUS = 2;
/**
 * kubeadm refuses under 1700 MB of memory as the kernel reports it, which is less than the
 * machine's nominal size; a 2 GiB machine reports about 1.9 GiB, a 1.7 GiB one (c1.medium) less than 1700 MB.
 */
export const MASTER_MIN_MEMORY_MIB = 2048;

const gib = (mib: number) => `${(mib / 1024).toFixed(1).replace(/\.0$/, "")} GiB`;

/**
 * Why a control plane machine of this (existing) type fails kubeadm's preflight, or undefined:
 * `kubeadm init` and `join --control-plane` stop with NumCPU and Mem errors below 2 vCPUs and 1700 MB
 * (https://kubernetes.io/docs/reference/setup-tools/kubeadm/implementation-details/#preflight-checks).
 */
export function masterSizeProblem(t: string): string | undefined {
  const size = minimumSize(t);
  if (size.vcpus >= MASTER_MIN_VCPUS && (size.memoryMiB === undefined || size.memoryMiB >= MASTER_MIN_MEMORY_MIB)) return undefined;
  const has = `${size.vcpus} vCPU${size.vcpus === 1 ? "" : "s"}${size.memoryMiB === undefined ? "" : ` and ${gib(size.memoryMiB)}`}`;
  return `has ${has}; kubeadm's preflight refuses a control plane machine with fewer than 2 vCPUs or under 1700 MB of memory: use one with 2 vCPUs and 2 GiB or more, such as t3.medium or m7i.large`;
}

const ec2InstanceType = (extra?: (t: string) => string | undefined) =>
  z.string({ error: INSTANCE_TYPE_RULE }).superRefine((t, ctx) => {
    const rule = instanceTypeProblem(t) ?? extra?.(t);
    if (rule) ctx.addIssue({ code: "custom", message: rule, input: t });
  });

const duration = (dflt: string) =>
  z
    .string({ error: "must be a Go duration string such as 15s" })
    .regex(GO_DURATION, { error: "must be a Go duration string such as 15s or 1m30s", abort: true })
    .superRefine((d, ctx) => {
      const rule = durationProblem(d);
      if (rule) ctx.addIssue({ code: "custom", message: rule, input: d });
    })
    .default(dflt);

/** The version as Kubernetes names its releases: no leading zeros. */
const canonicalVersion = (v: string) => v.split(".").map((p) => p.replace(/^0+(?=\d)/, "")).join(".");

const KubernetesVersion = z
  .string({ error: "must be a string such as \"1.35.0\" (quote it in YAML)" })
  .regex(/^\d+\.\d+\.\d+$/, { error: "must be MAJOR.MINOR.PATCH such as 1.35.0, without a leading v", abort: true })
  .refine((v) => canonicalVersion(v) === v, {
    error: (iss) => `has a leading zero, and no Kubernetes release is named that way: write ${canonicalVersion(String(iss.input))}`,
    abort: true,
  })
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
  instanceType: ec2InstanceType(masterSizeProblem).default("m7i.large")
    .describe("EC2 instance type of a control plane machine: at least 2 vCPUs and 2 GiB (kubeadm's preflight)."),
  rootVolumeGiB: z.int({ error: "must be a whole number of GiB" }).min(20, { error: "must be at least 20 (images, etcd data and logs)" }).max(16384, { error: "must be at most 16384: an EBS gp3 volume holds at most 16 TiB" }).default(50)
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
  instanceType: ec2InstanceType().default("m7i.large")
    .describe("EC2 instance type of an external etcd machine."),
  rootVolumeGiB: z.int({ error: "must be a whole number of GiB" }).min(20, { error: "must be at least 20 (the etcd data directory, images and logs)" }).max(16384, { error: "must be at most 16384: an EBS gp3 volume holds at most 16 TiB" }).default(50)
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
    .array(z.string({ error: "must be an availability zone name such as eu-west-1a" }).regex(ZONE, { error: "must be an availability zone name such as eu-west-1a" }), {
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

/** AWS allows 50 tags a resource (https://docs.aws.amazon.com/tag-editor/latest/userguide/tagging.html). */
export const AWS_TAG_LIMIT = 50;
/** kubeadm-ha's own tags on a machine: the cluster tag, kubeadm-ha/cluster, Name, kubeadm-ha/role and kubeadm-ha/index or pool. */
const OWN_MACHINE_TAGS = 5;
const MAX_USER_TAGS = AWS_TAG_LIMIT - OWN_MACHINE_TAGS;
/** The characters every service kubeadm-ha tags accepts (EC2 allows more; IAM, S3, ELB and Auto Scaling do not). */
const TAG_CHARACTERS = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$/u;
const TAG_CHARACTERS_RULE = "letters, digits, spaces and _ . : / = + - @ only, the characters every AWS service accepts";
/** Keys kubeadm-ha sets itself; a user's value under one would be overwritten without a word. */
const OWN_TAG_KEY = /^(Name$|kubeadm-ha\/|kubernetes\.io\/cluster\/|k8s\.io\/cluster-autoscaler\/)/;

const codePoints = (s: string) => [...s].length;

/**
 * Why AWS would refuse this tag key, or kubeadm-ha would overwrite it; undefined when fine.
 * https://docs.aws.amazon.com/tag-editor/latest/userguide/tagging.html#tag-conventions
 */
export function tagKeyProblem(key: string): string | undefined {
  if (key.length === 0) return "has an empty key; AWS tag keys are 1 to 128 characters";
  if (codePoints(key) > 128) return `has a key of ${codePoints(key)} characters; AWS tag keys are at most 128`;
  if (/^aws:/i.test(key)) return `has a key starting with "${key.slice(0, 4)}", a prefix AWS reserves for its own tags in any case; rename the key`;
  if (!TAG_CHARACTERS.test(key)) return `has a key with a character AWS tags refuse: ${TAG_CHARACTERS_RULE}`;
  if (OWN_TAG_KEY.test(key))
    return "has a key kubeadm-ha sets itself (Name, kubeadm-ha/*, kubernetes.io/cluster/*, k8s.io/cluster-autoscaler/*), so this value would be overwritten; use another key";
  return undefined;
}

/** Why AWS would refuse this tag value, or undefined. */
export function tagValueProblem(value: string): string | undefined {
  if (codePoints(value) > 256) return `is ${codePoints(value)} characters; AWS tag values are at most 256`;
  if (/^aws:/i.test(value)) return `starts with "${value.slice(0, 4)}", a prefix AWS reserves for its own tags in keys and values alike; change the value`;
  if (!TAG_CHARACTERS.test(value)) return `has a character AWS tags refuse: ${TAG_CHARACTERS_RULE}`;
  return undefined;
}

const WorkerPool = z.strictObject({
  name: z.string().regex(POOL_NAME, { error: "must be 1-16 lowercase letters, digits or hyphens, starting with a letter" })
    .describe("Pool name, unique in the cluster; part of AWS resource names."),
  instanceTypes: z
    .array(ec2InstanceType(), {
      error: "must be a list of EC2 instance types such as [m7i.large]",
    })
    .min(1, { error: "must list at least one instance type" })
    .default(["m7i.large"])
    .describe("EC2 instance types, all of one CPU architecture (one AMI a pool). More than one, or spot, gives the group a mixed instances policy; on-demand capacity prefers them in the order listed."),
  capacityType: z.enum(["on-demand", "spot"], { error: "must be on-demand or spot" }).default("on-demand")
    .describe("`on-demand`, or `spot`: every machine a Spot Instance from the price-capacity-optimized pools of the listed types."),
  minSize: z.int({ error: "must be a whole number" }).min(0, { error: "must be 0 or more" }).default(1)
    .describe("Auto scaling group minimum."),
  maxSize: z.int({ error: "must be a whole number" }).min(1, { error: "must be 1 or more" }).default(3)
    .describe("Auto scaling group maximum."),
  desiredCapacity: z.int({ error: "must be a whole number" }).min(0, { error: "must be 0 or more" }).optional()
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
  rootVolumeGiB: z.int({ error: "must be a whole number of GiB" }).min(20, { error: "must be at least 20 (images, logs and pod ephemeral storage)" }).max(16384, { error: "must be at most 16384: an EBS gp3 volume holds at most 16 TiB" }).default(50)
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
  region: z
    .string({ error: "must be set (pulumi config set aws:region <region>)" })
    .regex(REGION, { error: "must be an AWS region name such as eu-west-1", abort: true })
    .refine((r) => REGIONS.has(r), {
      error: (iss) =>
        `is not an AWS region${didYouMean(String(iss.input), REGIONS)} (the regions @pulumi/aws ${AWS_PROVIDER_VERSION} lists; a region opened since needs a newer @pulumi/aws)`,
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
    .describe("Encrypt Secrets in etcd with an API server EncryptionConfiguration (secretbox, a 32-byte random key); the key lives only in Pulumi state and the control plane's secret. Turning it on for a running cluster rolls the masters one at a time; turning it off is refused (README: Upgrading)."),
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
    .describe("AMI for every node; must be Ubuntu 24.04 or a derivative (the bootstrap uses apt and snap). Default: the newest Canonical Ubuntu 24.04 LTS image for the instance type's architecture when the stack is created, pinned from then on (README: Upgrading). A new value replaces the masters and etcd members one at a time and rolls the pools."),
  tags: z
    .record(z.string(), z.string({ error: "must be a string (quote numbers and booleans in YAML)" }), { error: "must be a map of tag keys to string values" })
    .superRefine((tags, ctx) => {
      for (const [key, value] of Object.entries(tags)) {
        const rule = tagKeyProblem(key) ?? tagValueProblem(value);
        if (rule) ctx.addIssue({ code: "custom", message: rule, path: [key], input: value });
      }
      const n = Object.keys(tags).length;
      if (n > MAX_USER_TAGS)
        ctx.addIssue({ code: "custom", message: `has ${n} tags; AWS allows ${AWS_TAG_LIMIT} a resource and kubeadm-ha puts up to ${AWS_TAG_LIMIT - MAX_USER_TAGS} of its own on each machine, so at most ${MAX_USER_TAGS}`, input: tags });
    })
    .default({})
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

/** Longest value or map key a message repeats in full; longer ones are cut and their length given. */
export const MAX_SHOWN = 80;

/** `text` as given when short; else its start, an ellipsis and its length, so a 20,000-character value does not fill the terminal. */
function shorten(text: string, length: number): string {
  return text.length <= MAX_SHOWN ? text : `${text.slice(0, MAX_SHOWN - 20)}… (${length} characters)`;
}

// Map keys that are not plain words (label keys such as node.kubernetes.io/lifecycle) are quoted.
const keyOf = (path: PropertyKey[]) =>
  path.reduce<string>((acc, p) => {
    if (typeof p === "number") return `${acc}[${p}]`;
    const k = String(p);
    if (!/^[A-Za-z_][A-Za-z0-9_-]*$/.test(k)) return `${acc}[${shorten(JSON.stringify(k), codePoints(k))}]`;
    return acc ? `${acc}.${shorten(k, codePoints(k))}` : shorten(k, codePoints(k));
  }, "");

function valueAt(raw: unknown, path: PropertyKey[]): unknown {
  let v: unknown = raw;
  for (const p of path) v = v !== null && typeof v === "object" ? (v as Record<PropertyKey, unknown>)[p] : undefined;
  return v;
}

const show = (v: unknown) => {
  if (v === undefined) return "(not set)";
  const json = JSON.stringify(v);
  return shorten(json, typeof v === "string" ? codePoints(v) : json.length);
};
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
    // Exact: valid durations are whole milliseconds, and Go's largest is past 2^53 nanoseconds.
    const [lease, renew, retry] = [le.leaseDuration, le.renewDeadline, le.retryPeriod].map((d) => durationNs(d)!);
    if (!(lease > renew))
      out.push(problem("leaderElection.leaseDuration", le.leaseDuration, `must be longer than renewDeadline (${le.renewDeadline}), as client-go requires`));
    if (!(5n * renew > 6n * retry))
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
  const amiProblem = c.amiId !== undefined && c.controlPlane && c.etcd && c.workerPools ? sharedAmiProblem(c.controlPlane, c.etcd, c.workerPools) : undefined;
  if (amiProblem) out.push(problem("amiId", c.amiId, amiProblem));
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

/**
 * Why one `amiId` cannot boot every machine, or undefined: an AMI is built for one CPU
 * architecture, and the masters, external etcd members and pools may mix amd64 and arm64 types.
 */
function sharedAmiProblem(
  cp: ClusterConfig["controlPlane"],
  etcd: ClusterConfig["etcd"],
  pools: WorkerPoolConfig[],
): string | undefined {
  const machines: Array<[string, string]> = [["controlPlane.instanceType", cp.instanceType]];
  if (etcd.topology === "external") machines.push(["etcd.instanceType", etcd.instanceType]);
  pools.forEach((p, i) => machines.push([`workerPools[${i}].instanceTypes[0]`, p.instanceTypes[0]]));
  const [firstKey, firstType] = machines[0];
  const arch = architectureOf(firstType);
  const other = machines.find(([, t]) => architectureOf(t) !== arch);
  if (!other) return undefined;
  return (
    `is one image for every machine, but ${firstKey} ${firstType} is ${arch} and ${other[0]} ${other[1]} is ${architectureOf(other[1])}: ` +
    "use instance types of one architecture, or remove amiId so each architecture boots its own Ubuntu image"
  );
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

const TYPE_RULES: Record<string, string> = {
  string: "must be a string",
  number: "must be a number",
  int: "must be a whole number",
  boolean: "must be true or false",
  object: "must be a map of settings",
  array: "must be a list",
  record: "must be a map",
};

/**
 * Our wording for any issue a schema above has no message of its own for, so no problem reaches
 * the user in zod's English ("Invalid input: expected string, received number").
 */
export function fallbackRule(issue: z.core.$ZodRawIssue): string {
  const bound = (origin: string, which: "least" | "most", n: unknown) =>
    origin === "array" ? `must list at ${which} ${n}` : origin === "string" ? `must be at ${which} ${n} characters` : `must be at ${which} ${n}`;
  switch (issue.code) {
    case "invalid_type":
      if (issue.input === undefined) return "must be set";
      return TYPE_RULES[issue.expected] ?? `must be a ${issue.expected}`;
    case "too_small":
      return bound(issue.origin, "least", issue.minimum);
    case "too_big":
      return bound(issue.origin, "most", issue.maximum);
    case "invalid_value":
      return `must be ${issue.values.map((v) => String(v)).join(" or ")}`;
    default:
      return "is not valid here (see the config reference in README.md)";
  }
}

const PARSE = { error: fallbackRule } as const;

/** Parses each top-level section on its own so one bad section does not hide another's rules. */
function parsedSections(raw: Record<string, unknown>): Partial<ParsedConfig> {
  const out: Record<string, unknown> = {};
  for (const [key, schema] of Object.entries(Schema.shape)) {
    const r = (schema as z.ZodType).safeParse(raw[key], PARSE);
    if (r.success) out[key] = r.data;
  }
  return out as Partial<ParsedConfig>;
}

/**
 * Validates raw stack config and fills every default.
 * @throws ConfigError listing every problem, each naming the key, the value and the rule.
 */
export function parseConfig(raw: Record<string, unknown>): ClusterConfig {
  const result = Schema.safeParse(raw, PARSE);
  const problems = result.success ? [] : schemaProblems(result.error.issues, raw, Schema);
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

/** The settings an object of `schema` at `path` knows, for a "did you mean". */
function knownKeysAt(schema: z.core.$ZodType, path: PropertyKey[]): string[] {
  type Def = { innerType?: z.core.$ZodType; element?: z.core.$ZodType; shape?: Record<string, z.core.$ZodType> };
  let s: z.core.$ZodType | undefined = schema;
  let i = 0;
  while (s !== undefined) {
    const def = s._zod.def as unknown as Def;
    if (def.innerType) {
      s = def.innerType; // default, prefault, optional
      continue;
    }
    if (i === path.length) return def.shape ? Object.keys(def.shape) : [];
    const step = path[i++];
    s = def.element ?? def.shape?.[String(step)];
  }
  return [];
}

/** zod issues as `<key>: <value> — <rule>` lines; `prefix` is prepended to every key. */
function schemaProblems(issues: z.core.$ZodIssue[], raw: unknown, schema: z.core.$ZodType, prefix: PropertyKey[] = []): string[] {
  const problems: string[] = [];
  for (const issue of issues) {
    const path = [...prefix, ...issue.path];
    if (issue.code === "unrecognized_keys") {
      for (const k of issue.keys) {
        const value = valueAt(raw, [...issue.path, k]);
        const rule =
          renamedRule(path, k, value) ?? `is not a known setting${didYouMean(k, knownKeysAt(schema, issue.path))} (see the config reference in README.md)`;
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
  const result = WorkerPool.safeParse(raw, PARSE);
  const problems = result.success ? poolProblems(result.data, key) : schemaProblems(result.error.issues, raw, WorkerPool, [key]);
  if (problems.length > 0) throw new ConfigError(problems);
  return result.data!;
}

/** Stack config keys that are plain strings; every other key holds an object or list, stored by Pulumi as JSON. */
const STRING_KEYS = new Set(["clusterName", "kubernetesVersion", "amiId", "restoreEncryptionKey"]);

/** Namespaces read by the providers the program uses (aws:profile, kubernetes:context, ...) and by Pulumi itself. */
export const PROVIDER_NAMESPACES: readonly string[] = ["aws", "kubernetes", "tls", "random", "pulumi"];

/**
 * Top-level settings whose values must be Pulumi secrets (`pulumi config set --secret`), refused in
 * plain text before anything is created, and never repeated in a message. Only
 * `restoreEncryptionKey` holds a key: every other key of the cluster is generated by the program
 * and lives in state as a secret.
 */
export const SECRET_KEYS: ReadonlySet<string> = new Set<string>(["restoreEncryptionKey"]);

/** Non-printable and non-ASCII characters as \u escapes: a Cyrillic "а" must not pass for an "a" in a message. */
const visible = (s: string) => s.replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);

/**
 * Pulumi's runtime, loaded when the stack's config is read: validation, the config reference and
 * the scripts need none of its two seconds of loading (nor does each mutant's test run).
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const pulumiRuntime = (): typeof Pulumi.runtime => (require("@pulumi/pulumi") as typeof Pulumi).runtime;

// @pulumi/pulumi 3.248 exports runtime.isConfigSecret without declaring it.
const isConfigSecret = (key: string): boolean => (pulumiRuntime() as unknown as { isConfigSecret(k: string): boolean }).isConfigSecret(key);

/** True when `namespace` is `project` mistyped: another case, a lookalike character, an edit or two. */
function looksLike(namespace: string, project: string): boolean {
  const folded = namespace.normalize("NFKC").toLowerCase();
  return folded === project.toLowerCase() || suggestion(folded, [project.toLowerCase()]) !== undefined;
}

/**
 * The project's settings in the stack's config, and a problem for every key the program would
 * never read: a key without a namespace, in a misspelt or foreign namespace, or a flat dotted key
 * such as `kubeadm-ha:controlPlane.count` (Pulumi does not nest keys at dots). Each would
 * otherwise leave its setting at the default without a word. Settings in {@link SECRET_KEYS} set
 * in plain text are refused too, without repeating their value.
 */
export function stackSettings(
  all: Record<string, string>,
  project = "kubeadm-ha",
  secretKeys: ReadonlySet<string> = SECRET_KEYS,
  isSecret: (key: string) => boolean = isConfigSecret,
): { raw: Record<string, unknown>; problems: string[] } {
  const raw: Record<string, unknown> = {};
  const problems: string[] = [];
  const valueOf = (key: string, v: string): unknown => {
    if (STRING_KEYS.has(key)) return v;
    try {
      return JSON.parse(v);
    } catch {
      return v;
    }
  };
  for (const [k, v] of Object.entries(all)) {
    const colon = k.indexOf(":");
    const namespace = colon < 0 ? undefined : k.slice(0, colon);
    const key = colon < 0 ? k : k.slice(colon + 1);
    const fix = `write it as ${project}:${visible(key)}`;
    if (namespace === project) {
      if (/[.[]/.test(key)) {
        const top = key.split(/[.[]/)[0];
        problems.push(
          problem(`${project}:${visible(key)}`, valueOf(key, v),
            `is one flat key: Pulumi does not nest keys at dots, so ${key} would keep its default; nest it under ${project}:${top} in Pulumi.<stack>.yaml, or run pulumi config set --path '${key}' ${/^[^\s'"]{1,40}$/.test(v) ? v : "<value>"}`),
        );
      } else if (secretKeys.has(key) && !isSecret(k)) {
        problems.push(`${key}: (value not shown) — must be a secret, not plain text: pulumi config set --secret ${project}:${key} <value>`);
      } else {
        raw[key] = valueOf(key, v);
      }
    } else if (namespace === undefined) {
      problems.push(problem(visible(k), valueOf(key, v), `has no namespace, so the program never reads it; ${fix}`));
    } else if (looksLike(namespace, project)) {
      const shown = visible(namespace) === namespace ? namespace : `${visible(namespace)} (non-ASCII characters shown as \\u escapes)`;
      problems.push(problem(visible(k), valueOf(key, v), `is in namespace ${shown}, not ${project}, so the program never reads it; ${fix}`));
    } else if (!PROVIDER_NAMESPACES.includes(namespace)) {
      problems.push(
        problem(visible(k), valueOf(key, v),
          `is in namespace ${visible(namespace)}, which nothing in this program reads (it reads ${project}: settings, and ${PROVIDER_NAMESPACES.map((n) => `${n}:`).join(", ")} for its providers and Pulumi); remove it or correct the namespace`),
      );
    }
  }
  if (all["aws:region"] !== undefined) raw.region = all["aws:region"];
  return { raw, problems };
}

/**
 * Reads the current stack's config (`kubeadm-ha:*` plus `aws:region`) and validates it.
 * Unknown keys, in any namespace the program does not read, are errors: a typo must not fall back
 * to a default silently.
 * @throws ConfigError listing every problem.
 */
export function loadConfig(project = "kubeadm-ha"): ClusterConfig {
  return parseStackConfig(pulumiRuntime().allConfig(), project);
}

/**
 * {@link loadConfig} for a stack config given as Pulumi passes it to the program (every value a
 * string, objects and lists as JSON): for tools that read `Pulumi.<stack>.yaml` themselves.
 * @throws ConfigError listing every problem.
 */
export function parseStackConfig(all: Record<string, string>, project = "kubeadm-ha"): ClusterConfig {
  const { raw, problems } = stackSettings(all, project);
  try {
    const config = parseConfig(raw);
    if (problems.length === 0) return config;
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    problems.push(...e.problems);
  }
  throw new ConfigError(problems);
}

/** The stack config's JSON Schema, as a user writes it (defaults not yet filled). */
export function configJsonSchema(): object {
  return z.toJSONSchema(Schema, { io: "input", unrepresentable: "any" });
}

/**
 * The config reference as a Markdown table, generated from the schema so the README cannot drift
 * from the code (a test compares them; `npm run docs:config` prints it).
 */
export function configReference(): string {
  type Json = { type?: string; description?: string; default?: unknown; properties?: Record<string, Json>; items?: Json; enum?: unknown[]; required?: string[] };
  const root = configJsonSchema() as Json;
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
