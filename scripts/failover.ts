/**
 * `npm run failover -- <stack> [--write]`: the worst-case unavailability of each failure for a
 * stack's settings (scripts/failoverBudget.ts), and warnings for settings outside a sane range.
 * `--write` puts the table in docs/performance.md. Exits 2 on usage errors and unknown stacks,
 * 1 on an invalid stack config.
 */
import * as fs from "fs";
import * as path from "path";
import { parseStackConfig } from "../config";
import { API_HEALTH_CHECK } from "../components/apiLoadBalancer";
import { replaceBetweenMarkers } from "./benchLib";
import { measuredRows, measuredTable, readMeasured } from "./control-plane-failover";
import { budgetTable, failoverBudget } from "./failoverBudget";
import { stackConfig } from "./renderLib";

const ROOT = path.resolve(__dirname, "..");
const USAGE = "usage: npm run failover -- <stack> [--write]";

function main(): number {
  const argv = process.argv.slice(2);
  const write = argv.includes("--write");
  const rest = argv.filter((a) => a !== "--write");
  const stacks = fs.readdirSync(ROOT).filter((f) => /^Pulumi\.[^.]+\.yaml$/.test(f)).map((f) => f.split(".")[1]).sort();
  if (rest.length !== 1 || rest[0].startsWith("-")) {
    console.error(`${USAGE}\nstacks: ${stacks.join(", ")}`);
    return 2;
  }
  const stack = rest[0];
  if (!stacks.includes(stack)) {
    console.error(`unknown stack "${stack}": no Pulumi.${stack}.yaml in ${ROOT} (stacks: ${stacks.join(", ")})`);
    return 2;
  }
  const file = path.join(ROOT, `Pulumi.${stack}.yaml`);
  const config = parseStackConfig(stackConfig(fs.readFileSync(file, "utf8"), file));
  const budget = failoverBudget(config, API_HEALTH_CHECK);
  const table = budgetTable(budget);
  console.log(`Failover budget of stack ${stack} (etcd ${config.etcd.topology}, heartbeat ${config.etcd.heartbeatIntervalMs} ms, election ${config.etcd.electionTimeoutMs} ms; leases ${config.leaderElection.leaseDuration}/${config.leaderElection.renewDeadline}/${config.leaderElection.retryPeriod})\n`);
  console.log(table);
  const m = readMeasured(stack);
  const settingsNow = { ...config.leaderElection, heartbeatIntervalMs: config.etcd.heartbeatIntervalMs, electionTimeoutMs: config.etcd.electionTimeoutMs };
  let measured: string;
  if (!m) measured = `Not measured yet: \`npm run bench:control-plane -- ${stack} --write\` measures it on the real binaries.`;
  else {
    const stale = JSON.stringify({ ...m.settings, renewDeadline: undefined }) !== JSON.stringify({ ...settingsNow, renewDeadline: undefined });
    measured =
      `Measured ${m.measured} on the real binaries (${m.trials} trials each, \`npm run bench:control-plane -- ${stack}\`)` +
      (stale ? `, with other settings than the stack has now (${JSON.stringify(m.settings)}): measure again` : "") +
      `:\n\n${measuredTable(measuredRows(m.settings, m.results))}`;
  }
  console.log(`\n${measured}`);
  if (budget.warnings.length === 0) console.log("\nNo warnings: every setting is within the sane range.");
  for (const w of budget.warnings) console.log(`\nWARNING ${w.setting}: ${w.message}`);
  if (write) {
    const doc = path.join(ROOT, "docs", "performance.md");
    const body = `Stack ${stack} (\`npm run failover -- ${stack} --write\`), computed:\n\n${table}\n\n${measured}\n\n${budget.warnings.length ? budget.warnings.map((w) => `- **${w.setting}**: ${w.message}`).join("\n") : "No warnings."}`;
    fs.writeFileSync(doc, replaceBetweenMarkers(fs.readFileSync(doc, "utf8"), "failover", body));
    console.log(`\nupdated ${path.relative(process.cwd(), doc)}`);
  }
  return 0;
}

try {
  process.exitCode = main();
} catch (e: unknown) {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
}
