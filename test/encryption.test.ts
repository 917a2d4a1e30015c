/**
 * Secrets encryption at rest: the pure EncryptionConfiguration builder and API server flags, the
 * component holding the keys, and the wiring through the control plane's secret and kubeadm's
 * ClusterConfiguration, on and off.
 */
import * as zlib from "zlib";
import * as fc from "fast-check";
import { parse, parseAllDocuments } from "yaml";
import {
  ENCRYPTION_CONFIG_FILE,
  ENCRYPTION_CONFIG_PATH,
  encryptionConfigYaml,
  encryptionConfiguration,
  encryptionProviderArgs,
} from "../cloud-init/encryption";
import { masterDocuments } from "../components/controlPlane";
import { masterValues } from "./values";
import { decodeUserData } from "../scripts/renderLib";
import { VARIANTS, captureAll, captured } from "./capture";
import { Registration, isSecret, mockRandomBytes, ofType, settle, setupMocks, valueOf } from "./mocks";
import type * as EncryptionModule from "../components/encryption";

const KEY_A = Buffer.alloc(32, 7).toString("base64");
const KEY_B = Buffer.alloc(32, 1).toString("base64");

describe("encryptionConfiguration", () => {
  it.each([
    [
      "one key",
      [{ name: "key1", secret: KEY_A }],
      [
        "apiVersion: apiserver.config.k8s.io/v1",
        "kind: EncryptionConfiguration",
        "resources:",
        "  - resources:",
        "      - secrets",
        "    providers:",
        "      - secretbox:",
        "          keys:",
        "            - name: key1",
        `              secret: ${KEY_A}`,
        "      - identity: {}",
        "",
      ],
    ],
    [
      "a rotation's second step: the new key first, the old one still decrypting",
      [{ name: "key2", secret: KEY_B }, { name: "key1", secret: KEY_A }],
      [
        "apiVersion: apiserver.config.k8s.io/v1",
        "kind: EncryptionConfiguration",
        "resources:",
        "  - resources:",
        "      - secrets",
        "    providers:",
        "      - secretbox:",
        "          keys:",
        "            - name: key2",
        `              secret: ${KEY_B}`,
        "            - name: key1",
        `              secret: ${KEY_A}`,
        "      - identity: {}",
        "",
      ],
    ],
  ])("%s: exact YAML, secretbox first and identity last", (_what, keys, lines) => {
    const text = encryptionConfigYaml(keys);
    expect(text).toBe(lines.join("\n"));
    // One document, and YAML 1.1 reads back the same object (no key is mangled into another type).
    expect(parseAllDocuments(text)).toHaveLength(1);
    expect(parse(text, { version: "1.1" })).toEqual(encryptionConfiguration(keys));
  });

  it.each([
    [[], "encryptionConfiguration: give at least one key"],
    [[{ name: "", secret: KEY_A }], `encryptionConfiguration: keys[0].name must be 1-63 letters, digits, '.', '_' or '-' starting with a letter or digit (got "")`],
    [[{ name: "key:1", secret: KEY_A }], `encryptionConfiguration: keys[0].name must be 1-63 letters, digits, '.', '_' or '-' starting with a letter or digit (got "key:1")`],
    [[{ name: "-key", secret: KEY_A }], `encryptionConfiguration: keys[0].name must be 1-63 letters, digits, '.', '_' or '-' starting with a letter or digit (got "-key")`],
    [[{ name: "k".repeat(64), secret: KEY_A }], `encryptionConfiguration: keys[0].name must be 1-63 letters, digits, '.', '_' or '-' starting with a letter or digit (got "${"k".repeat(64)}")`],
    [[{ name: "key1", secret: KEY_A }, { name: "key1", secret: KEY_B }], `encryptionConfiguration: keys[1].name "key1" is not unique`],
    [[{ name: "key1", secret: Buffer.alloc(16, 1).toString("base64") }], "encryptionConfiguration: keys[0] (key1) must be the base64 of exactly 32 bytes"],
    [[{ name: "key1", secret: Buffer.alloc(33, 1).toString("base64") }], "encryptionConfiguration: keys[0] (key1) must be the base64 of exactly 32 bytes"],
    [[{ name: "key1", secret: KEY_A.replace("=", "") }], "encryptionConfiguration: keys[0] (key1) must be the base64 of exactly 32 bytes"],
    [[{ name: "key1", secret: `${KEY_A}\n` }], "encryptionConfiguration: keys[0] (key1) must be the base64 of exactly 32 bytes"],
    // Base64url, and a last character with bits Go's strict decoder would refuse.
    [[{ name: "key1", secret: KEY_A.replace(/c/g, "-") }], "encryptionConfiguration: keys[0] (key1) must be the base64 of exactly 32 bytes"],
    [[{ name: "key1", secret: KEY_A.slice(0, 42) + "d=" }], "encryptionConfiguration: keys[0] (key1) must be the base64 of exactly 32 bytes"],
  ])("rejects %j", (keys, message) => {
    expect(() => encryptionConfiguration(keys)).toThrow(message);
  });

  it("accepts the base64 of any 32 bytes and of no other length", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (b) => {
        const secret = Buffer.from(b).toString("base64");
        expect(encryptionConfiguration([{ name: "key1", secret }]).resources[0].providers[0]).toEqual({ secretbox: { keys: [{ name: "key1", secret }] } });
      }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 64 }).filter((n) => n !== 32), fc.integer({ min: 0, max: 255 }), (n, fill) => {
        expect(() => encryptionConfiguration([{ name: "key1", secret: Buffer.alloc(n, fill).toString("base64") }])).toThrow("must be the base64 of exactly 32 bytes");
      }),
    );
  });

  it("points the API server at the file under the pki directory kubeadm mounts, with automatic reload", () => {
    expect(ENCRYPTION_CONFIG_PATH).toBe("/etc/kubernetes/pki/encryption-config.yaml");
    expect(encryptionProviderArgs()).toEqual([
      { name: "encryption-provider-config", value: "/etc/kubernetes/pki/encryption-config.yaml" },
      { name: "encryption-provider-config-automatic-reload", value: "true" },
    ]);
  });
});

