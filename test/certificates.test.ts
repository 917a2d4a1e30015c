import { spawnSync } from "child_process";
import * as path from "path";
import { parseConfig } from "../config";
import { certificateInventory, certificateTable } from "../components/certificates";

const ROOT = path.resolve(__dirname, "..");
const config = (over: Record<string, unknown> = {}) =>
  parseConfig({ region: "eu-west-1", clusterName: "c", network: { availabilityZones: ["eu-west-1a", "eu-west-1b", "eu-west-1c"] }, workerPools: [], apiLoadBalancer: { allowedCidrs: ["203.0.113.0/24"] }, ...over });

describe("certificateInventory", () => {
  it("stacked: the CAs, Pulumi's admin certificate, every master's kubeadm certificates and kubeconfigs, the kubelets', the token", () => {
    const names = certificateInventory(config()).map((e) => e.name.split(" (")[0]);
    expect(names).toEqual([
      "cluster CA",
      "front-proxy CA",
      "etcd CA",
      "service-account signing key pair",
      "admin client certificate",
      "API server serving, kubelet client and front-proxy client certificates",
      "stacked etcd server, peer and healthcheck-client certificates",
      "kubeconfigs of the control plane",
      "kubelet client certificates",
      "kubelet serving certificates",
      "worker join token",
    ]);
  });

  it("external: the members' and the API servers' etcd certificates instead of stacked etcd's, renewed on the machines", () => {
    const e = certificateInventory(config({ etcd: { topology: "external", nodeCount: 5 } }));
    expect(e.map((x) => x.name).filter((n) => /etcd/.test(n) && !n.startsWith("etcd CA"))).toEqual([
      "external etcd members' server and peer certificates (etcd/server.crt, etcd/peer.crt), 5 members",
      "API servers' etcd client certificate (apiserver-etcd-client.crt)",
    ]);
    for (const x of e.filter((x) => x.issuer.includes("kubeadm on")))
      expect(x.renewal).toContain("kubeadm-ha-cert-renew.timer on the machine, twice a day: renewed when 60 days are left, one machine at a time");
  });

  it("takes the renewal threshold and the token lifetime from config", () => {
    const e = certificateInventory(config({ certificates: { renewBeforeDays: 30, joinTokenTtlHours: 6 } }));
    expect(e.find((x) => x.name.startsWith("API server serving"))!.renewal).toContain("renewed when 30 days are left");
    expect(e.find((x) => x.name.startsWith("worker join token"))!.lifetimeHours).toBe(6);
    expect(certificateTable(e).split("\n").find((l) => l.startsWith("| worker join token"))).toContain("| 6 hours |");
  });

  it("every lifetime reads in the table as a person would say it", () => {
    const t = certificateTable(certificateInventory(config()));
    expect(t.split("\n").slice(0, 3)).toEqual([
      "| what | signed by | lifetime | renewed by |",
      "|---|---|---|---|",
      "| cluster CA (ca.crt, ca.key) | Pulumi (self-signed) | 10 years | not renewed automatically: README, Rotating a CA |",
    ]);
    expect(t).toContain("| service-account signing key pair (sa.key, sa.pub) | Pulumi | no expiry |");
    expect(t).toContain("| worker join token (the workers' secret) | kubeadm (bootstrap token) | 1 day |");
  });
});

describe("npm run certs", () => {
  const certs = (args: string[]) => spawnSync(process.execPath, ["-r", "@swc-node/register", "scripts/certs.ts", ...args], { cwd: ROOT, encoding: "utf8" });
  it("prints the prod stack's inventory and where the dates are", () => {
    const r = certs(["prod"]);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("Certificates and tokens of stack prod (etcd external):");
    expect(r.stdout).toContain(certificateTable(certificateInventory(config({ etcd: { topology: "external", nodeCount: 3, instanceType: "m7i.large" } }))).split("\n")[6]);
    expect(r.stdout).toContain("pulumi stack output certificateExpiry --stack prod");
  });
  it("refuses an unknown stack with the known ones", () => {
    const r = certs(["nope"]);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe("usage: npm run certs -- <stack>\nstacks: dev, prod\n");
  });
});
