/**
 * loadConfig and stackSettings against Pulumi's own runtime (setAllConfig, secret keys). The
 * rules for the keys and values, on the same strings Pulumi passes: test/config.test.ts.
 */
import * as pulumi from "@pulumi/pulumi";
import { loadConfig, stackSettings } from "../config";

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
      "kubeadm-ha:apiLoadBalancer": JSON.stringify({ scheme: "internal" }),
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
});

describe("stackSettings asks the Pulumi runtime which keys are secrets", () => {
  const all = { "kubeadm-ha:clusterName": "dev", "kubeadm-ha:registryPassword": "hunter2" };
  const secret = new Set(["registryPassword"]);

  it("asks the Pulumi runtime by default", () => {
    pulumi.runtime.setAllConfig(all, ["kubeadm-ha:registryPassword"]);
    expect(stackSettings(pulumi.runtime.allConfig(), "kubeadm-ha", secret).problems).toEqual([]);
    pulumi.runtime.setAllConfig(all, []);
    expect(stackSettings(pulumi.runtime.allConfig(), "kubeadm-ha", secret).problems).toHaveLength(1);
    pulumi.runtime.setAllConfig({});
  });
});
