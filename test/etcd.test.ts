/**
 * Both etcd topologies side by side: one table of expectations, one Cluster per topology built
 * from `parseConfig` under the mocks, the same assertions run against each. Then the pure
 * functions of components/etcd.ts with exact outputs.
 */
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { parse, parseAllDocuments } from "yaml";
import { Cluster } from "../components/cluster";
import {
  ETCD_IMAGE_TAGS,
  EtcdCluster,
  ETCD_METRICS_PORT,
  EtcdMember,
  etcdFlags,
  etcdImage,
  etcdKubeletConfiguration,
  etcdMembers,
  etcdNodeDocuments,
  etcdPod,
  initialCluster,
} from "../components/etcd";
import { SUPPORTED_MINORS, parseConfig } from "../config";
import { decodeUserData } from "../scripts/renderLib";
import { FIXTURES, Registration, ofType, settle, setupMocks, valueOf } from "./mocks";

const ZONES = ["eu-west-1a", "eu-west-1b", "eu-west-1c"];
const SUBNETS = ["10.0.0.0/19", "10.0.32.0/19", "10.0.64.0/19"];
const host = (ip: string) => `ip-${ip.replace(/\./g, "-")}.eu-west-1.compute.internal`;
const MEMBER_IPS = ["10.0.0.20", "10.0.32.20", "10.0.64.20"];
const MASTER_IPS = ["10.0.0.10", "10.0.32.10", "10.0.64.10"];
const HARDENING = {
  metadataOptions: { httpEndpoint: "enabled", httpTokens: "required", httpPutResponseHopLimit: 1 },
  rootBlockDevice: { volumeType: "gp3", volumeSize: 40, encrypted: true, deleteOnTermination: true },
  userDataReplaceOnChange: false,
};
const TIMINGS = [
  { name: "heartbeat-interval", value: "150" },
  { name: "election-timeout", value: "1500" },
];

/** What each topology must produce, side by side. */
const TOPOLOGIES = [
  {
    topology: "stacked" as const,
    name: "st",
    etcd: { topology: "stacked", heartbeatIntervalMs: 150, electionTimeoutMs: 1500 },
    memberIps: [] as string[],
    memberZones: [] as string[],
    endpoints: MASTER_IPS.map((ip) => `https://${ip}:2379`),
    // Each API server's own member first, then the other masters (a kubeadm patch).
    etcdServers: [
      "https://127.0.0.1:2379,https://10.0.32.10:2379,https://10.0.64.10:2379",
      "https://127.0.0.1:2379,https://10.0.0.10:2379,https://10.0.64.10:2379",
      "https://127.0.0.1:2379,https://10.0.0.10:2379,https://10.0.32.10:2379",
    ] as (string | undefined)[],
    clusterEtcd: { local: { dataDir: "/var/lib/etcd", extraArgs: TIMINGS } } as object,
    etcdRules: ["control-plane-from-control-plane-tcp-2379-2380"],
    securityGroups: ["control-plane", "worker"],
    iamRoles: ["st-eu-west-1-control-plane", "st-eu-west-1-worker"],
    controlPlaneSecret: ["bootstrap-token", "ca.crt", "ca.key", "encryption-config.yaml", "etcd/ca.crt", "etcd/ca.key", "front-proxy-ca.crt", "front-proxy-ca.key", "sa.key", "sa.pub"],
    etcdSecret: undefined as string[] | undefined,
    masterEnv: { ETCD_TOPOLOGY: "stacked" } as Record<string, string>,
  },
  {
    topology: "external" as const,
    name: "ex",
    etcd: { topology: "external", nodeCount: 3, rootVolumeGiB: 40, heartbeatIntervalMs: 150, electionTimeoutMs: 1500 },
    memberIps: MEMBER_IPS,
    memberZones: ZONES,
    endpoints: MEMBER_IPS.map((ip) => `https://${ip}:2379`),
    // kubeadm renders --etcd-servers from etcd.external.endpoints; no patch.
    etcdServers: [undefined, undefined, undefined] as (string | undefined)[],
    clusterEtcd: {
      external: {
        endpoints: MEMBER_IPS.map((ip) => `https://${ip}:2379`),
        caFile: "/etc/kubernetes/pki/etcd/ca.crt",
        certFile: "/etc/kubernetes/pki/apiserver-etcd-client.crt",
        keyFile: "/etc/kubernetes/pki/apiserver-etcd-client.key",
      },
    } as object,
    // The members reach each other's client port too: a replacement's etcd-rejoin.sh asks them.
    etcdRules: ["etcd-from-control-plane-tcp-2379", "etcd-from-etcd-tcp-2379-2380"],
    securityGroups: ["control-plane", "etcd", "worker"],
    iamRoles: ["ex-eu-west-1-control-plane", "ex-eu-west-1-etcd", "ex-eu-west-1-worker"],
    controlPlaneSecret: [
      "apiserver-etcd-client.crt",
      "apiserver-etcd-client.key",
      "bootstrap-token",
      "ca.crt",
      "ca.key",
      "encryption-config.yaml",
      "etcd/ca.crt",
      "etcd/ca.key",
      "front-proxy-ca.crt",
      "front-proxy-ca.key",
      "sa.key",
      "sa.pub",
    ],
    etcdSecret: ["etcd/ca.crt", "etcd/ca.key", ...MEMBER_IPS.flatMap((ip) => ["peer.crt", "peer.key", "server.crt", "server.key"].map((f) => `members/${host(ip)}/${f}`))].sort(),
    masterEnv: { ETCD_TOPOLOGY: "external", ETCD_ENDPOINTS: MEMBER_IPS.map((ip) => `https://${ip}:2379`).join(",") } as Record<string, string>,
  },
];

