/**
 * The discovery hash against the real openssl, by the kubeadm docs' recipe
 * (https://kubernetes.io/docs/reference/setup-tools/kubeadm/kubeadm-join/#token-based-discovery-with-ca-pinning):
 * the pinned fixture value and freshly generated RSA and EC CAs. Slow tier: it runs openssl.
 */
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { caCertHash } from "../components/pki";

const FIXTURE_CA_HASH = "sha256:3511fefe8c321d9f124b9b2c6fe11d97f22bd8b92c9e7c936b764411f7e034c0";

/** The kubeadm docs recipe, run by the real openssl. */
function opensslHash(certFile: string, pubkeyCommand: "rsa" | "pkey"): string {
  const pub = execFileSync("openssl", ["x509", "-pubkey", "-noout", "-in", certFile]);
  const der = execFileSync("openssl", [pubkeyCommand, "-pubin", "-outform", "der"], { input: pub, stdio: ["pipe", "pipe", "ignore"] });
  const out = execFileSync("openssl", ["dgst", "-sha256", "-hex"], { input: der }).toString();
  return `sha256:${out.trim().split(/\s+/).pop()}`;
}

describe("caCertHash against openssl", () => {
  const fixtureCa = path.join(__dirname, "fixtures", "ca.crt");
  let tmp: string;
  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pki-test-"));
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test("fixture CA: the pinned value, equal to both openssl recipes", () => {
    expect(caCertHash(fs.readFileSync(fixtureCa, "utf8"))).toBe(FIXTURE_CA_HASH);
    expect(opensslHash(fixtureCa, "rsa")).toBe(FIXTURE_CA_HASH);
    expect(opensslHash(fixtureCa, "pkey")).toBe(FIXTURE_CA_HASH);
  });

  test.each([
    ["rsa", ["-newkey", "rsa:2048"]],
    ["ec", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]],
  ])("freshly generated %s CA matches openssl", (kind, keyArgs) => {
    const crt = path.join(tmp, `${kind}.crt`);
    execFileSync("openssl", ["req", "-x509", ...keyArgs, "-nodes", "-keyout", path.join(tmp, `${kind}.key`), "-out", crt, "-days", "1", "-subj", "/CN=kubernetes"], {
      stdio: "ignore",
    });
    const hash = caCertHash(fs.readFileSync(crt, "utf8"));
    expect(hash).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(hash).toBe(opensslHash(crt, "pkey"));
    expect(hash).not.toBe(FIXTURE_CA_HASH);
  });
});
