/**
 * The cluster's PKI, generated once by Pulumi instead of by `kubeadm init`: the three kubeadm CAs,
 * the service-account key pair, an admin client certificate and the bootstrap token.
 *
 * Pre-generating them (the Cluster API and Typhoon pattern) lets every node compute the discovery
 * hash before the first control plane exists, and avoids `kubeadm init --upload-certs`, whose
 * `kubeadm-certs` Secret expires after two hours.
 */
import * as crypto from "crypto";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import * as tls from "@pulumi/tls";
import * as YAML from "yaml";

/** kubeadm's bootstrap token format (k8s.io/cluster-bootstrap `BootstrapTokenPattern`): a public id and a secret. */
export const BOOTSTRAP_TOKEN_PATTERN = /^([a-z0-9]{6})\.([a-z0-9]{16})$/;

/** kubeadm's CA lifetime (`certs.CertificateValidityPeriod` for CAs): ten years. */
export const CA_VALIDITY_HOURS = 87600;
/** Lifetime of a leaf certificate, as kubeadm's one-year default. */
export const LEAF_VALIDITY_HOURS = 8760;
/**
 * A leaf certificate is replaced by any `pulumi up` in its last 90 days: a stack that is updated
 * at least once a quarter never serves an expired admin certificate.
 */
export const LEAF_EARLY_RENEWAL_HOURS = 2160;

/** The admin certificate's subject. kubeadm >= 1.29 binds `kubeadm:cluster-admins` to cluster-admin, and a group binding can be deleted, unlike `system:masters`. */
export const ADMIN_SUBJECT = { commonName: "kubeadm-ha-admin", organization: "kubeadm:cluster-admins" } as const;

// kubeadm's default `encryptionAlgorithm` is RSA-2048; kubelets and etcd accept nothing exotic.
const KEY_ARGS = { algorithm: "RSA", rsaBits: 2048 } as const;
const CA_USES = ["cert_signing", "key_encipherment", "digital_signature"];

/**
 * Joins a bootstrap token id and secret into kubeadm's `<id>.<secret>` form.
 * @throws when either part does not match kubeadm's pattern; the message never contains the secret.
 */
export function bootstrapToken(id: string, secret: string): string {
  if (!/^[a-z0-9]{6}$/.test(id)) throw new Error(`bootstrap token id must be 6 characters from [a-z0-9] (got ${id.length} characters)`);
  if (!/^[a-z0-9]{16}$/.test(secret)) throw new Error(`bootstrap token secret must be 16 characters from [a-z0-9] (got ${secret.length} characters)`);
  return `${id}.${secret}`;
}

/**
 * kubeadm's `--discovery-token-ca-cert-hash`: `sha256:` and the hex SHA-256 of the CA certificate's
 * DER-encoded SubjectPublicKeyInfo (k8s.io/cluster-bootstrap `pubkeypin.Hash`).
 */
export function caCertHash(caCertPem: string): string {
  let cert: crypto.X509Certificate;
  try {
    cert = new crypto.X509Certificate(caCertPem);
  } catch {
    throw new Error("caCertHash: caCertPem is not a PEM-encoded X.509 certificate");
  }
  const spki = cert.publicKey.export({ type: "spki", format: "der" });
  return `sha256:${crypto.createHash("sha256").update(spki).digest("hex")}`;
}

export interface KubeconfigArgs {
  /** Cluster name; names the kubeconfig cluster and context. Required. */
  clusterName: string;
  /** API server URL, `https://<host>[:port]`. Required. */
  server: string;
  /** PEM of the cluster CA. Required. */
  caCertPem: string;
  /** PEM of the client certificate. Required. */
  clientCertPem: string;
  /** PEM of the client private key. Required. */
  clientKeyPem: string;
  /** kubeconfig user name. Default `<clusterName>-admin`, so merged kubeconfigs of several clusters do not collide. */
  user?: string;
}

const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64");

