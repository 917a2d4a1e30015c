import * as fs from "fs";
import * as path from "path";
import { Registration, ofType, settle, setupMocks, valueOf } from "./mocks";
import type * as AssetsModule from "../components/bootstrapAssets";
import * as render from "../cloud-init/render";

let regs: Registration[];
let ba: typeof AssetsModule;
beforeAll(async () => {
  regs = await setupMocks();
  ba = await import("../components/bootstrapAssets");
});

describe("bundleObjects", () => {
  it("stores each distinct content once, keyed by its SHA-256, in hash order", () => {
    const objs = ba.bundleObjects(["b", "a", "b"]);
    expect(objs.map((o) => o.key)).toEqual(
      ["ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb", "3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d"]
        .sort()
        .map((h) => `bootstrap/${h}`),
    );
    expect(objs.map((o) => o.content).sort()).toEqual(["a", "b"]);
  });

  it("holds every script user data does not carry, as shipped, and none of those it does", () => {
    const all = fs.readdirSync(render.SCRIPTS_DIR).filter((f) => f.endsWith(".sh"));
    const contents = render.bundledScriptContents();
    expect(contents).toHaveLength(all.length - render.INLINE_SCRIPTS.length);
    for (const f of all) {
      const shipped = render.shippedScript(fs.readFileSync(path.join(render.SCRIPTS_DIR, f), "utf8"));
      expect([f, contents.includes(shipped)]).toEqual([f, !render.INLINE_SCRIPTS.includes(f)]);
    }
  });
});

describe("bootstrapReadPolicy", () => {
  it("grants GetObject under bootstrap/ only", () => {
    expect(ba.bootstrapReadPolicy("arn:aws:s3:::dev-bootstrap-1")).toEqual({
      Version: "2012-10-17",
      Statement: [{ Sid: "ReadBootstrapObjects", Effect: "Allow", Action: "s3:GetObject", Resource: "arn:aws:s3:::dev-bootstrap-1/bootstrap/*" }],
    });
  });
  it("refuses what is not a bucket ARN", () => {
    expect(() => ba.bootstrapReadPolicy("dev-bootstrap-1")).toThrow(
      'bootstrapReadPolicy: bucketArn must be an S3 bucket ARN such as arn:aws:s3:::my-bucket (got "dev-bootstrap-1")',
    );
  });
});

describe("BootstrapAssets", () => {
  let mine: Registration[];
  let assets: AssetsModule.BootstrapAssets;
  beforeAll(async () => {
    const before = regs.length;
    assets = new ba.BootstrapAssets("t-bootstrap", {
      clusterName: "t",
      contents: ["#!/bin/sh\necho a\n", "#!/bin/sh\necho b\n", "#!/bin/sh\necho a\n"],
      readerRoleArns: ["arn:aws:iam::123456789012:role/t-control-plane", "arn:aws:iam::123456789012:role/t-worker"],
      tags: { team: "x" },
    });
    await settle();
    mine = regs.slice(before);
  });

  it("registers the bucket, its guards, one object a distinct content and one read policy a role", () => {
    expect(mine.map((r) => `${r.type} ${r.name}`).sort()).toEqual(
      [
        "kubeadm-ha:index:BootstrapAssets t-bootstrap",
        "aws:s3/bucket:Bucket t-bootstrap-bucket",
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock t-bootstrap-public-access-block",
        "aws:s3/bucketOwnershipControls:BucketOwnershipControls t-bootstrap-ownership",
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration t-bootstrap-encryption",
        "aws:s3/bucketPolicy:BucketPolicy t-bootstrap-policy",
        ...ba.bundleObjects(["#!/bin/sh\necho a\n", "#!/bin/sh\necho b\n"]).map((o) => `aws:s3/bucketObjectv2:BucketObjectv2 t-bootstrap-${o.sha256.slice(0, 12)}`),
        "aws:iam/rolePolicy:RolePolicy t-bootstrap-read-0",
        "aws:iam/rolePolicy:RolePolicy t-bootstrap-read-1",
      ].sort(),
    );
  });

  it("bucket: private, TLS only, emptied by destroy (nothing in it is state)", async () => {
    const bucket = ofType(mine, "aws:s3/bucket:Bucket")[0];
    expect(bucket.inputs.bucketPrefix).toBe("t-bootstrap-");
    expect(bucket.inputs.forceDestroy).toBe(true);
    expect(ofType(mine, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")[0].inputs).toMatchObject({
      blockPublicAcls: true, blockPublicPolicy: true, ignorePublicAcls: true, restrictPublicBuckets: true,
    });
    const policy = JSON.parse(ofType(mine, "aws:s3/bucketPolicy:BucketPolicy")[0].inputs.policy);
    expect(policy.Statement[0]).toMatchObject({ Effect: "Deny", Condition: { Bool: { "aws:SecureTransport": "false" } } });
  });

  it("objects: content-addressed keys with the content as given, kept when an update drops them", () => {
    const objs = ofType(mine, "aws:s3/bucketObjectv2:BucketObjectv2");
    // A machine launched from an older launch template still fetches what its user data pins.
    expect(objs.map((o) => o.options.retainOnDelete)).toEqual([true, true]);
    expect(ofType(mine, "aws:s3/bucket:Bucket")[0].options.retainOnDelete).toBe(false);
    expect(objs.map((o) => [o.inputs.key, o.inputs.content]).sort()).toEqual(
      ba.bundleObjects(["#!/bin/sh\necho a\n", "#!/bin/sh\necho b\n"]).map((o) => [o.key, o.content]).sort(),
    );
  });

  it("each role reads bootstrap/ and nothing more", () => {
    const pols = ofType(mine, "aws:iam/rolePolicy:RolePolicy");
    expect(pols.map((p) => p.inputs.role)).toEqual(["t-control-plane", "t-worker"]);
    for (const p of pols) expect(JSON.parse(p.inputs.policy)).toEqual(ba.bootstrapReadPolicy("arn:aws:s3:::t-bootstrap-bucket"));
  });

  it("outputs the bucket name", async () => {
    expect(await valueOf(assets.bucketName)).toBe("t-bootstrap-bucket");
  });

  it("refuses an empty bundle before registering anything", () => {
    const before = regs.length;
    expect(() => new ba.BootstrapAssets("e", { clusterName: "e", contents: [], readerRoleArns: [], tags: {} })).toThrow("BootstrapAssets: contents must not be empty");
    expect(regs.length).toBe(before);
  });
});
