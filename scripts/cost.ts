/**
 * The monthly cost estimate the render writes to out/<stack>/cost.md: what the stack's resources
 * cost at on-demand list prices, from the dated table in pricing/<region>.json. An estimate: usage
 * (traffic, requests, snapshot storage) is left out and named, a price the table lacks is named
 * rather than guessed, and the total then says it is a lower bound.
 */
import * as fs from "fs";
import * as path from "path";
import type { Registration } from "../test/mocks";
import type { MachineGroup } from "./renderReview";

export interface PriceEntry {
  /** `ec2:<instance type>`, `ebs:gp3`, `elb:nlb`, ... */
  item: string;
  /** USD per `per`; null when no figure was found. */
  usd: number | null;
  per: string;
  source: string;
}

export interface PriceTable {
  region: string;
  currency: string;
  /** The day the table was compiled (YYYY-MM-DD). */
  compiled: string;
  hoursPerMonth: number;
  about: string;
  prices: PriceEntry[];
}

export const PRICING_DIR = path.join(__dirname, "..", "pricing");

/** pricing/<region>.json, checked; undefined when there is none for the region. */
export function loadPrices(region: string, dir = PRICING_DIR): PriceTable | undefined {
  const file = path.join(dir, `${region}.json`);
  if (!fs.existsSync(file)) return undefined;
  const t = JSON.parse(fs.readFileSync(file, "utf8")) as PriceTable;
  const where = `pricing/${region}.json`;
  if (t.region !== region) throw new Error(`${where}: region is ${t.region}`);
  if (!/^\d{4}-\d{2}-\d{2}$/.test(t.compiled)) throw new Error(`${where}: compiled must be a date (YYYY-MM-DD), got ${JSON.stringify(t.compiled)}`);
  const seen = new Set<string>();
  for (const p of t.prices) {
    if (seen.has(p.item)) throw new Error(`${where}: ${p.item} is listed twice`);
    seen.add(p.item);
    if (p.usd !== null && !(typeof p.usd === "number" && p.usd >= 0)) throw new Error(`${where}: ${p.item}: usd must be a number of at least 0, or null`);
    if (!p.source) throw new Error(`${where}: ${p.item} has no source`);
  }
  return t;
}

export interface CostLine {
  what: string;
  quantity: string;
  /** The price entry used. */
  item: string;
  /** USD a month; undefined when the table has no price for `item`. */
  monthly?: number;
  note?: string;
}

/** The stack's billable resources, each priced from the table when it can be. */
export function costLines(regs: Registration[], groups: MachineGroup[], prices: PriceTable): CostLine[] {
  const price = (item: string) => prices.prices.find((p) => p.item === item)?.usd ?? undefined;
  const h = prices.hoursPerMonth;
  const lines: CostLine[] = [];
  const hourly = (what: string, n: number, item: string, note?: string) => {
    const p = price(item);
    lines.push({ what, quantity: `${n} x ${h} h`, item, monthly: p === undefined ? undefined : n * h * p, note });
  };
  for (const g of groups) {
    const label = g.role === "control-plane" ? "masters" : g.role === "etcd" ? "etcd machines" : `worker pool ${g.name}`;
    const note =
      g.role !== "worker"
        ? undefined
        : `${g.capacity === "spot" ? "Spot: billed at the Spot price, usually well below this on-demand figure; " : ""}the desired capacity (${g.count}); min ${g.min}, max ${g.max}${g.instanceTypes.length > 1 ? `; priced as ${g.instanceTypes[0]}, the first of ${g.instanceTypes.join(", ")}` : ""}`;
    hourly(`${label} (${g.instanceTypes[0]})`, g.count, `ec2:${g.instanceTypes[0]}`, note);
  }
  const gib = groups.reduce((a, g) => a + g.count * g.rootGiB, 0);
  const gp3 = price("ebs:gp3");
  lines.push({ what: "root volumes (gp3)", quantity: `${gib} GiB`, item: "ebs:gp3", monthly: gp3 === undefined ? undefined : gib * gp3 });
  const nlbs = regs.filter((r) => r.type === "aws:lb/loadBalancer:LoadBalancer");
  if (nlbs.length) hourly("API load balancer (NLB)", nlbs.length, "elb:nlb", "plus NLCU-hours for its traffic, not estimated");
  const nats = regs.filter((r) => r.type === "aws:ec2/natGateway:NatGateway").length;
  if (nats) hourly("NAT gateways", nats, "vpc:nat-gateway", "plus data processed, per GB, not estimated");
  // An internet-facing NLB holds a public IPv4 address in each of its subnets; each NAT gateway its Elastic IP.
  const nlbIps = nlbs.filter((r) => !r.inputs.internal).reduce((a, r) => a + (r.inputs.subnets?.length ?? r.inputs.subnetMappings?.length ?? 0), 0);
  const eips = regs.filter((r) => r.type === "aws:ec2/eip:Eip").length;
  if (nlbIps + eips) hourly("public IPv4 addresses", nlbIps + eips, "vpc:public-ipv4", `${eips} NAT Elastic IP(s), ${nlbIps} of the internet-facing NLB`);
  const keys = regs.filter((r) => r.type === "aws:kms/key:Key").length;
  const secrets = regs.filter((r) => r.type === "aws:secretsmanager/secret:Secret").length;
  const alarms = regs.filter((r) => r.type === "aws:cloudwatch/metricAlarm:MetricAlarm").length;
  const monthly = (what: string, n: number, item: string, note?: string) => {
    const p = price(item);
    lines.push({ what, quantity: String(n), item, monthly: p === undefined ? undefined : n * p, note });
  };
  if (keys) monthly("KMS keys", keys, "kms:key", "plus requests beyond the free tier, not estimated");
  if (secrets) monthly("Secrets Manager secrets", secrets, "secretsmanager:secret", "plus API calls, not estimated");
  if (alarms) monthly("CloudWatch alarms", alarms, "cloudwatch:alarm");
  const buckets = regs.filter((r) => r.type === "aws:s3/bucket:Bucket").length;
  if (buckets)
    lines.push({
      what: "S3 storage",
      quantity: `${buckets} bucket(s)`,
      item: "s3:standard",
      note: "not estimated: the etcd snapshots' size depends on etcd's database (one snapshot every etcd.backup.intervalMinutes, each kept etcd.backup.retentionDays days, and as long again as a noncurrent version); the bootstrap scripts are a few hundred KB",
    });
  return lines;
}

