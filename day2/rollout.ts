/**
 * The rollout: runs day2.sh (cloud-init/scripts/day2.sh) on one master or etcd member at a time
 * through SSM Run Command, each step followed by its machine's health gate, and stops at the first
 * step that fails, so no machine is touched while the one before it is unhealthy. Pulumi's dynamic
 * resources (day2/resources.ts) call it; the order of the steps comes from the pure functions here.
 *
 * The machines need nothing but what they already have: the SSM agent of the Ubuntu images, the
 * instance role's AmazonSSMManagedInstanceCore and read access to the bootstrap bucket, from which
 * each command fetches day2.sh and the scripts it sources by their SHA-256, as boot.sh does at
 * first boot. The machine running `pulumi up` needs ssm:SendCommand (document AWS-RunShellScript),
 * ssm:GetCommandInvocation and ssm:DescribeInstanceInformation.
 *
 * Everything here also runs in Pulumi's dynamic provider host, which gets these functions
 * serialized: they require what they use inside, and share no mutable state.
 */
import type { SSMClient } from "@aws-sdk/client-ssm";
import type { MachineRole } from "./rules";

/** A master or external etcd member the rollout acts on. */
export interface RolloutMachine {
  role: MachineRole;
  index: number;
  /** Kubernetes node name, which is also its etcd member name. */
  name: string;
  /** EC2 instance id, the SSM target. */
  instanceId: string;
}

/** What a machine's gate compares between two runs; any difference runs the gate. */
export interface MachineSpec {
  ami: string;
  instanceType: string;
  rootVolumeGiB: number;
  /** SHA-256 of the machine's user data as EC2 has it. */
  userDataSha: string;
  /** Masters: SHA-256 of the ClusterConfiguration kubeadm stores and of this master's patches; "" on an etcd member. */
  kubeadmSha: string;
  kubernetesVersion: string;
}

/** day2.sh's subcommands. */
export type RemoteAction = "health" | "sync" | "upgrade" | "leave" | "etcd-manifest" | "addons";

/** One day2.sh run on one machine. */
export interface RemoteStep {
  machine: RolloutMachine;
  action: RemoteAction;
  args: string[];
}

/** Where the scripts are: the bootstrap bucket (components/bootstrapAssets.ts) and each script's SHA-256. */
export interface ScriptSet {
  bucket: string;
  /** Key prefix; an object's key is the prefix and its SHA-256. */
  prefix: string;
  /** File name -> SHA-256 of its shipped content: day2.sh and every script it sources. */
  files: Record<string, string>;
}

/** How long each day2.sh run may take on the machine, in seconds, by action. */
export const ACTION_TIMEOUT_SECONDS: Readonly<Record<RemoteAction, number>> = {
  // A machine just started, replaced or launched first installs its packages and joins.
  health: 1800,
  sync: 600,
  // Packages, kubeadm's own waits for each static pod (5 min each by default), a drain.
  upgrade: 3600,
  leave: 1800,
  "etcd-manifest": 900,
  addons: 1800,
};

/** `master 1 (ip-..., i-...)`. */
export const machineLabel = (m: RolloutMachine) => `${m.role === "etcd" ? "etcd member" : "master"} ${m.index} (${m.name}, ${m.instanceId})`;
const step = (machine: RolloutMachine, action: RemoteAction, ...args: string[]): RemoteStep => ({ machine, action, args });
const health = (m: RolloutMachine, ...args: string[]) => step(m, "health", "--wait", String(ACTION_TIMEOUT_SECONDS.health), ...args);

/**
 * The gate of one machine after Pulumi created or changed it:
 * - new (no old spec): health, where a machine of a cluster still being created passes as soon as
 *   no other machine of it answers (day2.sh health --create);
 * - a master whose kubeadm configuration moved: `upgrade` (`--first` on master 0, which runs
 *   `kubeadm upgrade apply` and stores the new ClusterConfiguration; the others `kubeadm upgrade
 *   node`), then health; after a replacement, health first, since the successor must have joined;
 * - new user data on the same machine: `sync` (the files of its user data; nothing restarts), then health;
 * - any other change (instance type, volume size, a new instance): health.
 */
