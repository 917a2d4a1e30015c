import * as pulumi from "@pulumi/pulumi";
import { parse, parseAllDocuments } from "yaml";
import { ControlPlane, masterDocuments, placeNodes, privateDnsName } from "../components/controlPlane";
import { encryptionProviderArgs } from "../cloud-init/encryption";
import { decodeUserData } from "../scripts/renderLib";
import { Registration, ofType, settle, setupMocks, valueOf } from "./mocks";
import { LEADER_ELECTION as LE, SUBNETS, ZONES, masterValues } from "./values";

describe("placement", () => {
  it.each([
    ["10.0.0.10", "eu-west-1", "ip-10-0-0-10.eu-west-1.compute.internal"],
    ["10.1.2.3", "us-east-1", "ip-10-1-2-3.ec2.internal"],
    ["172.16.0.10", "ap-southeast-2", "ip-172-16-0-10.ap-southeast-2.compute.internal"],
  ])("privateDnsName(%s, %s) = %s", (ip, region, name) => expect(privateDnsName(ip, region)).toBe(name));

  it.each([
    [3, [["eu-west-1a", "10.0.0.10"], ["eu-west-1b", "10.0.32.10"], ["eu-west-1c", "10.0.64.10"]]],
    [5, [["eu-west-1a", "10.0.0.10"], ["eu-west-1b", "10.0.32.10"], ["eu-west-1c", "10.0.64.10"], ["eu-west-1a", "10.0.0.11"], ["eu-west-1b", "10.0.32.11"]]],
  ])("%d masters spread round-robin with fixed addresses", (count, expected) => {
    expect(placeNodes(count as number, ZONES, SUBNETS, "eu-west-1").map((p) => [p.zone, p.ip])).toEqual(expected);
  });

  it("never puts two of three masters in one zone", () => {
    expect(new Set(placeNodes(3, ZONES, SUBNETS, "eu-west-1").map((p) => p.zone)).size).toBe(3);
  });

  it("rejects zones and subnets that do not pair up", () => {
    expect(() => placeNodes(3, ZONES, SUBNETS.slice(0, 2), "eu-west-1")).toThrow("placeNodes: 3 zones but 2 subnets");
  });
});

const values = masterValues;

