import {
  API_HEALTH_CHECK,
  ApiLoadBalancer,
  ApiLoadBalancerArgs,
  apiLbIngressCidrs,
  apiLoadBalancerNames,
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
  it("admits each allowed range once (EC2 rejects a duplicate rule), never a node range", () => {
    expect(apiLbIngressCidrs(["192.0.2.0/24", "198.51.100.7/32", "192.0.2.0/24"])).toEqual([
      { key: "192.0.2.0-24", cidr: "192.0.2.0/24", description: "Kubernetes API from an allowed client range" },
      { key: "198.51.100.7-32", cidr: "198.51.100.7/32", description: "Kubernetes API from an allowed client range" },
    ]);
    expect(apiLbIngressCidrs([])).toEqual([]);
  });
});

describe("ApiLoadBalancer component", () => {
  const args = (over: Partial<ApiLoadBalancerArgs> = {}): ApiLoadBalancerArgs => ({
    clusterName: "prod",
    vpcId: "vpc-1",
    vpcCidr: "10.0.0.0/16",
    privateSubnetIds: ["private-a", "private-b", "private-c"],
    publicSubnetIds: ["public-a", "public-b", "public-c"],
    scheme: "internet-facing",
    allowedCidrs: ["192.0.2.0/24", "198.51.100.0/24"],
    tags: { team: "platform" },
    ...over,
  });
  async function build(a: ApiLoadBalancerArgs): Promise<{ regs: Registration[]; lb: ApiLoadBalancer }> {
    const regs = await setupMocks();
    const lb = new ApiLoadBalancer("api", a);
    await settle();
    return { regs, lb };
  }
  const named = (regs: Registration[], name: string) => {
    const found = regs.filter((r) => r.name === name);
    expect(found).toHaveLength(1);
    return found[0];
  };
  // Registrations reach the mocks as their inputs resolve, so their order is not the program's.
  const byName = (regs: Registration[]) => [...regs].sort((a, b) => a.name.localeCompare(b.name));
  const tags = (name: string) => ({ ...TAGS, Name: name });
  const rule = (securityGroupId: string, cidrIpv4: string, description: string, name = "prod-api") => ({
    securityGroupId,
    ipProtocol: "tcp",
    fromPort: 6443,
    toPort: 6443,
    cidrIpv4,
    description,
    tags: tags(name),
  });
  const targetGroup = (name: string) => ({
    name,
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
    tags: tags(name),
  });

  it("internet-facing: an internal NLB for the nodes and a public one for people, exact resource set (issue 15)", async () => {
    const { regs } = await build(args());
    expect(regs.map((r) => `${r.type} ${r.name}`).sort()).toEqual(
      [
        "kubeadm-ha:index:ApiLoadBalancer api",
        "aws:ec2/securityGroup:SecurityGroup api-sg",
        "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule api-sg-egress-vpc",
        "aws:lb/loadBalancer:LoadBalancer api-nlb",
        "aws:lb/targetGroup:TargetGroup api-tg",
        "aws:lb/listener:Listener api-listener",
        "aws:ec2/securityGroup:SecurityGroup api-public-sg",
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule api-public-sg-ingress-192.0.2.0-24",
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule api-public-sg-ingress-198.51.100.0-24",
        "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule api-public-sg-egress-vpc",
        "aws:lb/loadBalancer:LoadBalancer api-public-nlb",
        "aws:lb/targetGroup:TargetGroup api-public-tg",
        "aws:lb/listener:Listener api-public-listener",
      ].sort(),
    );
  });

  it("the nodes' NLB: internal, in the private subnets, cross-zone, replaced delete-first (its name is kept)", async () => {
    const { regs } = await build(args());
    const nlb = named(regs, "api-nlb");
    expect(nlb.inputs).toEqual({
      name: "prod-api",
      loadBalancerType: "network",
      internal: true,
      subnets: ["private-a", "private-b", "private-c"],
      securityGroups: ["api-sg-id"],
      enableCrossZoneLoadBalancing: true,
      tags: tags("prod-api"),
    });
    expect(nlb.options.deleteBeforeReplace).toBe(true);
  });

  it("the people's NLB: internet-facing, in the public subnets, named apart so a scheme change never collides", async () => {
    const { regs } = await build(args());
    const nlb = named(regs, "api-public-nlb");
    expect(nlb.inputs).toEqual({
      name: "prod-api-pub",
      loadBalancerType: "network",
      internal: false,
      subnets: ["public-a", "public-b", "public-c"],
      securityGroups: ["api-public-sg-id"],
      enableCrossZoneLoadBalancing: true,
      tags: tags("prod-api-pub"),
    });
    expect(nlb.options.deleteBeforeReplace).toBe(false);
  });

  it("target groups: one a load balancer, TCP 6443 instances, no client IP preservation, HTTPS /readyz every 5 s", async () => {
    const { regs } = await build(args());
    expect(named(regs, "api-tg").inputs).toEqual(targetGroup("prod-api"));
    expect(named(regs, "api-public-tg").inputs).toEqual(targetGroup("prod-api-pub"));
  });

  it("listeners: TCP 6443, each forwarding to its own load balancer's target group", async () => {
    const { regs } = await build(args());
    const listener = (lb: string) => ({
      loadBalancerArn: `arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/net/${lb}/0123456789abcdef`,
      port: 6443,
      protocol: "TCP",
      defaultActions: [{ type: "forward", targetGroupArn: `arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/${lb}/0123456789abcdef` }],
      tags: tags(lb),
    });
    expect(named(regs, "api-listener").inputs).toEqual(listener("prod-api"));
    expect(named(regs, "api-public-listener").inputs).toEqual(listener("prod-api-pub"));
  });

  it("internet-facing security groups: the allowed ranges on the public one only, no NAT address anywhere; both out to the VPC only", async () => {
    const { regs } = await build(args());
    expect(named(regs, "api-sg").inputs).toEqual({ vpcId: "vpc-1", description: "Kubernetes API load balancer of prod: nodes", tags: tags("prod-api") });
    expect(named(regs, "api-public-sg").inputs).toEqual({ vpcId: "vpc-1", description: "Kubernetes API load balancer of prod: allowed clients from the internet", tags: tags("prod-api-pub") });
    const ingress = byName(ofType(regs, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"));
    expect(ingress.map((r) => r.inputs)).toEqual([
      rule("api-public-sg-id", "192.0.2.0/24", "Kubernetes API from an allowed client range", "prod-api-pub"),
      rule("api-public-sg-id", "198.51.100.0/24", "Kubernetes API from an allowed client range", "prod-api-pub"),
    ]);
    const egress = byName(ofType(regs, "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"));
    expect(egress.map((r) => r.inputs)).toEqual([
      rule("api-public-sg-id", "10.0.0.0/16", "Kubernetes API and health checks to control plane nodes", "prod-api-pub"),
      rule("api-sg-id", "10.0.0.0/16", "Kubernetes API and health checks to control plane nodes"),
    ]);
  });

  it("internal: one internal NLB for nodes and people, the allowed ranges on it, no public subnet needed", async () => {
    const { regs, lb } = await build(args({ scheme: "internal", allowedCidrs: ["10.0.0.0/8"], publicSubnetIds: undefined }));
    expect(ofType(regs, "aws:lb/loadBalancer:LoadBalancer").map((r) => [r.name, r.inputs.internal])).toEqual([["api-nlb", true]]);
    const ingress = byName(ofType(regs, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"));
    expect(ingress.map((r) => [r.name, r.inputs])).toEqual([["api-sg-ingress-10.0.0.0-8", rule("api-sg-id", "10.0.0.0/8", "Kubernetes API from an allowed client range")]]);
    expect(named(regs, "api-sg").inputs.description).toBe("Kubernetes API load balancer of prod: nodes and allowed clients");
    expect(regs).toHaveLength(1 + 1 + 1 + 1 + 3);
    expect(lb.publicDnsName).toBeUndefined();
    expect(await valueOf(lb.clientEndpoint)).toBe(await valueOf(lb.endpoint));
    expect(lb.listeners).toHaveLength(1);
  });

  it("outputs: the nodes' endpoint is the internal NLB; people's the public one", async () => {
    const { lb } = await build(args());
    expect(await valueOf(lb.dnsName)).toBe("prod-api-0123456789abcdef.elb.eu-west-1.amazonaws.com");
    expect(await valueOf(lb.endpoint)).toBe("prod-api-0123456789abcdef.elb.eu-west-1.amazonaws.com:6443");
    expect(await valueOf(lb.loadBalancerArn)).toBe("arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/net/prod-api/0123456789abcdef");
    expect(await valueOf(lb.targetGroupArn)).toBe("arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/prod-api/0123456789abcdef");
    expect(await valueOf(lb.securityGroupId)).toBe("api-sg-id");
    expect(await valueOf(lb.publicDnsName!)).toBe("prod-api-pub-0123456789abcdef.elb.eu-west-1.amazonaws.com");
    expect(await valueOf(lb.publicTargetGroupArn!)).toBe("arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/prod-api-pub/0123456789abcdef");
    expect(await valueOf(lb.publicSecurityGroupId!)).toBe("api-public-sg-id");
    expect(await valueOf(lb.clientEndpoint)).toBe("prod-api-pub-0123456789abcdef.elb.eu-west-1.amazonaws.com:6443");
    expect(lb.listeners).toHaveLength(2);
  });

  it("rejects bad args, every problem at once, before registering anything", async () => {
    const regs = await setupMocks();
    expect(
      () =>
        new ApiLoadBalancer(
          "bad",
          args({ clusterName: "a-cluster-name-of-25-chars", scheme: "public" as any, vpcCidr: "10.0.0.1/16", allowedCidrs: ["1.2.3.4/8"], privateSubnetIds: [] }),
        ),
    ).toThrow(
      new Error(
        'ApiLoadBalancer: scheme: "public" — must be internet-facing or internal; ' +
          'clusterName: "a-cluster-name-of-25-chars" — makes the NLB name a-cluster-name-of-25-chars-api-pub longer than AWS\'s 32 characters; ' +
          'vpcCidr: "10.0.0.1/16" — must be an IPv4 CIDR with no host bits set; ' +
          'allowedCidrs[0]: "1.2.3.4/8" — must be an IPv4 CIDR with no host bits set; ' +
          "privateSubnetIds: [] — must list at least one subnet",
      ),
    );
    expect(() => new ApiLoadBalancer("bad", args({ allowedCidrs: [] }))).toThrow(
      new Error("ApiLoadBalancer: allowedCidrs: [] — must list at least one CIDR, or nobody can reach the API"),
    );
    expect(() => new ApiLoadBalancer("bad", args({ publicSubnetIds: [] }))).toThrow(
      new Error("ApiLoadBalancer: publicSubnetIds: [] — an internet-facing load balancer needs at least one public subnet"),
    );
    await settle();
    expect(regs).toEqual([]);
  });

  it("the longest cluster name the config allows (24) fits AWS's 32 characters for both load balancers", () => {
    const names = apiLoadBalancerNames("a".repeat(24));
    expect([names.internal.length, names.public.length]).toEqual([28, 32]);
  });
});
