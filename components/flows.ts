/**
 * The network flow matrix: every connection the machines of a cluster make, and every connection
 * made to them, with the conditions under which it exists and what makes it. The node security
 * groups' ingress rules are derived from this table (components/securityGroups.ts), and
 * test/flows.test.ts reads it in both directions against the rendered security groups of every
 * stack and CNI and against what the shipped scripts dial.
 *
 * Pure: no resources, no config reading. A flow names its ends by role, never by address.
 */
import { AddonsConfig, ClusterConfig, EtcdTopology, addonInstaller } from "../config";
import { API_SERVER_PORT } from "./apiLoadBalancer";

/** A machine role with its own security group. */
export type NodeRole = "controlPlane" | "worker" | "etcd";

/**
 * One end of a connection.
 * - A node role: the machines of that role, by their security group.
 * - `pods`: a pod on a master or worker. Pod-to-pod traffic between nodes rides the CNI's overlay
 *   (the VXLAN flows below); a pod reaching a node address leaves the overlay with its node's
 *   address (host-network pods, Cilium's masquerading, Calico's natOutgoing), so its node's
 *   security group sees it.
 * - `apiLoadBalancer`: the internal NLB every node reaches the API through (kubeadm's
 *   controlPlaneEndpoint), in the private subnets; people use it too when the scheme is internal.
 * - `publicApiLoadBalancer`: the internet-facing NLB for people only, with scheme internet-facing.
 *   Each NLB has a security group of its own.
 * - `operator`: people with kubectl and the machine running `pulumi up`, from
 *   `apiLoadBalancer.allowedCidrs`.
 * - `vpc`: anything with an address in the VPC that is no machine of ours: the NLBs' and NAT
 *   gateways' interfaces. A rule from it admits the VPC's range.
 * - The rest are outside every security group of the cluster: AWS endpoints, the instance metadata
 *   service, the VPC's DNS resolver and time service, and the internet (package mirrors, container
 *   registries, Helm chart repositories), reached through NAT or the S3 gateway endpoint.
 */
export type Party =
  | NodeRole
  | "pods"
  | "apiLoadBalancer"
  | "publicApiLoadBalancer"
  | "operator"
  | "vpc"
  | "s3"
  | "secretsManager"
  | "awsApis"
  | "ssm"
  | "instanceMetadata"
  | "amazonDns"
  | "timeSync"
  | "internet";

/** The Kubernetes nodes: the machines that run pods (external etcd members run none). */
export const KUBERNETES_NODES: readonly NodeRole[] = ["controlPlane", "worker"];

/** Ports of the flows below; each is also used where the software is configured. */
export const PORTS = {
  apiServer: API_SERVER_PORT,
  kubelet: 10250,
  etcdClient: 2379,
  etcdPeer: 2380,
  ciliumVxlan: 8472,
  ciliumHealth: 4240,
  calicoVxlan: 4789,
  calicoTypha: 5473,
  https: 443,
  http: 80,
  dns: 53,
  ntp: 123,
} as const;

/** ICMP echo request (type 8, code 0): what Cilium's node health checks send. */
export const ICMP_ECHO = { type: 8, code: 0 } as const;
/**
 * ICMP destination unreachable, fragmentation needed (type 3, code 4): path MTU discovery. Instances
 * send 9001-byte frames inside the VPC, and a hop with a smaller MTU on the way (an NLB, a NAT
 * gateway, a peering or VPN link) answers a too-large packet with this; security groups drop it
 * unless a rule admits it, and the connection then hangs on its first large packet
 * (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/network_mtu.html#path_mtu_discovery).
 */
export const ICMP_FRAGMENTATION_NEEDED = { type: 3, code: 4 } as const;

/** What a connection carries: a TCP or UDP destination port, or an ICMP type and code. */
export type Traffic = { protocol: "tcp" | "udp"; port: number } | { protocol: "icmp"; type: number; code: number };

/** A pod network add-on, as config addons.cni. */
export type Cni = AddonsConfig["cni"];

/** The settings a flow can depend on; the values of one cluster. */
export interface FlowContext {
  topology: EtcdTopology;
  cni: Cni;
  scheme: "internet-facing" | "internal";
  installer: "pulumi" | "nodes";
  awsCloudControllerManager: boolean;
  ebsCsiDriver: boolean;
  backup: boolean;
  clusterAutoscaler: boolean;
  nodeTerminationHandler: boolean;
}

