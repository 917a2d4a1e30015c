import * as crypto from "crypto";
import * as pulumi from "@pulumi/pulumi";
import * as YAML from "yaml";
import { FIXTURES, Registration, isSecret, ofType, settle, setupMocks, valueOf } from "./mocks";
import type * as PkiModule from "../components/pki";

// The component module is loaded after the mocks are installed, as Pulumi requires.
let pki: typeof PkiModule;
let regs: Registration[];

beforeAll(async () => {
  regs = await setupMocks();
  pki = await import("../components/pki");
});

/**
 * How the mocks see an input that was a secret Output: wrapped in Pulumi's secret signature. The
 * tls SDK itself wraps private-key inputs, so these document what reaches the provider; the
 * `... is secret` tests below are the ones that check this component's own wrapping.
 */
const secretInput = (value: unknown) => ({ [pulumi.runtime.specialSigKey]: pulumi.runtime.specialSecretSig, value });

const FIXTURE_CA_HASH = "sha256:3511fefe8c321d9f124b9b2c6fe11d97f22bd8b92c9e7c936b764411f7e034c0";

describe("bootstrapToken", () => {
  test.each([
    ["abcdef", "0123456789abcdef", "abcdef.0123456789abcdef"],
    ["000000", "zzzzzzzzzzzzzzzz", "000000.zzzzzzzzzzzzzzzz"],
    ["a1b2c3", "d4e5f6g7h8i9j0k1", "a1b2c3.d4e5f6g7h8i9j0k1"],
  ])("%s + %s", (id, secret, expected) => {
    const token = pki.bootstrapToken(id, secret);
    expect(token).toBe(expected);
    expect(pki.BOOTSTRAP_TOKEN_PATTERN.test(token)).toBe(true);
  });

  test.each([
    ["abcde", "0123456789abcdef", "bootstrap token id must be 6 characters from [a-z0-9] (got 5 characters)"],
    ["abcdefg", "0123456789abcdef", "bootstrap token id must be 6 characters from [a-z0-9] (got 7 characters)"],
    ["ABCDEF", "0123456789abcdef", "bootstrap token id must be 6 characters from [a-z0-9] (got 6 characters)"],
    ["abc.ef", "0123456789abcdef", "bootstrap token id must be 6 characters from [a-z0-9] (got 6 characters)"],
    ["abcdef", "0123456789abcde", "bootstrap token secret must be 16 characters from [a-z0-9] (got 15 characters)"],
    ["abcdef", "0123456789abcdeF", "bootstrap token secret must be 16 characters from [a-z0-9] (got 16 characters)"],
    ["abcdef", "0123456789abcde!", "bootstrap token secret must be 16 characters from [a-z0-9] (got 16 characters)"],
  ])("rejects %j + %j", (id, secret, message) => {
    expect(() => pki.bootstrapToken(id, secret)).toThrow(new Error(message));
  });

  test.each([
    ["abcdef.0123456789abcdef", true],
    ["abcdef0123456789abcdef", false],
    ["abcdef.0123456789abcdef\n", false],
    ["xabcdef.0123456789abcdef", false],
    ["abcdef.0123456789ABCDEF", false],
  ])("BOOTSTRAP_TOKEN_PATTERN %j -> %s", (token, ok) => {
    expect(pki.BOOTSTRAP_TOKEN_PATTERN.test(token)).toBe(ok);
  });
});

describe("caCertHash", () => {
  // test/pki-openssl.test.ts checks the pinned value and fresh CAs against the openssl recipe.
  test("fixture CA: the pinned value", () => {
    expect(pki.caCertHash(FIXTURES.caCert)).toBe(FIXTURE_CA_HASH);
  });

  test("hashes the public key, not the certificate", () => {
    const certDer = new crypto.X509Certificate(FIXTURES.caCert).raw;
    const certHash = `sha256:${crypto.createHash("sha256").update(certDer).digest("hex")}`;
    expect(pki.caCertHash(FIXTURES.caCert)).not.toBe(certHash);
  });

  test.each([[""], ["not a certificate"], [FIXTURES.caKey]])("rejects %#", (pem) => {
    expect(() => pki.caCertHash(pem)).toThrow(new Error("caCertHash: caCertPem is not a PEM-encoded X.509 certificate"));
  });
});