export function gateSteps(machine: RolloutMachine, old: (MachineSpec & { instanceId?: string }) | undefined, next: MachineSpec): RemoteStep[] {
  if (!old) return [health(machine, "--create")];
  const replaced = old.instanceId !== undefined && old.instanceId !== machine.instanceId;
  const out: RemoteStep[] = replaced ? [health(machine)] : [];
  if (machine.role === "control-plane" && old.kubeadmSha !== next.kubeadmSha) {
    out.push(step(machine, "upgrade", ...(machine.index === 0 ? ["--first"] : [])), health(machine));
    return out;
  }
  if (replaced) return out;
  if (old.userDataSha !== next.userDataSha) return [step(machine, "sync"), health(machine)];
  const moved = (["ami", "instanceType", "rootVolumeGiB", "kubernetesVersion"] as const).some((k) => old[k] !== next[k]);
  return moved ? [health(machine)] : [];
}

/** An external member and the SHA-256 of its rendered pod, less the flags that matter only at its first start. */
export interface MemberManifest extends RolloutMachine {
  manifestSha: string;
}

/**
 * External etcd after the control plane: each member whose pod changed (the etcd image of a new
 * minor, the raft timing) takes it, one at a time, each followed by its health. A member that was
 * not there before already runs its rendered pod.
 */
export function etcdManifestSteps(olds: MemberManifest[] | undefined, news: MemberManifest[]): RemoteStep[] {
  if (!olds) return [];
  const before = new Map(olds.map((m) => [m.index, m]));
  return [...news]
    .sort((a, b) => a.index - b.index)
    .filter((m) => before.has(m.index) && before.get(m.index)!.manifestSha !== m.manifestSha)
    .flatMap((m) => [step(m, "etcd-manifest"), health(m)]);
}

/**
 * Scale-in: every master, then every external member, that `news` no longer has, highest index
 * first, leaves the cluster before Pulumi terminates it (members are removed before their machine
 * goes, never after). Around each: the health of a machine that stays (master 0, or member 0), so a
 * removal starts only on a healthy cluster and the next only once the cluster is healthy without it.
 */
export function scaleInSteps(olds: RolloutMachine[] | undefined, news: RolloutMachine[]): RemoteStep[] {
  if (!olds) return [];
  const out: RemoteStep[] = [];
  for (const role of ["control-plane", "etcd"] as const) {
    const kept = news.filter((m) => m.role === role);
    const leaving = olds.filter((m) => m.role === role && !kept.some((k) => k.index === m.index)).sort((a, b) => b.index - a.index);
    const survivor = [...kept].sort((a, b) => a.index - b.index)[0];
    if (leaving.length > 0 && !survivor) throw new Error(`scale-in: no ${role} machine would remain`);
    for (const m of leaving) out.push(health(survivor), step(m, "leave"), health(survivor));
  }
  return out;
}

/** `nodes` installer: master 0 installs the add-ons of its new user data once the control plane is done. */
export function addonsSteps(old: { addonsSha: string } | undefined, next: { addonsSha: string; master: RolloutMachine }): RemoteStep[] {
  if (!old || old.addonsSha === next.addonsSha) return [];
  return [health(next.master), step(next.master, "addons")];
}

/** A POSIX shell word: single-quoted, embedded quotes escaped. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * What SSM runs (AWS-RunShellScript runs it with /bin/sh, so POSIX only): fetch day2.sh and the
 * scripts it sources from the bootstrap bucket into a fresh directory, refuse any whose content is
 * not the pinned SHA-256 (exit 14, as boot.sh), then run the step. The machine's own scripts are
 * not used: they are as old as its last boot.
 */
