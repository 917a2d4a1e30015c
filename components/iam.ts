/**
 * One IAM role and instance profile per node role, each able to read only its own bootstrap
 * secret (components/secrets.ts), plus what the AWS cloud provider and the EBS CSI controller
 * need on that role.
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { isCanonicalCidr } from "../config";
import { NodeRole, ROLE_SLUGS } from "./secrets";
import { clusterTags } from "./tags";

export interface PolicyStatement {
  Sid: string;
  Effect: "Allow";
  Action: string | string[];
  Resource?: string | string[];
  Principal?: { Service: string };
  Condition?: Record<string, Record<string, string | string[]>>;
}

/** An IAM policy document, serialized with `JSON.stringify` as is. */
export interface PolicyDocument {
  Version: "2012-10-17";
  Statement: PolicyStatement[];
}

const SECRET_ARN = /^arn:aws[a-z-]*:secretsmanager:([a-z0-9-]+):\d{12}:secret:.+$/;
const KMS_KEY_ARN = /^arn:aws[a-z-]*:kms:([a-z0-9-]+):\d{12}:key\/.+$/;
const REGION = /^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$/;

/**
 * Where a role's machines read their secret from: only credentials delivered to the cluster's own
 * machines, calling from the cluster's own NAT addresses, may read it.
 */
export interface SecretReadSource {
  /** The cluster's VPC (`aws:Ec2InstanceSourceVpc`): the role attached to an instance anywhere else reads nothing. */
  vpcId: string;
  /** The role's machines' private addresses (`aws:Ec2InstanceSourcePrivateIPv4`): fixed /32s for masters and etcd members, the private subnets for workers. */
  privateCidrs: string[];
  /** The NAT gateways' public addresses (`aws:SourceIp`): machines reach Secrets Manager through them, so credentials taken off a machine read nothing elsewhere. */
  natPublicIps: string[];
}

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

/**
 * Read one bootstrap secret and nothing else. Decrypt is allowed only when Secrets Manager calls
 * KMS on the role's behalf (`kms:ViaService`) for that very secret (Secrets Manager puts the
 * secret's ARN in the encryption context), so the key cannot decrypt another role's secret.
 *
 * With `source`, the read is also bound to where the cluster's machines are: credentials EC2
 * delivered to an instance of the cluster's VPC at one of the role's addresses, in a request that
 * leaves through the cluster's NAT gateways (the global condition keys
 * https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html). A
 * Secrets Manager VPC endpoint would change the source address: requests through one carry no
 * `aws:SourceIp`, so adding one needs this condition changed to `aws:SourceVpce`. The decrypt
 * statement carries no address condition: KMS sees Secrets Manager's call, not the machine's.
 */
export function secretReadPolicy(secretArn: string, kmsKeyArn: string, region: string, source?: SecretReadSource): PolicyDocument {
  const secret = SECRET_ARN.exec(secretArn);
  if (!secret) throw new Error(`secretReadPolicy: secretArn must be a Secrets Manager secret ARN (got ${JSON.stringify(secretArn)})`);
  // An alias ARN here would grant nothing: IAM authorizes KMS calls against the key's ARN.
  const key = KMS_KEY_ARN.exec(kmsKeyArn);
  if (!key) throw new Error(`secretReadPolicy: kmsKeyArn must be a KMS key ARN, not an alias (got ${JSON.stringify(kmsKeyArn)})`);
  if (!REGION.test(region)) throw new Error(`secretReadPolicy: region must be an AWS region name such as eu-west-1 (got ${JSON.stringify(region)})`);
  if (secret[1] !== region) throw new Error(`secretReadPolicy: secretArn is in ${secret[1]}, not ${region}; kms:ViaService would never match`);
  if (key[1] !== region) throw new Error(`secretReadPolicy: kmsKeyArn is in ${key[1]}, not ${region}; Secrets Manager uses a key of its own region`);
  if (source) {
    if (!source.vpcId) throw new Error("secretReadPolicy: source.vpcId must not be empty");
    if (source.privateCidrs.length === 0 || !source.privateCidrs.every(isCanonicalCidr))
      throw new Error(`secretReadPolicy: source.privateCidrs must list IPv4 CIDRs with no host bits set (got ${JSON.stringify(source.privateCidrs)})`);
    if (source.natPublicIps.length === 0 || !source.natPublicIps.every((ip) => IPV4.test(ip)))
      throw new Error(`secretReadPolicy: source.natPublicIps must list IPv4 addresses (got ${JSON.stringify(source.natPublicIps)})`);
  }
  const where = source
    ? {
      Condition: {
        StringEquals: { "aws:Ec2InstanceSourceVpc": source.vpcId },
        IpAddress: { "aws:Ec2InstanceSourcePrivateIPv4": [...source.privateCidrs], "aws:SourceIp": [...new Set(source.natPublicIps)].map((ip) => `${ip}/32`) },
      },
    }
    : {};
  return {
    Version: "2012-10-17",
    Statement: [
      { Sid: "ReadOwnBootstrapSecret", Effect: "Allow", Action: "secretsmanager:GetSecretValue", Resource: secretArn, ...where },
      {
        Sid: "DecryptOwnBootstrapSecret",
        Effect: "Allow",
        Action: "kms:Decrypt",
        Resource: kmsKeyArn,
        Condition: {
          StringEquals: {
            "kms:ViaService": `secretsmanager.${region}.amazonaws.com`,
            "kms:EncryptionContext:SecretARN": secretArn,
          },
        },
      },
    ],
  };
}

