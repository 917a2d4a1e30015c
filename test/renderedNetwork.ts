/**
 * The security groups of a rendered cluster as a model the flow matrix is checked against: which
 * role each group belongs to (by what it is attached to), its ingress and egress rules, and the
 * addresses each role's traffic carries (fixed private IPs, the worker subnets, the NAT gateways'
 * public addresses behind the private route tables). Read from the Pulumi mocks' registrations,
 * nothing from the components' own functions, so the model sees what `pulumi up` would create.
 */
import { NodeRole, Traffic } from "../components/flows";
import { Registration, ofType } from "./mocks";

/** A role with a security group. */
export type GroupRole = NodeRole | "apiLoadBalancer";

export interface RenderedRule {
  /** Resource name. */
  name: string;
  /** The role of the group the rule belongs to. */
  group: GroupRole;
  /** EC2's ipProtocol: tcp, udp, icmp or -1 (all). */
  protocol: string;
  fromPort?: number;
  toPort?: number;
  /** The other end: a group (by its role) or a CIDR. */
  peer: { group: GroupRole } | { cidr: string };
}

export interface RenderedMachine {
  name: string;
  role: NodeRole;
  /** Fixed private address; undefined for a worker of an auto scaling group. */
  ip?: string;
  groupIds: string[];
  /** userDataBase64 (instances and launch templates). */
  userData: string;
}

export interface RenderedNetwork {
  /** Security group id -> the role whose machines (or NLB) it is attached to. */
  groups: Map<string, GroupRole>;
  ingress: RenderedRule[];
  egress: RenderedRule[];
  machines: RenderedMachine[];
  /** CIDRs a role's machines have private addresses in: /32s for fixed addresses, subnets for workers. */
  privateAddresses: Record<NodeRole, string[]>;
  /** The NAT gateways' public addresses a role's machines reach the internet with. */
  natAddresses: Record<NodeRole, string[]>;
  /** CIDRs of the subnets the NLB has addresses in. */
  loadBalancerSubnets: string[];
  vpcCidr: string;
}

const ipToInt = (ip: string): number => ip.split(".").reduce((n, o) => n * 256 + Number(o), 0);

/** Whether `inner` (an address or CIDR) lies wholly inside `outer` (a CIDR). */
export function cidrContains(outer: string, inner: string): boolean {
  const [ob, ol] = outer.split("/");
  const [ib, il = "32"] = inner.split("/");
  const outerLen = Number(ol);
  if (Number(il) < outerLen) return false;
  const mask = outerLen === 0 ? 0 : (0xffffffff << (32 - outerLen)) >>> 0;
  return ((ipToInt(ob) & mask) >>> 0) === ((ipToInt(ib) & mask) >>> 0);
}

/** Whether a rule's protocol and ports admit `t`. */
export function ruleAdmits(r: Pick<RenderedRule, "protocol" | "fromPort" | "toPort">, t: Traffic): boolean {
  if (r.protocol === "-1") return true;
  if (r.protocol !== t.protocol) return false;
  if (t.protocol === "icmp") return (r.fromPort === -1 || r.fromPort === t.type) && (r.toPort === -1 || r.toPort === t.code);
  return t.port >= (r.fromPort ?? -1) && t.port <= (r.toPort ?? -1);
}

