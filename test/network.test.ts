import * as fc from "fast-check";
import { Netmask } from "netmask";
import { cidrsOverlap } from "../config";
import { Network, NetworkArgs, SubnetPlan, nthHost, planSubnets } from "../components/network";
import { Registration, settle, setupMocks, valueOf } from "./mocks";

const ZONES3 = ["eu-west-1a", "eu-west-1b", "eu-west-1c"];

describe("planSubnets", () => {
  const cases: Array<[string, string, string[], SubnetPlan[]]> = [
    [
      "/16 over 3 zones: /19 blocks, 2 left spare",
      "10.0.0.0/16",
      ZONES3,
      [
        { zone: "eu-west-1a", privateCidr: "10.0.0.0/19", publicCidr: "10.0.96.0/19" },
        { zone: "eu-west-1b", privateCidr: "10.0.32.0/19", publicCidr: "10.0.128.0/19" },
        { zone: "eu-west-1c", privateCidr: "10.0.64.0/19", publicCidr: "10.0.160.0/19" },
      ],
    ],
    [
      "/16 over 4 zones: /19 blocks, none spare",
      "10.0.0.0/16",
      [...ZONES3, "eu-west-1d"],
      [
        { zone: "eu-west-1a", privateCidr: "10.0.0.0/19", publicCidr: "10.0.128.0/19" },
        { zone: "eu-west-1b", privateCidr: "10.0.32.0/19", publicCidr: "10.0.160.0/19" },
        { zone: "eu-west-1c", privateCidr: "10.0.64.0/19", publicCidr: "10.0.192.0/19" },
        { zone: "eu-west-1d", privateCidr: "10.0.96.0/19", publicCidr: "10.0.224.0/19" },
      ],
    ],
    [
      "/20 over 5 zones: /24 blocks",
      "172.16.16.0/20",
      ["a", "b", "c", "d", "e"],
      [
        { zone: "a", privateCidr: "172.16.16.0/24", publicCidr: "172.16.21.0/24" },
        { zone: "b", privateCidr: "172.16.17.0/24", publicCidr: "172.16.22.0/24" },
        { zone: "c", privateCidr: "172.16.18.0/24", publicCidr: "172.16.23.0/24" },
        { zone: "d", privateCidr: "172.16.19.0/24", publicCidr: "172.16.24.0/24" },
        { zone: "e", privateCidr: "172.16.20.0/24", publicCidr: "172.16.25.0/24" },
      ],
    ],
    [
      "/24 over 3 zones: /27 blocks",
      "192.168.10.0/24",
      ZONES3,
      [
        { zone: "eu-west-1a", privateCidr: "192.168.10.0/27", publicCidr: "192.168.10.96/27" },
        { zone: "eu-west-1b", privateCidr: "192.168.10.32/27", publicCidr: "192.168.10.128/27" },
        { zone: "eu-west-1c", privateCidr: "192.168.10.64/27", publicCidr: "192.168.10.160/27" },
      ],
    ],
    [
      "/24 over 8 zones: exactly /28, the smallest AWS allows",
      "10.1.2.0/24",
      ["a", "b", "c", "d", "e", "f", "g", "h"],
      [
        { zone: "a", privateCidr: "10.1.2.0/28", publicCidr: "10.1.2.128/28" },
        { zone: "b", privateCidr: "10.1.2.16/28", publicCidr: "10.1.2.144/28" },
        { zone: "c", privateCidr: "10.1.2.32/28", publicCidr: "10.1.2.160/28" },
        { zone: "d", privateCidr: "10.1.2.48/28", publicCidr: "10.1.2.176/28" },
        { zone: "e", privateCidr: "10.1.2.64/28", publicCidr: "10.1.2.192/28" },
        { zone: "f", privateCidr: "10.1.2.80/28", publicCidr: "10.1.2.208/28" },
        { zone: "g", privateCidr: "10.1.2.96/28", publicCidr: "10.1.2.224/28" },
        { zone: "h", privateCidr: "10.1.2.112/28", publicCidr: "10.1.2.240/28" },
      ],
    ],
    ["one zone halves the VPC", "10.0.0.0/16", ["a"], [{ zone: "a", privateCidr: "10.0.0.0/17", publicCidr: "10.0.128.0/17" }]],
  ];
  it.each(cases)("%s", (_, vpc, zones, expected) => {
    expect(planSubnets(vpc, zones)).toEqual(expected);
  });

  const errors: Array<[string, string, string[], string]> = [
    ["blocks below /28", "10.1.2.0/24", ["a", "b", "c", "d", "e", "f", "g", "h", "i"], "vpcCidr 10.1.2.0/24 is too small for 18 subnets: each would be /29, and AWS subnets are at least /28"],
    ["a /26 over 3 zones", "10.0.0.0/26", ZONES3, "vpcCidr 10.0.0.0/26 is too small for 6 subnets: each would be /29, and AWS subnets are at least /28"],
    ["host bits set", "10.0.0.1/16", ZONES3, 'vpcCidr "10.0.0.1/16" must be an IPv4 CIDR such as 10.0.0.0/16 with no host bits set'],
    ["not a CIDR", "10.0.0.0", ZONES3, 'vpcCidr "10.0.0.0" must be an IPv4 CIDR such as 10.0.0.0/16 with no host bits set'],
    ["no zones", "10.0.0.0/16", [], "zones must list at least one availability zone"],
    ["a repeated zone", "10.0.0.0/16", ["a", "b", "a"], "zones must be distinct: a is listed twice"],
  ];
  it.each(errors)("rejects %s", (_, vpc, zones, message) => {
    expect(() => planSubnets(vpc, zones)).toThrow(new Error(message));
  });

  it("never plans overlapping subnets or subnets outside the VPC (property)", () => {
    const vpcCidr = fc
      .tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 16, max: 24 }))
      .map(([addr, bits]) => new Netmask(`${(addr >>> 24) & 255}.${(addr >>> 16) & 255}.${(addr >>> 8) & 255}.${addr & 255}/${bits}`).toString());
    const zones = fc.uniqueArray(fc.stringMatching(/^[a-z]{2}-[a-z]+-\d[a-z]$/), { minLength: 3, maxLength: 6 });
    fc.assert(
      fc.property(vpcCidr, zones, (vpc, zs) => {
        const plan = planSubnets(vpc, zs);
        expect(plan.map((p) => p.zone)).toEqual(zs);
        const all = plan.flatMap((p) => [p.privateCidr, p.publicCidr]);
        const block = new Netmask(vpc);
        const expectedPrefix = block.bitmask + Math.ceil(Math.log2(2 * zs.length));
        for (const c of all) {
          expect(block.contains(c)).toBe(true);
          expect(new Netmask(c).bitmask).toBe(expectedPrefix);
          expect(expectedPrefix).toBeLessThanOrEqual(28);
        }
        for (let i = 0; i < all.length; i++) for (let j = i + 1; j < all.length; j++) expect(cidrsOverlap(all[i], all[j])).toBe(false);
      }),
      { numRuns: 300 },
    );
  });
});

