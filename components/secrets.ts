/**
 * Where machines fetch their private material at boot. EC2 user data is readable by anyone with
 * `ec2:DescribeInstanceAttribute` and from every process on the machine through IMDS, so CA keys
 * and tokens go to Secrets Manager, one secret per node role, and only that role's instance
 * profile can read it (components/iam.ts).
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { ENCRYPTION_CONFIG_FILE } from "../cloud-init/encryption";
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

/**
 * PKI outputs a control plane node needs. Every master holds the etcd CA pair: stacked members sign
 * their own certificates with it, and with external etcd the masters renew their API servers' etcd
 * client certificate with it (cert-renew.sh), as kubeadm's own external etcd guide has them do. That
 * client certificate already gives full access to etcd, so the key adds little to what a master holds.
 */
export interface ControlPlanePkiMaterial {
  caCertPem: string;
  caKeyPem: string;
  frontProxyCaCertPem: string;
  frontProxyCaKeyPem: string;
  etcdCaCertPem: string;
  etcdCaKeyPem: string;
  /** External etcd only: `apiserver-etcd-client.crt`. */
  apiServerEtcdClientCertPem?: string;
  /** External etcd only: `apiserver-etcd-client.key`. */
  apiServerEtcdClientKeyPem?: string;
  serviceAccountPublicKeyPem: string;
  serviceAccountPrivateKeyPem: string;
  bootstrapToken: string;
  /** The API server's `EncryptionConfiguration` (components/encryption.ts), `encryption-config.yaml`. Default: none, Secrets stored unencrypted. */
  encryptionConfigYaml?: string;
}

/** The same fields, each plain or a Pulumi Input. */
export type Inputs<T> = { [K in keyof T]: pulumi.Input<T[K]> };

function requireNonEmpty<T extends object>(fn: string, p: T, fields: (keyof T & string)[]): void {
  for (const field of fields) {
    const value: unknown = p[field];
    if (typeof value !== "string" || value === "") throw new Error(`${fn}: ${field} must be a non-empty string`);
  }
}

/** Whether `v` holds an Output or Promise anywhere, nested in arrays and objects included. */
function deferred(v: unknown): boolean {
  if (pulumi.Output.isInstance(v) || v instanceof Promise) return true;
  return v !== null && typeof v === "object" && Object.values(v).some(deferred);
}

/** Plain values give the files now (and throw now); any Output or Promise, at any depth, gives an Output of them. */
function files<T extends object>(p: Inputs<T>, build: (p: T) => Record<string, string>): Record<string, string> | pulumi.Output<Record<string, string>> {
  return deferred(p) ? pulumi.output(p as Record<string, pulumi.Input<unknown>>).apply((v) => build(v as T)) : build(p as T);
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
    const external = v.apiServerEtcdClientCertPem !== undefined || v.apiServerEtcdClientKeyPem !== undefined;
    if (external) requireNonEmpty("controlPlaneMaterial", v, ["apiServerEtcdClientCertPem", "apiServerEtcdClientKeyPem"]);
    if (v.encryptionConfigYaml !== undefined) requireNonEmpty("controlPlaneMaterial", v, ["encryptionConfigYaml"]);
    return {
      "ca.crt": v.caCertPem,
      "ca.key": v.caKeyPem,
      "front-proxy-ca.crt": v.frontProxyCaCertPem,
      "front-proxy-ca.key": v.frontProxyCaKeyPem,
      "etcd/ca.crt": v.etcdCaCertPem,
      "etcd/ca.key": v.etcdCaKeyPem,
      ...(external ? { "apiserver-etcd-client.crt": v.apiServerEtcdClientCertPem!, "apiserver-etcd-client.key": v.apiServerEtcdClientKeyPem! } : {}),
      "sa.key": v.serviceAccountPrivateKeyPem,
      "sa.pub": v.serviceAccountPublicKeyPem,
      "bootstrap-token": v.bootstrapToken,
      ...(v.encryptionConfigYaml !== undefined ? { [ENCRYPTION_CONFIG_FILE]: v.encryptionConfigYaml } : {}),
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

/** One external etcd member's certificates and keys, signed by the etcd CA. */
export interface EtcdMemberPkiMaterial {
  /** The member name, which is its node name; names its entries `members/<name>/...`. */
  name: string;
  serverCertPem: string;
  serverKeyPem: string;
  peerCertPem: string;
  peerKeyPem: string;
}

/** What the external etcd members' secret holds. */
export interface EtcdPkiMaterial {
  etcdCaCertPem: string;
  /** Each member renews its own server and peer certificates with it (cert-renew.sh), as kubeadm's external etcd guide does. */
  etcdCaKeyPem: string;
  members: EtcdMemberPkiMaterial[];
}

/** A member name is a node name (an EC2 private DNS name): it becomes a directory in the secret and on disk. */
const MEMBER_NAME = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;

/**
 * The external etcd members' files: the etcd CA pair and, under `members/<name>/`, each member's
 * `server.crt|key` and `peer.crt|key`. Each member installs only its own pairs (fetch-secrets.sh) and
 * the CA, with which it renews them before they expire (cert-renew.sh): Pulumi issues them once.
 */
export function etcdMaterial(p: EtcdPkiMaterial): Record<string, string>;
export function etcdMaterial(p: Inputs<{ etcdCaCertPem: string; etcdCaKeyPem: string; members: pulumi.Input<Inputs<EtcdMemberPkiMaterial>>[] }>): pulumi.Output<Record<string, string>>;
export function etcdMaterial(
  p: Inputs<{ etcdCaCertPem: string; etcdCaKeyPem: string; members: pulumi.Input<Inputs<EtcdMemberPkiMaterial>>[] }>,
): Record<string, string> | pulumi.Output<Record<string, string>> {
  return files(p as Inputs<EtcdPkiMaterial>, (v: EtcdPkiMaterial) => {
    requireNonEmpty("etcdMaterial", v, ["etcdCaCertPem", "etcdCaKeyPem"]);
    if (!Array.isArray(v.members) || v.members.length === 0) throw new Error("etcdMaterial: members must list at least one member");
    const out: Record<string, string> = { "etcd/ca.crt": v.etcdCaCertPem, "etcd/ca.key": v.etcdCaKeyPem };
    v.members.forEach((m, i) => {
      if (typeof m.name !== "string" || !MEMBER_NAME.test(m.name))
        throw new Error(`etcdMaterial: members[${i}].name must be a node name such as ip-10-0-0-20.eu-west-1.compute.internal (got ${JSON.stringify(m.name)})`);
      if (out[`members/${m.name}/server.crt`] !== undefined) throw new Error(`etcdMaterial: members[${i}].name ${JSON.stringify(m.name)} is not unique`);
      requireNonEmpty(`etcdMaterial: members[${i}]`, m, ["serverCertPem", "serverKeyPem", "peerCertPem", "peerKeyPem"]);
      out[`members/${m.name}/server.crt`] = m.serverCertPem;
      out[`members/${m.name}/server.key`] = m.serverKeyPem;
      out[`members/${m.name}/peer.crt`] = m.peerCertPem;
      out[`members/${m.name}/peer.key`] = m.peerKeyPem;
    });
    return out;
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
        // The workers' secret holds the initial join token only until the masters rotate it
        // (token-rotate.sh writes new versions): a later `pulumi up` must not put back a token that
        // has long expired.
        role === "worker" ? { ...child, ignoreChanges: ["secretString"] } : child,
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