let regs: Registration[];
const clusters: Record<string, Cluster> = {};
/** Options and inputs as the components passed them, before the mocks resolved anything. */
const opts = new Map<string, pulumi.CustomResourceOptions>();
const props = new Map<string, Record<string, unknown>>();

beforeAll(async () => {
  regs = await setupMocks();
  for (const t of TOPOLOGIES) {
    const config = parseConfig({
      region: "eu-west-1",
      clusterName: t.name,
      network: { vpcCidr: "10.0.0.0/16", availabilityZones: ZONES },
      etcd: t.etcd,
      apiLoadBalancer: { allowedCidrs: ["203.0.113.0/24"] },
      workerPools: [],
    });
    clusters[t.name] = new Cluster(t.name, { config }, {
      transformations: [
        (a) => {
          opts.set(a.name, a.opts as pulumi.CustomResourceOptions);
          props.set(a.name, a.props);
          return undefined;
        },
      ],
    });
  }
  await valueOf(pulumi.all(Object.values(clusters).map((c) => c.kubeconfig)));
  await settle();
}, 60000);

const mine = (t: { name: string }) => regs.filter((r) => r.name.startsWith(`${t.name}-`));
const instances = (t: { name: string }, role: string) => ofType(mine(t), "aws:ec2/instance:Instance").filter((r) => r.inputs.tags["kubeadm-ha/role"] === role);
const cloudConfig = (r: Registration) => parse(decodeUserData(r.inputs.userDataBase64, true), { version: "1.1" }) as { write_files: Array<{ path: string; content: string }> };
const file = (r: Registration, p: string) => cloudConfig(r).write_files.find((f) => f.path === p)?.content;
const secretJson = (t: { name: string }, slug: string) => {
  const v = mine(t).find((r) => r.name === `${t.name}-secrets-${slug}-version`);
  return v ? (JSON.parse(v.inputs.secretString.value) as Record<string, string>) : undefined;
};

