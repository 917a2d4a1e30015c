/**
 * The whole program, per stack, under mocks: what `npm run render` writes, from the run's shared
 * evaluation of each stack (test/capture.ts). Golden files of the dev stack's user data and kubeadm
 * documents are committed; a diff here is a change in what runs on machines. Regenerate with
 * `UPDATE_GOLDEN=1 npx jest test/render.test.ts` and review the diff. The render as a command, in
 * its own process, and cloud-init's schema check are in test/render-cli.test.ts.
 */
import * as fs from "fs";
import * as path from "path";
import { parse } from "yaml";
import { addonVersions } from "../components/addons";
import { VARIANTS, captureAll } from "./capture";
import { FIXTURES, mockRandomBytes } from "./mocks";

const GOLDEN = path.join(__dirname, "golden");

const rendered: Record<string, Record<string, string>> = {};
beforeAll(async () => {
  [rendered.dev, rendered.prod] = (await captureAll([VARIANTS.dev, VARIANTS.prod])).map((c) => c.files);
}, 120000);

const userData = (stack: string) => Object.entries(rendered[stack]).filter(([k]) => k.startsWith("user-data/"));

describe.each(["dev", "prod"])("stack %s", (stack) => {
  it("renders three masters' user data and the review files", () => {
    expect(Object.keys(rendered[stack]).filter((k) => k.startsWith(`user-data/${stack}-control-plane-`)).sort()).toEqual(
      [0, 1, 2].map((i) => `user-data/${stack}-control-plane-master-${i}.yaml`),
    );
    expect(Object.keys(rendered[stack])).toEqual(expect.arrayContaining(["resources.md", "topology.mmd", "outputs.json"]));
  });

  it("renders one user data and one JoinConfiguration a worker pool, from its launch template", () => {
    const pools = stack === "dev" ? ["general", "spot"] : ["general", "memory"];
    expect(Object.keys(rendered[stack]).filter((k) => k.includes(`${stack}-pool-`)).sort()).toEqual(
      pools.sort().flatMap((p) => [`kubeadm/${stack}-pool-${p}-launch-template/join.yaml`, `user-data/${stack}-pool-${p}-launch-template.yaml`]).sort(),
    );
    expect(Object.keys(JSON.parse(rendered[stack]["outputs.json"]).workerAutoScalingGroups).sort()).toEqual(pools);
  });

  it("no private key, token or certificate key appears in any user data", () => {
    const keyLines = [FIXTURES.caKey, FIXTURES.clientKey].map((k) => k.split("\n")[1]);
    for (const [name, text] of userData(stack)) {
      expect({ name, pem: /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text) }).toEqual({ name, pem: false });
      for (const line of keyLines) expect(text).not.toContain(line);
      // The mocked bootstrap token is lower-case [a-z0-9]{6}.[a-z0-9]{16}; only the placeholder may appear.
      expect(text.match(/\b[a-z0-9]{6}\.[a-z0-9]{16}\b/g) ?? []).toEqual([]);
      expect(text).toContain("__BOOTSTRAP_TOKEN__");
    }
  });

  it("the Secrets encryption key exists and is in no rendered file: it travels in the control plane's secret only", () => {
    expect(rendered[stack]["resources.md"]).toContain(`| \`random:index/randomBytes:RandomBytes\` | ${stack}-encryption-key1 | length=32 |`);
    const key = mockRandomBytes(`${stack}-encryption-key1`, 32).base64;
    const holding = Object.entries(rendered[stack]).filter(([, text]) => text.includes(key)).map(([file]) => file);
    expect(holding).toEqual([]);
  });

  it("keeps the kubeconfig output secret", () => {
    expect(JSON.parse(rendered[stack]["outputs.json"]).kubeconfig).toBe("[secret]");
  });
});

// User data size per role and topology, against EC2's 16 KB with 4 KB spare: test/userDataSize.test.ts.

