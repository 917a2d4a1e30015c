/**
 * The cluster's VPC: one public and one private subnet a zone, NAT egress for the private ones.
 *
 * Machines live in the private subnets; the public ones hold only the NAT gateways and, when the
 * API load balancer is internet-facing, its nodes.
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { Netmask, ip2long, long2ip } from "netmask";
import { isCanonicalCidr } from "../config";
import { clusterTags } from "./tags";

/** The two subnets of one availability zone. */
export interface SubnetPlan {
  /** Availability zone name, such as eu-west-1a. */
  zone: string;
  /** Private subnet: machines. */
  privateCidr: string;
  /** Public subnet: NAT gateways and an internet-facing API load balancer. */
  publicCidr: string;
}

/** AWS's smallest subnet. */
const MIN_SUBNET_PREFIX = 28;
/** Network, VPC router, DNS and "future use": AWS reserves the first four addresses of every subnet. */
const RESERVED_AT_START = 4;

/**
 * Splits `vpcCidr` into 2 x zones equal blocks, the smallest power-of-two split that fits them:
 * private subnets take blocks 0..n-1 in zone order, public subnets n..2n-1.
 * @throws Error when the CIDR is not canonical, the zone list is empty or repeats a zone, or the
 *   blocks would be smaller than /28.
 */
export function planSubnets(vpcCidr: string, zones: string[]): SubnetPlan[] {
  if (!isCanonicalCidr(vpcCidr)) throw new Error(`vpcCidr ${JSON.stringify(vpcCidr)} must be an IPv4 CIDR such as 10.0.0.0/16 with no host bits set`);
  if (zones.length === 0) throw new Error("zones must list at least one availability zone");
  const dup = zones.find((z, i) => zones.indexOf(z) !== i);
  if (dup !== undefined) throw new Error(`zones must be distinct: ${dup} is listed twice`);
  const vpc = new Netmask(vpcCidr);
  const count = 2 * zones.length;
  const prefix = vpc.bitmask + Math.ceil(Math.log2(count));
  if (prefix > MIN_SUBNET_PREFIX)
    throw new Error(`vpcCidr ${vpcCidr} is too small for ${count} subnets: each would be /${prefix}, and AWS subnets are at least /${MIN_SUBNET_PREFIX}`);
  const first = new Netmask(vpc.base, prefix);
  const block = (i: number) => first.next(i).toString();
  return zones.map((zone, i) => ({ zone, privateCidr: block(i), publicCidr: block(zones.length + i) }));
}

/**
 * The address `n` places after the base of `cidr` (n = 4 is the first one AWS lets you assign).
 * @throws Error when the address is one AWS reserves (the first four and the last) or lies outside the subnet.
 */
export function nthHost(cidr: string, n: number): string {
  if (!isCanonicalCidr(cidr)) throw new Error(`nthHost: ${JSON.stringify(cidr)} must be an IPv4 CIDR with no host bits set`);
  const block = new Netmask(cidr);
  const last = block.size - 2;
  if (!Number.isInteger(n) || n < RESERVED_AT_START || n > last)
    throw new Error(
      `nthHost: offset ${n} in ${cidr} is not assignable: AWS reserves the first four addresses and the last one of a subnet, ` +
        `so offsets run from ${RESERVED_AT_START} to ${last}`,
    );
  return long2ip(ip2long(block.base) + n);
}

export interface NetworkArgs {
  /** Cluster name, for tags and Name tags. Required. */
  clusterName: string;
  /** VPC address range, split by `planSubnets`. Required. */
  vpcCidr: string;
  /** Availability zones, one public and one private subnet each, in this order. Required. */
  availabilityZones: string[];
  /** `perZone`: a NAT gateway in every zone; `single`: one, in the first zone. Required. */
  natGateways: "perZone" | "single";
  /** Extra tags on every resource. Required (may be empty). */
  tags: Record<string, string>;
}

export class Network extends pulumi.ComponentResource {
  /** The VPC's id. */
  public readonly vpcId: pulumi.Output<string>;
  /** The VPC's address range, as given. */
  public readonly vpcCidr: string;
  /** Availability zones, in the order of the subnet lists. */
  public readonly zones: string[];
  /** Subnet CIDRs a zone, from `planSubnets`. */
  public readonly plan: SubnetPlan[];
  /** Public subnet ids, in zone order. */
  public readonly publicSubnetIds: pulumi.Output<string>[];
  /** Private subnet ids, in zone order. */
  public readonly privateSubnetIds: pulumi.Output<string>[];
  /** Public addresses of the NAT gateways: one a zone with perZone, one with single. */
  public readonly natPublicIps: pulumi.Output<string>[];
  /**
   * What a machine's first boot needs to leave its private subnet: the NAT gateways, the private
   * route tables' default routes and associations, and the S3 gateway endpoint. Machines depend on
   * these, so none boots before its packages, scripts and secrets are reachable.
   */
  public readonly egress: pulumi.Resource[];