/** The flow context of a validated config. */
export function flowContext(c: ClusterConfig): FlowContext {
  return {
    topology: c.etcd.topology,
    cni: c.addons.cni,
    scheme: c.apiLoadBalancer.scheme,
    installer: addonInstaller(c),
    awsCloudControllerManager: c.addons.awsCloudControllerManager,
    ebsCsiDriver: c.addons.ebsCsiDriver,
    backup: c.etcd.backup.enabled,
    clusterAutoscaler: c.addons.clusterAutoscaler,
    nodeTerminationHandler: c.addons.nodeTerminationHandler,
  };
}

/** When a flow exists: every key given must match the cluster's value; an absent key matches any. */
export interface FlowWhen {
  topology?: EtcdTopology;
  /** The flow exists with any of these CNIs. */
  cni?: Cni[];
  scheme?: FlowContext["scheme"];
  installer?: FlowContext["installer"];
  awsCloudControllerManager?: true;
  ebsCsiDriver?: true;
  backup?: true;
  clusterAutoscaler?: true;
  nodeTerminationHandler?: true;
}

/** What makes a connection, and where that is written: a file of this repository or an upstream URL. */
export interface FlowCause {
  what: string;
  where: string;
}

export type Flow = Traffic & {
  from: Party | readonly Party[];
  to: Party | readonly Party[];
  when?: FlowWhen;
  /**
   * The security group rule's description, required when `to` is a node role: EC2's characters
   * (a-zA-Z0-9. _-:/()#,@[]+=&;{}!$*), and rules that several flows share join theirs with "; ".
   */
  rule?: string;
  /** Every reason the connection is made; at least one. */
  by: readonly FlowCause[];
};

const S = (script: string) => `cloud-init/scripts/${script}`;
const { apiServer, kubelet, etcdClient, etcdPeer, https, http } = PORTS;
const ALL_MACHINES: readonly Party[] = ["controlPlane", "worker", "etcd"];
const CILIUM_FIREWALL = "https://docs.cilium.io/en/stable/operations/system_requirements/#firewall-rules";
const CALICO_REQUIREMENTS = "https://docs.tigera.io/calico/latest/getting-started/kubernetes/requirements#network-requirements";

/**
 * The table. Ports not listed are closed between the groups: kube-controller-manager (10257) and
 * kube-scheduler (10259) bind to 127.0.0.1 under kubeadm, etcd's metrics (2381) to loopback, and
 * NodePorts are not opened.
 */
