/**
 * The control plane: `count` masters spread over the zones, each with a fixed private IP, running
 * kube-apiserver (active-active behind the NLB), kube-controller-manager and kube-scheduler
 * (active-standby through leader election) and, when stacked, an etcd member.
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import {
  EtcdTimings,
  ExternalEtcd,
  LeaderElection,
  DEFAULT_TOKEN_TTL_HOURS,
  NodeValues,
  PATCHES_DIR,
  apiServerEtcdServersPatch,
  clusterConfiguration,
  initConfiguration,
  joinConfiguration,
  kubeletConfiguration,
  stackedEtcdServers,
  toYaml,
} from "../cloud-init/kubeadm";
import { encryptionProviderArgs } from "../cloud-init/encryption";
import { EtcdBackupValues, NodeDocuments, assertUserDataSize, backupEnv, encodeUserData, renderCloudConfig, sha256Hex } from "../cloud-init/render";
import { MachineChain, userDataFingerprint } from "../day2/chain";
import { MachineGate } from "../day2/resources";
import { MachineSpec, RolloutMachine } from "../day2/rollout";
import { etcdImage } from "./etcd";
import { nthHost } from "./network";
import { nodeInstance } from "./nodeInstance";

/** Days before expiry that cert-renew.sh renews when none is given (config certificates.renewBeforeDays). */
export const DEFAULT_CERT_RENEW_BEFORE_DAYS = 60;

/** First host number used for masters in each private subnet; lower ones are left for AWS and humans. */
export const MASTER_HOST_OFFSET = 10;

export interface Placement {
  index: number;
  zone: string;
  /** Index into the zone-ordered private subnets. */
  subnet: number;
  ip: string;
  /** EC2 private DNS name, which is also the Kubernetes node name. */
  name: string;
}

/** The EC2 private DNS name of an address: us-east-1 uses ec2.internal, every other region <region>.compute.internal. */
export function privateDnsName(ip: string, region: string): string {
  const host = `ip-${ip.replace(/\./g, "-")}`;
  return region === "us-east-1" ? `${host}.ec2.internal` : `${host}.${region}.compute.internal`;
}

/**
 * Round-robin placement over the zones with deterministic addresses: master i sits in zone
 * i mod n at host MASTER_HOST_OFFSET + floor(i / n) of that zone's private subnet. Fixed
 * addresses let every API server know its etcd peers before any machine exists, and keep a
 * replaced master's identity.
 */
export function placeNodes(count: number, zones: string[], subnetCidrs: string[], region: string, offset = MASTER_HOST_OFFSET): Placement[] {
  if (zones.length !== subnetCidrs.length) throw new Error(`placeNodes: ${zones.length} zones but ${subnetCidrs.length} subnets`);
  return Array.from({ length: count }, (_, index) => {
    const subnet = index % zones.length;
    const ip = nthHost(subnetCidrs[subnet], offset + Math.floor(index / zones.length));
    return { index, zone: zones[subnet], subnet, ip, name: privateDnsName(ip, region) };
  });
}

export interface MasterDocumentValues {
  clusterName: string;
  kubernetesVersion: string;
  region: string;
  /** `host:6443` of the internal load balancer: kubeadm's controlPlaneEndpoint, what every node dials. */
  apiEndpoint: string;
  /** The people's internet-facing load balancer's DNS name, added to the API server's certificate. Default none (scheme internal). */
  publicApiHost?: string;
  caCertHash: string;
  secretArn: string;
  podCidr: string;
  serviceCidr: string;
  leaderElection: LeaderElection;
  externalEtcd?: ExternalEtcd;
  /** Raft timing of the stacked etcd members; unused with external etcd, whose members render it themselves. */
  etcdTimings?: EtcdTimings;
  /** The API servers read `encryption-config.yaml` from the control plane's secret. Default false. */
  encryptionAtRest?: boolean;
  /** Stacked etcd only: snapshots of each master's member to S3. Default: none. */
  etcdBackup?: EtcdBackupValues;
  /** kubelet and kube-controller-manager `--cloud-provider=external` (the AWS cloud controller runs). Default true. */
  externalCloudProvider?: boolean;
  /** Master 0 only: the add-on files it installs after `kubeadm init` (components/addons.ts addonNodeFiles). Default none. */
  addonFiles?: Record<string, string>;
  /** Renew certificates this many days before expiry (cert-renew.sh). Default 60. */
  certRenewBeforeDays?: number;
  /** The workers' secret, into which the masters rotate the join token (token-rotate.sh). Default: no rotation target, token-rotate.sh refuses to run. */
  workerSecretArn?: string;
  /** The worker join token's lifetime in hours. Default 24. */
  joinTokenTtlHours?: number;
  /** The SSM parameter recording the cluster's first successful init (components/initMarker.ts), master 0's INIT_MARKER. Required on master 0. */
  initMarker?: string;
  masters: Placement[];
}

