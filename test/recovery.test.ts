/**
 * EC2 auto recovery: the pure alarm arguments and action ARNs, the component under mocks, and the
 * Cluster's wiring (every master and external etcd member watched when on, nothing when off).
 */
import * as pulumi from "@pulumi/pulumi";
import { RECOVERY_ALARMS, RecoveryAlarmValues, recoveryActionArn, recoveryAlarmArgs } from "../components/recovery";
import { Captured, VARIANTS, captureAll, captured, ofType as ofCaptured } from "./capture";
import { Registration, ofType, settle, setupMocks, valueOf } from "./mocks";
import type * as RecoveryModule from "../components/recovery";

const TAGS = { team: "platform" };
const clusterTags = (name: string) => ({ team: "platform", "kubernetes.io/cluster/dev": "owned", "kubeadm-ha/cluster": "dev", Name: name });

describe("recoveryActionArn", () => {
  it.each([
    ["aws", "eu-west-1", "recover", "arn:aws:automate:eu-west-1:ec2:recover"],
    ["aws", "us-east-1", "reboot", "arn:aws:automate:us-east-1:ec2:reboot"],
    ["aws-cn", "cn-north-1", "recover", "arn:aws-cn:automate:cn-north-1:ec2:recover"],
    ["aws-us-gov", "us-gov-west-1", "recover", "arn:aws-us-gov:automate:us-gov-west-1:ec2:recover"],
    ["aws-iso-b", "us-isob-east-1", "reboot", "arn:aws-iso-b:automate:us-isob-east-1:ec2:reboot"],
  ] as const)("%s %s %s -> %s", (partition, region, action, arn) => {
    expect(recoveryActionArn(partition, region, action)).toBe(arn);
  });

  it.each([
    ["", "eu-west-1", `recoveryActionArn: partition must look like aws, aws-cn or aws-us-gov (got "")`],
    ["arn:aws", "eu-west-1", `recoveryActionArn: partition must look like aws, aws-cn or aws-us-gov (got "arn:aws")`],
    ["aws", "", `recoveryActionArn: region must look like eu-west-1 (got "")`],
    ["aws", "eu-west-1a", `recoveryActionArn: region must look like eu-west-1 (got "eu-west-1a")`],
  ])("rejects partition %j region %j", (partition, region, message) => {
    expect(() => recoveryActionArn(partition, region, "recover")).toThrow(message);
  });
});

describe("recoveryAlarmArgs", () => {
  const values = (over: Partial<RecoveryAlarmValues> = {}): RecoveryAlarmValues => ({
    clusterName: "dev",
    region: "eu-west-1",
    partition: "aws",
    rebootOnInstanceFailure: true,
    tags: TAGS,
    ...over,
  });
  const master0 = { name: "dev-control-plane-master-0", displayName: "dev-master-0", instanceId: "i-0123456789abcdef0" };

  const recover = {
    name: "dev-control-plane-master-0-recover",
    args: {
      name: "dev-master-0-recover",
      alarmDescription: "dev: EC2 recovers dev-master-0 when the EC2 host failed its system status check for 2 minutes in a row.",
      namespace: "AWS/EC2",
      metricName: "StatusCheckFailed_System",
      dimensions: { InstanceId: "i-0123456789abcdef0" },
      statistic: "Maximum",
      period: 60,
      evaluationPeriods: 2,
      threshold: 1,
      comparisonOperator: "GreaterThanOrEqualToThreshold",
      treatMissingData: "missing",
      alarmActions: ["arn:aws:automate:eu-west-1:ec2:recover"],
      tags: clusterTags("dev-master-0-recover"),
    },
  };
  const reboot = {
    name: "dev-control-plane-master-0-reboot",
    args: {
      name: "dev-master-0-reboot",
      alarmDescription: "dev: EC2 reboots dev-master-0 when the operating system failed its instance status check for 3 minutes in a row.",
      namespace: "AWS/EC2",
      metricName: "StatusCheckFailed_Instance",
      dimensions: { InstanceId: "i-0123456789abcdef0" },
      statistic: "Maximum",
      period: 60,
      evaluationPeriods: 3,
      threshold: 1,
      comparisonOperator: "GreaterThanOrEqualToThreshold",
      treatMissingData: "missing",
      alarmActions: ["arn:aws:automate:eu-west-1:ec2:reboot"],
      tags: clusterTags("dev-master-0-reboot"),
    },
  };

  it("recover on the system check, reboot on the instance check, exact arguments", () => {
    expect(recoveryAlarmArgs(values(), master0)).toEqual([recover, reboot]);
  });

  it("recover only when rebooting is off", () => {
    expect(recoveryAlarmArgs(values({ rebootOnInstanceFailure: false }), master0)).toEqual([recover]);
  });

  it("never puts the recover action on the instance check, which CloudWatch does not allow", () => {
    expect(RECOVERY_ALARMS.map((a) => [a.metricName, a.action])).toEqual([
      ["StatusCheckFailed_System", "recover"],
      ["StatusCheckFailed_Instance", "reboot"],
    ]);
  });

  it("builds the ARN from a partition Output, in another partition's region", async () => {
    const alarms = recoveryAlarmArgs(values({ region: "cn-northwest-1", partition: pulumi.output("aws-cn") }), master0);
    expect(await Promise.all(alarms.map((a) => valueOf((a.args.alarmActions as pulumi.Input<string>[])[0])))).toEqual([
      "arn:aws-cn:automate:cn-northwest-1:ec2:recover",
      "arn:aws-cn:automate:cn-northwest-1:ec2:reboot",
    ]);
  });
});

