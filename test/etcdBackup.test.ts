import * as pulumi from "@pulumi/pulumi";
import { Registration, ofType, settle, setupMocks, valueOf } from "./mocks";
import type * as BackupModule from "../components/etcdBackup";
import * as render from "../cloud-init/render";

let eb: typeof BackupModule;
let regs: Registration[];

beforeAll(async () => {
  regs = await setupMocks();
  eb = await import("../components/etcdBackup");
});

const BUCKET_ARN = "arn:aws:s3:::dev-etcd-backup-20261126000000000000000001";
const BACKUP_KEY = "arn:aws:kms:eu-west-1:123456789012:key/dev-etcd-backups-kms-key-id";
const KEY = "arn:aws:kms:eu-west-1:123456789012:key/dev-secrets-kms-key-id";

describe("backupWritePolicy", () => {
  test("put, get and list under the prefix only, never delete; KMS only through S3 for this bucket", () => {
    expect(eb.backupWritePolicy(BUCKET_ARN, "etcd-snapshots", KEY, "eu-west-1")).toEqual({
      Version: "2012-10-17",
      Statement: [
        { Sid: "WriteAndReadSnapshots", Effect: "Allow", Action: ["s3:PutObject", "s3:GetObject"], Resource: `${BUCKET_ARN}/etcd-snapshots/*` },
        { Sid: "ListSnapshots", Effect: "Allow", Action: "s3:ListBucket", Resource: BUCKET_ARN, Condition: { StringLike: { "s3:prefix": "etcd-snapshots/*" } } },
        {
          Sid: "EncryptSnapshots",
          Effect: "Allow",
          Action: ["kms:GenerateDataKey", "kms:Decrypt"],
          Resource: KEY,
          Condition: { StringEquals: { "kms:ViaService": "s3.eu-west-1.amazonaws.com", "kms:EncryptionContext:aws:s3:arn": BUCKET_ARN } },
        },
      ],
    });
  });

  test("no statement grants a delete or a wildcard action", () => {
    const actions = eb.backupWritePolicy(BUCKET_ARN, "etcd-snapshots", KEY, "eu-west-1").Statement.flatMap((s) => [s.Action].flat());
    expect(actions.filter((a) => /delete|\*/i.test(a))).toEqual([]);
  });

  test.each([
    ["arn:aws:s3:::b/x", "etcd-snapshots", KEY, "eu-west-1", "backupWritePolicy: bucketArn must be an S3 bucket ARN such as arn:aws:s3:::my-bucket (got \"arn:aws:s3:::b/x\")"],
    [BUCKET_ARN, "etcd/snapshots", KEY, "eu-west-1", "backupWritePolicy: prefix must be lowercase letters, digits and hyphens, with no slash (got \"etcd/snapshots\")"],
    [BUCKET_ARN, "etcd-snapshots", "arn:aws:kms:eu-west-1:123456789012:alias/dev", "eu-west-1", "backupWritePolicy: kmsKeyArn must be a KMS key ARN, not an alias (got \"arn:aws:kms:eu-west-1:123456789012:alias/dev\")"],
    [BUCKET_ARN, "etcd-snapshots", KEY, "Ireland", "backupWritePolicy: region must be an AWS region name such as eu-west-1 (got \"Ireland\")"],
    [BUCKET_ARN, "etcd-snapshots", KEY, "us-east-1", "backupWritePolicy: kmsKeyArn is in eu-west-1, not us-east-1; S3 uses a key of its bucket's region"],
  ])("rejects %s %s %s %s", (bucket, prefix, key, region, message) => {
    expect(() => eb.backupWritePolicy(bucket, prefix, key, region)).toThrow(message);
  });
});

