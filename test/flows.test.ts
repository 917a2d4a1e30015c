/**
 * The network flow matrix (components/flows.ts) read in both directions against the security
 * groups the program renders: for the dev stack (stacked etcd, internet-facing NLB) and the prod
 * stack (external etcd, internal NLB), each with every CNI. Every connection of the table must be
 * admitted by a rendered rule at both ends (ingress of the destination's group, egress of the
 * source's), and every rendered rule must be needed by a connection of the table, every port of
 * its range included. Then etcd-rejoin.sh, as shipped, runs on a rendered etcd-holding machine
 * against a fake etcd cluster, and every member it dials must be admitted by the rendered groups.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parse } from "yaml";
import { Cluster } from "../components/cluster";
import {
  Cni,
  Connection,
  NodeRole,
  FLOWS,
  Flow,
  FlowContext,
  Party,
  Traffic,
  connections,
  describeTraffic,
  flowApplies,
  flowContext,
  groupFlows,
  isGroupFlow,
  isNodeRole,
  sourceRoles,
} from "../components/flows";
import { ClusterConfig, parseConfig } from "../config";
import { rawStackConfig } from "../scripts/failoverBudget";
import { decodeUserData, stackConfig } from "../scripts/renderLib";
import { Registration, ofType, settle, setupMocks } from "./mocks";
import { GroupRole, RenderedNetwork, RenderedRule, cidrContains, renderedNetwork, ruleAdmits } from "./renderedNetwork";
import { shipScripts } from "./shipped";

const ROOT = path.resolve(__dirname, "..");
const STACKS = ["dev", "prod"] as const;
const CNIS: Cni[] = ["cilium", "calico", "none"];
/** Security groups do not filter traffic to the instance metadata service, the Amazon DNS server or the Amazon Time Sync Service (https://docs.aws.amazon.com/vpc/latest/userguide/vpc-security-groups.html). */
const UNFILTERED: ReadonlySet<Party> = new Set(["instanceMetadata", "amazonDns", "timeSync"]);

function stackClusterConfig(stack: string, cni: Cni): ClusterConfig {
  const raw = rawStackConfig(stackConfig(fs.readFileSync(path.join(ROOT, `Pulumi.${stack}.yaml`), "utf8")));
  return parseConfig({ ...raw, addons: { ...((raw.addons as object | undefined) ?? {}), cni } });
}

interface Case {
  stack: (typeof STACKS)[number];
  cni: Cni;
  name: string;
  config: ClusterConfig;
  ctx: FlowContext;
  net: RenderedNetwork;
}
const CASES: Case[] = STACKS.flatMap((stack) =>
  CNIS.map((cni) => {
    const config = stackClusterConfig(stack, cni);
    return { stack, cni, name: `${stack}-${cni}`, config, ctx: flowContext(config), net: undefined as unknown as RenderedNetwork };
  }),
);

let regs: Registration[] = [];
beforeAll(async () => {
  regs = await setupMocks();
  // One Cluster a case, named apart; each is what index.ts builds from that stack's config.
  for (const c of CASES) new Cluster(c.name, { config: c.config });
  await settle();
  for (const c of CASES) c.net = renderedNetwork(regs, c.name);
}, 120000);

/** The other end of a rule as a connection needs it. */
type Peer = { group: GroupRole } | { cidr: string } | { internet: true };
/** A rule that a connection needs in one group. */
interface Need {
  direction: "ingress" | "egress";
  group: GroupRole;
  peer: Peer;
  traffic: Traffic;
  connection: Connection;
}

const LOAD_BALANCERS: ReadonlySet<Party> = new Set(["apiLoadBalancer", "publicApiLoadBalancer"]);
const groupsOf = (p: Party): GroupRole[] => (LOAD_BALANCERS.has(p) ? [p as GroupRole] : sourceRoles(p));
const trafficOf = (c: Connection): Traffic => (c.protocol === "icmp" ? { protocol: "icmp", type: c.type, code: c.code } : { protocol: c.protocol, port: c.port });
const show = (c: Connection) => `${c.from} -> ${c.to} ${describeTraffic(c)}`;