/**
 * The AWS cloud-controller-manager's actions, verbatim from kubernetes/cloud-provider-aws
 * docs/prerequisites.md ("Control Plane Policy", commit 2f4b2e2f8620bc86ab949aa15269d504f0c38a23),
 * minus the doc's second `elasticloadbalancing:AddTags`. The CCM creates and tags load balancers,
 * security groups and routes whose names it cannot know in advance, hence `Resource: *`.
 */
export const CLOUD_CONTROLLER_MANAGER_ACTIONS: readonly string[] = [
  "autoscaling:DescribeAutoScalingGroups",
  "autoscaling:DescribeLaunchConfigurations",
  "autoscaling:DescribeTags",
  "ec2:DescribeInstances",
  "ec2:DescribeRegions",
  "ec2:DescribeRouteTables",
  "ec2:DescribeSecurityGroups",
  "ec2:DescribeSubnets",
  "ec2:DescribeVolumes",
  "ec2:DescribeAvailabilityZones",
  "ec2:CreateSecurityGroup",
  "ec2:CreateTags",
  "ec2:CreateVolume",
  "ec2:ModifyInstanceAttribute",
  "ec2:ModifyVolume",
  "ec2:AttachVolume",
  "ec2:AuthorizeSecurityGroupIngress",
  "ec2:CreateRoute",
  "ec2:DeleteRoute",
  "ec2:DeleteSecurityGroup",
  "ec2:DeleteVolume",
  "ec2:DetachVolume",
  "ec2:RevokeSecurityGroupIngress",
  "ec2:DescribeVpcs",
  "ec2:DescribeInstanceTopology",
  "elasticloadbalancing:AddTags",
  "elasticloadbalancing:AttachLoadBalancerToSubnets",
  "elasticloadbalancing:ApplySecurityGroupsToLoadBalancer",
  "elasticloadbalancing:CreateLoadBalancer",
  "elasticloadbalancing:CreateLoadBalancerPolicy",
  "elasticloadbalancing:CreateLoadBalancerListeners",
  "elasticloadbalancing:ConfigureHealthCheck",
  "elasticloadbalancing:DeleteLoadBalancer",
  "elasticloadbalancing:DeleteLoadBalancerListeners",
  "elasticloadbalancing:DescribeLoadBalancers",
  "elasticloadbalancing:DescribeLoadBalancerAttributes",
  "elasticloadbalancing:DetachLoadBalancerFromSubnets",
  "elasticloadbalancing:DeregisterInstancesFromLoadBalancer",
  "elasticloadbalancing:ModifyLoadBalancerAttributes",
  "elasticloadbalancing:RegisterInstancesWithLoadBalancer",
  "elasticloadbalancing:SetLoadBalancerPoliciesForBackendServer",
  "elasticloadbalancing:CreateListener",
  "elasticloadbalancing:CreateTargetGroup",
  "elasticloadbalancing:DeleteListener",
  "elasticloadbalancing:DeleteTargetGroup",
  "elasticloadbalancing:DescribeListeners",
  "elasticloadbalancing:DescribeLoadBalancerPolicies",
  "elasticloadbalancing:DescribeTargetGroups",
  "elasticloadbalancing:DescribeTargetHealth",
  "elasticloadbalancing:ModifyListener",
  "elasticloadbalancing:ModifyTargetGroup",
  "elasticloadbalancing:RegisterTargets",
  "elasticloadbalancing:DeregisterTargets",
  "elasticloadbalancing:SetLoadBalancerPoliciesOfListener",
  "iam:CreateServiceLinkedRole",
  "kms:DescribeKey",
];

/**
 * A node's actions under the external cloud provider, verbatim from the same document's "Node
 * Policy": instance and region lookups, and read-only ECR pulls for the kubelet's ECR credential
 * provider. Neither ECR's GetAuthorizationToken nor the Describe calls support resource scoping.
 */
