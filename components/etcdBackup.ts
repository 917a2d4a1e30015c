/**
 * Where etcd snapshots go: an S3 bucket of the stack (versioned, encrypted with a KMS key of its own,
 * private, TLS only, expiring after `retentionDays`), writable only by the role of the machines
 * holding etcd members. The machines take the snapshots themselves (cloud-init/scripts/etcd-backup.sh
 * on a systemd timer); etcd-restore.sh brings a cluster back.
 *
 * The bucket outlives `pulumi destroy` while it holds snapshots (S3 refuses to delete it), so what
 * reads them must too: the bucket's KMS key is kept when the stack goes (`retainOnDelete`; the
 * bootstrap key is deleted with the stack), and a copy of the API servers' encryption
 * configuration, without which a snapshot's Secrets stay ciphertext, is kept in the bucket
 * (`ENCRYPTION_CONFIG_KEY`, every version). README, "Restore after the stack is gone".
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { Policy, privateBucketGuards, requireBucketArn } from "./s3";
import { clusterTags } from "./tags";

export { Policy, Statement, tlsOnlyBucketPolicy } from "./s3";

/** Key prefix of every snapshot: `<prefix>/<member name>/<UTC timestamp>.db`. */
export const SNAPSHOT_PREFIX = "etcd-snapshots";

/**
 * Where the bucket keeps the API servers' `EncryptionConfiguration`: outside the snapshots' prefix, so
 * no lifecycle rule expires it and the etcd-holding role cannot read it. Versioned like the
 * snapshots: after a key rotation the older version still decrypts the older snapshots.
 */
export const ENCRYPTION_CONFIG_KEY = "encryption-at-rest/encryption-config.yaml";

/** Days after which S3 aborts an unfinished multipart upload (a machine that died mid-upload). */
export const ABORT_MULTIPART_DAYS = 1;



const KMS_KEY_ARN = /^arn:aws[a-z-]*:kms:([a-z0-9-]+):\d{12}:key\/.+$/;
const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/(?:[\w+=,.@-]+\/)*([\w+=,.@-]{1,64})$/;
const REGION = /^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$/;
const PREFIX = /^[a-z0-9][a-z0-9-]*$/;


/**
 * What the machines holding etcd members may do: write snapshots under the prefix, and read and
 * list them there (etcd-restore.sh runs on those machines). Never delete: a compromised machine
 * can add versions, and versioning keeps every older one until the lifecycle rule expires it.
 * KMS use only through S3 and only for this bucket: with S3 Bucket Keys the encryption context is
 * the bucket's ARN (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucket-key.html).
 */
export function backupWritePolicy(bucketArn: string, prefix: string, kmsKeyArn: string, region: string): Policy {
  requireBucketArn("backupWritePolicy", bucketArn);
  if (!PREFIX.test(prefix)) throw new Error(`backupWritePolicy: prefix must be lowercase letters, digits and hyphens, with no slash (got ${JSON.stringify(prefix)})`);
  // IAM authorizes KMS calls against the key's ARN: an alias would grant nothing.
  const key = KMS_KEY_ARN.exec(kmsKeyArn);
  if (!key) throw new Error(`backupWritePolicy: kmsKeyArn must be a KMS key ARN, not an alias (got ${JSON.stringify(kmsKeyArn)})`);
  if (!REGION.test(region)) throw new Error(`backupWritePolicy: region must be an AWS region name such as eu-west-1 (got ${JSON.stringify(region)})`);
  if (key[1] !== region) throw new Error(`backupWritePolicy: kmsKeyArn is in ${key[1]}, not ${region}; S3 uses a key of its bucket's region`);
  return {
    Version: "2012-10-17",
    Statement: [
      { Sid: "WriteAndReadSnapshots", Effect: "Allow", Action: ["s3:PutObject", "s3:GetObject"], Resource: `${bucketArn}/${prefix}/*` },
      { Sid: "ListSnapshots", Effect: "Allow", Action: "s3:ListBucket", Resource: bucketArn, Condition: { StringLike: { "s3:prefix": `${prefix}/*` } } },
      {
        Sid: "EncryptSnapshots",
        Effect: "Allow",
        Action: ["kms:GenerateDataKey", "kms:Decrypt"],
        Resource: kmsKeyArn,
        Condition: { StringEquals: { "kms:ViaService": `s3.${region}.amazonaws.com`, "kms:EncryptionContext:aws:s3:arn": bucketArn } },
      },
    ],
  };
}