describe("nthHost", () => {
  const cases: Array<[string, number, string]> = [
    ["10.0.0.0/19", 4, "10.0.0.4"],
    ["10.0.0.0/19", 10, "10.0.0.10"],
    ["10.0.0.0/19", 300, "10.0.1.44"],
    ["10.0.0.0/19", 8190, "10.0.31.254"],
    ["10.0.96.0/19", 11, "10.0.96.11"],
    ["192.168.10.64/28", 4, "192.168.10.68"],
    ["192.168.10.64/28", 14, "192.168.10.78"],
  ];
  it.each(cases)("%s offset %d is %s", (cidr, n, ip) => {
    expect(nthHost(cidr, n)).toBe(ip);
  });

  const errors: Array<[string, number, string]> = [
    ["10.0.0.0/24", 0, "nthHost: offset 0 in 10.0.0.0/24 is not assignable: AWS reserves the first four addresses and the last one of a subnet, so offsets run from 4 to 254"],
    ["10.0.0.0/24", 3, "nthHost: offset 3 in 10.0.0.0/24 is not assignable: AWS reserves the first four addresses and the last one of a subnet, so offsets run from 4 to 254"],
    ["10.0.0.0/24", 255, "nthHost: offset 255 in 10.0.0.0/24 is not assignable: AWS reserves the first four addresses and the last one of a subnet, so offsets run from 4 to 254"],
    ["10.0.0.0/24", 300, "nthHost: offset 300 in 10.0.0.0/24 is not assignable: AWS reserves the first four addresses and the last one of a subnet, so offsets run from 4 to 254"],
    ["10.0.0.0/24", 4.5, "nthHost: offset 4.5 in 10.0.0.0/24 is not assignable: AWS reserves the first four addresses and the last one of a subnet, so offsets run from 4 to 254"],
    ["192.168.10.64/28", 15, "nthHost: offset 15 in 192.168.10.64/28 is not assignable: AWS reserves the first four addresses and the last one of a subnet, so offsets run from 4 to 14"],
    ["10.0.0.5/24", 4, 'nthHost: "10.0.0.5/24" must be an IPv4 CIDR with no host bits set'],
  ];
  it.each(errors)("%s offset %d is rejected", (cidr, n, message) => {
    expect(() => nthHost(cidr, n)).toThrow(new Error(message));
  });
});