export function commandLines(s: RemoteStep, scripts: ScriptSet, region: string): string[] {
  const q = shellQuote;
  for (const f of ["day2.sh", "lib.sh"]) if (!scripts.files[f]) throw new Error(`commandLines: scripts.files has no ${f}`);
  const fetches = Object.keys(scripts.files)
    .sort()
    .map((f) => {
      const sha = scripts.files[f];
      if (!/^[0-9a-f]{64}$/.test(sha) || !/^[a-z0-9-]+\.sh$/.test(f)) throw new Error(`commandLines: bad script ${f} ${sha}`);
      return `fetch ${q(scripts.prefix + sha)} ${q(sha)} ${q(f)}`;
    });
  return [
    "set -eu",
    // The AWS CLI is a snap (install.sh); SSM's shell does not have /snap/bin on its PATH.
    'PATH="$PATH:/snap/bin"',
    "d=$(mktemp -d /run/kubeadm-ha-day2.XXXXXX)",
    "trap 'rm -rf \"$d\"' EXIT",
    "fetch() {",
    `  if ! aws s3api get-object --region ${q(region)} --bucket ${q(scripts.bucket)} --key "$1" "$d/$3" >/dev/null; then echo "kubeadm-ha: could not fetch $3 (s3://${scripts.bucket}/$1)" >&2; exit 14; fi`,
    '  if [ "$(sha256sum "$d/$3" | cut -d" " -f1)" != "$2" ]; then echo "kubeadm-ha: $3 is not the content the rollout pins ($2): refusing to run it" >&2; exit 14; fi',
    "}",
    ...fetches,
    [`bash "$d/day2.sh"`, q(s.action), ...s.args.map(q)].join(" "),
  ];
}

/** How one SSM command ended. */
export interface CommandResult {
  /** SSM's status: Success, Failed, TimedOut, Cancelled, ... */
  status: string;
  /** The script's exit code (-1 when it never ran). */
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** The SSM client (region and credentials of the machine running `pulumi up`). Required. */
  ssm: SSMClient;
  region: string;
  scripts: ScriptSet;
  /** Pause between polls, in milliseconds. Default 5000. */
  pollMs?: number;
  /** How long a machine may take to report to SSM (after a start or a launch), in milliseconds. Default 20 minutes. */
  onlineTimeoutMs?: number;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  /** Progress lines. Default none. */
  log?: (line: string) => void;
}

/** The error a rollout stops with: which step on which machine, how it ended, and what to do. */
export class RolloutError extends Error {
  constructor(
    message: string,
    public readonly step: RemoteStep,
    public readonly result?: CommandResult,
  ) {
    super(message);
    this.name = "RolloutError";
  }
}

/**
 * Runs the steps in order, each to completion, and throws a RolloutError at the first that does
 * not succeed: nothing after it is started. Returns each step's result.
 */