test("tlsOnlyBucketPolicy denies every request without TLS, on the bucket and its objects", () => {
  expect(eb.tlsOnlyBucketPolicy(BUCKET_ARN)).toEqual({
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "DenyInsecureTransport",
        Effect: "Deny",
        Principal: "*",
        Action: "s3:*",
        Resource: [BUCKET_ARN, `${BUCKET_ARN}/*`],
        Condition: { Bool: { "aws:SecureTransport": "false" } },
      },
    ],
  });
});

describe("lifecycleRules", () => {
  test.each([1, 30, 3650])("%i days: snapshots expire, then their versions and delete markers; stale uploads abort after a day", (days) => {
    expect(eb.lifecycleRules(days)).toEqual([
      { id: "expire-snapshots", status: "Enabled", filter: { prefix: "etcd-snapshots/" }, expiration: { days }, abortIncompleteMultipartUpload: { daysAfterInitiation: 1 } },
      {
        id: "purge-expired-versions",
        status: "Enabled",
        filter: { prefix: "etcd-snapshots/" },
        expiration: { expiredObjectDeleteMarker: true },
        noncurrentVersionExpiration: { noncurrentDays: days },
      },
    ]);
  });
  test.each([0, 3651, 1.5])("rejects %p", (days) => {
    expect(() => eb.lifecycleRules(days)).toThrow(`lifecycleRules: retentionDays must be a whole number from 1 to 3650 (got ${days})`);
  });
});

describe("names", () => {
  test.each([
    ["arn:aws:iam::123456789012:role/dev-control-plane", "dev-control-plane"],
    ["arn:aws-us-gov:iam::123456789012:role/some/path/dev-etcd", "dev-etcd"],
  ])("roleNameOfArn(%s) = %s", (arn, name) => expect(eb.roleNameOfArn(arn)).toBe(name));
  test("roleNameOfArn rejects what is not a role ARN", () => {
    expect(() => eb.roleNameOfArn("arn:aws:iam::123456789012:user/dev")).toThrow('EtcdBackups: roleArn must be an IAM role ARN such as arn:aws:iam::123456789012:role/name (got "arn:aws:iam::123456789012:user/dev")');
  });
  test.each([
    ["dev", "dev-etcd-backup-"],
    ["abcdefghijklmnopqrstuvwx", "abcdefghijklmnopqrstuvwx-etcd-backup-"],
  ])("bucketPrefix(%s) = %s, within S3's 37 characters", (cluster, prefix) => {
    expect(eb.bucketPrefix(cluster)).toBe(prefix);
    expect(prefix.length).toBeLessThanOrEqual(37);
  });
  test("bucketPrefix rejects a name S3 would refuse", () => {
    expect(() => eb.bucketPrefix("Dev")).toThrow('EtcdBackups: clusterName must be lowercase letters, digits and hyphens (got "Dev")');
    expect(() => eb.bucketPrefix("abcdefghijklmnopqrstuvwxy")).toThrow("EtcdBackups: bucket prefix abcdefghijklmnopqrstuvwxy-etcd-backup- is longer than S3's 37 characters");
  });
});

