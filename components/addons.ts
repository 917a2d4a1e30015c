/**
 * The in-cluster add-ons that turn a kubeadm control plane into a cluster whose nodes go Ready:
 * a CNI (Cilium or Calico), the AWS cloud controller manager and the EBS CSI driver with a default
 * encrypted gp3 StorageClass; then the worker lifecycle: the cluster-autoscaler and
 * aws-node-termination-handler (components/nodeTermination.ts feeds its queue). Each is a Helm
 * chart pinned per Kubernetes minor.
 *
 * Two installers, one list of releases (`addonReleases`):
 * - `Addons` (installer `pulumi`): a readiness step polls the API's /readyz through the load
 *   balancer, then a Kubernetes provider built from the cluster's kubeconfig installs each chart as
 *   a `helm.v3.Release`. Needs the machine running `pulumi up` to reach the API.
 * - `addonNodeFiles` (installer `nodes`, for an internal load balancer that machine cannot reach):
 *   the same releases as files on master 0, which cloud-init/scripts/addons.sh installs with helm
 *   right after `kubeadm init`.
 */
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { toYaml } from "../cloud-init/kubeadm";
import { ApiReadiness, readyzUrl } from "./readiness";

/** One Helm release: everything `helm upgrade --install` and `helm.v3.Release` need. */
export interface AddonRelease {
  /** Helm release name; also names the Pulumi child and the values file on master 0. */
  name: string;
  chart: string;
  /** Chart repository URL, or an OCI registry path `oci://<host>/<path>` whose chart is `<repo>/<chart>`. */
  repo: string;
  /** Chart version, pinned. */
  version: string;
  namespace: string;
  values: Record<string, unknown>;
}

/** The pinned versions for one Kubernetes minor. */
export interface AddonVersions {
  /** `cilium` chart (https://helm.cilium.io/), the same as the Cilium release. */
  cilium: string;
  /** `tigera-operator` chart (https://docs.tigera.io/calico/charts), the same as the Calico release. */
  calico: string;
  /** `aws-cloud-controller-manager` chart (https://kubernetes.github.io/cloud-provider-aws). */
  awsCloudControllerManagerChart: string;
  /** Image tag of registry.k8s.io/provider-aws/cloud-controller-manager; its minor follows the cluster's. */
  awsCloudControllerManagerImage: string;
  /** `aws-ebs-csi-driver` chart (https://kubernetes-sigs.github.io/aws-ebs-csi-driver). */
  ebsCsiDriver: string;
  /** `cluster-autoscaler` chart (https://kubernetes.github.io/autoscaler), versioned apart from the image. */
  clusterAutoscalerChart: string;
  /** Image tag of registry.k8s.io/autoscaling/cluster-autoscaler; its minor is the cluster's. */
  clusterAutoscalerImage: string;
  /** `aws-node-termination-handler` chart (oci://public.ecr.aws/aws-ec2/helm); its appVersion is the image's. */
  nodeTerminationHandlerChart: string;
}