/** The ClusterConfiguration every master's kubeadm stores and reads (rendered into master 0's init.yaml). */
function masterClusterConfiguration(v: MasterDocumentValues) {
  return clusterConfiguration({
    clusterName: v.clusterName,
    kubernetesVersion: v.kubernetesVersion,
    controlPlaneEndpoint: v.apiEndpoint,
    extraCertSans: v.publicApiHost ? [v.publicApiHost] : undefined,
    podCidr: v.podCidr,
    serviceCidr: v.serviceCidr,
    leaderElection: v.leaderElection,
    externalEtcd: v.externalEtcd,
    etcdTimings: v.externalEtcd ? undefined : v.etcdTimings,
    apiServerExtraArgs: v.encryptionAtRest ? encryptionProviderArgs() : undefined,
    externalCloudProvider: v.externalCloudProvider,
  });
}

/** Master `self`'s kubeadm patch (stacked etcd's --etcd-servers), or undefined with external etcd. */
function masterPatch(v: MasterDocumentValues, self: Placement): string | undefined {
  return v.externalEtcd ? undefined : toYaml(apiServerEtcdServersPatch(stackedEtcdServers(self.ip, v.masters.map((m) => m.ip))));
}

/**
 * What kubeadm renders master `self`'s static pods from: the stored ClusterConfiguration and its own
 * patch. When it changes, the master's gate runs `kubeadm upgrade` (day2/rollout.ts gateSteps).
 */
export function masterKubeadmFingerprint(v: MasterDocumentValues, self: Placement): string {
  return sha256Hex(toYaml(masterClusterConfiguration(v)) + (masterPatch(v, self) ?? ""));
}

/** Everything cloud-init writes on master `self`: env file, kubeadm documents, patches. */
export function masterDocuments(v: MasterDocumentValues, self: Placement): NodeDocuments {
  const node: NodeValues = { name: self.name, ip: self.ip, externalCloudProvider: v.externalCloudProvider };
  const cluster = masterClusterConfiguration(v);
  // Stacked etcd's per-master --etcd-servers is the only patch; with external etcd there is none.
  const patches = v.externalEtcd ? undefined : PATCHES_DIR;
  const kubeadm: Record<string, string> = {
    "join.yaml": toYaml(joinConfiguration(node, { apiServerEndpoint: v.apiEndpoint, caCertHash: v.caCertHash, controlPlane: true, patchesDirectory: patches })),
  };
  if (self.index === 0) kubeadm["init.yaml"] = toYaml(initConfiguration(node, { patchesDirectory: patches, tokenTtlHours: v.joinTokenTtlHours }), cluster, kubeletConfiguration());
  const addons = self.index === 0 && v.addonFiles !== undefined && Object.keys(v.addonFiles).length > 0;
  if (self.index === 0 && !v.initMarker) throw new Error("masterDocuments: initMarker is required on master 0: without it master 0 cannot prove the cluster does not exist");
  if (addons) Object.assign(kubeadm, v.addonFiles);
  const patch = masterPatch(v, self);
  if (patch !== undefined) kubeadm["patches/kube-apiserver0+json.yaml"] = patch;
  return {
    env: {
      CLUSTER_NAME: v.clusterName,
      NODE_ROLE: "control-plane",
      NODE_NAME: self.name,
      NODE_IP: self.ip,
      INIT_NODE: self.index === 0 ? "true" : "false",
      KUBERNETES_VERSION: v.kubernetesVersion,
      KUBERNETES_MINOR: v.kubernetesVersion.split(".").slice(0, 2).join("."),
      API_ENDPOINT: v.apiEndpoint,
      AWS_REGION: v.region,
      SECRET_ID: v.secretArn,
      CERT_RENEW_BEFORE_DAYS: String(v.certRenewBeforeDays ?? DEFAULT_CERT_RENEW_BEFORE_DAYS),
      CONTROL_PLANE_IPS: v.masters.map((m) => m.ip).join(","),
      ...(v.workerSecretArn ? { WORKER_SECRET_ID: v.workerSecretArn } : {}),
      JOIN_TOKEN_TTL_HOURS: String(v.joinTokenTtlHours ?? DEFAULT_TOKEN_TTL_HOURS),
      ETCD_TOPOLOGY: v.externalEtcd ? "external" : "stacked",
      ...(v.externalEtcd
        ? { ETCD_ENDPOINTS: v.externalEtcd.endpoints.join(",") }
        : // kubeadm names a stacked member after its node and serves peers on the node's address.
          { ETCD_MEMBERS: v.masters.map((m) => `${m.name}=https://${m.ip}:2380`).join(","), ETCD_IMAGE: etcdImage(v.kubernetesVersion) }),
      ...backupEnv(v.etcdBackup),
      // What master 0 checks before kubeadm init: the marker, and every other master directly.
      ...(self.index === 0 ? { MASTER_IPS: v.masters.map((m) => m.ip).join(","), INIT_MARKER: v.initMarker! } : {}),
    },
    kubeadm,
    backupIntervalMinutes: v.etcdBackup?.intervalMinutes,
    ...(addons ? { needs: { addons: true } } : {}),
  };
}

