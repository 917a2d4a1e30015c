/**
 * External etcd (`etcd.topology: external`): `nodeCount` machines of their own, one etcd member
 * each, in distinct zones at fixed addresses, reachable on 2379 from the API servers only and on
 * 2380 from each other only.
 *
 * Each member runs as a static pod under a kubelet with no API server: kubeadm's documented way to
 * run an external etcd cluster ("Set up a High Availability etcd cluster with kubeadm",
 * https://kubernetes.io/docs/setup/production-environment/tools/kubeadm/setup-ha-etcd-with-kubeadm/).
 * Unlike that guide, no `kubeadm` runs on the members: Pulumi signs every certificate with the
 * etcd CA (`EtcdCertificates`), the program renders the pod manifest itself (`etcdPod`), and each
 * machine fetches only its own keys from the etcd role's secret at boot.
 *
 * Two components because the etcd secret holds the certificates and the machines must not boot
 * before the secret has a version: certificates first, then the secret (components/secrets.ts),
 * then the machines.
 */
import * as pulumi from "@pulumi/pulumi";
import { Arg, CRI_SOCKET, EtcdTimings, ExternalEtcd, KUBELET_API, args, etcdTimingArgs, toYaml } from "../cloud-init/kubeadm";
import { EtcdBackupValues, NodeDocuments, assertUserDataSize, backupEnv, encodeUserData, renderCloudConfig } from "../cloud-init/render";
import { DEFAULT_CERT_RENEW_BEFORE_DAYS, Placement, placeNodes } from "./controlPlane";
import { CertificateAuthority, LeafCertificate, LeafCertificateArgs, issueCertificate } from "./pki";
import { PORTS } from "./flows";
import { EtcdMemberPkiMaterial } from "./secrets";
import { nodeInstance } from "./nodeInstance";
import { MachineChain, podFingerprint, userDataFingerprint } from "../day2/chain";
import { MachineGate } from "../day2/resources";
import { MachineSpec, MemberManifest, RolloutMachine } from "../day2/rollout";

/** First host number of etcd members in each private subnet; masters start at 10. */
export const ETCD_HOST_OFFSET = 20;
export const ETCD_CLIENT_PORT = PORTS.etcdClient;
export const ETCD_PEER_PORT = PORTS.etcdPeer;
/** kubeadm's `EtcdMetricsPort`: plain HTTP on loopback only, for the kubelet's probes and a local scraper. */
export const ETCD_METRICS_PORT = 2381;
/** A member's data directory, kubeadm's default. */
export const ETCD_DATA_DIR = "/var/lib/etcd";
/** Where a member's CA certificate and its own server and peer pairs live (kubeadm's layout). */
export const ETCD_PKI_DIR = "/etc/kubernetes/pki/etcd";
/** The standalone kubelet's static pod directory. */
export const STATIC_POD_DIR = "/etc/kubernetes/manifests";
/** kubeadm's `SnapshotCount` for its etcd pods. */
export const ETCD_SNAPSHOT_COUNT = 10000;
/** The API servers' etcd client certificate, named and placed as kubeadm does (`APIServerEtcdClient*`). */
export const API_SERVER_ETCD_CLIENT = {
  commonName: "kube-apiserver-etcd-client",
  certFile: "/etc/kubernetes/pki/apiserver-etcd-client.crt",
  keyFile: "/etc/kubernetes/pki/apiserver-etcd-client.key",
  caFile: `${ETCD_PKI_DIR}/ca.crt`,
} as const;

export const ETCD_IMAGE_REPOSITORY = "registry.k8s.io/etcd";
/**
 * The etcd image per Kubernetes minor: kubeadm's own `SupportedEtcdVersion` map in
 * kubernetes/kubernetes cmd/kubeadm/app/constants/constants.go. 1.31-1.33 (etcd 3.5): the
 * release-1.32 branch and the 1.34 map both pin 3.5.24-0, which is also kubeadm's current
 * `MinExternalEtcdVersion`. 1.34-1.36 (etcd 3.6): master pins 3.6.9-0
 * (https://github.com/kubernetes/kubernetes/pull/137956). A new minor in config.ts's
 * SUPPORTED_MINORS needs its entry here; a test checks every supported minor has one.
 */