/** The rules connection `c` needs in the rendered groups of `k`. */
function needs(k: Case, c: Connection): Need[] {
  const out: Need[] = [];
  const traffic = trafficOf(c);
  const add = (direction: Need["direction"], group: GroupRole, peer: Peer) => out.push({ direction, group, peer, traffic, connection: c });
  if (isNodeRole(c.to) || LOAD_BALANCERS.has(c.to)) {
    const to = c.to as GroupRole;
    if (c.from === "operator") for (const cidr of k.config.apiLoadBalancer.allowedCidrs) add("ingress", to, { cidr });
    // Anything in the VPC: the load balancers' and NAT gateways' interfaces.
    else if (c.from === "vpc") add("ingress", to, { cidr: k.net.vpcCidr });
    else {
      const from = groupsOf(c.from);
      if (from.length === 0) throw new Error(`${show(c)}: nothing outside the cluster's groups but the operator and the VPC connects into them`);
      // Nodes reach the internal load balancer inside the VPC, so its group sees theirs, never a NAT address.
      for (const g of from) add("ingress", to, { group: g });
    }
  }
  for (const g of groupsOf(c.from)) {
    if (isNodeRole(c.to)) add("egress", g, { group: c.to });
    else if (LOAD_BALANCERS.has(c.to)) for (const cidr of k.net.loadBalancerSubnets[c.to as GroupRole] ?? []) add("egress", g, { cidr });
    else if (!UNFILTERED.has(c.to)) add("egress", g, { internet: true });
  }
  return out;
}

/** Whether rule `r` admits need `n`. */
function satisfies(k: Case, r: RenderedRule, n: Need): boolean {
  if (r.group !== n.group || !ruleAdmits(r, n.traffic)) return false;
  const p = n.peer;
  if ("group" in p) {
    if ("group" in r.peer) return r.peer.group === p.group;
    // A CIDR admits a group when every address of the group's machines lies inside it.
    return isNodeRole(p.group) && k.net.privateAddresses[p.group].every((a) => cidrContains((r.peer as { cidr: string }).cidr, a));
  }
  if (!("cidr" in r.peer)) return false;
  return "internet" in p ? r.peer.cidr === "0.0.0.0/0" : cidrContains(r.peer.cidr, p.cidr);
}

const allNeeds = (k: Case): Need[] => connections(k.ctx).flatMap((c) => needs(k, c));
const rulesOf = (k: Case) => [...k.net.ingress.map((r) => ["ingress", r] as const), ...k.net.egress.map((r) => ["egress", r] as const)];

/** Every port of a TCP/UDP rule's range, or the rule's one ICMP type and code. */
function trafficsOf(r: RenderedRule): Traffic[] {
  if (r.protocol === "icmp") return [{ protocol: "icmp", type: r.fromPort!, code: r.toPort! }];
  if (r.protocol !== "tcp" && r.protocol !== "udp") return [];
  const out: Traffic[] = [];
  for (let p = r.fromPort!; p <= r.toPort!; p++) out.push({ protocol: r.protocol, port: p });
  return out;
}

