/**
 * The Network Load Balancers in front of every kube-apiserver.
 *
 * - An internal NLB in the private subnets, always: kubeadm's `controlPlaneEndpoint`, so every
 *   kubelet, kube-proxy and joining node reaches the API inside the VPC. Losing a zone or a NAT
 *   gateway then cuts no surviving node off the API (kOps gives nodes `api.internal.<cluster>` for
 *   the same reason). With scheme internal, people use it too.
 * - With scheme internet-facing, a second NLB in the public subnets for people only (kubectl, the
 *   machine running `pulumi up`), admitting `allowedCidrs`; its DNS name is in the API server's
 *   certificate. An NLB has one scheme, so two schemes take two NLBs, and a target group serves
 *   one load balancer, so each has its own.
 *
 * Changing the scheme adds or removes the public NLB and never touches the internal one, so the
 * nodes' endpoint stays. Names are `<cluster>-api` (internal) and `<cluster>-api-pub`: unique per
 * cluster and region, AWS's namespace for load balancers and target groups.
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { isCanonicalCidr } from "../config";
import { clusterTags } from "./tags";

/** kube-apiserver's secure port, used end to end: listener, target group and health check. */
export const API_SERVER_PORT = 6443;

/** AWS name limit for load balancers and target groups. */
const AWS_LB_NAME_MAX = 32;

/**
 * Target group health check. `/readyz` fails as soon as an API server starts shutting down
 * (kubernetes/kubernetes#88911), unlike a TCP check that passes until the port closes; 5 s x 2
 * failures takes a dead API server out of rotation in about 10 s (CAPA uses 5 s x 6, kOps 10 s x 2).
 * NLB probes carry no credentials: they rely on kube-apiserver's default anonymous read of
 * `/readyz` (the system:public-info-viewer role), so disabling anonymous auth fails every target.
 */
export const API_HEALTH_CHECK = {
  protocol: "HTTPS",
  path: "/readyz",
  port: String(API_SERVER_PORT),
  matcher: "200-399",
  interval: 5,
  timeout: 3,
  healthyThreshold: 2,
  unhealthyThreshold: 2,
} as const;

/** Seconds from a target's first failed check until the NLB stops routing new connections to it. */
export function healthCheckBudgetSeconds(hc: { interval: number; unhealthyThreshold: number }): number {
  return hc.interval * hc.unhealthyThreshold;
}

/** Every way `hc` breaks AWS's NLB health check limits; empty when CreateTargetGroup would accept it. */
export function nlbHealthCheckProblems(hc: { interval: number; timeout: number; healthyThreshold: number; unhealthyThreshold: number }): string[] {
  const out: string[] = [];
  const within = (key: string, v: number, lo: number, hi: number) => {
    if (!Number.isInteger(v) || v < lo || v > hi) out.push(`${key}: ${v} — must be a whole number from ${lo} to ${hi}`);
  };
  within("interval", hc.interval, 5, 300);
  within("timeout", hc.timeout, 2, 120);
  within("healthyThreshold", hc.healthyThreshold, 2, 10);
  within("unhealthyThreshold", hc.unhealthyThreshold, 2, 10);
  if (hc.timeout >= hc.interval) out.push(`timeout: ${hc.timeout} — must be shorter than interval (${hc.interval})`);
  return out;
}

/** One CIDR source of TCP 6443 on a load balancer's security group. */
export interface ApiIngressCidr {
  /** Stable part of the rule's resource name, derived from the CIDR so reordering changes nothing. */
  key: string;
  cidr: string;
  description: string;
}

/**
 * The client ranges a load balancer admits: `allowedCidrs`, each once (EC2 rejects a rule that
 * duplicates another). Nodes are admitted to the internal load balancer by security group
 * (components/securityGroups.ts, from the flow matrix), never by range.
 */
export function apiLbIngressCidrs(allowedCidrs: string[]): ApiIngressCidr[] {
  const out: ApiIngressCidr[] = [];
  for (const cidr of allowedCidrs)
    if (!out.some((r) => r.cidr === cidr)) out.push({ key: cidr.replace("/", "-"), cidr, description: "Kubernetes API from an allowed client range" });
  return out;
}

/** The load balancers' AWS names: `<cluster>-api` for the nodes' internal one, `<cluster>-api-pub` for the people's public one. */
export function apiLoadBalancerNames(clusterName: string): { internal: string; public: string } {
  return { internal: `${clusterName}-api`, public: `${clusterName}-api-pub` };
}

export interface ApiLoadBalancerArgs {
  /** Cluster name; names the load balancers and target groups (`apiLoadBalancerNames`). Required. */
  clusterName: string;
  /** VPC of the target groups and security groups. Required. */
  vpcId: pulumi.Input<string>;
  /** VPC range, the only destination the NLBs forward to. Required. */
  vpcCidr: string;
  /** Private subnets, one a zone: the internal NLB's. Required. */
  privateSubnetIds: pulumi.Input<string>[];
  /** Public subnets, one a zone: the people's NLB's with scheme internet-facing. Required then; unused with internal. */
  publicSubnetIds?: pulumi.Input<string>[];
  /** Who reaches the API from outside: internet-facing adds a public NLB for people; internal lets them use the internal one. Required. */
  scheme: "internet-facing" | "internal";
  /** Client CIDRs allowed to reach TCP 6443 on the people's load balancer (the internal one with scheme internal). Required, at least one. */
  allowedCidrs: string[];
  /** Extra tags on every resource. Required (may be empty). */
  tags: Record<string, string>;
}