export const FLOWS: readonly Flow[] = [
  // The Kubernetes API. People reach it through the load balancer of the scheme; nodes always
  // through the internal one, so no node depends on NAT or the internet to reach the API.
  {
    from: "operator", to: "publicApiLoadBalancer", protocol: "tcp", port: apiServer, when: { scheme: "internet-facing" },
    by: [
      { what: "kubectl with the stack's kubeconfig output, which points at the people's load balancer", where: "components/pki.ts" },
      { what: "pulumi up: the readiness step polls /readyz, then the Helm releases (installer pulumi)", where: "components/readiness.ts" },
    ],
  },
  {
    from: "operator", to: "apiLoadBalancer", protocol: "tcp", port: apiServer, when: { scheme: "internal" },
    by: [
      { what: "kubectl with the stack's kubeconfig output, which points at the internal load balancer with scheme internal", where: "components/pki.ts" },
      { what: "pulumi up: the readiness step polls /readyz, then the Helm releases (installer pulumi)", where: "components/readiness.ts" },
    ],
  },
  {
    from: "apiLoadBalancer", to: "controlPlane", protocol: "tcp", port: apiServer,
    rule: "kube-apiserver from the API load balancer: clients and health checks",
    by: [
      { what: "the NLB forwards TCP 6443 with client IP preservation off, so connections come from its own addresses", where: "components/apiLoadBalancer.ts" },
      { what: "the target group's HTTPS /readyz health checks", where: "components/apiLoadBalancer.ts" },
    ],
  },
  {
    from: "publicApiLoadBalancer", to: "controlPlane", protocol: "tcp", port: apiServer, when: { scheme: "internet-facing" },
    rule: "kube-apiserver from the public API load balancer: people and health checks",
    by: [
      { what: "the people's NLB forwards TCP 6443 with client IP preservation off, so connections come from its own addresses", where: "components/apiLoadBalancer.ts" },
      { what: "its target group's HTTPS /readyz health checks", where: "components/apiLoadBalancer.ts" },
    ],
  },
  {
    from: ["controlPlane", "worker"], to: "apiLoadBalancer", protocol: "tcp", port: apiServer,
    rule: "Kubernetes API from the nodes",
    by: [
      { what: "api_ready: the init-or-join probe and wait_for_api poll https://$API_ENDPOINT/readyz", where: S("lib.sh") },
      { what: "kubeadm init and join: the API through controlPlaneEndpoint, join's discovery through discovery.bootstrapToken.apiServerEndpoint", where: S("bootstrap.sh") },
      { what: "kubelet and kube-proxy: kubeadm writes controlPlaneEndpoint into their kubeconfigs", where: "cloud-init/kubeadm.ts" },
    ],
  },
  {
    from: "controlPlane", to: "apiLoadBalancer", protocol: "tcp", port: apiServer,
    rule: "Kubernetes API from the nodes",
    by: [
      { what: "the join lock: kubectl with a joiner kubeconfig minted for controlPlaneEndpoint", where: S("join-lock.sh") },
      { what: "a joining master mints its own bootstrap token (kubeadm token create) with that kubeconfig", where: S("bootstrap.sh") },
      { what: "the hourly join token rotation lists and creates bootstrap tokens through admin.conf", where: S("token-rotate.sh") },
    ],
  },
  {
    from: "controlPlane", to: "controlPlane", protocol: "tcp", port: apiServer,
    // The rule the pods' flow above already gives masters from masters: the same description, so
    // adding this reason changes no live security group rule.
    rule: "kube-apiserver via the kubernetes Service: pods and host-network agents",
    by: [{ what: "before restarting its static pods a master checks every other master's /readyz at its own address", where: S("cert-renew.sh") }],
  },
  // No rule of its own: the nodes' rule above admits it (test/flows.test.ts checks).
  {
    from: "controlPlane", to: "apiLoadBalancer", protocol: "tcp", port: apiServer, when: { installer: "nodes" },
    by: [{ what: "master 0 installs the add-ons with helm and kubectl through admin.conf", where: S("addons.sh") }],
  },
  {
    from: "controlPlane", to: "apiLoadBalancer", protocol: "tcp", port: apiServer,
    by: [{ what: "the rollout on a master: its health gate's API probe and Node, kubeadm upgrade, drain and uncordon through admin.conf, whose server is controlPlaneEndpoint", where: S("day2.sh") }],
  },
  {
    from: "worker", to: "apiLoadBalancer", protocol: "tcp", port: apiServer,
    by: [{ what: "node-ready.sh reads its own Node's Ready condition with kubelet.conf, whose server is controlPlaneEndpoint", where: S("node-ready.sh") }],
  },
  {
    from: "pods", to: "controlPlane", protocol: "tcp", port: apiServer,
    rule: "kube-apiserver via the kubernetes Service: pods and host-network agents",
    by: [
      {
        what: "the default/kubernetes Service's endpoints are the masters' own addresses (localAPIEndpoint), so CoreDNS, the CNI agents, the cloud controller and the CSI controller reach 6443 directly, not through the NLB",
        where: "cloud-init/kubeadm.ts",
      },
    ],
  },
  {
    from: "controlPlane", to: "controlPlane", protocol: "tcp", port: apiServer,
    rule: "kube-apiserver of the other masters, asked directly by master 0 before it would initialise",
    by: [{ what: "master 0 probes every other master's https://<ip>:6443/readyz: an API there means the cluster exists, whatever the load balancer says", where: S("bootstrap.sh") }],
  },
  {
    from: "controlPlane", to: KUBERNETES_NODES, protocol: "tcp", port: kubelet,
    rule: "kubelet API from kube-apiserver: logs, exec, port-forward",
    by: [{ what: "kube-apiserver calls each kubelet's API for kubectl logs, exec, port-forward and attach", where: "https://kubernetes.io/docs/concepts/architecture/control-plane-node-communication/#control-plane-to-node" }],
  },
  {
    from: "worker", to: KUBERNETES_NODES, protocol: "tcp", port: kubelet,
    rule: "kubelet API from pods on workers: metrics-server, monitoring",
    by: [
      {
        what: "metrics-server and Prometheus, which users add on workers, scrape every kubelet (README, Security groups); pod traffic to a node address carries the worker's address",
        where: "README.md",
      },
    ],
  },

  // etcd on the masters.
  {
    from: "controlPlane", to: "controlPlane", protocol: "tcp", port: etcdClient, when: { topology: "stacked" },
    rule: "etcd client and peer between stacked members",
    by: [
      { what: "kube-apiserver's --etcd-servers lists the other masters' members after its own", where: "cloud-init/kubeadm.ts" },
      { what: "kubeadm join --control-plane adds the new member through an existing member's client URL", where: "https://github.com/kubernetes/kubernetes/blob/master/cmd/kubeadm/app/phases/etcd/local.go" },
      { what: "the bootstrap's kubeadm join, and its kubeadm reset after a failed attempt, which removes the member again", where: S("bootstrap.sh") },
      { what: "a replacement master asks the other members about its dead predecessor and removes it", where: S("etcd-rejoin.sh") },
      { what: "a master renewing its certificates restarts etcd only while every other member answers healthy", where: S("cert-renew.sh") },
      { what: "the rollout's health gate checks every member; a master leaving at scale-in removes its member through the others", where: S("day2.sh") },
    ],
  },
  {
    from: "controlPlane", to: "controlPlane", protocol: "tcp", port: etcdPeer, when: { topology: "stacked" },
    rule: "etcd client and peer between stacked members",
    by: [{ what: "raft between the stacked members of kubeadm's etcd static pods", where: "cloud-init/kubeadm.ts" }],
  },

  // External etcd.
  {
    from: "controlPlane", to: "etcd", protocol: "tcp", port: etcdClient, when: { topology: "external" },
    rule: "etcd client from kube-apiserver and kubeadm",
    by: [
      { what: "kube-apiserver's --etcd-servers: ClusterConfiguration.etcd.external.endpoints", where: "components/etcd.ts" },
      { what: "kubeadm init's preflight checks every external endpoint", where: "https://github.com/kubernetes/kubernetes/blob/master/cmd/kubeadm/app/preflight/checks.go" },
      { what: "master 0 waits for every member's /health before kubeadm init", where: S("bootstrap.sh") },
      { what: "a master renewing its certificates restarts its API server only while every member's /health answers", where: S("cert-renew.sh") },
    ],
  },
  {
    from: "etcd", to: "etcd", protocol: "tcp", port: etcdPeer, when: { topology: "external" },
    rule: "etcd peer between members",
    by: [{ what: "raft between the members: --initial-cluster lists every peer URL", where: "components/etcd.ts" }],
  },
  {
    from: "etcd", to: "etcd", protocol: "tcp", port: etcdClient, when: { topology: "external" },
    rule: "etcd client between members for etcd-rejoin.sh",
    by: [
      {
        what: "a replacement member probes the other members' client URLs, reads the member list, removes its dead predecessor and adds itself; unanswered probes would read as a cluster being created",
        where: S("etcd-rejoin.sh"),
      },
      { what: "a member renewing its certificates restarts only while the others answer healthy", where: S("cert-renew.sh") },
      { what: "the etcd members' lock, taken before a member restarts (renewal, the rollout's pod update), is a key in etcd through every member's client URL", where: S("etcdctl.sh") },
      {
        what: "the rollout's health gate checks every member, a member leaving at scale-in removes itself through the others, and a new one tells a cluster still being created by its closed client ports",
        where: S("day2.sh"),
      },
    ],
  },

  // The pod network, among masters and workers in both directions.
  {
    from: KUBERNETES_NODES, to: KUBERNETES_NODES, protocol: "udp", port: PORTS.ciliumVxlan, when: { cni: ["cilium"] },
    rule: "Cilium VXLAN overlay between nodes",
    by: [
      { what: "routingMode tunnel, tunnelProtocol vxlan: every pod-to-pod packet between nodes", where: "components/addons.ts" },
      { what: "Cilium's firewall rules for VXLAN", where: CILIUM_FIREWALL },
    ],
  },
  {
    from: KUBERNETES_NODES, to: KUBERNETES_NODES, protocol: "tcp", port: PORTS.ciliumHealth, when: { cni: ["cilium"] },
    rule: "Cilium health checks (cilium-health) between nodes",
    by: [{ what: "cilium-health's HTTP probes of every other node", where: CILIUM_FIREWALL }],
  },
  {
    from: KUBERNETES_NODES, to: KUBERNETES_NODES, protocol: "icmp", ...ICMP_ECHO, when: { cni: ["cilium"] },
    rule: "Cilium health checks: ICMP echo between nodes",
    by: [{ what: "cilium-health's ICMP probes of every other node, in Cilium's minimal AWS security group rules", where: CILIUM_FIREWALL }],
  },
  {
    from: KUBERNETES_NODES, to: KUBERNETES_NODES, protocol: "udp", port: PORTS.calicoVxlan, when: { cni: ["calico"] },
    rule: "Calico VXLAN overlay between nodes",
    by: [
      { what: "the IP pool's encapsulation VXLAN, BGP off: every pod-to-pod packet between nodes", where: "components/addons.ts" },
      { what: "Calico's network requirements for VXLAN", where: CALICO_REQUIREMENTS },
    ],
  },
  {
    from: KUBERNETES_NODES, to: KUBERNETES_NODES, protocol: "tcp", port: PORTS.calicoTypha, when: { cni: ["calico"] },
    rule: "Calico Typha: Felix on every node connects to Typha",
    by: [{ what: "the tigera-operator runs Typha on host network; Felix on every node connects to it", where: CALICO_REQUIREMENTS }],
  },

  // Path MTU discovery inside the VPC.
  {
    from: "vpc", to: ALL_MACHINES, protocol: "icmp", ...ICMP_FRAGMENTATION_NEEDED,
    rule: "Path MTU discovery: ICMP fragmentation needed from the VPC",
    by: [{ what: "a hop with a smaller MTU than the instances' 9001 bytes (the NLBs, NAT gateways) tells the sender to shrink its packets", where: "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/network_mtu.html" }],
  },

  // AWS, outside the cluster's security groups.
  {
    from: ALL_MACHINES, to: "s3", protocol: "tcp", port: https,
    by: [{ what: "boot.sh fetches each script by its SHA-256 from the bootstrap bucket (aws s3api get-object), through the S3 gateway endpoint", where: S("boot.sh") }],
  },
  {
    from: ["controlPlane", "etcd"], to: "s3", protocol: "tcp", port: https,
    by: [{ what: "the rollout's SSM commands fetch day2.sh by its SHA-256, and day2.sh sync the scripts of a new bundle.list, from the bootstrap bucket", where: S("day2.sh") }],
  },
  {
    from: "controlPlane", to: "s3", protocol: "tcp", port: https, when: { topology: "stacked", backup: true },
    by: [
      { what: "the leader uploads a snapshot every interval (aws s3 cp, SSE-KMS)", where: S("etcd-backup.sh") },
      { what: "an operator's restore downloads one", where: S("etcd-restore.sh") },
    ],
  },
  {
    from: "etcd", to: "s3", protocol: "tcp", port: https, when: { topology: "external", backup: true },
    by: [
      { what: "the leader uploads a snapshot every interval (aws s3 cp, SSE-KMS)", where: S("etcd-backup.sh") },
      { what: "an operator's restore downloads one", where: S("etcd-restore.sh") },
    ],
  },
  {
    from: ALL_MACHINES, to: "secretsManager", protocol: "tcp", port: https,
    by: [{ what: "each machine reads its role's secret (aws secretsmanager get-secret-value), through NAT", where: S("fetch-secrets.sh") }],
  },
  {
    from: "controlPlane", to: "secretsManager", protocol: "tcp", port: https,
    by: [{ what: "the masters read the workers' secret and put a fresh join token into it, hourly", where: S("token-rotate.sh") }],
  },
  {
    from: ALL_MACHINES, to: "instanceMetadata", protocol: "tcp", port: http,
    by: [
      { what: "the AWS CLI of every script: instance profile credentials from IMDSv2, which the machines require", where: "components/nodeInstance.ts" },
      { what: "a worker of an auto scaling group learns its name and address (imds); every machine its instance ID for the bootstrap's report", where: S("lib.sh") },
    ],
  },
  // No pod reaches IMDS: the hop limit is 1 (components/nodeInstance.ts) and the Kubernetes nodes
  // drop pod traffic to it (cloud-init/systemd/kubeadm-ha-imds-guard.service). What needs the
  // role's credentials runs on the masters' host network.
  {
    from: ["controlPlane", "etcd"], to: "instanceMetadata", protocol: "tcp", port: http,
    by: [{ what: "day2.sh sync reads the machine's current user data, which Pulumi changed (IMDSv2)", where: S("day2.sh") }],
  },
  {
    from: "controlPlane", to: "instanceMetadata", protocol: "tcp", port: http, when: { awsCloudControllerManager: true },
    by: [{ what: "the cloud controller, on the host network: the control plane role's credentials and the region", where: "components/addons.ts" }],
  },
  {
    from: "controlPlane", to: "instanceMetadata", protocol: "tcp", port: http, when: { ebsCsiDriver: true },
    by: [{ what: "the EBS CSI controller, put on the host network by a patch: the control plane role's credentials (the node plugin reads its Node object instead)", where: "components/addons.ts" }],
  },
  {
    from: "controlPlane", to: "awsApis", protocol: "tcp", port: https, when: { awsCloudControllerManager: true },
    by: [{ what: "the cloud controller on the masters: EC2 and Elastic Load Balancing APIs, through NAT", where: "components/iam.ts" }],
  },
  {
    from: "controlPlane", to: "awsApis", protocol: "tcp", port: https, when: { ebsCsiDriver: true },
    by: [{ what: "the EBS CSI controller on the masters: the EC2 volume APIs, through NAT", where: "components/iam.ts" }],
  },
  {
    // On the masters' host network (no pod reaches IMDS: hop limit 1): the instance profile's
    // credentials come to the master itself (instanceMetadata above).
    from: "controlPlane", to: "awsApis", protocol: "tcp", port: https, when: { clusterAutoscaler: true },
    by: [{ what: "the cluster-autoscaler on the masters' host network: the Auto Scaling and EC2 APIs, through NAT", where: "components/iam.ts" }],
  },
  {
    from: "controlPlane", to: "awsApis", protocol: "tcp", port: https, when: { nodeTerminationHandler: true },
    by: [{ what: "the termination handler on the masters' host network: its SQS queue, EC2 and Auto Scaling lifecycle actions, through NAT", where: "components/nodeTermination.ts" }],
  },
  {
    from: "worker", to: "awsApis", protocol: "tcp", port: https,
    by: [
      { what: "node-ready.sh finds its group and completes its launch lifecycle action (Auto Scaling API), through NAT", where: S("node-ready.sh") },
      { what: "a worker whose bootstrap gave up marks itself Unhealthy (aws autoscaling set-instance-health), through NAT", where: S("lib.sh") },
    ],
  },
  {
    from: ["controlPlane", "etcd"], to: "awsApis", protocol: "tcp", port: https,
    by: [{ what: "a master or etcd member publishes its bootstrap's outcome for its alarm (aws cloudwatch put-metric-data), through NAT", where: S("lib.sh") }],
  },
  {
    from: "controlPlane", to: "ssm", protocol: "tcp", port: https,
    by: [{ what: "master 0 reads the init marker (aws ssm get-parameter) before it would initialise and writes it after, through NAT", where: S("bootstrap.sh") }],
  },
  {
    from: ALL_MACHINES, to: "ssm", protocol: "tcp", port: https,
    by: [{ what: "the SSM agent, for Session Manager (no machine has an SSH key), through NAT", where: "components/iam.ts" }],
  },
  {
    from: ALL_MACHINES, to: "amazonDns", protocol: "udp", port: PORTS.dns,
    by: [{ what: "every name lookup, at the VPC's resolver (VPC base + 2), which security groups do not filter", where: "components/network.ts" }],
  },
  {
    from: ALL_MACHINES, to: "timeSync", protocol: "udp", port: PORTS.ntp,
    by: [{ what: "chrony on Canonical's Ubuntu images for EC2, the AMI components/cluster.ts picks, asks the Amazon Time Sync Service at 169.254.169.123", where: "components/cluster.ts" }],
  },

  // The internet, through NAT.
  {
    from: ALL_MACHINES, to: "internet", protocol: "tcp", port: http,
    by: [{ what: "apt-get from the Ubuntu archive mirror of the region (plain HTTP, signed packages)", where: S("install.sh") }],
  },
  {
    from: "controlPlane", to: "internet", protocol: "tcp", port: http,
    by: [{ what: "an upgrade's apt-get update also reads the Ubuntu archive", where: S("day2.sh") }],
  },
  {
    from: "controlPlane", to: "internet", protocol: "tcp", port: https,
    by: [{ what: "an upgrade installs the new kubeadm, kubelet and kubectl from pkgs.k8s.io, the new minor's repository and key", where: S("day2.sh") }],
  },
  {
    from: ALL_MACHINES, to: "internet", protocol: "tcp", port: https,
    by: [
      { what: "pkgs.k8s.io: the Kubernetes apt repository and its key; the snap store: the AWS CLI", where: S("install.sh") },
      { what: "containerd pulls the images of kubeadm's static pods and of the etcd member (registry.k8s.io)", where: "components/etcd.ts" },
    ],
  },
  {
    from: "controlPlane", to: "internet", protocol: "tcp", port: https, when: { topology: "stacked" },
    by: [{ what: "the etcd scripts run etcdctl from the member's etcd image, pulled if missing", where: S("etcdctl.sh") }],
  },
  {
    from: "etcd", to: "internet", protocol: "tcp", port: https, when: { topology: "external" },
    by: [{ what: "the etcd scripts run etcdctl from the member's etcd image, pulled if missing", where: S("etcdctl.sh") }],
  },
  {
    from: KUBERNETES_NODES, to: "internet", protocol: "tcp", port: https, when: { cni: ["cilium", "calico"] },
    by: [{ what: "containerd pulls the CNI's images from their public registries", where: "components/addons.ts" }],
  },
  {
    from: "controlPlane", to: "internet", protocol: "tcp", port: https, when: { nodeTerminationHandler: true },
    by: [{ what: "containerd on the masters pulls the termination handler's image from public.ecr.aws", where: "components/addons.ts" }],
  },
  {
    from: "controlPlane", to: "internet", protocol: "tcp", port: https, when: { installer: "nodes" },
    by: [{ what: "master 0 installs the helm snap and fetches the pinned charts from their repositories", where: S("addons.sh") }],
  },
  {
    from: "operator", to: "internet", protocol: "tcp", port: https, when: { installer: "pulumi" },
    by: [{ what: "the Kubernetes provider fetches the pinned charts from their repositories", where: "components/addons.ts" }],
  },
];