describe.each(CASES.map((c) => [c.name, c] as const))("stack %s", (_, k) => {
  it("every connection of the table is admitted at both ends by a rendered rule", () => {
    const missing = allNeeds(k)
      .filter((n) => !(n.direction === "ingress" ? k.net.ingress : k.net.egress).some((r) => satisfies(k, r, n)))
      .map((n) => `${n.direction} of ${n.group} for ${show(n.connection)} (${JSON.stringify(n.peer)})`);
    expect(missing).toEqual([]);
  });

  it("every rendered rule is needed by a connection of the table, every port of its range included", () => {
    const ns = allNeeds(k);
    const unjustified = rulesOf(k).flatMap(([direction, r]) => {
      const mine = ns.filter((n) => n.direction === direction && satisfies(k, r, n));
      if (mine.length === 0) return [`${direction} ${r.name}: no connection needs it`];
      return trafficsOf(r)
        .filter((t) => !mine.some((n) => JSON.stringify(n.traffic) === JSON.stringify(t)))
        .map((t) => `${direction} ${r.name}: nothing needs ${describeTraffic(t)}`);
    });
    expect(unjustified).toEqual([]);
  });

  it("each role reads its bootstrap secret only from its own machines' addresses, through the cluster's NAT, in its VPC (issue 15)", () => {
    const vpcId = ofType(regs, "aws:ec2/vpc:Vpc").find((v) => v.name === `${k.name}-network-vpc`)!.id;
    const allNat = [...new Set(Object.values(k.net.natAddresses).flat())].sort();
    const slugs: Array<[NodeRole, string]> = [["controlPlane", "control-plane"], ["worker", "worker"], ...(k.ctx.topology === "external" ? [["etcd", "etcd"] as [NodeRole, string]] : [])];
    for (const [role, slug] of slugs) {
      const policy = JSON.parse(regs.find((r) => r.name === `${k.name}-iam-${slug}-bootstrap-secret`)!.inputs.policy);
      const read = policy.Statement.find((x: { Sid: string }) => x.Sid === "ReadOwnBootstrapSecret");
      expect({ role, condition: read.Condition }).toEqual({
        role,
        condition: {
          StringEquals: { "aws:Ec2InstanceSourceVpc": vpcId },
          IpAddress: { "aws:Ec2InstanceSourcePrivateIPv4": k.net.privateAddresses[role], "aws:SourceIp": allNat.map((ip) => `${ip}/32`) },
        },
      });
    }
  });

  it("the groups are exactly one a role of the topology, and each NLB's: the internal one always, the public one only internet-facing", () => {
    const roles = [...new Set(k.net.groups.values())].sort();
    const lbs = k.ctx.scheme === "internet-facing" ? ["apiLoadBalancer", "publicApiLoadBalancer"] : ["apiLoadBalancer"];
    expect(roles).toEqual([...lbs, ...(k.ctx.topology === "external" ? ["controlPlane", "etcd", "worker"] : ["controlPlane", "worker"])].sort());
    expect(k.net.groups.size).toBe(roles.length);
  });

  it("every node reaches the API through the internal load balancer, in the private subnets, whatever the scheme (issue 15)", () => {
    const apiDials = connections(k.ctx).filter((c) => isNodeRole(c.from) && (c.to === "apiLoadBalancer" || c.to === "publicApiLoadBalancer"));
    expect(new Set(apiDials.map((c) => c.to))).toEqual(new Set(["apiLoadBalancer"]));
    const privateSubnets = k.net.machines.filter((m) => m.ip).map((m) => m.ip!);
    for (const cidr of k.net.loadBalancerSubnets.apiLoadBalancer!) expect(privateSubnets.some((ip) => cidrContains(cidr, ip))).toBe(true);
    // The nodes' endpoint in every Kubernetes node's node.env is the internal NLB's DNS name.
    const endpoint = `API_ENDPOINT='${k.config.clusterName}-api-0123456789abcdef.elb.eu-west-1.amazonaws.com:6443'`;
    for (const m of k.net.machines.filter((x) => x.role !== "etcd")) expect(writeFiles(m.userData)["/etc/kubeadm-ha/node.env"]).toContain(endpoint);
  });
});

