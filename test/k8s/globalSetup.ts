/**
 * Jest global setup: when the real Kubernetes and etcd binaries are built (test/k8s/build.sh), every
 * test process finds them first on PATH (the etcd tests run `etcd` and `etcdctl` by name) and in
 * K8S_BIN_DIR, asked of build.sh once per run. When they are not, nothing is set and the tests that
 * need them fail with the command that builds them; the others run.
 */
import { spawnSync } from "child_process";
import { BUILD_SCRIPT } from "./binaries";

export default function globalSetup(): void {
  const r = spawnSync("bash", [BUILD_SCRIPT, "--check"], { encoding: "utf8" });
  const dir = r.status === 0 ? r.stdout.trim().split("\n").pop() : undefined;
  if (!dir) return;
  process.env.K8S_BIN_DIR = dir;
  process.env.PATH = `${dir}:${process.env.PATH ?? ""}`;
}