describe("add-ons", () => {
  it("dev (internet-facing API): addons.md and the outputs list every add-on with its pinned version, installed by pulumi", () => {
    const v = addonVersions("1.35.0");
    const expected = [
      ["cilium", "cilium", v.cilium, "kube-system"],
      ["aws-cloud-controller-manager", "aws-cloud-controller-manager", v.awsCloudControllerManagerChart, "kube-system"],
      ["aws-ebs-csi-driver", "aws-ebs-csi-driver", v.ebsCsiDriver, "kube-system"],
      ["cluster-autoscaler", "cluster-autoscaler", v.clusterAutoscalerChart, "kube-system"],
      ["aws-node-termination-handler", "aws-node-termination-handler", v.nodeTerminationHandlerChart, "kube-system"],
    ];
    const rows = rendered.dev["addons.md"].split("\n").filter((l) => l.startsWith("| ") && !l.startsWith("| add-on"));
    expect(rows.map((l) => l.split(" | ").map((c) => c.replace(/^\| |`| from .*$| \|$/g, "")))).toEqual(expected.map((e) => [...e, "pulumi"]));
    const out = JSON.parse(rendered.dev["outputs.json"]).addons;
    expect(out.map((a: { name: string; chart: string; version: string; namespace: string; installer: string }) => [a.name, a.chart, a.version, a.namespace, a.installer])).toEqual(
      expected.map((e) => [...e, "pulumi"]),
    );
    expect(rendered.dev["resources.md"].match(/`kubernetes:helm.sh\/v3:Release`/g)).toHaveLength(5);
  });

  it("prod (internal API): the first master installs them; no Helm release is a Pulumi resource", () => {
    expect(JSON.parse(rendered.prod["outputs.json"]).addons.map((a: { installer: string }) => a.installer)).toEqual(["nodes", "nodes", "nodes", "nodes", "nodes"]);
    expect(rendered.prod["resources.md"]).not.toContain("kubernetes:helm.sh");
    expect(rendered.prod["user-data/prod-control-plane-master-0.yaml"]).toMatch(/^ *[0-9a-f]{64} 0755 lib\/addons\.sh$/m);
    expect(rendered.prod["user-data/prod-control-plane-master-1.yaml"]).not.toContain("addons");
  });
});

describe("topology", () => {
  it("dev: stacked etcd on three masters in three zones behind the nodes' internal NLB and the people's internet-facing one", () => {
    const out = JSON.parse(rendered.dev["outputs.json"]);
    expect(out.etcdTopology).toBe("stacked");
    expect(out.masterIps).toEqual(["10.10.0.10", "10.10.32.10", "10.10.64.10"]);
    expect(out.etcdEndpoints).toEqual(out.masterIps.map((ip: string) => `https://${ip}:2379`));
    const mmd = rendered.dev["topology.mmd"];
    expect(mmd).toContain('nlb(["NLB dev-api (internal, nodes) TCP 6443"])');
    expect(mmd).toContain('publicNlb(["NLB dev-api-pub (internet-facing, people) TCP 6443"])');
    for (const zone of ["eu-west-1a", "eu-west-1b", "eu-west-1c"]) expect(mmd).toContain(`["${zone}"]`);
    expect(mmd.match(/ nlb --> /g)).toHaveLength(3);
    expect(mmd.match(/publicNlb --> /g)).toHaveLength(3);
    expect(mmd.match(/-- join via NLB --> nlb\n/g)).toHaveLength(2);
  });

  it("dev: an on-demand pool and a tainted Spot pool over every zone", () => {
    const join = (pool: string) => parse(rendered.dev[`kubeadm/dev-pool-${pool}-launch-template/join.yaml`], { version: "1.1" }).nodeRegistration;
    expect(join("general").taints).toEqual([]);
    expect(join("spot").taints).toEqual([{ key: "workload", value: "batch", effect: "NoSchedule" }]);
    expect(join("spot").kubeletExtraArgs).toContainEqual({
      name: "node-labels",
      value: "kubeadm-ha/capacity-type=spot,kubeadm-ha/pool=spot,node.kubernetes.io/lifecycle=spot,workload=batch",
    });
    const mmd = rendered.dev["topology.mmd"];
    expect(mmd).toContain("worker pool dev-pool-general-group<br/>t3.large, on-demand<br/>min 1 / max 3, all zones");
    expect(mmd).toContain("worker pool dev-pool-spot-group<br/>m7i.large, m6i.large, m5.large, spot<br/>min 0 / max 4, all zones");
  });

  it("prod: internal NLB", () => {
    expect(rendered.prod["topology.mmd"]).toContain("NLB prod-api (internal)");
  });

  it("prod: external etcd on three machines in three zones, every master pointing at every member", () => {
    const out = JSON.parse(rendered.prod["outputs.json"]);
    expect(out.etcdTopology).toBe("external");
    expect(out.etcdIps).toEqual(["10.20.0.20", "10.20.32.20", "10.20.64.20"]);
    expect(out.etcdEndpoints).toEqual(out.etcdIps.map((ip: string) => `https://${ip}:2379`));
    expect(Object.keys(rendered.prod).filter((k) => k.startsWith("user-data/prod-etcd-")).sort()).toEqual([0, 1, 2].map((i) => `user-data/prod-etcd-member-${i}.yaml`));
    const mmd = rendered.prod["topology.mmd"];
    // One zone box each: the member sits with the master of its zone.
    const zones = mmd.split("  subgraph ").slice(1).map((box) => box.slice(0, box.indexOf("\n  end")));
    expect(zones.map((box) => [box.match(/\["(eu-west-1[abc])"\]/)![1], (box.match(/etcd prod-etcd-member-\d/g) ?? []).join()])).toEqual([
      ["eu-west-1a", "etcd prod-etcd-member-0"],
      ["eu-west-1b", "etcd prod-etcd-member-1"],
      ["eu-west-1c", "etcd prod-etcd-member-2"],
    ]);
    for (const m of [0, 1, 2])
      for (const e of [0, 1, 2]) expect(mmd).toContain(`prod_control_plane_master_${m} -. etcd 2379 .-> prod_etcd_member_${e}`);
    expect(rendered.dev["topology.mmd"]).not.toContain("etcd 2379");
    expect(JSON.parse(rendered.dev["outputs.json"]).etcdIps).toEqual([]);
  });
});

describe("golden files (dev)", () => {
  const golden = () => Object.entries(rendered.dev).filter(([k]) => k.startsWith("user-data/") || k.startsWith("kubeadm/"));

  it("match the committed render byte for byte", () => {
    if (process.env.UPDATE_GOLDEN) {
      fs.rmSync(path.join(GOLDEN, "dev"), { recursive: true, force: true });
      for (const [rel, content] of golden()) {
        fs.mkdirSync(path.dirname(path.join(GOLDEN, "dev", rel)), { recursive: true });
        fs.writeFileSync(path.join(GOLDEN, "dev", rel), content);
      }
    }
    const committed = (dir: string): string[] =>
      fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? committed(path.join(dir, e.name)) : [path.join(dir, e.name)]));
    const files = committed(path.join(GOLDEN, "dev")).map((f) => path.relative(path.join(GOLDEN, "dev"), f));
    expect(files.sort()).toEqual(golden().map(([k]) => k).sort());
    for (const [rel, content] of golden()) expect({ rel, content }).toEqual({ rel, content: fs.readFileSync(path.join(GOLDEN, "dev", rel), "utf8") });
  });
});
