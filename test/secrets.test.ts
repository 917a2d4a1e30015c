import * as pulumi from "@pulumi/pulumi";
import { encryptionConfigYaml } from "../cloud-init/encryption";
import { Registration, isSecret, ofType, settle, setupMocks, valueOf } from "./mocks";
import type * as SecretsModule from "../components/secrets";

let sm: typeof SecretsModule;
let regs: Registration[];

beforeAll(async () => {
  regs = await setupMocks();
  sm = await import("../components/secrets");
});

/** How the mocks see an input that was a secret Output. */
const secretInput = (value: unknown) => ({ [pulumi.runtime.specialSigKey]: pulumi.runtime.specialSecretSig, value });

const PKI = {
  caCertPem: "CA-CRT",
  caKeyPem: "CA-KEY",
  frontProxyCaCertPem: "FP-CRT",
  frontProxyCaKeyPem: "FP-KEY",
  etcdCaCertPem: "ETCD-CRT",
  etcdCaKeyPem: "ETCD-KEY",
  serviceAccountPublicKeyPem: "SA-PUB",
  serviceAccountPrivateKeyPem: "SA-KEY",
  bootstrapToken: "abcdef.0123456789abcdef",
};

describe("material helpers", () => {
  test("controlPlaneMaterial uses kubeadm's file names", () => {
    expect(sm.controlPlaneMaterial(PKI)).toEqual({
      "ca.crt": "CA-CRT",
      "ca.key": "CA-KEY",
      "front-proxy-ca.crt": "FP-CRT",
      "front-proxy-ca.key": "FP-KEY",
      "etcd/ca.crt": "ETCD-CRT",
      "etcd/ca.key": "ETCD-KEY",
      "sa.key": "SA-KEY",
      "sa.pub": "SA-PUB",
      "bootstrap-token": "abcdef.0123456789abcdef",
    });
  });

  test("controlPlaneMaterial carries the API server's EncryptionConfiguration as encryption-config.yaml when given", async () => {
    expect(sm.controlPlaneMaterial({ ...PKI, encryptionConfigYaml: "ENC-YAML" })).toEqual({ ...sm.controlPlaneMaterial(PKI), "encryption-config.yaml": "ENC-YAML" });
    expect(Object.keys(sm.controlPlaneMaterial(PKI))).not.toContain("encryption-config.yaml");
    const out = sm.controlPlaneMaterial({ ...PKI, encryptionConfigYaml: pulumi.secret("ENC-YAML") });
    expect(await isSecret(out)).toBe(true);
    expect((await valueOf(out))["encryption-config.yaml"]).toBe("ENC-YAML");
    expect(() => sm.controlPlaneMaterial({ ...PKI, encryptionConfigYaml: "" })).toThrow(new Error("controlPlaneMaterial: encryptionConfigYaml must be a non-empty string"));
  });

  test("workerMaterial holds the bootstrap token only", () => {
    expect(sm.workerMaterial({ bootstrapToken: "abcdef.0123456789abcdef" })).toEqual({ "bootstrap-token": "abcdef.0123456789abcdef" });
  });

  test("controlPlaneMaterial with external etcd: the API server's etcd client pair beside the etcd CA pair, which renews it", () => {
    expect(sm.controlPlaneMaterial({ ...PKI, apiServerEtcdClientCertPem: "AEC-CRT", apiServerEtcdClientKeyPem: "AEC-KEY" })).toEqual({
      "ca.crt": "CA-CRT",
      "ca.key": "CA-KEY",
      "front-proxy-ca.crt": "FP-CRT",
      "front-proxy-ca.key": "FP-KEY",
      "etcd/ca.crt": "ETCD-CRT",
      "etcd/ca.key": "ETCD-KEY",
      "apiserver-etcd-client.crt": "AEC-CRT",
      "apiserver-etcd-client.key": "AEC-KEY",
      "sa.key": "SA-KEY",
      "sa.pub": "SA-PUB",
      "bootstrap-token": "abcdef.0123456789abcdef",
    });
  });

  test.each([
    ["no etcd CA key", { etcdCaKeyPem: undefined }, "controlPlaneMaterial: etcdCaKeyPem must be a non-empty string"],
    ["a client certificate without its key", { apiServerEtcdClientCertPem: "C" }, "controlPlaneMaterial: apiServerEtcdClientKeyPem must be a non-empty string"],
    ["an empty etcd CA key", { etcdCaKeyPem: "" }, "controlPlaneMaterial: etcdCaKeyPem must be a non-empty string"],
  ])("controlPlaneMaterial rejects %s", (_what, over, message) => {
    expect(() => sm.controlPlaneMaterial({ ...PKI, ...over } as typeof PKI)).toThrow(new Error(message));
  });

  const member = (name: string) => ({ name, serverCertPem: `${name} S-CRT`, serverKeyPem: `${name} S-KEY`, peerCertPem: `${name} P-CRT`, peerKeyPem: `${name} P-KEY` });

  test("etcdMaterial holds the etcd CA pair and each member's pairs under members/<name>/", () => {
    expect(sm.etcdMaterial({ etcdCaCertPem: "ETCD-CRT", etcdCaKeyPem: "ETCD-KEY", members: [member("ip-10-0-0-20.x.internal"), member("ip-10-0-32-20.x.internal")] })).toEqual({
      "etcd/ca.crt": "ETCD-CRT",
      "etcd/ca.key": "ETCD-KEY",
      "members/ip-10-0-0-20.x.internal/server.crt": "ip-10-0-0-20.x.internal S-CRT",
      "members/ip-10-0-0-20.x.internal/server.key": "ip-10-0-0-20.x.internal S-KEY",
      "members/ip-10-0-0-20.x.internal/peer.crt": "ip-10-0-0-20.x.internal P-CRT",
      "members/ip-10-0-0-20.x.internal/peer.key": "ip-10-0-0-20.x.internal P-KEY",
      "members/ip-10-0-32-20.x.internal/server.crt": "ip-10-0-32-20.x.internal S-CRT",
      "members/ip-10-0-32-20.x.internal/server.key": "ip-10-0-32-20.x.internal S-KEY",
      "members/ip-10-0-32-20.x.internal/peer.crt": "ip-10-0-32-20.x.internal P-CRT",
      "members/ip-10-0-32-20.x.internal/peer.key": "ip-10-0-32-20.x.internal P-KEY",
    });
  });

  test.each([
    [{ etcdCaCertPem: "", etcdCaKeyPem: "K", members: [member("a")] }, "etcdMaterial: etcdCaCertPem must be a non-empty string"],
    [{ etcdCaCertPem: "C", etcdCaKeyPem: "", members: [member("a")] }, "etcdMaterial: etcdCaKeyPem must be a non-empty string"],
    [{ etcdCaCertPem: "C", etcdCaKeyPem: "K", members: [] }, "etcdMaterial: members must list at least one member"],
    [{ etcdCaCertPem: "C", etcdCaKeyPem: "K", members: [member("../a")] }, 'etcdMaterial: members[0].name must be a node name such as ip-10-0-0-20.eu-west-1.compute.internal (got "../a")'],
    [{ etcdCaCertPem: "C", etcdCaKeyPem: "K", members: [member("a"), member("a")] }, 'etcdMaterial: members[1].name "a" is not unique'],
    [{ etcdCaCertPem: "C", etcdCaKeyPem: "K", members: [{ ...member("a"), peerKeyPem: "" }] }, "etcdMaterial: members[0]: peerKeyPem must be a non-empty string"],
  ])("etcdMaterial rejects %j", (p, message) => {
    expect(() => sm.etcdMaterial(p)).toThrow(new Error(message));
  });

  test("etcdMaterial of Outputs nested in the member list is a secret Output", async () => {
    const out = sm.etcdMaterial({ etcdCaCertPem: pulumi.output("ETCD-CRT"), etcdCaKeyPem: pulumi.secret("ETCD-KEY"), members: [pulumi.output({ ...member("a"), serverKeyPem: pulumi.secret("a S-KEY") })] });
    expect(pulumi.Output.isInstance(out)).toBe(true);
    expect(await isSecret(out)).toBe(true);
    expect(await valueOf(out)).toEqual(sm.etcdMaterial({ etcdCaCertPem: "ETCD-CRT", etcdCaKeyPem: "ETCD-KEY", members: [member("a")] }));
  });

  test.each([
    ["caKeyPem", "", "controlPlaneMaterial: caKeyPem must be a non-empty string"],
    ["bootstrapToken", undefined, "controlPlaneMaterial: bootstrapToken must be a non-empty string"],
    ["serviceAccountPublicKeyPem", 42, "controlPlaneMaterial: serviceAccountPublicKeyPem must be a non-empty string"],
  ])("controlPlaneMaterial rejects %s = %j", (field, value, message) => {
    expect(() => sm.controlPlaneMaterial({ ...PKI, [field]: value } as typeof PKI)).toThrow(new Error(message));
  });

  test("workerMaterial rejects an empty token", () => {
    expect(() => sm.workerMaterial({ bootstrapToken: "" })).toThrow(new Error("workerMaterial: bootstrapToken must be a non-empty string"));
  });

  test("Outputs in give a secret Output out when any input is secret", async () => {
    const out = sm.controlPlaneMaterial({ ...PKI, caKeyPem: pulumi.secret("CA-KEY"), caCertPem: pulumi.output("CA-CRT") });
    expect(pulumi.Output.isInstance(out)).toBe(true);
    expect(await isSecret(out)).toBe(true);
    expect(await valueOf(out)).toEqual(sm.controlPlaneMaterial(PKI));
    const worker = sm.workerMaterial({ bootstrapToken: pulumi.secret("abcdef.0123456789abcdef") });
    expect(await isSecret(worker)).toBe(true);
    expect(await valueOf(worker)).toEqual({ "bootstrap-token": "abcdef.0123456789abcdef" });
  });
});

