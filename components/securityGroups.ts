/**
 * One security group per node role, opened only between groups: no rule admits a CIDR.
 *
 * kube-controller-manager (10257) and kube-scheduler (10259) bind to 127.0.0.1 under kubeadm, so
 * they get no rule. NodePorts are not opened. The CNI's ports come from `cniRules`, passed as
 * `extraRules`.
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { AddonsConfig, EtcdTopology } from "../config";
import { API_SERVER_PORT } from "./apiLoadBalancer";
import { clusterTags } from "./tags";

/** A node role with its own security group. */
export type NodeRole = "controlPlane" | "worker" | "etcd";
/** Where a rule admits traffic from: a node role or the API load balancer's security group. */
export type RuleSource = NodeRole | "apiLoadBalancer";

/** One ingress rule between security groups, by role. */
export interface NodeRule {
  /** The security group the rule belongs to. */
  to: NodeRole;
  /** The security group traffic is admitted from. */
  from: RuleSource;
  protocol: "tcp" | "udp";
  fromPort: number;
  toPort: number;
  /** EC2 rule description: at most 255 of the characters a-zA-Z0-9. _-:/()#,@[]+=&;{}!$* */
  description: string;
}

const KEBAB: Record<RuleSource, string> = { controlPlane: "control-plane", worker: "worker", etcd: "etcd", apiLoadBalancer: "api-lb" };
const ETCD_CLIENT = 2379;
const ETCD_PEER = 2380;
const KUBELET = 10250;

/** Node roles with a security group: etcd only when it runs on its own machines. */
export function nodeRoles(topology: EtcdTopology): NodeRole[] {
  return topology === "external" ? ["controlPlane", "worker", "etcd"] : ["controlPlane", "worker"];
}

/** Resource-name key of a rule; EC2 treats two rules with the same key as duplicates. */
export function ruleKey(r: NodeRule): string {
  const ports = r.fromPort === r.toPort ? `${r.fromPort}` : `${r.fromPort}-${r.toPort}`;
  return `${KEBAB[r.to]}-from-${KEBAB[r.from]}-${r.protocol}-${ports}`;
}

const tcp = (to: NodeRole, from: RuleSource, fromPort: number, toPort: number, description: string): NodeRule => ({ to, from, protocol: "tcp", fromPort, toPort, description });

/** The rules every cluster of `topology` needs. */
function baseRules(topology: EtcdTopology): NodeRule[] {
  const rules = [
    tcp("controlPlane", "apiLoadBalancer", API_SERVER_PORT, API_SERVER_PORT, "kube-apiserver from the API load balancer: clients and health checks"),
    // The endpoints of the default/kubernetes Service are the masters' own addresses, so in-cluster
    // clients reach 6443 directly rather than through the NLB.
    tcp("controlPlane", "controlPlane", API_SERVER_PORT, API_SERVER_PORT, "kube-apiserver from control plane nodes via the kubernetes Service"),
    tcp("controlPlane", "worker", API_SERVER_PORT, API_SERVER_PORT, "kube-apiserver from workers via the kubernetes Service"),
    tcp("controlPlane", "controlPlane", KUBELET, KUBELET, "kubelet API from kube-apiserver: logs, exec, port-forward"),
    tcp("worker", "controlPlane", KUBELET, KUBELET, "kubelet API from kube-apiserver: logs, exec, port-forward"),
    // metrics-server and Prometheus usually run on workers and scrape every kubelet; pod traffic to
    // a node address outside the overlay (Calico's natOutgoing, host-network pods) carries the worker's address.
    tcp("controlPlane", "worker", KUBELET, KUBELET, "kubelet API from pods on workers: metrics-server, monitoring"),
    tcp("worker", "worker", KUBELET, KUBELET, "kubelet API from pods on workers: metrics-server, monitoring"),
  ];
  if (topology === "stacked")
    // A joining master's kubeadm adds its etcd member through another member's client port, so 2379
    // is needed between masters, not only on loopback.
    rules.push(tcp("controlPlane", "controlPlane", ETCD_CLIENT, ETCD_PEER, "etcd client and peer between stacked members"));
  else
    rules.push(
      tcp("etcd", "controlPlane", ETCD_CLIENT, ETCD_CLIENT, "etcd client from kube-apiserver and kubeadm"),
      tcp("etcd", "etcd", ETCD_PEER, ETCD_PEER, "etcd peer between members"),
    );
  return rules;
}