export interface ControlPlaneArgs {
  clusterName: string;
  region: string;
  kubernetesVersion: string;
  /** Masters; odd, at least 3. */
  count: number;
  instanceType: string;
  rootVolumeGiB: number;
  amiId: pulumi.Input<string>;
  /** Zones and their private subnets, in the same order. */
  zones: string[];
  privateSubnetIds: pulumi.Input<string>[];
  privateSubnetCidrs: string[];
  securityGroupIds: pulumi.Input<string>[];
  instanceProfileName: pulumi.Input<string>;
  /** The internal load balancer's target group, which every master registers with. Required. */
  targetGroupArn: pulumi.Input<string>;
  /** The public load balancer's target group (scheme internet-facing). Default none. */
  publicTargetGroupArn?: pulumi.Input<string>;
  /** `<internal nlb-dns>:6443`, the nodes' endpoint. Required. */
  apiEndpoint: pulumi.Input<string>;
  /** The public load balancer's DNS name, for the API server's certificate (scheme internet-facing). Default none. */
  publicApiHost?: pulumi.Input<string>;
  secretArn: pulumi.Input<string>;
  /** The bootstrap bucket (`BootstrapAssets.bucketName`) the masters fetch their scripts from. Required. */
  bootstrapBucket: pulumi.Input<string>;
  caCertHash: pulumi.Input<string>;
  podCidr: string;
  serviceCidr: string;
  leaderElection: LeaderElection;
  /** Set for the external etcd topology; absent means stacked. */
  externalEtcd?: pulumi.Input<ExternalEtcd>;
  /** Raft timing of the stacked etcd members. Default: etcd's own (100 ms heartbeat, 1000 ms election timeout), not rendered. */
  etcdTimings?: EtcdTimings;
  /**
   * Point the API servers at `encryption-config.yaml`; the control plane's secret must carry it
   * (components/encryption.ts). Read at `kubeadm init` only: joining masters take kubeadm's stored
   * ClusterConfiguration. Default false.
   */
  encryptionAtRest?: boolean;
  /** Stacked etcd only: the backup bucket, prefix, key and interval (components/etcdBackup.ts). Default: no backups. */
  etcdBackup?: pulumi.Input<EtcdBackupValues>;
  /** kubelet and kube-controller-manager `--cloud-provider=external`; false when no cloud controller runs. Default true. */
  externalCloudProvider?: boolean;
  /** Files master 0 writes under /etc/kubeadm-ha and installs with helm after `kubeadm init` (addons.installer nodes). Default none. */
  addonFiles?: pulumi.Input<Record<string, string>>;
  /** Renew the masters' certificates this many days before expiry. Default 60. */
  certRenewBeforeDays?: number;
  /** The workers' secret, into which the masters rotate the join token. Default: none (token-rotate.sh refuses to run). */
  workerSecretArn?: pulumi.Input<string>;
  /** Lifetime of the worker join token in hours. Default 24. */
  joinTokenTtlHours?: number;
  /** The init marker's SSM parameter name (components/initMarker.ts). Required. */
  initMarker: string;
  tags: Record<string, string>;
  /** Resources every master waits for, such as the secret version it fetches at boot. */
  dependsOn?: pulumi.Input<pulumi.Resource>[];
  /**
   * The chain of health gates the masters join, in index order (day2/chain.ts): each master waits
   * for the gate of the machine before it. Default none: a new AMI, user data or instance type is
   * then ignored rather than applied to every master at once.
   */
  chain?: MachineChain;
}

export class ControlPlane extends pulumi.ComponentResource {
  /** Placement of every master (zone, IP, node name), known before deployment. */
  public readonly placements: Placement[];
  /** Private IPs of the masters, in index order. */
  public readonly masterIps: string[];
  /** Kubernetes node names (EC2 private DNS names) of the masters. */
  public readonly nodeNames: string[];
  public readonly instanceIds: pulumi.Output<string>[];
  /** Each master's user data as EC2 gets it (gzipped cloud-config, base64), in index order. */
  public readonly userData: pulumi.Output<string>[];
  /** Each master as the rollout addresses it (day2/rollout.ts), in index order. */
  public readonly machines: pulumi.Output<RolloutMachine>[];
  /** Each master's health gate, in index order; empty without a chain. */
  public readonly gates: MachineGate[];