const asList = (p: Party | readonly Party[]): readonly Party[] => (typeof p === "string" ? [p] : p);

/** Whether `flow` exists in a cluster with `ctx`. */
export function flowApplies(flow: Flow, ctx: FlowContext): boolean {
  const w = flow.when ?? {};
  return (
    (w.topology === undefined || w.topology === ctx.topology) &&
    (w.cni === undefined || w.cni.includes(ctx.cni)) &&
    (w.scheme === undefined || w.scheme === ctx.scheme) &&
    (w.installer === undefined || w.installer === ctx.installer) &&
    (w.awsCloudControllerManager === undefined || ctx.awsCloudControllerManager) &&
    (w.ebsCsiDriver === undefined || ctx.ebsCsiDriver) &&
    (w.backup === undefined || ctx.backup) &&
    (w.clusterAutoscaler === undefined || ctx.clusterAutoscaler) &&
    (w.nodeTerminationHandler === undefined || ctx.nodeTerminationHandler)
  );
}

/** One connection of a flow: one source party to one destination party. */
export type Connection = Traffic & { from: Party; to: Party; flow: Flow };

/**
 * The connections of a cluster with `ctx`: every flow that applies, one entry per source and
 * destination. Machines of the etcd role exist only with external etcd.
 */
export function connections(ctx: FlowContext, flows: readonly Flow[] = FLOWS): Connection[] {
  const exists = (p: Party) => p !== "etcd" || ctx.topology === "external";
  return flows
    .filter((f) => flowApplies(f, ctx))
    .flatMap((f) => asList(f.from).filter(exists).flatMap((from) => asList(f.to).filter(exists).map((to) => ({ ...traffic(f), from, to, flow: f }))));
}