describe("the security groups follow the table", () => {
  it("the rule counts of each stack and CNI", () => {
    const counts = Object.fromEntries(CASES.map((k) => [k.name, [k.net.ingress.length, k.net.egress.length]]));
    // Node groups: the table's rules for the topology and CNI, with path MTU discovery's ICMP from the VPC
    // (one a machine role) and, internet-facing, the public load balancer into the masters. The
    // internal load balancer admits the masters and workers by group (2), and the allowed range of
    // the scheme's people (dev: on the public one; prod: on the internal one). No NAT address anywhere.
    // Egress: all out from each node group, 6443 into the VPC from each load balancer.
    expect(counts).toEqual({
      "dev-cilium": [20 + 2 + 1 + 2 + 1, 2 + 2],
      "dev-calico": [16 + 2 + 1 + 2 + 1, 2 + 2],
      "dev-none": [8 + 2 + 1 + 2 + 1, 2 + 2],
      "prod-cilium": [21 + 3 + 2 + 1, 3 + 1],
      "prod-calico": [17 + 3 + 2 + 1, 3 + 1],
      "prod-none": [9 + 3 + 2 + 1, 3 + 1],
    });
  });

  it("the etcd group admits the other members' client port with external etcd (issue 12)", () => {
    const prod = CASES.find((k) => k.name === "prod-none")!;
    expect(prod.net.ingress.filter((r) => r.group === "etcd" && ruleAdmits(r, { protocol: "tcp", port: 2379 })).map((r) => r.peer)).toEqual([
      { group: "controlPlane" },
      { group: "etcd" },
    ]);
  });
});