export const ETCD_IMAGE_TAGS: Readonly<Record<number, string>> = {
  31: "3.5.24-0",
  32: "3.5.24-0",
  33: "3.5.24-0",
  34: "3.6.9-0",
  35: "3.6.9-0",
  36: "3.6.9-0",
};

/** The etcd image kubeadm would run for this Kubernetes release. */
export function etcdImage(kubernetesVersion: string): string {
  const minor = Number(kubernetesVersion.split(".")[1]);
  const tag = ETCD_IMAGE_TAGS[minor];
  if (!tag) throw new Error(`etcdImage: no etcd image pinned for Kubernetes 1.${minor}; add kubeadm's SupportedEtcdVersion entry to ETCD_IMAGE_TAGS`);
  return `${ETCD_IMAGE_REPOSITORY}:${tag}`;
}

/** An external etcd member: where it runs and how it is reached. The member name is the node name. */
export interface EtcdMember extends Placement {
  /** `https://<ip>:2379`, what the API servers use. */
  clientUrl: string;
  /** `https://<ip>:2380`, what the other members use. */
  peerUrl: string;
}

/**
 * The members, placed as masters are (round-robin over the zones, fixed addresses) from host
 * ETCD_HOST_OFFSET of each private subnet. Fixed addresses let every member's `--initial-cluster`,
 * its certificates and the API servers' endpoints be known before any machine exists.
 */
export function etcdMembers(count: number, zones: string[], subnetCidrs: string[], region: string): EtcdMember[] {
  if (!(Number.isInteger(count) && count >= 3 && count <= 7 && count % 2 === 1))
    throw new Error(`etcdMembers: count must be 3, 5 or 7 (got ${count})`);
  return placeNodes(count, zones, subnetCidrs, region, ETCD_HOST_OFFSET).map((p) => ({
    ...p,
    clientUrl: `https://${p.ip}:${ETCD_CLIENT_PORT}`,
    peerUrl: `https://${p.ip}:${ETCD_PEER_PORT}`,
  }));
}

/** etcd's `--initial-cluster`: every member as `<name>=<peer URL>`, in index order. */
export function initialCluster(members: EtcdMember[]): string {
  return members.map((m) => `${m.name}=${m.peerUrl}`).join(",");
}

/** The members' client URLs, in index order: the API servers' `--etcd-servers`. */
export function etcdEndpoints(members: EtcdMember[]): string[] {
  return members.map((m) => m.clientUrl);
}

/** kubeadm's `ClusterConfiguration.etcd.external` for these members; the files are where fetch-secrets.sh puts them. */
export function externalEtcdConfig(members: EtcdMember[]): ExternalEtcd {
  return {
    endpoints: etcdEndpoints(members),
    caFile: API_SERVER_ETCD_CLIENT.caFile,
    certFile: API_SERVER_ETCD_CLIENT.certFile,
    keyFile: API_SERVER_ETCD_CLIENT.keyFile,
  };
}

// etcd's embedded gRPC gateway dials its own client port presenting the server certificate, so
// with --client-cert-auth the server certificate needs client_auth too (kubeadm's has both).
const SERVER_USES = ["digital_signature", "key_encipherment", "server_auth", "client_auth"];
// A peer certificate is presented both ways on every member-to-member connection.
const PEER_USES = ["digital_signature", "key_encipherment", "server_auth", "client_auth"];

/** A member's server certificate: clients reach it at its IP, on loopback and by node name. */
export function serverCertificateArgs(m: EtcdMember): LeafCertificateArgs {
  return { commonName: m.name, dnsNames: [m.name, "localhost"], ipAddresses: [m.ip, "127.0.0.1"], allowedUses: SERVER_USES };
}

/**
 * A member's peer certificate. With `--peer-client-cert-auth` etcd also checks that a connecting
 * peer's certificate names the address it connects from, so the member IP is required.
 */