describe.each(TOPOLOGIES)("etcd topology $topology", (t) => {
  it("etcd machines: count, zones and fixed addresses", () => {
    const etcd = instances(t, "etcd");
    expect(etcd.map((r) => r.inputs.privateIp)).toEqual(t.memberIps);
    expect(etcd.map((r) => r.inputs.availabilityZone)).toEqual(t.memberZones);
    expect(new Set(etcd.map((r) => r.inputs.availabilityZone)).size).toBe(t.memberIps.length);
    expect(instances(t, "control-plane").map((r) => r.inputs.privateIp)).toEqual(MASTER_IPS);
  });

  it("outputs the etcd endpoints the API servers use", async () => {
    expect(clusters[t.name].etcdEndpoints).toEqual(t.endpoints);
    expect(clusters[t.name].etcdIps).toEqual(t.memberIps);
    expect(clusters[t.name].etcdTopology).toBe(t.topology);
  });

  it("API servers: --etcd-servers patch only when stacked, etcd.external endpoints only when external", () => {
    instances(t, "control-plane").forEach((m, i) => {
      const patch = file(m, "/etc/kubeadm-ha/patches/kube-apiserver0+json.yaml");
      expect(patch === undefined ? undefined : parse(patch, { version: "1.1" })[0].value).toBe(
        t.etcdServers[i] === undefined ? undefined : `--etcd-servers=${t.etcdServers[i]}`,
      );
    });
    const init = file(instances(t, "control-plane")[0], "/etc/kubeadm-ha/init.yaml")!;
    const cluster = parseAllDocuments(init, { version: "1.1" }).map((d) => d.toJS()).find((d) => d.kind === "ClusterConfiguration");
    // No `local` section with external etcd: kubeadm then runs no etcd on the masters.
    expect(cluster.etcd).toEqual(t.clusterEtcd);
  });

  it("masters run no etcd of their own when external: no etcd pod, patch or data dir in their documents", () => {
    instances(t, "control-plane").forEach((m, i) => {
      const docs = cloudConfig(m).write_files.filter((f) => f.path.startsWith("/etc/kubeadm-ha/"));
      expect(docs.map((f) => f.path).filter((p) => p.includes("etcd.yaml"))).toEqual([]);
      // Stacked: kubeadm's etcd.local.dataDir in the init document; external: no etcd data in any document.
      expect(docs.some((f) => f.content.includes("/var/lib/etcd"))).toBe(t.topology === "stacked" && i === 0);
    });
  });

  it("masters know the topology (fetch-secrets.sh requires the matching etcd material)", () => {
    for (const m of instances(t, "control-plane")) {
      const env = file(m, "/etc/kubeadm-ha/node.env")!;
      for (const [k, v] of Object.entries(t.masterEnv)) expect(env).toContain(`${k}='${v}'\n`);
      if (t.topology === "stacked") expect(env).not.toContain("ETCD_ENDPOINTS");
    }
  });

  it("security groups: etcd ports open between exactly the right groups", () => {
    const groups = ofType(mine(t), "aws:ec2/securityGroup:SecurityGroup").filter((r) => r.name.startsWith(`${t.name}-sg-`));
    expect(groups.map((r) => r.name.slice(`${t.name}-sg-`.length)).sort()).toEqual(t.securityGroups);
    const rules = ofType(mine(t), "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule").filter((r) => r.inputs.fromPort <= 2380 && r.inputs.toPort >= 2379);
    expect(rules.map((r) => r.name.slice(`${t.name}-sg-`.length))).toEqual(t.etcdRules);
    if (t.topology === "external")
      expect(rules.map((r) => [r.inputs.securityGroupId, r.inputs.referencedSecurityGroupId, r.inputs.fromPort, r.inputs.toPort])).toEqual([
        ["ex-sg-etcd-id", "ex-sg-control-plane-id", 2379, 2379],
        ["ex-sg-etcd-id", "ex-sg-etcd-id", 2379, 2380],
      ]);
  });

  it("IAM: an etcd role only with external etcd", () => {
    expect(ofType(mine(t), "aws:iam/role:Role").map((r) => r.inputs.name).sort()).toEqual(t.iamRoles);
  });

  it("secret material per role: the etcd CA pair wherever a certificate it signs is renewed", () => {
    expect(Object.keys(secretJson(t, "control-plane")!).sort()).toEqual(t.controlPlaneSecret);
    expect(Object.keys(secretJson(t, "worker")!)).toEqual(["bootstrap-token"]);
    const etcd = secretJson(t, "etcd");
    expect(etcd === undefined ? undefined : Object.keys(etcd).sort()).toEqual(t.etcdSecret);
  });

  it("every etcd-related machine's user data is free of keys and tokens", () => {
    for (const r of ofType(mine(t), "aws:ec2/instance:Instance")) {
      const text = decodeUserData(r.inputs.userDataBase64, true);
      expect(text).not.toMatch(/-----BEGIN [A-Z ]*PRIVATE KEY-----/);
      expect(text).not.toContain(FIXTURES.caKey.split("\n")[1]);
    }
  });
});