describe("the table", () => {
  const ctx = (over: Partial<FlowContext> = {}): FlowContext => ({
    topology: "stacked", cni: "cilium", scheme: "internet-facing", installer: "pulumi", awsCloudControllerManager: true, ebsCsiDriver: true, backup: true,
    clusterAutoscaler: true, nodeTerminationHandler: true, ...over,
  });

  it("every cause names a file of this repository or an upstream https URL", () => {
    const bad = FLOWS.flatMap((f) => f.by)
      .map((b) => b.where)
      .filter((w) => !(/^https:\/\/[a-z0-9.-]+\//.test(w) || fs.existsSync(path.join(ROOT, w))));
    expect(bad).toEqual([]);
    expect(FLOWS.filter((f) => f.by.length === 0)).toEqual([]);
  });

  it("every flow into a node group carries a rule description EC2 accepts, and no flow outside the groups does", () => {
    const into = (f: Flow) => (typeof f.to === "string" ? [f.to] : f.to).some(isNodeRole);
    expect(FLOWS.filter((f) => into(f) && f.rule === undefined)).toEqual([]);
    expect(FLOWS.filter((f) => !isGroupFlow(f) && f.rule !== undefined)).toEqual([]);
    for (const f of FLOWS.filter((x) => x.rule !== undefined)) expect(f.rule).toMatch(/^[a-zA-Z0-9. _\-:/()#,@[\]+=&;{}!$*]{1,255}$/);
  });

  it("no worker, pod or outsider ever reaches etcd, and nothing reaches a worker but kubelet and the pod network", () => {
    for (const k of CASES) {
      const cs = connections(k.ctx);
      const pmtu = (c: Connection) => c.from === "vpc" && c.protocol === "icmp" && c.type === 3 && c.code === 4;
      expect(cs.filter((c) => (c.to === "etcd" || (c.to === "controlPlane" && c.protocol === "tcp" && (c.port === 2379 || c.port === 2380))) && !["controlPlane", "etcd"].includes(c.from) && !pmtu(c))).toEqual([]);
      const toWorker = [...new Set(cs.filter((c) => c.to === "worker").map((c) => describeTraffic(c)))].sort();
      expect(toWorker).toEqual(
        { cilium: ["icmp 3/4", "icmp 8/0", "tcp/10250", "tcp/4240", "udp/8472"], calico: ["icmp 3/4", "tcp/10250", "tcp/5473", "udp/4789"], none: ["icmp 3/4", "tcp/10250"] }[k.cni],
      );
    }
  });

  it("no pod reaches the instance metadata service in any stack or setting: only host processes on the machines do (issue 15)", () => {
    for (const k of CASES) expect(connections(k.ctx).filter((c) => c.to === "instanceMetadata" && !isNodeRole(c.from))).toEqual([]);
    expect(connections(ctx()).filter((c) => c.to === "instanceMetadata").map((c) => c.from)).toEqual(["controlPlane", "worker", "controlPlane", "controlPlane", "controlPlane"]);
  });

  it("flowApplies: every condition must hold; an absent one holds for any value", () => {
    const f: Flow = { from: "etcd", to: "s3", protocol: "tcp", port: 443, when: { topology: "external", backup: true }, by: [{ what: "x", where: "README.md" }] };
    expect(flowApplies(f, ctx({ topology: "external" }))).toBe(true);
    expect(flowApplies(f, ctx({ topology: "stacked" }))).toBe(false);
    expect(flowApplies(f, ctx({ topology: "external", backup: false }))).toBe(false);
    expect(flowApplies({ ...f, when: { cni: ["cilium", "calico"] } }, ctx({ cni: "none" }))).toBe(false);
    expect(flowApplies({ ...f, when: { installer: "nodes" } }, ctx())).toBe(false);
    expect(flowApplies({ ...f, when: { awsCloudControllerManager: true } }, ctx({ awsCloudControllerManager: false }))).toBe(false);
    expect(flowApplies({ ...f, when: undefined }, ctx({ backup: false }))).toBe(true);
  });

  it("the connections of a setting follow it: backups, installer and cloud controller", () => {
    const has = (c: FlowContext, from: Party, to: Party) => connections(c).some((x) => x.from === from && x.to === to);
    expect(has(ctx({ topology: "external" }), "etcd", "s3") && has(ctx(), "controlPlane", "s3")).toBe(true);
    // Without backups the machines still reach S3 for the bootstrap objects (boot.sh, and day2.sh on masters and members), never for snapshots.
    const s3 = (c: FlowContext) => connections(c).filter((x) => x.to === "s3").map((x) => `${x.from}:${x.flow.by.map((b) => b.where.split("/").pop()).join(",")}`);
    expect(s3(ctx({ topology: "external", backup: false }))).toEqual(["controlPlane:boot.sh", "worker:boot.sh", "etcd:boot.sh", "controlPlane:day2.sh", "etcd:day2.sh"]);
    expect(s3(ctx({ topology: "external" }))).toEqual([...s3(ctx({ topology: "external", backup: false })), "etcd:etcd-backup.sh,etcd-restore.sh"]);
    expect(connections(ctx({ installer: "nodes" })).filter((c) => c.flow.by.some((b) => b.where.endsWith("addons.sh"))).map((c) => `${c.from}->${c.to}`)).toEqual([
      "controlPlane->apiLoadBalancer",
      "controlPlane->internet",
    ]);
    // Without the cloud controller, the CSI driver and the worker lifecycle add-ons a master calls AWS only to report its bootstrap.
    const awsCalls = (c: FlowContext) => connections(c).filter((x) => x.from === "controlPlane" && x.to === "awsApis").flatMap((x) => x.flow.by.map((b) => b.where));
    expect(awsCalls(ctx({ awsCloudControllerManager: false, ebsCsiDriver: false, clusterAutoscaler: false, nodeTerminationHandler: false }))).toEqual(["cloud-init/scripts/lib.sh"]);
    // Each worker lifecycle add-on alone still reaches the AWS APIs from the masters.
    expect(awsCalls(ctx({ awsCloudControllerManager: false, ebsCsiDriver: false, nodeTerminationHandler: false }))).toContain("components/iam.ts");
    expect(awsCalls(ctx({ awsCloudControllerManager: false, ebsCsiDriver: false, clusterAutoscaler: false }))).toContain("components/nodeTermination.ts");
  });

  it("groupFlows refuses a flow into a group that depends on more than the topology, the CNI and the scheme", () => {
    const g = { topology: "stacked", cni: "none", scheme: "internal" } as const;
    const bad: Flow = { from: "worker", to: "controlPlane", protocol: "tcp", port: 9443, when: { installer: "nodes" }, rule: "webhook", by: [{ what: "x", where: "README.md" }] };
    expect(() => groupFlows(g, [bad])).toThrow("groupFlows: a flow into controlPlane depends on installer; security group rules follow only the topology, the CNI and the scheme");
    expect(() => groupFlows(g, [{ ...bad, when: undefined, from: "operator" }])).toThrow(
      "groupFlows: operator -> controlPlane: a security group rule can only admit a node role, pods, an API load balancer or the VPC",
    );
    expect(() => groupFlows(g, [{ ...bad, when: undefined, rule: undefined }])).toThrow("groupFlows: the flow into controlPlane on tcp/9443 has no rule description");
    // Into the internal load balancer a flow may go without a rule of its own when another admits it.
    expect(groupFlows(g, [{ ...bad, to: "apiLoadBalancer", rule: undefined }])).toEqual([]);
    expect(groupFlows(g, [{ ...bad, to: "apiLoadBalancer", when: { scheme: "internet-facing" } }])).toEqual([]);
    expect(groupFlows(g, [{ ...bad, to: "apiLoadBalancer", when: undefined }])).toEqual([{ to: "apiLoadBalancer", from: "worker", traffic: { protocol: "tcp", port: 9443 }, rule: "webhook" }]);
  });

  it("pods are the Kubernetes nodes' groups; outsiders have none", () => {
    expect(sourceRoles("pods")).toEqual(["controlPlane", "worker"]);
    expect(sourceRoles("etcd")).toEqual(["etcd"]);
    expect(sourceRoles("operator")).toEqual([]);
  });
});

/** The write_files of a rendered machine's cloud-config, path -> content. */
function writeFiles(userDataBase64: string): Record<string, string> {
  const doc = parse(decodeUserData(userDataBase64, true), { version: "1.1" }) as { write_files: Array<{ path: string; content: string; encoding?: string }> };
  return Object.fromEntries(doc.write_files.map((f) => [f.path, f.encoding === "b64" ? Buffer.from(f.content, "base64").toString("utf8") : f.content]));
}

describe("etcd-rejoin.sh dials only what the rendered groups admit", () => {
  const scripts = shipScripts(["lib.sh", "etcdctl.sh", "etcd-rejoin.sh"]);
  const roots: string[] = [];
  afterAll(() => {
    for (const d of [scripts, ...roots]) fs.rmSync(d, { recursive: true, force: true });
  });

  /**
   * Runs the shipped etcd-rejoin.sh as machine `self` of case `k` would when it replaces a dead
   * member: its node.env and manifest from the render, the other members healthy in a fake etcd
   * (test/stubs/etcdctl-cluster.sh). Returns every URL etcdctl was pointed at.
   */
  function dials(k: Case, self: string): { urls: string[]; stderr: string; status: number | null } {
    const m = k.net.machines.find((x) => x.name === self)!;
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "kubeadm-ha-flows-"));
    roots.push(root);
    const etc = path.join(root, "etc/kubeadm-ha"), kube = path.join(root, "etc/kubernetes"), run = path.join(root, "run"), bin = path.join(root, "bin"), state = path.join(root, "state");
    for (const d of [etc, path.join(kube, "pki/etcd"), run, bin, state]) fs.mkdirSync(d, { recursive: true });
    for (const [p, content] of Object.entries(writeFiles(m.userData)))
      if (p.startsWith("/etc/kubeadm-ha/")) {
        fs.mkdirSync(path.dirname(path.join(etc, p.slice("/etc/kubeadm-ha/".length))), { recursive: true });
        fs.writeFileSync(path.join(etc, p.slice("/etc/kubeadm-ha/".length)), content);
      }
    const stubs = path.join(__dirname, "stubs");
    fs.copyFileSync(path.join(stubs, "etcdctl-cluster.sh"), path.join(bin, "etcdctl"));
    fs.copyFileSync(path.join(stubs, "kubeadm.sh"), path.join(bin, "kubeadm"));
    fs.copyFileSync(path.join(stubs, "stub-lib.sh"), path.join(bin, "stub-lib.sh"));
    for (const f of ["etcdctl", "kubeadm"]) fs.chmodSync(path.join(bin, f), 0o755);
    for (const f of ["ca.crt", "ca.key", "server.crt", "server.key"]) fs.writeFileSync(path.join(kube, "pki/etcd", f), `${f}\n`);
    fs.writeFileSync(path.join(run, "joiner-cluster.yaml"), "{}\n");
    // Every member started; this machine's is dead (its address answers nothing), the others healthy.
    const env = Object.fromEntries(
      fs.readFileSync(path.join(etc, "node.env"), "utf8").trim().split("\n").map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 2, -1)]),
    );
    const members = env.ETCD_MEMBERS.split(",").map((e: string, i: number) => {
      const [name, peer] = e.split("=");
      return { ID: 0x1000 + i, name, peerURLs: [peer], clientURLs: [peer.replace(/:2380$/, ":2379")] };
    });
    const endpoints = Object.fromEntries(members.map((x: { clientURLs: string[] }) => [x.clientURLs[0], x.clientURLs[0].includes(`//${m.ip}:`) ? "down" : "healthy"]));
    fs.writeFileSync(path.join(state, "etcd.json"), JSON.stringify({ members, endpoints }));
    const r = spawnSync("/bin/bash", [path.join(scripts, "etcd-rejoin.sh")], {
      env: {
        PATH: `${bin}:/usr/bin:/bin`, HOME: root, KUBEADM_HA_ETC: etc, KUBERNETES_DIR: kube, KUBEADM_HA_RUN: run,
        KUBEADM_HA_ETCD_DATA_DIR: path.join(root, "var/lib/etcd"), KUBEADM_HA_WAIT_SECONDS: "20", KUBEADM_HA_POLL_SECONDS: "0",
        ETCDCTL: path.join(bin, "etcdctl"), STUB_STATE: state, STUB_TOKEN: "abcdef.0123456789abcdef", TOKEN_PLACEHOLDER: "__BOOTSTRAP_TOKEN__",
      },
      encoding: "utf8",
      timeout: 30000,
    });
    const calls = fs.readFileSync(path.join(state, "calls.log"), "utf8").split("\n").filter((l) => l.startsWith("etcdctl "));
    const urls = calls.flatMap((l) => (/--endpoints=(\S+)/.exec(l)?.[1] ?? "").split(",").filter((u) => u !== ""));
    return { urls, stderr: r.stderr, status: r.status };
  }

  it.each([
    ["prod-none", "prod-none-etcd-member-0", "etcd"],
    ["dev-none", "dev-none-control-plane-master-1", "controlPlane"],
  ])("%s: %s replacing its dead predecessor", (name, self, role) => {
    const k = CASES.find((c) => c.name === name)!;
    const r = dials(k, self);
    expect(r.stderr).toContain("whose data is gone: removing it");
    expect(r.status).toBe(0);
    const me = k.net.machines.find((x) => x.name === self)!;
    const others = new Set(r.urls.map((u) => new URL(u)).filter((u) => u.hostname !== me.ip).map((u) => `${u.hostname}:${u.port}`));
    // It asked every other member of the render.
    expect([...others].sort()).toEqual(k.net.machines.filter((x) => x.role === role && x !== me).map((x) => `${x.ip}:2379`).sort());
    for (const hostPort of others) {
      const [ip, port] = hostPort.split(":");
      const to = k.net.machines.find((x) => x.ip === ip)!;
      const admitted = k.net.ingress.some((rule) => rule.group === to.role && "group" in rule.peer && rule.peer.group === me.role && ruleAdmits(rule, { protocol: "tcp", port: Number(port) }));
      expect({ from: `${me.name} (${me.role})`, to: `${to.name} ${hostPort}`, admitted }).toEqual({ from: `${me.name} (${me.role})`, to: `${to.name} ${hostPort}`, admitted: true });
    }
  });
});
