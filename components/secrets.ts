/**
 * Where machines fetch their private material at boot. EC2 user data is readable by anyone with
 * `ec2:DescribeInstanceAttribute` and from every process on the machine through IMDS, so CA keys
 * and tokens go to Secrets Manager, one secret per node role, and only that role's instance
 * profile can read it (components/iam.ts).
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { clusterTags } from "./tags";

/** The node roles that receive private material. */
export type NodeRole = "controlPlane" | "worker" | "etcd";

/** How a node role is spelled in AWS names (`<cluster>/bootstrap/control-plane`, `<cluster>-control-plane`). */
export const ROLE_SLUGS: Readonly<Record<NodeRole, string>> = { controlPlane: "control-plane", worker: "worker", etcd: "etcd" };

/** Secrets Manager's limit on a SecretString (65,536 bytes). */
export const SECRET_STRING_MAX_BYTES = 65536;

/** The Secrets Manager name of a role's bootstrap secret. */
export function secretName(clusterName: string, role: NodeRole): string {
  return `${clusterName}/bootstrap/${ROLE_SLUGS[role]}`;
}

/** PKI outputs a control plane node needs. */
export interface ControlPlanePkiMaterial {
  caCertPem: string;
  caKeyPem: string;
  frontProxyCaCertPem: string;
  frontProxyCaKeyPem: string;
  etcdCaCertPem: string;
  etcdCaKeyPem: string;
  serviceAccountPublicKeyPem: string;
  serviceAccountPrivateKeyPem: string;
  bootstrapToken: string;
}

/** The same fields, each plain or a Pulumi Input. */
export type Inputs<T> = { [K in keyof T]: pulumi.Input<T[K]> };

function requireNonEmpty<T extends object>(fn: string, p: T, fields: (keyof T & string)[]): void {
  for (const field of fields) {
    const value: unknown = p[field];
    if (typeof value !== "string" || value === "") throw new Error(`${fn}: ${field} must be a non-empty string`);
  }
}

/** Plain values give the files now (and throw now); any Output or Promise gives an Output of them. */
function files<T extends object>(p: Inputs<T>, build: (p: T) => Record<string, string>): Record<string, string> | pulumi.Output<Record<string, string>> {
  const deferred = Object.values(p).some((v) => pulumi.Output.isInstance(v) || v instanceof Promise);
  return deferred ? pulumi.all(p as Record<string, pulumi.Input<unknown>>).apply((v) => build(v as T)) : build(p as T);
}

const CONTROL_PLANE_FIELDS: (keyof ControlPlanePkiMaterial)[] = [
  "caCertPem",
  "caKeyPem",
  "frontProxyCaCertPem",
  "frontProxyCaKeyPem",
  "etcdCaCertPem",
  "etcdCaKeyPem",
  "serviceAccountPublicKeyPem",
  "serviceAccountPrivateKeyPem",
  "bootstrapToken",
];

/**
 * A control plane node's files, named as under /etc/kubernetes/pki (plus `bootstrap-token`):
 * with these in place, `kubeadm init` and `join --control-plane` reuse the CAs instead of
 * generating new ones, and every member signs its own leaf certificates.
 */
export function controlPlaneMaterial(p: ControlPlanePkiMaterial): Record<string, string>;
export function controlPlaneMaterial(p: Inputs<ControlPlanePkiMaterial>): pulumi.Output<Record<string, string>>;
export function controlPlaneMaterial(p: Inputs<ControlPlanePkiMaterial>): Record<string, string> | pulumi.Output<Record<string, string>> {
  return files(p, (v: ControlPlanePkiMaterial) => {
    requireNonEmpty("controlPlaneMaterial", v, CONTROL_PLANE_FIELDS);
    return {
      "ca.crt": v.caCertPem,
      "ca.key": v.caKeyPem,
      "front-proxy-ca.crt": v.frontProxyCaCertPem,
      "front-proxy-ca.key": v.frontProxyCaKeyPem,
      "etcd/ca.crt": v.etcdCaCertPem,
      "etcd/ca.key": v.etcdCaKeyPem,
      "sa.key": v.serviceAccountPrivateKeyPem,
      "sa.pub": v.serviceAccountPublicKeyPem,
      "bootstrap-token": v.bootstrapToken,
    };
  });
}