function traffic(t: Traffic): Traffic {
  return t.protocol === "icmp" ? { protocol: "icmp", type: t.type, code: t.code } : { protocol: t.protocol, port: t.port };
}

/** The node roles a party's traffic comes from, as their security groups see it. */
export function sourceRoles(p: Party): NodeRole[] {
  if (p === "pods") return [...KUBERNETES_NODES];
  return p === "controlPlane" || p === "worker" || p === "etcd" ? [p] : [];
}

export const isNodeRole = (p: Party): p is NodeRole => p === "controlPlane" || p === "worker" || p === "etcd";

/** A security group whose ingress rules the table decides: a node role's, or the internal API load balancer's (from the nodes). */
export type GroupTarget = NodeRole | "apiLoadBalancer";
/** What a group rule admits: another group, or the VPC's range. */
export type GroupSource = NodeRole | "apiLoadBalancer" | "publicApiLoadBalancer" | "vpc";

/** A flow into a security group the table decides, resolved to the groups at both ends. */
export interface GroupFlow {
  to: GroupTarget;
  from: GroupSource;
  traffic: Traffic;
  /** The rule description this flow contributes. */
  rule: string;
}

const GROUP_KEYS: ReadonlyArray<keyof FlowWhen> = ["topology", "cni", "scheme"];
const GROUP_SOURCES: ReadonlySet<Party> = new Set(["apiLoadBalancer", "publicApiLoadBalancer", "vpc"]);