export function peerCertificateArgs(m: EtcdMember): LeafCertificateArgs {
  return { commonName: m.name, dnsNames: [m.name], ipAddresses: [m.ip], allowedUses: PEER_USES };
}

/** The API servers' etcd client certificate (kubeadm's `apiserver-etcd-client`). */
export const API_SERVER_ETCD_CLIENT_CERTIFICATE: LeafCertificateArgs = {
  commonName: API_SERVER_ETCD_CLIENT.commonName,
  allowedUses: ["digital_signature", "key_encipherment", "client_auth"],
};

/** What a member's static pod needs besides its own placement. */
export interface EtcdClusterValues {
  clusterName: string;
  kubernetesVersion: string;
  timings: EtcdTimings;
  members: EtcdMember[];
}

/**
 * The flags of member `self`, in a fixed order. Only flags etcd 3.5 and 3.6 both accept (no
 * `--experimental-*`, renamed in 3.6): kubeadm pins 3.5 for Kubernetes 1.31-1.33 and 3.6 after;
 * test/etcd-real.test.ts starts etcd 3.6 with them.
 */
export function etcdFlags(v: EtcdClusterValues, self: EtcdMember): Arg[] {
  const pki = (f: string) => `${ETCD_PKI_DIR}/${f}`;
  return [
    ...args({
      name: self.name,
      "data-dir": ETCD_DATA_DIR,
      "listen-client-urls": `${self.clientUrl},https://127.0.0.1:${ETCD_CLIENT_PORT}`,
      "advertise-client-urls": self.clientUrl,
      "listen-peer-urls": self.peerUrl,
      "initial-advertise-peer-urls": self.peerUrl,
      "initial-cluster": initialCluster(v.members),
      "initial-cluster-state": "new",
      // Members of another cluster (or of this one after a rebuild) never join this one by mistake.
      "initial-cluster-token": `kubeadm-ha-${v.clusterName}`,
      "client-cert-auth": "true",
      "trusted-ca-file": pki("ca.crt"),
      "cert-file": pki("server.crt"),
      "key-file": pki("server.key"),
      "peer-client-cert-auth": "true",
      "peer-trusted-ca-file": pki("ca.crt"),
      "peer-cert-file": pki("peer.crt"),
      "peer-key-file": pki("peer.key"),
    }),
    ...etcdTimingArgs(v.timings),
    ...args({
      "listen-metrics-urls": `http://127.0.0.1:${ETCD_METRICS_PORT}`,
      "snapshot-count": String(ETCD_SNAPSHOT_COUNT),
    }),
  ];
}

/** `etcd --name=... ...`, the container command. */
export function etcdCommand(flags: Arg[]): string[] {
  return ["etcd", ...flags.map((f) => `--${f.name}=${f.value}`)];
}

const probe = (path: string, initialDelaySeconds: number, failureThreshold: number, periodSeconds: number) => ({
  httpGet: { host: "127.0.0.1", path, port: ETCD_METRICS_PORT, scheme: "HTTP" },
  initialDelaySeconds,
  timeoutSeconds: 15,
  failureThreshold,
  periodSeconds,
});

const hostPath = (name: string, path: string) => ({ name, hostPath: { path, type: "DirectoryOrCreate" } });

/**
 * Member `self`'s static pod, shaped as kubeadm's own etcd pod (cmd/kubeadm/app/phases/etcd
 * `GetEtcdPodSpec`): host network, node-critical priority, data and certificates from the host,
 * `/livez` and `/readyz` probes on the loopback metrics port (https://github.com/kubernetes/kubeadm/issues/3039).
 */
