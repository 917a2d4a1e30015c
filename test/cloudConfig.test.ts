/**
 * cloud-init/render.ts as pure functions, exactly: the env file, the bundle list, the script
 * selection per machine, the cloud-config document and its encoding for EC2, and the size limit.
 * The stacks' real renders: test/render.test.ts; the scripts running: test/bootstrap-scripts.test.ts.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as zlib from "zlib";
import { parse } from "yaml";
import {
  BOOTSTRAP_PREFIX,
  INLINE_SCRIPTS,
  NodeDocuments,
  NodeEnv,
  USER_DATA_LIMIT,
  assertUserDataSize,
  backupEnv,
  backupUnitFiles,
  bundleList,
  bundledScriptContents,
  cloudConfig,
  encodeUserData,
  envFile,
  holdsEtcdMember,
  renderCloudConfig,
  scriptFiles,
  scriptsFor,
  shippedScript,
  sha256Hex,
  userDataBytes,
} from "../cloud-init/render";

const ENV: NodeEnv = {
  CLUSTER_NAME: "dev",
  NODE_ROLE: "worker",
  NODE_NAME: "ip-10-0-0-30.eu-west-1.compute.internal",
  NODE_IP: "10.0.0.30",
  INIT_NODE: "false",
  KUBERNETES_VERSION: "1.35.0",
  KUBERNETES_MINOR: "1.35",
  API_ENDPOINT: "api:6443",
  AWS_REGION: "eu-west-1",
  SECRET_ID: "arn:secret",
};
const WORKER: NodeDocuments = { env: ENV, kubeadm: { "join.yaml": "kind: JoinConfiguration\n" } };

describe("envFile", () => {
  it("single-quotes every value and escapes embedded quotes, one line a variable", () => {
    expect(envFile({ A: "x", B_2: "it's $HOME", C: "" })).toBe("A='x'\nB_2='it'\\''s $HOME'\nC=''\n");
  });

  it.each(["a", "2A", "A-B", "A B", ""])("refuses %j, which is no shell variable name", (k) => {
    expect(() => envFile({ [k]: "x" })).toThrow(`env file key ${JSON.stringify(k)} is not a shell variable name`);
  });
});

describe("bundleList", () => {
  it("lists each script's hash, mode and name under lib/, in the order given", () => {
    const files = [
      { path: "/usr/local/lib/kubeadm-ha/b.sh", content: "b", permissions: "0755" },
      { path: "/usr/local/lib/kubeadm-ha/a.sh", content: "a", permissions: "0700" },
    ];
    expect(bundleList(files)).toBe(`${sha256Hex("b")} 0755 lib/b.sh\n${sha256Hex("a")} 0700 lib/a.sh\n`);
    expect(sha256Hex("a")).toBe("ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb");
    expect(bundleList([])).toBe("");
  });
});

describe("scripts and units from their folders", () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "render-dir-"));
    for (const [f, text] of Object.entries({ "b.sh": "# b\nb\n", "a.sh": "a\n", "boot.sh": "boot\n", "notes.txt": "x", "c.service": "[Unit]\nX=@OTHER@\n" })) fs.writeFileSync(path.join(dir, f), text);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("bundledScriptContents: every .sh but the inline ones, in name order, as shipped", () => {
    expect(bundledScriptContents(dir)).toEqual(["a\n", "b\n"]);
  });

  it("scriptFiles: in name order under the lib folder, executable", () => {
    expect(scriptFiles(["b.sh", "a.sh"], dir)).toEqual([
      { path: "/usr/local/lib/kubeadm-ha/a.sh", content: "a\n", permissions: "0755" },
      { path: "/usr/local/lib/kubeadm-ha/b.sh", content: shippedScript("# b\nb\n"), permissions: "0755" },
    ]);
  });

  it("backupUnitFiles: a timer every minute is allowed; a placeholder left unfilled is refused", () => {
    expect(backupUnitFiles(1).find((u) => u.path.endsWith(".timer"))!.content).toContain("OnUnitActiveSec=1min\n");
    fs.copyFileSync(path.join(dir, "c.service"), path.join(dir, "kubeadm-ha-etcd-backup.service"));
    fs.writeFileSync(path.join(dir, "kubeadm-ha-etcd-backup.timer"), "OnUnitActiveSec=@INTERVAL_MINUTES@min\n");
    expect(() => backupUnitFiles(5, dir)).toThrow("backupUnitFiles: kubeadm-ha-etcd-backup.service has a placeholder nobody fills: @OTHER@");
  });
});

describe("machines and their scripts", () => {
  it.each([
    [{ role: "etcd" }, true],
    [{ role: "control-plane", etcdTopology: "stacked" }, true],
    [{ role: "control-plane", etcdTopology: "external" }, false],
    [{ role: "control-plane" }, false],
    [{ role: "worker", etcdTopology: "stacked" }, false],
  ] as const)("holdsEtcdMember(%j) = %s", (n, holds) => expect(holdsEtcdMember(n)).toBe(holds));

  it.each([
    [{role: "worker"}, ["boot.sh", "bootstrap.sh", "fetch-secrets.sh", "install.sh", "lib.sh"]],
    [{role: "worker", backup: true, addons: true}, ["boot.sh", "bootstrap.sh", "fetch-secrets.sh", "install.sh", "lib.sh"]],
    [{role: "control-plane", etcdTopology: "external"}, ["boot.sh", "bootstrap.sh", "cert-renew.sh", "day2.sh", "etcdctl.sh", "fetch-secrets.sh", "install.sh", "join-lock.sh", "lib.sh", "token-rotate.sh"]],
    [{role: "control-plane", etcdTopology: "external", backup: true}, ["boot.sh", "bootstrap.sh", "cert-renew.sh", "day2.sh", "etcdctl.sh", "fetch-secrets.sh", "install.sh", "join-lock.sh", "lib.sh", "token-rotate.sh"]],
    [{role: "control-plane", etcdTopology: "external", addons: true}, ["addons.sh", "boot.sh", "bootstrap.sh", "cert-renew.sh", "day2.sh", "etcdctl.sh", "fetch-secrets.sh", "install.sh", "join-lock.sh", "lib.sh", "token-rotate.sh"]],
    [{role: "control-plane", etcdTopology: "stacked"}, ["boot.sh", "bootstrap.sh", "cert-renew.sh", "day2.sh", "etcd-rejoin.sh", "etcdctl.sh", "fetch-secrets.sh", "install.sh", "join-lock.sh", "lib.sh", "token-rotate.sh"]],
    [{role: "control-plane", etcdTopology: "stacked", backup: true}, ["boot.sh", "bootstrap.sh", "cert-renew.sh", "day2.sh", "etcd-backup.sh", "etcd-rejoin.sh", "etcd-restore.sh", "etcdctl.sh", "fetch-secrets.sh", "install.sh", "join-lock.sh", "lib.sh", "token-rotate.sh"]],
    [{role: "etcd"}, ["boot.sh", "bootstrap.sh", "cert-renew.sh", "day2.sh", "etcd-rejoin.sh", "etcdctl.sh", "fetch-secrets.sh", "install.sh", "lib.sh"]],
    [{role: "etcd", backup: true, addons: true}, ["boot.sh", "bootstrap.sh", "cert-renew.sh", "day2.sh", "etcd-backup.sh", "etcd-rejoin.sh", "etcd-restore.sh", "etcdctl.sh", "fetch-secrets.sh", "install.sh", "lib.sh"]],
  ] as const)("scriptsFor(%j)", (needs, scripts) => expect(scriptsFor(needs)).toEqual(scripts));

  it("backupEnv: three variables when on, none when off", () => {
    expect(backupEnv({ bucket: "b", prefix: "p", kmsKeyArn: "k", intervalMinutes: 15 })).toEqual({ BACKUP_BUCKET: "b", BACKUP_PREFIX: "p", BACKUP_KMS_KEY: "k" });
    expect(backupEnv(undefined)).toEqual({});
  });
});

describe("cloudConfig", () => {
  const files = (node: NodeDocuments) => cloudConfig(node, "dev-bootstrap-0123").write_files;

  it("a worker: the inline scripts, the bundle list, node.env and its kubeadm documents, root's, boot.sh run once", () => {
    const c = cloudConfig({ ...WORKER, kubeadm: { "z.yaml": "z", "join.yaml": "j" } }, "dev-bootstrap-0123");
    expect(c.runcmd).toEqual([["/usr/local/lib/kubeadm-ha/boot.sh"]]);
    expect(c.write_files.map((f) => [f.path, f.permissions, f.owner])).toEqual([
      ["/usr/local/lib/kubeadm-ha/boot.sh", "0755", "root:root"],
      ["/usr/local/lib/kubeadm-ha/install.sh", "0755", "root:root"],
      ["/usr/local/lib/kubeadm-ha/lib.sh", "0755", "root:root"],
      ["/etc/kubeadm-ha/bundle.list", "0644", "root:root"],
      ["/etc/kubeadm-ha/node.env", "0644", "root:root"],
      ["/etc/kubeadm-ha/join.yaml", "0600", "root:root"],
      ["/etc/kubeadm-ha/z.yaml", "0600", "root:root"],
      // The IMDS guard, on every machine that runs pods (issue 15).
      ["/etc/systemd/system/kubeadm-ha-imds-guard.service", "0644", "root:root"],
    ]);
    expect(INLINE_SCRIPTS).toEqual(["boot.sh", "install.sh", "lib.sh"]);
    expect(c.write_files.find((f) => f.path.endsWith("join.yaml"))!.content).toBe("j");
    // bootstrap.sh and fetch-secrets.sh come from the bucket, pinned by hash.
    expect(c.write_files[3].content.split("\n").filter(Boolean).map((l) => l.split(" ").slice(1).join(" "))).toEqual(["0755 lib/bootstrap.sh", "0755 lib/fetch-secrets.sh"]);
  });

  it("node.env: every variable set, the bucket and the token placeholder added, unset ones left out", () => {
    const env = files({ ...WORKER, env: { ...ENV, ETCD_TOPOLOGY: undefined } }).find((f) => f.path === "/etc/kubeadm-ha/node.env")!.content;
    expect(env).toBe(
      envFile({ ...(ENV as unknown as Record<string, string>), BOOTSTRAP_BUCKET: "dev-bootstrap-0123", BOOTSTRAP_PREFIX: "bootstrap/", TOKEN_PLACEHOLDER: "__BOOTSTRAP_TOKEN__" }),
    );
    expect(BOOTSTRAP_PREFIX).toBe("bootstrap/");
    expect(env).not.toContain("ETCD_TOPOLOGY");
  });

  it("an etcd member with backups: the backup scripts fetched, the service and timer written", () => {
    const member: NodeDocuments = {
      env: { ...ENV, NODE_ROLE: "etcd", API_ENDPOINT: undefined, ...backupEnv({ bucket: "b", prefix: "p", kmsKeyArn: "k", intervalMinutes: 30 }) },
      kubeadm: {},
      backupIntervalMinutes: 30,
    };
    const f = files(member);
    expect(f.filter((x) => x.path.startsWith("/etc/systemd/system/kubeadm-ha-etcd-backup.")).map((x) => [x.path, x.permissions])).toEqual([
      ["/etc/systemd/system/kubeadm-ha-etcd-backup.service", "0644"],
      ["/etc/systemd/system/kubeadm-ha-etcd-backup.timer", "0644"],
    ]);
    expect(f.find((x) => x.path.endsWith(".timer"))!.content).toContain("OnUnitActiveSec=30min\n");
    expect(f.find((x) => x.path.endsWith("bundle.list"))!.content).toMatch(/ lib\/etcd-backup\.sh\n.* lib\/etcd-rejoin\.sh\n.* lib\/etcd-restore\.sh\n/);
  });

  it.each([
    [{ ...WORKER, backupIntervalMinutes: 15 }, "cloudConfig: backupIntervalMinutes and env.BACKUP_BUCKET must be given together"],
    [{ ...WORKER, env: { ...ENV, BACKUP_BUCKET: "b" } }, "cloudConfig: backupIntervalMinutes and env.BACKUP_BUCKET must be given together"],
    [{ ...WORKER, env: { ...ENV, BACKUP_BUCKET: "b" }, backupIntervalMinutes: 15 }, "cloudConfig: etcd backups run only on machines holding an etcd member, not on ip-10-0-0-30.eu-west-1.compute.internal"],
  ])("refuses backups that cannot run: %#", (node, message) => {
    expect(() => cloudConfig(node, "b")).toThrow(message);
  });
});

describe("what EC2 receives", () => {
  it("renderCloudConfig: the #cloud-config header, then the document as YAML 1.1, long lines unfolded", () => {
    const node = { ...WORKER, kubeadm: { "join.yaml": "x ".repeat(80).trim() } };
    const text = renderCloudConfig(node, "dev-bootstrap-0123");
    expect(text.startsWith("#cloud-config\nwrite_files:\n")).toBe(true);
    expect(parse(text, { version: "1.1" })).toEqual(cloudConfig(node, "dev-bootstrap-0123"));
    expect(text).toContain(`content: ${"x ".repeat(80).trim()}\n`);
  });

  it("renderCloudConfig: YAML 1.1, so a value 1.1 reads as a boolean stays a quoted string", () => {
    const text = renderCloudConfig({ ...WORKER, kubeadm: { "join.yaml": "yes" } }, "b");
    expect(text).toContain('content: "yes"\n');
  });

  it("encodeUserData: gzip at level 9, base64, the same bytes every time", () => {
    const text = renderCloudConfig(WORKER, "b");
    const encoded = encodeUserData(text);
    expect(encoded).toBe(zlib.gzipSync(Buffer.from(text, "utf8"), { level: 9 }).toString("base64"));
    expect(zlib.gunzipSync(Buffer.from(encoded, "base64")).toString("utf8")).toBe(text);
    expect(userDataBytes(encoded)).toBe(Buffer.from(encoded, "base64").length);
  });

  it("assertUserDataSize: EC2's 16,384 bytes less the margin, inclusive", () => {
    expect(USER_DATA_LIMIT).toBe(16384);
    const ofBytes = (n: number) => Buffer.alloc(n).toString("base64");
    expect(() => assertUserDataSize("m", ofBytes(16384 - 4096))).not.toThrow();
    expect(() => assertUserDataSize("m", ofBytes(16384 - 4096 + 1))).toThrow("user data of m is 12289 bytes; EC2 allows 16384 and we keep 4096 spare");
    expect(() => assertUserDataSize("m", ofBytes(16000), 384)).not.toThrow();
    expect(() => assertUserDataSize("m", ofBytes(16001), 384)).toThrow("user data of m is 16001 bytes; EC2 allows 16384 and we keep 384 spare");
  });
});
