/**
 * One EC2 machine with a fixed zone, address and identity: a master or an external etcd member.
 * Both roles share this hardening, so a change to it (IMDS, disks, update policy) reaches both.
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { Placement } from "./controlPlane";
import { clusterTags } from "./tags";

/**
 * IMDSv2's hop limit on every machine, masters, etcd members and workers: 1, so pods cannot reach
 * the instance metadata service (kOps' default; AWS: "in a container environment, ... a hop limit
 * of 2" is what lets containers in, https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-retrieval.html).
 */
export const IMDS_HOP_LIMIT = 1;

export interface NodeInstanceArgs {
  clusterName: string;
  /** `kubeadm-ha/role` tag: control-plane or etcd. */
  role: "control-plane" | "etcd";
  /** The `Name` tag. */
  displayName: string;
  placement: Placement;
  amiId: pulumi.Input<string>;
  instanceType: string;
  rootVolumeGiB: number;
  subnetId: pulumi.Input<string>;
  securityGroupIds: pulumi.Input<string>[];
  instanceProfileName: pulumi.Input<string>;
  /** Gzipped cloud-config, base64. */
  userDataBase64: pulumi.Input<string>;
  tags: Record<string, string>;
  /** The machine is in a chain of health gates (day2/chain.ts), which orders its changes. Default false: new AMIs, user data and instance types are ignored. */
  chained?: boolean;
}

export function nodeInstance(name: string, a: NodeInstanceArgs, opts: pulumi.CustomResourceOptions): aws.ec2.Instance {
  return new aws.ec2.Instance(
    name,
    {
      ami: a.amiId,
      instanceType: a.instanceType,
      availabilityZone: a.placement.zone,
      subnetId: a.subnetId,
      privateIp: a.placement.ip,
      vpcSecurityGroupIds: a.securityGroupIds,
      iamInstanceProfile: a.instanceProfileName,
      // Required tokens stop SSRF-style credential theft. Hop limit 1: the token's response dies
      // one hop past the host, so no pod (in a network namespace behind the node) gets a token,
      // and with it the role's credentials and the bootstrap secret. What needs the role runs on
      // the host network: the cloud controller and the EBS CSI controller (components/addons.ts).
      // Changing it is an in-place update (ModifyInstanceMetadataOptions), no restart.
      metadataOptions: { httpEndpoint: "enabled", httpTokens: "required", httpPutResponseHopLimit: IMDS_HOP_LIMIT },
      rootBlockDevice: { volumeType: "gp3", volumeSize: a.rootVolumeGiB, encrypted: true, deleteOnTermination: true },
      userDataBase64: a.userDataBase64,
      // A new user data stops and starts the instance (EC2 takes it only from a stopped one), which
      // keeps the machine, its address and its etcd data; a new AMI replaces it.
      userDataReplaceOnChange: false,
      tags: clusterTags(a.clusterName, { ...a.tags, "kubeadm-ha/role": a.role, "kubeadm-ha/index": String(a.placement.index) }, a.displayName),
    },
    // A replacement (`pulumi up --replace <urn>`, a new AMI) takes the same fixed private IP, which
    // two ENIs in a subnet cannot hold at once: Pulumi's default create-before-delete would fail, so
    // the old instance goes first.
    // Never two at once: etcd's quorum allows one member down, and a replaced member comes back
    // empty. In a cluster, every machine depends on the health gate of the one before it
    // (day2/chain.ts), so Pulumi stops, changes or replaces the next only once this one is healthy
    // again. A machine outside a chain (`chained` false) ignores what would stop or replace it
    // instead, as nothing would order them.
    pulumi.mergeOptions(opts, { deleteBeforeReplace: true, ...(a.chained ? {} : { ignoreChanges: ["ami", "userDataBase64", "instanceType"] }) }),
  );
}
