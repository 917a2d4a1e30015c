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

/** The stacks of this project: one Pulumi.<stack>.yaml each. */
export function stacksIn(root: string): string[] {
  return fs
    .readdirSync(root)
    .filter((f) => /^Pulumi\.[^.]+\.yaml$/.test(f))
    .map((f) => f.split(".")[1])
    .sort();
}

async function main(): Promise<number> {
  const root = path.resolve(__dirname, "..");
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
    console.error(`${USAGE}\nstacks: ${stacksIn(root).join(", ")}`);
    return 2;
  }
  const outDir = out ?? path.join(root, "out", stack);
  let files: Record<string, string>;
  try {
    files = await renderStack(root, stack, configFile);
  } catch (e) {
    // No stale output: a reader of out/<stack> must never take the last good render for this one.
    fs.rmSync(outDir, { recursive: true, force: true });
    throw e;
  }
  // Written beside the target, then swapped in: a render that dies half-way leaves no mix of old and new.
  const tmp = `${outDir}.tmp-${process.pid}`;
  try {
    for (const [rel, content] of Object.entries(files)) {
      const p = path.join(tmp, rel);
      fs.mkdirSync(path.dirname(p), { recursive: true });
      fs.writeFileSync(p, content);
    }
    fs.rmSync(outDir, { recursive: true, force: true });
    fs.renameSync(tmp, outDir);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  console.log(`rendered stack ${stack}: ${Object.keys(files).length} files in ${path.relative(process.cwd(), outDir) || outDir}`);
  for (const rel of Object.keys(files).sort()) console.log(`  ${rel}`);
  return 0;
}

if (require.main === module)
  main().then(
    (code) => process.exit(code),
    (e: unknown) => {
      console.error(e instanceof Error ? e.message : e);
      process.exit(1);
    },
  );
