import {
  API_HEALTH_CHECK,
  ApiLoadBalancer,
  ApiLoadBalancerArgs,
  apiLbIngressCidrs,
  healthCheckBudgetSeconds,
  nlbHealthCheckProblems,
} from "../components/apiLoadBalancer";
import { Registration, ofType, settle, setupMocks, valueOf } from "./mocks";

const TAGS = { team: "platform", "kubernetes.io/cluster/prod": "owned", "kubeadm-ha/cluster": "prod", Name: "prod-api" };

describe("API health check", () => {
  it("takes a dead API server out of rotation in 10 s", () => {
    expect(healthCheckBudgetSeconds(API_HEALTH_CHECK)).toBe(10);
  });

  it.each([
    [{ interval: 5, unhealthyThreshold: 2 }, 10],
    [{ interval: 5, unhealthyThreshold: 6 }, 30],
    [{ interval: 10, unhealthyThreshold: 3 }, 30],
  ])("budget of %j is %d s", (hc, seconds) => {
    expect(healthCheckBudgetSeconds(hc)).toBe(seconds);
  });

  it("is accepted by AWS's NLB limits", () => {
    expect(nlbHealthCheckProblems(API_HEALTH_CHECK)).toEqual([]);
  });

  const ok = { interval: 5, timeout: 3, healthyThreshold: 2, unhealthyThreshold: 2 };
  it.each<[string, Partial<typeof ok>, string[]]>([
    ["interval below 5", { interval: 4, timeout: 2 }, ["interval: 4 — must be a whole number from 5 to 300"]],
    ["interval above 300", { interval: 301 }, ["interval: 301 — must be a whole number from 5 to 300"]],
    ["timeout below 2", { timeout: 1 }, ["timeout: 1 — must be a whole number from 2 to 120"]],
    ["timeout equal to interval", { timeout: 5 }, ["timeout: 5 — must be shorter than interval (5)"]],
    ["healthy threshold 1", { healthyThreshold: 1 }, ["healthyThreshold: 1 — must be a whole number from 2 to 10"]],
    ["unhealthy threshold 11", { unhealthyThreshold: 11 }, ["unhealthyThreshold: 11 — must be a whole number from 2 to 10"]],
    ["fractional interval", { interval: 5.5 }, ["interval: 5.5 — must be a whole number from 5 to 300"]],
  ])("reports %s", (_, change, problems) => {
    expect(nlbHealthCheckProblems({ ...ok, ...change })).toEqual(problems);
  });
});

describe("apiLbIngressCidrs", () => {
  it.each<[string, "internet-facing" | "internal", string[], string, Array<{ key: string; cidr: string; description: string }>]>([
    [
      "internet-facing: allowed ranges only (nodes come through NAT)",
      "internet-facing",
      ["0.0.0.0/0"],
      "10.0.0.0/16",
      [{ key: "0.0.0.0-0", cidr: "0.0.0.0/0", description: "Kubernetes API from an allowed client range" }],
    ],
    [
      "internal: allowed ranges and the VPC",
      "internal",
      ["192.0.2.0/24", "198.51.100.7/32"],
      "10.0.0.0/16",
      [
        { key: "192.0.2.0-24", cidr: "192.0.2.0/24", description: "Kubernetes API from an allowed client range" },
        { key: "198.51.100.7-32", cidr: "198.51.100.7/32", description: "Kubernetes API from an allowed client range" },
        { key: "10.0.0.0-16", cidr: "10.0.0.0/16", description: "Kubernetes API from nodes in the VPC" },
      ],
    ],
    [
      "internal: the VPC listed as allowed gives one rule, not a duplicate EC2 rejects",
      "internal",
      ["10.0.0.0/16", "192.0.2.0/24", "192.0.2.0/24"],
      "10.0.0.0/16",
      [
        { key: "10.0.0.0-16", cidr: "10.0.0.0/16", description: "Kubernetes API from an allowed client range" },
        { key: "192.0.2.0-24", cidr: "192.0.2.0/24", description: "Kubernetes API from an allowed client range" },
      ],
    ],
  ])("%s", (_, scheme, allowed, vpc, expected) => {
    expect(apiLbIngressCidrs(scheme, allowed, vpc)).toEqual(expected);
  });
});

