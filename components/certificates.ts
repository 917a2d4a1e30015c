/**
 * Every certificate, key and token a cluster of this program carries: who signs it, for how long,
 * and what renews it. Pure: `npm run certs -- <stack>` prints it for a stack's config, and the
 * README's "Certificates and tokens" section is written from the same facts.
 */
import { ClusterConfig } from "../config";
import { CA_VALIDITY_HOURS, LEAF_EARLY_RENEWAL_HOURS, LEAF_VALIDITY_HOURS } from "./pki";

/** kubeadm signs its leaf certificates and kubeconfigs for `certificateValidityPeriod`, one year by default. */
export const KUBEADM_LEAF_HOURS = 8760;
/** kube-controller-manager's `--cluster-signing-duration` default: the kubelets' client certificates. */
export const KUBELET_CLIENT_HOURS = 8760;

export interface CertificateEntry {
  /** What it is, and where it lives. */
  name: string;
  /** Who signs it: Pulumi (`@pulumi/tls`), kubeadm on the machine, kube-controller-manager, the kubelet itself, or kubeadm's token. */
  issuer: string;
  /** Lifetime in hours; undefined for keys without an expiry. */
  lifetimeHours?: number;
  /** What renews it, and when; or why nothing needs to. */
  renewal: string;
}

const days = (h: number) => `${h / 24} days`;

/** The cluster's certificates and tokens for `c`, in a fixed order: CAs, Pulumi's leaves, the machines', the kubelets', the token. */
export function certificateInventory(c: Pick<ClusterConfig, "etcd" | "certificates" | "controlPlane">): CertificateEntry[] {
  const before = c.certificates.renewBeforeDays;
  const timer = `kubeadm-ha-cert-renew.timer on the machine, twice a day: renewed when ${before} days are left, one machine at a time (cert-renew.sh)`;
  const stacked = c.etcd.topology === "stacked";
  const caRunbook = "not renewed automatically: README, Rotating a CA";
  const pulumiLeaf = `replaced by \`pulumi up\` in its last ${days(LEAF_EARLY_RENEWAL_HOURS)}`;
  return [
    { name: "cluster CA (ca.crt, ca.key)", issuer: "Pulumi (self-signed)", lifetimeHours: CA_VALIDITY_HOURS, renewal: caRunbook },
    { name: "front-proxy CA (front-proxy-ca.crt, .key)", issuer: "Pulumi (self-signed)", lifetimeHours: CA_VALIDITY_HOURS, renewal: caRunbook },
    { name: "etcd CA (etcd/ca.crt, .key)", issuer: "Pulumi (self-signed)", lifetimeHours: CA_VALIDITY_HOURS, renewal: caRunbook },
    { name: "service-account signing key pair (sa.key, sa.pub)", issuer: "Pulumi", renewal: "a key pair, no expiry" },
    { name: "admin client certificate (the `kubeconfig` stack output)", issuer: "Pulumi, cluster CA", lifetimeHours: LEAF_VALIDITY_HOURS, renewal: `${pulumiLeaf}; on a master, \`kubeadm kubeconfig user\` mints one at any time` },
    ...(stacked
      ? []
      : [
          {
            name: `external etcd members' server and peer certificates (etcd/server.crt, etcd/peer.crt), ${c.etcd.nodeCount} members`,
            issuer: "Pulumi at creation, then kubeadm on the member, etcd CA",
            lifetimeHours: LEAF_VALIDITY_HOURS,
            renewal: `${timer}; members restart under a lock in etcd while the others are healthy`,
          },
          {
            name: "API servers' etcd client certificate (apiserver-etcd-client.crt)",
            issuer: "Pulumi at creation, then kubeadm on each master, etcd CA",
            lifetimeHours: LEAF_VALIDITY_HOURS,
            renewal: timer,
          },
        ]),
    {
      name: `API server serving, kubelet client and front-proxy client certificates (apiserver.crt, apiserver-kubelet-client.crt, front-proxy-client.crt), ${c.controlPlane.count} masters`,
      issuer: "kubeadm on each master, cluster and front-proxy CAs",
      lifetimeHours: KUBEADM_LEAF_HOURS,
      renewal: timer,
    },
    ...(stacked
      ? [
          {
            name: "stacked etcd server, peer and healthcheck-client certificates (etcd/server.crt, etcd/peer.crt, etcd/healthcheck-client.crt)",
            issuer: "kubeadm on each master, etcd CA",
            lifetimeHours: KUBEADM_LEAF_HOURS,
            renewal: timer,
          },
        ]
      : []),
    {
      name: "kubeconfigs of the control plane (admin.conf, super-admin.conf on master 0, controller-manager.conf, scheduler.conf)",
      issuer: "kubeadm on each master, cluster CA",
      lifetimeHours: KUBEADM_LEAF_HOURS,
      renewal: timer,
    },
    {
      name: "kubelet client certificates (/var/lib/kubelet/pki/kubelet-client-current.pem), every node",
      issuer: "kube-controller-manager, cluster CA",
      lifetimeHours: KUBELET_CLIENT_HOURS,
      renewal: "the kubelet itself, when 70-90% of the lifetime has passed (rotateCertificates, on by default)",
    },
    {
      name: "kubelet serving certificates (/var/lib/kubelet/pki/kubelet.crt), every node",
      issuer: "the kubelet (self-signed)",
      lifetimeHours: 8760,
      renewal: "not renewed, and nothing stops working when it expires: kube-apiserver does not verify kubelet certificates (kubeadm's default, no --kubelet-certificate-authority); README says how to switch to verified ones",
    },
    {
      name: "worker join token (the workers' secret)",
      issuer: "kubeadm (bootstrap token)",
      lifetimeHours: c.certificates.joinTokenTtlHours,
      renewal: "kubeadm-ha-token-rotate.timer on every master, hourly: a new token once half the lifetime is gone (token-rotate.sh); a joining master mints its own for one hour",
    },
  ];
}

/** The inventory as a Markdown table. */
export function certificateTable(entries: CertificateEntry[]): string {
  const life = (h?: number) => (h === undefined ? "no expiry" : h % 8760 === 0 ? `${h / 8760} year${h === 8760 ? "" : "s"}` : h % 24 === 0 ? `${h / 24} day${h === 24 ? "" : "s"}` : `${h} hours`);
  return [
    "| what | signed by | lifetime | renewed by |",
    "|---|---|---|---|",
    ...entries.map((e) => `| ${e.name} | ${e.issuer} | ${life(e.lifetimeHours)} | ${e.renewal} |`),
  ].join("\n") + "\n";
}