  constructor(name: string, args: NetworkArgs, opts?: pulumi.ComponentResourceOptions) {
    if (args.natGateways !== "perZone" && args.natGateways !== "single")
      throw new Error(`natGateways ${JSON.stringify(args.natGateways)} must be perZone or single`);
    const plan = planSubnets(args.vpcCidr, args.availabilityZones);
    super("kubeadm-ha:index:Network", name, {}, opts);
    const cluster = args.clusterName;
    const tags = (tagName: string, extra: Record<string, string> = {}) => clusterTags(cluster, { ...args.tags, ...extra }, tagName);

    const vpc = new aws.ec2.Vpc(
      `${name}-vpc`,
      {
        cidrBlock: args.vpcCidr,
        // EC2 private DNS names (ip-10-0-0-4.<region>.compute.internal) are the node names the AWS
        // cloud provider expects, and they only resolve with both flags on.
        enableDnsHostnames: true,
        enableDnsSupport: true,
        tags: tags(`${cluster}-vpc`),
      },
      { parent: this },
    );
    const igw = new aws.ec2.InternetGateway(`${name}-igw`, { vpcId: vpc.id, tags: tags(`${cluster}-igw`) }, { parent: this });

    const publicSubnets = plan.map(
      (p, i) =>
        new aws.ec2.Subnet(
          `${name}-public-${i}`,
          {
            vpcId: vpc.id,
            availabilityZone: p.zone,
            cidrBlock: p.publicCidr,
            // Nothing of ours launches here with a public address; NAT gateways use EIPs.
            mapPublicIpOnLaunch: false,
            // The AWS load balancer controller and cloud provider pick subnets for internet-facing LBs by this tag.
            tags: tags(`${cluster}-public-${p.zone}`, { "kubernetes.io/role/elb": "1" }),
          },
          { parent: this },
        ),
    );
    const privateSubnets = plan.map(
      (p, i) =>
        new aws.ec2.Subnet(
          `${name}-private-${i}`,
          {
            vpcId: vpc.id,
            availabilityZone: p.zone,
            cidrBlock: p.privateCidr,
            mapPublicIpOnLaunch: false,
            tags: tags(`${cluster}-private-${p.zone}`, { "kubernetes.io/role/internal-elb": "1" }),
          },
          { parent: this },
        ),
    );

    const natZones = args.natGateways === "perZone" ? plan.map((_, i) => i) : [0];
    const nats = natZones.map((i) => {
      // A NAT gateway's EIP only routes once the VPC has an internet gateway attached.
      const eip = new aws.ec2.Eip(`${name}-nat-eip-${i}`, { domain: "vpc", tags: tags(`${cluster}-nat-${plan[i].zone}`) }, { parent: this, dependsOn: [igw] });
      const nat = new aws.ec2.NatGateway(
        `${name}-nat-${i}`,
        { allocationId: eip.id, subnetId: publicSubnets[i].id, tags: tags(`${cluster}-nat-${plan[i].zone}`) },
        { parent: this, dependsOn: [igw] },
      );
      return { eip, nat };
    });

    const publicRt = new aws.ec2.RouteTable(`${name}-public-rt`, { vpcId: vpc.id, tags: tags(`${cluster}-public`) }, { parent: this });
    new aws.ec2.Route(`${name}-public-default-route`, { routeTableId: publicRt.id, destinationCidrBlock: "0.0.0.0/0", gatewayId: igw.id }, { parent: this });
    publicSubnets.forEach((s, i) => new aws.ec2.RouteTableAssociation(`${name}-public-rta-${i}`, { subnetId: s.id, routeTableId: publicRt.id }, { parent: this }));

    const egress: pulumi.Resource[] = nats.map((n) => n.nat);
    const privateRts = privateSubnets.map((s, i) => {
      // A route table a zone even with one NAT gateway, so switching to perZone changes routes, not associations.
      const rt = new aws.ec2.RouteTable(`${name}-private-rt-${i}`, { vpcId: vpc.id, tags: tags(`${cluster}-private-${plan[i].zone}`) }, { parent: this });
      const nat = nats[args.natGateways === "perZone" ? i : 0].nat;
      egress.push(
        new aws.ec2.Route(`${name}-private-default-route-${i}`, { routeTableId: rt.id, destinationCidrBlock: "0.0.0.0/0", natGatewayId: nat.id }, { parent: this }),
        new aws.ec2.RouteTableAssociation(`${name}-private-rta-${i}`, { subnetId: s.id, routeTableId: rt.id }, { parent: this }),
      );
      return rt;
    });
    // Every machine fetches its scripts from S3 at boot and the etcd holders upload snapshots: a
    // gateway endpoint (no charge) keeps that traffic off the NAT gateways and working without them.
    // A zone name is its region's name and one letter.
    const region = args.availabilityZones[0].slice(0, -1);
    egress.push(
      new aws.ec2.VpcEndpoint(
        `${name}-s3-endpoint`,
        { vpcId: vpc.id, serviceName: `com.amazonaws.${region}.s3`, vpcEndpointType: "Gateway", routeTableIds: privateRts.map((rt) => rt.id), tags: tags(`${cluster}-s3`) },
        { parent: this },
      ),
    );

    this.vpcId = vpc.id;
    this.vpcCidr = args.vpcCidr;
    this.zones = [...args.availabilityZones];
    this.plan = plan;
    this.publicSubnetIds = publicSubnets.map((s) => s.id);
    this.privateSubnetIds = privateSubnets.map((s) => s.id);
    this.natPublicIps = nats.map((n) => n.eip.publicIp);
    this.egress = egress;
    this.registerOutputs({
      vpcId: this.vpcId,
      vpcCidr: this.vpcCidr,
      zones: this.zones,
      plan: this.plan,
      publicSubnetIds: this.publicSubnetIds,
      privateSubnetIds: this.privateSubnetIds,
      natPublicIps: this.natPublicIps,
    });
  }
}
