/**
 * Offline render: `npm run render -- <stack>`.
 *
 * Runs the real program (index.ts) under Pulumi's mock runtime with Pulumi.<stack>.yaml and writes
 * out/<stack>/: every node's decoded user data, the kubeadm documents, a table of every resource
 * with its key settings, a Mermaid diagram of the topology and the stack outputs. No cloud account,
 * no Pulumi CLI.
 */
import * as fs from "fs";
import * as path from "path";
import { renderStack } from "./renderLib";

const USAGE = "usage: npm run render -- <stack> [--config Pulumi.<stack>.yaml] [--out out/<stack>]";

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const flag = (name: string) => {
    const i = argv.indexOf(name);
    if (i < 0) return undefined;
    const v = argv[i + 1];
    argv.splice(i, 2);
    if (!v) throw new Error(`${name} needs a value\n${USAGE}`);
    return path.resolve(v);
  };
  const configFile = flag("--config");
  const out = flag("--out");
  const stack = argv[0];
  if (!stack || argv.length > 1) {
    console.error(USAGE);
    process.exit(2);
  }
  const root = path.resolve(__dirname, "..");
  const outDir = out ?? path.join(root, "out", stack);
  const files = await renderStack(root, stack, configFile);
  fs.rmSync(outDir, { recursive: true, force: true });
  for (const [rel, content] of Object.entries(files)) {
    const p = path.join(outDir, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, content);
  }
  console.log(`rendered stack ${stack}: ${Object.keys(files).length} files in ${path.relative(process.cwd(), outDir) || outDir}`);
  for (const rel of Object.keys(files).sort()) console.log(`  ${rel}`);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
