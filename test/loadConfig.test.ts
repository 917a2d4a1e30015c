/**
 * Reading the stack's config as Pulumi hands it to the program (config.ts loadConfig and
 * stackSettings): keys the program would never read are refused, and settings that must be
 * secrets are refused in plain text. The rules of the values themselves: test/config.test.ts.
 */
import * as pulumi from "@pulumi/pulumi";
import { ConfigError, SECRET_KEYS, loadConfig, stackSettings } from "../config";

const ZONES = ["eu-west-1a", "eu-west-1b", "eu-west-1c"];

describe("loadConfig reads the stack config", () => {
  afterEach(() => pulumi.runtime.setAllConfig({}));

  it("parses structured keys as JSON and keeps scalar strings as strings", () => {
    pulumi.runtime.setAllConfig({
      "aws:region": "eu-west-1",
      "kubeadm-ha:clusterName": "dev",
      "kubeadm-ha:kubernetesVersion": "1.31.0",
      "kubeadm-ha:network": JSON.stringify({ availabilityZones: ZONES }),
      "kubeadm-ha:etcd": JSON.stringify({ topology: "external" }),
      "kubeadm-ha:workerPools": "[]",
      "aws:profile": "ops",
      "kubernetes:context": "ignored",
    });
    const c = loadConfig();
    expect(c.kubernetesVersion).toBe("1.31.0");
    expect(c.etcd.topology).toBe("external");
    expect(c.network.availabilityZones).toEqual(ZONES);
  });

  it("rejects a misspelt key instead of falling back to a default", () => {
    pulumi.runtime.setAllConfig({
      "aws:region": "eu-west-1",
      "kubeadm-ha:clusterName": "dev",
      "kubeadm-ha:network": JSON.stringify({ availabilityZones: ZONES }),
      "kubeadm-ha:controlplane": JSON.stringify({ count: 5 }),
    });
    expect(() => loadConfig()).toThrow('controlplane: {"count":5} — is not a known setting');
  });

  const VALID = {
    "aws:region": "eu-west-1",
    "kubeadm-ha:clusterName": "dev",
    "kubeadm-ha:network": JSON.stringify({ availabilityZones: ZONES }),
    "kubeadm-ha:workerPools": "[]",
  };
  const loadProblems = (extra: Record<string, string>, secretKeys?: string[]): string[] => {
    pulumi.runtime.setAllConfig({ ...VALID, ...extra }, secretKeys);
    try {
      loadConfig();
    } catch (e) {
      if (e instanceof ConfigError) return e.problems;
      throw e;
    }
    return [];
  };
  const NEVER_READ = "so the program never reads it; write it as kubeadm-ha:etcd";

  it.each([
    ["a key without a namespace", { etcd: '{"topology":"external"}' }, `etcd: {"topology":"external"} — has no namespace, ${NEVER_READ}`],
    ["a namespace with _ for -", { "kubeadm_ha:etcd": '{"topology":"external"}' }, `kubeadm_ha:etcd: {"topology":"external"} — is in namespace kubeadm_ha, not kubeadm-ha, ${NEVER_READ}`],
    ["a namespace with a Cyrillic a", { "kubeadm-h\u0430:etcd": '{"topology":"external"}' }, `kubeadm-h\\u0430:etcd: {"topology":"external"} — is in namespace kubeadm-h\\u0430 (non-ASCII characters shown as \\u escapes), not kubeadm-ha, ${NEVER_READ}`],
    ["a namespace in capitals", { "Kubeadm-HA:etcd": "{}" }, `Kubeadm-HA:etcd: {} — is in namespace Kubeadm-HA, not kubeadm-ha, ${NEVER_READ}`],
    ["a namespace missing a letter", { "kubeadmha:etcd": "{}" }, `kubeadmha:etcd: {} — is in namespace kubeadmha, not kubeadm-ha, ${NEVER_READ}`],
    [
      "a namespace nothing reads",
      { "myorg:etcd": "{}" },
      "myorg:etcd: {} — is in namespace myorg, which nothing in this program reads (it reads kubeadm-ha: settings, and aws:, kubernetes:, tls:, random:, pulumi: for its providers and Pulumi); remove it or correct the namespace",
    ],
    [
      "a flat dotted key, as the README's table spells it",
      { "kubeadm-ha:controlPlane.count": "5" },
      "kubeadm-ha:controlPlane.count: 5 — is one flat key: Pulumi does not nest keys at dots, so controlPlane.count would keep its default; nest it under kubeadm-ha:controlPlane in Pulumi.<stack>.yaml, or run pulumi config set --path 'controlPlane.count' 5",
    ],
    [
      "a flat key into a list",
      { "kubeadm-ha:workerPools[0].name": "big pool" },
      `kubeadm-ha:workerPools[0].name: "big pool" — is one flat key: Pulumi does not nest keys at dots, so workerPools[0].name would keep its default; nest it under kubeadm-ha:workerPools in Pulumi.<stack>.yaml, or run pulumi config set --path 'workerPools[0].name' <value>`,
    ],
  ])("refuses %s", (_desc, extra, expected) => expect(loadProblems(extra)).toEqual([expected]));

  it("lists key problems before the settings' own, all at once", () => {
    expect(loadProblems({ "kubeadm_ha:etcd": "{}", "kubeadm-ha:controlPlane": '{"count":4}' })).toEqual([
      `kubeadm_ha:etcd: {} — is in namespace kubeadm_ha, not kubeadm-ha, ${NEVER_READ}`,
      "controlPlane.count: 4 — must be 3, 5 or 7 (odd so stacked etcd keeps quorum; etcd advises at most 7)",
    ]);
  });

  it("accepts the providers' and Pulumi's own namespaces", () => {
    expect(loadProblems({ "aws:profile": "ops", "aws:skipMetadataApiCheck": "false", "kubernetes:context": "x", "tls:proxy": "{}", "random:x": "y", "pulumi:tags": "{}" })).toEqual([]);
  });

  it("a program of another name reads its own namespace", () => {
    pulumi.runtime.setAllConfig({ "aws:region": "eu-west-1", "fork:clusterName": "dev", "fork:network": JSON.stringify({ availabilityZones: ZONES }), "fork:workerPools": "[]" });
    expect(loadConfig("fork").clusterName).toBe("dev");
  });
});