  constructor(name: string, args: ControlPlaneArgs, opts?: pulumi.ComponentResourceOptions) {
    super("kubeadm-ha:index:ControlPlane", name, {}, opts);
    this.placements = placeNodes(args.count, args.zones, args.privateSubnetCidrs, args.region);
    this.masterIps = this.placements.map((p) => p.ip);
    this.nodeNames = this.placements.map((p) => p.name);

    const instances = this.placements.map((p) => {
      const rendered = pulumi
        .output({
          apiEndpoint: args.apiEndpoint,
          publicApiHost: args.publicApiHost,
          caCertHash: args.caCertHash,
          secretArn: args.secretArn,
          externalEtcd: args.externalEtcd,
          etcdBackup: args.etcdBackup,
          bootstrapBucket: args.bootstrapBucket,
          addonFiles: args.addonFiles,
          workerSecretArn: args.workerSecretArn,
        })
        .apply(({ apiEndpoint, publicApiHost, caCertHash, secretArn, externalEtcd, etcdBackup, bootstrapBucket, addonFiles, workerSecretArn }) => {
          const values: MasterDocumentValues = {
            clusterName: args.clusterName,
            kubernetesVersion: args.kubernetesVersion,
            region: args.region,
            apiEndpoint,
            publicApiHost,
            caCertHash,
            secretArn,
            podCidr: args.podCidr,
            serviceCidr: args.serviceCidr,
            leaderElection: args.leaderElection,
            externalEtcd,
            etcdTimings: args.etcdTimings,
            encryptionAtRest: args.encryptionAtRest,
            etcdBackup,
            externalCloudProvider: args.externalCloudProvider,
            addonFiles,
            certRenewBeforeDays: args.certRenewBeforeDays,
            workerSecretArn,
            joinTokenTtlHours: args.joinTokenTtlHours,
            initMarker: args.initMarker,
            masters: this.placements,
          };
          const encoded = encodeUserData(renderCloudConfig(masterDocuments(values, p), bootstrapBucket));
          assertUserDataSize(`master ${p.index}`, encoded);
          return { encoded, kubeadmSha: masterKubeadmFingerprint(values, p) };
        });
      const userData = rendered.apply((r) => r.encoded);
      const instance = nodeInstance(
        `${name}-master-${p.index}`,
        {
          clusterName: args.clusterName,
          role: "control-plane",
          displayName: `${args.clusterName}-master-${p.index}`,
          placement: p,
          amiId: args.amiId,
          instanceType: args.instanceType,
          rootVolumeGiB: args.rootVolumeGiB,
          subnetId: args.privateSubnetIds[p.subnet],
          securityGroupIds: args.securityGroupIds,
          instanceProfileName: args.instanceProfileName,
          userDataBase64: userData,
          tags: args.tags,
          chained: args.chain !== undefined,
        },
        // The chain's gate before this master is read now, in index order, not later.
        { parent: this, dependsOn: [...(args.dependsOn ?? []), ...(args.chain?.before() ?? [])] },
      );
      new aws.lb.TargetGroupAttachment(
        `${name}-master-${p.index}-api`,
        { targetGroupArn: args.targetGroupArn, targetId: instance.id, port: 6443 },
        { parent: this },
      );
      if (args.publicTargetGroupArn !== undefined)
        new aws.lb.TargetGroupAttachment(
          `${name}-master-${p.index}-api-public`,
          { targetGroupArn: args.publicTargetGroupArn, targetId: instance.id, port: 6443 },
          { parent: this },
        );
      const machine = instance.id.apply((instanceId): RolloutMachine => ({ role: "control-plane", index: p.index, name: p.name, instanceId }));
      const gate = args.chain?.gate(
        `${name}-master-${p.index}-gate`,
        machine,
        pulumi.all([args.amiId, userData, rendered]).apply(([ami, ud, r]): MachineSpec => ({
          ami,
          instanceType: args.instanceType,
          rootVolumeGiB: args.rootVolumeGiB,
          userDataSha: userDataFingerprint(ud),
          kubeadmSha: r.kubeadmSha,
          kubernetesVersion: args.kubernetesVersion,
        })),
        { parent: this },
      );
      return { instance, userData, machine, gate };
    });
    this.instanceIds = instances.map((i) => i.instance.id);
    this.userData = instances.map((i) => i.userData);
    this.machines = instances.map((i) => i.machine);
    this.gates = instances.flatMap((i) => (i.gate ? [i.gate] : []));
    this.registerOutputs({ masterIps: this.masterIps, nodeNames: this.nodeNames, instanceIds: this.instanceIds });
  }
}