describe("Network component", () => {
  const args = (over: Partial<NetworkArgs> = {}): NetworkArgs => ({
    clusterName: "prod",
    vpcCidr: "10.0.0.0/16",
    availabilityZones: ZONES3,
    natGateways: "perZone",
    tags: { team: "platform" },
    ...over,
  });
  const base = { team: "platform", "kubernetes.io/cluster/prod": "owned", "kubeadm-ha/cluster": "prod" };

  async function build(a: NetworkArgs): Promise<{ regs: Registration[]; net: Network }> {
    const regs = await setupMocks();
    const net = new Network("net", a);
    await settle();
    return { regs, net };
  }
  const byName = (regs: Registration[], name: string) => {
    const found = regs.filter((r) => r.name === name);
    expect(found).toHaveLength(1);
    return found[0];
  };
  const count = (regs: Registration[]) => {
    const out: Record<string, number> = {};
    for (const r of regs) out[r.type] = (out[r.type] ?? 0) + 1;
    return out;
  };

  it("perZone over 3 zones: exact resource counts", async () => {
    const { regs } = await build(args());
    expect(count(regs)).toEqual({
      "kubeadm-ha:index:Network": 1,
      "aws:ec2/vpc:Vpc": 1,
      "aws:ec2/internetGateway:InternetGateway": 1,
      "aws:ec2/subnet:Subnet": 6,
      "aws:ec2/eip:Eip": 3,
      "aws:ec2/natGateway:NatGateway": 3,
      "aws:ec2/routeTable:RouteTable": 4,
      "aws:ec2/route:Route": 4,
      "aws:ec2/routeTableAssociation:RouteTableAssociation": 6,
      "aws:ec2/vpcEndpoint:VpcEndpoint": 1,
    });
  });

  it("single over 3 zones: one NAT gateway, still a private route table a zone", async () => {
    const { regs } = await build(args({ natGateways: "single" }));
    expect(count(regs)).toEqual({
      "kubeadm-ha:index:Network": 1,
      "aws:ec2/vpc:Vpc": 1,
      "aws:ec2/internetGateway:InternetGateway": 1,
      "aws:ec2/subnet:Subnet": 6,
      "aws:ec2/eip:Eip": 1,
      "aws:ec2/natGateway:NatGateway": 1,
      "aws:ec2/routeTable:RouteTable": 4,
      "aws:ec2/route:Route": 4,
      "aws:ec2/routeTableAssociation:RouteTableAssociation": 6,
      "aws:ec2/vpcEndpoint:VpcEndpoint": 1,
    });
    expect(byName(regs, "net-nat-0").inputs.subnetId).toBe("net-public-0-id");
    for (let i = 0; i < 3; i++) expect(byName(regs, `net-private-default-route-${i}`).inputs.natGatewayId).toBe("net-nat-0-id");
  });

  it("an S3 gateway endpoint on every private route table, in the zones' region", async () => {
    const { regs } = await build(args());
    expect(byName(regs, "net-s3-endpoint").inputs).toMatchObject({
      vpcId: "net-vpc-id",
      serviceName: "com.amazonaws.eu-west-1.s3",
      vpcEndpointType: "Gateway",
      routeTableIds: ["net-private-rt-0-id", "net-private-rt-1-id", "net-private-rt-2-id"],
    });
  });

  it("VPC has DNS hostnames and support on", async () => {
    const { regs } = await build(args());
    const vpc = byName(regs, "net-vpc");
    expect(vpc.type).toBe("aws:ec2/vpc:Vpc");
    expect(vpc.inputs).toEqual({
      cidrBlock: "10.0.0.0/16",
      enableDnsHostnames: true,
      enableDnsSupport: true,
      tags: { ...base, Name: "prod-vpc" },
    });
    expect(byName(regs, "net-igw").inputs).toEqual({ vpcId: "net-vpc-id", tags: { ...base, Name: "prod-igw" } });
  });

  it("subnets: zone, CIDR from the plan, no public IPs, role tags", async () => {
    const { regs } = await build(args());
    ZONES3.forEach((zone, i) => {
      expect(byName(regs, `net-public-${i}`).inputs).toEqual({
        vpcId: "net-vpc-id",
        availabilityZone: zone,
        cidrBlock: ["10.0.96.0/19", "10.0.128.0/19", "10.0.160.0/19"][i],
        mapPublicIpOnLaunch: false,
        tags: { ...base, "kubernetes.io/role/elb": "1", Name: `prod-public-${zone}` },
      });
      expect(byName(regs, `net-private-${i}`).inputs).toEqual({
        vpcId: "net-vpc-id",
        availabilityZone: zone,
        cidrBlock: ["10.0.0.0/19", "10.0.32.0/19", "10.0.64.0/19"][i],
        mapPublicIpOnLaunch: false,
        tags: { ...base, "kubernetes.io/role/internal-elb": "1", Name: `prod-private-${zone}` },
      });
    });
  });

  it("perZone: each zone's NAT in its public subnet with its own EIP, and its private route through it", async () => {
    const { regs } = await build(args());
    ZONES3.forEach((zone, i) => {
      expect(byName(regs, `net-nat-eip-${i}`).inputs).toEqual({ domain: "vpc", tags: { ...base, Name: `prod-nat-${zone}` } });
      expect(byName(regs, `net-nat-${i}`).inputs).toEqual({ allocationId: `net-nat-eip-${i}-id`, subnetId: `net-public-${i}-id`, tags: { ...base, Name: `prod-nat-${zone}` } });
      expect(byName(regs, `net-private-rt-${i}`).inputs).toEqual({ vpcId: "net-vpc-id", tags: { ...base, Name: `prod-private-${zone}` } });
      expect(byName(regs, `net-private-default-route-${i}`).inputs).toEqual({ routeTableId: `net-private-rt-${i}-id`, destinationCidrBlock: "0.0.0.0/0", natGatewayId: `net-nat-${i}-id` });
      expect(byName(regs, `net-private-rta-${i}`).inputs).toEqual({ subnetId: `net-private-${i}-id`, routeTableId: `net-private-rt-${i}-id` });
    });
  });

  it("one public route table to the internet gateway, associated with every public subnet", async () => {
    const { regs } = await build(args());
    expect(byName(regs, "net-public-rt").inputs).toEqual({ vpcId: "net-vpc-id", tags: { ...base, Name: "prod-public" } });
    expect(byName(regs, "net-public-default-route").inputs).toEqual({ routeTableId: "net-public-rt-id", destinationCidrBlock: "0.0.0.0/0", gatewayId: "net-igw-id" });
    for (let i = 0; i < 3; i++) expect(byName(regs, `net-public-rta-${i}`).inputs).toEqual({ subnetId: `net-public-${i}-id`, routeTableId: "net-public-rt-id" });
  });

  it("outputs: ids in zone order, the plan and the NAT addresses", async () => {
    const { regs, net } = await build(args());
    expect(await valueOf(net.vpcId)).toBe("net-vpc-id");
    expect(net.vpcCidr).toBe("10.0.0.0/16");
    expect(net.zones).toEqual(ZONES3);
    expect(net.plan).toEqual(planSubnets("10.0.0.0/16", ZONES3));
    expect(await Promise.all(net.publicSubnetIds.map(valueOf))).toEqual(["net-public-0-id", "net-public-1-id", "net-public-2-id"]);
    expect(await Promise.all(net.privateSubnetIds.map(valueOf))).toEqual(["net-private-0-id", "net-private-1-id", "net-private-2-id"]);
    const eipIps = [0, 1, 2].map((i) => byName(regs, `net-nat-eip-${i}`).state.publicIp);
    expect(eipIps.every((ip) => /^203\.0\.113\.\d+$/.test(ip))).toBe(true);
    expect(await Promise.all(net.natPublicIps.map(valueOf))).toEqual(eipIps);
  });

  it("rejects bad args before registering anything", async () => {
    const regs = await setupMocks();
    expect(() => new Network("bad", args({ natGateways: "none" as any }))).toThrow(new Error('natGateways "none" must be perZone or single'));
    expect(() => new Network("bad", args({ vpcCidr: "10.0.0.0/26" }))).toThrow(
      new Error("vpcCidr 10.0.0.0/26 is too small for 6 subnets: each would be /29, and AWS subnets are at least /28"),
    );
    await settle();
    expect(regs).toEqual([]);
  });
});
