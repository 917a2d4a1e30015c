import { Cluster } from "./components/cluster";
import { loadConfig } from "./config";

// Validation throws with every problem listed before any resource is registered.
const config = loadConfig();
const cluster = new Cluster(config.clusterName, { config });

export const apiServerUrl = cluster.apiServerUrl;
export const apiLoadBalancerDnsName = cluster.apiLoadBalancerDnsName;
/** The nodes' endpoint, the internal load balancer: reachable only from the VPC (and networks routed into it). */
export const internalApiServerUrl = cluster.internalApiServerUrl;
export const kubeconfig = cluster.kubeconfig;
export const masterIps = cluster.masterIps;
export const etcdEndpoints = cluster.etcdEndpoints;
export const etcdIps = cluster.etcdIps;
/** Instance IDs for the runbooks' `aws ssm start-session --target`, in index order. */
export const masterInstanceIds = cluster.masterInstanceIds;
export const etcdInstanceIds = cluster.etcdInstanceIds;
export const etcdTopology = cluster.etcdTopology;
/** The S3 bucket of the etcd snapshots; undefined when etcd.backup.enabled is false. */
export const etcdBackupBucket = cluster.etcdBackupBucket;
export const vpcId = cluster.vpcId;
export const caCertHash = cluster.caCertHash;
/** When each certificate Pulumi signs expires; `npm run certs -- <stack>` lists every certificate and what renews it. */
export const certificateExpiry = cluster.certificateExpiry;
/** Everything a program needs to build another worker pool for this cluster (components/workerPool.ts). */
export const workerJoin = cluster.workerJoin;
/** Pool name -> auto scaling group name. */
export const workerAutoScalingGroups = cluster.workerAutoScalingGroups;
/** The add-ons with their pinned chart versions and who installs them (`pulumi`, or master 0 with `nodes`). */
export const addons = cluster.addons;
/** What the last `pulumi up` that changed the cluster's settings did, one line a step (README: Upgrading). */
export const rolloutPlan = cluster.rolloutPlan;
