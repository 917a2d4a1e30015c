/**
 * The Network Load Balancer in front of every kube-apiserver: kubeadm's `controlPlaneEndpoint`.
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

/** One CIDR source of TCP 6443 on the load balancer's security group. */
export interface ApiIngressCidr {
  /** Stable part of the rule's resource name, derived from the CIDR so reordering changes nothing. */
  key: string;
  cidr: string;
  description: string;
}

/**
 * The fixed CIDR sources allowed to reach the API through the NLB: every allowed client range and,
 * for an internal NLB, the VPC (nodes connect from their private addresses). Repeated CIDRs are
 * dropped because EC2 rejects a rule that duplicates an existing one.
 */
export function apiLbIngressCidrs(scheme: "internet-facing" | "internal", allowedCidrs: string[], vpcCidr: string): ApiIngressCidr[] {
  const out: ApiIngressCidr[] = [];
  const add = (cidr: string, description: string) => {
    if (!out.some((r) => r.cidr === cidr)) out.push({ key: cidr.replace("/", "-"), cidr, description });
  };
  for (const c of allowedCidrs) add(c, "Kubernetes API from an allowed client range");
  if (scheme === "internal") add(vpcCidr, "Kubernetes API from nodes in the VPC");
  return out;
}

export interface ApiLoadBalancerArgs {
  /** Cluster name; the NLB and target group are named `<clusterName>-api`. Required. */
  clusterName: string;
  /** VPC of the target group and security group. Required. */
  vpcId: pulumi.Input<string>;
  /** VPC range, the only destination the NLB forwards to. Required. */
  vpcCidr: string;
  /** Subnets of the NLB, one a zone: public for internet-facing, private for internal. Required. */
  subnetIds: pulumi.Input<string>[];
  /** NLB scheme. Required. */
  scheme: "internet-facing" | "internal";
  /** Client CIDRs allowed to reach TCP 6443. Required, at least one. */
  allowedCidrs: string[];
  /** NAT gateway addresses; allowed as /32 when internet-facing, ignored when internal. Required (may be empty). */
  natPublicIps: pulumi.Input<string>[];
  /** Extra tags on every resource. Required (may be empty). */
  tags: Record<string, string>;
}

function validate(args: ApiLoadBalancerArgs): void {
  const problems: string[] = [];
  if (args.scheme !== "internet-facing" && args.scheme !== "internal") problems.push(`scheme: ${JSON.stringify(args.scheme)} — must be internet-facing or internal`);
  const lbName = `${args.clusterName}-api`;
  if (lbName.length > AWS_LB_NAME_MAX) problems.push(`clusterName: ${JSON.stringify(args.clusterName)} — makes the NLB name ${lbName} longer than AWS's ${AWS_LB_NAME_MAX} characters`);
  if (!isCanonicalCidr(args.vpcCidr)) problems.push(`vpcCidr: ${JSON.stringify(args.vpcCidr)} — must be an IPv4 CIDR with no host bits set`);
  if (args.allowedCidrs.length === 0) problems.push("allowedCidrs: [] — must list at least one CIDR, or nobody can reach the API");
  args.allowedCidrs.forEach((c, i) => {
    if (!isCanonicalCidr(c)) problems.push(`allowedCidrs[${i}]: ${JSON.stringify(c)} — must be an IPv4 CIDR with no host bits set`);
  });
  if (args.subnetIds.length === 0) problems.push("subnetIds: [] — must list at least one subnet");
  if (problems.length > 0) throw new Error(`ApiLoadBalancer: ${problems.join("; ")}`);
}

export class ApiLoadBalancer extends pulumi.ComponentResource {
  /** The NLB's DNS name. */
  public readonly dnsName: pulumi.Output<string>;
  /** `<dnsName>:6443`, kubeadm's `controlPlaneEndpoint`. */
  public readonly endpoint: pulumi.Output<string>;
  /** Target group control plane instances register with. */
  public readonly targetGroupArn: pulumi.Output<string>;
  /** The NLB's ARN. */
  public readonly loadBalancerArn: pulumi.Output<string>;
  /** The NLB's security group; node security groups admit 6443 from it. */
  public readonly securityGroupId: pulumi.Output<string>;