describe("RecoveryAlarms component and Cluster wiring", () => {
  let regs: Registration[];
  let rec: typeof RecoveryModule;
  beforeAll(async () => {
    regs = await setupMocks({ region: "eu-west-1" });
    rec = await import("../components/recovery");
  });

  async function build<T>(make: () => T, wait: (made: T) => pulumi.Input<unknown> = () => undefined) {
    const before = regs.length;
    const made = make();
    await valueOf(wait(made));
    await settle();
    return { made, mine: regs.slice(before) };
  }
  /** Alarms in name order: registration order follows when each instance id resolves. */
  // The recovery alarms; each machine's bootstrap alarm is test/bootstrapHealth.test.ts's.
  const alarms = (mine: Registration[]) =>
    ofType(mine, "aws:cloudwatch/metricAlarm:MetricAlarm").filter((r) => !r.name.endsWith("-bootstrap")).sort((a, b) => a.name.localeCompare(b.name));

  it("two alarms per instance, children of the component, with the partition from the provider", async () => {
    const { made, mine } = await build(() =>
      new rec.RecoveryAlarms("ra", {
        clusterName: "dev",
        region: "eu-west-1",
        instances: [
          { name: "m0", displayName: "dev-master-0", instanceId: pulumi.output("i-0") },
          { name: "e0", displayName: "dev-etcd-0", instanceId: "i-1" },
        ],
        tags: TAGS,
      }),
    );
    expect(mine.map((r) => `${r.type} ${r.name}`).sort()).toEqual([
      "aws:cloudwatch/metricAlarm:MetricAlarm e0-reboot",
      "aws:cloudwatch/metricAlarm:MetricAlarm e0-recover",
      "aws:cloudwatch/metricAlarm:MetricAlarm m0-reboot",
      "aws:cloudwatch/metricAlarm:MetricAlarm m0-recover",
      "kubeadm-ha:index:RecoveryAlarms ra",
    ]);
    expect(made.alarmNames).toEqual(["dev-master-0-recover", "dev-master-0-reboot", "dev-etcd-0-recover", "dev-etcd-0-reboot"]);
    expect(alarms(mine).map((r) => [r.name, r.inputs.dimensions, r.inputs.metricName, r.inputs.alarmActions])).toEqual([
      ["e0-reboot", { InstanceId: "i-1" }, "StatusCheckFailed_Instance", ["arn:aws:automate:eu-west-1:ec2:reboot"]],
      ["e0-recover", { InstanceId: "i-1" }, "StatusCheckFailed_System", ["arn:aws:automate:eu-west-1:ec2:recover"]],
      ["m0-reboot", { InstanceId: "i-0" }, "StatusCheckFailed_Instance", ["arn:aws:automate:eu-west-1:ec2:reboot"]],
      ["m0-recover", { InstanceId: "i-0" }, "StatusCheckFailed_System", ["arn:aws:automate:eu-west-1:ec2:recover"]],
    ]);
    // Everything else is recoveryAlarmArgs' (exact above): the component adds nothing of its own.
    expect(alarms(mine).find((r) => r.name === "m0-recover")!.inputs).toEqual({
      name: "dev-master-0-recover",
      alarmDescription: "dev: EC2 recovers dev-master-0 when the EC2 host failed its system status check for 2 minutes in a row.",
      namespace: "AWS/EC2",
      metricName: "StatusCheckFailed_System",
      dimensions: { InstanceId: "i-0" },
      statistic: "Maximum",
      period: 60,
      evaluationPeriods: 2,
      threshold: 1,
      comparisonOperator: "GreaterThanOrEqualToThreshold",
      treatMissingData: "missing",
      alarmActions: ["arn:aws:automate:eu-west-1:ec2:recover"],
      tags: clusterTags("dev-master-0-recover"),
    });
  });

  it("rebootOnInstanceFailure: false leaves the recover alarms only", async () => {
    const { mine } = await build(() =>
      new rec.RecoveryAlarms("rb", {
        clusterName: "dev",
        region: "eu-west-1",
        instances: [{ name: "m9", displayName: "dev-master-9", instanceId: "i-9" }],
        rebootOnInstanceFailure: false,
        tags: {},
      }),
    );
    expect(alarms(mine).map((r) => r.name)).toEqual(["m9-recover"]);
  });

  it.each([
    [{ clusterName: "" }, "RecoveryAlarms: clusterName must not be empty"],
    [{ region: "eu-west" }, `RecoveryAlarms: region must look like eu-west-1 (got "eu-west")`],
    [
      { instances: [{ name: "a", displayName: "x", instanceId: "i-1" }, { name: "a", displayName: "y", instanceId: "i-2" }] },
      `RecoveryAlarms: instance names must be distinct (got ["a","a"])`,
    ],
    [
      { instances: [{ name: "a", displayName: "x", instanceId: "i-1" }, { name: "b", displayName: "x", instanceId: "i-2" }] },
      `RecoveryAlarms: instance display names must be distinct (got ["x","x"])`,
    ],
  ])("rejects %j before registering anything", (over, message) => {
    const before = regs.length;
    expect(() => new rec.RecoveryAlarms(`bad-${before}`, { clusterName: "dev", region: "eu-west-1", instances: [], tags: {}, ...over })).toThrow(message);
    expect(regs.length).toBe(before);
  });
});