/**
 * Versions per Kubernetes minor, each the newest release found whose upstream test matrix covers
 * that minor (sources as of September 2026):
 *
 * Cilium (Documentation/network/kubernetes/compatibility.rst of each release): 1.18 is e2e tested
 * on 1.30-1.33 (tag v1.18.14), 1.19 on 1.32-1.35 (docs of 1.19.3). 1.20 GA'd 2026-07-29; its own
 * table was not found, thaum-xyz/ankhmorpork#1054 reads it as 1.33-1.36, so 1.36 gets 1.20 on that
 * word. Newest patches 1.18.14, 1.19.8, 1.20.2: kubermatic/kubermatic#16534 (2026-09-22).
 *
 * Calico (docs.tigera.io .../getting-started/kubernetes/requirements): 3.29 is tested on
 * 1.29-1.32 and 3.31 on 1.32-1.35 (1.35 added per projectcalico discussion #11717); 3.32 on
 * 1.34-1.36 (the versioned requirements page as summarized by Rusty-Gopher/kupre v0.5.0). Patches:
 * v3.29.4 (tigera/operator v1.36.10 notes), v3.31.3 (docs.tigera.io component versions),
 * v3.32.3 (projectcalico/calico release v3.32.3). Newer 3.29 patches may exist; none was verified.
 *
 * AWS cloud controller manager: the chart is versioned apart from the image and its newest is
 * 0.0.10 (appVersion v1.34.0, kubernetes/cloud-provider-aws#1263; no chart for 1.35,
 * kubernetes/cloud-provider-aws#1339), so the chart stays at 0.0.10 and `image.tag` carries the
 * cluster's minor. Tags whose image exists: v1.31.5, v1.32.1, v1.33.0, v1.34.0 (kubermatic/kubeone
 * image pins), v1.35.2 (a registry check of 2026-07-25 found v1.35.1, v1.35.3 and every v1.36.x
 * tag missing although GitHub releases exist). 1.36 therefore runs the 1.35 controller, one minor
 * behind the API server, as kubeone does; replace it once a v1.36 image is published.
 *
 * EBS CSI driver: not tied to a Kubernetes minor (the chart requires >= 1.17); one pin for all,
 * chart 2.56.1 (kubernetes-sigs/aws-ebs-csi-driver#2874).
 *
 * cluster-autoscaler: its minor is the cluster's (kubernetes/autoscaler cluster-autoscaler/README.md
 * "Releases": CA 1.x.y for Kubernetes 1.x, chart 9.38.0+ for 1.31 up to 9.51.0+ for 1.34), and the
 * chart is versioned apart from the image, so one chart and an `image.tag` a minor, as for the
 * cloud controller. Chart 9.59.0 is the newest (tag cluster-autoscaler-chart-9.59.0, 2026-07-21,
 * appVersion 1.35.0) and above every minimum of that table.
 * Images, each the newest patch of its minor: v1.31.5 (tag cluster-autoscaler-1.31.5, pinned by
 * digest in edgelesssys/constellation's versions), v1.32.7 (tag cluster-autoscaler-1.32.7,
 * kOps's default for 1.32), v1.33.6, v1.34.5, v1.35.2 and v1.36.1 (the releases of 2026-07-23,
 * whose notes list the registry.k8s.io images).
 *
 * aws-node-termination-handler: chart 0.27.6, app v1.25.6 (aws/aws-node-termination-handler tag
 * v1.25.6, the newest release; the chart is published only to public.ecr.aws as OCI). Its README
 * marks v1.25.x tested on 1.29-1.32, and its CI runs the same code on 1.32-1.35 since #1261; it
 * uses only core node, pod and eviction APIs, so one pin serves every minor, 1.36 on that word.
 *
 * A new minor in config.ts's SUPPORTED_MINORS needs its row; a test checks every supported minor.
 */
export const ADDON_VERSIONS: Readonly<Record<number, AddonVersions>> = {
  31: { cilium: "1.18.14", calico: "v3.29.4", awsCloudControllerManagerChart: "0.0.10", awsCloudControllerManagerImage: "v1.31.5", ebsCsiDriver: "2.56.1", clusterAutoscalerChart: "9.59.0", clusterAutoscalerImage: "v1.31.5", nodeTerminationHandlerChart: "0.27.6" },
  32: { cilium: "1.19.8", calico: "v3.31.3", awsCloudControllerManagerChart: "0.0.10", awsCloudControllerManagerImage: "v1.32.1", ebsCsiDriver: "2.56.1", clusterAutoscalerChart: "9.59.0", clusterAutoscalerImage: "v1.32.7", nodeTerminationHandlerChart: "0.27.6" },
  33: { cilium: "1.19.8", calico: "v3.31.3", awsCloudControllerManagerChart: "0.0.10", awsCloudControllerManagerImage: "v1.33.0", ebsCsiDriver: "2.56.1", clusterAutoscalerChart: "9.59.0", clusterAutoscalerImage: "v1.33.6", nodeTerminationHandlerChart: "0.27.6" },
  34: { cilium: "1.19.8", calico: "v3.31.3", awsCloudControllerManagerChart: "0.0.10", awsCloudControllerManagerImage: "v1.34.0", ebsCsiDriver: "2.56.1", clusterAutoscalerChart: "9.59.0", clusterAutoscalerImage: "v1.34.5", nodeTerminationHandlerChart: "0.27.6" },
  35: { cilium: "1.19.8", calico: "v3.31.3", awsCloudControllerManagerChart: "0.0.10", awsCloudControllerManagerImage: "v1.35.2", ebsCsiDriver: "2.56.1", clusterAutoscalerChart: "9.59.0", clusterAutoscalerImage: "v1.35.2", nodeTerminationHandlerChart: "0.27.6" },
  36: { cilium: "1.20.2", calico: "v3.32.3", awsCloudControllerManagerChart: "0.0.10", awsCloudControllerManagerImage: "v1.35.2", ebsCsiDriver: "2.56.1", clusterAutoscalerChart: "9.59.0", clusterAutoscalerImage: "v1.36.1", nodeTerminationHandlerChart: "0.27.6" },
};

