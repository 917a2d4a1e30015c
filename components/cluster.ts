/**
 * The whole cluster: wires network, API load balancer, security groups, PKI, bootstrap secrets,
 * node roles, the control plane and, with external etcd, the etcd members. Takes the validated
 * config; reads nothing else.
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { ClusterConfig, DRAIN_TIMEOUT_SECONDS, addonInstaller, architectureOf } from "../config";
import { AddonRelease, AddonSummary, Addons, addonNodeFiles, addonReleases, addonSummaries, defaultStorageClass } from "./addons";
import { bundledScriptContents } from "../cloud-init/render";
import { ApiLoadBalancer } from "./apiLoadBalancer";
import { BootstrapAssets } from "./bootstrapAssets";
import { ControlPlane } from "./controlPlane";
import { SecretsEncryption } from "./encryption";
import { EtcdCertificates, EtcdCluster, etcdMembers, externalEtcdConfig } from "./etcd";
import { EtcdBackups } from "./etcdBackup";
import { NodeRoles } from "./iam";
import { Network } from "./network";
import { Pki, kubeconfig } from "./pki";
import { RecoveryAlarms } from "./recovery";
import { BootstrapSecrets, controlPlaneMaterial, etcdMaterial, workerMaterial } from "./secrets";
import { NodeTerminationQueue, QUEUE_RETENTION_SECONDS } from "./nodeTermination";
import { NodeSecurityGroups } from "./securityGroups";
import { WorkerJoin, WorkerPool, drains, groupTags } from "./workerPool";

/** Canonical's AWS account, owner of the official Ubuntu images. */
export const CANONICAL_OWNER = "099720109477";

// architectureOf lives in config.ts, which rejects pools that mix architectures.
export { architectureOf };

export function ubuntuImageFilter(arch: "arm64" | "amd64"): string {
  return `ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-${arch}-server-*`;
}

export interface ClusterArgs {
  config: ClusterConfig;
}

export class Cluster extends pulumi.ComponentResource {
  /** `https://<nlb-dns>:6443`. */
  public readonly apiServerUrl: pulumi.Output<string>;
  /** NLB DNS name. */
  public readonly apiLoadBalancerDnsName: pulumi.Output<string>;
  /** Admin kubeconfig (secret): cluster CA, NLB endpoint, admin client certificate. */
  public readonly kubeconfig: pulumi.Output<string>;
  /** Private IPs of the masters, in index order. */
  public readonly masterIps: string[];
  /** etcd client URLs the API servers use: the external members' with external etcd, the masters' when stacked. */
  public readonly etcdEndpoints: string[];
  /** Private IPs of the external etcd members, in index order; empty when stacked. */
  public readonly etcdIps: string[];
  /** EC2 instance IDs of the masters, in index order: the `--target` of `aws ssm start-session`. */
  public readonly masterInstanceIds: pulumi.Output<string>[];
  /** EC2 instance IDs of the external etcd members, in index order; empty when stacked. */
  public readonly etcdInstanceIds: pulumi.Output<string>[];
  /** `stacked` or `external`. */
  public readonly etcdTopology: string;
  /** The S3 bucket of the etcd snapshots (`etcd-snapshots/<member>/<UTC timestamp>.db`); undefined with `etcd.backup.enabled` false. */
  public readonly etcdBackupBucket: pulumi.Output<string> | undefined;
  public readonly vpcId: pulumi.Output<string>;
  /** sha256 hash of the cluster CA's public key, for `kubeadm join --discovery-token-ca-cert-hash`. */
  public readonly caCertHash: pulumi.Output<string>;
  /** When each certificate Pulumi signs expires (RFC 3339); the machines renew their own (components/certificates.ts). */
  public readonly certificateExpiry: pulumi.Output<Record<string, string>>;
  /** What a worker pool needs to join this cluster: pass it as `join` to `new WorkerPool(...)`. */
  public readonly workerJoin: WorkerJoin;
  /** The pools of `config.workerPools`, in config order. */
  public readonly workerPools: WorkerPool[];
  /** Pool name -> auto scaling group name. */
  public readonly workerAutoScalingGroups: Record<string, pulumi.Output<string>>;
  /** The add-ons with their pinned chart versions and who installs them, in install order. */
  public readonly addons: AddonSummary[];

