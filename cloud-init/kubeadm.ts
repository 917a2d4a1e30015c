/**
 * Typed builders for kubeadm's v1beta4 configuration (InitConfiguration, ClusterConfiguration,
 * JoinConfiguration) and the KubeletConfiguration kubeadm passes on. Pure: values in, objects out;
 * `toYaml` serializes them with a YAML library as a multi-document stream.
 *
 * v1beta4 reference: https://kubernetes.io/docs/reference/config-api/kubeadm-config.v1beta4/
 */
import { Document } from "yaml";
import { durationMs } from "../config";

export const KUBEADM_API = "kubeadm.k8s.io/v1beta4";
export const KUBELET_API = "kubelet.config.k8s.io/v1beta1";
/** Stands in the YAML where the bootstrap token goes; the node swaps in the token it fetched from the secret store. */
export const TOKEN_PLACEHOLDER = "__BOOTSTRAP_TOKEN__";
export const CRI_SOCKET = "unix:///var/run/containerd/containerd.sock";
/** Where cloud-init writes kubeadm patches; kubeadm applies them to the static pod manifests it generates. */
export const PATCHES_DIR = "/etc/kubeadm-ha/patches";

/** v1beta4 replaced v1beta3's `map[string]string` extra args with an ordered list that allows repeats. */
export interface Arg {
  name: string;
  value: string;
}

export interface LeaderElection {
  leaseDuration: string;
  renewDeadline: string;
  retryPeriod: string;
}

export interface ExternalEtcd {
  endpoints: string[];
  caFile: string;
  certFile: string;
  keyFile: string;
}

/** Raft timing of every etcd member, in milliseconds (etcd's `--heartbeat-interval` and `--election-timeout`). */
export interface EtcdTimings {
  heartbeatIntervalMs: number;
  electionTimeoutMs: number;
}

export interface ClusterValues {
  clusterName: string;
  kubernetesVersion: string;
  /** `host:6443` of the API load balancer: every kubelet and joining node reaches the API through it. */
  controlPlaneEndpoint: string;
  podCidr: string;
  serviceCidr: string;
  leaderElection: LeaderElection;
  /** Absent for stacked etcd. */
  externalEtcd?: ExternalEtcd;
  /** Stacked etcd's raft timing, rendered as `etcd.local.extraArgs`. Default: none, etcd's own defaults. */
  etcdTimings?: EtcdTimings;
  /** Extra API server certificate SANs besides the endpoint host. */
  extraCertSans?: string[];
  /** kube-apiserver flags, such as encryption at rest's (cloud-init/encryption.ts). Default: none. */
  apiServerExtraArgs?: Arg[];
  /** kube-controller-manager `--cloud-provider=external`: an external cloud controller owns node lifecycle. Default true. */
  externalCloudProvider?: boolean;
}

export interface NodeValues {
  /** Node name: the EC2 private DNS name, which the AWS cloud controller looks instances up by. */
  name: string;
  ip: string;
  taints?: Array<{ key: string; value?: string; effect: "NoSchedule" | "PreferNoSchedule" | "NoExecute" }>;
  labels?: Record<string, string>;
  /**
   * kubelet `--cloud-provider=external`: the node registers tainted `node.cloudprovider.kubernetes.io/uninitialized`
   * until the AWS cloud controller sets its provider ID and zone labels. Default true; false when no cloud controller runs.
   */
  externalCloudProvider?: boolean;
}

export const args = (m: Record<string, string>): Arg[] => Object.entries(m).map(([name, value]) => ({ name, value }));