/** The pinned add-on versions for this Kubernetes release. */
export function addonVersions(kubernetesVersion: string): AddonVersions {
  const minor = Number(kubernetesVersion.split(".")[1]);
  const v = ADDON_VERSIONS[minor];
  if (!v) throw new Error(`addonVersions: no add-on versions pinned for Kubernetes 1.${minor}; add a row to ADDON_VERSIONS`);
  return v;
}

export const CILIUM_REPO = "https://helm.cilium.io/";
export const CALICO_REPO = "https://docs.tigera.io/calico/charts";
export const AWS_CCM_REPO = "https://kubernetes.github.io/cloud-provider-aws";
export const EBS_CSI_REPO = "https://kubernetes-sigs.github.io/aws-ebs-csi-driver";
export const AWS_CCM_IMAGE = "registry.k8s.io/provider-aws/cloud-controller-manager";
export const CLUSTER_AUTOSCALER_REPO = "https://kubernetes.github.io/autoscaler";
export const CLUSTER_AUTOSCALER_IMAGE = "registry.k8s.io/autoscaling/cluster-autoscaler";
/** The chart is published only here (aws/aws-node-termination-handler config/helm/.../README.md). */
export const NODE_TERMINATION_HANDLER_REPO = "oci://public.ecr.aws/aws-ec2/helm";
/** Helm release names. */
export const RELEASE = {
  cilium: "cilium",
  calico: "calico",
  ccm: "aws-cloud-controller-manager",
  ebsCsi: "aws-ebs-csi-driver",
  clusterAutoscaler: "cluster-autoscaler",
  nodeTerminationHandler: "aws-node-termination-handler",
} as const;

/** Whether the chart comes from an OCI registry, which helm addresses as `<repo>/<chart>` with no `--repo`. */
export function isOciRepo(repo: string): boolean {
  return repo.startsWith("oci://");
}

const CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane";
/** The taint kubeadm puts on every master (cloud-init/kubeadm.ts nodeRegistration). */
export const CONTROL_PLANE_TOLERATION = { key: CONTROL_PLANE_LABEL, operator: "Exists", effect: "NoSchedule" } as const;
/** On a master: the node selector of what belongs on the control plane. */
export const CONTROL_PLANE_SELECTOR = { [CONTROL_PLANE_LABEL]: "" } as const;

export interface AddonReleaseValues {
  /** x.y.z; selects the pinned versions. */
  kubernetesVersion: string;
  /** Tags the cloud controller and the EBS CSI driver match AWS resources by. */
  clusterName: string;
  region: string;
  /** Pod network, kubeadm's `networking.podSubnet`; the CNI hands pods addresses from it. */
  podCidr: string;
  cni: "cilium" | "calico" | "none";
  awsCloudControllerManager: boolean;
  ebsCsiDriver: boolean;
  /** The cluster-autoscaler (addons.clusterAutoscaler). Default false. */
  clusterAutoscaler?: boolean;
  /** aws-node-termination-handler in queue mode, with its queue (addons.nodeTerminationHandler). Default: not installed. */
  nodeTermination?: NodeTerminationValues;
}