/** One rule of `aws.s3.BucketLifecycleConfiguration`, as plain values. */
export interface LifecycleRule {
  id: string;
  status: "Enabled";
  filter: { prefix: string };
  expiration?: { days: number } | { expiredObjectDeleteMarker: true };
  noncurrentVersionExpiration?: { noncurrentDays: number };
  abortIncompleteMultipartUpload?: { daysAfterInitiation: number };
}

/**
 * Retention on a versioned bucket takes two rules: S3 rejects `Days` and `ExpiredObjectDeleteMarker`
 * in one expiration. The first turns a snapshot older than `retentionDays` into a noncurrent
 * version; the second deletes noncurrent versions `retentionDays` later and then the delete
 * marker left alone (https://docs.aws.amazon.com/AmazonS3/latest/userguide/lifecycle-configuration-examples.html).
 * Both apply to the snapshots' prefix only: the encryption configuration is never expired.
 */
export function lifecycleRules(retentionDays: number): LifecycleRule[] {
  if (!Number.isInteger(retentionDays) || retentionDays < 1 || retentionDays > 3650)
    throw new Error(`lifecycleRules: retentionDays must be a whole number from 1 to 3650 (got ${retentionDays})`);
  const filter = { prefix: `${SNAPSHOT_PREFIX}/` };
  return [
    {
      id: "expire-snapshots",
      status: "Enabled",
      filter,
      expiration: { days: retentionDays },
      abortIncompleteMultipartUpload: { daysAfterInitiation: ABORT_MULTIPART_DAYS },
    },
    {
      id: "purge-expired-versions",
      status: "Enabled",
      filter,
      expiration: { expiredObjectDeleteMarker: true },
      noncurrentVersionExpiration: { noncurrentDays: retentionDays },
    },
  ];
}

/** The role name in a role ARN, which `aws.iam.RolePolicy` takes. */
export function roleNameOfArn(roleArn: string): string {
  const m = ROLE_ARN.exec(roleArn);
  if (!m) throw new Error(`EtcdBackups: roleArn must be an IAM role ARN such as arn:aws:iam::123456789012:role/name (got ${JSON.stringify(roleArn)})`);
  return m[1];
}

/** S3 appends 26 characters to a bucket prefix, and bucket names are at most 63. */
const MAX_BUCKET_PREFIX = 37;

/** `<clusterName>-etcd-backup-`: the bucket's name before the random part S3 names need. */
export function bucketPrefix(clusterName: string): string {
  const prefix = `${clusterName}-etcd-backup-`;
  if (!/^[a-z][a-z0-9-]*$/.test(clusterName)) throw new Error(`EtcdBackups: clusterName must be lowercase letters, digits and hyphens (got ${JSON.stringify(clusterName)})`);
  if (prefix.length > MAX_BUCKET_PREFIX) throw new Error(`EtcdBackups: bucket prefix ${prefix} is longer than S3's ${MAX_BUCKET_PREFIX} characters`);
  return prefix;
}

export interface EtcdBackupsArgs {
  /** Cluster name: bucket name prefix and tags. Required. */
  clusterName: string;
  /** Days S3 keeps each snapshot, and each noncurrent version after it stops being current. Required. */
  retentionDays: number;
  /**
   * The API servers' `EncryptionConfiguration` (components/encryption.ts), kept in the bucket for a
   * restore after the stack is gone. Default none (encryption at rest off).
   */
  encryptionConfigYaml?: pulumi.Input<string>;
  /** ARN of the role of the machines holding etcd members: the control plane role when stacked, the etcd role when external. Required. */
  roleArn: pulumi.Input<string>;
  /** Extra tags on the bucket. Required (may be empty). */
  tags: Record<string, string>;
  /** Region of the bucket and its key, for `kms:ViaService`. Default: the provider's region. */
  region?: pulumi.Input<string>;
}

