/**
 * The render tells the whole truth (scripts/renderReview.ts, scripts/cost.ts): stacked etcd and its
 * peer links in the diagram, pool instance types, a summary at the top of resources.md, every mock
 * value marked, every fetched script written beside its pin, a monthly cost estimate from the dated
 * price table; a failed render leaves nothing behind and `render` without a stack lists the stacks.
 */
import { spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parse } from "yaml";
import { shippedScript } from "../cloud-init/render";
import { costDoc, loadPrices } from "../scripts/cost";
import { DEPLOYER_ACTIONS, POLICY_FILE, deployerPolicy, policyFile, renderedAwsTypes } from "../scripts/deployerPolicy";

const ROOT = path.resolve(__dirname, "..");
const RENDER = path.join(ROOT, "scripts", "render.ts");

function render(args: string[]) {
  return spawnSync(process.execPath, ["-r", "@swc-node/register", RENDER, ...args], { cwd: ROOT, encoding: "utf8" });
}

function renderTo(stack: string): { dir: string; files: Record<string, string> } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `review-${stack}-`));
  const r = render([stack, "--out", dir]);
  if (r.status !== 0) throw new Error(`render ${stack} failed: ${r.stderr}`);
  const walk = (d: string): string[] => fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(d, e.name)) : [path.join(d, e.name)]));
  return { dir, files: Object.fromEntries(walk(dir).map((f) => [path.relative(dir, f), fs.readFileSync(f, "utf8")])) };
}

const out: Record<string, { dir: string; files: Record<string, string> }> = {};
beforeAll(() => {
  for (const stack of ["dev", "prod"]) out[stack] = renderTo(stack);
});