/** What aws-node-termination-handler needs from the rest of the cluster. */
export interface NodeTerminationValues {
  /** URL of the SQS queue EventBridge feeds (components/nodeTermination.ts). */
  queueUrl: pulumi.Input<string>;
  /** Instance tag key that marks a machine as the handler's to drain: the drained pools' machines carry it, masters never do. */
  managedTag: string;
  /** Seconds one drain may take: the longest termination hook timeout of the cluster's pools. */
  drainTimeoutSeconds: number;
}

/**
 * Cilium in VXLAN tunnel mode beside kube-proxy (kubeadm installs it). IPAM `cluster-pool`: the
 * operator carves a /24 a node out of podCidr itself, so the pod range is explicit here and Cilium
 * does not depend on kube-controller-manager's node CIDR allocation; /24 is the size config.ts's
 * podCidr rule assumes. Two operator replicas: the chart's operator tolerates every taint and
 * spreads its replicas over nodes, so both fit on three masters before any worker exists.
 */
function ciliumValues(podCidr: string): Record<string, unknown> {
  return {
    routingMode: "tunnel",
    tunnelProtocol: "vxlan",
    kubeProxyReplacement: false,
    ipam: { mode: "cluster-pool", operator: { clusterPoolIPv4PodCIDRList: [podCidr], clusterPoolIPv4MaskSize: 24 } },
    operator: { replicas: 2 },
  };
}

/** Calico through the tigera-operator chart: one VXLAN pool over podCidr, no BGP (AWS routes no pod addresses). */
function calicoValues(podCidr: string): Record<string, unknown> {
  return {
    installation: {
      cni: { type: "Calico" },
      calicoNetwork: {
        bgp: "Disabled",
        ipPools: [{ name: "default-ipv4-ippool", cidr: podCidr, encapsulation: "VXLAN", natOutgoing: "Enabled", nodeSelector: "all()", blockSize: 26 }],
      },
    },
  };
}

/**
 * The AWS cloud controller on the masters, whose instance role carries its permissions. It must run
 * before any node is initialized (kubelet's `--cloud-provider=external` taints every node
 * `uninitialized` until the controller sets its provider ID) and before the CNI has made the node
 * Ready, hence the tolerations and the host network. No cloud routes: both CNIs here tunnel pod
 * traffic in VXLAN, so no VPC route table needs pod CIDRs.
 */
function ccmValues(clusterName: string, imageTag: string): Record<string, unknown> {
  return {
    args: ["--cloud-provider=aws", "--configure-cloud-routes=false", `--cluster-name=${clusterName}`, "--v=2"],
    image: { repository: AWS_CCM_IMAGE, tag: imageTag },
    hostNetworking: true,
    nodeSelector: CONTROL_PLANE_SELECTOR,
    tolerations: [
      { key: CONTROL_PLANE_LABEL, effect: "NoSchedule" },
      { key: "node.cloudprovider.kubernetes.io/uninitialized", value: "true", effect: "NoSchedule" },
      { key: "node.kubernetes.io/not-ready", effect: "NoSchedule" },
    ],
  };
}

/**
 * The EBS CSI controller on the masters, the only role granted the EBS API; the node plugin on every
 * node whatever its taints, or pods on tainted pools could not mount volumes. The chart's own
 * StorageClasses are off: `defaultStorageClass()` is ours.
 */
function ebsCsiValues(clusterName: string, region: string): Record<string, unknown> {
  return {
    controller: {
      region,
      k8sTagClusterId: clusterName,
      nodeSelector: CONTROL_PLANE_SELECTOR,
      tolerations: [CONTROL_PLANE_TOLERATION],
    },
    node: { tolerateAllTaints: true },
    storageClasses: [],
    defaultStorageClass: { enabled: false },
  };
}