describe("ApiLoadBalancer component", () => {
  const args = (over: Partial<ApiLoadBalancerArgs> = {}): ApiLoadBalancerArgs => ({
    clusterName: "prod",
    vpcId: "vpc-1",
    vpcCidr: "10.0.0.0/16",
    subnetIds: ["subnet-a", "subnet-b", "subnet-c"],
    scheme: "internet-facing",
    allowedCidrs: ["192.0.2.0/24", "198.51.100.0/24"],
    natPublicIps: ["203.0.113.10", "203.0.113.11", "203.0.113.12"],
    tags: { team: "platform" },
    ...over,
  });
  async function build(a: ApiLoadBalancerArgs): Promise<{ regs: Registration[]; lb: ApiLoadBalancer }> {
    const regs = await setupMocks();
    const lb = new ApiLoadBalancer("api", a);
    await settle();
    return { regs, lb };
  }
  const one = (regs: Registration[], type: string) => {
    const found = ofType(regs, type);
    expect(found).toHaveLength(1);
    return found[0];
  };
  // Registrations reach the mocks as their inputs resolve, so their order is not the program's.
  const byName = (regs: Registration[]) => [...regs].sort((a, b) => a.name.localeCompare(b.name));
  const rule = (securityGroupId: string, cidrIpv4: string, description: string) => ({
    securityGroupId,
    ipProtocol: "tcp",
    fromPort: 6443,
    toPort: 6443,
    cidrIpv4,
    description,
    tags: TAGS,
  });

  it("internet-facing: exact resource set", async () => {
    const { regs } = await build(args());
    expect(regs.map((r) => `${r.type} ${r.name}`).sort()).toEqual(
      [
        "kubeadm-ha:index:ApiLoadBalancer api",
        "aws:ec2/securityGroup:SecurityGroup api-sg",
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule api-sg-ingress-192.0.2.0-24",
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule api-sg-ingress-198.51.100.0-24",
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule api-sg-ingress-nat-0",
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule api-sg-ingress-nat-1",
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule api-sg-ingress-nat-2",
        "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule api-sg-egress-vpc",
        "aws:lb/loadBalancer:LoadBalancer api-nlb",
        "aws:lb/targetGroup:TargetGroup api-tg",
        "aws:lb/listener:Listener api-listener",
      ].sort(),
    );
  });

  it("NLB: network, internet-facing, cross-zone, behind its security group", async () => {
    const { regs } = await build(args());
    expect(one(regs, "aws:lb/loadBalancer:LoadBalancer").inputs).toEqual({
      name: "prod-api",
      loadBalancerType: "network",
      internal: false,
      subnets: ["subnet-a", "subnet-b", "subnet-c"],
      securityGroups: ["api-sg-id"],
      enableCrossZoneLoadBalancing: true,
      tags: TAGS,
    });
  });

  it("target group: TCP 6443 instances, no client IP preservation, HTTPS /readyz every 5 s", async () => {
    const { regs } = await build(args());
    expect(one(regs, "aws:lb/targetGroup:TargetGroup").inputs).toEqual({
      name: "prod-api",
      port: 6443,
      protocol: "TCP",
      targetType: "instance",
      vpcId: "vpc-1",
      preserveClientIp: "false",
      connectionTermination: true,
      deregistrationDelay: 30,
      healthCheck: {
        protocol: "HTTPS",
        path: "/readyz",
        port: "6443",
        matcher: "200-399",
        interval: 5,
        timeout: 3,
        healthyThreshold: 2,
        unhealthyThreshold: 2,
      },
      tags: TAGS,
    });
  });

  it("listener: TCP 6443 forwarding to the target group", async () => {
    const { regs } = await build(args());
    expect(one(regs, "aws:lb/listener:Listener").inputs).toEqual({
      loadBalancerArn: "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/net/prod-api/0123456789abcdef",
      port: 6443,
      protocol: "TCP",
      defaultActions: [{ type: "forward", targetGroupArn: "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/prod-api/0123456789abcdef" }],
      tags: TAGS,
    });
  });

  it("internet-facing security group: 6443 from each allowed range and each NAT address, out to the VPC only", async () => {
    const { regs } = await build(args());
    expect(one(regs, "aws:ec2/securityGroup:SecurityGroup").inputs).toEqual({ vpcId: "vpc-1", description: "Kubernetes API load balancer of prod", tags: TAGS });
    const ingress = byName(ofType(regs, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"));
    expect(ingress).toHaveLength(5);
    expect(ingress.map((r) => r.inputs)).toEqual([
      rule("api-sg-id", "192.0.2.0/24", "Kubernetes API from an allowed client range"),
      rule("api-sg-id", "198.51.100.0/24", "Kubernetes API from an allowed client range"),
      rule("api-sg-id", "203.0.113.10/32", "Kubernetes API from nodes through NAT"),
      rule("api-sg-id", "203.0.113.11/32", "Kubernetes API from nodes through NAT"),
      rule("api-sg-id", "203.0.113.12/32", "Kubernetes API from nodes through NAT"),
    ]);
    const egress = ofType(regs, "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule");
    expect(egress.map((r) => r.inputs)).toEqual([rule("api-sg-id", "10.0.0.0/16", "Kubernetes API and health checks to control plane nodes")]);
  });

  it("internal: internal NLB, 6443 from the VPC instead of NAT addresses", async () => {
    const { regs } = await build(args({ scheme: "internal", allowedCidrs: ["0.0.0.0/0"] }));
    expect(one(regs, "aws:lb/loadBalancer:LoadBalancer").inputs.internal).toBe(true);
    const ingress = byName(ofType(regs, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"));
    expect(ingress.map((r) => [r.name, r.inputs])).toEqual([
      ["api-sg-ingress-0.0.0.0-0", rule("api-sg-id", "0.0.0.0/0", "Kubernetes API from an allowed client range")],
      ["api-sg-ingress-10.0.0.0-16", rule("api-sg-id", "10.0.0.0/16", "Kubernetes API from nodes in the VPC")],
    ]);
    expect(regs).toHaveLength(1 + 1 + 2 + 1 + 3);
  });

  it("outputs: endpoint is the NLB DNS name on 6443", async () => {
    const { lb } = await build(args());
    expect(await valueOf(lb.dnsName)).toBe("prod-api-0123456789abcdef.elb.eu-west-1.amazonaws.com");
    expect(await valueOf(lb.endpoint)).toBe("prod-api-0123456789abcdef.elb.eu-west-1.amazonaws.com:6443");
    expect(await valueOf(lb.loadBalancerArn)).toBe("arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/net/prod-api/0123456789abcdef");
    expect(await valueOf(lb.targetGroupArn)).toBe("arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/prod-api/0123456789abcdef");
    expect(await valueOf(lb.securityGroupId)).toBe("api-sg-id");
  });

  it("rejects bad args, every problem at once, before registering anything", async () => {
    const regs = await setupMocks();
    expect(
      () =>
        new ApiLoadBalancer(
          "bad",
          args({ clusterName: "a-cluster-name-of-29-chars-xx", scheme: "public" as any, vpcCidr: "10.0.0.1/16", allowedCidrs: ["1.2.3.4/8"], subnetIds: [] }),
        ),
    ).toThrow(
      new Error(
        'ApiLoadBalancer: scheme: "public" — must be internet-facing or internal; ' +
          'clusterName: "a-cluster-name-of-29-chars-xx" — makes the NLB name a-cluster-name-of-29-chars-xx-api longer than AWS\'s 32 characters; ' +
          'vpcCidr: "10.0.0.1/16" — must be an IPv4 CIDR with no host bits set; ' +
          'allowedCidrs[0]: "1.2.3.4/8" — must be an IPv4 CIDR with no host bits set; ' +
          "subnetIds: [] — must list at least one subnet",
      ),
    );
    expect(() => new ApiLoadBalancer("bad", args({ allowedCidrs: [] }))).toThrow(
      new Error("ApiLoadBalancer: allowedCidrs: [] — must list at least one CIDR, or nobody can reach the API"),
    );
    await settle();
    expect(regs).toEqual([]);
  });
});