export const WORKER_NODE_ACTIONS: readonly string[] = [
  "ec2:DescribeInstances",
  "ec2:DescribeRegions",
  "ecr:GetAuthorizationToken",
  "ecr:BatchCheckLayerAvailability",
  "ecr:GetDownloadUrlForLayer",
  "ecr:GetRepositoryPolicy",
  "ecr:DescribeRepositories",
  "ecr:ListImages",
  "ecr:BatchGetImage",
];

/** The aws-cloud-controller-manager's permissions, for the control plane role. */
export function controlPlaneCloudProviderPolicy(): PolicyDocument {
  return { Version: "2012-10-17", Statement: [{ Sid: "CloudControllerManager", Effect: "Allow", Action: [...CLOUD_CONTROLLER_MANAGER_ACTIONS], Resource: "*" }] };
}

/** What a worker's kubelet needs with the external cloud provider, for the worker role. */
export function workerNodePolicy(): PolicyDocument {
  return { Version: "2012-10-17", Statement: [{ Sid: "KubeletExternalCloudProvider", Effect: "Allow", Action: [...WORKER_NODE_ACTIONS], Resource: "*" }] };
}

/** Trust policy letting EC2 instances assume a role through their instance profile. */
export function ec2AssumeRolePolicy(): PolicyDocument {
  return { Version: "2012-10-17", Statement: [{ Sid: "Ec2AssumeRole", Effect: "Allow", Principal: { Service: "ec2.amazonaws.com" }, Action: "sts:AssumeRole" }] };
}

/** ARN of an AWS managed policy in a partition (`aws`, `aws-us-gov`, `aws-cn`). */
export function awsManagedPolicyArn(partition: string, policyName: string): string {
  return `arn:${partition}:iam::aws:policy/${policyName}`;
}

/** Session Manager access instead of SSH: no port 22, no key pairs, every session logged. */
export const SSM_MANAGED_POLICY = "AmazonSSMManagedInstanceCore";

/**
 * The EBS CSI controller's permissions, maintained by AWS as the driver gains calls
 * (https://github.com/kubernetes-sigs/aws-ebs-csi-driver/blob/master/docs/install.md). Only the
 * controller calls EC2 and it runs on the control plane; the node plugin reads instance metadata.
 */
export const EBS_CSI_MANAGED_POLICY = "service-role/AmazonEBSCSIDriverPolicy";

/**
 * A node role's IAM role and instance profile name, `<cluster>-<region>-<role>`. IAM names are
 * global to the account, so the region keeps one cluster name in two regions apart.
 */
export function nodeRoleName(clusterName: string, region: string, slug: string): string {
  return `${clusterName}-${region}-${slug}`;
}

export interface NodeRolesArgs {
  /** Cluster name: role and instance profile names `<clusterName>-<region>-<role>` (`nodeRoleName`). Required. */
  clusterName: string;
  /** Region of the cluster and its secrets: in the role names, and for `kms:ViaService`. Required. */
  region: string;
  /** Where each role may read its secret from (`SecretReadSource`); the etcd entry only with an etcd secret. Default: anywhere the role's credentials go. */
  secretSource?: {
    vpcId: pulumi.Input<string>;
    natPublicIps: pulumi.Input<string>[];
    privateCidrs: { controlPlane: string[]; worker: string[]; etcd?: string[] };
  };
  /** Each role's bootstrap secret ARN; the etcd role exists only when `etcd` is given. Required. */
  secretArns: { controlPlane: pulumi.Input<string>; worker: pulumi.Input<string>; etcd?: pulumi.Input<string> };
  /** The KMS key encrypting the bootstrap secrets. Required. */
  kmsKeyArn: pulumi.Input<string>;
  /** Extra tags on every AWS resource. Required (may be empty). */
  tags: Record<string, string>;
  /** The cloud-controller-manager policy on the control plane role (config addons.awsCloudControllerManager). Default true. */
  awsCloudControllerManager?: boolean;
  /** AmazonEBSCSIDriverPolicy on the control plane role, where the EBS CSI controller runs (config addons.ebsCsiDriver). Default true. */
  ebsCsiDriver?: boolean;
}

type PerRole<T> = { controlPlane: T; worker: T; etcd?: T };

function validate(args: NodeRolesArgs): void {
  if (!args.clusterName) throw new Error("NodeRoles: clusterName must not be empty");
  if (!REGION.test(args.region)) throw new Error(`NodeRoles: region must be an AWS region name such as eu-west-1 (got ${JSON.stringify(args.region)})`);
  // IAM role and instance profile names are at most 64 characters.
  const longest = nodeRoleName(args.clusterName, args.region, ROLE_SLUGS.controlPlane);
  if (longest.length > 64) throw new Error(`NodeRoles: clusterName ${JSON.stringify(args.clusterName)} makes the role name ${longest} longer than IAM's 64 characters`);
}

