/**
 * The offline render reads Pulumi.<stack>.yaml itself (scripts/renderLib.ts stackConfig): every
 * way a stack file can be malformed is refused naming the file, before config.ts sees a key.
 */
import { stackConfig } from "../scripts/renderLib";

const FILE = "Pulumi.bad.yaml";
const SHAPE = "it must be a map with a config: map of keys such as aws:region and kubeadm-ha:clusterName";

describe("stackConfig", () => {
  it("passes scalars as strings and objects as JSON, as Pulumi does, keys as written", () => {
    expect(stackConfig('config:\n  aws:region: eu-west-1\n  kubeadm-ha:kubernetesVersion: "1.35.0"\n  kubeadm-ha:etcd:\n    topology: external\n  kubeadm_ha:count: 3\n  etcd: {}\n', FILE)).toEqual({
      "aws:region": "eu-west-1",
      "kubeadm-ha:kubernetesVersion": "1.35.0",
      "kubeadm-ha:etcd": '{"topology":"external"}',
      "kubeadm_ha:count": "3",
      etcd: "{}",
    });
  });

  it.each([
    ["a YAML syntax error", "config:\n  aws:region: [eu-west-1\n", /^Pulumi\.bad\.yaml: not valid YAML: Flow sequence .* at line 3, column 1/s],
    ["a duplicate key", "config:\n  aws:region: eu-west-1\n  aws:region: eu-west-2\n", /^Pulumi\.bad\.yaml: not valid YAML: Map keys must be unique/],
  ])("names the file on %s", (_desc, text, message) => {
    expect(() => stackConfig(text, FILE)).toThrow(message);
  });

  it.each([
    ["an empty file", "", `${FILE}: is empty; ${SHAPE}`],
    ["a file of comments only", "# nothing yet\n", `${FILE}: is empty; ${SHAPE}`],
    ["a list", "- config\n", `${FILE}: is a list; ${SHAPE}`],
    ["a string", "config\n", `${FILE}: is a string; ${SHAPE}`],
    ["no config section", "encryptionsalt: abc\n", `${FILE}: has no config: section; ${SHAPE}`],
    ["config as a list", "config:\n  - aws:region: eu-west-1\n", `${FILE}: config: is a list; ${SHAPE}`],
    ["config as a string", "config: eu-west-1\n", `${FILE}: config: is a string; ${SHAPE}`],
    ["config empty", "config:\n", `${FILE}: config: is nothing; ${SHAPE}`],
  ])("refuses %s, saying what the file must be", (_desc, text, message) => {
    expect(() => stackConfig(text, FILE)).toThrow(new Error(message));
  });

  const OFFLINE = "is a secure value, which cannot be decrypted offline; render a copy of the stack file without secrets (npm run render -- <stack> --config <copy>)";
  it.each([
    ["a secure key", "config:\n  kubeadm-ha:token:\n    secure: AAAB\n", `${FILE}: kubeadm-ha:token ${OFFLINE}`],
    ["a secure value nested in a map", "config:\n  kubeadm-ha:tags:\n    team:\n      secure: AAAB\n", `${FILE}: kubeadm-ha:tags.team ${OFFLINE}`],
    ["a secure value in a list", "config:\n  kubeadm-ha:workerPools:\n    - name: a\n      labels:\n        x:\n          secure: AAAB\n", `${FILE}: kubeadm-ha:workerPools[0].labels.x ${OFFLINE}`],
  ])("refuses %s it cannot decrypt, naming the path", (_desc, text, message) => {
    expect(() => stackConfig(text, FILE)).toThrow(new Error(message));
  });
});