describe("masterDocuments: the API server flags, on and off", () => {
  const values = (encryptionAtRest?: boolean) => masterValues(encryptionAtRest === undefined ? {} : { encryptionAtRest });
  const apiServer = (encryptionAtRest?: boolean) => {
    const v = values(encryptionAtRest);
    const docs = parseAllDocuments(masterDocuments(v, v.masters[0]).kubeadm["init.yaml"], { version: "1.1" }).map((d) => d.toJS());
    return docs.find((d) => d.kind === "ClusterConfiguration").apiServer;
  };

  it("on: init's ClusterConfiguration carries both flags as v1beta4 extraArgs", () => {
    expect(apiServer(true)).toEqual({
      certSANs: ["dev-api.elb.eu-west-1.amazonaws.com"],
      extraArgs: [
        { name: "encryption-provider-config", value: "/etc/kubernetes/pki/encryption-config.yaml" },
        { name: "encryption-provider-config-automatic-reload", value: "true" },
      ],
    });
  });

  it.each([[false], [undefined]])("off (%s): no extraArgs at all", (flag) => {
    expect(apiServer(flag)).toEqual({ certSANs: ["dev-api.elb.eu-west-1.amazonaws.com"] });
  });

  it("joining masters' documents are the same either way: they take kubeadm's stored ClusterConfiguration", () => {
    for (const i of [0, 1, 2]) {
      const on = values(true);
      const off = values(false);
      expect(masterDocuments(on, on.masters[i]).kubeadm["join.yaml"]).toBe(masterDocuments(off, off.masters[i]).kubeadm["join.yaml"]);
      expect(masterDocuments(on, on.masters[i]).env).toEqual(masterDocuments(off, off.masters[i]).env);
    }
  });
});