/** IAM roles and instance profiles for control plane, worker and (external) etcd machines. */
export class NodeRoles extends pulumi.ComponentResource {
  /** Instance profile name per role, `<clusterName>-<region>-<role>`; `etcd` only with an etcd secret. */
  public readonly instanceProfileNames: PerRole<pulumi.Output<string>>;
  /** Instance profile ARN per role; `etcd` only with an etcd secret. */
  public readonly instanceProfileArns: PerRole<pulumi.Output<string>>;
  /** Role ARN per role; `etcd` only with an etcd secret. */
  public readonly roleArns: PerRole<pulumi.Output<string>>;

  constructor(name: string, args: NodeRolesArgs, opts?: pulumi.ComponentResourceOptions) {
    validate(args);
    super("kubeadm-ha:index:NodeRoles", name, {}, opts);
    const child = { parent: this };
    const region = args.region;
    const partition = aws.getPartitionOutput({}, child).partition;
    const ssmPolicyArn = partition.apply((p) => awsManagedPolicyArn(p, SSM_MANAGED_POLICY));
    const ccm = args.awsCloudControllerManager ?? true;
    const ebsCsi = args.ebsCsiDriver ?? true;

    const extraPolicies: Record<NodeRole, { suffix: string; policyName: string; doc: PolicyDocument } | undefined> = {
      controlPlane: ccm ? { suffix: "cloud-controller-manager", policyName: "cloud-controller-manager", doc: controlPlaneCloudProviderPolicy() } : undefined,
      worker: { suffix: "kubelet", policyName: "kubelet-external-cloud-provider", doc: workerNodePolicy() },
      etcd: undefined,
    };

    const roles: NodeRole[] = args.secretArns.etcd === undefined ? ["controlPlane", "worker"] : ["controlPlane", "worker", "etcd"];
    const src = args.secretSource;
    const sourceOf = (role: NodeRole): pulumi.Output<SecretReadSource | undefined> =>
      src
        ? pulumi.all([src.vpcId, pulumi.all(src.natPublicIps)]).apply(([vpcId, natPublicIps]) => ({ vpcId, natPublicIps, privateCidrs: src.privateCidrs[role] ?? [] }))
        : pulumi.output(undefined);
    const profileNames: Partial<Record<NodeRole, pulumi.Output<string>>> = {};
    const profileArns: Partial<Record<NodeRole, pulumi.Output<string>>> = {};
    const roleArns: Partial<Record<NodeRole, pulumi.Output<string>>> = {};
    for (const nodeRole of roles) {
      const slug = ROLE_SLUGS[nodeRole];
      const awsName = nodeRoleName(args.clusterName, region, slug);
      const tags = clusterTags(args.clusterName, args.tags, awsName);
      const role = new aws.iam.Role(
        `${name}-${slug}`,
        { name: awsName, description: `${args.clusterName}: ${slug} nodes`, assumeRolePolicy: JSON.stringify(ec2AssumeRolePolicy()), tags },
        child,
      );
      new aws.iam.RolePolicyAttachment(`${name}-${slug}-ssm`, { role: role.name, policyArn: ssmPolicyArn }, child);
      if (nodeRole === "controlPlane" && ebsCsi)
        new aws.iam.RolePolicyAttachment(`${name}-${slug}-ebs-csi`, { role: role.name, policyArn: partition.apply((p) => awsManagedPolicyArn(p, EBS_CSI_MANAGED_POLICY)) }, child);
      new aws.iam.RolePolicy(
        `${name}-${slug}-bootstrap-secret`,
        {
          name: "bootstrap-secret-read",
          role: role.id,
          policy: pulumi
            .all([args.secretArns[nodeRole]!, args.kmsKeyArn, sourceOf(nodeRole)])
            .apply(([secretArn, keyArn, source]) => JSON.stringify(secretReadPolicy(secretArn, keyArn, region, source))),
        },
        child,
      );
      const extra = extraPolicies[nodeRole];
      if (extra)
        new aws.iam.RolePolicy(`${name}-${slug}-${extra.suffix}`, { name: extra.policyName, role: role.id, policy: JSON.stringify(extra.doc) }, child);
      const profile = new aws.iam.InstanceProfile(`${name}-${slug}-profile`, { name: awsName, role: role.name, tags }, child);
      profileNames[nodeRole] = profile.name;
      profileArns[nodeRole] = profile.arn;
      roleArns[nodeRole] = role.arn;
    }

    this.instanceProfileNames = profileNames as PerRole<pulumi.Output<string>>;
    this.instanceProfileArns = profileArns as PerRole<pulumi.Output<string>>;
    this.roleArns = roleArns as PerRole<pulumi.Output<string>>;
    this.registerOutputs({ instanceProfileNames: this.instanceProfileNames, instanceProfileArns: this.instanceProfileArns, roleArns: this.roleArns });
  }
}
