/**
 * One security group per node role, opened only between groups: no rule admits a CIDR.
 *
 * The ingress rules are the flow matrix's (components/flows.ts) flows into the node groups, for
 * the stack's etcd topology and CNI: a port is open between two groups exactly when a flow of the
 * table needs it, and test/flows.test.ts checks the rendered groups against the table both ways.
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { EtcdTopology } from "../config";
import { Cni, GroupFlow, NodeRole, groupFlows } from "./flows";
import { clusterTags } from "./tags";

export { Cni, NodeRole };
/** Where a rule admits traffic from: a node role or the API load balancer's security group. */
export type RuleSource = NodeRole | "apiLoadBalancer";

/** One ingress rule between security groups, by role. */
export interface NodeRule {
  /** The security group the rule belongs to. */
  to: NodeRole;
  /** The security group traffic is admitted from. */
  from: RuleSource;
  protocol: "tcp" | "udp" | "icmp";
  /** First port; for icmp, the ICMP type (-1: every type). */
  fromPort: number;
  /** Last port; for icmp, the ICMP code (-1: every code). */
  toPort: number;
  /** EC2 rule description: at most 255 of the characters a-zA-Z0-9. _-:/()#,@[]+=&;{}!$* */
  description: string;
}

const KEBAB: Record<RuleSource, string> = { controlPlane: "control-plane", worker: "worker", etcd: "etcd", apiLoadBalancer: "api-lb" };

/** Node roles with a security group: etcd only when it runs on its own machines. */
export function nodeRoles(topology: EtcdTopology): NodeRole[] {
  return topology === "external" ? ["controlPlane", "worker", "etcd"] : ["controlPlane", "worker"];
}

/** Resource-name key of a rule; EC2 treats two rules with the same key as duplicates. */
export function ruleKey(r: NodeRule): string {
  const ports = r.fromPort === r.toPort ? `${r.fromPort}` : `${r.fromPort}-${r.toPort}`;
  return `${KEBAB[r.to]}-from-${KEBAB[r.from]}-${r.protocol}-${ports}`;
}

/**
 * Security group rules admitting `flows`: one rule per source group, destination group, protocol
 * and run of consecutive ports (EC2 counts rules against a quota of 60 inbound a group), one per
 * ICMP type and code. A rule's description joins the distinct descriptions of its flows with "; ".
 * Rules come in the order of their first flow, ports ascending.
 */
export function rulesFromFlows(flows: GroupFlow[]): NodeRule[] {
  const groups = new Map<string, GroupFlow[]>();
  for (const f of flows) {
    const t = f.traffic;
    const key = t.protocol === "icmp" ? `${f.to} ${f.from} icmp ${t.type} ${t.code}` : `${f.to} ${f.from} ${t.protocol}`;
    groups.set(key, [...(groups.get(key) ?? []), f]);
  }
  const describe = (fs: GroupFlow[]) => [...new Set(fs.map((f) => f.rule))].join("; ");
  return [...groups.values()].flatMap((fs): NodeRule[] => {
    const { to, from, traffic: t } = fs[0];
    if (t.protocol === "icmp") return [{ to, from, protocol: "icmp", fromPort: t.type, toPort: t.code, description: describe(fs) }];
    const portOf = (f: GroupFlow) => (f.traffic.protocol === "icmp" ? -1 : f.traffic.port);
    const ports = [...new Set(fs.map(portOf))].sort((a, b) => a - b);
    const runs: Array<[number, number]> = [];
    for (const p of ports) {
      const last = runs[runs.length - 1];
      if (last && p === last[1] + 1) last[1] = p;
      else runs.push([p, p]);
    }
    return runs.map(([lo, hi]) => ({
      to, from, protocol: t.protocol, fromPort: lo, toPort: hi,
      description: describe(fs.filter((f) => portOf(f) >= lo && portOf(f) <= hi)),
    }));
  });
}

