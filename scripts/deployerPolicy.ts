/**
 * The IAM policy of the identity that runs `pulumi up` and `pulumi destroy`: docs/deployer-iam-policy.json,
 * generated from DEPLOYER_ACTIONS by `npm run docs:iam -- --write` (a test fails when they disagree,
 * and when a resource type the program registers has no entry or an entry's type is never registered).
 *
 * A starting point, verified only against the list of resource types the program registers (the
 * offline render): the actions are those the AWS provider (Terraform's, under @pulumi/aws) calls to
 * create, read, update and delete each type, as its resource documentation and the services'
 * authorization references describe them, not measured against a real account. Reads use the
 * services' Describe/List/Get wildcards: the provider's refresh of one resource calls many of them.
 */
import * as fs from "fs";
import * as path from "path";

/** Actions a type needs beyond the read wildcards of READS. */
export const DEPLOYER_ACTIONS: Record<string, string[]> = {
  "aws:autoscaling/group:Group": [
    "autoscaling:CreateAutoScalingGroup", "autoscaling:UpdateAutoScalingGroup", "autoscaling:DeleteAutoScalingGroup",
    "autoscaling:CreateOrUpdateTags", "autoscaling:DeleteTags", "autoscaling:StartInstanceRefresh", "autoscaling:CancelInstanceRefresh",
    "autoscaling:SetInstanceProtection", "autoscaling:SuspendProcesses", "autoscaling:ResumeProcesses",
    // A group launching from a template checks that its creator may launch it (and pass its role).
    "ec2:RunInstances", "ec2:CreateTags", "iam:PassRole",
  ],
  "aws:autoscaling/lifecycleHook:LifecycleHook": ["autoscaling:PutLifecycleHook", "autoscaling:DeleteLifecycleHook"],
  "aws:cloudwatch/eventRule:EventRule": ["events:PutRule", "events:DeleteRule", "events:EnableRule", "events:DisableRule", "events:TagResource", "events:UntagResource"],
  "aws:cloudwatch/eventTarget:EventTarget": ["events:PutTargets", "events:RemoveTargets"],
  "aws:cloudwatch/metricAlarm:MetricAlarm": ["cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms", "cloudwatch:TagResource", "cloudwatch:UntagResource", "cloudwatch:ListTagsForResource"],
  "aws:ec2/eip:Eip": ["ec2:AllocateAddress", "ec2:ReleaseAddress", "ec2:DisassociateAddress", "ec2:CreateTags", "ec2:DeleteTags"],
  "aws:ec2/instance:Instance": [
    "ec2:RunInstances", "ec2:TerminateInstances", "ec2:StartInstances", "ec2:StopInstances", "ec2:ModifyInstanceAttribute",
    "ec2:ModifyInstanceMetadataOptions", "ec2:ModifyInstanceCreditSpecification", "ec2:CreateTags", "ec2:DeleteTags", "iam:PassRole",
  ],
  "aws:ec2/internetGateway:InternetGateway": ["ec2:CreateInternetGateway", "ec2:DeleteInternetGateway", "ec2:AttachInternetGateway", "ec2:DetachInternetGateway", "ec2:CreateTags", "ec2:DeleteTags"],
  "aws:ec2/launchTemplate:LaunchTemplate": ["ec2:CreateLaunchTemplate", "ec2:CreateLaunchTemplateVersion", "ec2:ModifyLaunchTemplate", "ec2:DeleteLaunchTemplate", "ec2:CreateTags", "ec2:DeleteTags"],
  "aws:ec2/natGateway:NatGateway": ["ec2:CreateNatGateway", "ec2:DeleteNatGateway", "ec2:CreateTags", "ec2:DeleteTags"],
  "aws:ec2/route:Route": ["ec2:CreateRoute", "ec2:ReplaceRoute", "ec2:DeleteRoute"],
  "aws:ec2/routeTable:RouteTable": ["ec2:CreateRouteTable", "ec2:DeleteRouteTable", "ec2:CreateTags", "ec2:DeleteTags"],
  "aws:ec2/routeTableAssociation:RouteTableAssociation": ["ec2:AssociateRouteTable", "ec2:ReplaceRouteTableAssociation", "ec2:DisassociateRouteTable"],
  // The provider removes the default allow-all egress rule of a new group.
  "aws:ec2/securityGroup:SecurityGroup": ["ec2:CreateSecurityGroup", "ec2:DeleteSecurityGroup", "ec2:RevokeSecurityGroupEgress", "ec2:RevokeSecurityGroupIngress", "ec2:CreateTags", "ec2:DeleteTags"],
  "aws:ec2/subnet:Subnet": ["ec2:CreateSubnet", "ec2:DeleteSubnet", "ec2:ModifySubnetAttribute", "ec2:CreateTags", "ec2:DeleteTags"],
  "aws:ec2/vpc:Vpc": ["ec2:CreateVpc", "ec2:DeleteVpc", "ec2:ModifyVpcAttribute", "ec2:CreateTags", "ec2:DeleteTags"],
  "aws:ec2/vpcEndpoint:VpcEndpoint": ["ec2:CreateVpcEndpoint", "ec2:ModifyVpcEndpoint", "ec2:DeleteVpcEndpoints", "ec2:CreateTags", "ec2:DeleteTags"],
  "aws:iam/instanceProfile:InstanceProfile": [
    "iam:CreateInstanceProfile", "iam:DeleteInstanceProfile", "iam:AddRoleToInstanceProfile", "iam:RemoveRoleFromInstanceProfile",
    "iam:TagInstanceProfile", "iam:UntagInstanceProfile", "iam:PassRole",
  ],
  "aws:iam/role:Role": ["iam:CreateRole", "iam:DeleteRole", "iam:UpdateRole", "iam:UpdateRoleDescription", "iam:UpdateAssumeRolePolicy", "iam:TagRole", "iam:UntagRole"],
  "aws:iam/rolePolicy:RolePolicy": ["iam:PutRolePolicy", "iam:DeleteRolePolicy"],
  "aws:iam/rolePolicyAttachment:RolePolicyAttachment": ["iam:AttachRolePolicy", "iam:DetachRolePolicy"],
  "aws:kms/alias:Alias": ["kms:CreateAlias", "kms:UpdateAlias", "kms:DeleteAlias"],
  "aws:kms/key:Key": [
    "kms:CreateKey", "kms:EnableKeyRotation", "kms:DisableKeyRotation", "kms:UpdateKeyDescription", "kms:PutKeyPolicy",
    "kms:ScheduleKeyDeletion", "kms:TagResource", "kms:UntagResource",
  ],
  "aws:lb/listener:Listener": ["elasticloadbalancing:CreateListener", "elasticloadbalancing:ModifyListener", "elasticloadbalancing:DeleteListener", "elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"],
  "aws:lb/loadBalancer:LoadBalancer": [
    "elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:DeleteLoadBalancer", "elasticloadbalancing:ModifyLoadBalancerAttributes",
    "elasticloadbalancing:SetSecurityGroups", "elasticloadbalancing:SetSubnets", "elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags",
  ],
  "aws:lb/targetGroup:TargetGroup": [
    "elasticloadbalancing:CreateTargetGroup", "elasticloadbalancing:ModifyTargetGroup", "elasticloadbalancing:ModifyTargetGroupAttributes",
    "elasticloadbalancing:DeleteTargetGroup", "elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags",
  ],
  "aws:lb/targetGroupAttachment:TargetGroupAttachment": ["elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"],
  // forceDestroy (the bootstrap bucket) deletes every object version before the bucket.
  "aws:s3/bucket:Bucket": ["s3:CreateBucket", "s3:DeleteBucket", "s3:PutBucketTagging", "s3:ListBucketVersions", "s3:DeleteObject", "s3:DeleteObjectVersion"],
  "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": ["s3:PutLifecycleConfiguration"],
  "aws:s3/bucketObjectv2:BucketObjectv2": ["s3:PutObject", "s3:PutObjectTagging", "s3:DeleteObject"],
  "aws:s3/bucketOwnershipControls:BucketOwnershipControls": ["s3:PutBucketOwnershipControls"],
  "aws:s3/bucketPolicy:BucketPolicy": ["s3:PutBucketPolicy", "s3:DeleteBucketPolicy"],
  // Deleting the block is s3:PutBucketPublicAccessBlock too.
  "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": ["s3:PutBucketPublicAccessBlock"],
  "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": ["s3:PutEncryptionConfiguration"],
  "aws:s3/bucketVersioning:BucketVersioning": ["s3:PutBucketVersioning"],
  // A secret under a customer managed key: storing and reading back its value uses the key.
  "aws:secretsmanager/secret:Secret": ["secretsmanager:CreateSecret", "secretsmanager:UpdateSecret", "secretsmanager:DeleteSecret", "secretsmanager:TagResource", "secretsmanager:UntagResource"],
  "aws:secretsmanager/secretVersion:SecretVersion": ["secretsmanager:PutSecretValue", "secretsmanager:UpdateSecretVersionStage", "kms:GenerateDataKey", "kms:Decrypt"],
  "aws:ssm/parameter:Parameter": [
    "ssm:PutParameter", "ssm:DeleteParameter", "ssm:GetParameter", "ssm:GetParameters", "ssm:DescribeParameters",
    "ssm:AddTagsToResource", "ssm:RemoveTagsFromResource", "ssm:ListTagsForResource",
  ],
  "aws:sqs/queue:Queue": ["sqs:CreateQueue", "sqs:DeleteQueue", "sqs:SetQueueAttributes", "sqs:TagQueue", "sqs:UntagQueue"],
  "aws:sqs/queuePolicy:QueuePolicy": ["sqs:SetQueueAttributes"],
  "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": [
    "ec2:AuthorizeSecurityGroupEgress", "ec2:RevokeSecurityGroupEgress", "ec2:ModifySecurityGroupRules", "ec2:UpdateSecurityGroupRuleDescriptionsEgress", "ec2:CreateTags", "ec2:DeleteTags",
  ],
  "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": [
    "ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress", "ec2:ModifySecurityGroupRules", "ec2:UpdateSecurityGroupRuleDescriptionsIngress", "ec2:CreateTags", "ec2:DeleteTags",
  ],
};

