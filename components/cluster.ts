/**
 * The whole cluster: wires network, API load balancer, security groups, PKI, bootstrap secrets,
 * node roles, the control plane and, with external etcd, the etcd members. Takes the validated
 * config; reads nothing else.
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { ClusterConfig, DRAIN_TIMEOUT_SECONDS, addonInstaller, architectureOf } from "../config";
import { AddonRelease, AddonSummary, Addons, addonNodeFiles, addonReleases, addonSummaries, defaultStorageClass } from "./addons";
import { BOOTSTRAP_PREFIX, bundledScriptContents, sha256Hex } from "../cloud-init/render";
import { MachineChain, day2ScriptContents } from "../day2/chain";
import { ClusterState, ImagePin, Rollout } from "../day2/resources";
import { snapshotOf } from "../day2/rules";
import { ApiLoadBalancer } from "./apiLoadBalancer";
import { BootstrapAssets } from "./bootstrapAssets";
import { BootstrapHealth } from "./bootstrapHealth";
import { InitMarker } from "./initMarker";
import { ControlPlane, placeNodes } from "./controlPlane";
import { SecretsEncryption } from "./encryption";
import { EtcdCertificates, EtcdCluster, etcdImage, etcdMembers, externalEtcdConfig } from "./etcd";
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
  /** `https://<nlb-dns>:6443` of the load balancer people use: the public one, or the internal one with scheme internal. */
  public readonly apiServerUrl: pulumi.Output<string>;
  /** DNS name of the load balancer people use. */
  public readonly apiLoadBalancerDnsName: pulumi.Output<string>;
  /** `https://<internal nlb-dns>:6443`: kubeadm's controlPlaneEndpoint, what every node dials. */
  public readonly internalApiServerUrl: pulumi.Output<string>;
  /** Admin kubeconfig (secret): cluster CA, the people's endpoint, admin client certificate. */
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
  /** The config the cluster was last brought to; its check refuses what a running cluster cannot take (day2/rules.ts). */
  public readonly state: ClusterState;
  /** What the last `pulumi up` that changed the cluster's settings did, one line a step. */
  public readonly rolloutPlan: pulumi.Output<string[]>;

  constructor(name: string, args: ClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("kubeadm-ha:index:Cluster", name, {}, opts);
    const c = args.config;
    const tags = c.tags;
    const own = { parent: this };
    // AWS's 50-tag limit on a pool's group depends on the stack's tags too: check it before any
    // machine exists, not when the pool's turn comes.
    const nth = { nodeTerminationHandler: c.addons.nodeTerminationHandler };
    for (const pool of c.workerPools) groupTags(c.clusterName, pool, tags, drains(nth, pool));
    // The handler's one drain timeout serves every pool: the longest of the drained pools' hooks,
    // each of which still bounds its own pool.
    const drainTimeoutSeconds = Math.max(DRAIN_TIMEOUT_SECONDS.default, ...c.workerPools.filter((p) => drains(nth, p)).map((p) => p.drain.timeoutSeconds));
    const installer = addonInstaller(c);

    // First: every other resource of the cluster depends on it (a transformation its children and
    // theirs inherit), so the engine checks it before it sees anything else. A change a running
    // cluster cannot take fails its check, and `pulumi preview` or `pulumi up` stops before a
    // single resource is touched.
    this.state = new ClusterState(`${name}-state`, { snapshot: snapshotOf(c, installer, etcdImage(c.kubernetesVersion)) }, own);
    this.rolloutPlan = this.state.plan;
    const afterState: pulumi.ResourceTransformation = (a) => ({ props: a.props, opts: pulumi.mergeOptions(a.opts, { dependsOn: [this.state] }) });
    const child: pulumi.ComponentResourceOptions = { parent: this, transformations: [afterState] };

    const network = new Network(`${name}-network`, {
      clusterName: c.clusterName,
      vpcCidr: c.network.vpcCidr,
      availabilityZones: c.network.availabilityZones,
      natGateways: c.network.natGateways,
      tags,
    }, child);

    // Nodes reach the API through the internal load balancer whatever the scheme; people through the public one, if any.
    const lb = new ApiLoadBalancer(`${name}-api`, {
      clusterName: c.clusterName,
      vpcId: network.vpcId,
      vpcCidr: c.network.vpcCidr,
      privateSubnetIds: network.privateSubnetIds,
      publicSubnetIds: network.publicSubnetIds,
      scheme: c.apiLoadBalancer.scheme,
      allowedCidrs: c.apiLoadBalancer.allowedCidrs,
      tags,
    }, child);

    const sgs = new NodeSecurityGroups(`${name}-sg`, {
      clusterName: c.clusterName,
      vpcId: network.vpcId,
      vpcCidr: c.network.vpcCidr,
      apiLbSecurityGroupId: lb.securityGroupId,
      scheme: c.apiLoadBalancer.scheme,
      publicApiLbSecurityGroupId: lb.publicSecurityGroupId,
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
    // A cluster rebuilt from another's snapshots adopts that cluster's key (config restoreEncryptionKey).
    const encryption = c.encryptionAtRest
      ? new SecretsEncryption(`${name}-encryption`, c.restoreEncryptionKey ? { suppliedKeys: { key1: pulumi.secret(c.restoreEncryptionKey) } } : {}, child)
      : undefined;
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

    // Each role's secret may be read only by its own machines, calling through the cluster's NAT.
    const masterPlacements = placeNodes(c.controlPlane.count, network.zones, network.plan.map((s) => s.privateCidr), c.region);
    const roles = new NodeRoles(`${name}-iam`, {
      clusterName: c.clusterName,
      region: c.region,
      secretSource: {
        vpcId: network.vpcId,
        natPublicIps: network.natPublicIps,
        privateCidrs: {
          controlPlane: masterPlacements.map((p) => `${p.ip}/32`),
          worker: network.plan.map((s) => s.privateCidr),
          ...(external ? { etcd: members.map((m) => `${m.ip}/32`) } : {}),
        },
      },
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
      // The day-2 steps fetch lib.sh beside day2.sh; it is otherwise only in user data.
      contents: [...bundledScriptContents(), ...day2ScriptContents()],
      readerRoleArns: [roles.roleArns.controlPlane, roles.roleArns.worker, ...(roles.roleArns.etcd ? [roles.roleArns.etcd] : [])],
      tags,
    }, child);

    // Snapshots from the machines holding etcd members: the masters when stacked, the etcd machines when external.
    const backups = c.etcd.backup.enabled
      ? new EtcdBackups(`${name}-etcd-backups`, {
        clusterName: c.clusterName,
        retentionDays: c.etcd.backup.retentionDays,
        encryptionConfigYaml: encryption?.configYaml,
        roleArn: external ? roles.roleArns.etcd! : roles.roleArns.controlPlane,
        tags,
      }, child)
      : undefined;
    const etcdBackup = backups
      ? pulumi.all([backups.bucketName, backups.kmsKeyArn]).apply(([bucket, kmsKeyArn]) => ({
        bucket, prefix: backups.prefix, kmsKeyArn, intervalMinutes: c.etcd.backup.intervalMinutes,
      }))
      : undefined;

    // The image is resolved once and pinned (day2/resources.ts ImagePin): a new Canonical release
    // changes nothing until `pulumi up --replace` of the pin, or amiId, adopts it.
    const pins = c.amiId
      ? undefined
      : Object.fromEntries(
        (["amd64", "arm64"] as const).map((arch) => [
          arch,
          new ImagePin(`${name}-image-${arch}`, {
            arch,
            candidate: aws.ec2
              .getAmiOutput({
                owners: [CANONICAL_OWNER],
                mostRecent: true,
                filters: [
                  { name: "name", values: [ubuntuImageFilter(arch)] },
                  { name: "virtualization-type", values: ["hvm"] },
                ],
              }, child)
              .apply((a) => a.id),
          }, child),
        ]),
      ) as Record<"amd64" | "arm64", ImagePin>;
    const amiForArch = (arch: "arm64" | "amd64"): pulumi.Input<string> => c.amiId ?? pins![arch].imageId;
    const amiFor = (instanceType: string): pulumi.Input<string> => amiForArch(architectureOf(instanceType));

    // Master 0's proof that the cluster was never initialised, and the record that it now is.
    const initMarker = new InitMarker(`${name}-init-marker`, { clusterName: c.clusterName, controlPlaneRoleArn: roles.roleArns.controlPlane, tags }, child);

    const endpoint = lb.endpoint;
    // The add-ons, decided before any machine: with the `nodes` installer master 0 carries them.
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
    // One machine at a time: external etcd members, then the masters, each after the gate of the
    // one before it; the first after the ClusterState (day2/chain.ts).
    const chain = new MachineChain({ region: c.region, bootstrapBucket: assets.bucketName, bootstrapPrefix: BOOTSTRAP_PREFIX, start: [this.state], gateDependsOn: [assets] });

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
        // A member fetches its certificates at boot; the secret must hold a version by then, and
        // the way out must exist. Members never call the Kubernetes API.
        dependsOn: [secrets.secretVersions.etcd!, assets, ...network.egress],
        chain,
      }, child)
      : undefined;

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
      publicTargetGroupArn: lb.publicTargetGroupArn,
      apiEndpoint: endpoint,
      publicApiHost: lb.publicDnsName,
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
      initMarker: initMarker.parameterName,
      tags,
      // A master boots and fetches its material at once; the secret must hold a version by then.
      // Its first boot needs the way out (packages, images, Secrets Manager) and the nodes' API
      // endpoint (master 0's kubeadm init, the others' joins).
      dependsOn: [secrets.secretVersions.controlPlane, assets, initMarker, ...network.egress, lb.nodeListener],
      chain,
    }, child);

    // After the masters: scale-in (each leaving machine's member leaves etcd before Pulumi deletes
    // it), external etcd's pods, then the add-ons of master 0 (installer nodes). Each one machine at
    // a time with its gates (day2/rollout.ts).
    const scripts = chain.scripts;
    const scaleIn = new Rollout(`${name}-scale-in`, {
      kind: "scale-in",
      region: c.region,
      scripts,
      machines: [...controlPlane.machines, ...(etcd?.machines ?? [])],
    }, { ...child, dependsOn: chain.end() });
    const etcdRollout = etcd
      ? new Rollout(`${name}-etcd-rollout`, { kind: "etcd-manifests", region: c.region, scripts, members: etcd.manifests }, { ...child, dependsOn: [scaleIn] })
      : undefined;
    const addonsRollout = installer === "nodes"
      ? new Rollout(`${name}-addons-rollout`, {
        kind: "addons",
        region: c.region,
        scripts,
        master: controlPlane.machines[0],
        addonsSha: pulumi.output(releases).apply((rs) => sha256Hex(JSON.stringify(addonNodeFiles(rs as AddonRelease[], storageClass)))),
      }, { ...child, dependsOn: [etcdRollout ?? scaleIn] })
      : undefined;
    // Workers and the Helm add-ons come after the control plane: no kubelet newer than an API server.
    const controlPlaneDone: pulumi.Resource[] = [addonsRollout ?? etcdRollout ?? scaleIn];


    // Masters and etcd members are single fixed-address machines that no auto scaling group replaces.
    const fixedMachines = [
      ...controlPlane.placements.map((p, i) => ({
        name: `${name}-control-plane-master-${p.index}`,
        displayName: `${c.clusterName}-master-${p.index}`,
        instanceId: controlPlane.instanceIds[i],
      })),
      ...(etcd
        ? etcd.members.map((m, i) => ({ name: `${name}-etcd-member-${m.index}`, displayName: `${c.clusterName}-etcd-${m.index}`, instanceId: etcd.instanceIds[i] }))
        : []),
    ];
    if (c.autoRecovery)
      new RecoveryAlarms(`${name}-recovery`, { clusterName: c.clusterName, region: c.region, instances: fixedMachines, tags }, child);
    // A machine whose first boot gives up reports it: workers to their group, the others to an alarm.
    new BootstrapHealth(`${name}-bootstrap-health`, {
      clusterName: c.clusterName,
      instances: fixedMachines,
      workerRoleArn: roles.roleArns.worker,
      fixedRoleArns: [roles.roleArns.controlPlane, ...(roles.roleArns.etcd ? [roles.roleArns.etcd] : [])],
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
    this.apiServerUrl = pulumi.interpolate`https://${lb.clientEndpoint}`;
    this.internalApiServerUrl = pulumi.interpolate`https://${endpoint}`;
    this.certificateExpiry = pki.certificateExpiry;
    this.masterInstanceIds = controlPlane.instanceIds;
    this.etcdInstanceIds = etcd ? etcd.instanceIds : [];
    this.kubeconfig = pulumi.secret(
      pulumi
        .all([this.apiServerUrl, pki.caCertPem, pki.adminCertPem, pki.adminKeyPem])
        .apply(([server, ca, cert, key]) => kubeconfig({ clusterName: c.clusterName, server, caCertPem: ca, clientCertPem: cert, clientKeyPem: key })),
    );
    // After the control plane is done, before the workers: an upgrade moves the add-ons to the new
    // minor's pins only once every API server runs it, and the workers' kubelets after them. Every
    // add-on fits on the masters, so none waits for a worker.
    const helmAddons = installer === "pulumi" && (releases.length > 0 || storageClass)
      ? new Addons(`${name}-addons`, {
        kubeconfig: this.kubeconfig,
        apiEndpoint: lb.clientEndpoint,
        caCertPem: pki.caCertPem,
        releases,
        storageClass,
        readinessTimeoutMinutes: c.addons.readinessTimeoutMinutes,
      }, { ...child, dependsOn: controlPlaneDone })
      : undefined;
    this.workerPools = c.workerPools.map(
      (pool) =>
        new WorkerPool(`${name}-pool-${pool.name}`, {
          join: this.workerJoin,
          pool,
          tags,
          // A worker fetches its join token at boot; the secret must hold a version by then, and
          // it joins through the internal endpoint over routes that must exist. A new launch
          // template (a new kubelet) only once the control plane and the add-ons are done.
          dependsOn: [secrets.secretVersions.worker, assets, ...network.egress, lb.nodeListener, ...controlPlaneDone, ...(helmAddons ? [helmAddons] : [])],
        }, child),
    );
    this.workerAutoScalingGroups = Object.fromEntries(this.workerPools.map((p) => [p.settings.name, p.autoScalingGroupName]));

    this.vpcId = network.vpcId;
    this.apiLoadBalancerDnsName = lb.clientDnsName;
    this.caCertHash = pki.caCertHash;
    this.masterIps = controlPlane.masterIps;
    this.etcdTopology = c.etcd.topology;
    this.etcdEndpoints = etcd ? etcd.endpoints : controlPlane.masterIps.map((ip) => `https://${ip}:2379`);
    this.etcdIps = etcd ? etcd.memberIps : [];
    this.etcdBackupBucket = backups?.bucketName;
    this.addons = addonSummaries(releases, installer);
    this.registerOutputs({
      apiServerUrl: this.apiServerUrl,
      internalApiServerUrl: this.internalApiServerUrl,
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
      rolloutPlan: this.rolloutPlan,
    });
  }
}