/**
 * Whether a flow decides a security group rule: one into a node role, or one from nodes (or pods)
 * into the internal API load balancer. Flows into the load balancers from outside (the operator)
 * are the load balancers' CIDR rules, from `apiLoadBalancer.allowedCidrs`.
 */
export function isGroupFlow(f: Flow): boolean {
  return asList(f.to).some(isNodeRole) || (asList(f.to).includes("apiLoadBalancer") && asList(f.from).some((p) => sourceRoles(p).length > 0));
}

/**
 * The flows into the security groups of a cluster with this topology, CNI and load balancer
 * scheme, which decide the groups. A flow between groups that depends on anything else is an error
 * in the table, unless it has no rule of its own and another flow's rule admits it (the flow test
 * checks that every connection is admitted).
 */
export function groupFlows(ctx: Pick<FlowContext, "topology" | "cni" | "scheme">, flows: readonly Flow[] = FLOWS): GroupFlow[] {
  const out: GroupFlow[] = [];
  for (const f of flows) {
    if (!isGroupFlow(f)) continue;
    // Machines of the etcd role exist only with external etcd.
    const exists = (p: Party) => p !== "etcd" || ctx.topology === "external";
    const targets = asList(f.to).filter((p): p is GroupTarget => isNodeRole(p) || p === "apiLoadBalancer");
    const intoNodes = targets.some(isNodeRole);
    if (f.rule === undefined) {
      if (intoNodes) throw new Error(`groupFlows: the flow into ${targets.join(", ")} on ${describeTraffic(f)} has no rule description`);
      continue;
    }
    const other = Object.keys(f.when ?? {}).filter((k) => !GROUP_KEYS.includes(k as keyof FlowWhen));
    if (other.length > 0)
      throw new Error(`groupFlows: a flow into ${targets.join(", ")} depends on ${other.join(", ")}; security group rules follow only the topology, the CNI and the scheme`);
    const w = f.when ?? {};
    if ((w.topology !== undefined && w.topology !== ctx.topology) || (w.cni !== undefined && !w.cni.includes(ctx.cni)) || (w.scheme !== undefined && w.scheme !== ctx.scheme)) continue;
    for (const party of asList(f.from)) {
      const sources: GroupSource[] = GROUP_SOURCES.has(party) ? [party as GroupSource] : sourceRoles(party);
      if (sources.length === 0)
        throw new Error(`groupFlows: ${party} -> ${targets.join(", ")}: a security group rule can only admit a node role, pods, an API load balancer or the VPC`);
      for (const from of sources.filter(exists)) for (const to of targets.filter(exists)) out.push({ to, from, traffic: traffic(f), rule: f.rule });
    }
  }
  return out;
}

/** `tcp/6443`, `udp/8472`, `icmp 8/0`. */
export function describeTraffic(t: Traffic): string {
  return t.protocol === "icmp" ? `icmp ${t.type}/${t.code}` : `${t.protocol}/${t.port}`;
}
