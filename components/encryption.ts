/**
 * The keys that encrypt Secrets at rest (cloud-init/encryption.ts) and the configuration file
 * built from them. The file goes into the control plane's bootstrap secret, never into user data:
 * every master must hold the same file, and a replaced master fetches it at boot.
 */
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { EncryptionKey, SECRETBOX_KEY_BYTES, encryptionConfigYaml, keyNameProblem } from "../cloud-init/encryption";

export interface SecretsEncryptionArgs {
  /**
   * Key names in provider order: the first encrypts new writes, every one decrypts. Each name is
   * one `RandomBytes` child, `${name}-<key>`, so a key keeps its bytes while its name stays in the
   * list. Rotation adds a name second, moves it first, then drops the old one (README). Default `["key1"]`.
   */
  keyNames?: string[];
  /**
   * Key name -> its 32 bytes, base64, given instead of generated (no `RandomBytes` child for it):
   * for a new stack that restores another cluster's snapshots, whose Secrets only that cluster's
   * key decrypts (README, "Restore after the stack is gone"). Kept secret. On a stack that already
   * generated the key it replaces it, and every Secret etcd holds becomes unreadable: only when the
   * stack is created. Default none.
   */
  suppliedKeys?: Record<string, pulumi.Input<string>>;
}

/** secretbox keys from `@pulumi/random`, and the API server's `EncryptionConfiguration` holding them. */
export class SecretsEncryption extends pulumi.ComponentResource {
  /** The `EncryptionConfiguration` YAML (secret): the `encryption-config.yaml` entry of the control plane's secret. */
  public readonly configYaml: pulumi.Output<string>;
  /** The key names, in provider order. */
  public readonly keyNames: string[];

  constructor(name: string, args: SecretsEncryptionArgs = {}, opts?: pulumi.ComponentResourceOptions) {
    const keyNames = args.keyNames ?? ["key1"];
    if (keyNames.length === 0) throw new Error("SecretsEncryption: keyNames must name at least one key");
    if (new Set(keyNames).size !== keyNames.length) throw new Error(`SecretsEncryption: keyNames must be distinct (got ${JSON.stringify(keyNames)})`);
    // Checked now: the key bytes are unknown during a preview, so the file is built only at `up`.
    keyNames.forEach((k, i) => {
      const problem = keyNameProblem(k);
      if (problem) throw new Error(`SecretsEncryption: keyNames[${i}] ${problem}`);
    });
    super("kubeadm-ha:index:SecretsEncryption", name, {}, opts);
    this.keyNames = keyNames;

    const supplied = args.suppliedKeys ?? {};
    const unknown = Object.keys(supplied).filter((k) => !keyNames.includes(k));
    if (unknown.length > 0) throw new Error(`SecretsEncryption: suppliedKeys names ${JSON.stringify(unknown)}, not in keyNames ${JSON.stringify(keyNames)}`);
    const keys = keyNames.map((keyName) => {
      if (supplied[keyName] !== undefined) return pulumi.secret(supplied[keyName]).apply((secret): EncryptionKey => ({ name: keyName, secret }));
      const bytes = new random.RandomBytes(`${name}-${keyName}`, { length: SECRETBOX_KEY_BYTES }, { parent: this });
      // The provider marks base64 secret too; wrapping keeps that true whatever the provider version.
      return pulumi.secret(bytes.base64).apply((secret): EncryptionKey => ({ name: keyName, secret }));
    });
    // Built by the program, not on the machines: a bad key fails `pulumi up`, not a master's boot.
    this.configYaml = pulumi.secret(pulumi.all(keys).apply((k) => encryptionConfigYaml(k)));
    this.registerOutputs({ configYaml: this.configYaml, keyNames: this.keyNames });
  }
}