const DESCRIPTION = /^[a-zA-Z0-9. _\-:/()#,@[\]+=&;{}!$*]{0,255}$/;

/**
 * Every way `r` breaks EC2's rules for a rule of the node groups of `topology`; empty when valid.
 * `at` prefixes each problem.
 */
function ruleProblems(r: NodeRule, roles: NodeRole[], topology: EtcdTopology, at: string): string[] {
  const problems: string[] = [];
  if (!roles.includes(r.to)) problems.push(`${at}.to: ${JSON.stringify(r.to)} — no such security group with ${topology} etcd`);
  if (r.from !== "apiLoadBalancer" && !roles.includes(r.from)) problems.push(`${at}.from: ${JSON.stringify(r.from)} — no such security group with ${topology} etcd`);
  if (r.protocol === "icmp") {
    const icmp = (v: number) => Number.isInteger(v) && v >= -1 && v <= 255;
    if (!icmp(r.fromPort) || !icmp(r.toPort)) problems.push(`${at}: icmp type ${r.fromPort} code ${r.toPort} — each must be a whole number from -1 to 255`);
  } else if (r.protocol === "tcp" || r.protocol === "udp") {
    const port = (p: number) => Number.isInteger(p) && p >= 0 && p <= 65535;
    if (!port(r.fromPort) || !port(r.toPort) || r.fromPort > r.toPort)
      problems.push(`${at}: ports ${r.fromPort}-${r.toPort} — must be whole numbers from 0 to 65535, fromPort not above toPort`);
  } else problems.push(`${at}.protocol: ${JSON.stringify(r.protocol)} — must be tcp, udp or icmp`);
  if (!DESCRIPTION.test(r.description))
    problems.push(`${at}.description: ${JSON.stringify(r.description)} — EC2 allows at most 255 of a-zA-Z0-9. _-:/()#,@[]+=&;{}!$*`);
  return problems;
}

/**
 * Every ingress rule of the node security groups: the flow matrix's rules for `topology` and
 * `cni`, then `extraRules`.
 * @throws Error listing every extra rule that names a missing group, has bad ports or description,
 *   or duplicates another rule (EC2 rejects duplicates).
 */
export function nodeRules(topology: EtcdTopology, cni: Cni, extraRules: NodeRule[] = []): NodeRule[] {
  if (cni !== "cilium" && cni !== "calico" && cni !== "none") throw new Error(`NodeSecurityGroups: cni: ${JSON.stringify(cni)} — must be cilium, calico or none`);
  const roles = nodeRoles(topology);
  const rules = rulesFromFlows(groupFlows(topology, cni));
  const table = rules.flatMap((r) => ruleProblems(r, roles, topology, `flow rule ${ruleKey(r)}`));
  if (table.length > 0) throw new Error(`NodeSecurityGroups: the flow table (components/flows.ts) is wrong: ${table.join("; ")}`);
  const seen = new Set(rules.map(ruleKey));
  const problems: string[] = [];
  extraRules.forEach((r, i) => {
    const at = `extraRules[${i}]`;
    problems.push(...ruleProblems(r, roles, topology, at));
    const key = ruleKey(r);
    if (seen.has(key)) problems.push(`${at}: duplicates rule ${key}; EC2 rejects duplicate rules`);
    seen.add(key);
  });
  if (problems.length > 0) throw new Error(`NodeSecurityGroups: ${problems.join("; ")}`);
  return [...rules, ...extraRules];
}

export interface NodeSecurityGroupsArgs {
  /** Cluster name, for tags and Name tags. Required. */
  clusterName: string;
  /** VPC of the security groups. Required. */
  vpcId: pulumi.Input<string>;
  /** The API load balancer's security group, admitted to 6443 on control plane nodes. Required. */
  apiLbSecurityGroupId: pulumi.Input<string>;
  /** `external` adds an etcd group and moves the etcd rules to it. Required. */
  etcdTopology: EtcdTopology;
  /** The pod network add-on, as config addons.cni, whose flows between nodes the groups admit. Required. */
  cni: Cni;
  /** Rules added to the flow matrix's, such as a CNI's ports with `cni: none`. Default none. */
  extraRules?: NodeRule[];
  /** Extra tags on every resource. Required (may be empty). */
  tags: Record<string, string>;
}

export class NodeSecurityGroups extends pulumi.ComponentResource {
  /** Security group of control plane nodes. */
  public readonly controlPlaneSecurityGroupId: pulumi.Output<string>;
  /** Security group of worker nodes. */
  public readonly workerSecurityGroupId: pulumi.Output<string>;
  /** Security group of external etcd nodes; undefined with stacked etcd. */
  public readonly etcdSecurityGroupId?: pulumi.Output<string>;

  constructor(name: string, args: NodeSecurityGroupsArgs, opts?: pulumi.ComponentResourceOptions) {
    if (args.etcdTopology !== "stacked" && args.etcdTopology !== "external")
      throw new Error(`NodeSecurityGroups: etcdTopology: ${JSON.stringify(args.etcdTopology)} — must be stacked or external`);
    const rules = nodeRules(args.etcdTopology, args.cni, args.extraRules);
    super("kubeadm-ha:index:NodeSecurityGroups", name, {}, opts);
    const cluster = args.clusterName;

    const groups = {} as Record<NodeRole, aws.ec2.SecurityGroup>;
    for (const role of nodeRoles(args.etcdTopology)) {
      const label = KEBAB[role];
      groups[role] = new aws.ec2.SecurityGroup(
        `${name}-${label}`,
        { vpcId: args.vpcId, description: `${label} nodes of ${cluster}`, tags: clusterTags(cluster, args.tags, `${cluster}-${label}`) },
        { parent: this },
      );
      // Pulumi's SecurityGroup drops AWS's default allow-all egress; nodes need it for package
      // mirrors, AWS APIs and an internet-facing API load balancer, all through NAT.
      new aws.vpc.SecurityGroupEgressRule(
        `${name}-${label}-egress-all`,
        {
          securityGroupId: groups[role].id,
          ipProtocol: "-1",
          cidrIpv4: "0.0.0.0/0",
          description: "All outbound, through NAT",
          tags: clusterTags(cluster, args.tags, `${cluster}-${label}-egress-all`),
        },
        { parent: this },
      );
    }
    const source = (from: RuleSource): pulumi.Input<string> => (from === "apiLoadBalancer" ? args.apiLbSecurityGroupId : groups[from].id);
    for (const r of rules) {
      const key = ruleKey(r);
      new aws.vpc.SecurityGroupIngressRule(
        `${name}-${key}`,
        {
          securityGroupId: groups[r.to].id,
          referencedSecurityGroupId: source(r.from),
          ipProtocol: r.protocol,
          fromPort: r.fromPort,
          toPort: r.toPort,
          description: r.description,
          tags: clusterTags(cluster, args.tags, `${cluster}-${key}`),
        },
        { parent: this },
      );
    }

    this.controlPlaneSecurityGroupId = groups.controlPlane.id;
    this.workerSecurityGroupId = groups.worker.id;
    this.etcdSecurityGroupId = groups.etcd?.id;
    this.registerOutputs({
      controlPlaneSecurityGroupId: this.controlPlaneSecurityGroupId,
      workerSecurityGroupId: this.workerSecurityGroupId,
      etcdSecurityGroupId: this.etcdSecurityGroupId,
    });
  }
}
