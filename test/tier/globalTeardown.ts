import * as fs from "fs";

export default function globalTeardown(): void {
  const dir = process.env.KUBEADM_HA_CAPTURES;
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
}