describe("external etcd members", () => {
  const t = TOPOLOGIES[1];
  const members = () => instances(t, "etcd");

  it("are hardened as masters: IMDSv2 only, encrypted gp3, no key pair, the etcd role and group only", () => {
    expect(members().map((r) => r.name)).toEqual(["ex-etcd-member-0", "ex-etcd-member-1", "ex-etcd-member-2"]);
    members().forEach((r, i) => {
      expect(r.inputs).toEqual({
        ami: "ami-0123456789abcdef0",
        instanceType: "m7i.large",
        availabilityZone: ZONES[i],
        subnetId: `ex-network-private-${i}-id`,
        privateIp: MEMBER_IPS[i],
        vpcSecurityGroupIds: ["ex-sg-etcd-id"],
        iamInstanceProfile: "ex-eu-west-1-etcd",
        ...HARDENING,
        userDataBase64: expect.any(String),
        tags: { "kubernetes.io/cluster/ex": "owned", "kubeadm-ha/cluster": "ex", "kubeadm-ha/role": "etcd", "kubeadm-ha/index": String(i), Name: `ex-etcd-${i}` },
      });
      expect(r.inputs.keyName).toBeUndefined();
    });
  });

  it("take new AMIs and user data one at a time: each boots after the etcd secret's version, the bootstrap objects and the gate before it", async () => {
    for (const i of [0, 1, 2]) {
      const o = opts.get(`ex-etcd-member-${i}`)!;
      expect(o.ignoreChanges).toBeUndefined();
      const deps = o.dependsOn as pulumi.Resource[];
      const urns = await Promise.all(deps.map((d) => valueOf(d.urn)));
      expect(urns.slice(0, 2)).toEqual([expect.stringMatching(/::ex-secrets-etcd-version$/), expect.stringMatching(/kubeadm-ha:index:BootstrapAssets::ex-bootstrap$/)]);
      // Then the way out of the private subnet (test/firstBoot.test.ts); never the API load balancer.
      const egress = urns.slice(2, -2);
      expect(egress).toHaveLength(10);
      expect(egress.every((u) => /::ex-network-(nat-\d|private-default-route-\d|private-rta-\d|s3-endpoint)$/.test(u))).toBe(true);
      expect(urns.slice(-2)).toEqual([
        // The first member after the ClusterState's check, each other after its predecessor's gate.
        i === 0 ? expect.stringMatching(/dynamic:ClusterState::ex-state$/) : expect.stringMatching(new RegExp(`dynamic:MachineGate::ex-etcd-member-${i - 1}-gate$`)),
        // As every resource of a cluster (test/day2-wiring.test.ts).
        expect.stringMatching(/dynamic:ClusterState::ex-state$/),
      ]);
    }
  });

  it("are replaced by deleting the old machine first", async () => {
    expect(members().map((r) => [r.name, { ...r.options, dependencies: undefined }])).toEqual(
      [0, 1, 2].map((i) => [`ex-etcd-member-${i}`, { deleteBeforeReplace: true, ignoreChanges: [], retainOnDelete: false, dependencies: undefined }]),
    );
  });

  it("certificates: server SANs are the member IP, loopback and node name; peer SANs the IP and node name", () => {
    const csr = (n: string) => mine(t).find((r) => r.name === n)!.inputs;
    MEMBER_IPS.forEach((ip, i) => {
      expect(csr(`ex-etcd-pki-member-${i}-server-csr`)).toEqual({
        privateKeyPem: expect.anything(),
        subject: { commonName: host(ip) },
        dnsNames: [host(ip), "localhost"],
        ipAddresses: [ip, "127.0.0.1"],
      });
      expect(csr(`ex-etcd-pki-member-${i}-peer-csr`)).toEqual({
        privateKeyPem: expect.anything(),
        subject: { commonName: host(ip) },
        dnsNames: [host(ip)],
        ipAddresses: [ip],
      });
    });
    expect(csr("ex-etcd-pki-apiserver-etcd-client-csr")).toEqual({ privateKeyPem: expect.anything(), subject: { commonName: "kube-apiserver-etcd-client" } });
  });

  it("certificates are signed by the etcd CA, with the usages etcd checks", async () => {
    // The mocks give every CA the same fixture PEM, so follow the inputs back to the resources they come from.
    const from = async (o: unknown) => {
      const deps: Set<pulumi.Resource> = await (o as { allResources(): Promise<Set<pulumi.Resource>> }).allResources();
      return (await Promise.all([...deps].map((r) => valueOf(r.urn)))).map((u) => u.split("::").pop()).sort();
    };
    const signed = [...[0, 1, 2].flatMap((i) => [`ex-etcd-pki-member-${i}-server-cert`, `ex-etcd-pki-member-${i}-peer-cert`]), "ex-etcd-pki-apiserver-etcd-client-cert"];
    for (const n of signed) {
      expect({ n, key: await from(props.get(n)!.caPrivateKeyPem) }).toEqual({ n, key: ["ex-pki-etcd-ca-key"] });
      expect({ n, cert: await from(props.get(n)!.caCertPem) }).toEqual({ n, cert: ["ex-pki-etcd-ca-cert"] });
    }
    const uses = (n: string) => mine(t).find((r) => r.name === n)!.inputs.allowedUses;
    expect(uses("ex-etcd-pki-member-0-server-cert")).toEqual(["digital_signature", "key_encipherment", "server_auth", "client_auth"]);
    expect(uses("ex-etcd-pki-member-0-peer-cert")).toEqual(["digital_signature", "key_encipherment", "server_auth", "client_auth"]);
    expect(uses("ex-etcd-pki-apiserver-etcd-client-cert")).toEqual(["digital_signature", "key_encipherment", "client_auth"]);
    expect(ofType(mine(t), "tls:index/locallySignedCert:LocallySignedCert").filter((r) => r.name.startsWith("ex-etcd-pki-"))).toHaveLength(7);
  });

  it("each member's user data: its own static pod, naming every member in --initial-cluster", () => {
    members().forEach((r, i) => {
      const env = file(r, "/etc/kubeadm-ha/node.env")!;
      expect(env).toContain("NODE_ROLE='etcd'\n");
      expect(env).toContain(`NODE_NAME='${host(MEMBER_IPS[i])}'\n`);
      expect(env).toContain("SECRET_ID='arn:aws:secretsmanager:eu-west-1:123456789012:secret:ex/bootstrap/etcd-AbCdEf'\n");
      expect(env).not.toContain("API_ENDPOINT");
      const pod = parse(file(r, "/etc/kubeadm-ha/etcd.yaml")!, { version: "1.1" });
      const command: string[] = pod.spec.containers[0].command;
      expect(pod.spec.containers[0].image).toBe("registry.k8s.io/etcd:3.6.9-0");
      expect(command).toContain(`--name=${host(MEMBER_IPS[i])}`);
      expect(command).toContain(`--initial-cluster=${MEMBER_IPS.map((ip) => `${host(ip)}=https://${ip}:2380`).join(",")}`);
      expect(command).toContain("--heartbeat-interval=150");
      expect(command).toContain("--election-timeout=1500");
      expect(parse(file(r, "/etc/kubeadm-ha/kubelet-etcd.yaml")!, { version: "1.1" })).toEqual(etcdKubeletConfiguration());
    });
  });
});

describe("etcd pure functions", () => {
  const members = etcdMembers(3, ZONES, SUBNETS, "eu-west-1");

  it.each([
    [3, [["eu-west-1a", "10.0.0.20"], ["eu-west-1b", "10.0.32.20"], ["eu-west-1c", "10.0.64.20"]]],
    [5, [["eu-west-1a", "10.0.0.20"], ["eu-west-1b", "10.0.32.20"], ["eu-west-1c", "10.0.64.20"], ["eu-west-1a", "10.0.0.21"], ["eu-west-1b", "10.0.32.21"]]],
    [7, [["eu-west-1a", "10.0.0.20"], ["eu-west-1b", "10.0.32.20"], ["eu-west-1c", "10.0.64.20"], ["eu-west-1a", "10.0.0.21"], ["eu-west-1b", "10.0.32.21"], ["eu-west-1c", "10.0.64.21"], ["eu-west-1a", "10.0.0.22"]]],
  ])("%d members spread round-robin from host .20, clear of the masters at .10", (n, expected) => {
    expect(etcdMembers(n as number, ZONES, SUBNETS, "eu-west-1").map((m) => [m.zone, m.ip])).toEqual(expected);
  });

  it.each([2, 4, 9])("refuses %d members", (n) => {
    expect(() => etcdMembers(n, ZONES, SUBNETS, "eu-west-1")).toThrow(`etcdMembers: count must be 3, 5 or 7 (got ${n})`);
  });

  it("initial-cluster names every member by node name with its peer URL", () => {
    expect(initialCluster(members)).toBe(
      "ip-10-0-0-20.eu-west-1.compute.internal=https://10.0.0.20:2380,ip-10-0-32-20.eu-west-1.compute.internal=https://10.0.32.20:2380,ip-10-0-64-20.eu-west-1.compute.internal=https://10.0.64.20:2380",
    );
  });

  it("a member's flags, exactly", () => {
    const v = { clusterName: "ex", kubernetesVersion: "1.35.0", timings: { heartbeatIntervalMs: 100, electionTimeoutMs: 1000 }, members };
    expect(etcdFlags(v, members[1]).map((f) => `--${f.name}=${f.value}`)).toEqual([
      "--name=ip-10-0-32-20.eu-west-1.compute.internal",
      "--data-dir=/var/lib/etcd",
      "--listen-client-urls=https://10.0.32.20:2379,https://127.0.0.1:2379",
      "--advertise-client-urls=https://10.0.32.20:2379",
      "--listen-peer-urls=https://10.0.32.20:2380",
      "--initial-advertise-peer-urls=https://10.0.32.20:2380",
      `--initial-cluster=${initialCluster(members)}`,
      "--initial-cluster-state=new",
      "--initial-cluster-token=kubeadm-ha-ex",
      "--client-cert-auth=true",
      "--trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt",
      "--cert-file=/etc/kubernetes/pki/etcd/server.crt",
      "--key-file=/etc/kubernetes/pki/etcd/server.key",
      "--peer-client-cert-auth=true",
      "--peer-trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt",
      "--peer-cert-file=/etc/kubernetes/pki/etcd/peer.crt",
      "--peer-key-file=/etc/kubernetes/pki/etcd/peer.key",
      "--heartbeat-interval=100",
      "--election-timeout=1000",
      "--listen-metrics-urls=http://127.0.0.1:2381",
      "--snapshot-count=10000",
    ]);
    // etcd 3.6 renamed every --experimental-* flag; 3.5 members (Kubernetes 1.31-1.33) need the old names.
    expect(etcdFlags(v, members[0]).some((f) => f.name.startsWith("experimental"))).toBe(false);
  });

  it("the pod mounts exactly the data directory and the member's certificate directory", () => {
    const v = { clusterName: "ex", kubernetesVersion: "1.31.4", timings: { heartbeatIntervalMs: 100, electionTimeoutMs: 1000 }, members };
    const pod = etcdPod(v, members[0]);
    expect(pod.spec.hostNetwork).toBe(true);
    expect(pod.spec.containers[0].image).toBe("registry.k8s.io/etcd:3.5.24-0");
    expect(pod.spec.volumes).toEqual([
      { name: "etcd-certs", hostPath: { path: "/etc/kubernetes/pki/etcd", type: "DirectoryOrCreate" } },
      { name: "etcd-data", hostPath: { path: "/var/lib/etcd", type: "DirectoryOrCreate" } },
    ]);
    expect(pod.spec.containers[0].livenessProbe.httpGet).toEqual({ host: "127.0.0.1", path: "/livez", port: ETCD_METRICS_PORT, scheme: "HTTP" });
  });

  it.each(Array.from({ length: SUPPORTED_MINORS.max - SUPPORTED_MINORS.min + 1 }, (_, i) => SUPPORTED_MINORS.min + i))(
    "pins kubeadm's etcd image for Kubernetes 1.%d",
    (minor) => {
      expect(etcdImage(`1.${minor}.0`)).toBe(`registry.k8s.io/etcd:${ETCD_IMAGE_TAGS[minor]}`);
      expect(ETCD_IMAGE_TAGS[minor]).toMatch(minor <= 33 ? /^3\.5\.\d+-0$/ : /^3\.6\.\d+-0$/);
    },
  );

  it("refuses a minor without a pinned image", () => {
    expect(() => etcdImage("1.40.0")).toThrow("etcdImage: no etcd image pinned for Kubernetes 1.40; add kubeadm's SupportedEtcdVersion entry to ETCD_IMAGE_TAGS");
  });

  it("renders deterministically: the same values give byte-identical documents", () => {
    const v = { clusterName: "ex", kubernetesVersion: "1.35.0", timings: { heartbeatIntervalMs: 100, electionTimeoutMs: 1000 }, members, region: "eu-west-1", secretArn: "arn" };
    expect(etcdNodeDocuments(v, members[2])).toEqual(etcdNodeDocuments({ ...v, members: members.map((m) => ({ ...m }) as EtcdMember) }, members[2]));
  });

  it("agrees with the bootstrap script on the health URL and the file names cloud-init writes", () => {
    const bootstrap = fs.readFileSync(path.join(__dirname, "../cloud-init/scripts/bootstrap.sh"), "utf8");
    expect(bootstrap).toContain(`ETCD_HEALTH_URL=\${ETCD_HEALTH_URL:-http://127.0.0.1:${ETCD_METRICS_PORT}/health}`);
    const docs = etcdNodeDocuments({ clusterName: "ex", kubernetesVersion: "1.35.0", timings: { heartbeatIntervalMs: 100, electionTimeoutMs: 1000 }, members, region: "eu-west-1", secretArn: "arn" }, members[0]);
    for (const name of Object.keys(docs.kubeadm)) expect(bootstrap).toContain(`$KUBEADM_HA_ETC/${name}`);
  });

  it.each([
    [[...members, ...etcdMembers(5, ZONES, SUBNETS, "eu-west-1").slice(3, 4)], "EtcdCluster: members must number 3, 5 or 7 (got 4)"],
    [[members[0], members[1], members[0]], "EtcdCluster: member names must be distinct"],
  ])("EtcdCluster refuses bad members before registering anything (%#)", (ms, message) => {
    const before = regs.length;
    expect(() => new EtcdCluster("bad", { clusterName: "x", region: "eu-west-1", kubernetesVersion: "1.35.0", members: ms, instanceType: "m7i.large", rootVolumeGiB: 50,
      amiId: "ami-0123456789abcdef0", privateSubnetIds: ["a", "b", "c"], securityGroupIds: ["sg"], instanceProfileName: "p", secretArn: "arn", bootstrapBucket: "b",
      timings: { heartbeatIntervalMs: 100, electionTimeoutMs: 1000 }, tags: {} })).toThrow(new Error(message));
    expect(regs.length).toBe(before);
  });

  it("agrees with fetch-secrets.sh on where a member's files are in the etcd secret", () => {
    const fetch = fs.readFileSync(path.join(__dirname, "../cloud-init/scripts/fetch-secrets.sh"), "utf8");
    expect(fetch).toContain('own[f"members/{node}/{f}"] = "etcd/" + f');
    expect(fetch).toContain('for f in ("server.crt", "server.key", "peer.crt", "peer.key"):');
    const keys = Object.keys(secretJson(TOPOLOGIES[1], "etcd")!).filter((k) => k.startsWith(`members/${members[0].name}/`));
    expect(keys.sort()).toEqual(["peer.crt", "peer.key", "server.crt", "server.key"].map((f) => `members/${members[0].name}/${f}`));
  });
});
