/**
 * The day-2 scenarios of issue 14, as pairs of stack configs: the committed dev (stacked etcd) or
 * prod (external etcd) stack before, and the same stack with some keys changed after. Shared by the
 * rules' tests (test/day2-rules.test.ts) and the program's (test/day2-wiring.test.ts), so the plan and
 * what the program renders are checked on the same changes.
 */
import * as fs from "fs";
import * as path from "path";
import { ClusterConfig, addonInstaller, parseConfig } from "../config";
import { etcdImage } from "../components/etcd";
import { ClusterSnapshot, snapshotOf } from "../day2/rules";
import { rawStackConfig } from "../scripts/failoverBudget";
import { stackConfig } from "../scripts/renderLib";

const ROOT = path.join(__dirname, "..");

/** A committed stack's raw config, as `pulumi up` reads it. */
export function stackRaw(stack: "dev" | "prod"): Record<string, unknown> {
  return rawStackConfig(stackConfig(fs.readFileSync(path.join(ROOT, `Pulumi.${stack}.yaml`), "utf8")));
}

/** Top-level keys replaced; object values merged one level deep. */
export type Changes = Record<string, unknown>;

export function changed(raw: Record<string, unknown>, changes: Changes): Record<string, unknown> {
  const out: Record<string, unknown> = { ...raw };
  for (const [k, v] of Object.entries(changes))
    out[k] = v !== null && typeof v === "object" && !Array.isArray(v) && typeof raw[k] === "object" && !Array.isArray(raw[k]) ? { ...(raw[k] as object), ...(v as object) } : v;
  return out;
}

export interface Scenario {
  stack: "dev" | "prod";
  /** Changes to the committed stack that make the cluster as it runs. */
  before?: Changes;
  /** Changes to the committed stack that make the new config. */
  after: Changes;
}

export const SCENARIOS = {
  "patch upgrade": { stack: "dev", after: { kubernetesVersion: "1.35.4" } },
  "minor upgrade": { stack: "prod", before: { kubernetesVersion: "1.35.4" }, after: { kubernetesVersion: "1.36.0" } },
  "minor upgrade with a new etcd image": { stack: "prod", before: { kubernetesVersion: "1.33.7" }, after: { kubernetesVersion: "1.34.0" } },
  "instance type": { stack: "dev", after: { controlPlane: { instanceType: "t3.large" } } },
  "masters 3 to 5": { stack: "dev", after: { controlPlane: { count: 5 } } },
  "masters 5 to 3": { stack: "dev", before: { controlPlane: { count: 5 } }, after: {} },
  "external etcd 3 to 5": { stack: "prod", after: { etcd: { nodeCount: 5 } } },
  "external etcd 5 to 3": { stack: "prod", before: { etcd: { nodeCount: 5 } }, after: {} },
  "leader election": { stack: "dev", after: { leaderElection: { leaseDuration: "20s" } } },
  "external etcd timing": { stack: "prod", after: { etcd: { electionTimeoutMs: 1500 } } },
  "encryption at rest on": { stack: "dev", before: { encryptionAtRest: false }, after: {} },
  "a new image": { stack: "prod", before: { amiId: "ami-0123456789abcdef0" }, after: { amiId: "ami-0fedcba9876543210" } },
} satisfies Record<string, Scenario>;

export type ScenarioName = keyof typeof SCENARIOS;

export function configs(s: Scenario): { before: ClusterConfig; after: ClusterConfig } {
  const raw = stackRaw(s.stack);
  return { before: parseConfig(changed(raw, s.before ?? {})), after: parseConfig(changed(raw, s.after)) };
}

export function snapshot(c: ClusterConfig): ClusterSnapshot {
  return snapshotOf(c, addonInstaller(c), etcdImage(c.kubernetesVersion));
}
