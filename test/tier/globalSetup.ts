/**
 * Jest global setup of both tiers: one directory per run for the shared program captures
 * (test/capture.ts), removed by test/tier/globalTeardown.ts, and the real binaries on PATH when
 * they are built (test/k8s/globalSetup.ts). Workers start after this runs and inherit both.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import realBinaries from "../k8s/globalSetup";

export default function globalSetup(): void {
  process.env.KUBEADM_HA_CAPTURES = fs.mkdtempSync(path.join(os.tmpdir(), "kubeadm-ha-captures-"));
  realBinaries();
}
