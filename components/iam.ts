/**
 * One IAM role and instance profile per node role, each able to read only its own bootstrap
 * secret (components/secrets.ts), plus what the AWS cloud provider, the EBS CSI controller, the
 * cluster-autoscaler and aws-node-termination-handler need on the control plane role (where they
 * run), and what a worker needs to report its own readiness to its auto scaling group.
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
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
 * Read one bootstrap secret and nothing else. Decrypt is allowed only when Secrets Manager calls
 * KMS on the role's behalf (`kms:ViaService`) for that very secret (Secrets Manager puts the
 * secret's ARN in the encryption context), so the key cannot decrypt another role's secret.
 */
export function secretReadPolicy(secretArn: string, kmsKeyArn: string, region: string): PolicyDocument {
  const secret = SECRET_ARN.exec(secretArn);
  if (!secret) throw new Error(`secretReadPolicy: secretArn must be a Secrets Manager secret ARN (got ${JSON.stringify(secretArn)})`);
  // An alias ARN here would grant nothing: IAM authorizes KMS calls against the key's ARN.
  const key = KMS_KEY_ARN.exec(kmsKeyArn);
  if (!key) throw new Error(`secretReadPolicy: kmsKeyArn must be a KMS key ARN, not an alias (got ${JSON.stringify(kmsKeyArn)})`);
  if (!REGION.test(region)) throw new Error(`secretReadPolicy: region must be an AWS region name such as eu-west-1 (got ${JSON.stringify(region)})`);
  if (secret[1] !== region) throw new Error(`secretReadPolicy: secretArn is in ${secret[1]}, not ${region}; kms:ViaService would never match`);
  if (key[1] !== region) throw new Error(`secretReadPolicy: kmsKeyArn is in ${key[1]}, not ${region}; Secrets Manager uses a key of its own region`);
  return {
    Version: "2012-10-17",
    Statement: [
      { Sid: "ReadOwnBootstrapSecret", Effect: "Allow", Action: "secretsmanager:GetSecretValue", Resource: secretArn },
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
 * The masters keep a valid join token in the workers' secret (cloud-init/scripts/token-rotate.sh):
 * read it, and put a new version, with the key used only through Secrets Manager for that very
 * secret (a new version is encrypted under a data key Secrets Manager asks KMS for). Nothing else:
 * not the secret's policy, not other secrets.
 */
export function joinTokenRotationPolicy(workerSecretArn: string, kmsKeyArn: string, region: string): PolicyDocument {
  const read = secretReadPolicy(workerSecretArn, kmsKeyArn, region);
  return {
    Version: "2012-10-17",
    Statement: [
      { Sid: "RotateWorkerJoinToken", Effect: "Allow", Action: ["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"], Resource: workerSecretArn },
      { ...read.Statement[1], Sid: "EncryptWorkerJoinToken", Action: ["kms:Decrypt", "kms:GenerateDataKey"] },
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

const SQS_QUEUE_ARN = /^arn:aws[a-z-]*:sqs:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,80}$/;

/** The condition that confines an Auto Scaling action to the cluster's own groups, by the tag every pool's group carries (components/tags.ts). */
function ownGroups(clusterName: string): Record<string, Record<string, string>> {
  return { StringEquals: { "autoscaling:ResourceTag/kubeadm-ha/cluster": clusterName } };
}

/**
 * aws-node-termination-handler in queue mode, on the control plane role. The calls are those of
 * its v1.25.6 code (pkg/monitor/sqsevent: ReceiveMessage and DeleteMessage on the queue,
 * DescribeInstances for the node name and tags, CompleteLifecycleAction once drained); the README
 * also lists DescribeAutoScalingInstances and DescribeTags, which that code no longer calls.
 * RecordLifecycleActionHeartbeat is left out with heartbeats (the hook timeout bounds a drain).
 * The queue is the cluster's own, and lifecycle actions only those of the cluster's groups.
 */
export function nodeTerminationHandlerPolicy(clusterName: string, queueArn: string): PolicyDocument {
  if (!SQS_QUEUE_ARN.test(queueArn)) throw new Error(`nodeTerminationHandlerPolicy: queueArn must be an SQS queue ARN (got ${JSON.stringify(queueArn)})`);
  return {
    Version: "2012-10-17",
    Statement: [
      { Sid: "ReadTerminationQueue", Effect: "Allow", Action: ["sqs:ReceiveMessage", "sqs:DeleteMessage"], Resource: queueArn },
      // DescribeInstances supports no resource scoping.
      { Sid: "DescribeInstances", Effect: "Allow", Action: "ec2:DescribeInstances", Resource: "*" },
      { Sid: "CompleteDrainedTermination", Effect: "Allow", Action: "autoscaling:CompleteLifecycleAction", Resource: "*", Condition: ownGroups(clusterName) },
    ],
  };
}

/**
 * The cluster-autoscaler with auto-discovery, on the control plane role: the read actions of the
 * "Full Cluster Autoscaler Features Policy" (kubernetes/autoscaler
 * cluster-autoscaler/cloudprovider/aws/README.md) without eks:DescribeNodegroup (no EKS node
 * groups here) and ec2:DescribeImages and ec2:GetInstanceTypesFromInstanceRequirements (called
 * only for attribute-based instance requirements, aws_wrapper.go; pools list their types). The
 * two writes are confined, as that README recommends, by tag: only groups with
 * `autoscaling.enabled` carry `k8s.io/cluster-autoscaler/<cluster>: owned`.
 */
export function clusterAutoscalerPolicy(clusterName: string): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "DiscoverGroups",
        Effect: "Allow",
        Action: [
          "autoscaling:DescribeAutoScalingGroups",
          "autoscaling:DescribeAutoScalingInstances",
          "autoscaling:DescribeLaunchConfigurations",
          "autoscaling:DescribeScalingActivities",
          "ec2:DescribeInstanceTypes",
          "ec2:DescribeLaunchTemplateVersions",
        ],
        Resource: "*",
      },
      {
        Sid: "ScaleOwnGroups",
        Effect: "Allow",
        Action: ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"],
        Resource: "*",
        Condition: { StringEquals: { [`autoscaling:ResourceTag/k8s.io/cluster-autoscaler/${clusterName}`]: "owned" } },
      },
    ],
  };
}

/**
 * A worker's report on itself (cloud-init/scripts/node-ready.sh): which group and lifecycle state
 * it is in, then CONTINUE or ABANDON on its launch lifecycle action, or Unhealthy when it is
 * already in service. IAM cannot confine these to the caller's own instance, only to the
 * cluster's groups: a worker could complete another machine's lifecycle action or mark it
 * unhealthy. It can read the join token already, so this adds little to what a compromised
 * worker can do; the group replaces what it marks, after draining it.
 */
export function workerLaunchHookPolicy(clusterName: string): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [
      { Sid: "FindOwnGroup", Effect: "Allow", Action: "autoscaling:DescribeAutoScalingInstances", Resource: "*" },
      {
        Sid: "ReportReadiness",
        Effect: "Allow",
        Action: ["autoscaling:CompleteLifecycleAction", "autoscaling:SetInstanceHealth"],
        Resource: "*",
        Condition: ownGroups(clusterName),
      },
    ],
  };
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