describe("topology.mmd", () => {
  it("dev: etcd stacked on each master, with a peer link between every pair", () => {
    const mmd = out.dev.files["topology.mmd"];
    for (const i of [0, 1, 2]) expect(mmd).toContain(`dev_control_plane_master_${i}["control-plane dev-control-plane-master-${i}<br/>`);
    expect(mmd.match(/<br\/>apiserver, etcd, KCM, scheduler"\]/g)).toHaveLength(3);
    expect(mmd.match(/ <-\. etcd peer 2380 \.-> /g)).toHaveLength(3);
    for (const [a, b] of [[0, 1], [0, 2], [1, 2]]) expect(mmd).toContain(`  dev_control_plane_master_${a} <-. etcd peer 2380 .-> dev_control_plane_master_${b}\n`);
  });

  it("prod: the peer links join the external members, not the masters", () => {
    const mmd = out.prod.files["topology.mmd"];
    expect(mmd.match(/<br\/>apiserver, KCM, scheduler"\]/g)).toHaveLength(3);
    expect(mmd.match(/<br\/>etcd member"\]/g)).toHaveLength(3);
    expect(mmd.match(/ <-\. etcd peer 2380 \.-> /g)).toHaveLength(3);
    for (const [a, b] of [[0, 1], [0, 2], [1, 2]]) expect(mmd).toContain(`  prod_etcd_member_${a} <-. etcd peer 2380 .-> prod_etcd_member_${b}\n`);
    expect(mmd).not.toMatch(/master_\d <-\. etcd peer/);
  });

  it("names each pool's instance types and capacity", () => {
    expect(out.prod.files["topology.mmd"]).toContain("worker pool prod-pool-general-group<br/>m7i.xlarge, on-demand<br/>min 3 / max 12, all zones");
    expect(out.prod.files["topology.mmd"]).toContain("worker pool prod-pool-memory-group<br/>r7i.xlarge, on-demand<br/>min 0 / max 6, all zones");
  });
});

describe("resources.md", () => {
  it("opens with a summary of the machines, the load balancer and the rest", () => {
    const md = out.dev.files["resources.md"];
    const summary = md.slice(md.indexOf("## Summary"), md.indexOf("## Scripts fetched"));
    expect(summary.split("\n").filter((l) => l.startsWith("| ") && !l.startsWith("| what"))).toEqual([
      "| masters | 3 x t3.medium in eu-west-1a, eu-west-1b, eu-west-1c, 50 GiB gp3 each; each runs an API server, an etcd member (stacked), the controller-manager and the scheduler |",
      "| etcd | stacked: one member on each master |",
      "| worker pool general | t3.large, on-demand, min 1 / desired 1 / max 3, 50 GiB gp3 each, over eu-west-1a, eu-west-1b, eu-west-1c |",
      "| worker pool spot | m7i.large, m6i.large, m5.large, spot, min 0 / desired 1 / max 4, 40 GiB gp3 each, over eu-west-1a, eu-west-1b, eu-west-1c |",
      "| API load balancer | NLB `dev-api`, internal; NLB `dev-api-pub`, internet-facing, TCP 6443 |",
      "| NAT gateways | 1 |",
      "| S3 buckets | `dev-bootstrap-*`, `dev-etcd-backup-*` |",
      "| secrets | 2 in Secrets Manager under 2 KMS key(s) |",
      "| CloudWatch alarms | 9 |",
      expect.stringMatching(/^\| SQS queues \| `dev-node-termination`, fed by \d+ EventBridge rule\(s\) \|$/),
      "| add-ons | cilium (pulumi), aws-cloud-controller-manager (pulumi), aws-ebs-csi-driver (pulumi), cluster-autoscaler (pulumi), aws-node-termination-handler (pulumi) |",
      "| bootstrap scripts | 11 in the bootstrap bucket, written to bootstrap/ with SHA256SUMS |",
      // The API readiness step; the ClusterState, two image pins, three masters' gates and the scale-in (day2/).
      expect.stringMatching(/^\| resources \| \d+: \d+ aws, \d+ kubernetes, 8 pulumi-nodejs, \d+ random, \d+ tls \|$/),
    ]);
    // The summary's count is the table's.
    const total = Number(summary.match(/\| resources \| (\d+):/)![1]);
    expect(md.split("## Every resource")[1].split("\n").filter((l) => /^\| `(?!kubeadm-ha:)/.test(l))).toHaveLength(total);
    expect(md.indexOf("## Summary")).toBeLessThan(md.indexOf("## Every resource"));
  });

  it("prod: external etcd machines in the summary", () => {
    expect(out.prod.files["resources.md"]).toContain("| etcd | 3 x m7i.large in eu-west-1a, eu-west-1b, eu-west-1c, 50 GiB gp3 each (external) |");
    expect(out.prod.files["resources.md"]).toContain("| masters | 3 x m7i.large in eu-west-1a, eu-west-1b, eu-west-1c, 50 GiB gp3 each; each runs an API server, the controller-manager and the scheduler |");
  });
});

/** The invented values mock-values.md lists. */
const mockValues = (stack: string) => [...out[stack].files["mock-values.md"].matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1]);

describe.each(["dev", "prod"])("mock values (%s)", (stack) => {
  it("lists the IDs, ARNs, DNS names and generated names AWS would assign", () => {
    const values = mockValues(stack);
    expect(values).toEqual(expect.arrayContaining([`${stack}-network-vpc-id`, "ami-0123456789abcdef0", "123456789012", `${stack}-api-0123456789abcdef.elb.eu-west-1.amazonaws.com`]));
    // Addresses the program chooses itself are not invented.
    expect(values.filter((v) => /^10\.\d+\.\d+\.\d+$/.test(v))).toEqual([]);
  });

  it("resources.md marks exactly the settings that hold one", () => {
    const values = mockValues(stack);
    const table = out[stack].files["resources.md"].split("## Every resource")[1];
    const parts = [...table.matchAll(/^\| `[^`]+` \| \S+ \| (.*) \|$/gm)].flatMap((m) => (m[1] ? m[1].split(", ") : []));
    const marked = parts.filter((p) => p.endsWith(" (mock)"));
    expect(marked.length).toBeGreaterThan(20);
    for (const p of parts) expect({ p, marked: p.endsWith(" (mock)") }).toEqual({ p, marked: values.some((v) => p.includes(v)) });
  });

  it("outputs.json marks the outputs that hold one, and only those", () => {
    const o = JSON.parse(out[stack].files["outputs.json"]);
    expect(o.vpcId).toBe(`${stack}-network-vpc-id (mock)`);
    // dev's API is internet-facing: kubectl's URL is the public NLB's, the machines use the internal one.
    expect(o.apiServerUrl).toBe(`https://${stack === "dev" ? "dev-api-pub" : "prod-api"}-0123456789abcdef.elb.eu-west-1.amazonaws.com:6443 (mock)`);
    expect(o.masterIps.every((ip: string) => /^10\.\d+\.\d+\.10$/.test(ip))).toBe(true);
    expect(o.etcdTopology).toBe(stack === "dev" ? "stacked" : "external");
    expect(o.kubeconfig).toBe("[secret]");
  });

  it("outputs the instance IDs of the masters and the external etcd members, in index order", () => {
    const o = JSON.parse(out[stack].files["outputs.json"]);
    expect(o.masterInstanceIds).toEqual([0, 1, 2].map((i) => `${stack}-control-plane-master-${i}-id (mock)`));
    expect(o.etcdInstanceIds).toEqual(stack === "dev" ? [] : [0, 1, 2].map((i) => `${stack}-etcd-member-${i}-id (mock)`));
  });

  it("mock-values.md says which user data holds one", () => {
    const row = out[stack].files["mock-values.md"].split("\n").find((l) => l.startsWith(`| \`${stack}-api-0123456789abcdef.elb.eu-west-1.amazonaws.com\``))!;
    for (const f of Object.keys(out[stack].files).filter((f) => f.startsWith("user-data/") && out[stack].files[f].includes(`${stack}-api-0123456789abcdef.elb`)))
      expect(row).toContain(`\`${f}\``);
  });
});

describe.each(["dev", "prod"])("bootstrap/ (%s)", (stack) => {
  it("holds every script a machine's bundle.list pins, with that hash, and nothing else", () => {
    const files = out[stack].files;
    const pinned = new Map<string, string>();
    for (const [f, text] of Object.entries(files).filter(([f]) => f.startsWith("user-data/"))) {
      const doc = parse(text, { version: "1.1" }) as { write_files: Array<{ path: string; content: string }> };
      const list = doc.write_files.find((w) => w.path === "/etc/kubeadm-ha/bundle.list");
      expect({ f, hasList: list !== undefined }).toEqual({ f, hasList: true });
      for (const line of list!.content.trim().split("\n")) {
        const [sha, , rel] = line.split(" ");
        pinned.set(path.basename(rel), sha);
      }
    }
    const written = Object.keys(files).filter((f) => f.startsWith("bootstrap/") && f !== "bootstrap/SHA256SUMS");
    expect(written.map((f) => path.basename(f)).sort()).toEqual([...pinned.keys()].sort());
    for (const [name, sha] of pinned) {
      expect({ name, sha: crypto.createHash("sha256").update(files[`bootstrap/${name}`]).digest("hex") }).toEqual({ name, sha });
      // What the bucket serves is the script in the repository.
      expect({ name, content: files[`bootstrap/${name}`] }).toEqual({ name, content: shippedScript(fs.readFileSync(path.join(ROOT, "cloud-init", "scripts", name), "utf8")) });
    }
  });

  it("SHA256SUMS checks with sha256sum -c", () => {
    const r = spawnSync("sha256sum", ["-c", "SHA256SUMS"], { cwd: path.join(out[stack].dir, "bootstrap"), encoding: "utf8" });
    expect(r.status).toBe(0);
    expect(r.stdout.trim().split("\n").every((l) => l.endsWith(": OK"))).toBe(true);
  });
});

describe("cost.md", () => {
  const prices = loadPrices("eu-west-1")!;
  const usd = (item: string) => prices.prices.find((p) => p.item === item)!.usd!;

  it("is labelled an estimate, dated, with its price table and sources", () => {
    const md = out.dev.files["cost.md"];
    expect(md).toContain("**An estimate, not a quote.**");
    expect(md).toContain(`from \`pricing/eu-west-1.json\`, compiled ${prices.compiled}`);
    expect(md).toContain("## Prices used");
    for (const item of ["ec2:t3.medium", "ebs:gp3", "vpc:nat-gateway"]) expect(md).toContain(`| \`${item}\` | ${usd(item)} |`);
  });

  it("dev: each line is quantity x price, and the total says what it leaves out", () => {
    const md = out.dev.files["cost.md"];
    const money = (x: number) => `$${x.toFixed(2)}`;
    const masters = 3 * 730 * usd("ec2:t3.medium");
    const general = 1 * 730 * usd("ec2:t3.large");
    const disks = (3 * 50 + 1 * 50 + 1 * 40) * usd("ebs:gp3");
    // Two NLBs: the machines' internal one and the internet-facing one for kubectl (issue 15).
    const nlb = 2 * 730 * usd("elb:nlb");
    const nat = 730 * usd("vpc:nat-gateway");
    const ipv4 = 4 * 730 * usd("vpc:public-ipv4");
    // Two KMS keys (the secrets' and the backups'); 9 alarms: 2 recovery alarms and 1 bootstrap alarm a master.
    const small = 2 * usd("kms:key") + 2 * usd("secretsmanager:secret") + 9 * usd("cloudwatch:alarm");
    expect(md).toContain(`| masters (t3.medium) | 3 x 730 h | $${usd("ec2:t3.medium")} / hour | ${money(masters)} |`);
    expect(md).toContain(`| root volumes (gp3) | 240 GiB | $${usd("ebs:gp3")} / GiB-month | ${money(disks)} |`);
    expect(md).toContain("| public IPv4 addresses | 4 x 730 h |");
    // The Spot pool's first type has no price in the table: named, not guessed, and the total is a lower bound.
    expect(md).toContain("| worker pool spot (m7i.large) | 1 x 730 h | no price | - |");
    expect(md).toContain(`**Total: at least ${money(masters + general + disks + nlb + nat + ipv4 + small)} a month.** No price in the table for \`ec2:m7i.large\``);
  });
});

describe("loadPrices", () => {
  const prices = loadPrices("eu-west-1")!;
  const table = (over: object) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "prices-"));
    const base = { region: "xx-test-1", currency: "USD", compiled: "2026-12-04", hoursPerMonth: 730, about: "", prices: [{ item: "ec2:a", usd: 1, per: "hour", source: "s" }] };
    fs.writeFileSync(path.join(dir, "xx-test-1.json"), JSON.stringify({ ...base, ...over }));
    return () => loadPrices("xx-test-1", dir);
  };

  it("the repository's table is dated, sourced and has no negative price", () => {
    expect(prices.compiled).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(prices.prices.every((p) => p.source.length > 10)).toBe(true);
    // Every instance type the stacks use has an entry, priced or marked not found.
    for (const t of ["t3.medium", "t3.large", "m7i.large", "m6i.large", "m5.large", "m7i.xlarge", "r7i.xlarge"]) expect(prices.prices.map((p) => p.item)).toContain(`ec2:${t}`);
  });

  it.each([
    [{ compiled: "December 2026" }, 'pricing/xx-test-1.json: compiled must be a date (YYYY-MM-DD), got "December 2026"'],
    [{ prices: [{ item: "ec2:a", usd: -1, per: "hour", source: "s" }] }, "pricing/xx-test-1.json: ec2:a: usd must be a number of at least 0, or null"],
    [{ prices: [{ item: "ec2:a", usd: 1, per: "hour", source: "s" }, { item: "ec2:a", usd: 2, per: "hour", source: "s" }] }, "pricing/xx-test-1.json: ec2:a is listed twice"],
    [{ prices: [{ item: "ec2:a", usd: 1, per: "hour", source: "" }] }, "pricing/xx-test-1.json: ec2:a has no source"],
  ])("refuses %j", (over, message) => expect(table(over)).toThrow(new Error(message)));

  it("a region without a table gives none, and cost.md says how to add one", () => {
    expect(loadPrices("xx-none-1")).toBeUndefined();
    expect(costDoc("s", "xx-none-1", [], [], undefined)).toBe(
      "# Monthly cost estimate of stack s\n\nNo price table for region xx-none-1: add pricing/xx-none-1.json (the format of pricing/eu-west-1.json) to get an estimate.\n",
    );
  });
});

describe("npm run render", () => {
  it("without a stack: the usage and the stacks there are", () => {
    const r = render([]);
    expect({ status: r.status, stderr: r.stderr }).toEqual({
      status: 2,
      stderr: "usage: npm run render -- <stack> [--config Pulumi.<stack>.yaml] [--out out/<stack>]\nstacks: dev, prod\n",
    });
  });

  it("a failed render removes the previous output instead of leaving it stale", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "stale-"));
    fs.writeFileSync(path.join(dir, "resources.md"), "the last good render\n");
    const bad = path.join(dir, "..", `${path.basename(dir)}-Pulumi.bad.yaml`);
    fs.writeFileSync(bad, fs.readFileSync(path.join(ROOT, "Pulumi.dev.yaml"), "utf8").replace("count: 3", "count: 4"));
    const r = render(["dev", "--config", bad, "--out", dir]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("controlPlane.count: 4");
    expect(fs.existsSync(dir)).toBe(false);
    expect(fs.readdirSync(path.dirname(dir)).filter((f) => f.startsWith(`${path.basename(dir)}.tmp-`))).toEqual([]);
  });
});

describe("docs/deployer-iam-policy.json", () => {
  const types = () => renderedAwsTypes([out.dev.files["resources.md"], out.prod.files["resources.md"]]);

  it("has actions for exactly the AWS resource types the stacks register", () => {
    expect(types().length).toBeGreaterThan(30);
    expect(types().filter((t) => !(t in DEPLOYER_ACTIONS))).toEqual([]);
    expect(Object.keys(DEPLOYER_ACTIONS).filter((t) => !types().includes(t))).toEqual([]);
  });

  it("is the generated policy (npm run docs:iam -- --write)", () => {
    expect(fs.readFileSync(POLICY_FILE, "utf8")).toBe(policyFile(types()));
  });

  it("is well formed and fits IAM's 6,144-character limit for a managed policy", () => {
    const policy = JSON.parse(fs.readFileSync(POLICY_FILE, "utf8"));
    const actions: string[] = policy.Statement.flatMap((s: { Action: string[] }) => s.Action);
    // ssm: the day-2 rollout's Run Command (day2/rollout.ts).
    for (const a of actions) expect(a).toMatch(/^(autoscaling|cloudwatch|ec2|elasticloadbalancing|events|iam|kms|s3|secretsmanager|sqs|ssm):[A-Z][A-Za-z]*\*?$/);
    expect(new Set(actions).size).toBe(actions.length);
    expect(JSON.stringify(policy).length).toBeLessThanOrEqual(6144);
    expect(policy.Statement.map((s: { Sid: string }) => s.Sid)).toEqual(["ManageTheClustersResources", "PassNodeRolesToEc2", "ServiceLinkedRoles"]);
    // iam:PassRole only towards EC2.
    expect(policy.Statement.filter((s: { Action: string[] }) => s.Action.includes("iam:PassRole"))).toEqual([
      { Sid: "PassNodeRolesToEc2", Effect: "Allow", Action: ["iam:PassRole"], Resource: "*", Condition: { StringEquals: { "iam:PassedToService": "ec2.amazonaws.com" } } },
    ]);
  });

  it("refuses a type it has no actions for", () => {
    expect(() => deployerPolicy(["aws:rds/instance:Instance"])).toThrow("no deployer actions for aws:rds/instance:Instance: add them to DEPLOYER_ACTIONS in scripts/deployerPolicy.ts");
  });
});