/** The data sources the program calls: the AMI lookup (aws.getRegion, getPartition and getCallerIdentity need no permission). */
export const INVOKE_ACTIONS: Record<string, string[]> = { "aws:ec2/getAmi:getAmi": ["ec2:DescribeImages"] };

/**
 * What the day-2 rollout calls from the machine running `pulumi up` (day2/rollout.ts): SSM Run
 * Command on the masters and etcd members, through the dynamic providers rather than a resource type.
 */
export const ROLLOUT_ACTIONS = ["ssm:DescribeInstanceInformation", "ssm:GetCommandInvocation", "ssm:SendCommand"];

/** Every read the provider's refresh may make, by service. */
export const READS = [
  "autoscaling:Describe*", "cloudwatch:DescribeAlarms", "ec2:Describe*", "elasticloadbalancing:Describe*",
  "iam:GetInstanceProfile", "iam:GetRole", "iam:GetRolePolicy", "iam:ListAttachedRolePolicies", "iam:ListInstanceProfilesForRole", "iam:ListRolePolicies",
  "kms:DescribeKey", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus", "kms:ListAliases", "kms:ListResourceTags",
  "s3:GetAccelerateConfiguration", "s3:GetBucket*", "s3:GetEncryptionConfiguration", "s3:GetLifecycleConfiguration", "s3:GetObject",
  "s3:GetObjectTagging", "s3:GetReplicationConfiguration", "s3:ListBucket",
  "secretsmanager:DescribeSecret", "secretsmanager:GetResourcePolicy", "secretsmanager:GetSecretValue",
  "events:DescribeRule", "events:ListTagsForResource", "events:ListTargetsByRule",
  "sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:ListQueueTags",
];

