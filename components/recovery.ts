/**
 * CloudWatch action based recovery of the machines that hold the cluster's state (masters, external
 * etcd members): fixed-address single instances that no auto scaling group replaces.
 *
 * - `StatusCheckFailed_System` -> `ec2:recover`: AWS moves the instance to another host and it comes
 *   back as the same instance (id, private IP, EBS volumes, metadata, zone), so etcd membership and
 *   node name survive; to the OS it is an unplanned reboot.
 *   https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/cloudwatch-recovery.html
 * - `StatusCheckFailed_Instance` -> `ec2:reboot`: the host is fine but the OS is unreachable (kernel
 *   panic, hung kernel, out of memory). Recovery cannot act on this metric (CloudWatch allows
 *   `recover` on any per-instance metric except `StatusCheckFailed_Instance`), and a reboot is what
 *   an operator would try first. An alarm acts only when it changes state: an OS that stays broken
 *   keeps the alarm in ALARM and is rebooted once, not over and over.
 *   https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/UsingAlarmActions.html
 *
 * EC2's simplified automatic recovery is on by default for supported instance types and reacts to
 * the same system check; these alarms add one-minute granularity and explicit, reviewable state,
 * and cover the instance check, which simplified recovery never acts on.
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { clusterTags } from "./tags";

/** The EC2 alarm actions used here. */
export type RecoveryAction = "recover" | "reboot";

/** Status check metrics are published every minute at no charge, with or without detailed monitoring. */
export const STATUS_CHECK_PERIOD_SECONDS = 60;

/** One alarm per failure kind: which check, what to do, after how many failed minutes. */
export const RECOVERY_ALARMS: ReadonlyArray<{ suffix: RecoveryAction; metricName: string; action: RecoveryAction; evaluationPeriods: number; why: string }> = [
  {
    suffix: "recover",
    metricName: "StatusCheckFailed_System",
    action: "recover",
    // Two failed minutes: a host fault does not heal by waiting, and recovery keeps the instance whole.
    evaluationPeriods: 2,
    why: "the EC2 host failed its system status check",
  },
  {
    suffix: "reboot",
    metricName: "StatusCheckFailed_Instance",
    action: "reboot",
    // One minute more than recovery: a reboot drops whatever the OS was doing, so give a busy kernel a chance.
    evaluationPeriods: 3,
    why: "the operating system failed its instance status check",
  },
];

const REGION = /^[a-z]{2}(-[a-z]+)+-\d+$/;
const PARTITION = /^aws(-[a-z]+)*$/;

/** `arn:<partition>:automate:<region>:ec2:<action>`, the alarm action that makes EC2 act on the alarm's instance. */
export function recoveryActionArn(partition: string, region: string, action: RecoveryAction): string {
  if (!PARTITION.test(partition)) throw new Error(`recoveryActionArn: partition must look like aws, aws-cn or aws-us-gov (got ${JSON.stringify(partition)})`);
  if (!REGION.test(region)) throw new Error(`recoveryActionArn: region must look like eu-west-1 (got ${JSON.stringify(region)})`);
  return `arn:${partition}:automate:${region}:ec2:${action}`;
}

/** A machine to watch. */
export interface RecoveredInstance {
  /** The instance's Pulumi resource name; alarms are its children-by-name, `${name}-recover` and `${name}-reboot`. */
  name: string;
  /** The instance's Name tag (`<cluster>-master-0`); CloudWatch alarm names are `${displayName}-recover` etc., unique per account and region. */
  displayName: string;
  instanceId: pulumi.Input<string>;
}

export interface RecoveryAlarmValues {
  clusterName: string;
  region: string;
  /** `aws`, `aws-cn`, `aws-us-gov`...: an Output when it comes from `aws.getPartitionOutput`. */
  partition: pulumi.Input<string>;
  /** Also reboot the instance when its instance status check fails. */
  rebootOnInstanceFailure: boolean;
  tags: Record<string, string>;
}