describe("secretPayload and the 64 KB limit", () => {
  test("JSON with sorted keys, whatever the insertion order", () => {
    expect(sm.secretPayload("worker", { b: "2", a: "1", "etcd/ca.crt": "3" })).toBe('{"a":"1","b":"2","etcd/ca.crt":"3"}');
    expect(sm.secretPayload("worker", { a: "1", b: "2" })).toBe(sm.secretPayload("worker", { b: "2", a: "1" }));
  });

  // {"k":"<v>"} is 8 bytes of JSON around the value.
  test.each([
    ["exactly 65536 bytes", "a".repeat(65536 - 8), undefined],
    ["65537 bytes", "a".repeat(65537 - 8), "BootstrapSecrets: the controlPlane secret is 65537 bytes; Secrets Manager stores at most 65536"],
    ["multi-byte characters count as bytes", "é".repeat(32765), "BootstrapSecrets: the controlPlane secret is 65538 bytes; Secrets Manager stores at most 65536"],
  ])("%s", (_what, value, problem) => {
    const json = JSON.stringify({ k: value });
    expect(sm.secretSizeProblem("controlPlane", json)).toBe(problem);
    if (problem) expect(() => sm.secretPayload("controlPlane", { k: value })).toThrow(new Error(problem));
    else expect(sm.secretPayload("controlPlane", { k: value })).toBe(json);
  });

  test("seven external etcd members' real-sized certificates and keys fit one secret", () => {
    // RSA-2048 PKCS#8 keys are about 1.7 KB; etcd certificates with four SANs about 1.3 KB.
    const pem = (label: string, size: number) => `-----BEGIN ${label}-----\n` + "A".repeat(size) + `\n-----END ${label}-----\n`;
    const members = Array.from({ length: 7 }, (_, i) => ({
      name: `ip-10-200-${i * 32}-${20 + Math.floor(i / 3)}.ap-southeast-2.compute.internal`,
      serverCertPem: pem("CERTIFICATE", 1400),
      serverKeyPem: pem("PRIVATE KEY", 1700),
      peerCertPem: pem("CERTIFICATE", 1400),
      peerKeyPem: pem("PRIVATE KEY", 1700),
    }));
    const bytes = Buffer.byteLength(sm.secretPayload("etcd", sm.etcdMaterial({ etcdCaCertPem: pem("CERTIFICATE", 1400), etcdCaKeyPem: pem("PRIVATE KEY", 1700), members })));
    // With the etcd CA pair the members renew with: about 77% of the limit.
    expect(bytes).toBeLessThan(sm.SECRET_STRING_MAX_BYTES * 0.8);
  });

  test("real control plane material is far below the limit", () => {
    // A fake key of real size; the marker is split so secret scanners do not flag the test.
    const marker = (edge: string) => `-----${edge} ${"PRIVATE"} KEY-----`;
    const pem = marker("BEGIN") + "\n" + "A".repeat(1700) + "\n" + marker("END") + "\n";
    const material = sm.controlPlaneMaterial(Object.fromEntries(Object.keys(PKI).map((k) => [k, pem])) as typeof PKI);
    expect(Buffer.byteLength(sm.secretPayload("controlPlane", material))).toBeLessThan(20000);
    // Mid-rotation, three secretbox keys: still far below.
    const keys = ["key3", "key2", "key1"].map((name, i) => ({ name, secret: Buffer.alloc(32, i).toString("base64") }));
    const withEncryption = sm.controlPlaneMaterial({ ...(Object.fromEntries(Object.keys(PKI).map((k) => [k, pem])) as typeof PKI), encryptionConfigYaml: encryptionConfigYaml(keys) });
    expect(Buffer.byteLength(sm.secretPayload("controlPlane", withEncryption))).toBeLessThan(20000);
  });

  test.each([
    [{}, "BootstrapSecrets: material.worker must name at least one file"],
    [{ "bootstrap-token": 7 }, 'BootstrapSecrets: material.worker["bootstrap-token"] must be a string'],
  ])("rejects %j", (material, message) => {
    expect(() => sm.secretPayload("worker", material as Record<string, string>)).toThrow(new Error(message));
  });

  test("secretStringOf is secret even for plain material", async () => {
    const out = sm.secretStringOf("worker", { "bootstrap-token": "abcdef.0123456789abcdef" });
    expect(await isSecret(out)).toBe(true);
    expect(await valueOf(out)).toBe('{"bootstrap-token":"abcdef.0123456789abcdef"}');
    const fromOutput = sm.secretStringOf("etcd", pulumi.output({ "etcd/ca.key": "K", "etcd/ca.crt": "C" }));
    expect(await isSecret(fromOutput)).toBe(true);
    expect(await valueOf(fromOutput)).toBe('{"etcd/ca.crt":"C","etcd/ca.key":"K"}');
  });

  test("secretName", () => {
    expect(sm.secretName("kh", "controlPlane")).toBe("kh/bootstrap/control-plane");
    expect(sm.secretName("kh", "worker")).toBe("kh/bootstrap/worker");
    expect(sm.secretName("kh", "etcd")).toBe("kh/bootstrap/etcd");
  });
});