export interface NodeRolesArgs {
  /** Cluster name: role and instance profile names `<clusterName>-<role>`. Required. */
  clusterName: string;
  /** Each role's bootstrap secret ARN; the etcd role exists only when `etcd` is given. Required. */
  secretArns: { controlPlane: pulumi.Input<string>; worker: pulumi.Input<string>; etcd?: pulumi.Input<string> };
  /** The KMS key encrypting the bootstrap secrets. Required. */
  kmsKeyArn: pulumi.Input<string>;
  /** Extra tags on every AWS resource. Required (may be empty). */
  tags: Record<string, string>;
  /** Region of the secrets, for `kms:ViaService`. Default: the provider's region. */
  region?: pulumi.Input<string>;
  /** The cloud-controller-manager policy on the control plane role (config addons.awsCloudControllerManager). Default true. */
  awsCloudControllerManager?: boolean;
  /** AmazonEBSCSIDriverPolicy on the control plane role, where the EBS CSI controller runs (config addons.ebsCsiDriver). Default true. */
  ebsCsiDriver?: boolean;
  /** The cluster-autoscaler's policy on the control plane role (config addons.clusterAutoscaler). Default false. */
  clusterAutoscaler?: boolean;
  /** The termination queue's ARN: aws-node-termination-handler's policy on the control plane role (config addons.nodeTerminationHandler). Default none. */
  terminationQueueArn?: pulumi.Input<string>;
  /** Workers may report their readiness to their group's launch lifecycle hook (components/workerPool.ts). Default false. */
  workerLaunchHook?: boolean;
}