describe("kubeconfig", () => {
  const base = {
    clusterName: "kh",
    server: "https://kh-api-0123.elb.eu-west-1.amazonaws.com:6443",
    caCertPem: FIXTURES.caCert,
    clientCertPem: FIXTURES.clientCert,
    clientKeyPem: FIXTURES.clientKey,
  };
  const unb64 = (s: string) => Buffer.from(s, "base64").toString("utf8");

  test("parses back to the exact document", () => {
    const text = pki.kubeconfig(base);
    const doc = YAML.parse(text, { version: "1.1" });
    expect(doc).toEqual({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "kh", cluster: { server: "https://kh-api-0123.elb.eu-west-1.amazonaws.com:6443", "certificate-authority-data": expect.any(String) } }],
      users: [{ name: "kh-admin", user: { "client-certificate-data": expect.any(String), "client-key-data": expect.any(String) } }],
      contexts: [{ name: "kh-admin@kh", context: { cluster: "kh", user: "kh-admin" } }],
      "current-context": "kh-admin@kh",
      preferences: {},
    });
    expect(unb64(doc.clusters[0].cluster["certificate-authority-data"])).toBe(FIXTURES.caCert);
    expect(unb64(doc.users[0].user["client-certificate-data"])).toBe(FIXTURES.clientCert);
    expect(unb64(doc.users[0].user["client-key-data"])).toBe(FIXTURES.clientKey);
  });

  test("base64 data stays on one line", () => {
    const text = pki.kubeconfig(base);
    const line = text.split("\n").find((l) => l.includes("client-key-data:"))!;
    expect(line.trim()).toBe(`client-key-data: ${Buffer.from(FIXTURES.clientKey).toString("base64")}`);
  });

  test("a custom user names the user and the context", () => {
    const doc = YAML.parse(pki.kubeconfig({ ...base, user: "ops" }), { version: "1.1" });
    expect(doc.users[0].name).toBe("ops");
    expect(doc.contexts).toEqual([{ name: "ops@kh", context: { cluster: "kh", user: "ops" } }]);
    expect(doc["current-context"]).toBe("ops@kh");
  });

  test("YAML 1.1 booleans are quoted, so client-go reads them as strings", () => {
    const text = pki.kubeconfig({ ...base, clusterName: "on", user: "yes" });
    const doc = YAML.parse(text, { version: "1.1" });
    expect(doc.clusters[0].name).toBe("on");
    expect(doc.users[0].name).toBe("yes");
    expect(doc.contexts[0].context).toEqual({ cluster: "on", user: "yes" });
  });

  test("deterministic", () => {
    expect(pki.kubeconfig(base)).toBe(pki.kubeconfig({ ...base }));
  });

  test.each([
    ["http://api.example.com:6443", 'kubeconfig: server must be an https:// URL such as https://api.example.com:6443 (got "http://api.example.com:6443")'],
    ["api.example.com:6443", 'kubeconfig: server must be an https:// URL such as https://api.example.com:6443 (got "api.example.com:6443")'],
    ["", 'kubeconfig: server must be an https:// URL such as https://api.example.com:6443 (got "")'],
  ])("rejects server %j", (server, message) => {
    expect(() => pki.kubeconfig({ ...base, server })).toThrow(new Error(message));
  });

  test.each([
    ["caCertPem", { caCertPem: FIXTURES.caKey }, "kubeconfig: caCertPem must be PEM containing a CERTIFICATE block"],
    ["clientCertPem", { clientCertPem: "" }, "kubeconfig: clientCertPem must be PEM containing a CERTIFICATE block"],
    ["clientKeyPem", { clientKeyPem: FIXTURES.clientCert }, "kubeconfig: clientKeyPem must be PEM containing a PRIVATE KEY block"],
  ])("rejects a bad %s", (_f, patch, message) => {
    expect(() => pki.kubeconfig({ ...base, ...patch })).toThrow(new Error(message));
  });
});