/** The etcd snapshot bucket and the etcd-holding role's access to it. */
export class EtcdBackups extends pulumi.ComponentResource {
  /** Bucket name, `<clusterName>-etcd-backup-<random>`. */
  public readonly bucketName: pulumi.Output<string>;
  /** Bucket ARN. */
  public readonly bucketArn: pulumi.Output<string>;
  /** Key prefix of the snapshots: `etcd-snapshots`. */
  public readonly prefix: string;
  /** ARN of the bucket's own KMS key, which encrypts every snapshot and outlives the stack. */
  public readonly kmsKeyArn: pulumi.Output<string>;

  constructor(name: string, args: EtcdBackupsArgs, opts?: pulumi.ComponentResourceOptions) {
    const prefix = bucketPrefix(args.clusterName);
    const rules = lifecycleRules(args.retentionDays);
    super("kubeadm-ha:index:EtcdBackups", name, {}, opts);
    const child = { parent: this };
    const region = args.region ?? aws.getRegionOutput({}, child).region;

    // The snapshots' own key, not the bootstrap secrets' (deleted with the stack, 7 days later):
    // `pulumi destroy` leaves this one, so the snapshots it leaves stay readable. No alias: an
    // alias left behind would collide with a new stack's of the same name.
    const key = new aws.kms.Key(
      `${name}-kms-key`,
      {
        description: `${args.clusterName}: etcd snapshots in S3; kept when the stack is destroyed, with the snapshots`,
        enableKeyRotation: true,
        // Only for a deliberate deletion (aws kms schedule-key-deletion): the longest window.
        deletionWindowInDays: 30,
        // KMS's default key policy: IAM policies of this account grant its use (components/etcdBackup.ts backupWritePolicy).
        tags: clusterTags(args.clusterName, args.tags, `${args.clusterName}-etcd-backup`),
      },
      { parent: this, retainOnDelete: true },
    );
    const bucket = new aws.s3.Bucket(
      `${name}-bucket`,
      // `pulumi destroy` stops at a bucket that still holds snapshots rather than delete the only
      // copy of a cluster's state.
      { bucketPrefix: prefix, forceDestroy: false, tags: clusterTags(args.clusterName, args.tags, `${args.clusterName}-etcd-backup`) },
      child,
    );
    const versioning = new aws.s3.BucketVersioning(`${name}-versioning`, { bucket: bucket.id, versioningConfiguration: { status: "Enabled" } }, child);
    new aws.s3.BucketServerSideEncryptionConfiguration(
      `${name}-encryption`,
      {
        bucket: bucket.id,
        // A bucket key: one KMS request per bucket key period instead of one per object.
        rules: [{ applyServerSideEncryptionByDefault: { sseAlgorithm: "aws:kms", kmsMasterKeyId: key.arn }, bucketKeyEnabled: true }],
      },
      child,
    );
    privateBucketGuards(name, bucket, this);
    // Noncurrent-version rules need versioning on first.
    new aws.s3.BucketLifecycleConfiguration(`${name}-lifecycle`, { bucket: bucket.id, rules }, { parent: this, dependsOn: [versioning] });
    new aws.iam.RolePolicy(
      `${name}-node-access`,
      {
        name: "etcd-backup",
        role: pulumi.output(args.roleArn).apply(roleNameOfArn),
        policy: pulumi
          .all([bucket.arn, key.arn, region])
          .apply(([arn, keyArn, r]) => JSON.stringify(backupWritePolicy(arn, SNAPSHOT_PREFIX, keyArn, r))),
      },
      child,
    );
    if (args.encryptionConfigYaml !== undefined)
      new aws.s3.BucketObjectv2(
        `${name}-encryption-config`,
        {
          bucket: bucket.id,
          key: ENCRYPTION_CONFIG_KEY,
          content: pulumi.secret(args.encryptionConfigYaml),
          contentType: "application/yaml",
          serverSideEncryption: "aws:kms",
          kmsKeyId: key.arn,
        },
        // Kept when the stack goes, with the snapshots it decrypts; a changed key writes a new version.
        { parent: this, retainOnDelete: true, dependsOn: [versioning] },
      );

    this.bucketName = bucket.bucket;
    this.bucketArn = bucket.arn;
    this.prefix = SNAPSHOT_PREFIX;
    this.kmsKeyArn = key.arn;
    this.registerOutputs({ bucketName: this.bucketName, bucketArn: this.bucketArn, prefix: this.prefix, kmsKeyArn: this.kmsKeyArn });
  }
}