/** The alarms of one instance: resource name and arguments. Pure; Outputs in give Outputs in the same places. */
export function recoveryAlarmArgs(v: RecoveryAlarmValues, instance: RecoveredInstance): Array<{ name: string; args: aws.cloudwatch.MetricAlarmArgs }> {
  const arn = (action: RecoveryAction): pulumi.Input<string> =>
    typeof v.partition === "string"
      ? recoveryActionArn(v.partition, v.region, action)
      : pulumi.output(v.partition).apply((p) => recoveryActionArn(p, v.region, action));
  return RECOVERY_ALARMS.filter((a) => a.action === "recover" || v.rebootOnInstanceFailure).map((a) => {
    const alarmName = `${instance.displayName}-${a.suffix}`;
    return {
      name: `${instance.name}-${a.suffix}`,
      args: {
        name: alarmName,
        alarmDescription: `${v.clusterName}: EC2 ${a.action}s ${instance.displayName} when ${a.why} for ${a.evaluationPeriods} minutes in a row.`,
        namespace: "AWS/EC2",
        metricName: a.metricName,
        dimensions: { InstanceId: instance.instanceId },
        statistic: "Maximum",
        period: STATUS_CHECK_PERIOD_SECONDS,
        evaluationPeriods: a.evaluationPeriods,
        threshold: 1,
        comparisonOperator: "GreaterThanOrEqualToThreshold",
        // AWS's advice for alarms with EC2 actions: EC2 metrics can briefly miss data points on a
        // healthy instance, so missing data must never count as a failure.
        treatMissingData: "missing",
        alarmActions: [arn(a.action)],
        tags: clusterTags(v.clusterName, v.tags, alarmName),
      },
    };
  });
}

export interface RecoveryAlarmsArgs {
  /** Cluster name: descriptions and tags. Required. */
  clusterName: string;
  /** AWS region of the instances, part of the action ARN. Required. */
  region: string;
  /** The masters and external etcd members. Required (may be empty). */
  instances: RecoveredInstance[];
  /** Also reboot an instance whose instance status check fails. Default true. */
  rebootOnInstanceFailure?: boolean;
  /** Extra tags on every alarm. Required (may be empty). */
  tags: Record<string, string>;
}

/** Status check alarms that recover (host failure) or reboot (OS failure) each given instance. */
export class RecoveryAlarms extends pulumi.ComponentResource {
  /** Every alarm, in instance order, `recover` before `reboot`. */
  public readonly alarms: aws.cloudwatch.MetricAlarm[];
  /** CloudWatch alarm names, in the same order. */
  public readonly alarmNames: string[];

  constructor(name: string, args: RecoveryAlarmsArgs, opts?: pulumi.ComponentResourceOptions) {
    if (!args.clusterName) throw new Error("RecoveryAlarms: clusterName must not be empty");
    const names = args.instances.map((i) => i.name);
    if (new Set(names).size !== names.length) throw new Error(`RecoveryAlarms: instance names must be distinct (got ${JSON.stringify(names)})`);
    const displayNames = args.instances.map((i) => i.displayName);
    if (new Set(displayNames).size !== displayNames.length)
      throw new Error(`RecoveryAlarms: instance display names must be distinct (got ${JSON.stringify(displayNames)})`);
    if (!REGION.test(args.region)) throw new Error(`RecoveryAlarms: region must look like eu-west-1 (got ${JSON.stringify(args.region)})`);
    super("kubeadm-ha:index:RecoveryAlarms", name, {}, opts);
    const child = { parent: this };
    const values: RecoveryAlarmValues = {
      clusterName: args.clusterName,
      region: args.region,
      partition: aws.getPartitionOutput({}, child).partition,
      rebootOnInstanceFailure: args.rebootOnInstanceFailure ?? true,
      tags: args.tags,
    };
    const specs = args.instances.flatMap((i) => recoveryAlarmArgs(values, i));
    this.alarms = specs.map((s) => new aws.cloudwatch.MetricAlarm(s.name, s.args, child));
    this.alarmNames = specs.map((s) => s.args.name as string);
    this.registerOutputs({ alarmNames: this.alarmNames });
  }
}
