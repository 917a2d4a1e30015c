/** What the fast tier puts in place of child_process: every way of starting a process throws, naming the call. */
export const PROCESS_CALLS = ["spawn", "spawnSync", "exec", "execSync", "execFile", "execFileSync", "fork"] as const;

export function guardedChildProcess(actual: Record<string, unknown>): Record<string, unknown> {
  const refuse = (call: string) => (...args: unknown[]) => {
    throw new Error(
      `npm run test:unit starts no process, but this test called child_process.${call}(${JSON.stringify(args[0])}): ` +
        "move it to a slow-tier file and list that file in SLOW_TESTS (jest.unit.config.js)",
    );
  };
  return { ...actual, ...Object.fromEntries(PROCESS_CALLS.map((c) => [c, refuse(c)])) };
}