/**
 * The cluster-autoscaler on the masters, whose instance role carries its permissions
 * (components/iam.ts clusterAutoscalerPolicy) and which no scale-in ever removes. It discovers the
 * groups tagged `k8s.io/cluster-autoscaler/enabled` and `k8s.io/cluster-autoscaler/<cluster>`
 * (the chart's `autoDiscovery.tags`; components/workerPool.ts autoscalerTags sets them).
 */
function clusterAutoscalerValues(clusterName: string, region: string, imageTag: string): Record<string, unknown> {
  return {
    cloudProvider: "aws",
    awsRegion: region,
    autoDiscovery: { clusterName },
    image: { repository: CLUSTER_AUTOSCALER_IMAGE, tag: imageTag },
    nodeSelector: CONTROL_PLANE_SELECTOR,
    tolerations: [CONTROL_PLANE_TOLERATION],
  };
}

/**
 * aws-node-termination-handler in queue-processor mode: one Deployment reading the SQS queue,
 * on the masters, whose role carries its permissions and which it never drains itself (they carry
 * no managed tag). It drains only machines tagged `managedTag`, the check that keeps it off
 * masters, etcd members and every other machine of the account whose events reach the queue. One
 * drain may take the longest pool's hook timeout; the hook still bounds each pool's own.
 * Lifecycle heartbeats stay off (`heartbeatInterval` -1): the hook's timeout is the bound.
 */
function nodeTerminationHandlerValues(region: string, t: NodeTerminationValues): Record<string, unknown> {
  return {
    enableSqsTerminationDraining: true,
    queueURL: t.queueUrl,
    awsRegion: region,
    checkTagBeforeDraining: true,
    managedTag: t.managedTag,
    nodeTerminationGracePeriod: t.drainTimeoutSeconds,
    emitKubernetesEvents: true,
    nodeSelector: CONTROL_PLANE_SELECTOR,
    tolerations: [CONTROL_PLANE_TOLERATION],
  };
}

/**
 * The add-ons to install, in order: the CNI first (nodes go Ready), then the cloud controller
 * (removes the `uninitialized` taint), then the EBS CSI driver (its controller waits for both),
 * then the cluster-autoscaler and the termination handler, which need only the masters.
 */
export function addonReleases(v: AddonReleaseValues): AddonRelease[] {
  const versions = addonVersions(v.kubernetesVersion);
  const out: AddonRelease[] = [];
  if (v.cni === "cilium")
    out.push({ name: RELEASE.cilium, chart: "cilium", repo: CILIUM_REPO, version: versions.cilium, namespace: "kube-system", values: ciliumValues(v.podCidr) });
  if (v.cni === "calico")
    out.push({ name: RELEASE.calico, chart: "tigera-operator", repo: CALICO_REPO, version: versions.calico, namespace: "tigera-operator", values: calicoValues(v.podCidr) });
  if (v.awsCloudControllerManager)
    out.push({
      name: RELEASE.ccm,
      chart: "aws-cloud-controller-manager",
      repo: AWS_CCM_REPO,
      version: versions.awsCloudControllerManagerChart,
      namespace: "kube-system",
      values: ccmValues(v.clusterName, versions.awsCloudControllerManagerImage),
    });
  if (v.ebsCsiDriver)
    out.push({ name: RELEASE.ebsCsi, chart: "aws-ebs-csi-driver", repo: EBS_CSI_REPO, version: versions.ebsCsiDriver, namespace: "kube-system", values: ebsCsiValues(v.clusterName, v.region) });
  if (v.clusterAutoscaler)
    out.push({
      name: RELEASE.clusterAutoscaler,
      chart: "cluster-autoscaler",
      repo: CLUSTER_AUTOSCALER_REPO,
      version: versions.clusterAutoscalerChart,
      namespace: "kube-system",
      values: clusterAutoscalerValues(v.clusterName, v.region, versions.clusterAutoscalerImage),
    });
  if (v.nodeTermination)
    out.push({
      name: RELEASE.nodeTerminationHandler,
      chart: "aws-node-termination-handler",
      repo: NODE_TERMINATION_HANDLER_REPO,
      version: versions.nodeTerminationHandlerChart,
      namespace: "kube-system",
      values: nodeTerminationHandlerValues(v.region, v.nodeTermination),
    });
  return out;
}

