/** The dev stack's master document values (components/controlPlane.ts masterDocuments), shared by the tests that render masters. */
import { MasterDocumentValues, placeNodes } from "../components/controlPlane";

export const ZONES = ["eu-west-1a", "eu-west-1b", "eu-west-1c"];
export const SUBNETS = ["10.0.0.0/19", "10.0.32.0/19", "10.0.64.0/19"];
export const LEADER_ELECTION = { leaseDuration: "15s", renewDeadline: "10s", retryPeriod: "2s" };

/** Three stacked masters of the dev stack; `over` replaces any value. */
export function masterValues<T extends Partial<MasterDocumentValues>>(over: T = {} as T) {
  return {
    clusterName: "dev",
    kubernetesVersion: "1.35.0",
    region: "eu-west-1",
    apiEndpoint: "dev-api.elb.eu-west-1.amazonaws.com:6443",
    caCertHash: "sha256:" + "ab".repeat(32),
    secretArn: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:dev/bootstrap/control-plane-AbCdEf",
    podCidr: "10.244.0.0/16",
    serviceCidr: "10.96.0.0/12",
    leaderElection: LEADER_ELECTION,
    initMarker: "/kubeadm-ha/dev/control-plane-initialised",
    masters: placeNodes(3, ZONES, SUBNETS, "eu-west-1"),
    ...over,
  };
}