export function etcdPod(v: EtcdClusterValues, self: EtcdMember) {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: "etcd",
      namespace: "kube-system",
      labels: { component: "etcd", tier: "control-plane" },
      annotations: { "kubeadm.kubernetes.io/etcd.advertise-client-urls": self.clientUrl },
    },
    spec: {
      containers: [
        {
          name: "etcd",
          image: etcdImage(v.kubernetesVersion),
          imagePullPolicy: "IfNotPresent",
          command: etcdCommand(etcdFlags(v, self)),
          resources: { requests: { cpu: "100m", memory: "100Mi" } },
          livenessProbe: probe("/livez", 10, 8, 10),
          readinessProbe: probe("/readyz", 0, 3, 1),
          // kubeadm's startup budget: 4 minutes in 10 s periods.
          startupProbe: probe("/readyz", 10, 24, 10),
          volumeMounts: [
            { name: "etcd-data", mountPath: ETCD_DATA_DIR },
            { name: "etcd-certs", mountPath: ETCD_PKI_DIR },
          ],
        },
      ],
      hostNetwork: true,
      priority: 2000001000,
      priorityClassName: "system-node-critical",
      securityContext: { seccompProfile: { type: "RuntimeDefault" } },
      volumes: [hostPath("etcd-certs", ETCD_PKI_DIR), hostPath("etcd-data", ETCD_DATA_DIR)],
    },
  };
}

/**
 * The standalone kubelet of an etcd machine, as in kubeadm's external etcd guide: no API server,
 * no kubeconfig, only static pods; its API on loopback with anonymous and webhook authentication
 * off (a standalone kubelet needs an explicit authorization mode, and has no API to ask).
 */
export function etcdKubeletConfiguration() {
  return {
    apiVersion: KUBELET_API,
    kind: "KubeletConfiguration",
    authentication: { anonymous: { enabled: false }, webhook: { enabled: false } },
    authorization: { mode: "AlwaysAllow" },
    // containerd is configured with SystemdCgroup = true (install.sh).
    cgroupDriver: "systemd",
    address: "127.0.0.1",
    containerRuntimeEndpoint: CRI_SOCKET,
    staticPodPath: STATIC_POD_DIR,
  };
}

/** Everything cloud-init writes on member `self`: env file, the etcd pod and the kubelet configuration. */
export function etcdNodeDocuments(v: EtcdClusterValues & { region: string; secretArn: string; backup?: EtcdBackupValues; certRenewBeforeDays?: number }, self: EtcdMember): NodeDocuments {
  return {
    env: {
      CLUSTER_NAME: v.clusterName,
      NODE_ROLE: "etcd",
      NODE_NAME: self.name,
      NODE_IP: self.ip,
      INIT_NODE: "false",
      KUBERNETES_VERSION: v.kubernetesVersion,
      KUBERNETES_MINOR: v.kubernetesVersion.split(".").slice(0, 2).join("."),
      AWS_REGION: v.region,
      SECRET_ID: v.secretArn,
      ETCD_MEMBERS: initialCluster(v.members),
      ETCD_IMAGE: etcdImage(v.kubernetesVersion),
      CERT_RENEW_BEFORE_DAYS: String(v.certRenewBeforeDays ?? DEFAULT_CERT_RENEW_BEFORE_DAYS),
      ...backupEnv(v.backup),
    },
    kubeadm: {
      "etcd.yaml": toYaml(etcdPod(v, self)),
      "kubelet-etcd.yaml": toYaml(etcdKubeletConfiguration()),
    },
    backupIntervalMinutes: v.backup?.intervalMinutes,
  };
}

export interface EtcdCertificatesArgs {
  /** The etcd CA (`Pki.etcdCa`) that signs every certificate. Required. */
  ca: CertificateAuthority;
  /** The members (`etcdMembers`). Required. */
  members: EtcdMember[];
}

/** One member's certificates. */
export interface EtcdMemberCertificates {
  member: EtcdMember;
  server: LeafCertificate;
  peer: LeafCertificate;
}

/**
 * The external etcd cluster's certificates, signed by the etcd CA: a server and a peer certificate
 * per member, and the API servers' etcd client certificate. Keys are secret from creation.
 */
export class EtcdCertificates extends pulumi.ComponentResource {
  /** Each member's server and peer certificates, in index order. */
  public readonly members: EtcdMemberCertificates[];
  /** `apiserver-etcd-client`: CN kube-apiserver-etcd-client, client auth only. */
  public readonly apiServerClient: LeafCertificate;
  /** The etcd secret's per-member entries (see `etcdMaterial`); keys secret. */
  public readonly memberMaterial: pulumi.Output<EtcdMemberPkiMaterial>[];

