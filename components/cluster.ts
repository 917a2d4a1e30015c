/**
 * The whole cluster: wires network, API load balancer, security groups, PKI, bootstrap secrets,
 * node roles and the control plane. Takes the validated config; reads nothing else.
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { ClusterConfig } from "../config";
import { ApiLoadBalancer } from "./apiLoadBalancer";
import { ControlPlane } from "./controlPlane";
import { NodeRoles } from "./iam";
import { Network } from "./network";
import { Pki, kubeconfig } from "./pki";
import { BootstrapSecrets, controlPlaneMaterial, etcdMaterial, workerMaterial } from "./secrets";
import { NodeSecurityGroups } from "./securityGroups";

/** Canonical's AWS account, owner of the official Ubuntu images. */
export const CANONICAL_OWNER = "099720109477";

/** Graviton instance families (m7g, c8g, t4g, ...) need arm64 images. */
export function architectureOf(instanceType: string): "arm64" | "amd64" {
  return /^[a-z]+\d+[a-z]*g[a-z]*\./.test(instanceType) ? "arm64" : "amd64";
}

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
  /** etcd client URLs the API servers use. */
  public readonly etcdEndpoints: string[];
  /** `stacked` or `external`. */
  public readonly etcdTopology: string;
  public readonly vpcId: pulumi.Output<string>;
  /** sha256 hash of the cluster CA's public key, for `kubeadm join --discovery-token-ca-cert-hash`. */
  public readonly caCertHash: pulumi.Output<string>;

  constructor(name: string, args: ClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("kubeadm-ha:index:Cluster", name, {}, opts);
    const c = args.config;
    const tags = c.tags;
    const child = { parent: this };

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
      tags,
    }, child);

    const pki = new Pki(`${name}-pki`, { clusterName: c.clusterName }, child);
    const external = c.etcd.topology === "external";
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
          serviceAccountPrivateKeyPem: pki.serviceAccountPrivateKeyPem,
          serviceAccountPublicKeyPem: pki.serviceAccountPublicKeyPem,
          bootstrapToken: pki.bootstrapToken,
        }),
        worker: workerMaterial({ bootstrapToken: pki.bootstrapToken }),
        ...(external ? { etcd: etcdMaterial({ etcdCaCertPem: pki.etcdCaCertPem, etcdCaKeyPem: pki.etcdCaKeyPem }) } : {}),
      },
      tags,
    }, child);

    const roles = new NodeRoles(`${name}-iam`, {
      clusterName: c.clusterName,
      secretArns: secrets.secretArns,
      kmsKeyArn: secrets.kmsKeyArn,
      tags,
    }, child);

    const amiFor = (instanceType: string): pulumi.Input<string> =>
      c.amiId ??
      aws.ec2
        .getAmiOutput({
          owners: [CANONICAL_OWNER],
          mostRecent: true,
          filters: [
            { name: "name", values: [ubuntuImageFilter(architectureOf(instanceType))] },
            { name: "virtualization-type", values: ["hvm"] },
          ],
        }, child)
        .apply((a) => a.id);

    const endpoint = lb.endpoint;
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
      caCertHash: pki.caCertHash,
      podCidr: c.network.podCidr,
      serviceCidr: c.network.serviceCidr,
      leaderElection: c.leaderElection,
      tags,
      // A master boots and fetches its material at once; the secret must hold a version by then.
      dependsOn: [secrets.secretVersions.controlPlane],
    }, child);

    this.vpcId = network.vpcId;
    this.apiLoadBalancerDnsName = lb.dnsName;
    this.apiServerUrl = pulumi.interpolate`https://${endpoint}`;
    this.caCertHash = pki.caCertHash;
    this.masterIps = controlPlane.masterIps;
    this.etcdTopology = c.etcd.topology;
    this.etcdEndpoints = controlPlane.masterIps.map((ip) => `https://${ip}:2379`);
    this.kubeconfig = pulumi.secret(
      pulumi
        .all([this.apiServerUrl, pki.caCertPem, pki.adminCertPem, pki.adminKeyPem])
        .apply(([server, ca, cert, key]) => kubeconfig({ clusterName: c.clusterName, server, caCertPem: ca, clientCertPem: cert, clientKeyPem: key })),
    );
    this.registerOutputs({
      apiServerUrl: this.apiServerUrl,
      kubeconfig: this.kubeconfig,
      masterIps: this.masterIps,
      etcdEndpoints: this.etcdEndpoints,
      etcdTopology: this.etcdTopology,
    });
  }
}