/**
 * Service-linked roles AWS creates on first use in an account: the NLB's, Auto Scaling's, Spot's,
 * and CloudWatch's for alarm actions on EC2 (README, Automatic recovery).
 */
export const SERVICE_LINKED_ROLES = ["autoscaling.amazonaws.com", "elasticloadbalancing.amazonaws.com", "events.amazonaws.com", "spot.amazonaws.com"];

export interface PolicyDocument {
  Version: "2012-10-17";
  Statement: Array<{ Sid: string; Effect: "Allow"; Action: string[]; Resource: "*"; Condition?: Record<string, Record<string, string | string[]>> }>;
}

/** The deployer's policy for these registered resource types and invoked data sources. */
export function deployerPolicy(types: string[], invokes: string[] = Object.keys(INVOKE_ACTIONS)): PolicyDocument {
  const missing = [...types.filter((t) => !(t in DEPLOYER_ACTIONS)), ...invokes.filter((t) => !(t in INVOKE_ACTIONS))];
  if (missing.length) throw new Error(`no deployer actions for ${missing.join(", ")}: add them to DEPLOYER_ACTIONS in scripts/deployerPolicy.ts`);
  const all = new Set([...types.flatMap((t) => DEPLOYER_ACTIONS[t]), ...invokes.flatMap((t) => INVOKE_ACTIONS[t]), ...READS, ...ROLLOUT_ACTIONS]);
  // Passing a role is only ever to EC2 (instance profiles), and is a statement of its own.
  all.delete("iam:PassRole");
  return {
    Version: "2012-10-17",
    Statement: [
      // One statement for every service: IAM's 6,144-character limit for a managed policy counts
      // each statement's Sid, Effect and Resource, and a statement per service no longer fit.
      { Sid: "ManageTheClustersResources", Effect: "Allow", Action: [...all].sort(), Resource: "*" },
      { Sid: "PassNodeRolesToEc2", Effect: "Allow", Action: ["iam:PassRole"], Resource: "*", Condition: { StringEquals: { "iam:PassedToService": "ec2.amazonaws.com" } } },
      { Sid: "ServiceLinkedRoles", Effect: "Allow", Action: ["iam:CreateServiceLinkedRole"], Resource: "*", Condition: { StringEquals: { "iam:AWSServiceName": SERVICE_LINKED_ROLES } } },
    ],
  };
}