  constructor(name: string, args: ApiLoadBalancerArgs, opts?: pulumi.ComponentResourceOptions) {
    validate(args);
    super("kubeadm-ha:index:ApiLoadBalancer", name, {}, opts);
    const lbName = `${args.clusterName}-api`;
    const tags = clusterTags(args.clusterName, args.tags, lbName);

    // Security groups can only be attached to an NLB when it is created, so the NLB gets one from day one.
    const sg = new aws.ec2.SecurityGroup(
      `${name}-sg`,
      { vpcId: args.vpcId, description: `Kubernetes API load balancer of ${args.clusterName}`, tags },
      { parent: this },
    );
    const ingress = (key: string, cidr: pulumi.Input<string>, description: string) =>
      new aws.vpc.SecurityGroupIngressRule(
        `${name}-sg-ingress-${key}`,
        { securityGroupId: sg.id, ipProtocol: "tcp", fromPort: API_SERVER_PORT, toPort: API_SERVER_PORT, cidrIpv4: cidr, description, tags },
        { parent: this },
      );
    for (const r of apiLbIngressCidrs(args.scheme, args.allowedCidrs, args.vpcCidr)) ingress(r.key, r.cidr, r.description);
    if (args.scheme === "internet-facing")
      // Nodes in private subnets reach an internet-facing NLB through NAT, so it sees the NAT
      // gateway's address, not the node's; CAPA adds NAT addresses to its API LB rules for this.
      args.natPublicIps.forEach((ip, i) => ingress(`nat-${i}`, pulumi.interpolate`${ip}/32`, "Kubernetes API from nodes through NAT"));
    // Pulumi's SecurityGroup drops AWS's default allow-all egress; the NLB only forwards to, and health-checks, 6443 in the VPC.
    new aws.vpc.SecurityGroupEgressRule(
      `${name}-sg-egress-vpc`,
      { securityGroupId: sg.id, ipProtocol: "tcp", fromPort: API_SERVER_PORT, toPort: API_SERVER_PORT, cidrIpv4: args.vpcCidr, description: "Kubernetes API and health checks to control plane nodes", tags },
      { parent: this },
    );

    const nlb = new aws.lb.LoadBalancer(
      `${name}-nlb`,
      {
        name: lbName,
        loadBalancerType: "network",
        internal: args.scheme === "internal",
        subnets: args.subnetIds,
        securityGroups: [sg.id],
        // One master a zone: without cross-zone, a client resolved to the NLB node of a zone whose
        // master is down waits for DNS to drop that node instead of being forwarded to another zone.
        enableCrossZoneLoadBalancing: true,
        tags,
      },
      { parent: this },
    );
    const tg = new aws.lb.TargetGroup(
      `${name}-tg`,
      {
        name: lbName,
        port: API_SERVER_PORT,
        protocol: "TCP",
        targetType: "instance",
        vpcId: args.vpcId,
        // Masters reach the API through the NLB (the controlPlaneEndpoint). With client IP
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
    new aws.lb.Listener(
      `${name}-listener`,
      { loadBalancerArn: nlb.arn, port: API_SERVER_PORT, protocol: "TCP", defaultActions: [{ type: "forward", targetGroupArn: tg.arn }], tags },
      { parent: this },
    );

    this.dnsName = nlb.dnsName;
    this.endpoint = pulumi.interpolate`${nlb.dnsName}:${API_SERVER_PORT}`;
    this.targetGroupArn = tg.arn;
    this.loadBalancerArn = nlb.arn;
    this.securityGroupId = sg.id;
    this.registerOutputs({
      dnsName: this.dnsName,
      endpoint: this.endpoint,
      targetGroupArn: this.targetGroupArn,
      loadBalancerArn: this.loadBalancerArn,
      securityGroupId: this.securityGroupId,
    });
  }
}
