/**
 * The project's own day2.sh (cloud-init/scripts/day2.sh), as shipped, run on a machine of the
 * loopback control plane (test/k8s/localCluster.ts) the way the rollout runs it through SSM: with
 * the real kubeadm, kubectl and etcdctl against the real API servers and etcd. Stand-ins only where
 * the loopback machine has no such thing:
 * - IMDS serves the user data the program renders for the machine (the new one, after Pulumi
 *   changed it), the bootstrap bucket is a directory of the shipped scripts (test/stubs/aws-s3api.sh);
 * - apt-get, apt-mark, gpg and systemctl record and succeed: the built binaries are the new release
 *   already, and the static pod runner is the kubelet;
 * - kubeadm runs chrooted into the machine's root (`--rootfs`), without the preflight checks of a
 *   kubelet, a container runtime and CoreDNS, the health Job and the add-on phase, since nothing
 *   here runs pods (CoreDNS would stay Pending and block a drain), and without its etcd step, whose
 *   data backup runs `cp` inside the chroot;
 * - curl to the machine's own 127.0.0.1 goes to its address, where the runner moved its listeners.
 */
import { spawn } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { BOOTSTRAP_PREFIX, bundledScriptContents, shippedScript, SCRIPTS_DIR } from "../../cloud-init/render";
import { LocalCluster, LocalMachine } from "./localCluster";

const REPO = path.resolve(__dirname, "..", "..");
const STUBS = path.join(REPO, "test", "stubs");

export interface Day2Run {
  code: number | null;
  stderr: string;
  ms: number;
}

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Sets the user data (gzipped cloud-config) IMDS serves `m` from now on, as after Pulumi changed it. */
export function setUserData(c: LocalCluster, m: LocalMachine, userData: Buffer): void {
  fs.writeFileSync(path.join(c.work, "day2", m.name, "user-data"), userData);
}

/**
 * Prepares `m` for day2.sh: its stand-ins, the bucket, and `userData` (gzipped cloud-config) as IMDS
 * serves it; and what the kubelet leaves on a real master that the harness has none of.
 */