  constructor(name: string, args: ClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("kubeadm-ha:index:Cluster", name, {}, opts);
    const c = args.config;
    const tags = c.tags;
    const child = { parent: this };
    // AWS's 50-tag limit on a pool's group depends on the stack's tags too: check it before any
    // machine exists, not when the pool's turn comes.
    const nth = { nodeTerminationHandler: c.addons.nodeTerminationHandler };
    for (const pool of c.workerPools) groupTags(c.clusterName, pool, tags, drains(nth, pool));
    // The handler's one drain timeout serves every pool: the longest of the drained pools' hooks,
    // each of which still bounds its own pool.
    const drainTimeoutSeconds = Math.max(DRAIN_TIMEOUT_SECONDS.default, ...c.workerPools.filter((p) => drains(nth, p)).map((p) => p.drain.timeoutSeconds));

    const network = new Network(`${name}-network`, {
      clusterName: c.clusterName,
      vpcCidr: c.network.vpcCidr,
      availabilityZones: c.network.availabilityZones,
      natGateways: c.network.natGateways,
      tags,
    }, child);

    const internal = c.apiLoadBalancer.scheme === "internal";
    const lb = new ApiLoadBalancer(`${name}-api`, {
      clusterName: c.clusterName,
      vpcId: network.vpcId,
      vpcCidr: c.network.vpcCidr,
      subnetIds: internal ? network.privateSubnetIds : network.publicSubnetIds,
      scheme: c.apiLoadBalancer.scheme,
      allowedCidrs: c.apiLoadBalancer.allowedCidrs,
      natPublicIps: network.natPublicIps,
      tags,
    }, child);

    const sgs = new NodeSecurityGroups(`${name}-sg`, {
      clusterName: c.clusterName,
      vpcId: network.vpcId,
      apiLbSecurityGroupId: lb.securityGroupId,
      etcdTopology: c.etcd.topology,
      cni: c.addons.cni,
      tags,
    }, child);

    const pki = new Pki(`${name}-pki`, { clusterName: c.clusterName }, child);
    const external = c.etcd.topology === "external";
    const etcdTimings = { heartbeatIntervalMs: c.etcd.heartbeatIntervalMs, electionTimeoutMs: c.etcd.electionTimeoutMs };
    // External etcd: members and their certificates first, since the etcd secret holds the certificates.
    const members = external ? etcdMembers(c.etcd.nodeCount, network.zones, network.plan.map((s) => s.privateCidr), c.region) : [];
    const etcdPki = external ? new EtcdCertificates(`${name}-etcd-pki`, { ca: pki.etcdCa, members }, child) : undefined;
    const encryption = c.encryptionAtRest ? new SecretsEncryption(`${name}-encryption`, {}, child) : undefined;
    const secrets = new BootstrapSecrets(`${name}-secrets`, {
      clusterName: c.clusterName,
      etcdTopology: c.etcd.topology,
      material: {
        controlPlane: controlPlaneMaterial({
          caCertPem: pki.caCertPem,
          caKeyPem: pki.caKeyPem,
          frontProxyCaCertPem: pki.frontProxyCaCertPem,
          frontProxyCaKeyPem: pki.frontProxyCaKeyPem,
          etcdCaCertPem: pki.etcdCaCertPem,
          etcdCaKeyPem: pki.etcdCaKeyPem,
          ...(etcdPki ? { apiServerEtcdClientCertPem: etcdPki.apiServerClient.certPem, apiServerEtcdClientKeyPem: etcdPki.apiServerClient.keyPem } : {}),
          serviceAccountPrivateKeyPem: pki.serviceAccountPrivateKeyPem,
          serviceAccountPublicKeyPem: pki.serviceAccountPublicKeyPem,
          bootstrapToken: pki.bootstrapToken,
          ...(encryption ? { encryptionConfigYaml: encryption.configYaml } : {}),
        }),
        worker: workerMaterial({ bootstrapToken: pki.bootstrapToken }),
        ...(etcdPki ? { etcd: etcdMaterial({ etcdCaCertPem: pki.etcdCaCertPem, etcdCaKeyPem: pki.etcdCaKeyPem, members: etcdPki.memberMaterial }) } : {}),
      },
      tags,
    }, child);

    // Where the termination handler learns of every planned exit; cluster-wide, so pools a program
    // adds later from `workerJoin` are drained through it as well.
    const terminationQueue = c.addons.nodeTerminationHandler
      ? new NodeTerminationQueue(`${name}-node-termination`, {
        clusterName: c.clusterName,
        retentionSeconds: Math.max(QUEUE_RETENTION_SECONDS, drainTimeoutSeconds),
        tags,
      }, child)
      : undefined;

    const roles = new NodeRoles(`${name}-iam`, {
      clusterName: c.clusterName,
      secretArns: secrets.secretArns,
      kmsKeyArn: secrets.kmsKeyArn,
      awsCloudControllerManager: c.addons.awsCloudControllerManager,
      ebsCsiDriver: c.addons.ebsCsiDriver,
      clusterAutoscaler: c.addons.clusterAutoscaler,
      terminationQueueArn: terminationQueue?.queueArn,
      // Every pool of this cluster holds new machines until their nodes are Ready.
      workerLaunchHook: true,
      tags,
    }, child);

    // What the machines fetch at first boot beyond their user data, readable by every node role.
    const assets = new BootstrapAssets(`${name}-bootstrap`, {
      clusterName: c.clusterName,
      contents: bundledScriptContents(),
      readerRoleArns: [roles.roleArns.controlPlane, roles.roleArns.worker, ...(roles.roleArns.etcd ? [roles.roleArns.etcd] : [])],
      tags,
    }, child);

    // Snapshots from the machines holding etcd members: the masters when stacked, the etcd machines when external.
    const backups = c.etcd.backup.enabled
      ? new EtcdBackups(`${name}-etcd-backups`, {
        clusterName: c.clusterName,
        retentionDays: c.etcd.backup.retentionDays,
        kmsKeyArn: secrets.kmsKeyArn,
        roleArn: external ? roles.roleArns.etcd! : roles.roleArns.controlPlane,
        tags,
      }, child)
      : undefined;
    const etcdBackup = backups
      ? pulumi.all([backups.bucketName, secrets.kmsKeyArn]).apply(([bucket, kmsKeyArn]) => ({
        bucket, prefix: backups.prefix, kmsKeyArn, intervalMinutes: c.etcd.backup.intervalMinutes,
      }))
      : undefined;

    const amiForArch = (arch: "arm64" | "amd64"): pulumi.Input<string> =>
      c.amiId ??
      aws.ec2
        .getAmiOutput({
          owners: [CANONICAL_OWNER],
          mostRecent: true,
          filters: [
            { name: "name", values: [ubuntuImageFilter(arch)] },
            { name: "virtualization-type", values: ["hvm"] },
          ],
        }, child)
        .apply((a) => a.id);
    const amiFor = (instanceType: string): pulumi.Input<string> => amiForArch(architectureOf(instanceType));

    const endpoint = lb.endpoint;
    // The add-ons, decided before any machine: with the `nodes` installer master 0 carries them.
    const installer = addonInstaller(c);
    const releases = addonReleases({
      ...c.addons,
      kubernetesVersion: c.kubernetesVersion,
      clusterName: c.clusterName,
      region: c.region,
      podCidr: c.network.podCidr,
      nodeTermination: terminationQueue
        ? { queueUrl: terminationQueue.queueUrl, managedTag: terminationQueue.managedTagKey, drainTimeoutSeconds }
        : undefined,
    });
    const storageClass = c.addons.ebsCsiDriver ? defaultStorageClass() : undefined;
    const controlPlane = new ControlPlane(`${name}-control-plane`, {
      clusterName: c.clusterName,
      region: c.region,
      kubernetesVersion: c.kubernetesVersion,
      count: c.controlPlane.count,
      instanceType: c.controlPlane.instanceType,
      rootVolumeGiB: c.controlPlane.rootVolumeGiB,
      amiId: amiFor(c.controlPlane.instanceType),
      zones: network.zones,
      privateSubnetIds: network.privateSubnetIds,
      privateSubnetCidrs: network.plan.map((s) => s.privateCidr),
      securityGroupIds: [sgs.controlPlaneSecurityGroupId],
      instanceProfileName: roles.instanceProfileNames.controlPlane,
      targetGroupArn: lb.targetGroupArn,
      apiEndpoint: endpoint,
      secretArn: secrets.secretArns.controlPlane,
      bootstrapBucket: assets.bucketName,
      caCertHash: pki.caCertHash,
      podCidr: c.network.podCidr,
      serviceCidr: c.network.serviceCidr,
      leaderElection: c.leaderElection,
      externalEtcd: external ? externalEtcdConfig(members) : undefined,
      etcdTimings,
      etcdBackup: external ? undefined : etcdBackup,
      encryptionAtRest: c.encryptionAtRest,
      externalCloudProvider: c.addons.awsCloudControllerManager,
      certRenewBeforeDays: c.certificates.renewBeforeDays,
      workerSecretArn: secrets.secretArns.worker,
      joinTokenTtlHours: c.certificates.joinTokenTtlHours,
      // The handler's values hold the queue's URL, known once the queue exists.
      addonFiles: installer === "nodes" ? pulumi.output(releases).apply((rs) => addonNodeFiles(rs as AddonRelease[], storageClass)) : undefined,
      tags,
      // A master boots and fetches its material at once; the secret must hold a version by then.
      dependsOn: [secrets.secretVersions.controlPlane, assets],
    }, child);

    const etcd = external
      ? new EtcdCluster(`${name}-etcd`, {
        clusterName: c.clusterName,
        region: c.region,
        kubernetesVersion: c.kubernetesVersion,
        members,
        instanceType: c.etcd.instanceType,
        rootVolumeGiB: c.etcd.rootVolumeGiB,
        amiId: amiFor(c.etcd.instanceType),
        privateSubnetIds: network.privateSubnetIds,
        securityGroupIds: [sgs.etcdSecurityGroupId!],
        instanceProfileName: roles.instanceProfileNames.etcd!,
        secretArn: secrets.secretArns.etcd!,
        bootstrapBucket: assets.bucketName,
        timings: etcdTimings,
        backup: etcdBackup,
        certRenewBeforeDays: c.certificates.renewBeforeDays,
        tags,
        // A member fetches its certificates at boot; the secret must hold a version by then.
        dependsOn: [secrets.secretVersions.etcd!, assets],
      }, child)
      : undefined;

    // Masters and etcd members are single fixed-address machines that no auto scaling group replaces.
    if (c.autoRecovery)
      new RecoveryAlarms(`${name}-recovery`, {
        clusterName: c.clusterName,
        region: c.region,
        instances: [
          ...controlPlane.placements.map((p, i) => ({
            name: `${name}-control-plane-master-${p.index}`,
            displayName: `${c.clusterName}-master-${p.index}`,
            instanceId: controlPlane.instanceIds[i],
          })),
          ...(etcd
            ? etcd.members.map((m, i) => ({ name: `${name}-etcd-member-${m.index}`, displayName: `${c.clusterName}-etcd-${m.index}`, instanceId: etcd.instanceIds[i] }))
            : []),
        ],
        tags,
      }, child);

    // Worker pools: everything a pool needs is public, so a program can build more pools from it.
    this.workerJoin = {
      clusterName: c.clusterName,
      kubernetesVersion: c.kubernetesVersion,
      region: c.region,
      apiEndpoint: endpoint,
      caCertHash: pki.caCertHash,
      secretArn: secrets.secretArns.worker,
      bootstrapBucket: assets.bucketName,
      instanceProfileName: roles.instanceProfileNames.worker,
      securityGroupId: sgs.workerSecurityGroupId,
      privateSubnetIds: network.privateSubnetIds,
      amiIds: { amd64: amiForArch("amd64"), arm64: amiForArch("arm64") },
      externalCloudProvider: c.addons.awsCloudControllerManager,
      readinessHook: true,
      nodeTerminationHandler: c.addons.nodeTerminationHandler,
    };
    this.workerPools = c.workerPools.map(
      (pool) =>
        new WorkerPool(`${name}-pool-${pool.name}`, {
          join: this.workerJoin,
          pool,
          tags,
          // A worker fetches its join token at boot; the secret must hold a version by then.
          dependsOn: [secrets.secretVersions.worker, assets],
        }, child),
    );
    this.workerAutoScalingGroups = Object.fromEntries(this.workerPools.map((p) => [p.settings.name, p.autoScalingGroupName]));

    this.vpcId = network.vpcId;
    this.apiLoadBalancerDnsName = lb.dnsName;
    this.apiServerUrl = pulumi.interpolate`https://${endpoint}`;
    this.caCertHash = pki.caCertHash;
    this.certificateExpiry = pki.certificateExpiry;
    this.masterIps = controlPlane.masterIps;
    this.etcdTopology = c.etcd.topology;
    this.etcdEndpoints = etcd ? etcd.endpoints : controlPlane.masterIps.map((ip) => `https://${ip}:2379`);
    this.etcdIps = etcd ? etcd.memberIps : [];
    this.masterInstanceIds = controlPlane.instanceIds;
    this.etcdInstanceIds = etcd ? etcd.instanceIds : [];
    this.etcdBackupBucket = backups?.bucketName;
    this.kubeconfig = pulumi.secret(
      pulumi
        .all([this.apiServerUrl, pki.caCertPem, pki.adminCertPem, pki.adminKeyPem])
        .apply(([server, ca, cert, key]) => kubeconfig({ clusterName: c.clusterName, server, caCertPem: ca, clientCertPem: cert, clientKeyPem: key })),
    );
    // After the masters and the pools' groups exist; Helm needs no node Ready, and the CNI must not
    // wait for workers to join.
    if (installer === "pulumi" && (releases.length > 0 || storageClass))
      new Addons(`${name}-addons`, {
        kubeconfig: this.kubeconfig,
        apiEndpoint: endpoint,
        caCertPem: pki.caCertPem,
        releases,
        storageClass,
        readinessTimeoutMinutes: c.addons.readinessTimeoutMinutes,
      }, { parent: this, dependsOn: [controlPlane, ...this.workerPools] });
    this.addons = addonSummaries(releases, installer);
    this.registerOutputs({
      apiServerUrl: this.apiServerUrl,
      kubeconfig: this.kubeconfig,
      masterIps: this.masterIps,
      etcdEndpoints: this.etcdEndpoints,
      etcdIps: this.etcdIps,
      masterInstanceIds: this.masterInstanceIds,
      etcdInstanceIds: this.etcdInstanceIds,
      etcdTopology: this.etcdTopology,
      etcdBackupBucket: this.etcdBackupBucket,
      workerJoin: this.workerJoin,
      workerAutoScalingGroups: this.workerAutoScalingGroups,
      addons: this.addons,
    });
  }
}