export async function runSteps(steps: RemoteStep[], o: RunOptions): Promise<CommandResult[]> {
  const ssmApi = require("@aws-sdk/client-ssm") as typeof import("@aws-sdk/client-ssm");
  const now = o.now ?? Date.now;
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const pollMs = o.pollMs ?? 5000;
  const onlineTimeoutMs = o.onlineTimeoutMs ?? 20 * 60_000;
  const log = o.log ?? (() => undefined);
  const label = machineLabel;
  const errorName = (e: unknown) => (e as { name?: string })?.name ?? "";
  const tail = (s: string, n = 25) => s.trimEnd().split("\n").slice(-n).join("\n");
  const terminal = ["Success", "Failed", "Cancelled", "TimedOut", "DeliveryTimedOut", "ExecutionTimedOut", "Undeliverable", "Terminated", "InvalidPlatform", "AccessDenied"];
  const results: CommandResult[] = [];

  const fail = (s: RemoteStep, why: string, r?: CommandResult, commandId?: string): never => {
    const done = results.length;
    const output = commandId
      ? `its whole output: aws ssm get-command-invocation --region ${o.region} --command-id ${commandId} --instance-id ${s.machine.instanceId}`
      : `the machine: aws ssm start-session --region ${o.region} --target ${s.machine.instanceId}`;
    throw new RolloutError(
      `rollout stopped at ${label(s.machine)}, step ${done + 1} of ${steps.length} (day2.sh ${[s.action, ...s.args].join(" ")}): ${why}. ` +
        `Nothing after it was started${done > 0 ? `; the ${done} step${done === 1 ? "" : "s"} before it completed` : ""}. ` +
        `Fix the cause (${output}), then run pulumi up again: machines already done are skipped (README: Upgrading).`,
      s,
      r,
    );
  };

  const waitOnline = async (s: RemoteStep) => {
    const deadline = now() + onlineTimeoutMs;
    let last = "not registered";
    for (;;) {
      try {
        const r = await o.ssm.send(new ssmApi.DescribeInstanceInformationCommand({ Filters: [{ Key: "InstanceIds", Values: [s.machine.instanceId] }] }));
        const info = r.InstanceInformationList?.[0];
        if (info?.PingStatus === "Online") return;
        last = info ? `PingStatus ${info.PingStatus}` : "not registered";
      } catch (e) {
        last = `${errorName(e)}: ${(e as Error).message}`;
      }
      if (now() >= deadline) fail(s, `the machine did not report to SSM within ${Math.round(onlineTimeoutMs / 60000)} min (last: ${last}); check that it runs and its SSM agent can reach the SSM endpoints`);
      await sleep(pollMs);
    }
  };

  for (const s of steps) {
    const timeout = ACTION_TIMEOUT_SECONDS[s.action];
    log(`${label(s.machine)}: day2.sh ${[s.action, ...s.args].join(" ")}`);
    await waitOnline(s);
    // A machine that just reported may still refuse commands for a moment.
    const sendDeadline = now() + onlineTimeoutMs;
    let commandId: string | undefined;
    while (!commandId) {
      try {
        const r = await o.ssm.send(
          new ssmApi.SendCommandCommand({
            InstanceIds: [s.machine.instanceId],
            DocumentName: "AWS-RunShellScript",
            Comment: `kubeadm-ha day2.sh ${s.action} on ${s.machine.role === "etcd" ? "etcd" : "master"} ${s.machine.index}`.slice(0, 100),
            TimeoutSeconds: 600,
            Parameters: { commands: commandLines(s, o.scripts, o.region), executionTimeout: [String(timeout)] },
          }),
        );
        commandId = r.Command?.CommandId;
        if (!commandId) fail(s, "SSM returned no command id");
      } catch (e) {
        if (e instanceof RolloutError) throw e;
        if (errorName(e) !== "InvalidInstanceId" || now() >= sendDeadline) fail(s, `SSM refused the command: ${errorName(e)}: ${(e as Error).message}`);
        await sleep(pollMs);
      }
    }
    const deadline = now() + (timeout + 660) * 1000;
    for (;;) {
      await sleep(pollMs);
      let r;
      try {
        r = await o.ssm.send(new ssmApi.GetCommandInvocationCommand({ CommandId: commandId, InstanceId: s.machine.instanceId }));
      } catch (e) {
        // The invocation appears a moment after SendCommand returns.
        if (errorName(e) !== "InvocationDoesNotExist" || now() >= deadline) fail(s, `SSM: ${errorName(e)}: ${(e as Error).message}`);
        continue;
      }
      const status = r.Status ?? "Pending";
      if (terminal.includes(status)) {
        const result: CommandResult = { status, exitCode: r.ResponseCode ?? -1, stdout: r.StandardOutputContent ?? "", stderr: r.StandardErrorContent ?? "" };
        if (status !== "Success") fail(s, `${status}, exit ${result.exitCode}${result.stderr || result.stdout ? `:\n${tail(result.stderr || result.stdout)}\n` : ""}`, result, commandId);
        results.push(result);
        break;
      }
      if (now() >= deadline) fail(s, `still ${status} after ${timeout + 660} s`, undefined, commandId);
    }
  }
  return results;
}