describe("Pki component", () => {
  let p: PkiModule.Pki;
  let mine: Registration[];
  const byName = (n: string) => {
    const r = mine.filter((x) => x.name === n);
    expect(r).toHaveLength(1);
    return r[0];
  };

  beforeAll(async () => {
    const before = regs.length;
    p = new pki.Pki("pki", { clusterName: "kh" });
    await settle();
    mine = regs.slice(before);
  });

  test("registers exactly these resources", () => {
    expect(mine.map((r) => `${r.type} ${r.name}`).sort()).toEqual(
      [
        "kubeadm-ha:index:Pki pki",
        "tls:index/privateKey:PrivateKey pki-ca-key",
        "tls:index/selfSignedCert:SelfSignedCert pki-ca-cert",
        "tls:index/privateKey:PrivateKey pki-front-proxy-ca-key",
        "tls:index/selfSignedCert:SelfSignedCert pki-front-proxy-ca-cert",
        "tls:index/privateKey:PrivateKey pki-etcd-ca-key",
        "tls:index/selfSignedCert:SelfSignedCert pki-etcd-ca-cert",
        "tls:index/privateKey:PrivateKey pki-sa-key",
        "tls:index/privateKey:PrivateKey pki-admin-key",
        "tls:index/certRequest:CertRequest pki-admin-csr",
        "tls:index/locallySignedCert:LocallySignedCert pki-admin-cert",
        "random:index/randomString:RandomString pki-bootstrap-token-id",
        "random:index/randomString:RandomString pki-bootstrap-token-secret",
      ].sort(),
    );
  });

  test("every key is RSA 2048", () => {
    const keys = ofType(mine, "tls:index/privateKey:PrivateKey");
    expect(keys).toHaveLength(5);
    for (const k of keys) expect(k.inputs).toEqual({ algorithm: "RSA", rsaBits: 2048 });
  });

  test.each([
    ["pki-ca-cert", "kubernetes"],
    ["pki-front-proxy-ca-cert", "front-proxy-ca"],
    ["pki-etcd-ca-cert", "etcd-ca"],
  ])("%s is a ten-year CA with CN %s", (name, cn) => {
    expect(byName(name).inputs).toEqual({
      privateKeyPem: secretInput(FIXTURES.caKey),
      subject: { commonName: cn },
      isCaCertificate: true,
      setSubjectKeyId: true,
      allowedUses: ["cert_signing", "key_encipherment", "digital_signature"],
      validityPeriodHours: 87600,
    });
  });

  test("admin CSR subject is the revocable kubeadm:cluster-admins group", () => {
    expect(byName("pki-admin-csr").inputs).toEqual({
      privateKeyPem: secretInput(FIXTURES.caKey),
      subject: { commonName: "kubeadm-ha-admin", organization: "kubeadm:cluster-admins" },
    });
  });

  test("admin certificate: client auth, one year, renewed in the last 90 days", () => {
    expect(byName("pki-admin-cert").inputs).toEqual({
      certRequestPem: FIXTURES.clientCsr,
      caCertPem: FIXTURES.caCert,
      caPrivateKeyPem: secretInput(FIXTURES.caKey),
      allowedUses: ["client_auth", "digital_signature", "key_encipherment"],
      validityPeriodHours: 8760,
      earlyRenewalHours: 2160,
    });
  });

  test("bootstrap token parts are lowercase letters and digits only", () => {
    expect(byName("pki-bootstrap-token-id").inputs).toEqual({ length: 6, upper: false, lower: true, numeric: true, special: false });
    expect(byName("pki-bootstrap-token-secret").inputs).toEqual({ length: 16, upper: false, lower: true, numeric: true, special: false });
  });

  test("bootstrap token joins the two random strings in kubeadm's format", async () => {
    const token = await valueOf(p.bootstrapToken);
    const id = byName("pki-bootstrap-token-id").state.result;
    const secret = byName("pki-bootstrap-token-secret").state.result;
    expect(token).toBe(`${id}.${secret}`);
    expect(token).toMatch(pki.BOOTSTRAP_TOKEN_PATTERN);
  });

  test.each([
    "caKeyPem",
    "frontProxyCaKeyPem",
    "etcdCaKeyPem",
    "serviceAccountPrivateKeyPem",
    "adminKeyPem",
    "bootstrapToken",
  ] as const)("%s is secret", async (out) => {
    expect(await isSecret(p[out])).toBe(true);
  });

  // These go into user data and stack outputs; a secret would hide every user data diff.
  test.each(["caCertPem", "frontProxyCaCertPem", "etcdCaCertPem", "serviceAccountPublicKeyPem", "adminCertPem", "caCertHash"] as const)(
    "%s is public",
    async (out) => {
      expect(await isSecret(p[out])).toBe(false);
    },
  );

  test("outputs carry the provider's PEMs", async () => {
    expect(await valueOf(p.caCertPem)).toBe(FIXTURES.caCert);
    expect(await valueOf(p.caKeyPem)).toBe(FIXTURES.caKey);
    expect(await valueOf(p.etcdCaKeyPem)).toBe(FIXTURES.caKey);
    expect(await valueOf(p.adminCertPem)).toBe(FIXTURES.clientCert);
    expect(await valueOf(p.serviceAccountPublicKeyPem)).toBe("-----BEGIN PUBLIC KEY-----\n(mock)\n-----END PUBLIC KEY-----\n");
  });

  test("caCertHash is the discovery hash of the CA certificate", async () => {
    expect(await valueOf(p.caCertHash)).toBe(FIXTURE_CA_HASH);
  });

  test("adminKubeconfig is secret and embeds the CA, admin certificate and key", async () => {
    const out = p.adminKubeconfig(pulumi.output("https://api.kh.example:6443"));
    expect(await isSecret(out)).toBe(true);
    const doc = YAML.parse(await valueOf(out), { version: "1.1" });
    expect(doc.clusters[0]).toEqual({
      name: "kh",
      cluster: { server: "https://api.kh.example:6443", "certificate-authority-data": Buffer.from(FIXTURES.caCert).toString("base64") },
    });
    expect(doc.users[0]).toEqual({
      name: "kh-admin",
      user: {
        "client-certificate-data": Buffer.from(FIXTURES.clientCert).toString("base64"),
        "client-key-data": Buffer.from(FIXTURES.caKey).toString("base64"),
      },
    });
  });

  test("rejects an empty cluster name", () => {
    expect(() => new pki.Pki("bad", { clusterName: "" })).toThrow(new Error("Pki: clusterName must not be empty"));
  });
});