/** The network of the cluster whose resources are named `<prefix>-...` among `regs`. */
export function renderedNetwork(all: Registration[], prefix: string): RenderedNetwork {
  const regs = all.filter((r) => r.name.startsWith(`${prefix}-`));
  const byId = new Map(regs.map((r) => [r.id, r]));
  const machines: RenderedMachine[] = [
    ...ofType(regs, "aws:ec2/instance:Instance").map((r) => ({
      name: r.name,
      role: INSTANCE_ROLES[r.inputs.tags["kubeadm-ha/role"]] ?? fail(`${r.name}: kubeadm-ha/role ${r.inputs.tags["kubeadm-ha/role"]}`),
      ip: r.inputs.privateIp as string,
      groupIds: r.inputs.vpcSecurityGroupIds as string[],
      userData: r.inputs.userDataBase64 as string,
    })),
    ...ofType(regs, "aws:ec2/launchTemplate:LaunchTemplate").map((r) => ({
      name: r.name,
      role: "worker" as NodeRole,
      groupIds: r.inputs.vpcSecurityGroupIds as string[],
      userData: r.inputs.userDataBase64 as string,
    })),
  ];

  const groups = new Map<string, GroupRole>();
  const claim = (id: string, role: GroupRole) => {
    const had = groups.get(id);
    if (had !== undefined && had !== role) throw new Error(`security group ${id} is attached to both ${had} and ${role}`);
    groups.set(id, role);
  };
  for (const m of machines) for (const id of m.groupIds) claim(id, m.role);
  for (const lb of ofType(regs, "aws:lb/loadBalancer:LoadBalancer")) for (const id of lb.inputs.securityGroups as string[]) claim(id, "apiLoadBalancer");
  const unattached = ofType(regs, "aws:ec2/securityGroup:SecurityGroup").filter((g) => !groups.has(g.id));
  if (unattached.length > 0) throw new Error(`security groups attached to nothing: ${unattached.map((g) => g.name).join(", ")}`);

  const rules = (type: string): RenderedRule[] =>
    ofType(regs, type).map((r) => {
      const group = groups.get(r.inputs.securityGroupId);
      if (group === undefined) throw new Error(`${r.name}: rule of an unknown security group ${r.inputs.securityGroupId}`);
      const ref = r.inputs.referencedSecurityGroupId as string | undefined;
      let peer: RenderedRule["peer"];
      if (ref !== undefined) {
        const g = groups.get(ref);
        if (g === undefined) throw new Error(`${r.name}: references an unknown security group ${ref}`);
        peer = { group: g };
      } else if (typeof r.inputs.cidrIpv4 === "string") peer = { cidr: r.inputs.cidrIpv4 };
      else throw new Error(`${r.name}: neither a security group nor an IPv4 CIDR`);
      return { name: r.name, group, protocol: r.inputs.ipProtocol, fromPort: r.inputs.fromPort, toPort: r.inputs.toPort, peer };
    });

  const subnets = new Map(ofType(regs, "aws:ec2/subnet:Subnet").map((s) => [s.id, s.inputs.cidrBlock as string]));
  const workerSubnets = [...new Set(ofType(regs, "aws:autoscaling/group:Group").flatMap((g) => g.inputs.vpcZoneIdentifiers as string[]))].map((id) => subnets.get(id)!);
  const privateAddresses: Record<NodeRole, string[]> = {
    controlPlane: machines.filter((m) => m.role === "controlPlane").map((m) => `${m.ip}/32`),
    etcd: machines.filter((m) => m.role === "etcd").map((m) => `${m.ip}/32`),
    worker: workerSubnets,
  };
  // A machine's internet traffic leaves through the NAT gateway its subnet's route table points at.
  const tableOf = new Map(ofType(regs, "aws:ec2/routeTableAssociation:RouteTableAssociation").map((a) => [subnets.get(a.inputs.subnetId)!, a.inputs.routeTableId as string]));
  const natOf = new Map(
    ofType(regs, "aws:ec2/route:Route")
      .filter((r) => r.inputs.destinationCidrBlock === "0.0.0.0/0" && r.inputs.natGatewayId)
      .map((r) => [r.inputs.routeTableId as string, r.inputs.natGatewayId as string]),
  );
  // A NAT gateway names its address by the EIP's allocation id, which is the EIP resource's id.
  const eipOf = new Map(ofType(regs, "aws:ec2/eip:Eip").flatMap((e) => [[e.id, e.state.publicIp as string], [e.state.allocationId as string, e.state.publicIp as string]]));
  const publicOf = (cidr: string): string => {
    const subnet = [...subnets.values()].find((s) => cidrContains(s, cidr));
    const nat = byId.get(natOf.get(tableOf.get(subnet!)!)!);
    return eipOf.get(nat!.inputs.allocationId)!;
  };
  const natAddresses = Object.fromEntries(
    (Object.entries(privateAddresses) as Array<[NodeRole, string[]]>).map(([role, cidrs]) => [role, [...new Set(cidrs.map(publicOf))].sort()]),
  ) as Record<NodeRole, string[]>;
  const lb = ofType(regs, "aws:lb/loadBalancer:LoadBalancer");
  return {
    groups,
    ingress: rules("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"),
    egress: rules("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"),
    machines,
    privateAddresses,
    natAddresses,
    loadBalancerSubnets: lb.flatMap((l) => (l.inputs.subnets as string[]).map((id) => subnets.get(id)!)),
    vpcCidr: ofType(regs, "aws:ec2/vpc:Vpc")[0].inputs.cidrBlock,
  };
}

const INSTANCE_ROLES: Record<string, NodeRole> = { "control-plane": "controlPlane", etcd: "etcd" };

function fail(message: string): never {
  throw new Error(message);
}