function validate(args: ApiLoadBalancerArgs): void {
  const problems: string[] = [];
  if (args.scheme !== "internet-facing" && args.scheme !== "internal") problems.push(`scheme: ${JSON.stringify(args.scheme)} — must be internet-facing or internal`);
  const longest = apiLoadBalancerNames(args.clusterName).public;
  if (longest.length > AWS_LB_NAME_MAX) problems.push(`clusterName: ${JSON.stringify(args.clusterName)} — makes the NLB name ${longest} longer than AWS's ${AWS_LB_NAME_MAX} characters`);
  if (!isCanonicalCidr(args.vpcCidr)) problems.push(`vpcCidr: ${JSON.stringify(args.vpcCidr)} — must be an IPv4 CIDR with no host bits set`);
  if (args.allowedCidrs.length === 0) problems.push("allowedCidrs: [] — must list at least one CIDR, or nobody can reach the API");
  args.allowedCidrs.forEach((c, i) => {
    if (!isCanonicalCidr(c)) problems.push(`allowedCidrs[${i}]: ${JSON.stringify(c)} — must be an IPv4 CIDR with no host bits set`);
  });
  if (args.privateSubnetIds.length === 0) problems.push("privateSubnetIds: [] — must list at least one subnet");
  if (args.scheme === "internet-facing" && (args.publicSubnetIds ?? []).length === 0)
    problems.push("publicSubnetIds: [] — an internet-facing load balancer needs at least one public subnet");
  if (problems.length > 0) throw new Error(`ApiLoadBalancer: ${problems.join("; ")}`);
}

/** One NLB: its security group, target group and listener. */
interface Nlb {
  dnsName: pulumi.Output<string>;
  arn: pulumi.Output<string>;
  targetGroupArn: pulumi.Output<string>;
  securityGroupId: pulumi.Output<string>;
  listener: aws.lb.Listener;
}

export class ApiLoadBalancer extends pulumi.ComponentResource {
  /** The internal NLB's DNS name, which nodes reach the API through. */
  public readonly dnsName: pulumi.Output<string>;
  /** `<internal dnsName>:6443`, kubeadm's `controlPlaneEndpoint`: every node's API endpoint. */
  public readonly endpoint: pulumi.Output<string>;
  /** Target group of the internal NLB; every master registers with it. */
  public readonly targetGroupArn: pulumi.Output<string>;
  /** The internal NLB's ARN. */
  public readonly loadBalancerArn: pulumi.Output<string>;
  /** The internal NLB's security group: admitted to 6443 on the masters; admits the nodes (components/securityGroups.ts). */
  public readonly securityGroupId: pulumi.Output<string>;
  /** The public NLB's DNS name; undefined with scheme internal. */
  public readonly publicDnsName?: pulumi.Output<string>;
  /** Target group of the public NLB; undefined with scheme internal. */
  public readonly publicTargetGroupArn?: pulumi.Output<string>;
  /** The public NLB's security group; undefined with scheme internal. */
  public readonly publicSecurityGroupId?: pulumi.Output<string>;
  /** The DNS name people use: the public NLB's, or the internal one's with scheme internal. */
  public readonly clientDnsName: pulumi.Output<string>;
  /** `<clientDnsName>:6443`: the kubeconfig output's server and what `pulumi up` polls. */
  public readonly clientEndpoint: pulumi.Output<string>;
  /** Every listener, the internal one first. */
  public readonly listeners: aws.lb.Listener[];
  /** The internal NLB's listener: a node's first boot calls the API through it, so masters and workers depend on it. */
  public readonly nodeListener: aws.lb.Listener;