describe("issueCertificate", () => {
  // A CA whose PEMs differ from the mocks' fixtures, to see which CA the certificate is signed by.
  const fakeCa = () =>
    ({ certPem: pulumi.output("ETCD-CA-CERT"), keyPem: pulumi.secret("ETCD-CA-KEY") }) as unknown as PkiModule.CertificateAuthority;

  test("signs an etcd server certificate with the given CA", async () => {
    const before = regs.length;
    const leaf = pki.issueCertificate(
      "etcd-0-server",
      fakeCa(),
      { commonName: "etcd-0", dnsNames: ["etcd-0.kh.internal", "localhost"], ipAddresses: ["10.0.1.10", "127.0.0.1"], allowedUses: ["server_auth", "client_auth", "digital_signature", "key_encipherment"] },
      {},
    );
    await settle();
    const mine = regs.slice(before);
    expect(mine.map((r) => r.name).sort()).toEqual(["etcd-0-server-cert", "etcd-0-server-csr", "etcd-0-server-key"]);
    expect(mine.find((r) => r.name === "etcd-0-server-csr")!.inputs).toEqual({
      privateKeyPem: secretInput(FIXTURES.caKey),
      subject: { commonName: "etcd-0" },
      dnsNames: ["etcd-0.kh.internal", "localhost"],
      ipAddresses: ["10.0.1.10", "127.0.0.1"],
    });
    expect(mine.find((r) => r.name === "etcd-0-server-cert")!.inputs).toEqual({
      certRequestPem: FIXTURES.clientCsr,
      caCertPem: "ETCD-CA-CERT",
      caPrivateKeyPem: secretInput("ETCD-CA-KEY"),
      allowedUses: ["server_auth", "client_auth", "digital_signature", "key_encipherment"],
      validityPeriodHours: 8760,
      earlyRenewalHours: 2160,
    });
    expect(await isSecret(leaf.keyPem)).toBe(true);
    expect(await isSecret(leaf.certPem)).toBe(false);
  });

  test.each([
    [{ validityPeriodHours: 720 }, "x: earlyRenewalHours (2160) must be less than validityPeriodHours (720), or every pulumi up replaces the certificate"],
    [{ validityPeriodHours: 100, earlyRenewalHours: 100 }, "x: earlyRenewalHours (100) must be less than validityPeriodHours (100), or every pulumi up replaces the certificate"],
    [{ allowedUses: [] }, "x: allowedUses must not be empty"],
  ])("rejects %j", (patch, message) => {
    expect(() => pki.issueCertificate("x", fakeCa(), { commonName: "x", allowedUses: ["client_auth"], ...patch }, {})).toThrow(new Error(message));
  });
});
