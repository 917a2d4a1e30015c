/**
 * One directory per jest run for the shared program captures (test/capture.ts); removed by
 * test/tier/globalTeardown.ts. Workers start after this runs and inherit the variable.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

export default function globalSetup(): void {
  process.env.KUBEADM_HA_CAPTURES = fs.mkdtempSync(path.join(os.tmpdir(), "kubeadm-ha-captures-"));
}
