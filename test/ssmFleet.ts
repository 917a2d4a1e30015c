/**
 * A fake fleet of machines behind SSM Run Command, on aws-sdk-client-mock: every SSMClient in the
 * process answers from it. Each machine reports Online (after `offlinePolls` polls), runs each
 * day2.sh command with `outcome`, and every command is recorded in order, so a test reads exactly
 * which machine was asked what, and when.
 */
import { DescribeInstanceInformationCommand, GetCommandInvocationCommand, SSMClient, SendCommandCommand } from "@aws-sdk/client-ssm";
import { mockClient } from "aws-sdk-client-mock";

/** How a day2.sh run ends: SSM's status and the script's exit code and output. */
export interface Outcome {
  status?: string;
  exitCode?: number;
  stderr?: string;
  /** Polls that answer InProgress first. Default 0. */
  inProgressPolls?: number;
}

export interface Sent {
  instanceId: string;
  /** `day2.sh` and its arguments, as the command's last line runs them: `health --wait 1800`. */
  run: string;
  commands: string[];
  executionTimeout: string;
}

const unquote = (w: string) => w.replace(/^'(.*)'$/, "$1").replace(/'\\''/g, "'");

/** `bash "$d/day2.sh" 'health' '--wait' '1800'` -> `health --wait 1800`. */
export function day2Run(commands: string[]): string {
  const last = commands[commands.length - 1];
  const m = /^bash "\$d\/day2\.sh" (.*)$/.exec(last);
  if (!m) throw new Error(`not a day2.sh command: ${last}`);
  return m[1].split(" ").map(unquote).join(" ");
}

export class SsmFleet {
  readonly mock = mockClient(SSMClient);
  readonly sent: Sent[] = [];
  /** Describe polls a machine answers ConnectionLost before Online. */
  offlinePolls: Record<string, number> = {};
  /** SendCommand answers InvalidInstanceId this many times first, per machine. */
  notReadyForCommands: Record<string, number> = {};
  outcome: (instanceId: string, run: string) => Outcome = () => ({});
  private invocations = new Map<string, { outcome: Outcome; polls: number; missingPolls: number }>();

  constructor() {
    this.mock.on(DescribeInstanceInformationCommand).callsFake((input) => {
      const id = input.Filters?.find((f: { Key?: string }) => f.Key === "InstanceIds")?.Values?.[0] as string;
      const left = this.offlinePolls[id] ?? 0;
      if (left > 0) {
        this.offlinePolls[id] = left - 1;
        return { InstanceInformationList: [{ InstanceId: id, PingStatus: "ConnectionLost" }] };
      }
      return { InstanceInformationList: [{ InstanceId: id, PingStatus: "Online" }] };
    });
    this.mock.on(SendCommandCommand).callsFake((input) => {
      const id = input.InstanceIds[0] as string;
      if ((this.notReadyForCommands[id] ?? 0) > 0) {
        this.notReadyForCommands[id]--;
        const e = new Error(`Instances [[${id}]] not in a valid state for account 123456789012`);
        e.name = "InvalidInstanceId";
        throw e;
      }
      const commands = input.Parameters.commands as string[];
      const run = day2Run(commands);
      this.sent.push({ instanceId: id, run, commands, executionTimeout: input.Parameters.executionTimeout[0] });
      const commandId = `cmd-${this.sent.length}`;
      // The first poll finds no invocation yet, as SSM's eventual consistency allows.
      this.invocations.set(commandId, { outcome: this.outcome(id, run), polls: 0, missingPolls: 1 });
      return { Command: { CommandId: commandId } };
    });
    this.mock.on(GetCommandInvocationCommand).callsFake((input) => {
      const inv = this.invocations.get(input.CommandId)!;
      if (inv.missingPolls > 0) {
        inv.missingPolls--;
        const e = new Error("Invocation does not exist");
        e.name = "InvocationDoesNotExist";
        throw e;
      }
      inv.polls++;
      if (inv.polls <= (inv.outcome.inProgressPolls ?? 0)) return { Status: "InProgress" };
      const status = inv.outcome.status ?? ((inv.outcome.exitCode ?? 0) === 0 ? "Success" : "Failed");
      return { Status: status, ResponseCode: inv.outcome.exitCode ?? (status === "Success" ? 0 : 1), StandardOutputContent: "", StandardErrorContent: inv.outcome.stderr ?? "" };
    });
  }

  /** Every command, as `<instance> <day2.sh args>`. */
  runs(): string[] {
    return this.sent.map((s) => `${s.instanceId} ${s.run}`);
  }

  restore(): void {
    this.mock.restore();
  }
}

/** A clock that sleeps instantly: `sleep` advances `now`. */
export function fakeClock(): { now: () => number; sleep: (ms: number) => Promise<void>; elapsed: () => number } {
  let t = 0;
  return { now: () => t, sleep: async (ms: number) => void (t += ms), elapsed: () => t };
}