type PerRole<T> = { controlPlane: T; worker: T; etcd?: T };

function validate(args: NodeRolesArgs): void {
  if (!args.clusterName) throw new Error("NodeRoles: clusterName must not be empty");
  // IAM role and instance profile names are at most 64 characters.
  const longest = `${args.clusterName}-${ROLE_SLUGS.controlPlane}`;
  if (longest.length > 64) throw new Error(`NodeRoles: clusterName ${JSON.stringify(args.clusterName)} makes the role name ${longest} longer than IAM's 64 characters`);
}

/** IAM roles and instance profiles for control plane, worker and (external) etcd machines. */
export class NodeRoles extends pulumi.ComponentResource {
  /** Instance profile name per role, `<clusterName>-<role>`; `etcd` only with an etcd secret. */
  public readonly instanceProfileNames: PerRole<pulumi.Output<string>>;
  /** Instance profile ARN per role; `etcd` only with an etcd secret. */
  public readonly instanceProfileArns: PerRole<pulumi.Output<string>>;
  /** Role ARN per role; `etcd` only with an etcd secret. */
  public readonly roleArns: PerRole<pulumi.Output<string>>;

  constructor(name: string, args: NodeRolesArgs, opts?: pulumi.ComponentResourceOptions) {
    validate(args);
    super("kubeadm-ha:index:NodeRoles", name, {}, opts);
    const child = { parent: this };
    const region = args.region ?? aws.getRegionOutput({}, child).region;
    const partition = aws.getPartitionOutput({}, child).partition;
    const ssmPolicyArn = partition.apply((p) => awsManagedPolicyArn(p, SSM_MANAGED_POLICY));
    const ccm = args.awsCloudControllerManager ?? true;
    const ebsCsi = args.ebsCsiDriver ?? true;

    type Extra = { suffix: string; policyName: string; doc: pulumi.Input<string> };
    const queueArn = args.terminationQueueArn;
    const extraPolicies: Record<NodeRole, Extra[]> = {
      controlPlane: [
        {
          suffix: "join-token-rotation",
          policyName: "join-token-rotation",
          doc: pulumi.all([args.secretArns.worker, args.kmsKeyArn, region]).apply(([w, k, r]) => JSON.stringify(joinTokenRotationPolicy(w, k, r))),
        },
        ...(ccm ? [{ suffix: "cloud-controller-manager", policyName: "cloud-controller-manager", doc: JSON.stringify(controlPlaneCloudProviderPolicy()) }] : []),
        ...(args.clusterAutoscaler ? [{ suffix: "cluster-autoscaler", policyName: "cluster-autoscaler", doc: JSON.stringify(clusterAutoscalerPolicy(args.clusterName)) }] : []),
        ...(queueArn !== undefined
          ? [{ suffix: "node-termination-handler", policyName: "node-termination-handler", doc: pulumi.output(queueArn).apply((arn) => JSON.stringify(nodeTerminationHandlerPolicy(args.clusterName, arn))) }]
          : []),
      ],
      worker: [
        { suffix: "kubelet", policyName: "kubelet-external-cloud-provider", doc: JSON.stringify(workerNodePolicy()) },
        ...(args.workerLaunchHook ? [{ suffix: "launch-hook", policyName: "launch-hook", doc: JSON.stringify(workerLaunchHookPolicy(args.clusterName)) }] : []),
      ],
      etcd: [],
    };

    const roles: NodeRole[] = args.secretArns.etcd === undefined ? ["controlPlane", "worker"] : ["controlPlane", "worker", "etcd"];
    const profileNames: Partial<Record<NodeRole, pulumi.Output<string>>> = {};
    const profileArns: Partial<Record<NodeRole, pulumi.Output<string>>> = {};
    const roleArns: Partial<Record<NodeRole, pulumi.Output<string>>> = {};
    for (const nodeRole of roles) {
      const slug = ROLE_SLUGS[nodeRole];
      const awsName = `${args.clusterName}-${slug}`;
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
            .all([args.secretArns[nodeRole]!, args.kmsKeyArn, region])
            .apply(([secretArn, keyArn, r]) => JSON.stringify(secretReadPolicy(secretArn, keyArn, r))),
        },
        child,
      );
      for (const extra of extraPolicies[nodeRole])
        new aws.iam.RolePolicy(`${name}-${slug}-${extra.suffix}`, { name: extra.policyName, role: role.id, policy: extra.doc }, child);
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