export interface StorageClassManifest {
  apiVersion: "storage.k8s.io/v1";
  kind: "StorageClass";
  metadata: { name: string; annotations: Record<string, string> };
  provisioner: string;
  parameters: Record<string, string>;
  volumeBindingMode: "WaitForFirstConsumer" | "Immediate";
  allowVolumeExpansion: boolean;
  reclaimPolicy: "Delete" | "Retain";
}

/**
 * The cluster's default StorageClass: encrypted gp3 volumes. WaitForFirstConsumer creates a volume
 * in the zone of the pod's node; EBS volumes attach only within their zone.
 */
export function defaultStorageClass(): StorageClassManifest {
  return {
    apiVersion: "storage.k8s.io/v1",
    kind: "StorageClass",
    metadata: { name: "gp3", annotations: { "storageclass.kubernetes.io/is-default-class": "true" } },
    provisioner: "ebs.csi.aws.com",
    parameters: { type: "gp3", encrypted: "true" },
    volumeBindingMode: "WaitForFirstConsumer",
    allowVolumeExpansion: true,
    reclaimPolicy: "Delete",
  };
}

/** Where the add-on files live on master 0, relative to /etc/kubeadm-ha. */
export const ADDONS_DIR = "addons";
// addons.sh splits each line of the release list on spaces: no field may hold one, or a quote.
const LIST_FIELD = /^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$/;

/**
 * The add-ons as files for master 0 (installer `nodes`), file name under /etc/kubeadm-ha ->
 * content: `addons/releases` (one `name chart repo version namespace` line a release, in install
 * order), `addons/<name>.yaml` (each release's Helm values) and `addons/storageclass.yaml`. Shell
 * never parses YAML: helm and kubectl read these files as they are. Empty when there is nothing to
 * install, so master 0 then ships no add-on script either.
 */
export function addonNodeFiles(releases: AddonRelease[], storageClass?: StorageClassManifest): Record<string, string> {
  if (releases.length === 0 && !storageClass) return {};
  const files: Record<string, string> = {};
  const lines = releases.map((r) => {
    const fields = [r.name, r.chart, r.repo, r.version, r.namespace];
    for (const f of fields)
      if (!LIST_FIELD.test(f)) throw new Error(`addonNodeFiles: release ${JSON.stringify(r.name)} has a field addons.sh cannot read: ${JSON.stringify(f)}`);
    files[`${ADDONS_DIR}/${r.name}.yaml`] = toYaml(r.values);
    return fields.join(" ");
  });
  files[`${ADDONS_DIR}/releases`] = lines.map((l) => `${l}\n`).join("");
  if (storageClass) files[`${ADDONS_DIR}/storageclass.yaml`] = toYaml(storageClass);
  return files;
}

/** What `pulumi stack output addons` lists: one entry a release. */
export interface AddonSummary {
  name: string;
  chart: string;
  repo: string;
  version: string;
  namespace: string;
  installer: "pulumi" | "nodes";
}

export function addonSummaries(releases: AddonRelease[], installer: "pulumi" | "nodes"): AddonSummary[] {
  return releases.map((r) => ({ name: r.name, chart: r.chart, repo: r.repo, version: r.version, namespace: r.namespace, installer }));
}

export interface AddonsArgs {
  /** Admin kubeconfig (secret) the Kubernetes provider uses. Required. */
  kubeconfig: pulumi.Input<string>;
  /** `<nlb-dns>:6443`, whose /readyz the readiness step polls. Required. */
  apiEndpoint: pulumi.Input<string>;
  /** Cluster CA (PEM) the readiness step verifies the API against. Required. */
  caCertPem: pulumi.Input<string>;
  /** The releases, installed one after another in this order (`addonReleases`). Required; may be empty. */
  releases: AddonRelease[];
  /** Created after the `aws-ebs-csi-driver` release, which must be among `releases`. Default none. */
  storageClass?: StorageClassManifest;
  /** How long to wait for /readyz before failing. Required. */
  readinessTimeoutMinutes: number;
  /** Seconds Helm waits for each release's resources to become ready. Default 600. */
  releaseTimeoutSeconds?: number;
}