/** A worker's only private material: the bootstrap token. The CA cert hash is public and goes in user data. */
export function workerMaterial(p: { bootstrapToken: string }): Record<string, string>;
export function workerMaterial(p: Inputs<{ bootstrapToken: string }>): pulumi.Output<Record<string, string>>;
export function workerMaterial(p: Inputs<{ bootstrapToken: string }>): Record<string, string> | pulumi.Output<Record<string, string>> {
  return files(p, (v: { bootstrapToken: string }) => {
    requireNonEmpty("workerMaterial", v, ["bootstrapToken"]);
    return { "bootstrap-token": v.bootstrapToken };
  });
}

/** An external etcd member's files: the etcd CA, from which it signs its own server and peer certificates. */
export function etcdMaterial(p: { etcdCaCertPem: string; etcdCaKeyPem: string }): Record<string, string>;
export function etcdMaterial(p: Inputs<{ etcdCaCertPem: string; etcdCaKeyPem: string }>): pulumi.Output<Record<string, string>>;
export function etcdMaterial(p: Inputs<{ etcdCaCertPem: string; etcdCaKeyPem: string }>): Record<string, string> | pulumi.Output<Record<string, string>> {
  return files(p, (v: { etcdCaCertPem: string; etcdCaKeyPem: string }) => {
    requireNonEmpty("etcdMaterial", v, ["etcdCaCertPem", "etcdCaKeyPem"]);
    return { "etcd/ca.crt": v.etcdCaCertPem, "etcd/ca.key": v.etcdCaKeyPem };
  });
}

/**
 * The SecretString of a role's secret: the material as JSON with sorted keys, so the same material
 * always gives the same string and `pulumi up` writes no new secret version for nothing.
 * @throws when the material is empty or the JSON exceeds Secrets Manager's 65,536 bytes.
 */
export function secretPayload(role: NodeRole, material: Record<string, string>): string {
  const keys = Object.keys(material).sort();
  if (keys.length === 0) throw new Error(`BootstrapSecrets: material.${role} must name at least one file`);
  for (const k of keys)
    if (typeof material[k] !== "string") throw new Error(`BootstrapSecrets: material.${role}[${JSON.stringify(k)}] must be a string`);
  const json = JSON.stringify(Object.fromEntries(keys.map((k) => [k, material[k]])));
  const problem = secretSizeProblem(role, json);
  if (problem) throw new Error(problem);
  return json;
}

/** A role's SecretString as a secret Output, whether or not `material` was secret already. */
export function secretStringOf(role: NodeRole, material: pulumi.Input<Record<string, string>>): pulumi.Output<string> {
  return pulumi.secret(pulumi.output(material).apply((m) => secretPayload(role, m)));
}

/** Why a SecretString is too large for Secrets Manager, or undefined when it fits. */
export function secretSizeProblem(role: NodeRole, secretString: string): string | undefined {
  const bytes = Buffer.byteLength(secretString, "utf8");
  return bytes > SECRET_STRING_MAX_BYTES
    ? `BootstrapSecrets: the ${role} secret is ${bytes} bytes; Secrets Manager stores at most ${SECRET_STRING_MAX_BYTES}`
    : undefined;
}

export interface BootstrapSecretsArgs {
  /** Cluster name: secret names, alias and tags. Required. */
  clusterName: string;
  /** `external` adds the etcd role's secret. Required. */
  etcdTopology: "stacked" | "external";
  /** File name -> contents per node role (see `controlPlaneMaterial`, `workerMaterial`, `etcdMaterial`); `etcd` only with external etcd. Required. */
  material: {
    controlPlane: pulumi.Input<Record<string, string>>;
    worker: pulumi.Input<Record<string, string>>;
    etcd?: pulumi.Input<Record<string, string>>;
  };
  /** Extra tags on every AWS resource. Required (may be empty). */
  tags: Record<string, string>;
}

type PerRole<T> = { controlPlane: T; worker: T; etcd?: T };