describe("masterDocuments", () => {
  it("gives only the first master an init document", () => {
    const v = values();
    expect(Object.keys(masterDocuments(v, v.masters[0]).kubeadm).sort()).toEqual(["init.yaml", "join.yaml", "patches/kube-apiserver0+json.yaml"]);
    expect(Object.keys(masterDocuments(v, v.masters[1]).kubeadm).sort()).toEqual(["join.yaml", "patches/kube-apiserver0+json.yaml"]);
    expect(masterDocuments(v, v.masters[0]).env.INIT_NODE).toBe("true");
    expect(masterDocuments(v, v.masters[2]).env.INIT_NODE).toBe("false");
  });

  it("patches each API server with its own member first", () => {
    const v = values();
    const patch = (i: number) => parse(masterDocuments(v, v.masters[i]).kubeadm["patches/kube-apiserver0+json.yaml"], { version: "1.1" });
    expect(patch(1)).toEqual([
      { op: "add", path: "/spec/containers/0/command/-", value: "--etcd-servers=https://127.0.0.1:2379,https://10.0.0.10:2379,https://10.0.64.10:2379" },
    ]);
    expect(patch(2)[0].value).toBe("--etcd-servers=https://127.0.0.1:2379,https://10.0.0.10:2379,https://10.0.32.10:2379");
  });

  it("has no etcd patch and an external etcd section when etcd is external", () => {
    const externalEtcd = { endpoints: ["https://10.0.0.20:2379"], caFile: "/a", certFile: "/b", keyFile: "/c" };
    const v = values({ externalEtcd });
    const docs = masterDocuments(v, v.masters[0]).kubeadm;
    expect(Object.keys(docs).sort()).toEqual(["init.yaml", "join.yaml"]);
    const cluster = parseAllDocuments(docs["init.yaml"], { version: "1.1" }).map((d) => d.toJS()).find((d) => d.kind === "ClusterConfiguration");
    expect(cluster.etcd).toEqual({ external: externalEtcd });
  });

  it("writes the node's identity and where its secrets are, never the secrets", () => {
    const v = values();
    expect(masterDocuments(v, v.masters[1]).env).toEqual({
      CLUSTER_NAME: "dev",
      NODE_ROLE: "control-plane",
      NODE_NAME: "ip-10-0-32-10.eu-west-1.compute.internal",
      NODE_IP: "10.0.32.10",
      INIT_NODE: "false",
      KUBERNETES_VERSION: "1.35.0",
      KUBERNETES_MINOR: "1.35",
      API_ENDPOINT: "dev-api.elb.eu-west-1.amazonaws.com:6443",
      AWS_REGION: "eu-west-1",
      SECRET_ID: v.secretArn,
      CERT_RENEW_BEFORE_DAYS: "60",
      CONTROL_PLANE_IPS: "10.0.0.10,10.0.32.10,10.0.64.10",
      JOIN_TOKEN_TTL_HOURS: "24",
      ETCD_TOPOLOGY: "stacked",
      ETCD_MEMBERS: [0, 32, 64].map((o) => `ip-10-0-${o}-10.eu-west-1.compute.internal=https://10.0.${o}.10:2380`).join(","),
      ETCD_IMAGE: "registry.k8s.io/etcd:3.6.9-0",
    });
  });

  it("tells token-rotate.sh the workers' secret and the token's lifetime, and cert-renew.sh its threshold", () => {
    const v = values({ workerSecretArn: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:dev/bootstrap/worker-AbCdEf", joinTokenTtlHours: 6, certRenewBeforeDays: 30 });
    const env = masterDocuments(v, v.masters[0]).env;
    expect([env.WORKER_SECRET_ID, env.JOIN_TOKEN_TTL_HOURS, env.CERT_RENEW_BEFORE_DAYS]).toEqual([v.workerSecretArn, "6", "30"]);
    expect(masterDocuments(v, v.masters[0]).kubeadm["init.yaml"]).toContain("ttl: 6h");
  });
});

describe("masterDocuments, every switch", () => {
  const externalEtcd = { endpoints: ["https://10.0.0.20:2379", "https://10.0.32.20:2379"], caFile: "/a", certFile: "/b", keyFile: "/c" };
  const docs = (text: string) => parseAllDocuments(text, { version: "1.1" }).map((d) => d.toJS());
  const clusterOf = (v: ReturnType<typeof values>) => docs(masterDocuments(v, v.masters[0]).kubeadm["init.yaml"]).find((d) => d.kind === "ClusterConfiguration");

  it("external etcd: the members' endpoints for kubeadm init to wait for, no stacked member", () => {
    const v = values({ externalEtcd, etcdTimings: { heartbeatIntervalMs: 150, electionTimeoutMs: 1500 } });
    const env = masterDocuments(v, v.masters[2]).env;
    expect(env).toMatchObject({ ETCD_TOPOLOGY: "external", ETCD_ENDPOINTS: "https://10.0.0.20:2379,https://10.0.32.20:2379" });
    expect(Object.keys(env).filter((k) => k.startsWith("ETCD_")).sort()).toEqual(["ETCD_ENDPOINTS", "ETCD_TOPOLOGY"]);
    expect(clusterOf(v).etcd).toEqual({ external: externalEtcd });
  });

  it("the init document: the cluster's values, three documents, the master registered as itself", () => {
    const v = values({ etcdTimings: { heartbeatIntervalMs: 150, electionTimeoutMs: 1500 } });
    const [init, cluster, kubelet] = docs(masterDocuments(v, v.masters[0]).kubeadm["init.yaml"]);
    expect([init.kind, cluster.kind, kubelet.kind]).toEqual(["InitConfiguration", "ClusterConfiguration", "KubeletConfiguration"]);
    expect(init.localAPIEndpoint).toEqual({ advertiseAddress: "10.0.0.10", bindPort: 6443 });
    expect(init.nodeRegistration.name).toBe("ip-10-0-0-10.eu-west-1.compute.internal");
    expect(cluster).toMatchObject({
      clusterName: "dev",
      kubernetesVersion: "v1.35.0",
      controlPlaneEndpoint: "dev-api.elb.eu-west-1.amazonaws.com:6443",
      networking: { podSubnet: "10.244.0.0/16", serviceSubnet: "10.96.0.0/12" },
      apiServer: { certSANs: ["dev-api.elb.eu-west-1.amazonaws.com"] },
      etcd: { local: { dataDir: "/var/lib/etcd", extraArgs: [{ name: "heartbeat-interval", value: "150" }, { name: "election-timeout", value: "1500" }] } },
    });
    expect(cluster.scheduler.extraArgs.map((a: { value: string }) => a.value)).toEqual(["true", "15s", "10s", "2s"]);
  });

  it("the join document: discovery through the load balancer by the CA hash, as a control plane", () => {
    const v = values();
    const [join] = docs(masterDocuments(v, v.masters[1]).kubeadm["join.yaml"]);
    expect(join.discovery.bootstrapToken).toEqual({ apiServerEndpoint: "dev-api.elb.eu-west-1.amazonaws.com:6443", token: "__BOOTSTRAP_TOKEN__", caCertHashes: [v.caCertHash] });
    expect(join.controlPlane).toEqual({ localAPIEndpoint: { advertiseAddress: "10.0.32.10", bindPort: 6443 } });
    expect(join.nodeRegistration.kubeletExtraArgs).toEqual([{ name: "cloud-provider", value: "external" }, { name: "node-ip", value: "10.0.32.10" }]);
  });

  it("encryption at rest points the API servers at the file; off, no flag", () => {
    expect(clusterOf(values({ encryptionAtRest: true })).apiServer.extraArgs).toEqual(encryptionProviderArgs());
    expect(clusterOf(values({ encryptionAtRest: false })).apiServer).not.toHaveProperty("extraArgs");
  });

  it("no cloud controller: no --cloud-provider anywhere", () => {
    const v = values({ externalCloudProvider: false });
    const [join] = docs(masterDocuments(v, v.masters[1]).kubeadm["join.yaml"]);
    expect(join.nodeRegistration.kubeletExtraArgs).toEqual([{ name: "node-ip", value: "10.0.32.10" }]);
    expect(clusterOf(v).controllerManager.extraArgs.map((a: { name: string }) => a.name)).not.toContain("cloud-provider");
  });

  it("etcd backups: the bucket, prefix and key in the env, the interval for the timer; none without", () => {
    const v = values({ etcdBackup: { bucket: "b", prefix: "dev/etcd", kmsKeyArn: "arn:key", intervalMinutes: 30 } });
    const d = masterDocuments(v, v.masters[1]);
    expect(d.env).toMatchObject({ BACKUP_BUCKET: "b", BACKUP_PREFIX: "dev/etcd", BACKUP_KMS_KEY: "arn:key" });
    expect(d.backupIntervalMinutes).toBe(30);
    const none = masterDocuments(values(), values().masters[1]);
    expect(none.backupIntervalMinutes).toBeUndefined();
    expect(Object.keys(none.env).filter((k) => k.startsWith("BACKUP_"))).toEqual([]);
  });

  it("add-on files: on master 0 only, with addons.sh selected; an empty set changes nothing", () => {
    const v = values({ addonFiles: { "addons/releases": "cilium\n" } });
    const m0 = masterDocuments(v, v.masters[0]);
    expect(m0.kubeadm["addons/releases"]).toBe("cilium\n");
    expect(m0.needs).toEqual({ addons: true });
    const m1 = masterDocuments(v, v.masters[1]);
    expect(Object.keys(m1.kubeadm).sort()).toEqual(["join.yaml", "patches/kube-apiserver0+json.yaml"]);
    expect(m1).not.toHaveProperty("needs");
    const empty = masterDocuments(values({ addonFiles: {} }), v.masters[0]);
    expect(empty).not.toHaveProperty("needs");
    expect(Object.keys(empty.kubeadm).sort()).toEqual(["init.yaml", "join.yaml", "patches/kube-apiserver0+json.yaml"]);
  });

  it("placement with another offset and more masters than zones", () => {
    expect(placeNodes(4, ZONES, SUBNETS, "us-east-1", 20).map((p) => [p.index, p.subnet, p.ip, p.name])).toEqual([
      [0, 0, "10.0.0.20", "ip-10-0-0-20.ec2.internal"],
      [1, 1, "10.0.32.20", "ip-10-0-32-20.ec2.internal"],
      [2, 2, "10.0.64.20", "ip-10-0-64-20.ec2.internal"],
      [3, 0, "10.0.0.21", "ip-10-0-0-21.ec2.internal"],
    ]);
  });
});

describe("ControlPlane component", () => {
  let regs: Registration[];
  let cp: ControlPlane;
  const childOpts = new Map<string, pulumi.CustomResourceOptions>();

  beforeAll(async () => {
    regs = await setupMocks();
    cp = new ControlPlane("cp", {
      clusterName: "dev",
      region: "eu-west-1",
      kubernetesVersion: "1.35.0",
      count: 3,
      instanceType: "m7i.large",
      rootVolumeGiB: 60,
      amiId: "ami-0123456789abcdef0",
      zones: ZONES,
      privateSubnetIds: ["subnet-a", "subnet-b", "subnet-c"],
      privateSubnetCidrs: SUBNETS,
      securityGroupIds: ["sg-cp"],
      instanceProfileName: "dev-control-plane",
      targetGroupArn: "arn:tg",
      publicTargetGroupArn: "arn:tg-public",
      apiEndpoint: "dev-api.elb.eu-west-1.amazonaws.com:6443",
      publicApiHost: "dev-api-pub.elb.eu-west-1.amazonaws.com",
      secretArn: "arn:secret",
      bootstrapBucket: "dev-bootstrap-0123",
      caCertHash: pulumi.output("sha256:" + "ab".repeat(32)),
      podCidr: "10.244.0.0/16",
      serviceCidr: "10.96.0.0/12",
      leaderElection: LE,
      initMarker: "/kubeadm-ha/dev/control-plane-initialised",
      tags: { team: "platform" },
    }, {
      transformations: [
        (a) => {
          childOpts.set(a.name, a.opts as pulumi.CustomResourceOptions);
          return undefined;
        },
      ],
    });
    await valueOf(pulumi.all(cp.userData));
    await settle();
  });

  const instances = () => ofType(regs, "aws:ec2/instance:Instance");

  const attachments = () => ofType(regs, "aws:lb/targetGroupAttachment:TargetGroupAttachment").sort((a, b) => a.name.localeCompare(b.name));

  it("creates one instance a master, registered with the nodes' internal load balancer and the people's public one", () => {
    expect(instances().map((r) => r.name)).toEqual(["cp-master-0", "cp-master-1", "cp-master-2"]);
    expect(attachments().map((r) => [r.name, r.inputs])).toEqual(
      [0, 1, 2].flatMap((i) => [
        [`cp-master-${i}-api`, { targetGroupArn: "arn:tg", targetId: `cp-master-${i}-id`, port: 6443 }],
        [`cp-master-${i}-api-public`, { targetGroupArn: "arn:tg-public", targetId: `cp-master-${i}-id`, port: 6443 }],
      ]),
    );
  });

  it("the nodes' endpoint is controlPlaneEndpoint; the people's load balancer is in the API server certificate too (issue 15)", () => {
    const text = decodeUserData(instances()[0].inputs.userDataBase64, true);
    const cfg = parse(text, { version: "1.1" });
    const init = cfg.write_files.find((f: any) => f.path === "/etc/kubeadm-ha/init.yaml").content as string;
    const cluster = parseAllDocuments(init, { version: "1.1" }).map((d) => d.toJS()).find((d) => d.kind === "ClusterConfiguration");
    expect(cluster.controlPlaneEndpoint).toBe("dev-api.elb.eu-west-1.amazonaws.com:6443");
    expect(cluster.apiServer.certSANs).toEqual(["dev-api.elb.eu-west-1.amazonaws.com", "dev-api-pub.elb.eu-west-1.amazonaws.com"]);
  });

  it("puts each master in its own zone and subnet at its fixed address", () => {
    expect(instances().map((r) => [r.inputs.availabilityZone, r.inputs.subnetId, r.inputs.privateIp])).toEqual([
      ["eu-west-1a", "subnet-a", "10.0.0.10"],
      ["eu-west-1b", "subnet-b", "10.0.32.10"],
      ["eu-west-1c", "subnet-c", "10.0.64.10"],
    ]);
  });

  it("requires IMDSv2 with hop limit 1 (no pod reaches IMDS, issue 15) and encrypts the gp3 root volume", () => {
    for (const r of instances()) {
      expect(r.inputs.metadataOptions).toEqual({ httpEndpoint: "enabled", httpTokens: "required", httpPutResponseHopLimit: 1 });
      expect(r.inputs.rootBlockDevice).toEqual({ volumeType: "gp3", volumeSize: 60, encrypted: true, deleteOnTermination: true });
      expect(r.inputs.iamInstanceProfile).toBe("dev-control-plane");
      expect(r.inputs.vpcSecurityGroupIds).toEqual(["sg-cp"]);
      expect(r.inputs.userDataReplaceOnChange).toBe(false);
    }
  });

  it("tags masters with their role and index", () => {
    expect(instances().map((r) => [r.inputs.tags["kubeadm-ha/role"], r.inputs.tags["kubeadm-ha/index"], r.inputs.tags.Name, r.inputs.tags.team])).toEqual([
      ["control-plane", "0", "dev-master-0", "platform"],
      ["control-plane", "1", "dev-master-1", "platform"],
      ["control-plane", "2", "dev-master-2", "platform"],
    ]);
  });

  it("sends gzipped cloud-config that decodes to each master's own documents", () => {
    instances().forEach((r, i) => {
      const text = decodeUserData(r.inputs.userDataBase64, true);
      expect(text.startsWith("#cloud-config\n")).toBe(true);
      const cfg = parse(text, { version: "1.1" });
      const env = cfg.write_files.find((f: any) => f.path === "/etc/kubeadm-ha/node.env").content;
      expect(env).toContain(`NODE_IP='${cp.masterIps[i]}'`);
      expect(env).toContain(`INIT_NODE='${i === 0 ? "true" : "false"}'`);
      expect(cfg.runcmd).toEqual([["/usr/local/lib/kubeadm-ha/boot.sh"]]);
      expect(env).toContain("BOOTSTRAP_BUCKET='dev-bootstrap-0123'");
      // User data carries only what fetches the rest; bundle.list pins every other script by hash.
      expect(cfg.write_files.filter((f: any) => f.path.endsWith(".sh")).map((f: any) => f.path)).toEqual(
        ["boot.sh", "install.sh", "lib.sh"].map((s) => `/usr/local/lib/kubeadm-ha/${s}`),
      );
      const list = cfg.write_files.find((f: any) => f.path === "/etc/kubeadm-ha/bundle.list").content as string;
      expect(list.split("\n").filter(Boolean).map((l) => l.split(" ").slice(1).join(" "))).toEqual(
        ["bootstrap.sh", "cert-renew.sh", "day2.sh", "etcd-rejoin.sh", "etcdctl.sh", "fetch-secrets.sh", "join-lock.sh", "token-rotate.sh"].map((s) => `0755 lib/${s}`),
      );
    });
  });

  it("without a chain of health gates, ignores what would stop or replace every master at once", () => {
    // In a Cluster the masters are chained (test/day2-wiring.test.ts); standalone nothing orders them.
    for (const i of [0, 1, 2]) expect(childOpts.get(`cp-master-${i}`)?.ignoreChanges).toEqual(["ami", "userDataBase64", "instanceType"]);
    expect(cp.gates).toEqual([]);
  });

  it("replaces a master by deleting it first: its successor takes the same fixed address and name", () => {
    // What the engine receives, caller options merged; the attachments keep Pulumi's default.
    expect(instances().map((r) => [r.name, { ...r.options, dependencies: undefined }])).toEqual(
      [0, 1, 2].map((i) => [`cp-master-${i}`, { deleteBeforeReplace: true, ignoreChanges: ["ami", "userDataBase64", "instanceType"], retainOnDelete: false, dependencies: undefined }]),
    );
    expect(attachments().map((r) => r.options.deleteBeforeReplace)).toEqual(Array(6).fill(false));
  });

  it("parents every master and attachment to the component", () => {
    for (const i of [0, 1, 2]) for (const child of [`cp-master-${i}`, `cp-master-${i}-api`]) expect({ child, parent: childOpts.get(child)?.parent === cp }).toEqual({ child, parent: true });
  });

  it("exposes each master's instance id and the user data it was given, in index order", async () => {
    expect(await valueOf(pulumi.all(cp.instanceIds))).toEqual(["cp-master-0-id", "cp-master-1-id", "cp-master-2-id"]);
    expect(await valueOf(pulumi.all(cp.userData))).toEqual(instances().map((r) => r.inputs.userDataBase64));
  });

  it("exposes fixed IPs and node names before deployment", () => {
    expect(cp.masterIps).toEqual(["10.0.0.10", "10.0.32.10", "10.0.64.10"]);
    expect(cp.nodeNames[0]).toBe("ip-10-0-0-10.eu-west-1.compute.internal");
  });
});