export class Addons extends pulumi.ComponentResource {
  /** The readiness step every Kubernetes resource here waits for. */
  public readonly readiness: ApiReadiness;
  /** The provider every release uses; depends on `readiness`. */
  public readonly provider: k8s.Provider;
  /** The Helm releases, in install order. */
  public readonly helmReleases: k8s.helm.v3.Release[];
  /** Name, chart, version and namespace of each release, in install order. */
  public readonly releases: { name: string; chart: string; version: string; namespace: string }[];
  /** The default StorageClass; absent without `storageClass`. */
  public readonly storageClass?: k8s.storage.v1.StorageClass;

  constructor(name: string, args: AddonsArgs, opts?: pulumi.ComponentResourceOptions) {
    const names = args.releases.map((r) => r.name);
    const dup = names.find((n, i) => names.indexOf(n) !== i);
    if (dup !== undefined) throw new Error(`Addons ${name}: release ${JSON.stringify(dup)} is listed twice`);
    if (!Number.isInteger(args.readinessTimeoutMinutes) || args.readinessTimeoutMinutes < 1)
      throw new Error(`Addons ${name}: readinessTimeoutMinutes must be a whole number of at least 1, got ${args.readinessTimeoutMinutes}`);
    if (args.storageClass && !names.includes(RELEASE.ebsCsi))
      throw new Error(`Addons ${name}: storageClass needs the ${RELEASE.ebsCsi} release, whose driver provisions its volumes`);
    super("kubeadm-ha:index:Addons", name, {}, opts);

    this.readiness = new ApiReadiness(
      `${name}-api-ready`,
      {
        url: readyzUrl(args.apiEndpoint),
        caCertPem: args.caCertPem,
        timeoutMinutes: args.readinessTimeoutMinutes,
      },
      { parent: this },
    );
    // The provider connects at first use; it must not exist before the API answers, or the first
    // release races `kubeadm init` on master 0.
    this.provider = new k8s.Provider(`${name}-provider`, { kubeconfig: pulumi.secret(args.kubeconfig) }, { parent: this, dependsOn: [this.readiness] });

    const timeout = args.releaseTimeoutSeconds ?? 600;
    let previous: pulumi.Resource | undefined;
    this.helmReleases = args.releases.map((r) => {
      const release = new k8s.helm.v3.Release(
        `${name}-${r.name}`,
        {
          name: r.name,
          ...(isOciRepo(r.repo) ? { chart: `${r.repo}/${r.chart}` } : { chart: r.chart, repositoryOpts: { repo: r.repo } }),
          version: r.version,
          namespace: r.namespace,
          createNamespace: true,
          values: r.values,
          // A failed install is rolled back rather than left half-applied for the next `pulumi up`.
          atomic: true,
          cleanupOnFail: true,
          timeout,
        },
        // One at a time, in order: the cloud controller's and the CSI controller's pods schedule
        // only once the CNI has made the nodes Ready and the controller has initialized them.
        { parent: this, provider: this.provider, dependsOn: previous ? [previous] : [] },
      );
      previous = release;
      return release;
    });
    this.releases = args.releases.map((r) => ({ name: r.name, chart: r.chart, version: r.version, namespace: r.namespace }));

    if (args.storageClass) {
      const sc = args.storageClass;
      const ebs = this.helmReleases[names.indexOf(RELEASE.ebsCsi)];
      this.storageClass = new k8s.storage.v1.StorageClass(
        `${name}-storage-class`,
        {
          metadata: sc.metadata,
          provisioner: sc.provisioner,
          parameters: sc.parameters,
          volumeBindingMode: sc.volumeBindingMode,
          allowVolumeExpansion: sc.allowVolumeExpansion,
          reclaimPolicy: sc.reclaimPolicy,
        },
        { parent: this, provider: this.provider, dependsOn: [ebs] },
      );
    }
    this.registerOutputs({ releases: this.releases });
  }
}
