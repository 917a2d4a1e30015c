/**
 * A machine whose first boot gives up must not look healthy (cloud-init/scripts/lib.sh
 * report_bootstrap, called by boot.sh however it ends):
 *
 * - A worker marks itself Unhealthy to its auto scaling group (`SetInstanceHealth`), which then
 *   terminates and replaces it. The group's own checks see only EC2 status, which a machine that
 *   never joined passes forever.
 * - A master or external etcd member, which nothing replaces on its own, publishes
 *   `kubeadm-ha/BootstrapFailed` (1 when it gave up, 0 when it succeeded) for its instance, and an
 *   alarm a machine goes to ALARM on 1 and back to OK on 0. Missing data keeps the last state, so
 *   the alarm stays in ALARM until the machine succeeds (`sudo /usr/local/lib/kubeadm-ha/boot.sh`
 *   reruns the bootstrap and reports again) or is replaced.
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { roleNameOfArn } from "./etcdBackup";
import { PolicyDocument } from "./iam";
import { clusterTags } from "./tags";

/** What lib.sh publishes; the alarms read the same. */
export const BOOTSTRAP_METRIC = { namespace: "kubeadm-ha", name: "BootstrapFailed" } as const;

/** A master or external etcd member to watch. */
export interface WatchedInstance {
  /** The instance's Pulumi resource name; its alarm is `${name}-bootstrap`. */
  name: string;
  /** The instance's Name tag (`<cluster>-master-0`); the CloudWatch alarm is `${displayName}-bootstrap`. */
  displayName: string;
  instanceId: pulumi.Input<string>;
}

/**
 * What a worker may do to report a failed bootstrap: mark an instance of one of the cluster's auto
 * scaling groups Unhealthy. SetInstanceHealth has no condition for "itself"; the group's tag limits it
 * to this cluster's pools (https://docs.aws.amazon.com/autoscaling/ec2/userguide/control-access-using-iam.html).
 */
export function workerReportPolicy(clusterName: string): PolicyDocument {
  if (!clusterName) throw new Error("workerReportPolicy: clusterName must not be empty");
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "ReportFailedBootstrap",
        Effect: "Allow",
        Action: "autoscaling:SetInstanceHealth",
        Resource: "*",
        Condition: { StringEquals: { "autoscaling:ResourceTag/kubeadm-ha/cluster": clusterName } },
      },
    ],
  };
}

/** What a master or etcd member may do to report its bootstrap: publish metrics in kubeadm-ha's namespace only. */
export function fixedMachineReportPolicy(): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "ReportBootstrapOutcome",
        Effect: "Allow",
        Action: "cloudwatch:PutMetricData",
        // PutMetricData has no resource type; the namespace condition is its only scope.
        Resource: "*",
        Condition: { StringEquals: { "cloudwatch:namespace": BOOTSTRAP_METRIC.namespace } },
      },
    ],
  };
}

/** The alarm of one watched machine: resource name and arguments. */
export function bootstrapAlarmArgs(clusterName: string, instance: WatchedInstance, tags: Record<string, string>): { name: string; args: aws.cloudwatch.MetricAlarmArgs } {
  const alarmName = `${instance.displayName}-bootstrap`;
  return {
    name: `${instance.name}-bootstrap`,
    args: {
      name: alarmName,
      alarmDescription: `${clusterName}: ${instance.displayName}'s first boot gave up; see kubeadm-ha[...] lines in its /var/log/cloud-init-output.log.`,
      namespace: BOOTSTRAP_METRIC.namespace,
      metricName: BOOTSTRAP_METRIC.name,
      dimensions: { InstanceId: instance.instanceId },
      statistic: "Maximum",
      period: 60,
      evaluationPeriods: 1,
      threshold: 1,
      comparisonOperator: "GreaterThanOrEqualToThreshold",
      // One data point a boot: without data the alarm keeps its state, so a failure stays visible.
      treatMissingData: "ignore",
      tags: clusterTags(clusterName, tags, alarmName),
    },
  };
}

export interface BootstrapHealthArgs {
  /** Cluster name: alarm descriptions, tags, and the scope of the workers' permission. Required. */
  clusterName: string;
  /** The masters and external etcd members. Required. */
  instances: WatchedInstance[];
  /** The worker role, allowed to mark its pools' instances Unhealthy. Required. */
  workerRoleArn: pulumi.Input<string>;
  /** The roles of the masters and external etcd members, allowed to publish the metric. Required. */
  fixedRoleArns: pulumi.Input<string>[];
  /** Extra tags on every alarm. Required (may be empty). */
  tags: Record<string, string>;
}

/** The report permissions of every node role and an alarm a master or etcd member. */
export class BootstrapHealth extends pulumi.ComponentResource {
  /** CloudWatch alarm names, in instance order. */
  public readonly alarmNames: string[];

  constructor(name: string, args: BootstrapHealthArgs, opts?: pulumi.ComponentResourceOptions) {
    const names = args.instances.map((i) => i.displayName);
    if (new Set(names).size !== names.length) throw new Error(`BootstrapHealth: instance display names must be distinct (got ${JSON.stringify(names)})`);
    const workerPolicy = JSON.stringify(workerReportPolicy(args.clusterName));
    super("kubeadm-ha:index:BootstrapHealth", name, {}, opts);
    const child = { parent: this };
    new aws.iam.RolePolicy(`${name}-worker`, { name: "bootstrap-report", role: pulumi.output(args.workerRoleArn).apply(roleNameOfArn), policy: workerPolicy }, child);
    args.fixedRoleArns.forEach(
      (arn, i) =>
        new aws.iam.RolePolicy(
          `${name}-fixed-${i}`,
          { name: "bootstrap-report", role: pulumi.output(arn).apply(roleNameOfArn), policy: JSON.stringify(fixedMachineReportPolicy()) },
          child,
        ),
    );
    const specs = args.instances.map((i) => bootstrapAlarmArgs(args.clusterName, i, args.tags));
    for (const s of specs) new aws.cloudwatch.MetricAlarm(s.name, s.args, child);
    this.alarmNames = specs.map((s) => s.args.name as string);
    this.registerOutputs({ alarmNames: this.alarmNames });
  }
}