/** A kubeconfig with embedded credentials, serialized as YAML 1.1 (what client-go's sigs.k8s.io/yaml reads). */
export function kubeconfig(args: KubeconfigArgs): string {
  let url: URL | undefined;
  try {
    url = new URL(args.server);
  } catch {
    url = undefined;
  }
  if (!url || url.protocol !== "https:" || !url.hostname)
    throw new Error(`kubeconfig: server must be an https:// URL such as https://api.example.com:6443 (got ${JSON.stringify(args.server)})`);
  for (const [field, pem, label] of [
    ["caCertPem", args.caCertPem, "CERTIFICATE"],
    ["clientCertPem", args.clientCertPem, "CERTIFICATE"],
    ["clientKeyPem", args.clientKeyPem, "PRIVATE KEY"],
  ] as const)
    if (!new RegExp(`-----BEGIN [A-Z ]*${label}-----`).test(pem)) throw new Error(`kubeconfig: ${field} must be PEM containing a ${label} block`);
  const user = args.user ?? `${args.clusterName}-admin`;
  const context = `${user}@${args.clusterName}`;
  const doc = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: args.clusterName, cluster: { server: args.server, "certificate-authority-data": b64(args.caCertPem) } }],
    users: [{ name: user, user: { "client-certificate-data": b64(args.clientCertPem), "client-key-data": b64(args.clientKeyPem) } }],
    contexts: [{ name: context, context: { cluster: args.clusterName, user } }],
    "current-context": context,
    preferences: {},
  };
  // lineWidth 0: base64 blobs stay on one line, as kubectl writes them.
  return YAML.stringify(doc, { version: "1.1", lineWidth: 0 });
}

/** A certificate authority: its key and self-signed certificate. */
export interface CertificateAuthority {
  /** The CA's RSA key resource. */
  privateKey: tls.PrivateKey;
  /** The CA's self-signed certificate resource. */
  cert: tls.SelfSignedCert;
  /** PEM of the CA certificate. */
  certPem: pulumi.Output<string>;
  /** PEM of the CA private key (secret). */
  keyPem: pulumi.Output<string>;
}

/** What to put in a leaf certificate signed by a `CertificateAuthority`. */
export interface LeafCertificateArgs {
  /** Subject common name. Required. */
  commonName: string;
  /** Subject organization (a Kubernetes group for client certificates). Default none. */
  organization?: string;
  /** DNS subject alternative names. Default none. */
  dnsNames?: pulumi.Input<pulumi.Input<string>[]>;
  /** IP subject alternative names. Default none. */
  ipAddresses?: pulumi.Input<pulumi.Input<string>[]>;
  /** Key usages, tls provider names (`client_auth`, `server_auth`, `digital_signature`...). Required. */
  allowedUses: string[];
  /** Lifetime in hours. Default 8760 (kubeadm's one year). */
  validityPeriodHours?: number;
  /** `pulumi up` replaces the certificate this many hours before it expires. Default 2160. */
  earlyRenewalHours?: number;
}

/** A leaf certificate and its key. */
export interface LeafCertificate {
  /** The RSA key resource. */
  privateKey: tls.PrivateKey;
  /** The signed certificate resource. */
  cert: tls.LocallySignedCert;
  /** PEM of the certificate. */
  certPem: pulumi.Output<string>;
  /** PEM of the private key (secret). */
  keyPem: pulumi.Output<string>;
}

/** A self-signed CA with kubeadm's key algorithm, usages and lifetime; children `<name>-key` and `<name>-cert`. */
export function createCertificateAuthority(name: string, commonName: string, opts: pulumi.CustomResourceOptions): CertificateAuthority {
  const privateKey = new tls.PrivateKey(`${name}-key`, KEY_ARGS, opts);
  const keyPem = pulumi.secret(privateKey.privateKeyPem);
  const cert = new tls.SelfSignedCert(
    `${name}-cert`,
    {
      privateKeyPem: keyPem,
      subject: { commonName },
      isCaCertificate: true,
      // Go sets a subject key id on every CA kubeadm creates; with it, certificates this CA signs
      // carry a matching authority key id, which lets verifiers pick the right CA during a rotation.
      setSubjectKeyId: true,
      allowedUses: CA_USES,
      validityPeriodHours: CA_VALIDITY_HOURS,
    },
    opts,
  );
  return { privateKey, cert, certPem: cert.certPem, keyPem };
}

/**
 * A key, CSR and certificate signed by `ca`: children `<name>-key`, `<name>-csr` and `<name>-cert`.
 * Exported so the external etcd component can sign etcd server and peer certificates with `Pki.etcdCa`.
 */
