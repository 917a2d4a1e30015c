/**
 * Where the real Kubernetes and etcd binaries built by test/k8s/build.sh are. Tests, benchmarks and
 * `npm run local` take them from here; a missing build is an error naming the command that makes
 * it, never a skip. Never touches jest globals.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";

export const REPO_ROOT = path.resolve(__dirname, "..", "..");
export const BUILD_SCRIPT = path.join(REPO_ROOT, "test", "k8s", "build.sh");

/** The binaries build.sh makes. */
export type K8sBinary =
  | "kubeadm"
  | "kube-apiserver"
  | "kube-controller-manager"
  | "kube-scheduler"
  | "kubectl"
  | "kubelet-config-validate"
  | "etcd"
  | "etcdctl"
  | "etcdutl";

let cached: string | undefined;

/**
 * The bin directory of the build matching the pinned modules. `K8S_BIN_DIR` overrides it (set once
 * per jest run by test/k8s/globalSetup.ts, so each test file does not ask Go again).
 * @throws Error when the binaries are not built.
 */
export function k8sBinDir(): string {
  if (cached) return cached;
  const fromEnv = process.env.K8S_BIN_DIR;
  if (fromEnv && fs.existsSync(path.join(fromEnv, "kubeadm"))) return (cached = fromEnv);
  const r = spawnSync("bash", [BUILD_SCRIPT, "--check"], { encoding: "utf8" });
  if (r.status !== 0 || !r.stdout.trim())
    throw new Error(`the real Kubernetes binaries are not built: run \`npm run setup\` (or \`bash test/k8s/build.sh\`); ${r.stderr.trim()}`);
  return (cached = r.stdout.trim().split("\n").pop()!);
}

/** Absolute path of one built binary. */
export function k8sBinary(name: K8sBinary): string {
  const p = path.join(k8sBinDir(), name);
  if (!fs.existsSync(p)) throw new Error(`${p} is missing: run \`bash test/k8s/build.sh\``);
  return p;
}

/** PATH with the built binaries first, for scripts that call `etcdctl` or `kubeadm` by name. */
export function pathWithK8sBinaries(base = process.env.PATH ?? ""): string {
  return `${k8sBinDir()}:${base}`;
}

/**
 * `[command, args]` running `bin` with kubeadm's `--rootfs`, which chroots: as root directly, otherwise
 * in an unprivileged user namespace mapping this user to root (chroot needs CAP_SYS_CHROOT).
 */
export function chrootable(bin: string, args: string[]): [string, string[]] {
  return process.getuid?.() === 0 ? [bin, args] : ["unshare", ["--user", "--map-root-user", "--", bin, ...args]];
}