  constructor(name: string, args: EtcdCertificatesArgs, opts?: pulumi.ComponentResourceOptions) {
    if (args.members.length === 0) throw new Error("EtcdCertificates: members must not be empty");
    super("kubeadm-ha:index:EtcdCertificates", name, {}, opts);
    const child = { parent: this };
    this.members = args.members.map((m) => ({
      member: m,
      server: issueCertificate(`${name}-member-${m.index}-server`, args.ca, serverCertificateArgs(m), child),
      peer: issueCertificate(`${name}-member-${m.index}-peer`, args.ca, peerCertificateArgs(m), child),
    }));
    this.apiServerClient = issueCertificate(`${name}-apiserver-etcd-client`, args.ca, API_SERVER_ETCD_CLIENT_CERTIFICATE, child);
    this.memberMaterial = this.members.map((c) =>
      pulumi.output({
        name: c.member.name,
        serverCertPem: c.server.certPem,
        serverKeyPem: c.server.keyPem,
        peerCertPem: c.peer.certPem,
        peerKeyPem: c.peer.keyPem,
      }),
    );
    this.registerOutputs({ apiServerClientCertPem: this.apiServerClient.certPem });
  }
}

export interface EtcdClusterArgs {
  /** Cluster name: tags, Name tags and the initial cluster token. Required. */
  clusterName: string;
  /** AWS region, written to each member's env file for the AWS CLI. Required. */
  region: string;
  /** Kubernetes release: picks the etcd image (`etcdImage`) and the kubelet package. Required. */
  kubernetesVersion: string;
  /** The members (`etcdMembers`): 3, 5 or 7 in distinct zones. Required. */
  members: EtcdMember[];
  /** EC2 instance type of every member. Required. */
  instanceType: string;
  /** Root volume size in GiB (encrypted gp3); it holds the data directory. Required. */
  rootVolumeGiB: number;
  /** AMI of every member (Ubuntu 24.04). Required. */
  amiId: pulumi.Input<string>;
  /** Private subnet ids in the zone order `members` were placed with. Required. */
  privateSubnetIds: pulumi.Input<string>[];
  /** Security groups of every member: the etcd group. Required. */
  securityGroupIds: pulumi.Input<string>[];
  /** The etcd role's instance profile, which reads the etcd secret only. Required. */
  instanceProfileName: pulumi.Input<string>;
  /** ARN of the etcd role's secret (`etcdMaterial`). Required. */
  secretArn: pulumi.Input<string>;
  /** The bootstrap bucket (`BootstrapAssets.bucketName`) the members fetch their scripts from. Required. */
  bootstrapBucket: pulumi.Input<string>;
  /** Raft timing of every member. Required. */
  timings: EtcdTimings;
  /** Snapshots of each member to S3: bucket, prefix, key and interval (components/etcdBackup.ts). Default: no backups. */
  backup?: pulumi.Input<EtcdBackupValues>;
  /** Renew the members' server and peer certificates this many days before expiry. Default 60. */
  certRenewBeforeDays?: number;
  /** Extra tags on every instance. Required (may be empty). */
  tags: Record<string, string>;
  /** Resources every member waits for, such as the etcd secret's version. Default none. */
  dependsOn?: pulumi.Input<pulumi.Resource>[];
  /**
   * The chain of health gates the members join, in index order (day2/chain.ts): each waits for
   * the gate of the machine before it. Default none: a new AMI, user data or instance type is then
   * ignored rather than applied to every member at once.
   */
  chain?: MachineChain;
}