describe("stackSettings: keys that must be secrets", () => {
  const all = { "kubeadm-ha:clusterName": "dev", "kubeadm-ha:registryPassword": "hunter2" };
  const secret = new Set(["registryPassword"]);

  it("refuses a secret setting in plain text, without repeating it", () => {
    const { raw, problems } = stackSettings(all, "kubeadm-ha", secret, () => false);
    expect(problems).toEqual(["registryPassword: (value not shown) — must be a secret, not plain text: pulumi config set --secret kubeadm-ha:registryPassword <value>"]);
    expect(raw).toEqual({ clusterName: "dev" });
  });

  it("takes it when Pulumi holds it as a secret", () => {
    const asked: string[] = [];
    const { raw, problems } = stackSettings(all, "kubeadm-ha", secret, (k) => (asked.push(k), true));
    expect(problems).toEqual([]);
    expect(raw).toEqual({ clusterName: "dev", registryPassword: "hunter2" });
    expect(asked).toEqual(["kubeadm-ha:registryPassword"]);
  });

  it("asks the Pulumi runtime by default", () => {
    pulumi.runtime.setAllConfig(all, ["kubeadm-ha:registryPassword"]);
    expect(stackSettings(pulumi.runtime.allConfig(), "kubeadm-ha", secret).problems).toEqual([]);
    pulumi.runtime.setAllConfig(all, []);
    expect(stackSettings(pulumi.runtime.allConfig(), "kubeadm-ha", secret).problems).toHaveLength(1);
    pulumi.runtime.setAllConfig({});
  });

  it("none of today's settings is one: none holds a credential", () => {
    expect([...SECRET_KEYS]).toEqual([]);
  });
});