export async function prepareDay2(c: LocalCluster, m: LocalMachine, userData: Buffer): Promise<string> {
  const dir = path.join(c.work, "day2", m.name);
  const bin = path.join(dir, "bin");
  const bucket = path.join(c.work, "day2", "bucket");
  fs.mkdirSync(bin, { recursive: true });
  fs.mkdirSync(path.join(dir, "state"), { recursive: true });
  fs.mkdirSync(path.join(bucket, BOOTSTRAP_PREFIX), { recursive: true });
  for (const content of [...bundledScriptContents(), shippedScript(fs.readFileSync(path.join(SCRIPTS_DIR, "lib.sh"), "utf8"))])
    fs.writeFileSync(path.join(bucket, BOOTSTRAP_PREFIX, crypto.createHash("sha256").update(content).digest("hex")), content);
  fs.writeFileSync(path.join(dir, "user-data"), userData);
  // What kubeadm's kubelet-start phase writes on a real machine (the harness runs no kubelet): the
  // upgrade's kubelet-config phase backs it up before writing the new one.
  const kubelet = path.join(m.root, "var/lib/kubelet");
  fs.mkdirSync(kubelet, { recursive: true });
  if (!fs.existsSync(path.join(kubelet, "config.yaml"))) fs.writeFileSync(path.join(kubelet, "config.yaml"), "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n");
  if (!fs.existsSync(path.join(kubelet, "kubeadm-flags.env"))) fs.writeFileSync(path.join(kubelet, "kubeadm-flags.env"), 'KUBELET_KUBEADM_ARGS=""\n');
  // A joined master's kubelet.conf, which its TLS bootstrap writes: kubeadm upgrade node finds the
  // node's name in its client certificate (else it takes the host name).
  const kubeletConf = path.join(m.root, "etc/kubernetes/kubelet.conf");
  if (!fs.existsSync(kubeletConf)) {
    const cfg = { apiVersion: "kubeadm.k8s.io/v1beta4", kind: "ClusterConfiguration", clusterName: c.config.clusterName, controlPlaneEndpoint: c.apiUrl.replace(/^https:\/\//, ""), certificatesDir: "/etc/kubernetes/pki" };
    fs.writeFileSync(path.join(m.root, "tmp/kubelet-conf.yaml"), JSON.stringify(cfg));
    const conf = await c.kubeadm(m, ["kubeconfig", "user", "--config", "/tmp/kubelet-conf.yaml", "--client-name", `system:node:${m.name}`, "--org", "system:nodes"]);
    fs.writeFileSync(kubeletConf, conf.slice(conf.indexOf("apiVersion:")), { mode: 0o600 });
  }
  fs.copyFileSync(path.join(STUBS, "stub-lib.sh"), path.join(bin, "stub-lib.sh"));
  for (const [from, to] of [["aws-s3api.sh", "aws"], ["apt-get.sh", "apt-get"], ["gpg.sh", "gpg"], ["record.sh", "apt-mark"], ["record.sh", "systemctl"]]) {
    fs.copyFileSync(path.join(STUBS, from), path.join(bin, to));
    fs.chmodSync(path.join(bin, to), 0o755);
  }
  const script = (name: string, body: string) => fs.writeFileSync(path.join(bin, name), `#!/usr/bin/env bash\nset -euo pipefail\n${body}\n`, { mode: 0o755 });
  script(
    "kubeadm",
    [
      `root=${q(m.root)}`,
      // The join lock's credential (join-lock.sh) is signed from a document naming the machine's
      // certificate directory as the script sees it: no chroot, as cert-renewal-real runs it.
      `if [[ \${1:-} == kubeconfig ]]; then exec ${q(path.join(c.binDir, "kubeadm"))} "$@"; fi`,
      // Paths day2.sh passes are the machine's, which kubeadm sees under its chroot.
      'args=("${@//$root/}")',
      'extra=()',
      // No kubelet, container runtime or CoreDNS here; and kubeadm backs etcd's data up with the chroot's
      // own cp, which a machine root of files only lacks: etcd's image is the same for both patches.
      'if [[ ${args[0]:-} == upgrade ]]; then extra=(--ignore-preflight-errors=CreateJob,SystemVerification,ContainerRuntimeVersion,ImagePull,CoreDNSUnsupportedPlugins,CoreDNSMigration --skip-phases=addon --etcd-upgrade=false); fi',
      `exec ${q(path.join(c.binDir, "kubeadm"))} "\${args[@]}" "\${extra[@]}" --rootfs "$root" -v=1`,
    ].join("\n"),
  );
  script(
    "curl",
    [
      'url=${*: -1} out=""',
      "args=()",
      'while (($#)); do if [[ $1 == --output ]]; then out=$2; args+=("$1" "$2"); shift 2; else args+=("$1"); shift; fi; done',
      'case $url in',
      `  http://169.254.169.254/latest/api/token) echo token ;;`,
      `  http://169.254.169.254/latest/user-data) cp ${q(path.join(dir, "user-data"))} "$out" ;;`,
      "  */Release.key) echo FAKE KEY ;;",
      `  *) exec /usr/bin/curl "\${args[@]//https:\\/\\/127.0.0.1:/https://${m.ip}:}" ;;`,
      "esac",
    ].join("\n"),
  );
  return dir;
}

/** Runs the shipped day2.sh with `args` on `m` (after `prepareDay2`). */
export async function runDay2(c: LocalCluster, m: LocalMachine, scripts: string, args: string[], timeoutMs = 900000): Promise<Day2Run> {
  const dir = path.join(c.work, "day2", m.name);
  const t0 = Date.now();
  const root = (p: string) => path.join(m.root, p);
  const env = {
    PATH: `${path.join(dir, "bin")}:${c.binDir}:/usr/bin:/bin`,
    HOME: dir,
    LANG: "C.UTF-8",
    KUBEADM_HA_ETC: root("etc/kubeadm-ha"),
    KUBERNETES_DIR: root("etc/kubernetes"),
    KUBEADM_HA_RUN: root("run/kubeadm-ha"),
    KUBEADM_HA_LIB: root("usr/local/lib/kubeadm-ha"),
    KUBEADM_HA_ETCD_DATA_DIR: root("var/lib/etcd"),
    SYSTEMD_DIR: root("etc/systemd/system"),
    APT_KEYRINGS: root("etc/apt/keyrings"),
    APT_SOURCES: root("etc/apt/sources.list.d"),
    KUBEADM_HA_POLL_SECONDS: "2",
    KUBEADM_HA_WAIT_SECONDS: "300",
    // The join lock's holder renews it every third of this in the background (join-lock.sh): short,
    // so a real upgrade's kubeadm step shows renewals.
    KUBEADM_HA_LOCK_STALE_SECONDS: "12",
    ETCDCTL: path.join(c.binDir, "etcdctl"),
    STUB_STATE: path.join(dir, "state"),
    STUB_BUCKET_DIR: path.join(c.work, "day2", "bucket"),
  };
  return new Promise((resolve) => {
    const p = spawn("/bin/bash", [path.join(scripts, "day2.sh"), ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    p.stdout.on("data", (b: Buffer) => (stderr += b.toString()));
    p.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
    p.once("exit", (code) => {
      clearTimeout(timer);
      fs.appendFileSync(path.join(c.work, "logs", `${m.name}-day2.log`), `\n=== day2.sh ${args.join(" ")}\n${stderr}`);
      resolve({ code, stderr, ms: Date.now() - t0 });
    });
  });
}