/** Go duration string normalized the way kubeadm prints it, so the rendered flags are canonical. */
function goDuration(d: string): string {
  const ms = durationMs(d);
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/**
 * etcd's raft timing flags, the same for stacked members (kubeadm `etcd.local.extraArgs`) and
 * external ones (their static pod), so switching the topology keeps the tuning.
 */
export function etcdTimingArgs(t: EtcdTimings): Arg[] {
  return args({ "heartbeat-interval": String(t.heartbeatIntervalMs), "election-timeout": String(t.electionTimeoutMs) });
}

/** `--leader-elect*` flags shared by kube-controller-manager and kube-scheduler. */
export function leaderElectionArgs(le: LeaderElection): Arg[] {
  return args({
    "leader-elect": "true",
    "leader-elect-lease-duration": goDuration(le.leaseDuration),
    "leader-elect-renew-deadline": goDuration(le.renewDeadline),
    "leader-elect-retry-period": goDuration(le.retryPeriod),
  });
}

/**
 * The API server's etcd client URLs for stacked etcd: its local member first, then the other
 * masters', so an API server keeps working when its own member is down.
 */
export function stackedEtcdServers(selfIp: string, masterIps: string[]): string[] {
  return ["https://127.0.0.1:2379", ...masterIps.filter((ip) => ip !== selfIp).map((ip) => `https://${ip}:2379`)];
}

function kubeletExtraArgs(node: NodeValues): Arg[] {
  const list = args({ ...(node.externalCloudProvider === false ? {} : { "cloud-provider": "external" }), "node-ip": node.ip });
  if (node.labels && Object.keys(node.labels).length > 0)
    list.push({ name: "node-labels", value: Object.entries(node.labels).map(([k, v]) => `${k}=${v}`).join(",") });
  return list;
}

function nodeRegistration(node: NodeValues, controlPlane: boolean) {
  return {
    name: node.name,
    criSocket: CRI_SOCKET,
    kubeletExtraArgs: kubeletExtraArgs(node),
    // kubeadm taints masters by default; an explicit list replaces that default, so keep it explicit.
    taints: node.taints ?? (controlPlane ? [{ key: "node-role.kubernetes.io/control-plane", effect: "NoSchedule" }] : []),
  };
}

export function clusterConfiguration(c: ClusterValues) {
  const host = c.controlPlaneEndpoint.split(":")[0];
  return {
    apiVersion: KUBEADM_API,
    kind: "ClusterConfiguration",
    clusterName: c.clusterName,
    kubernetesVersion: `v${c.kubernetesVersion}`,
    controlPlaneEndpoint: c.controlPlaneEndpoint,
    networking: { podSubnet: c.podCidr, serviceSubnet: c.serviceCidr, dnsDomain: "cluster.local" },
    apiServer: {
      certSANs: [host, ...(c.extraCertSans ?? [])],
      ...(c.apiServerExtraArgs && c.apiServerExtraArgs.length > 0 ? { extraArgs: c.apiServerExtraArgs } : {}),
    },
    controllerManager: {
      // The cloud controller, not kube-controller-manager, owns node lifecycle and routes with an external provider.
      extraArgs: [...leaderElectionArgs(c.leaderElection), ...(c.externalCloudProvider === false ? [] : args({ "cloud-provider": "external" }))],
    },
    scheduler: { extraArgs: leaderElectionArgs(c.leaderElection) },
    etcd: c.externalEtcd
      ? { external: c.externalEtcd }
      : { local: { dataDir: "/var/lib/etcd", ...(c.etcdTimings ? { extraArgs: etcdTimingArgs(c.etcdTimings) } : {}) } },
    certificatesDir: "/etc/kubernetes/pki",
    encryptionAlgorithm: "RSA-2048",
  };
}

/**
 * `patches` only when there is a patch: kubeadm fails its control-plane phase when the patches
 * directory it is given does not exist, and cloud-init creates it only by writing a file into it.
 */
const patchesOf = (directory: string | undefined) => (directory ? { patches: { directory } } : {});

/** The join token's lifetime when none is given (config certificates.joinTokenTtlHours). */
export const DEFAULT_TOKEN_TTL_HOURS = 24;

export interface InitOptions {
  /** Where cloud-init writes kubeadm patches for this node (PATCHES_DIR). Default: none, no `patches`. */
  patchesDirectory?: string;
  /** Lifetime of the bootstrap token `kubeadm init` creates. Default 24. */
  tokenTtlHours?: number;
}

export function initConfiguration(node: NodeValues, opts: InitOptions = {}) {
  return {
    apiVersion: KUBEADM_API,
    kind: "InitConfiguration",
    bootstrapTokens: [
      {
        token: TOKEN_PLACEHOLDER,
        description: "kubeadm-ha node join token, held in AWS Secrets Manager",
        // Short-lived: the masters put a fresh one into the workers' secret before it expires
        // (token-rotate.sh), so a node an autoscaling group launches weeks later still joins.
        ttl: `${opts.tokenTtlHours ?? DEFAULT_TOKEN_TTL_HOURS}h`,
        usages: ["signing", "authentication"],
        groups: ["system:bootstrappers:kubeadm:default-node-token"],
      },
    ],
    localAPIEndpoint: { advertiseAddress: node.ip, bindPort: 6443 },
    nodeRegistration: nodeRegistration(node, true),
    ...patchesOf(opts.patchesDirectory),
  };
}

/** `join.patchesDirectory`: as for `initConfiguration`, control plane only. Default: none. */
export function joinConfiguration(node: NodeValues, join: { apiServerEndpoint: string; caCertHash: string; controlPlane: boolean; patchesDirectory?: string }) {
  return {
    apiVersion: KUBEADM_API,
    kind: "JoinConfiguration",
    discovery: {
      bootstrapToken: { apiServerEndpoint: join.apiServerEndpoint, token: TOKEN_PLACEHOLDER, caCertHashes: [join.caCertHash] },
    },
    nodeRegistration: nodeRegistration(node, join.controlPlane),
    ...(join.controlPlane
      ? { controlPlane: { localAPIEndpoint: { advertiseAddress: node.ip, bindPort: 6443 } }, ...patchesOf(join.patchesDirectory) }
      : {}),
  };
}

export function kubeletConfiguration() {
  return {
    apiVersion: KUBELET_API,
    kind: "KubeletConfiguration",
    // containerd is configured with SystemdCgroup = true; kubelet and runtime must use the same driver.
    cgroupDriver: "systemd",
    serverTLSBootstrap: false,
  };
}

/**
 * kubeadm patch (JSON patch on the generated kube-apiserver static pod) that appends
 * `--etcd-servers`. kubeadm writes one `--etcd-servers=https://127.0.0.1:2379` from the
 * cluster-wide ClusterConfiguration; the flag parser keeps the last value, so the appended
 * per-master list wins.
 */
export function apiServerEtcdServersPatch(servers: string[]) {
  return [{ op: "add", path: "/spec/containers/0/command/-", value: `--etcd-servers=${servers.join(",")}` }];
}

/** Serializes documents as one YAML 1.1 stream (kubeadm's parser is YAML 1.1 too). */
export function toYaml(...docs: object[]): string {
  return docs.map((d) => new Document(d, { version: "1.1" }).toString({ lineWidth: 0 })).join("---\n");
}
