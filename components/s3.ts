/**
 * What every bucket of the stack shares: no public access whatever its policy or ACLs say, objects
 * owned by the bucket's account (ACLs off), and no request without TLS.
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

type Conditions = Record<string, Record<string, string | string[]>>;

/** A statement of an identity policy (Allow) or of a bucket policy (Deny for everyone). */
export interface Statement {
  Sid: string;
  Effect: "Allow" | "Deny";
  Principal?: "*";
  Action: string | string[];
  Resource: string | string[];
  Condition?: Conditions;
}

export interface Policy {
  Version: "2012-10-17";
  Statement: Statement[];
}

const BUCKET_ARN = /^arn:aws[a-z-]*:s3:::([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])$/;

export function requireBucketArn(fn: string, bucketArn: string): void {
  if (!BUCKET_ARN.test(bucketArn)) throw new Error(`${fn}: bucketArn must be an S3 bucket ARN such as arn:aws:s3:::my-bucket (got ${JSON.stringify(bucketArn)})`);
}

/** The bucket policy: every request without TLS is refused, whoever makes it. */
export function tlsOnlyBucketPolicy(bucketArn: string): Policy {
  requireBucketArn("tlsOnlyBucketPolicy", bucketArn);
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "DenyInsecureTransport",
        Effect: "Deny",
        Principal: "*",
        Action: "s3:*",
        Resource: [bucketArn, `${bucketArn}/*`],
        Condition: { Bool: { "aws:SecureTransport": "false" } },
      },
    ],
  };
}

/** Public access block, ownership controls and the TLS-only policy, named `${name}-public-access-block`, `-ownership` and `-policy`. */
export function privateBucketGuards(name: string, bucket: aws.s3.Bucket, parent: pulumi.Resource): { publicAccess: aws.s3.BucketPublicAccessBlock } {
  const publicAccess = new aws.s3.BucketPublicAccessBlock(
    `${name}-public-access-block`,
    { bucket: bucket.id, blockPublicAcls: true, blockPublicPolicy: true, ignorePublicAcls: true, restrictPublicBuckets: true },
    { parent },
  );
  new aws.s3.BucketOwnershipControls(`${name}-ownership`, { bucket: bucket.id, rule: { objectOwnership: "BucketOwnerEnforced" } }, { parent });
  // S3 answers AccessDenied to a bucket policy put while the public access block is being applied.
  new aws.s3.BucketPolicy(
    `${name}-policy`,
    { bucket: bucket.id, policy: bucket.arn.apply((arn) => JSON.stringify(tlsOnlyBucketPolicy(arn))) },
    { parent, dependsOn: [publicAccess] },
  );
  return { publicAccess };
}
