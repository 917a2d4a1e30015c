import { Cni, NodeRule, NodeSecurityGroups, NodeSecurityGroupsArgs, cniRules, nodeRoles, nodeRules, ruleKey } from "../components/securityGroups";
import { EtcdTopology } from "../config";
import { Registration, ofType, settle, setupMocks, valueOf } from "./mocks";

const COMMON = [
  "control-plane-from-api-lb-tcp-6443",
  "control-plane-from-control-plane-tcp-6443",
  "control-plane-from-worker-tcp-6443",
  "control-plane-from-control-plane-tcp-10250",
  "worker-from-control-plane-tcp-10250",
  "control-plane-from-worker-tcp-10250",
  "worker-from-worker-tcp-10250",
];

// One row a topology: the groups, the exact rule keys, and each rule's protocol, ports and description.
const TOPOLOGIES: Array<[EtcdTopology, string[], Record<string, [string, number, number, string]>]> = [
  [
    "stacked",
    ["controlPlane", "worker"],
    {
      "control-plane-from-api-lb-tcp-6443": ["tcp", 6443, 6443, "kube-apiserver from the API load balancer: clients and health checks"],
      "control-plane-from-control-plane-tcp-6443": ["tcp", 6443, 6443, "kube-apiserver from control plane nodes via the kubernetes Service"],
      "control-plane-from-worker-tcp-6443": ["tcp", 6443, 6443, "kube-apiserver from workers via the kubernetes Service"],
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
      "control-plane-from-control-plane-tcp-6443": ["tcp", 6443, 6443, "kube-apiserver from control plane nodes via the kubernetes Service"],
      "control-plane-from-worker-tcp-6443": ["tcp", 6443, 6443, "kube-apiserver from workers via the kubernetes Service"],
      "control-plane-from-control-plane-tcp-10250": ["tcp", 10250, 10250, "kubelet API from kube-apiserver: logs, exec, port-forward"],
      "worker-from-control-plane-tcp-10250": ["tcp", 10250, 10250, "kubelet API from kube-apiserver: logs, exec, port-forward"],
      "control-plane-from-worker-tcp-10250": ["tcp", 10250, 10250, "kubelet API from pods on workers: metrics-server, monitoring"],
      "worker-from-worker-tcp-10250": ["tcp", 10250, 10250, "kubelet API from pods on workers: metrics-server, monitoring"],
      "etcd-from-control-plane-tcp-2379": ["tcp", 2379, 2379, "etcd client from kube-apiserver and kubeadm"],
      "etcd-from-etcd-tcp-2380": ["tcp", 2380, 2380, "etcd peer between members"],
    },
  ],
];

const covers = (r: NodeRule, port: number) => port >= r.fromPort && port <= r.toPort;