describe("SecretsEncryption component and Cluster wiring", () => {
  let regs: Registration[];
  let enc: typeof EncryptionModule;
  beforeAll(async () => {
    regs = await setupMocks();
    enc = await import("../components/encryption");
  });

  async function build<T>(make: () => T): Promise<{ made: T; mine: Registration[] }> {
    const before = regs.length;
    const made = make();
    await settle();
    return { made, mine: regs.slice(before) };
  }

  it("one 32-byte RandomBytes per key name, and the file built from them as a secret", async () => {
    const { made, mine } = await build(() => new enc.SecretsEncryption("enc"));
    expect(mine.map((r) => `${r.type} ${r.name}`)).toEqual(["kubeadm-ha:index:SecretsEncryption enc", "random:index/randomBytes:RandomBytes enc-key1"]);
    expect(mine[1].inputs).toEqual({ length: 32 });
    expect(made.keyNames).toEqual(["key1"]);
    expect(await isSecret(made.configYaml)).toBe(true);
    expect(await valueOf(made.configYaml)).toBe(encryptionConfigYaml([{ name: "key1", secret: mockRandomBytes("enc-key1", 32).base64 }]));
  });

  it("a supplied key is used as given, secret, with no RandomBytes of its own: a new stack adopts the key of the snapshots it restores (issue 15)", async () => {
    const old = Buffer.alloc(32, 7).toString("base64");
    const { made, mine } = await build(() => new enc.SecretsEncryption("restored", { suppliedKeys: { key1: old } }));
    expect(ofType(mine, "random:index/randomBytes:RandomBytes")).toEqual([]);
    expect(await isSecret(made.configYaml)).toBe(true);
    expect(await valueOf(made.configYaml)).toBe(encryptionConfigYaml([{ name: "key1", secret: old }]));
    expect(() => new enc.SecretsEncryption("bad", { suppliedKeys: { key9: old } })).toThrow('SecretsEncryption: suppliedKeys names ["key9"], not in keyNames ["key1"]');
  });

  it("keeps the given key order: the first name encrypts", async () => {
    const { made, mine } = await build(() => new enc.SecretsEncryption("rot", { keyNames: ["key2", "key1"] }));
    expect(ofType(mine, "random:index/randomBytes:RandomBytes").map((r) => r.name)).toEqual(["rot-key2", "rot-key1"]);
    expect(await valueOf(made.configYaml)).toBe(
      encryptionConfigYaml([
        { name: "key2", secret: mockRandomBytes("rot-key2", 32).base64 },
        { name: "key1", secret: mockRandomBytes("rot-key1", 32).base64 },
      ]),
    );
  });

  it.each([
    [[], "SecretsEncryption: keyNames must name at least one key"],
    [["key1", "key1"], `SecretsEncryption: keyNames must be distinct (got ["key1","key1"])`],
    [["key1", "a:b"], `SecretsEncryption: keyNames[1] must be 1-63 letters, digits, '.', '_' or '-' starting with a letter or digit (got "a:b")`],
  ])("rejects keyNames %j before registering anything", (keyNames, message) => {
    const before = regs.length;
    expect(() => new enc.SecretsEncryption(`bad-${regs.length}`, { keyNames })).toThrow(message);
    expect(regs.length).toBe(before);
  });

  /** The control plane secret's files, as the SecretVersion received them. */
  const controlPlaneFiles = (mine: Registration[], name: string): Record<string, string> => {
    const version = mine.find((r) => r.name === `${name}-secrets-control-plane-version`)!;
    const s = version.inputs.secretString;
    return JSON.parse(typeof s === "string" ? s : s.value);
  };
  /** Every file cloud-init writes from this user data, decoded as cloud-init would. */
  const writeFiles = (userDataBase64: string): Record<string, string> => {
    const body = parse(decodeUserData(userDataBase64, true), { version: "1.1" }) as { write_files?: Array<{ path: string; content: string; encoding?: string }> };
    return Object.fromEntries(
      (body.write_files ?? []).map((f) => {
        const raw = f.encoding === undefined ? Buffer.from(f.content, "utf8") : Buffer.from(f.content, "base64");
        return [f.path, (f.encoding === "gz+b64" || f.encoding === "gzip+base64" ? zlib.gunzipSync(raw) : raw).toString("utf8")];
      }),
    );
  };
  const masterApiServer = (mine: Registration[], name: string) => {
    const master = mine.find((r) => r.name === `${name}-control-plane-master-0`)!;
    const init = writeFiles(master.inputs.userDataBase64)["/etc/kubeadm-ha/init.yaml"];
    return parseAllDocuments(init, { version: "1.1" }).map((d) => d.toJS()).find((d) => d.kind === "ClusterConfiguration").apiServer;
  };

  // The run's shared evaluation of the dev stack (on) and of dev with every optional part off (test/capture.ts).
  beforeAll(() => captureAll([VARIANTS.dev, VARIANTS.devOff]), 120000);
  it("on: the file sits in the control plane's secret only, and the API servers are pointed at it", async () => {
    const mine = (await captured(VARIANTS.dev)).registrations;
    expect(ofType(mine, "random:index/randomBytes:RandomBytes").map((r) => r.name)).toEqual(["dev-encryption-key1"]);
    const key = mockRandomBytes("dev-encryption-key1", 32).base64;
    const files = controlPlaneFiles(mine, "dev");
    expect(files[ENCRYPTION_CONFIG_FILE]).toBe(encryptionConfigYaml([{ name: "key1", secret: key }]));
    expect(ofType(mine, "aws:secretsmanager/secretVersion:SecretVersion").filter((r) => JSON.stringify(r.inputs).includes(key)).map((r) => r.name)).toEqual([
      "dev-secrets-control-plane-version",
    ]);
    expect(masterApiServer(mine, "dev").extraArgs).toEqual(encryptionProviderArgs());
    // The key reaches no machine through user data. Only the secret holds it, and the backup
    // bucket's copy, which outlives the stack with the snapshots it decrypts (issue 15).
    const holders = ["aws:secretsmanager/secretVersion:SecretVersion", "random:index/randomBytes:RandomBytes", "aws:s3/bucketObjectv2:BucketObjectv2"];
    for (const r of mine.filter((r) => !holders.includes(r.type)))
      expect({ name: r.name, hasKey: JSON.stringify(r.inputs).includes(key) }).toEqual({ name: r.name, hasKey: false });
    const [kept] = ofType(mine, "aws:s3/bucketObjectv2:BucketObjectv2").filter((r) => JSON.stringify(r.inputs).includes(key));
    expect(kept.name).toBe("dev-etcd-backups-encryption-config");
    expect(kept.inputs.key).toBe("encryption-at-rest/encryption-config.yaml");
    expect(kept.inputs.content.value).toBe(encryptionConfigYaml([{ name: "key1", secret: key }]));
    expect(kept.inputs.kmsKeyId).toBe("arn:aws:kms:eu-west-1:123456789012:key/dev-etcd-backups-kms-key-id");
    const withUserData = mine.filter((r) => typeof r.inputs.userDataBase64 === "string");
    expect(withUserData.map((r) => r.name)).toEqual(expect.arrayContaining([0, 1, 2].map((i) => `dev-control-plane-master-${i}`)));
    for (const r of withUserData) {
      const files = writeFiles(r.inputs.userDataBase64);
      expect({ name: r.name, hasKey: Object.values(files).some((f) => f.includes(key)) }).toEqual({ name: r.name, hasKey: false });
    }
  });

  it("off: no key, no file, no flag", async () => {
    const mine = (await captured(VARIANTS.devOff)).registrations;
    expect(ofType(mine, "random:index/randomBytes:RandomBytes")).toEqual([]);
    expect(ofType(mine, "kubeadm-ha:index:SecretsEncryption")).toEqual([]);
    expect(Object.keys(controlPlaneFiles(mine, "dev"))).not.toContain(ENCRYPTION_CONFIG_FILE);
    expect(masterApiServer(mine, "dev")).toEqual({ certSANs: ["dev-api-0123456789abcdef.elb.eu-west-1.amazonaws.com", "dev-api-pub-0123456789abcdef.elb.eu-west-1.amazonaws.com"] });
  });
});