export function issueCertificate(name: string, ca: CertificateAuthority, args: LeafCertificateArgs, opts: pulumi.CustomResourceOptions): LeafCertificate {
  const validityPeriodHours = args.validityPeriodHours ?? LEAF_VALIDITY_HOURS;
  const earlyRenewalHours = args.earlyRenewalHours ?? LEAF_EARLY_RENEWAL_HOURS;
  if (!(earlyRenewalHours < validityPeriodHours))
    throw new Error(`${name}: earlyRenewalHours (${earlyRenewalHours}) must be less than validityPeriodHours (${validityPeriodHours}), or every pulumi up replaces the certificate`);
  if (args.allowedUses.length === 0) throw new Error(`${name}: allowedUses must not be empty`);
  const privateKey = new tls.PrivateKey(`${name}-key`, KEY_ARGS, opts);
  const keyPem = pulumi.secret(privateKey.privateKeyPem);
  const csr = new tls.CertRequest(
    `${name}-csr`,
    {
      privateKeyPem: keyPem,
      subject: { commonName: args.commonName, ...(args.organization ? { organization: args.organization } : {}) },
      ...(args.dnsNames ? { dnsNames: args.dnsNames } : {}),
      ...(args.ipAddresses ? { ipAddresses: args.ipAddresses } : {}),
    },
    opts,
  );
  const cert = new tls.LocallySignedCert(
    `${name}-cert`,
    {
      certRequestPem: csr.certRequestPem,
      caCertPem: ca.certPem,
      caPrivateKeyPem: ca.keyPem,
      allowedUses: args.allowedUses,
      validityPeriodHours,
      earlyRenewalHours,
    },
    opts,
  );
  return { privateKey, cert, certPem: cert.certPem, keyPem };
}

export interface PkiArgs {
  /** Cluster name; the kubeconfig cluster name. Required. */
  clusterName: string;
}

/** kubeadm's CAs, service-account keys, an admin client certificate and a bootstrap token. */
export class Pki extends pulumi.ComponentResource {
  /** Cluster CA (`ca.crt`, CN kubernetes). */
  public readonly caCertPem: pulumi.Output<string>;
  /** Cluster CA key (`ca.key`); secret. */
  public readonly caKeyPem: pulumi.Output<string>;
  /** Front-proxy CA (`front-proxy-ca.crt`, CN front-proxy-ca). */
  public readonly frontProxyCaCertPem: pulumi.Output<string>;
  /** Front-proxy CA key (`front-proxy-ca.key`); secret. */
  public readonly frontProxyCaKeyPem: pulumi.Output<string>;
  /** etcd CA (`etcd/ca.crt`, CN etcd-ca). */
  public readonly etcdCaCertPem: pulumi.Output<string>;
  /** etcd CA key (`etcd/ca.key`); secret. */
  public readonly etcdCaKeyPem: pulumi.Output<string>;
  /** Service-account token verification key (`sa.pub`). */
  public readonly serviceAccountPublicKeyPem: pulumi.Output<string>;
  /** Service-account token signing key (`sa.key`); secret. */
  public readonly serviceAccountPrivateKeyPem: pulumi.Output<string>;
  /** Admin client certificate (CN kubeadm-ha-admin, O kubeadm:cluster-admins), one year, renewed by `pulumi up` in its last 90 days. */
  public readonly adminCertPem: pulumi.Output<string>;
  /** Admin client key; secret. */
  public readonly adminKeyPem: pulumi.Output<string>;
  /** Bootstrap token `<id>.<secret>`; secret. */
  public readonly bootstrapToken: pulumi.Output<string>;
  /** `--discovery-token-ca-cert-hash` of the cluster CA, `sha256:<hex>`; public. */
  public readonly caCertHash: pulumi.Output<string>;
  /** When each certificate Pulumi signs here expires (RFC 3339), by what it is. */
  public readonly certificateExpiry: pulumi.Output<Record<string, string>>;
  /** The etcd CA's resources, for signing external etcd server, peer and client certificates with `issueCertificate`. */
  public readonly etcdCa: CertificateAuthority;
  /** The cluster CA's resources. */
  public readonly clusterCa: CertificateAuthority;

