/**
 * Encryption of Secrets at rest: the API server's `EncryptionConfiguration` and its flags. Pure.
 *
 * Provider choice, from the Kubernetes task page "Encrypting Confidential Data at Rest"
 * (https://kubernetes.io/docs/tasks/administer-cluster/encrypt-data/#providers): `aescbc` is
 * "not recommended due to CBC's vulnerability to padding oracle attacks"; `aesgcm` must be rotated
 * every 200,000 writes; `kms` v2 is the strongest but needs a KMS plugin running beside every API
 * server. `secretbox` (XSalsa20 and Poly1305, a 32-byte key) is authenticated encryption with no
 * write limit and no extra moving part, so it is the provider here.
 *
 * Only `secrets` are encrypted. ConfigMaps are non-confidential by API contract, and kubeadm's
 * own join path reads them (`kube-public/cluster-info`, `kube-system/kubeadm-config`): with
 * them encrypted, a lost or mismatched key would also stop every new node from joining.
 */
import { Arg, args, toYaml } from "./kubeadm";

export const ENCRYPTION_CONFIG_API = "apiserver.config.k8s.io/v1";
/** The entry of the control plane's secret; fetch-secrets.sh installs it under /etc/kubernetes/pki with mode 0600. */
export const ENCRYPTION_CONFIG_FILE = "encryption-config.yaml";
/**
 * Where the API server reads it. kubeadm mounts the certificates directory into the API server
 * pod read-only (volume `k8s-certs`, cmd/kubeadm/app/phases/controlplane/volumes.go), so no extra
 * volume is needed; being a directory mount, it also shows a file replaced by rename.
 */
export const ENCRYPTION_CONFIG_PATH = `/etc/kubernetes/pki/${ENCRYPTION_CONFIG_FILE}`;
/** secretbox takes exactly 32-byte keys. */
export const SECRETBOX_KEY_BYTES = 32;
/** The resources encrypted at rest. */
export const ENCRYPTED_RESOURCES: readonly string[] = ["secrets"];

/** One secretbox key: `secret` is the base64 of 32 random bytes. */
export interface EncryptionKey {
  name: string;
  secret: string;
}

/** The key name becomes part of every stored value's prefix (`k8s:enc:secretbox:v1:<name>:`), so no colon. */
const KEY_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** Why `name` cannot name a key, or undefined when it can. */
export function keyNameProblem(name: string): string | undefined {
  return KEY_NAME.test(name) ? undefined : `must be 1-63 letters, digits, '.', '_' or '-' starting with a letter or digit (got ${JSON.stringify(name)})`;
}
/** Canonical base64 of 32 bytes: 43 characters and one `=`. */
const KEY_32_BYTES_BASE64 = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

/**
 * The `EncryptionConfiguration`: secretbox with `keys` in order (the first encrypts every write,
 * each one decrypts), then `identity`, so Secrets written before encryption was on still read.
 * @throws on no keys, a duplicate or malformed name, or a secret that is not 32 bytes in base64.
 */
export function encryptionConfiguration(keys: EncryptionKey[]) {
  if (keys.length === 0) throw new Error("encryptionConfiguration: give at least one key");
  const seen = new Set<string>();
  keys.forEach((k, i) => {
    const problem = keyNameProblem(k.name);
    if (problem) throw new Error(`encryptionConfiguration: keys[${i}].name ${problem}`);
    if (seen.has(k.name)) throw new Error(`encryptionConfiguration: keys[${i}].name ${JSON.stringify(k.name)} is not unique`);
    seen.add(k.name);
    if (typeof k.secret !== "string" || !KEY_32_BYTES_BASE64.test(k.secret))
      throw new Error(`encryptionConfiguration: keys[${i}] (${k.name}) must be the base64 of exactly ${SECRETBOX_KEY_BYTES} bytes`);
  });
  return {
    apiVersion: ENCRYPTION_CONFIG_API,
    kind: "EncryptionConfiguration",
    resources: [
      {
        resources: [...ENCRYPTED_RESOURCES],
        providers: [{ secretbox: { keys: keys.map((k) => ({ name: k.name, secret: k.secret })) } }, { identity: {} }],
      },
    ],
  };
}

/** The configuration as the file the API server reads. */
export function encryptionConfigYaml(keys: EncryptionKey[]): string {
  return toYaml(encryptionConfiguration(keys));
}

/**
 * kube-apiserver flags. Automatic reload (a plain flag since Kubernetes 1.26, no feature gate)
 * lets a key rotation replace the file on each master without restarting its API server; a file
 * that fails to parse is reported and the previous configuration kept.
 */
export function encryptionProviderArgs(): Arg[] {
  return args({ "encryption-provider-config": ENCRYPTION_CONFIG_PATH, "encryption-provider-config-automatic-reload": "true" });
}