  constructor(name: string, args: ApiLoadBalancerArgs, opts?: pulumi.ComponentResourceOptions) {
    validate(args);
    super("kubeadm-ha:index:ApiLoadBalancer", name, {}, opts);
    const names = apiLoadBalancerNames(args.clusterName);
    const internet = args.scheme === "internet-facing";

    // The internal NLB keeps the resource names of the single NLB this component used to make, so a
    // cluster created with scheme internal keeps its load balancer and endpoint.
    const internal = this.nlb(name, "", names.internal, {
      args,
      internal: true,
      subnetIds: args.privateSubnetIds,
      // People use the internal NLB when there is no public one.
      allowedCidrs: internet ? [] : args.allowedCidrs,
      description: `Kubernetes API load balancer of ${args.clusterName}: nodes${internet ? "" : " and allowed clients"}`,
    });
    const pub = internet
      ? this.nlb(name, "-public", names.public, {
        args,
        internal: false,
        subnetIds: args.publicSubnetIds!,
        allowedCidrs: args.allowedCidrs,
        description: `Kubernetes API load balancer of ${args.clusterName}: allowed clients from the internet`,
      })
      : undefined;

    this.dnsName = internal.dnsName;
    this.endpoint = pulumi.interpolate`${internal.dnsName}:${API_SERVER_PORT}`;
    this.targetGroupArn = internal.targetGroupArn;
    this.loadBalancerArn = internal.arn;
    this.securityGroupId = internal.securityGroupId;
    this.publicDnsName = pub?.dnsName;
    this.publicTargetGroupArn = pub?.targetGroupArn;
    this.publicSecurityGroupId = pub?.securityGroupId;
    this.clientDnsName = (pub ?? internal).dnsName;
    this.clientEndpoint = pulumi.interpolate`${this.clientDnsName}:${API_SERVER_PORT}`;
    this.listeners = [internal.listener, ...(pub ? [pub.listener] : [])];
    this.nodeListener = internal.listener;
    this.registerOutputs({
      dnsName: this.dnsName,
      endpoint: this.endpoint,
      targetGroupArn: this.targetGroupArn,
      loadBalancerArn: this.loadBalancerArn,
      securityGroupId: this.securityGroupId,
      publicDnsName: this.publicDnsName,
      publicTargetGroupArn: this.publicTargetGroupArn,
      publicSecurityGroupId: this.publicSecurityGroupId,
      clientEndpoint: this.clientEndpoint,
    });
  }

  /** One NLB named `awsName`, its children named `${name}${infix}-<role>`. */
  private nlb(
    name: string,
    infix: string,
    awsName: string,
    o: { args: ApiLoadBalancerArgs; internal: boolean; subnetIds: pulumi.Input<string>[]; allowedCidrs: string[]; description: string },
  ): Nlb {
    const { args } = o;
    const n = `${name}${infix}`;
    const tags = clusterTags(args.clusterName, args.tags, awsName);
    // Security groups can only be attached to an NLB when it is created, so each NLB gets one from day one.
    const sg = new aws.ec2.SecurityGroup(`${n}-sg`, { vpcId: args.vpcId, description: o.description, tags }, { parent: this });
    for (const r of apiLbIngressCidrs(o.allowedCidrs))
      new aws.vpc.SecurityGroupIngressRule(
        `${n}-sg-ingress-${r.key}`,
        { securityGroupId: sg.id, ipProtocol: "tcp", fromPort: API_SERVER_PORT, toPort: API_SERVER_PORT, cidrIpv4: r.cidr, description: r.description, tags },
        { parent: this },
      );
    // Pulumi's SecurityGroup drops AWS's default allow-all egress; the NLB only forwards to, and health-checks, 6443 in the VPC.
    new aws.vpc.SecurityGroupEgressRule(
      `${n}-sg-egress-vpc`,
      { securityGroupId: sg.id, ipProtocol: "tcp", fromPort: API_SERVER_PORT, toPort: API_SERVER_PORT, cidrIpv4: args.vpcCidr, description: "Kubernetes API and health checks to control plane nodes", tags },
      { parent: this },
    );

    const nlb = new aws.lb.LoadBalancer(
      `${n}-nlb`,
      {
        name: awsName,
        loadBalancerType: "network",
        internal: o.internal,
        subnets: o.subnetIds,
        securityGroups: [sg.id],
        // One master a zone: without cross-zone, a client resolved to the NLB node of a zone whose
        // master is down waits for DNS to drop that node instead of being forwarded to another zone.
        enableCrossZoneLoadBalancing: true,
        tags,
      },
      // A cluster created before the internal NLB had an internet-facing one here; `internal`
      // cannot change in place, and the replacement takes the same name, which AWS holds until
      // the old NLB is gone.
      { parent: this, deleteBeforeReplace: o.internal },
    );
    const tg = new aws.lb.TargetGroup(
      `${n}-tg`,
      {
        name: awsName,
        port: API_SERVER_PORT,
        protocol: "TCP",
        targetType: "instance",
        vpcId: args.vpcId,
        // Masters reach the API through the internal NLB (the controlPlaneEndpoint). With client IP
        // preservation on, a connection the NLB routes back to the master it came from is dropped
        // (https://docs.aws.amazon.com/elasticloadbalancing/latest/network/load-balancer-troubleshooting.html#loopback-timeout).
        preserveClientIp: "false",
        // Long-lived watches to a deregistered master are closed after the delay, so clients reconnect to a live one.
        connectionTermination: true,
        deregistrationDelay: 30,
        healthCheck: { ...API_HEALTH_CHECK },
        tags,
      },
      { parent: this },
    );
    const listener = new aws.lb.Listener(
      `${n}-listener`,
      { loadBalancerArn: nlb.arn, port: API_SERVER_PORT, protocol: "TCP", defaultActions: [{ type: "forward", targetGroupArn: tg.arn }], tags },
      { parent: this },
    );
    return { dnsName: nlb.dnsName, arn: nlb.arn, targetGroupArn: tg.arn, securityGroupId: sg.id, listener };
  }
}
