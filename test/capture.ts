/**
 * The program (index.ts) evaluated under the mocks once per stack variant and shared by every
 * test file that asserts on it, instead of each file building its own clusters.
 *
 * A jest run's global setup (test/tier/globalSetup.ts) makes a directory for the run; the first
 * file that needs a variant evaluates it in its own process and writes it there, a file in
 * another worker that needs it meanwhile waits for it, and later files read it. Without that
 * directory (Stryker, a config without the global setup) each file evaluates what it needs once.
 * Every file sees the same JSON form, whichever evaluated it.
 */
import * as fs from "fs";
import * as path from "path";
import { ProgramCapture, evaluateProgram, readStackFile, renderFiles, withOverrides } from "../scripts/renderLib";
import { Registration } from "./mocks";

const ROOT = path.resolve(__dirname, "..");

/** A committed stack, or one with top-level `config:` keys of its stack file replaced. */
export interface StackVariant {
  id: string;
  stack: string;
  overrides?: Record<string, unknown>;
}

export const VARIANTS = {
  /** Pulumi.dev.yaml: stacked etcd, internet-facing API, add-ons by Pulumi. */
  dev: { id: "dev", stack: "dev" },
  /** Pulumi.prod.yaml: external etcd, internal API, add-ons by master 0. */
  prod: { id: "prod", stack: "prod" },
  /** dev with master 0 installing the add-ons: the largest master 0 user data. */
  devNodesAddons: { id: "dev+nodes-addons", stack: "dev", overrides: { "kubeadm-ha:addons": { installer: "nodes" } } },
  /** dev with every optional part off: what each switch leaves out. */
  devOff: {
    id: "dev+off",
    stack: "dev",
    overrides: {
      "kubeadm-ha:addons": { awsCloudControllerManager: false, ebsCsiDriver: false, cni: "none", clusterAutoscaler: false, nodeTerminationHandler: false },
      "kubeadm-ha:encryptionAtRest": false,
      "kubeadm-ha:autoRecovery": false,
      "kubeadm-ha:etcd": { topology: "stacked", backup: { enabled: false } },
    },
  },
} satisfies Record<string, StackVariant>;

export interface Captured extends ProgramCapture {
  variant: string;
  /** What `npm run render` writes for it. */
  files: Record<string, string>;
}

/** Registrations of one type. */
export const ofType = (c: Captured, type: string): Registration[] => c.registrations.filter((r) => r.type === type);

/** The program's module, loaded afresh: it registers its resources when loaded. */
function loadProgram(): Record<string, unknown> {
  let program: Record<string, unknown> = {};
  jest.isolateModules(() => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    program = require(path.join(ROOT, "index"));
  });
  return program;
}

async function evaluate(v: StackVariant): Promise<Captured> {
  const config = withOverrides(readStackFile(ROOT, v.stack), v.overrides);
  const capture = await evaluateProgram(v.stack, config, loadProgram);
  const captured: Captured = { variant: v.id, ...capture, files: renderFiles(v.stack, capture) };
  return JSON.parse(JSON.stringify(captured)) as Captured;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Longer than any evaluation takes on a loaded 2-core machine; then a waiter evaluates for itself. */
const LOCK_PATIENCE_MS = 180_000;

/**
 * Each variant from the run's directory, evaluating those no other worker is evaluating: while
 * one worker evaluates dev, another that needs dev and prod evaluates prod instead of waiting.
 */
async function shared(variants: StackVariant[], dir: string): Promise<Map<string, Captured>> {
  const done = new Map<string, Captured>();
  const started = Date.now();
  while (done.size < variants.length) {
    let progressed = false;
    for (const v of variants.filter((x) => !done.has(x.id))) {
      const file = path.join(dir, `${v.id}.json`);
      if (fs.existsSync(file)) {
        done.set(v.id, JSON.parse(fs.readFileSync(file, "utf8")) as Captured);
        progressed = true;
        continue;
      }
      const lock = path.join(dir, `${v.id}.lock`);
      try {
        fs.mkdirSync(lock);
      } catch {
        if (Date.now() - started < LOCK_PATIENCE_MS) continue;
      }
      try {
        const c = await evaluate(v);
        fs.writeFileSync(`${file}.${process.pid}`, JSON.stringify(c));
        fs.renameSync(`${file}.${process.pid}`, file);
        done.set(v.id, c);
        progressed = true;
      } finally {
        fs.rmSync(lock, { recursive: true, force: true });
      }
    }
    if (!progressed) await sleep(50);
  }
  return done;
}

const inProcess = new Map<string, Captured>();

/** The variants, each evaluated once for this jest run (or once for this file, outside one), in the order given. */
export async function captureAll(variants: StackVariant[]): Promise<Captured[]> {
  const missing = variants.filter((v) => !inProcess.has(v.id));
  const dir = process.env.KUBEADM_HA_CAPTURES;
  if (dir && fs.existsSync(dir)) for (const [id, c] of await shared(missing, dir)) inProcess.set(id, c);
  else for (const v of missing) inProcess.set(v.id, await evaluate(v));
  return variants.map((v) => inProcess.get(v.id)!);
}

/** One variant, evaluated once for this jest run (or once for this file, outside one). */
export async function captured(v: StackVariant): Promise<Captured> {
  return (await captureAll([v]))[0];
}
