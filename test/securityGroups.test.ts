import { GroupFlow } from "../components/flows";
import { Cni, NodeRule, NodeSecurityGroups, NodeSecurityGroupsArgs, nodeRoles, nodeRules, ruleKey, rulesFromFlows } from "../components/securityGroups";
import { EtcdTopology } from "../config";
import { Registration, ofType, settle, setupMocks, valueOf } from "./mocks";

const SERVICE = "kube-apiserver via the kubernetes Service: pods and host-network agents";

// One row a topology (with addons.cni none): the groups, the exact rule keys, and each rule's protocol, ports and description.
const TOPOLOGIES: Array<[EtcdTopology, string[], Record<string, [string, number, number, string]>]> = [
  [
    "stacked",
    ["controlPlane", "worker"],
    {
      "control-plane-from-api-lb-tcp-6443": ["tcp", 6443, 6443, "kube-apiserver from the API load balancer: clients and health checks"],
      "control-plane-from-control-plane-tcp-6443": ["tcp", 6443, 6443, SERVICE],
      "control-plane-from-worker-tcp-6443": ["tcp", 6443, 6443, SERVICE],
      "control-plane-from-control-plane-tcp-10250": ["tcp", 10250, 10250, "kubelet API from kube-apiserver: logs, exec, port-forward"],
      "worker-from-control-plane-tcp-10250": ["tcp", 10250, 10250, "kubelet API from kube-apiserver: logs, exec, port-forward"],
      "control-plane-from-worker-tcp-10250": ["tcp", 10250, 10250, "kubelet API from pods on workers: metrics-server, monitoring"],
      "worker-from-worker-tcp-10250": ["tcp", 10250, 10250, "kubelet API from pods on workers: metrics-server, monitoring"],
      "control-plane-from-control-plane-tcp-2379-2380": ["tcp", 2379, 2380, "etcd client and peer between stacked members"],
    },
  ],
  [
    "external",
    ["controlPlane", "worker", "etcd"],
    {
      "control-plane-from-api-lb-tcp-6443": ["tcp", 6443, 6443, "kube-apiserver from the API load balancer: clients and health checks"],
      "control-plane-from-control-plane-tcp-6443": ["tcp", 6443, 6443, SERVICE],
      "control-plane-from-worker-tcp-6443": ["tcp", 6443, 6443, SERVICE],
      "control-plane-from-control-plane-tcp-10250": ["tcp", 10250, 10250, "kubelet API from kube-apiserver: logs, exec, port-forward"],
      "worker-from-control-plane-tcp-10250": ["tcp", 10250, 10250, "kubelet API from kube-apiserver: logs, exec, port-forward"],
      "control-plane-from-worker-tcp-10250": ["tcp", 10250, 10250, "kubelet API from pods on workers: metrics-server, monitoring"],
      "worker-from-worker-tcp-10250": ["tcp", 10250, 10250, "kubelet API from pods on workers: metrics-server, monitoring"],
      "etcd-from-control-plane-tcp-2379": ["tcp", 2379, 2379, "etcd client from kube-apiserver and kubeadm"],
      // 2379 too: a replacement member's etcd-rejoin.sh asks the other members (issue 12).
      "etcd-from-etcd-tcp-2379-2380": ["tcp", 2379, 2380, "etcd peer between members; etcd client between members for etcd-rejoin.sh"],
    },
  ],
];

const covers = (r: NodeRule, port: number) => port >= r.fromPort && port <= r.toPort;