describe("nodeRules", () => {
  describe.each(TOPOLOGIES)("%s etcd", (topology, roles, expected) => {
    const rules = nodeRules(topology);

    it("has exactly the expected groups and rules", () => {
      expect(nodeRoles(topology)).toEqual(roles);
      expect(Object.fromEntries(rules.map((r) => [ruleKey(r), [r.protocol, r.fromPort, r.toPort, r.description]]))).toEqual(expected);
      expect(rules).toHaveLength(Object.keys(expected).length);
    });

    it("keeps the common rules unchanged", () => {
      expect(rules.map(ruleKey).slice(0, COMMON.length)).toEqual(COMMON);
    });

    it("never admits the NLB anywhere but 6443 on control plane nodes", () => {
      expect(rules.filter((r) => r.from === "apiLoadBalancer").map(ruleKey)).toEqual(["control-plane-from-api-lb-tcp-6443"]);
    });

    it("opens nothing to workers but the kubelet, and no NodePorts", () => {
      expect(rules.filter((r) => r.to === "worker").map(ruleKey)).toEqual(["worker-from-control-plane-tcp-10250", "worker-from-worker-tcp-10250"]);
      expect(rules.some((r) => covers(r, 30000) || covers(r, 32767))).toBe(false);
    });

    it("has no rule for the controller manager or scheduler (they bind to localhost)", () => {
      expect(rules.some((r) => covers(r, 10257) || covers(r, 10259))).toBe(false);
    });

    it("lets etcd clients in only from control plane nodes", () => {
      expect(rules.filter((r) => covers(r, 2379)).map((r) => r.from)).toEqual(["controlPlane"]);
    });

    it("has descriptions EC2 accepts", () => {
      for (const r of rules) expect(r.description).toMatch(/^[a-zA-Z0-9. _\-:/()#,@[\]+=&;{}!$*]{1,255}$/);
    });
  });

  it("external etcd: no etcd port on the control plane group", () => {
    const cp = nodeRules("external").filter((r) => r.to === "controlPlane");
    expect(cp.some((r) => covers(r, 2379) || covers(r, 2380))).toBe(false);
  });

  it("external etcd: peers only from the etcd group", () => {
    expect(nodeRules("external").filter((r) => covers(r, 2380)).map((r) => [r.to, r.from])).toEqual([["etcd", "etcd"]]);
  });

  it("appends valid extra rules after the base ones", () => {
    const vxlan: NodeRule = { to: "worker", from: "worker", protocol: "udp", fromPort: 4789, toPort: 4789, description: "VXLAN between workers" };
    const rules = nodeRules("stacked", [vxlan]);
    expect(rules).toHaveLength(9);
    expect(rules[8]).toEqual(vxlan);
    expect(ruleKey(vxlan)).toBe("worker-from-worker-udp-4789");
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
      [{ to: "worker", from: "worker", protocol: "icmp" as any, fromPort: 0, toPort: 0, description: "x" }],
      'NodeSecurityGroups: extraRules[0].protocol: "icmp" — must be tcp or udp',
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
      [{ to: "etcd", from: "etcd", protocol: "tcp", fromPort: 2380, toPort: 2380, description: "again" }],
      "NodeSecurityGroups: extraRules[0]: duplicates rule etcd-from-etcd-tcp-2380; EC2 rejects duplicate rules",
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
    expect(() => nodeRules(topology, extra)).toThrow(new Error(message));
  });
});

describe("NodeSecurityGroups component", () => {
  const args = (etcdTopology: EtcdTopology, over: Partial<NodeSecurityGroupsArgs> = {}): NodeSecurityGroupsArgs => ({
    clusterName: "prod",
    vpcId: "vpc-1",
    apiLbSecurityGroupId: "sg-nlb",
    etcdTopology,
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
        nodeRules(topology).map((r) => {
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
const PAIRS = ["control-plane-from-control-plane", "control-plane-from-worker", "worker-from-control-plane", "worker-from-worker"];
const CNI_PORTS: Array<[Cni, Array<[string, number, string]>]> = [
  [
    "cilium",
    [
      ["udp", 8472, "Cilium VXLAN overlay between nodes"],
      ["tcp", 4240, "Cilium health checks (cilium-health) between nodes"],
      ["tcp", 4244, "Hubble server: Hubble Relay reads flows from every node"],
    ],
  ],
  [
    "calico",
    [
      ["udp", 4789, "Calico VXLAN overlay between nodes"],
      ["tcp", 5473, "Calico Typha: Felix on every node connects to Typha"],
    ],
  ],
  ["none", []],
];
const cniExpected = (ports: Array<[string, number, string]>) =>
  Object.fromEntries(ports.flatMap(([protocol, port, description]) => PAIRS.map((pair) => [`${pair}-${protocol}-${port}`, [protocol, port, port, description]])));

describe("cniRules", () => {
  describe.each(CNI_PORTS)("%s", (cni, ports) => {
    const rules = cniRules(cni);

    it("exactly its ports, each between every pair of Kubernetes node groups", () => {
      expect(rules).toHaveLength(ports.length * 4);
      expect(Object.fromEntries(rules.map((r) => [ruleKey(r), [r.protocol, r.fromPort, r.toPort, r.description]]))).toEqual(cniExpected(ports));
    });

    it("never involves the etcd group or the load balancer", () => {
      expect(rules.filter((r) => r.to === "etcd" || r.from === "etcd" || r.from === "apiLoadBalancer")).toEqual([]);
    });

    it.each<EtcdTopology>(["stacked", "external"])("is accepted by nodeRules with %s etcd, after the base rules", (topology) => {
      const all = nodeRules(topology, rules);
      expect(all.slice(0, nodeRules(topology).length)).toEqual(nodeRules(topology));
      expect(all.slice(nodeRules(topology).length)).toEqual(rules);
    });
  });

  const keys = (rs: NodeRule[]) => new Set(rs.map(ruleKey));
  it.each<[Cni, Cni]>([
    ["cilium", "calico"],
    ["calico", "cilium"],
    ["cilium", "none"],
    ["none", "calico"],
  ])("changing cni from %s to %s changes exactly those CNI rules", (from, to) => {
    for (const topology of ["stacked", "external"] as EtcdTopology[]) {
      const before = keys(nodeRules(topology, cniRules(from)));
      const after = keys(nodeRules(topology, cniRules(to)));
      expect([...before].filter((k) => !after.has(k)).sort()).toEqual(cniRules(from).map(ruleKey).sort());
      expect([...after].filter((k) => !before.has(k)).sort()).toEqual(cniRules(to).map(ruleKey).sort());
      expect([...before].filter((k) => after.has(k)).sort()).toEqual(nodeRules(topology).map(ruleKey).sort());
    }
  });

  it("rejects an unknown CNI", () => {
    expect(() => cniRules("flannel" as Cni)).toThrow(new Error('cniRules: cni: "flannel" — must be cilium, calico or none'));
  });

  it("the component turns the CNI rules into ingress rules between the node groups", async () => {
    const regs = await setupMocks();
    new NodeSecurityGroups("sg", { clusterName: "prod", vpcId: "vpc-1", apiLbSecurityGroupId: "sg-nlb", etcdTopology: "stacked", extraRules: cniRules("calico"), tags: {} });
    await settle();
    const ingress = ofType(regs, "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule");
    expect(ingress).toHaveLength(nodeRules("stacked").length + 8);
    const typha = ingress.filter((r) => r.inputs.fromPort === 5473).map((r) => [r.name, r.inputs.securityGroupId, r.inputs.referencedSecurityGroupId, r.inputs.ipProtocol]);
    expect(typha.sort((x, y) => x[0].localeCompare(y[0]))).toEqual([
      ["sg-control-plane-from-control-plane-tcp-5473", "sg-control-plane-id", "sg-control-plane-id", "tcp"],
      ["sg-control-plane-from-worker-tcp-5473", "sg-control-plane-id", "sg-worker-id", "tcp"],
      ["sg-worker-from-control-plane-tcp-5473", "sg-worker-id", "sg-control-plane-id", "tcp"],
      ["sg-worker-from-worker-tcp-5473", "sg-worker-id", "sg-worker-id", "tcp"],
    ]);
  });
});
