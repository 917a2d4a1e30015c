/**
 * The scripts as machines receive them (comments stripped by cloud-init/render.ts shippedScript),
 * written into a directory: what the script tests run, so stripping can never change behaviour
 * unnoticed.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { SCRIPTS_DIR, shippedScript } from "../cloud-init/render";

/** Writes the shipped copies of `names` (default: every script) into `dir` (default: a new temp dir) and returns the dir. */
export function shipScripts(names?: string[], dir: string = fs.mkdtempSync(path.join(os.tmpdir(), "kubeadm-ha-shipped-"))): string {
  fs.mkdirSync(dir, { recursive: true });
  for (const f of names ?? fs.readdirSync(SCRIPTS_DIR).filter((f) => f.endsWith(".sh")))
    fs.writeFileSync(path.join(dir, f), shippedScript(fs.readFileSync(path.join(SCRIPTS_DIR, f), "utf8")), { mode: 0o755 });
  return dir;
}