  private readonly clusterName: string;

  constructor(name: string, args: PkiArgs, opts?: pulumi.ComponentResourceOptions) {
    if (!args.clusterName) throw new Error("Pki: clusterName must not be empty");
    super("kubeadm-ha:index:Pki", name, {}, opts);
    this.clusterName = args.clusterName;
    const child = { parent: this };

    this.clusterCa = createCertificateAuthority(`${name}-ca`, "kubernetes", child);
    const frontProxyCa = createCertificateAuthority(`${name}-front-proxy-ca`, "front-proxy-ca", child);
    this.etcdCa = createCertificateAuthority(`${name}-etcd-ca`, "etcd-ca", child);

    const saKey = new tls.PrivateKey(`${name}-sa-key`, KEY_ARGS, child);

    const admin = issueCertificate(
      `${name}-admin`,
      this.clusterCa,
      { ...ADMIN_SUBJECT, allowedUses: ["client_auth", "digital_signature", "key_encipherment"] },
      child,
    );

    // Only [a-z0-9]: kubeadm rejects any other character in a bootstrap token.
    const tokenChars = { upper: false, lower: true, numeric: true, special: false };
    const tokenId = new random.RandomString(`${name}-bootstrap-token-id`, { length: 6, ...tokenChars }, child);
    const tokenSecret = new random.RandomString(`${name}-bootstrap-token-secret`, { length: 16, ...tokenChars }, child);

    this.caCertPem = this.clusterCa.certPem;
    this.caKeyPem = this.clusterCa.keyPem;
    this.frontProxyCaCertPem = frontProxyCa.certPem;
    this.frontProxyCaKeyPem = frontProxyCa.keyPem;
    this.etcdCaCertPem = this.etcdCa.certPem;
    this.etcdCaKeyPem = this.etcdCa.keyPem;
    this.serviceAccountPublicKeyPem = saKey.publicKeyPem;
    this.serviceAccountPrivateKeyPem = pulumi.secret(saKey.privateKeyPem);
    this.adminCertPem = admin.certPem;
    this.adminKeyPem = admin.keyPem;
    this.bootstrapToken = pulumi.secret(pulumi.all([tokenId.result, tokenSecret.result]).apply(([id, secret]) => bootstrapToken(id, secret)));
    this.caCertHash = this.caCertPem.apply(caCertHash);
    this.certificateExpiry = pulumi.output<Record<string, pulumi.Input<string>>>({
      "cluster CA (ca.crt)": this.clusterCa.cert.validityEndTime,
      "front-proxy CA (front-proxy-ca.crt)": frontProxyCa.cert.validityEndTime,
      "etcd CA (etcd/ca.crt)": this.etcdCa.cert.validityEndTime,
      "admin client certificate (the kubeconfig output)": admin.cert.validityEndTime,
    }) as pulumi.Output<Record<string, string>>;

    this.registerOutputs({
      caCertPem: this.caCertPem,
      caKeyPem: this.caKeyPem,
      frontProxyCaCertPem: this.frontProxyCaCertPem,
      frontProxyCaKeyPem: this.frontProxyCaKeyPem,
      etcdCaCertPem: this.etcdCaCertPem,
      etcdCaKeyPem: this.etcdCaKeyPem,
      serviceAccountPublicKeyPem: this.serviceAccountPublicKeyPem,
      serviceAccountPrivateKeyPem: this.serviceAccountPrivateKeyPem,
      adminCertPem: this.adminCertPem,
      adminKeyPem: this.adminKeyPem,
      bootstrapToken: this.bootstrapToken,
      caCertHash: this.caCertHash,
    });
  }

  /** The admin kubeconfig for an API endpoint such as `https://<nlb-dns>:6443`; secret, as it embeds the admin key. */
  public adminKubeconfig(server: pulumi.Input<string>, user?: string): pulumi.Output<string> {
    return pulumi.secret(
      pulumi.all([server, this.caCertPem, this.adminCertPem, this.adminKeyPem]).apply(([s, ca, cert, key]) =>
        kubeconfig({ clusterName: this.clusterName, server: s, caCertPem: ca, clientCertPem: cert, clientKeyPem: key, user }),
      ),
    );
  }
}