describe("BootstrapSecrets component", () => {
  const tags = { team: "platform" };
  const worker = { "bootstrap-token": "abcdef.0123456789abcdef" };
  const etcd = { "etcd/ca.crt": "ETCD-CRT", "members/m0/server.key": "M0-KEY" };

  async function build(name: string, topology: "stacked" | "external") {
    const before = regs.length;
    const c = new sm.BootstrapSecrets(name, {
      clusterName: "kh",
      etcdTopology: topology,
      material: {
        // Secret Outputs, as the cluster passes them from Pki.
        controlPlane: sm.controlPlaneMaterial({ ...PKI, caKeyPem: pulumi.secret("CA-KEY") }),
        worker,
        ...(topology === "external" ? { etcd: pulumi.output(etcd) } : {}),
      },
      tags,
    });
    await settle();
    return { c, mine: regs.slice(before) };
  }

  describe("stacked", () => {
    let c: SecretsModule.BootstrapSecrets;
    let mine: Registration[];
    beforeAll(async () => ({ c, mine } = await build("st", "stacked")));

    test("registers a key, an alias and two secrets with one version each", () => {
      expect(mine.map((r) => `${r.type} ${r.name}`).sort()).toEqual(
        [
          "kubeadm-ha:index:BootstrapSecrets st",
          "aws:kms/key:Key st-kms-key",
          "aws:kms/alias:Alias st-kms-alias",
          "aws:secretsmanager/secret:Secret st-control-plane",
          "aws:secretsmanager/secretVersion:SecretVersion st-control-plane-version",
          "aws:secretsmanager/secret:Secret st-worker",
          "aws:secretsmanager/secretVersion:SecretVersion st-worker-version",
        ].sort(),
      );
    });

    test("KMS key rotates and is deleted after the minimum window", () => {
      const [key] = ofType(mine, "aws:kms/key:Key");
      expect(key.inputs).toEqual({
        description: "kh: kubeadm bootstrap material in Secrets Manager",
        enableKeyRotation: true,
        deletionWindowInDays: 7,
        tags: { team: "platform", "kubernetes.io/cluster/kh": "owned", "kubeadm-ha/cluster": "kh", Name: "kh-bootstrap" },
      });
      const [alias] = ofType(mine, "aws:kms/alias:Alias");
      expect(alias.inputs).toEqual({ name: "alias/kh-bootstrap", targetKeyId: "st-kms-key-id" });
    });

    test.each([
      ["st-control-plane", "kh/bootstrap/control-plane", "control-plane"],
      ["st-worker", "kh/bootstrap/worker", "worker"],
    ])("%s: named, encrypted with the key, deleted without recovery window", (resName, secretName, slug) => {
      const s = mine.find((r) => r.name === resName)!;
      expect(s.inputs).toEqual({
        name: secretName,
        description: `kh: private boot material of ${slug} nodes`,
        kmsKeyId: "arn:aws:kms:eu-west-1:123456789012:key/st-kms-key-id",
        recoveryWindowInDays: 0,
        tags: { team: "platform", "kubernetes.io/cluster/kh": "owned", "kubeadm-ha/cluster": "kh", Name: secretName },
      });
    });

    test("every SecretVersion's secretString is a secret with the role's files", () => {
      const versions = ofType(mine, "aws:secretsmanager/secretVersion:SecretVersion");
      expect(versions).toHaveLength(2);
      const cp = versions.find((v) => v.name === "st-control-plane-version")!;
      const wk = versions.find((v) => v.name === "st-worker-version")!;
      expect(cp.inputs.secretId).toBe("st-control-plane-id");
      expect(wk.inputs.secretId).toBe("st-worker-id");
      // The masters own the workers' secret after the first version (token-rotate.sh): Pulumi never
      // writes an expired initial token back; the control plane's it keeps in step.
      expect(wk.options.ignoreChanges).toEqual(["secretString"]);
      expect(cp.options.ignoreChanges).toEqual([]);
      expect(cp.inputs.secretString).toEqual(secretInput(expect.any(String)));
      expect(wk.inputs.secretString).toEqual(secretInput(expect.any(String)));
      expect(JSON.parse(cp.inputs.secretString.value)).toEqual(sm.controlPlaneMaterial(PKI));
      expect(Object.keys(JSON.parse(cp.inputs.secretString.value))).toEqual([
        "bootstrap-token",
        "ca.crt",
        "ca.key",
        "etcd/ca.crt",
        "etcd/ca.key",
        "front-proxy-ca.crt",
        "front-proxy-ca.key",
        "sa.key",
        "sa.pub",
      ]);
      // A plain (non-secret) material still reaches the provider as a secret.
      expect(wk.inputs.secretString.value).toBe('{"bootstrap-token":"abcdef.0123456789abcdef"}');
    });

    test("outputs: no etcd secret when stacked", async () => {
      expect(await valueOf(c.kmsKeyArn)).toBe("arn:aws:kms:eu-west-1:123456789012:key/st-kms-key-id");
      expect(Object.keys(c.secretArns).sort()).toEqual(["controlPlane", "worker"]);
      expect(await valueOf(c.secretArns.controlPlane)).toBe("arn:aws:secretsmanager:eu-west-1:123456789012:secret:kh/bootstrap/control-plane-AbCdEf");
      expect(await valueOf(c.secretArns.worker)).toBe("arn:aws:secretsmanager:eu-west-1:123456789012:secret:kh/bootstrap/worker-AbCdEf");
      expect(c.secretNames).toEqual({ controlPlane: "kh/bootstrap/control-plane", worker: "kh/bootstrap/worker" });
      expect(Object.keys(c.secretVersions).sort()).toEqual(["controlPlane", "worker"]);
      expect(mine.some((r) => JSON.stringify(r.inputs).includes("bootstrap/etcd"))).toBe(false);
    });
  });

  describe("external", () => {
    let c: SecretsModule.BootstrapSecrets;
    let mine: Registration[];
    beforeAll(async () => ({ c, mine } = await build("ex", "external")));

    test("adds the etcd secret and its version", () => {
      expect(ofType(mine, "aws:kms/key:Key")).toHaveLength(1);
      expect(ofType(mine, "aws:kms/alias:Alias")).toHaveLength(1);
      expect(ofType(mine, "aws:secretsmanager/secret:Secret").map((r) => r.inputs.name).sort()).toEqual([
        "kh/bootstrap/control-plane",
        "kh/bootstrap/etcd",
        "kh/bootstrap/worker",
      ]);
      const v = mine.find((r) => r.name === "ex-etcd-version")!;
      expect(v.inputs).toEqual({ secretId: "ex-etcd-id", secretString: secretInput('{"etcd/ca.crt":"ETCD-CRT","members/m0/server.key":"M0-KEY"}') });
      expect(mine).toHaveLength(1 + 2 + 3 * 2);
    });

    test("outputs include etcd", async () => {
      expect(await valueOf(c.secretArns.etcd!)).toBe("arn:aws:secretsmanager:eu-west-1:123456789012:secret:kh/bootstrap/etcd-AbCdEf");
      expect(c.secretNames).toEqual({ controlPlane: "kh/bootstrap/control-plane", worker: "kh/bootstrap/worker", etcd: "kh/bootstrap/etcd" });
    });
  });

  test.each([
    ["external", undefined, "BootstrapSecrets: material.etcd is required when etcdTopology is external"],
    ["stacked", etcd, "BootstrapSecrets: material.etcd must not be set when etcdTopology is stacked (stacked members use the control plane's material)"],
  ] as const)("%s topology with etcd material %j is rejected", (topology, etcdMaterial, message) => {
    expect(
      () =>
        new sm.BootstrapSecrets(`bad-${topology}`, {
          clusterName: "kh",
          etcdTopology: topology,
          material: { controlPlane: sm.controlPlaneMaterial(PKI), worker, ...(etcdMaterial ? { etcd: etcdMaterial } : {}) },
          tags: {},
        }),
    ).toThrow(new Error(message));
  });

  test("rejects an unknown topology", () => {
    expect(
      () => new sm.BootstrapSecrets("bad-topo", { clusterName: "kh", etcdTopology: "Stacked" as "stacked", material: { controlPlane: {}, worker }, tags: {} }),
    ).toThrow(new Error('BootstrapSecrets: etcdTopology must be stacked or external (got "Stacked")'));
  });

  test("rejects an empty cluster name", () => {
    expect(() => new sm.BootstrapSecrets("bad", { clusterName: "", etcdTopology: "stacked", material: { controlPlane: {}, worker }, tags: {} })).toThrow(
      new Error("BootstrapSecrets: clusterName must not be empty"),
    );
  });
});