const usd = (x: number) => `$${x.toFixed(2)}`;

/** cost.md for one stack. */
export function costDoc(stack: string, region: string, regs: Registration[], groups: MachineGroup[], prices: PriceTable | undefined): string {
  const head = [`# Monthly cost estimate of stack ${stack}`, ""];
  if (!prices)
    return [...head, `No price table for region ${region}: add pricing/${region}.json (the format of pricing/eu-west-1.json) to get an estimate.`, ""].join("\n");
  const lines = costLines(regs, groups, prices);
  const priced = lines.filter((l) => l.monthly !== undefined);
  const missing = [...new Set(lines.filter((l) => l.monthly === undefined && l.item !== "s3:standard").map((l) => l.item))];
  const total = priced.reduce((a, l) => a + l.monthly!, 0);
  const source = (item: string) => prices.prices.find((p) => p.item === item);
  return [
    ...head,
    `**An estimate, not a quote.** On-demand list prices for ${region} from \`pricing/${region}.json\`, compiled ${prices.compiled}`,
    `(${prices.currency}, ${prices.hoursPerMonth} hours a month, before tax, credits, Savings Plans and Reserved Instances). Where its`,
    "figures come from is stated per price below; check them against AWS's pricing pages before you rely on them.",
    "",
    "| what | quantity | price | monthly | note |",
    "|---|---|---|---:|---|",
    ...lines.map((l) => {
      const p = source(l.item);
      const unit = p?.usd === null || p === undefined ? "no price" : `$${p.usd} / ${p.per}`;
      return `| ${l.what} | ${l.quantity} | ${unit} | ${l.monthly === undefined ? "-" : usd(l.monthly)} | ${l.note ?? ""} |`;
    }),
    "",
    missing.length
      ? `**Total: at least ${usd(total)} a month.** No price in the table for ${missing.map((m) => `\`${m}\``).join(", ")}; those lines are left out of the total.`
      : `**Total: about ${usd(total)} a month.**`,
    "",
    "Not included: data transfer (between zones, out to the internet), NAT data processing, NLB capacity units,",
    "S3 storage and requests, KMS, Secrets Manager and SQS requests, EventBridge events, the AMI's licence (Ubuntu: none),",
    "support plans.",
    "",
    "## Prices used",
    "",
    "| item | USD | per | source |",
    "|---|---:|---|---|",
    ...[...new Set(lines.map((l) => l.item))].map((item) => {
      const p = source(item);
      return `| \`${item}\` | ${p?.usd ?? "not found"} | ${p?.per ?? ""} | ${p?.source ?? "not in the table"} |`;
    }),
    "",
  ].join("\n");
}