describe("nodeRules", () => {
  describe.each(TOPOLOGIES)("%s etcd", (topology, roles, expected) => {
    const rules = nodeRules(topology, "none");

    it("has exactly the expected groups and rules", () => {
      expect(nodeRoles(topology)).toEqual(roles);
      expect(Object.fromEntries(rules.map((r) => [ruleKey(r), [r.protocol, r.fromPort, r.toPort, r.description]]))).toEqual(expected);
      expect(rules).toHaveLength(Object.keys(expected).length);
    });

    it("never admits the NLB anywhere but 6443 on control plane nodes", () => {
      expect(rules.filter((r) => r.from === "apiLoadBalancer").map(ruleKey)).toEqual(["control-plane-from-api-lb-tcp-6443"]);
    });

    it("opens nothing to workers but the kubelet, and no NodePorts", () => {
      expect(rules.filter((r) => r.to === "worker").map(ruleKey)).toEqual(["worker-from-control-plane-tcp-10250", "worker-from-worker-tcp-10250"]);
      expect(rules.some((r) => covers(r, 30000) || covers(r, 32767))).toBe(false);
    });

    it("has no rule for the controller manager or scheduler (they bind to localhost) or etcd's metrics", () => {
      expect(rules.some((r) => covers(r, 10257) || covers(r, 10259) || covers(r, 2381))).toBe(false);
    });

    it("never lets a worker reach etcd", () => {
      expect(rules.filter((r) => covers(r, 2379) || covers(r, 2380)).map((r) => r.from)).not.toContain("worker");
    });

    it("has descriptions EC2 accepts", () => {
      for (const r of rules) expect(r.description).toMatch(/^[a-zA-Z0-9. _\-:/()#,@[\]+=&;{}!$*]{1,255}$/);
    });
  });

  it("stacked etcd: etcd clients and peers only between masters", () => {
    expect(nodeRules("stacked", "none").filter((r) => covers(r, 2379) || covers(r, 2380)).map((r) => [r.to, r.from])).toEqual([["controlPlane", "controlPlane"]]);
  });

  it("external etcd: no etcd port on the control plane group", () => {
    const cp = nodeRules("external", "none").filter((r) => r.to === "controlPlane");
    expect(cp.some((r) => covers(r, 2379) || covers(r, 2380))).toBe(false);
  });

  it("external etcd: peers only from the etcd group", () => {
    expect(nodeRules("external", "none").filter((r) => covers(r, 2380)).map((r) => [r.to, r.from])).toEqual([["etcd", "etcd"]]);
  });

  // Issue 12: a replacement member's etcd-rejoin.sh probes the other members' client URLs. With
  // 2379 open to the masters only, every probe timed out on AWS and the member concluded the
  // cluster was being created.
  it("external etcd: the client port is open to the masters and to the other members", () => {
    expect(nodeRules("external", "none").filter((r) => covers(r, 2379)).map((r) => [r.to, r.from])).toEqual([
      ["etcd", "controlPlane"],
      ["etcd", "etcd"],
    ]);
  });

  it("appends valid extra rules after the flow matrix's", () => {
    const vxlan: NodeRule = { to: "worker", from: "worker", protocol: "udp", fromPort: 4789, toPort: 4789, description: "VXLAN between workers" };
    const rules = nodeRules("stacked", "none", [vxlan]);
    expect(rules).toHaveLength(9);
    expect(rules[8]).toEqual(vxlan);
    expect(ruleKey(vxlan)).toBe("worker-from-worker-udp-4789");
  });

  it("accepts an ICMP extra rule: type and code in place of ports", () => {
    const unreachable: NodeRule = { to: "worker", from: "controlPlane", protocol: "icmp", fromPort: 3, toPort: 4, description: "path MTU discovery" };
    expect(nodeRules("stacked", "none", [unreachable])[8]).toEqual(unreachable);
    expect(ruleKey(unreachable)).toBe("worker-from-control-plane-icmp-3-4");
  });

  it("rejects an unknown CNI", () => {
    expect(() => nodeRules("stacked", "flannel" as Cni)).toThrow(new Error('NodeSecurityGroups: cni: "flannel" — must be cilium, calico or none'));
  });

  const extraErrors: Array<[string, EtcdTopology, NodeRule[], string]> = [
    [
      "an etcd group with stacked etcd",
      "stacked",
      [{ to: "etcd", from: "etcd", protocol: "tcp", fromPort: 2381, toPort: 2381, description: "metrics" }],
      'NodeSecurityGroups: extraRules[0].to: "etcd" — no such security group with stacked etcd; extraRules[0].from: "etcd" — no such security group with stacked etcd',
    ],
    [
      "bad ports",
      "stacked",
      [{ to: "worker", from: "worker", protocol: "tcp", fromPort: 9000, toPort: 8000, description: "x" }],
      "NodeSecurityGroups: extraRules[0]: ports 9000-8000 — must be whole numbers from 0 to 65535, fromPort not above toPort",
    ],
    [
      "a port above 65535",
      "stacked",
      [{ to: "worker", from: "worker", protocol: "tcp", fromPort: 1, toPort: 70000, description: "x" }],
      "NodeSecurityGroups: extraRules[0]: ports 1-70000 — must be whole numbers from 0 to 65535, fromPort not above toPort",
    ],
    [
      "an unknown protocol",
      "stacked",
      [{ to: "worker", from: "worker", protocol: "sctp" as any, fromPort: 0, toPort: 0, description: "x" }],
      'NodeSecurityGroups: extraRules[0].protocol: "sctp" — must be tcp, udp or icmp',
    ],
    [
      "an ICMP type out of range",
      "stacked",
      [{ to: "worker", from: "worker", protocol: "icmp", fromPort: 256, toPort: 0, description: "x" }],
      "NodeSecurityGroups: extraRules[0]: icmp type 256 code 0 — each must be a whole number from -1 to 255",
    ],
    [
      "a description EC2 rejects",
      "stacked",
      [{ to: "worker", from: "worker", protocol: "udp", fromPort: 8472, toPort: 8472, description: "flannel's VXLAN" }],
      `NodeSecurityGroups: extraRules[0].description: "flannel's VXLAN" — EC2 allows at most 255 of a-zA-Z0-9. _-:/()#,@[]+=&;{}!$*`,
    ],
    [
      "a duplicate of a base rule",
      "external",
      [{ to: "etcd", from: "etcd", protocol: "tcp", fromPort: 2379, toPort: 2380, description: "again" }],
      "NodeSecurityGroups: extraRules[0]: duplicates rule etcd-from-etcd-tcp-2379-2380; EC2 rejects duplicate rules",
    ],
    [
      "two identical extra rules",
      "stacked",
      [
        { to: "worker", from: "controlPlane", protocol: "udp", fromPort: 4789, toPort: 4789, description: "a" },
        { to: "worker", from: "controlPlane", protocol: "udp", fromPort: 4789, toPort: 4789, description: "b" },
      ],
      "NodeSecurityGroups: extraRules[1]: duplicates rule worker-from-control-plane-udp-4789; EC2 rejects duplicate rules",
    ],
  ];
  it.each(extraErrors)("rejects an extra rule with %s", (_, topology, extra, message) => {
    expect(() => nodeRules(topology, "none", extra)).toThrow(new Error(message));
  });
});

describe("NodeSecurityGroups component", () => {
  const args = (etcdTopology: EtcdTopology, over: Partial<NodeSecurityGroupsArgs> = {}): NodeSecurityGroupsArgs => ({
    clusterName: "prod",
    vpcId: "vpc-1",
    apiLbSecurityGroupId: "sg-nlb",
    etcdTopology,
    cni: "none",
    tags: { team: "platform" },
    ...over,
  });
  const tags = (name: string) => ({ team: "platform", "kubernetes.io/cluster/prod": "owned", "kubeadm-ha/cluster": "prod", Name: name });
  async function build(a: NodeSecurityGroupsArgs): Promise<{ regs: Registration[]; sgs: NodeSecurityGroups }> {
    const regs = await setupMocks();
    const sgs = new NodeSecurityGroups("sg", a);
    await settle();
    return { regs, sgs };
  }
  const SG_ID: Record<string, string> = { controlPlane: "sg-control-plane-id", worker: "sg-worker-id", etcd: "sg-etcd-id", apiLoadBalancer: "sg-nlb" };

  describe.each(TOPOLOGIES)("%s etcd", (topology, roles, expected) => {
    it("one group a role, each with all egress", async () => {
      const { regs } = await build(args(topology));
      const labels = roles.map((r) => ({ controlPlane: "control-plane", worker: "worker", etcd: "etcd" })[r]);
      const groups = ofType(regs, "aws:ec2/securityGroup:SecurityGroup").sort((a, b) => a.name.localeCompare(b.name));
      expect(groups.map((g) => [g.name, g.inputs])).toEqual(
        [...labels].sort().map((l) => [`sg-${l}`, { vpcId: "vpc-1", description: `${l} nodes of prod`, tags: tags(`prod-${l}`) }]),
      );
      const egress = ofType(regs, "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule").sort((a, b) => a.name.localeCompare(b.name));
      expect(egress.map((e) => [e.name, e.inputs])).toEqual(
        [...labels].sort().map((l) => [
          `sg-${l}-egress-all`,
          { securityGroupId: `sg-${l}-id`, ipProtocol: "-1", cidrIpv4: "0.0.0.0/0", description: "All outbound, through NAT", tags: tags(`prod-${l}-egress-all`) },
        ]),
      );
    });

    it("one ingress resource a rule, referencing groups, never a CIDR", async () => {
      const { regs } = await build(args(topology));
      const ingress = ofType(regs, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule");
      expect(ingress).toHaveLength(Object.keys(expected).length);
      const got = Object.fromEntries(ingress.map((r) => [r.name, r.inputs]));
      const want = Object.fromEntries(
        nodeRules(topology, "none").map((r) => {
          const [protocol, fromPort, toPort, description] = expected[ruleKey(r)];
          return [
            `sg-${ruleKey(r)}`,
            {
              securityGroupId: SG_ID[r.to],
              referencedSecurityGroupId: SG_ID[r.from],
              ipProtocol: protocol,
              fromPort,
              toPort,
              description,
              tags: tags(`prod-${ruleKey(r)}`),
            },
          ];
        }),
      );
      expect(got).toEqual(want);
      expect(ingress.some((r) => "cidrIpv4" in r.inputs)).toBe(false);
    });

    it("exact resource counts", async () => {
      const { regs } = await build(args(topology));
      expect(regs).toHaveLength(1 + 2 * roles.length + Object.keys(expected).length);
    });
  });

  it("outputs: the group ids, etcd only when external", async () => {
    const stacked = await build(args("stacked"));
    expect(await valueOf(stacked.sgs.controlPlaneSecurityGroupId)).toBe("sg-control-plane-id");
    expect(await valueOf(stacked.sgs.workerSecurityGroupId)).toBe("sg-worker-id");
    expect(stacked.sgs.etcdSecurityGroupId).toBeUndefined();
    const external = await build(args("external"));
    expect(await valueOf(external.sgs.etcdSecurityGroupId!)).toBe("sg-etcd-id");
  });

  it("extra rules become resources too", async () => {
    const { regs } = await build(
      args("stacked", { extraRules: [{ to: "worker", from: "controlPlane", protocol: "udp", fromPort: 4789, toPort: 4789, description: "VXLAN" }] }),
    );
    const r = regs.filter((x) => x.name === "sg-worker-from-control-plane-udp-4789");
    expect(r.map((x) => x.inputs)).toEqual([
      {
        securityGroupId: "sg-worker-id",
        referencedSecurityGroupId: "sg-control-plane-id",
        ipProtocol: "udp",
        fromPort: 4789,
        toPort: 4789,
        description: "VXLAN",
        tags: tags("prod-worker-from-control-plane-udp-4789"),
      },
    ]);
  });

  it("rejects bad args before registering anything", async () => {
    const regs = await setupMocks();
    expect(() => new NodeSecurityGroups("bad", args("both" as any))).toThrow(new Error('NodeSecurityGroups: etcdTopology: "both" — must be stacked or external'));
    expect(
      () => new NodeSecurityGroups("bad", args("stacked", { extraRules: [{ to: "etcd", from: "worker", protocol: "tcp", fromPort: 1, toPort: 1, description: "x" }] })),
    ).toThrow(new Error('NodeSecurityGroups: extraRules[0].to: "etcd" — no such security group with stacked etcd'));
    await settle();
    expect(regs).toEqual([]);
  });
});

// Every CNI port opened in both directions among masters and workers: four rules a port.
const PAIRS = ["control-plane-from-control-plane", "worker-from-control-plane", "control-plane-from-worker", "worker-from-worker"];
const CNI_PORTS: Array<[Cni, Array<[string, number, number, string]>]> = [
  [
    "cilium",
    [
      ["udp", 8472, 8472, "Cilium VXLAN overlay between nodes"],
      ["tcp", 4240, 4240, "Cilium health checks (cilium-health) between nodes"],
      // ICMP type 8 (echo request), code 0: cilium-health pings every node.
      ["icmp", 8, 0, "Cilium health checks: ICMP echo between nodes"],
    ],
  ],
  [
    "calico",
    [
      ["udp", 4789, 4789, "Calico VXLAN overlay between nodes"],
      ["tcp", 5473, 5473, "Calico Typha: Felix on every node connects to Typha"],
    ],
  ],
  ["none", []],
];
const cniExpected = (ports: Array<[string, number, number, string]>) =>
  Object.fromEntries(
    ports.flatMap(([protocol, from, to, description]) => PAIRS.map((pair) => [`${pair}-${protocol}-${from === to ? from : `${from}-${to}`}`, [protocol, from, to, description]])),
  );
const keys = (rs: NodeRule[]) => new Set(rs.map(ruleKey));
const cniOnly = (topology: EtcdTopology, cni: Cni) => {
  const base = keys(nodeRules(topology, "none"));
  return nodeRules(topology, cni).filter((r) => !base.has(ruleKey(r)));
};

describe("the CNI's rules", () => {
  describe.each(CNI_PORTS)("%s", (cni, ports) => {
    it.each<EtcdTopology>(["stacked", "external"])("with %s etcd: exactly its ports, each between every pair of Kubernetes node groups", (topology) => {
      const rules = cniOnly(topology, cni);
      expect(rules).toHaveLength(ports.length * 4);
      expect(Object.fromEntries(rules.map((r) => [ruleKey(r), [r.protocol, r.fromPort, r.toPort, r.description]]))).toEqual(cniExpected(ports));
      expect(rules.filter((r) => r.to === "etcd" || r.from === "etcd" || r.from === "apiLoadBalancer")).toEqual([]);
      // The rules every CNI shares are untouched.
      const own = keys(rules);
      expect(nodeRules(topology, cni).filter((r) => !own.has(ruleKey(r)))).toEqual(nodeRules(topology, "none"));
    });
  });

  it("no Hubble server port: nothing dials 4244 across nodes while Hubble Relay is off", () => {
    expect(nodeRules("stacked", "cilium").some((r) => r.protocol === "tcp" && covers(r, 4244))).toBe(false);
  });

  it.each<[Cni, Cni]>([
    ["cilium", "calico"],
    ["calico", "cilium"],
    ["cilium", "none"],
    ["none", "calico"],
  ])("changing cni from %s to %s changes exactly those CNI rules", (from, to) => {
    for (const topology of ["stacked", "external"] as EtcdTopology[]) {
      const before = keys(nodeRules(topology, from));
      const after = keys(nodeRules(topology, to));
      expect([...before].filter((k) => !after.has(k)).sort()).toEqual(cniOnly(topology, from).map(ruleKey).sort());
      expect([...after].filter((k) => !before.has(k)).sort()).toEqual(cniOnly(topology, to).map(ruleKey).sort());
    }
  });

  it("the component turns the CNI's flows into ingress rules between the node groups", async () => {
    const regs = await setupMocks();
    new NodeSecurityGroups("sg", { clusterName: "prod", vpcId: "vpc-1", apiLbSecurityGroupId: "sg-nlb", etcdTopology: "stacked", cni: "calico", tags: {} });
    await settle();
    const ingress = ofType(regs, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule");
    expect(ingress).toHaveLength(nodeRules("stacked", "none").length + 8);
    const typha = ingress.filter((r) => r.inputs.fromPort === 5473).map((r) => [r.name, r.inputs.securityGroupId, r.inputs.referencedSecurityGroupId, r.inputs.ipProtocol]);
    expect(typha.sort((x, y) => x[0].localeCompare(y[0]))).toEqual([
      ["sg-control-plane-from-control-plane-tcp-5473", "sg-control-plane-id", "sg-control-plane-id", "tcp"],
      ["sg-control-plane-from-worker-tcp-5473", "sg-control-plane-id", "sg-worker-id", "tcp"],
      ["sg-worker-from-control-plane-tcp-5473", "sg-worker-id", "sg-control-plane-id", "tcp"],
      ["sg-worker-from-worker-tcp-5473", "sg-worker-id", "sg-worker-id", "tcp"],
    ]);
  });

  it("an ICMP rule renders the type and code as EC2's from and to ports", async () => {
    const regs = await setupMocks();
    new NodeSecurityGroups("sg", { clusterName: "prod", vpcId: "vpc-1", apiLbSecurityGroupId: "sg-nlb", etcdTopology: "stacked", cni: "cilium", tags: {} });
    await settle();
    const echo = ofType(regs, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule").find((r) => r.name === "sg-worker-from-control-plane-icmp-8-0");
    expect(echo?.inputs).toMatchObject({ securityGroupId: "sg-worker-id", referencedSecurityGroupId: "sg-control-plane-id", ipProtocol: "icmp", fromPort: 8, toPort: 0 });
  });
});

describe("rulesFromFlows", () => {
  const flow = (port: number, rule: string, over: Partial<GroupFlow> = {}): GroupFlow => ({ to: "etcd", from: "etcd", traffic: { protocol: "tcp", port }, rule, ...over });

  it("merges consecutive ports of one source, destination and protocol into one rule, joining distinct descriptions", () => {
    expect(rulesFromFlows([flow(2380, "peer"), flow(2379, "client"), flow(2380, "peer")])).toEqual([
      { to: "etcd", from: "etcd", protocol: "tcp", fromPort: 2379, toPort: 2380, description: "peer; client" },
    ]);
  });

  it("keeps gaps, other sources and other protocols apart", () => {
    const rules = rulesFromFlows([flow(4240, "a"), flow(4244, "b"), flow(4240, "c", { from: "controlPlane" }), flow(4240, "d", { traffic: { protocol: "udp", port: 4240 } })]);
    expect(rules.map(ruleKey)).toEqual(["etcd-from-etcd-tcp-4240", "etcd-from-etcd-tcp-4244", "etcd-from-control-plane-tcp-4240", "etcd-from-etcd-udp-4240"]);
    expect(rules.map((r) => r.description)).toEqual(["a", "b", "c", "d"]);
  });

  it("one rule per ICMP type and code", () => {
    const echo: GroupFlow = { to: "worker", from: "worker", traffic: { protocol: "icmp", type: 8, code: 0 }, rule: "echo" };
    expect(rulesFromFlows([echo, echo])).toEqual([{ to: "worker", from: "worker", protocol: "icmp", fromPort: 8, toPort: 0, description: "echo" }]);
  });
});