function validate(args: BootstrapSecretsArgs): void {
  if (!args.clusterName) throw new Error("BootstrapSecrets: clusterName must not be empty");
  if (args.etcdTopology !== "stacked" && args.etcdTopology !== "external")
    throw new Error(`BootstrapSecrets: etcdTopology must be stacked or external (got ${JSON.stringify(args.etcdTopology)})`);
  if (args.etcdTopology === "external" && args.material.etcd === undefined)
    throw new Error("BootstrapSecrets: material.etcd is required when etcdTopology is external");
  if (args.etcdTopology === "stacked" && args.material.etcd !== undefined)
    throw new Error("BootstrapSecrets: material.etcd must not be set when etcdTopology is stacked (stacked members use the control plane's material)");
}

/** A KMS key and one Secrets Manager secret per node role holding that role's boot material. */
export class BootstrapSecrets extends pulumi.ComponentResource {
  /** ARN of the KMS key encrypting every bootstrap secret. */
  public readonly kmsKeyArn: pulumi.Output<string>;
  /** ARN of each role's secret; `etcd` only with external etcd. */
  public readonly secretArns: PerRole<pulumi.Output<string>>;
  /** Name of each role's secret, `<cluster>/bootstrap/<role>`; `etcd` only with external etcd. */
  public readonly secretNames: PerRole<string>;
  /** Each role's secret version: put it in `dependsOn` of that role's machines, so none boots before its material is stored. */
  public readonly secretVersions: PerRole<aws.secretsmanager.SecretVersion>;

  constructor(name: string, args: BootstrapSecretsArgs, opts?: pulumi.ComponentResourceOptions) {
    validate(args);
    super("kubeadm-ha:index:BootstrapSecrets", name, {}, opts);
    const child = { parent: this };
    const { clusterName } = args;

    const key = new aws.kms.Key(
      `${name}-kms-key`,
      {
        description: `${clusterName}: kubeadm bootstrap material in Secrets Manager`,
        enableKeyRotation: true,
        // 7 days is KMS's minimum. The key protects only copies of material that lives in Pulumi
        // state, so a long pending-deletion window would only delay `pulumi destroy` + `up`.
        deletionWindowInDays: 7,
        // No key policy: KMS's default one lets IAM policies in this account grant use of the
        // key, so the node roles' policies (components/iam.ts) alone decide who can decrypt.
        tags: clusterTags(clusterName, args.tags, `${clusterName}-bootstrap`),
      },
      child,
    );
    new aws.kms.Alias(`${name}-kms-alias`, { name: `alias/${clusterName}-bootstrap`, targetKeyId: key.keyId }, child);

    const roles: NodeRole[] = args.etcdTopology === "external" ? ["controlPlane", "worker", "etcd"] : ["controlPlane", "worker"];
    const arns: Partial<Record<NodeRole, pulumi.Output<string>>> = {};
    const names: Partial<Record<NodeRole, string>> = {};
    const versions: Partial<Record<NodeRole, aws.secretsmanager.SecretVersion>> = {};
    for (const role of roles) {
      const slug = ROLE_SLUGS[role];
      const sname = secretName(clusterName, role);
      const secret = new aws.secretsmanager.Secret(
        `${name}-${slug}`,
        {
          name: sname,
          description: `${clusterName}: private boot material of ${slug} nodes`,
          kmsKeyId: key.arn,
          // Delete immediately: a deleted secret's name stays reserved for its whole recovery
          // window, so `pulumi destroy` then `up` of the same cluster would fail on the name. The
          // contents are a copy of Pulumi state, so there is nothing to recover.
          recoveryWindowInDays: 0,
          tags: clusterTags(clusterName, args.tags, sname),
        },
        child,
      );
      versions[role] = new aws.secretsmanager.SecretVersion(
        `${name}-${slug}-version`,
        { secretId: secret.id, secretString: secretStringOf(role, args.material[role]!) },
        child,
      );
      arns[role] = secret.arn;
      names[role] = sname;
    }

    this.kmsKeyArn = key.arn;
    this.secretArns = arns as PerRole<pulumi.Output<string>>;
    this.secretNames = names as PerRole<string>;
    this.secretVersions = versions as PerRole<aws.secretsmanager.SecretVersion>;
    this.registerOutputs({ kmsKeyArn: this.kmsKeyArn, secretArns: this.secretArns, secretNames: this.secretNames });
  }
}
