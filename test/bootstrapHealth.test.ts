/**
 * A machine whose first boot gives up is replaced or seen (issue 15): the report permissions of
 * every node role and the alarm of each master and etcd member (components/bootstrapHealth.ts).
 * What the machine does is boot.sh's (test/boot-script.test.ts, and against moto test/aws-moto.test.ts).
 */
import { Cluster } from "../components/cluster";
import { BOOTSTRAP_METRIC, bootstrapAlarmArgs, fixedMachineReportPolicy, workerReportPolicy } from "../components/bootstrapHealth";
import { parseConfig } from "../config";
import { Registration, ofType, settle, setupMocks } from "./mocks";

describe("policies", () => {
  it("a worker may mark only instances of this cluster's groups Unhealthy", () => {
    expect(workerReportPolicy("dev")).toEqual({
      Version: "2012-10-17",
      Statement: [
        {
          Sid: "ReportFailedBootstrap",
          Effect: "Allow",
          Action: "autoscaling:SetInstanceHealth",
          Resource: "*",
          Condition: { StringEquals: { "autoscaling:ResourceTag/kubeadm-ha/cluster": "dev" } },
        },
      ],
    });
    expect(() => workerReportPolicy("")).toThrow("workerReportPolicy: clusterName must not be empty");
  });

  it("a master or etcd member may publish metrics in kubeadm-ha's namespace and nothing else", () => {
    expect(fixedMachineReportPolicy()).toEqual({
      Version: "2012-10-17",
      Statement: [
        { Sid: "ReportBootstrapOutcome", Effect: "Allow", Action: "cloudwatch:PutMetricData", Resource: "*", Condition: { StringEquals: { "cloudwatch:namespace": "kubeadm-ha" } } },
      ],
    });
  });
});

describe("the alarm", () => {
  it("goes to ALARM on the first 1 and stays there without data, until the machine reports 0", () => {
    const a = bootstrapAlarmArgs("dev", { name: "dev-control-plane-master-0", displayName: "dev-master-0", instanceId: "i-1" }, { team: "x" });
    expect(a).toEqual({
      name: "dev-control-plane-master-0-bootstrap",
      args: {
        name: "dev-master-0-bootstrap",
        alarmDescription: "dev: dev-master-0's first boot gave up; see kubeadm-ha[...] lines in its /var/log/cloud-init-output.log.",
        namespace: "kubeadm-ha",
        metricName: "BootstrapFailed",
        dimensions: { InstanceId: "i-1" },
        statistic: "Maximum",
        period: 60,
        evaluationPeriods: 1,
        threshold: 1,
        comparisonOperator: "GreaterThanOrEqualToThreshold",
        treatMissingData: "ignore",
        tags: { team: "x", "kubernetes.io/cluster/dev": "owned", "kubeadm-ha/cluster": "dev", Name: "dev-master-0-bootstrap" },
      },
    });
    // The script's names (cloud-init/scripts/lib.sh) and the alarm's are one.
    expect(BOOTSTRAP_METRIC).toEqual({ namespace: "kubeadm-ha", name: "BootstrapFailed" });
  });
});

describe("Cluster wiring", () => {
  let regs: Registration[];
  beforeAll(async () => {
    regs = await setupMocks();
    for (const [name, topology, autoRecovery] of [["bs", "stacked", true], ["bx", "external", false]] as const)
      new Cluster(name, {
        config: parseConfig({
          region: "eu-west-1",
          clusterName: name,
          network: { availabilityZones: ["eu-west-1a", "eu-west-1b", "eu-west-1c"] },
          etcd: { topology },
          apiLoadBalancer: { scheme: "internal" },
          workerPools: [{ name: "general" }],
          autoRecovery,
        }),
      });
    await settle();
  }, 60000);
  const mine = (prefix: string) => regs.filter((r) => r.name.startsWith(`${prefix}-`));

  it.each([
    ["bs", "stacked", ["bs-master-0", "bs-master-1", "bs-master-2"]],
    ["bx", "external, even without autoRecovery", ["bx-master-0", "bx-master-1", "bx-master-2", "bx-etcd-0", "bx-etcd-1", "bx-etcd-2"]],
  ])("%s (%s): one alarm a master and etcd member, on its own instance; none for workers", (prefix, _, watched) => {
    const alarms = ofType(mine(prefix), "aws:cloudwatch/metricAlarm:MetricAlarm").filter((r) => r.name.endsWith("-bootstrap"));
    expect(alarms.map((r) => r.inputs.name).sort()).toEqual(watched.map((w) => `${w}-bootstrap`).sort());
    const instances = new Map(ofType(mine(prefix), "aws:ec2/instance:Instance").map((r) => [r.inputs.tags.Name, r.id]));
    for (const a of alarms) expect(a.inputs.dimensions.InstanceId).toBe(instances.get(a.inputs.name.replace(/-bootstrap$/, "")));
  });

  it("the worker role gets the group permission; the control plane and etcd roles the metric", () => {
    const policies = ofType(mine("bx"), "aws:iam/rolePolicy:RolePolicy").filter((r) => r.inputs.name === "bootstrap-report");
    expect(Object.fromEntries(policies.map((r) => [r.inputs.role, JSON.parse(r.inputs.policy)]))).toEqual({
      "bx-eu-west-1-worker": workerReportPolicy("bx"),
      "bx-eu-west-1-control-plane": fixedMachineReportPolicy(),
      "bx-eu-west-1-etcd": fixedMachineReportPolicy(),
    });
  });

  it("the worker groups carry the tag the worker's permission is scoped by", () => {
    const group = ofType(mine("bs"), "aws:autoscaling/group:Group")[0];
    expect(group.inputs.tags).toContainEqual({ key: "kubeadm-ha/cluster", value: "bs", propagateAtLaunch: false });
  });
});