/** The external etcd machines, one member each. */
export class EtcdCluster extends pulumi.ComponentResource {
  /** Every member's placement and URLs, known before deployment. */
  public readonly members: EtcdMember[];
  /** Private IPs of the members, in index order. */
  public readonly memberIps: string[];
  /** The members' client URLs, `https://<ip>:2379`. */
  public readonly endpoints: string[];
  /** EC2 instance ids, in index order. */
  public readonly instanceIds: pulumi.Output<string>[];
  /** Each member's user data as EC2 gets it (gzipped cloud-config, base64), in index order. */
  public readonly userData: pulumi.Output<string>[];
  /** Each member as the rollout addresses it (day2/rollout.ts), in index order. */
  public readonly machines: pulumi.Output<RolloutMachine>[];
  /** Each member as the rollout addresses it, with its pod's fingerprint (day2/chain.ts podFingerprint), in index order. */
  public readonly manifests: pulumi.Output<MemberManifest>[];
  /** Each member's health gate, in index order; empty without a chain. */
  public readonly gates: MachineGate[];

  constructor(name: string, args: EtcdClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    const n = args.members.length;
    if (!(n >= 3 && n <= 7 && n % 2 === 1)) throw new Error(`EtcdCluster: members must number 3, 5 or 7 (got ${n})`);
    if (new Set(args.members.map((m) => m.name)).size !== n) throw new Error("EtcdCluster: member names must be distinct");
    super("kubeadm-ha:index:EtcdCluster", name, {}, opts);
    this.members = args.members;
    this.memberIps = args.members.map((m) => m.ip);
    this.endpoints = etcdEndpoints(args.members);

    const values = { clusterName: args.clusterName, kubernetesVersion: args.kubernetesVersion, timings: args.timings, members: args.members };
    const instances = args.members.map((m) => {
      const userData = pulumi.all([args.secretArn, args.backup, args.bootstrapBucket]).apply(([secretArn, backup, bootstrapBucket]) => {
        const encoded = encodeUserData(renderCloudConfig(etcdNodeDocuments({ ...values, region: args.region, secretArn, backup, certRenewBeforeDays: args.certRenewBeforeDays }, m), bootstrapBucket));
        assertUserDataSize(`etcd member ${m.index}`, encoded);
        return encoded;
      });
      const instance = nodeInstance(
        `${name}-member-${m.index}`,
        {
          clusterName: args.clusterName,
          role: "etcd",
          displayName: `${args.clusterName}-etcd-${m.index}`,
          placement: m,
          amiId: args.amiId,
          instanceType: args.instanceType,
          rootVolumeGiB: args.rootVolumeGiB,
          subnetId: args.privateSubnetIds[m.subnet],
          securityGroupIds: args.securityGroupIds,
          instanceProfileName: args.instanceProfileName,
          userDataBase64: userData,
          tags: args.tags,
          chained: args.chain !== undefined,
        },
        // The chain's gate before this member is read now, in index order, not later.
        { parent: this, dependsOn: [...(args.dependsOn ?? []), ...(args.chain?.before() ?? [])] },
      );
      const machine = instance.id.apply((instanceId): RolloutMachine => ({ role: "etcd", index: m.index, name: m.name, instanceId }));
      const gate = args.chain?.gate(
        `${name}-member-${m.index}-gate`,
        machine,
        pulumi.all([args.amiId, userData]).apply(([ami, ud]): MachineSpec => ({
          ami,
          instanceType: args.instanceType,
          rootVolumeGiB: args.rootVolumeGiB,
          userDataSha: userDataFingerprint(ud),
          kubeadmSha: "",
          kubernetesVersion: args.kubernetesVersion,
        })),
        { parent: this },
      );
      const manifestSha = podFingerprint(toYaml(etcdPod(values, m)));
      return { instance, userData, gate, machine, manifest: machine.apply((mm): MemberManifest => ({ ...mm, manifestSha })) };
    });
    this.instanceIds = instances.map((i) => i.instance.id);
    this.userData = instances.map((i) => i.userData);
    this.machines = instances.map((i) => i.machine);
    this.manifests = instances.map((i) => i.manifest);
    this.gates = instances.flatMap((i) => (i.gate ? [i.gate] : []));
    this.registerOutputs({ memberIps: this.memberIps, endpoints: this.endpoints, instanceIds: this.instanceIds });
  }
}
