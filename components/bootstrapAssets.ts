/**
 * The bootstrap bucket: the scripts a machine runs at first boot beyond the few that fetch them
 * (cloud-init/scripts/boot.sh). Every role's scripts no longer fit EC2's 16 KB of user data, so
 * user data carries a list of `<sha256> <mode> lib/<name>` lines and the machine fetches each
 * object by its hash, with its instance role, and refuses one whose content does not match. kOps
 * ships its node bootstrap the same way, from its S3 state store.
 *
 * Objects are content-addressed (`bootstrap/<sha256>`) and never deleted by an update: a machine
 * launched from an older launch template still finds the scripts its user data names.
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { BOOTSTRAP_PREFIX, sha256Hex } from "../cloud-init/render";
import { roleNameOfArn } from "./etcdBackup";
import { Policy, privateBucketGuards } from "./s3";
import { clusterTags } from "./tags";

export interface BundleObject {
  /** `bootstrap/<sha256>`. */
  key: string;
  sha256: string;
  content: string;
}

/** One object a distinct content, in hash order: identical scripts of different roles are stored once. */
export function bundleObjects(contents: string[]): BundleObject[] {
  const byHash = new Map(contents.map((c) => [sha256Hex(c), c]));
  return [...byHash.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([sha256, content]) => ({ key: `${BOOTSTRAP_PREFIX}${sha256}`, sha256, content }));
}

/** What every node role may do: read the bootstrap objects, nothing else in the bucket. */
export function bootstrapReadPolicy(bucketArn: string): Policy {
  if (!/^arn:aws[a-z-]*:s3:::[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucketArn))
    throw new Error(`bootstrapReadPolicy: bucketArn must be an S3 bucket ARN such as arn:aws:s3:::my-bucket (got ${JSON.stringify(bucketArn)})`);
  return {
    Version: "2012-10-17",
    Statement: [{ Sid: "ReadBootstrapObjects", Effect: "Allow", Action: "s3:GetObject", Resource: `${bucketArn}/${BOOTSTRAP_PREFIX}*` }],
  };
}

export interface BootstrapAssetsArgs {
  /** Cluster name: bucket name prefix and tags. Required. */
  clusterName: string;
  /** The file contents to store (`bundledScriptContents()` in cloud-init/render.ts). Required. */
  contents: string[];
  /** ARNs of the roles whose machines fetch the objects: every node role. Required. */
  readerRoleArns: pulumi.Input<string>[];
  /** Extra tags on the bucket. Required (may be empty). */
  tags: Record<string, string>;
}

/** The bootstrap bucket, its objects and every node role's read access. */
export class BootstrapAssets extends pulumi.ComponentResource {
  /** Bucket name, `<clusterName>-bootstrap-<random>`. */
  public readonly bucketName: pulumi.Output<string>;
  /** Bucket ARN. */
  public readonly bucketArn: pulumi.Output<string>;
  /** The stored objects, by key. */
  public readonly objects: aws.s3.BucketObjectv2[];

  constructor(name: string, args: BootstrapAssetsArgs, opts?: pulumi.ComponentResourceOptions) {
    const objects = bundleObjects(args.contents);
    if (objects.length === 0) throw new Error("BootstrapAssets: contents must not be empty");
    super("kubeadm-ha:index:BootstrapAssets", name, {}, opts);
    const child = { parent: this };

    // Nothing here is state: the objects are rendered from the repository, so destroy may empty it.
    const bucket = new aws.s3.Bucket(
      `${name}-bucket`,
      { bucketPrefix: `${args.clusterName}-bootstrap-`, forceDestroy: true, tags: clusterTags(args.clusterName, args.tags, `${args.clusterName}-bootstrap`) },
      child,
    );
    privateBucketGuards(name, bucket, this);
    // The scripts are the public repository's; S3's own keys suffice, and no KMS grant is needed to read them.
    new aws.s3.BucketServerSideEncryptionConfiguration(
      `${name}-encryption`,
      { bucket: bucket.id, rules: [{ applyServerSideEncryptionByDefault: { sseAlgorithm: "AES256" } }] },
      child,
    );
    this.objects = objects.map(
      (o) =>
        new aws.s3.BucketObjectv2(
          `${name}-${o.sha256.slice(0, 12)}`,
          { bucket: bucket.id, key: o.key, content: o.content, contentType: "text/x-shellscript" },
          // A machine launched from an older launch template still fetches the old objects.
          { parent: this, retainOnDelete: true },
        ),
    );
    args.readerRoleArns.forEach(
      (roleArn, i) =>
        new aws.iam.RolePolicy(
          `${name}-read-${i}`,
          { name: "bootstrap-read", role: pulumi.output(roleArn).apply(roleNameOfArn), policy: bucket.arn.apply((arn) => JSON.stringify(bootstrapReadPolicy(arn))) },
          child,
        ),
    );

    this.bucketName = bucket.bucket;
    this.bucketArn = bucket.arn;
    this.registerOutputs({ bucketName: this.bucketName, bucketArn: this.bucketArn });
  }
}