export const POLICY_FILE = path.join(__dirname, "..", "docs", "deployer-iam-policy.json");

/** The file's text for these types. */
export function policyFile(types: string[]): string {
  return JSON.stringify(deployerPolicy(types), null, 2) + "\n";
}

/** The AWS resource types of every rendered stack (resources.md), sorted. */
export function renderedAwsTypes(resourcesMd: string[]): string[] {
  return [...new Set(resourcesMd.flatMap((md) => [...md.matchAll(/^\| `(aws:[^`]+)` \|/gm)].map((m) => m[1])))].sort();
}

if (require.main === module) {
  // `npm run docs:iam [-- --write]`: from the renders in out/ (npm run render -- dev, -- prod first).
  const root = path.join(__dirname, "..");
  const stacks = fs.readdirSync(root).filter((f) => /^Pulumi\.[^.]+\.yaml$/.test(f)).map((f) => f.split(".")[1]);
  const mds = stacks.map((s) => {
    const f = path.join(root, "out", s, "resources.md");
    if (!fs.existsSync(f)) throw new Error(`${f} is missing: npm run render -- ${s} first`);
    return fs.readFileSync(f, "utf8");
  });
  const text = policyFile(renderedAwsTypes(mds));
  if (process.argv.includes("--write")) {
    fs.writeFileSync(POLICY_FILE, text);
    console.log(`wrote ${path.relative(process.cwd(), POLICY_FILE)}`);
  } else process.stdout.write(text);
}