describe("EtcdBackups", () => {
  test("a private, versioned, KMS-encrypted, TLS-only bucket with retention, and one role policy", async () => {
    const start = regs.length;
    const c = new eb.EtcdBackups("dev-etcd-backups", {
      clusterName: "dev",
      retentionDays: 30,
      roleArn: "arn:aws:iam::123456789012:role/dev-control-plane",
      tags: { team: "platform" },
    });
    const [bucketName, bucketArn] = await Promise.all([valueOf(c.bucketName), valueOf(c.bucketArn)]);
    await settle();
    const mine = regs.slice(start);
    expect(mine.map((r) => [r.type, r.name])).toEqual(
      expect.arrayContaining([
        ["kubeadm-ha:index:EtcdBackups", "dev-etcd-backups"],
        ["aws:s3/bucket:Bucket", "dev-etcd-backups-bucket"],
        ["aws:s3/bucketVersioning:BucketVersioning", "dev-etcd-backups-versioning"],
        ["aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration", "dev-etcd-backups-encryption"],
        ["aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "dev-etcd-backups-public-access-block"],
        ["aws:s3/bucketOwnershipControls:BucketOwnershipControls", "dev-etcd-backups-ownership"],
        ["aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "dev-etcd-backups-lifecycle"],
        ["aws:s3/bucketPolicy:BucketPolicy", "dev-etcd-backups-policy"],
        ["aws:iam/rolePolicy:RolePolicy", "dev-etcd-backups-node-access"],
        ["aws:kms/key:Key", "dev-etcd-backups-kms-key"],
      ]),
    );
    expect(mine).toHaveLength(10);
    const one = (type: string) => {
      const found = ofType(mine, type);
      expect(found).toHaveLength(1);
      return found[0].inputs;
    };
    expect(bucketName).toBe("dev-etcd-backups-bucket");
    expect(bucketArn).toBe("arn:aws:s3:::dev-etcd-backups-bucket");
    expect(one("aws:s3/bucket:Bucket")).toEqual({
      bucketPrefix: "dev-etcd-backup-",
      forceDestroy: false,
      tags: { team: "platform", "kubernetes.io/cluster/dev": "owned", "kubeadm-ha/cluster": "dev", Name: "dev-etcd-backup" },
    });
    expect(one("aws:s3/bucketVersioning:BucketVersioning")).toEqual({ bucket: "dev-etcd-backups-bucket-id", versioningConfiguration: { status: "Enabled" } });
    expect(one("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")).toEqual({
      bucket: "dev-etcd-backups-bucket-id",
      rules: [{ applyServerSideEncryptionByDefault: { sseAlgorithm: "aws:kms", kmsMasterKeyId: BACKUP_KEY }, bucketKeyEnabled: true }],
    });
    expect(one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")).toEqual({
      bucket: "dev-etcd-backups-bucket-id",
      blockPublicAcls: true,
      blockPublicPolicy: true,
      ignorePublicAcls: true,
      restrictPublicBuckets: true,
    });
    expect(one("aws:s3/bucketOwnershipControls:BucketOwnershipControls")).toEqual({ bucket: "dev-etcd-backups-bucket-id", rule: { objectOwnership: "BucketOwnerEnforced" } });
    expect(one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")).toEqual({ bucket: "dev-etcd-backups-bucket-id", rules: eb.lifecycleRules(30) });
    const policy = one("aws:s3/bucketPolicy:BucketPolicy");
    expect(JSON.parse(policy.policy)).toEqual(eb.tlsOnlyBucketPolicy(bucketArn));
    const rolePolicy = one("aws:iam/rolePolicy:RolePolicy");
    expect(rolePolicy.name).toBe("etcd-backup");
    expect(rolePolicy.role).toBe("dev-control-plane");
    expect(JSON.parse(rolePolicy.policy)).toEqual(eb.backupWritePolicy(bucketArn, "etcd-snapshots", BACKUP_KEY, "eu-west-1"));
    expect(await valueOf(c.kmsKeyArn)).toBe(BACKUP_KEY);
  });

  test("the snapshots have their own KMS key, kept when the stack is destroyed, with the bucket (issue 15)", async () => {
    const start = regs.length;
    new eb.EtcdBackups("kept", { clusterName: "dev", retentionDays: 30, roleArn: "arn:aws:iam::123456789012:role/dev-control-plane", tags: {} });
    await settle();
    const [key] = ofType(regs.slice(start), "aws:kms/key:Key");
    expect(key.inputs).toEqual({
      description: "dev: etcd snapshots in S3; kept when the stack is destroyed, with the snapshots",
      enableKeyRotation: true,
      deletionWindowInDays: 30,
      tags: { "kubernetes.io/cluster/dev": "owned", "kubeadm-ha/cluster": "dev", Name: "dev-etcd-backup" },
    });
    expect(key.options.retainOnDelete).toBe(true);
    // No encryption configuration given: none kept.
    expect(ofType(regs.slice(start), "aws:s3/bucketObjectv2:BucketObjectv2")).toEqual([]);
  });

  test("a copy of the API servers' encryption configuration is kept beside the snapshots, under the same key, kept on destroy (issue 15)", async () => {
    const start = regs.length;
    new eb.EtcdBackups("withkey", {
      clusterName: "dev",
      retentionDays: 30,
      roleArn: "arn:aws:iam::123456789012:role/dev-control-plane",
      encryptionConfigYaml: pulumi.secret("kind: EncryptionConfiguration\n"),
      tags: {},
    });
    await settle();
    const [obj] = ofType(regs.slice(start), "aws:s3/bucketObjectv2:BucketObjectv2");
    expect(obj.name).toBe("withkey-encryption-config");
    const { content, ...rest } = obj.inputs;
    expect(rest).toEqual({
      bucket: "withkey-bucket-id",
      key: "encryption-at-rest/encryption-config.yaml",
      contentType: "application/yaml",
      serverSideEncryption: "aws:kms",
      kmsKeyId: "arn:aws:kms:eu-west-1:123456789012:key/withkey-kms-key-id",
    });
    // Secret in the state, the file itself in the object.
    expect(content).toEqual({ [pulumi.runtime.specialSigKey]: pulumi.runtime.specialSecretSig, value: "kind: EncryptionConfiguration\n" });
    expect(obj.options.retainOnDelete).toBe(true);
    // Outside the snapshots' prefix: no lifecycle rule expires it, and the etcd-holding role cannot read it.
    expect(eb.ENCRYPTION_CONFIG_KEY.startsWith(`${eb.SNAPSHOT_PREFIX}/`)).toBe(false);
    for (const r of eb.lifecycleRules(30)) expect(eb.ENCRYPTION_CONFIG_KEY.startsWith(r.filter.prefix)).toBe(false);
  });

  test("rejects a retention S3 cannot keep before creating anything", () => {
    const start = regs.length;
    expect(() => new eb.EtcdBackups("x", { clusterName: "dev", retentionDays: 0, roleArn: "arn:aws:iam::123456789012:role/dev-etcd", tags: {} })).toThrow(
      "lifecycleRules: retentionDays must be a whole number from 1 to 3650 (got 0)",
    );
    expect(regs.length).toBe(start);
  });
});

describe("backup units and node files", () => {
  test("the timer runs the service every interval, from boot and after the bootstrap", () => {
    const [service, timer] = render.backupUnitFiles(15);
    expect(service).toEqual({
      path: "/etc/systemd/system/kubeadm-ha-etcd-backup.service",
      permissions: "0644",
      content: [
        "[Unit]",
        "Description=kubeadm-ha: snapshot the local etcd member to S3",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=oneshot",
        "ExecStart=/usr/local/lib/kubeadm-ha/etcd-backup.sh",
        "TimeoutStartSec=15min",
        "Nice=10",
        "IOSchedulingClass=idle",
        "",
      ].join("\n"),
    });
    expect(timer).toEqual({
      path: "/etc/systemd/system/kubeadm-ha-etcd-backup.timer",
      permissions: "0644",
      content: [
        "[Unit]",
        "Description=kubeadm-ha: etcd snapshot every 15 minutes",
        "",
        "[Timer]",
        "OnBootSec=5min",
        "OnUnitActiveSec=15min",
        "RandomizedDelaySec=60",
        "",
        "[Install]",
        "WantedBy=timers.target",
        "",
      ].join("\n"),
    });
  });

  test.each([0, 2.5])("rejects an interval of %p minutes", (n) => {
    expect(() => render.backupUnitFiles(n)).toThrow(`backupUnitFiles: intervalMinutes must be a whole number of minutes above 0 (got ${n})`);
  });

  // test/etcdBackup-systemd.test.ts runs systemd-analyze verify on both units.

  const env = (role: "etcd" | "control-plane", topology?: "stacked" | "external"): render.NodeEnv => ({
    CLUSTER_NAME: "dev",
    NODE_ROLE: role,
    NODE_NAME: "ip-10-0-0-20.eu-west-1.compute.internal",
    NODE_IP: "10.0.0.20",
    INIT_NODE: "false",
    KUBERNETES_VERSION: "1.35.0",
    KUBERNETES_MINOR: "1.35",
    AWS_REGION: "eu-west-1",
    SECRET_ID: "arn",
    ...(role === "control-plane" ? { API_ENDPOINT: "api:6443", ETCD_TOPOLOGY: topology } : {}),
  });
  const backup = { bucket: "dev-etcd-backup-x", prefix: "etcd-snapshots", kmsKeyArn: KEY, intervalMinutes: 30 };

  test("a member with backups gets the bucket in node.env, both scripts and both units", () => {
    const cc = render.cloudConfig({ env: { ...env("etcd"), ...render.backupEnv(backup) }, kubeadm: {}, backupIntervalMinutes: 30 }, "b");
    const paths = cc.write_files.map((f) => f.path);
    expect(paths.filter((p) => /backup|restore/.test(p))).toEqual([
      "/etc/systemd/system/kubeadm-ha-etcd-backup.service",
      "/etc/systemd/system/kubeadm-ha-etcd-backup.timer",
    ]);
    // The scripts come from the bootstrap bucket, pinned by bundle.list.
    const list = cc.write_files.find((f) => f.path === "/etc/kubeadm-ha/bundle.list")!.content;
    expect(list.split("\n").filter((l) => /backup|restore/.test(l)).map((l) => l.split(" ").slice(1).join(" "))).toEqual([
      "0755 lib/etcd-backup.sh",
      "0755 lib/etcd-restore.sh",
    ]);
    const nodeEnv = cc.write_files.find((f) => f.path === "/etc/kubeadm-ha/node.env")!.content;
    expect(nodeEnv).toContain(`BACKUP_BUCKET='dev-etcd-backup-x'\nBACKUP_PREFIX='etcd-snapshots'\nBACKUP_KMS_KEY='${KEY}'\n`);
    expect(cc.write_files.find((f) => f.path.endsWith(".timer"))!.content).toContain("OnUnitActiveSec=30min\n");
  });

  test("without backups: no bucket, no scripts, no units", () => {
    const cc = render.cloudConfig({ env: env("etcd"), kubeadm: {} }, "b");
    expect(cc.write_files.map((f) => f.path).filter((p) => /backup|restore/.test(p))).toEqual([]);
    expect(cc.write_files.find((f) => f.path === "/etc/kubeadm-ha/bundle.list")!.content).not.toMatch(/backup|restore/);
    expect(cc.write_files.find((f) => f.path === "/etc/kubeadm-ha/node.env")!.content).not.toContain("BACKUP_");
  });

  test.each([
    ["an interval without a bucket", { env: env("etcd"), kubeadm: {}, backupIntervalMinutes: 15 }, "cloudConfig: backupIntervalMinutes and env.BACKUP_BUCKET must be given together"],
    ["a bucket without an interval", { env: { ...env("etcd"), ...render.backupEnv(backup) }, kubeadm: {} }, "cloudConfig: backupIntervalMinutes and env.BACKUP_BUCKET must be given together"],
    [
      "backups on a master without a member",
      { env: { ...env("control-plane", "external"), ...render.backupEnv(backup) }, kubeadm: {}, backupIntervalMinutes: 15 },
      "cloudConfig: etcd backups run only on machines holding an etcd member, not on ip-10-0-0-20.eu-west-1.compute.internal",
    ],
  ])("rejects %s", (_, node, message) => {
    expect(() => render.cloudConfig(node as render.NodeDocuments, "b")).toThrow(message);
  });
});
