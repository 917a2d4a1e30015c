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
import { EtcdBackupValues, NodeDocuments, assertUserDataSize, backupEnv, encodeUserData, renderCloudConfig } from "../cloud-init/render";
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
  apiEndpoint: string;
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
  masters: Placement[];
}

/** Everything cloud-init writes on master `self`: env file, kubeadm documents, patches. */
export function masterDocuments(v: MasterDocumentValues, self: Placement): NodeDocuments {
  const node: NodeValues = { name: self.name, ip: self.ip, externalCloudProvider: v.externalCloudProvider };
  const cluster = clusterConfiguration({
    clusterName: v.clusterName,
    kubernetesVersion: v.kubernetesVersion,
    controlPlaneEndpoint: v.apiEndpoint,
    podCidr: v.podCidr,
    serviceCidr: v.serviceCidr,
    leaderElection: v.leaderElection,
    externalEtcd: v.externalEtcd,
    etcdTimings: v.externalEtcd ? undefined : v.etcdTimings,
    apiServerExtraArgs: v.encryptionAtRest ? encryptionProviderArgs() : undefined,
    externalCloudProvider: v.externalCloudProvider,
  });
  // Stacked etcd's per-master --etcd-servers is the only patch; with external etcd there is none.
  const patches = v.externalEtcd ? undefined : PATCHES_DIR;
  const kubeadm: Record<string, string> = {
    "join.yaml": toYaml(joinConfiguration(node, { apiServerEndpoint: v.apiEndpoint, caCertHash: v.caCertHash, controlPlane: true, patchesDirectory: patches })),
  };
  if (self.index === 0) kubeadm["init.yaml"] = toYaml(initConfiguration(node, { patchesDirectory: patches, tokenTtlHours: v.joinTokenTtlHours }), cluster, kubeletConfiguration());
  const addons = self.index === 0 && v.addonFiles !== undefined && Object.keys(v.addonFiles).length > 0;
  if (addons) Object.assign(kubeadm, v.addonFiles);
  if (!v.externalEtcd)
    kubeadm["patches/kube-apiserver0+json.yaml"] = toYaml(
      apiServerEtcdServersPatch(stackedEtcdServers(self.ip, v.masters.map((m) => m.ip))),
    );
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
  targetGroupArn: pulumi.Input<string>;
  /** `<nlb-dns>:6443`. */
  apiEndpoint: pulumi.Input<string>;
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
  tags: Record<string, string>;
  /** Resources every master waits for, such as the secret version it fetches at boot. */
  dependsOn?: pulumi.Input<pulumi.Resource>[];
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

  constructor(name: string, args: ControlPlaneArgs, opts?: pulumi.ComponentResourceOptions) {
    super("kubeadm-ha:index:ControlPlane", name, {}, opts);
    this.placements = placeNodes(args.count, args.zones, args.privateSubnetCidrs, args.region);
    this.masterIps = this.placements.map((p) => p.ip);
    this.nodeNames = this.placements.map((p) => p.name);

    const instances = this.placements.map((p) => {
      const userData = pulumi
        .all([args.apiEndpoint, args.caCertHash, args.secretArn, args.externalEtcd, args.etcdBackup, args.bootstrapBucket, args.addonFiles, args.workerSecretArn])
        .apply(([apiEndpoint, caCertHash, secretArn, externalEtcd, etcdBackup, bootstrapBucket, addonFiles, workerSecretArn]) => {
          const text = renderCloudConfig(
            masterDocuments(
              {
                clusterName: args.clusterName,
                kubernetesVersion: args.kubernetesVersion,
                region: args.region,
                apiEndpoint,
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
                masters: this.placements,
              },
              p,
            ),
            bootstrapBucket,
          );
          const encoded = encodeUserData(text);
          assertUserDataSize(`master ${p.index}`, encoded);
          return encoded;
        });
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
        },
        { parent: this, dependsOn: args.dependsOn },
      );
      new aws.lb.TargetGroupAttachment(
        `${name}-master-${p.index}-api`,
        { targetGroupArn: args.targetGroupArn, targetId: instance.id, port: 6443 },
        { parent: this },
      );
      return { instance, userData };
    });
    this.instanceIds = instances.map((i) => i.instance.id);
    this.userData = instances.map((i) => i.userData);
    this.registerOutputs({ masterIps: this.masterIps, nodeNames: this.nodeNames, instanceIds: this.instanceIds });
  }
}
