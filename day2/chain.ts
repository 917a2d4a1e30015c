/**
 * One machine at a time: the chain components/controlPlane.ts and components/etcd.ts thread their
 * machines through. Each master or external etcd member depends on the gate of the machine before
 * it, and its own gate (day2/resources.ts MachineGate) depends on it, so Pulumi creates, changes
 * or replaces a machine only once the one before it has passed its gate:
 *
 *   ClusterState -> etcd 0 -> gate -> etcd 1 -> gate -> ... -> master 0 -> gate -> master 1 -> gate -> ...
 *
 * The engine starts a resource's step only after every resource it depends on has finished its
 * own, so this order holds for updates and replacements alike, and a failed gate stops everything
 * after it. External etcd comes first because the first master's `kubeadm init` needs it.
 */
import * as crypto from "crypto";
import * as pulumi from "@pulumi/pulumi";
import { scriptFiles } from "../cloud-init/render";
import { MachineGate } from "./resources";
import { MachineSpec, RolloutMachine, ScriptSet } from "./rollout";

/** day2.sh and every script it sources: what each SSM command fetches. */
export const DAY2_SCRIPTS = ["day2.sh", "etcdctl.sh", "lib.sh"] as const;

const sha256 = (s: string) => crypto.createHash("sha256").update(s, "utf8").digest("hex");

/** Each day2 script's SHA-256 as shipped (comments stripped, render.ts shippedScript). */
export function day2ScriptHashes(): Record<string, string> {
  return Object.fromEntries(scriptFiles([...DAY2_SCRIPTS]).map((f) => [f.path.split("/").pop()!, sha256(f.content)]));
}

/** The day2 scripts as shipped, for the bootstrap bucket (lib.sh is otherwise only in user data). */
export function day2ScriptContents(): string[] {
  return scriptFiles([...DAY2_SCRIPTS]).map((f) => f.content);
}

/**
 * The SHA-256 of an external member's pod without the flags that matter only at its first start
 * (`--initial-cluster`, `--initial-cluster-state`: etcd-rejoin.sh rewrites them on a member that
 * joined later, and a running member ignores them), so scaling etcd rolls no member's pod.
 */
export function podFingerprint(podYaml: string): string {
  return sha256(podYaml.split("\n").filter((l) => !/^\s*- --initial-cluster(-state)?=/.test(l)).join("\n"));
}

/** SHA-256 of a user data string (gzipped base64, as EC2 gets it). */
export function userDataFingerprint(userDataBase64: string): string {
  return sha256(userDataBase64);
}

export interface MachineChainArgs {
  /** AWS region of the machines and of the SSM API. */
  region: string;
  /** The bootstrap bucket's name; the scripts' hashes are the repository's (`day2ScriptHashes`). */
  bootstrapBucket: pulumi.Input<string>;
  /** Key prefix of the bootstrap objects. */
  bootstrapPrefix: string;
  /** What the first machine waits for besides: the ClusterState whose check guards the change. */
  start: pulumi.Resource[];
  /** What every gate waits for besides its machine: the bootstrap objects the SSM commands fetch. */
  gateDependsOn?: pulumi.Resource[];
}

/** The chain itself: `before()` for a machine's options, then `gate(...)` once the machine exists. */
export class MachineChain {
  /** Every gate, in chain order. */
  public readonly gates: MachineGate[] = [];
  public readonly scripts: pulumi.Output<ScriptSet>;
  private last: pulumi.Resource[];

  constructor(private readonly args: MachineChainArgs) {
    this.last = args.start;
    const files = day2ScriptHashes();
    this.scripts = pulumi.output(args.bootstrapBucket).apply((bucket) => ({ bucket, prefix: args.bootstrapPrefix, files }));
  }

  /** What the next machine must wait for: the gate before it (the ClusterState for the first). */
  before(): pulumi.Resource[] {
    return [...this.last];
  }

  /** The gate after `machine`; the next machine waits for it. */
  gate(name: string, machine: pulumi.Input<RolloutMachine>, spec: pulumi.Input<MachineSpec>, opts: pulumi.CustomResourceOptions): MachineGate {
    const g = new MachineGate(
      name,
      { region: this.args.region, scripts: this.scripts, machine, spec },
      pulumi.mergeOptions(opts, { dependsOn: this.args.gateDependsOn ?? [] }),
    );
    this.gates.push(g);
    this.last = [g];
    return g;
  }

  /** The last gate, or the start when no machine joined the chain. */
  end(): pulumi.Resource[] {
    return [...this.last];
  }
}