/** A pod network add-on, as config addons.cni. */
export type Cni = AddonsConfig["cni"];

/** Kubernetes nodes: the groups pod traffic flows between (external etcd members run no pods). */
const KUBERNETES_NODES: NodeRole[] = ["controlPlane", "worker"];

/** One port open between every pair of Kubernetes node groups, each group to itself included. */
function amongNodes(protocol: "tcp" | "udp", port: number, description: string): NodeRule[] {
  return KUBERNETES_NODES.flatMap((to) => KUBERNETES_NODES.map((from) => ({ to, from, protocol, fromPort: port, toPort: port, description })));
}

/**
 * Node-to-node rules the pod network needs, in both directions among masters and workers, for
 * the CNI as the add-ons configure it; pass them to `nodeRules` as `extraRules`.
 * - cilium, VXLAN tunnelling: 8472/udp overlay, 4240/tcp cilium-health, 4244/tcp Hubble server
 *   (https://docs.cilium.io/en/stable/operations/system_requirements/#firewall-rules). Its
 *   health checks also ping (ICMP echo), which `NodeRule` cannot express; only the ICMP column
 *   of `cilium-health status` is affected.
 * - calico, VXLAN with BGP off and Typha on: 4789/udp overlay, 5473/tcp Typha; no 179/tcp BGP
 *   and no IP-in-IP (https://docs.tigera.io/calico/latest/getting-started/kubernetes/requirements#network-requirements).
 * - none: nothing; whoever brings the CNI adds its rules.
 */
export function cniRules(cni: Cni): NodeRule[] {
  switch (cni) {
    case "cilium":
      return [
        ...amongNodes("udp", 8472, "Cilium VXLAN overlay between nodes"),
        ...amongNodes("tcp", 4240, "Cilium health checks (cilium-health) between nodes"),
        ...amongNodes("tcp", 4244, "Hubble server: Hubble Relay reads flows from every node"),
      ];
    case "calico":
      return [
        ...amongNodes("udp", 4789, "Calico VXLAN overlay between nodes"),
        ...amongNodes("tcp", 5473, "Calico Typha: Felix on every node connects to Typha"),
      ];
    case "none":
      return [];
    default:
      throw new Error(`cniRules: cni: ${JSON.stringify(cni)} — must be cilium, calico or none`);
  }
}

const DESCRIPTION = /^[a-zA-Z0-9. _\-:/()#,@[\]+=&;{}!$*]{0,255}$/;

/**
 * Every ingress rule of the node security groups: the base rules of `topology`, then `extraRules`.
 * @throws Error listing every extra rule that names a missing group, has bad ports or description,
 *   or duplicates another rule (EC2 rejects duplicates).
 */
export function nodeRules(topology: EtcdTopology, extraRules: NodeRule[] = []): NodeRule[] {
  const roles = nodeRoles(topology);
  const rules = baseRules(topology);
  const seen = new Set(rules.map(ruleKey));
  const problems: string[] = [];
  extraRules.forEach((r, i) => {
    const at = `extraRules[${i}]`;
    if (!roles.includes(r.to)) problems.push(`${at}.to: ${JSON.stringify(r.to)} — no such security group with ${topology} etcd`);
    if (r.from !== "apiLoadBalancer" && !roles.includes(r.from)) problems.push(`${at}.from: ${JSON.stringify(r.from)} — no such security group with ${topology} etcd`);
    if (r.protocol !== "tcp" && r.protocol !== "udp") problems.push(`${at}.protocol: ${JSON.stringify(r.protocol)} — must be tcp or udp`);
    const port = (p: number) => Number.isInteger(p) && p >= 0 && p <= 65535;
    if (!port(r.fromPort) || !port(r.toPort) || r.fromPort > r.toPort)
      problems.push(`${at}: ports ${r.fromPort}-${r.toPort} — must be whole numbers from 0 to 65535, fromPort not above toPort`);
    if (!DESCRIPTION.test(r.description))
      problems.push(`${at}.description: ${JSON.stringify(r.description)} — EC2 allows at most 255 of a-zA-Z0-9. _-:/()#,@[]+=&;{}!$*`);
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
  /** Rules added to the base set, such as the CNI's ports. Default none. */
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
    const rules = nodeRules(args.etcdTopology, args.extraRules);
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