describe("Cluster wiring, on the run's shared evaluation of each stack (test/capture.ts)", () => {
  // The recovery alarms; each machine's bootstrap alarm is test/bootstrapHealth.test.ts's.
  const alarms = (c: Captured) =>
    ofCaptured(c, "aws:cloudwatch/metricAlarm:MetricAlarm").filter((r) => !r.name.endsWith("-bootstrap")).sort((a, b) => a.name.localeCompare(b.name));
  beforeAll(() => captureAll([VARIANTS.dev, VARIANTS.prod, VARIANTS.devOff]), 120000);

  it("dev (stacked): a recover and a reboot alarm on each of the three masters, none on workers", async () => {
    const dev = await captured(VARIANTS.dev);
    const instances = ofCaptured(dev, "aws:ec2/instance:Instance");
    expect(instances.map((r) => r.name)).toEqual(["dev-control-plane-master-0", "dev-control-plane-master-1", "dev-control-plane-master-2"]);
    expect(alarms(dev).map((r) => [r.name, r.inputs.name, r.inputs.dimensions.InstanceId, r.inputs.alarmActions[0]])).toEqual(
      [0, 1, 2].flatMap((i) => [
        [`dev-control-plane-master-${i}-reboot`, `dev-master-${i}-reboot`, `dev-control-plane-master-${i}-id`, "arn:aws:automate:eu-west-1:ec2:reboot"],
        [`dev-control-plane-master-${i}-recover`, `dev-master-${i}-recover`, `dev-control-plane-master-${i}-id`, "arn:aws:automate:eu-west-1:ec2:recover"],
      ]),
    );
    // Each alarm watches an instance of this cluster: the dimension is a real instance's id.
    expect(new Set(alarms(dev).map((r) => r.inputs.dimensions.InstanceId))).toEqual(new Set(instances.map((r) => r.id)));
    expect(ofCaptured(dev, "kubeadm-ha:index:RecoveryAlarms").map((r) => r.name)).toEqual(["dev-recovery"]);
  });

  it("prod (external etcd): the three etcd members are watched too", async () => {
    const prod = await captured(VARIANTS.prod);
    expect(alarms(prod).map((r) => r.inputs.name)).toEqual([
      ...[0, 1, 2].flatMap((i) => [`prod-master-${i}-reboot`, `prod-master-${i}-recover`]),
      ...[0, 1, 2].flatMap((i) => [`prod-etcd-${i}-reboot`, `prod-etcd-${i}-recover`]),
    ]);
    expect(alarms(prod).filter((r) => r.inputs.name.startsWith("prod-etcd-")).map((r) => r.inputs.dimensions.InstanceId)).toEqual(
      [0, 0, 1, 1, 2, 2].map((i) => `prod-etcd-member-${i}-id`),
    );
    expect(new Set(alarms(prod).map((r) => r.inputs.dimensions.InstanceId))).toEqual(new Set(ofCaptured(prod, "aws:ec2/instance:Instance").map((r) => r.id)));
  });

  it("autoRecovery off: no alarm and no RecoveryAlarms component", async () => {
    const off = await captured(VARIANTS.devOff);
    expect(ofCaptured(off, "aws:ec2/instance:Instance")).toHaveLength(3);
    expect(alarms(off)).toEqual([]);
    expect(ofCaptured(off, "kubeadm-ha:index:RecoveryAlarms")).toEqual([]);
  });
});
