/**
 * The worker lifecycle as a cluster builds it: the termination queue and its rules
 * (components/nodeTermination.ts), and how the Cluster wires queue, IAM, hooks and add-ons.
 */
import * as pulumi from "@pulumi/pulumi";
import { Cluster } from "../components/cluster";
import { clusterAutoscalerPolicy, nodeTerminationHandlerPolicy, workerLaunchHookPolicy } from "../components/iam";
import { NodeTerminationQueue, managedTagKey, terminationQueuePolicy, terminationRules } from "../components/nodeTermination";
import { parseConfig } from "../config";
import { Registration, ofType, settle, setupMocks, valueOf } from "./mocks";

const TAGS = (name: string) => ({ team: "platform", "kubernetes.io/cluster/kh": "owned", "kubeadm-ha/cluster": "kh", Name: name });

describe("rules and queue policy, pure", () => {
  it("five rules: group terminations at our hook, Spot warnings and rebalances, EC2 stops and terminations, scheduled changes", () => {
    expect(terminationRules().map((r) => [r.suffix, r.pattern])).toEqual([
      ["group-termination", { source: ["aws.autoscaling"], "detail-type": ["EC2 Instance-terminate Lifecycle Action"], detail: { LifecycleHookName: ["kubeadm-ha-drain"] } }],
      ["spot-interruption", { source: ["aws.ec2"], "detail-type": ["EC2 Spot Instance Interruption Warning"] }],
      ["rebalance", { source: ["aws.ec2"], "detail-type": ["EC2 Instance Rebalance Recommendation"] }],
      ["state-change", { source: ["aws.ec2"], "detail-type": ["EC2 Instance State-change Notification"], detail: { state: ["stopping", "stopped", "shutting-down", "terminated"] } }],
      ["scheduled-change", { source: ["aws.health"], "detail-type": ["AWS Health Event"], detail: { service: ["EC2"], eventTypeCategory: ["scheduledChange"] } }],
    ]);
  });

  it("no rule routes launches: the node completes its launch hook itself, and the handler would race it", () => {
    expect(JSON.stringify(terminationRules())).not.toMatch(/launch Lifecycle Action|pending|running/);
  });

  it("the queue takes messages from EventBridge, and only from these rules", () => {
    const arns = ["arn:aws:events:eu-west-1:123456789012:rule/a", "arn:aws:events:eu-west-1:123456789012:rule/b"];
    expect(terminationQueuePolicy("arn:aws:sqs:eu-west-1:123456789012:q", arns)).toEqual({
      Version: "2012-10-17",
      Statement: [
        {
          Sid: "EventBridgeRulesOnly",
          Effect: "Allow",
          Principal: { Service: "events.amazonaws.com" },
          Action: "sqs:SendMessage",
          Resource: "arn:aws:sqs:eu-west-1:123456789012:q",
          Condition: { ArnEquals: { "aws:SourceArn": arns } },
        },
      ],
    });
    expect(() => terminationQueuePolicy("arn:aws:sqs:eu-west-1:123456789012:q", [])).toThrow("terminationQueuePolicy: no rule ARNs; the queue would accept nothing");
  });

  it("one managed tag key a cluster, so two clusters' handlers leave each other's machines alone", () => {
    expect(managedTagKey("kh")).toBe("aws-node-termination-handler/kh");
    expect(managedTagKey("kh")).not.toBe(managedTagKey("kh2"));
  });
});

describe("NodeTerminationQueue component", () => {
  let regs: Registration[];
  let q: NodeTerminationQueue;
  beforeAll(async () => {
    regs = await setupMocks();
    q = new NodeTerminationQueue("kh-nt", { clusterName: "kh", tags: { team: "platform" } });
    await settle();
  });
  const mine = () => regs.filter((r) => r.name.startsWith("kh-nt"));

  it("one queue, five rules each with its target, one queue policy", () => {
    expect(mine().map((r) => `${r.type} ${r.name}`).sort()).toEqual(
      [
        "kubeadm-ha:index:NodeTerminationQueue kh-nt",
        "aws:sqs/queue:Queue kh-nt-queue",
        "aws:sqs/queuePolicy:QueuePolicy kh-nt-queue-policy",
        ...terminationRules().flatMap((r) => [`aws:cloudwatch/eventRule:EventRule kh-nt-${r.suffix}`, `aws:cloudwatch/eventTarget:EventTarget kh-nt-${r.suffix}-target`]),
      ].sort(),
    );
  });

  it("the queue: named for the cluster, five minutes' retention, SQS-managed encryption", () => {
    expect(ofType(mine(), "aws:sqs/queue:Queue")[0].inputs).toEqual({
      name: "kh-node-termination",
      messageRetentionSeconds: 300,
      sqsManagedSseEnabled: true,
      tags: TAGS("kh-node-termination"),
    });
  });

  it("each rule carries its pattern and sends to the queue", () => {
    for (const r of terminationRules()) {
      const rule = mine().find((x) => x.name === `kh-nt-${r.suffix}`)!;
      expect(rule.inputs).toEqual({ name: `kh-nth-${r.suffix}`, description: r.description, eventPattern: JSON.stringify(r.pattern), tags: TAGS(`kh-nth-${r.suffix}`) });
      expect(mine().find((x) => x.name === `kh-nt-${r.suffix}-target`)!.inputs).toEqual({ rule: `kh-nth-${r.suffix}`, arn: "arn:aws:sqs:eu-west-1:123456789012:kh-node-termination" });
    }
  });

  it("the queue policy admits exactly the five rules", () => {
    const policy = mine().find((r) => r.name === "kh-nt-queue-policy")!.inputs;
    expect(policy.queueUrl).toBe("https://sqs.eu-west-1.amazonaws.com/123456789012/kh-node-termination");
    expect(JSON.parse(policy.policy)).toEqual(
      terminationQueuePolicy(
        "arn:aws:sqs:eu-west-1:123456789012:kh-node-termination",
        terminationRules().map((r) => `arn:aws:events:eu-west-1:123456789012:rule/kh-nth-${r.suffix}`),
      ),
    );
  });

  it("outputs the queue's ARN and URL and the managed tag key", async () => {
    expect(await valueOf(q.queueArn)).toBe("arn:aws:sqs:eu-west-1:123456789012:kh-node-termination");
    expect(await valueOf(q.queueUrl)).toBe("https://sqs.eu-west-1.amazonaws.com/123456789012/kh-node-termination");
    expect(q.managedTagKey).toBe("aws-node-termination-handler/kh");
  });

  it.each([
    [{ clusterName: "" }, "NodeTerminationQueue bad: clusterName must not be empty"],
    [{ clusterName: "kh", retentionSeconds: 59 }, "NodeTerminationQueue bad: retentionSeconds must be a whole number from 60 to 1209600, as SQS allows (got 59)"],
    [{ clusterName: "kh", retentionSeconds: 1209601 }, "NodeTerminationQueue bad: retentionSeconds must be a whole number from 60 to 1209600, as SQS allows (got 1209601)"],
  ])("refuses %j before registering anything", async (a, message) => {
    const before = regs.length;
    expect(() => new NodeTerminationQueue("bad", a)).toThrow(message);
    await settle();
    expect(regs.length).toBe(before);
  });
});

describe("Cluster: the worker lifecycle wired", () => {
  let regs: Registration[];
  const optsOf = new Map<string, pulumi.CustomResourceOptions>();
  const POOLS = [
    { name: "general", minSize: 1, maxSize: 3 },
    { name: "spot", capacityType: "spot", instanceTypes: ["m7i.large", "m6i.large"], minSize: 0, maxSize: 4, drain: { timeoutSeconds: 900 } },
    { name: "fixed", minSize: 2, maxSize: 2, drain: { enabled: false }, autoscaling: { enabled: false }, readyTimeoutSeconds: 1800 },
  ];
  const build = (name: string, addons: object, workerPools: object[]) =>
    new Cluster(name, {
      config: parseConfig({ region: "eu-west-1", clusterName: name, network: { availabilityZones: ["eu-west-1a", "eu-west-1b", "eu-west-1c"] }, apiLoadBalancer: { allowedCidrs: ["203.0.113.0/24"] }, addons, workerPools }),
    }, {
      transformations: [
        (a) => {
          optsOf.set(a.name, a.opts as pulumi.CustomResourceOptions);
          return undefined;
        },
      ],
    });

  beforeAll(async () => {
    regs = await setupMocks();
    build("lc", {}, POOLS);
    // The same cluster with both add-ons off and no pool drained: what the lifecycle adds is the difference.
    build("off", { clusterAutoscaler: false, nodeTerminationHandler: false }, POOLS.map((p) => ({ ...p, drain: undefined })));
    build("nopools", {}, []);
    await settle();
  });
  const mine = (prefix: string) => regs.filter((r) => r.name === prefix || r.name.startsWith(`${prefix}-`));
  const names = (prefix: string) => mine(prefix).map((r) => r.name.slice(prefix.length + 1));

  it("the handler's queue: its rules, targets and policy, retained as long as the longest drain", () => {
    const queue = mine("lc").find((r) => r.name === "lc-node-termination-queue")!;
    expect(queue.inputs.messageRetentionSeconds).toBe(900);
    expect(ofType(mine("lc"), "aws:cloudwatch/eventRule:EventRule")).toHaveLength(5);
    expect(ofType(mine("lc"), "aws:cloudwatch/eventTarget:EventTarget")).toHaveLength(5);
    expect(ofType(mine("lc"), "aws:sqs/queuePolicy:QueuePolicy")).toHaveLength(1);
  });

  it("IAM: the control plane runs the autoscaler and the handler, workers report their readiness", () => {
    const policy = (n: string) => JSON.parse(mine("lc").find((r) => r.name === n)!.inputs.policy);
    expect(policy("lc-iam-control-plane-cluster-autoscaler")).toEqual(clusterAutoscalerPolicy("lc"));
    expect(policy("lc-iam-control-plane-node-termination-handler")).toEqual(nodeTerminationHandlerPolicy("lc", "arn:aws:sqs:eu-west-1:123456789012:lc-node-termination"));
    expect(policy("lc-iam-worker-launch-hook")).toEqual(workerLaunchHookPolicy("lc"));
    // Never the other way round.
    expect(names("lc").filter((n) => /^iam-worker-(cluster-autoscaler|node-termination-handler)$/.test(n) || n === "iam-control-plane-launch-hook")).toEqual([]);
  });

  it("every pool gets the readiness hook; the drained pools the drain hook with their own timeout", () => {
    const hooks = ofType(mine("lc"), "aws:autoscaling/lifecycleHook:LifecycleHook")
      .map((r) => [r.name, r.inputs.autoscalingGroupName, r.inputs.name, r.inputs.defaultResult, r.inputs.heartbeatTimeout])
      .sort((a, b) => String(a[0]).localeCompare(String(b[0])));
    expect(hooks).toEqual([
      ["lc-pool-fixed-ready-hook", "lc-fixed-0001", "kubeadm-ha-node-ready", "ABANDON", 1800],
      ["lc-pool-general-drain-hook", "lc-general-0001", "kubeadm-ha-drain", "CONTINUE", 300],
      ["lc-pool-general-ready-hook", "lc-general-0001", "kubeadm-ha-node-ready", "ABANDON", 900],
      ["lc-pool-spot-drain-hook", "lc-spot-0001", "kubeadm-ha-drain", "CONTINUE", 900],
      ["lc-pool-spot-ready-hook", "lc-spot-0001", "kubeadm-ha-node-ready", "ABANDON", 900],
    ]);
  });

  it("the handler drains the longest pool's timeout in one go, and only machines with the cluster's managed tag", () => {
    const nth = mine("lc").find((r) => r.name === "lc-addons-aws-node-termination-handler")!;
    expect(nth.inputs.values).toEqual(
      expect.objectContaining({ queueURL: "https://sqs.eu-west-1.amazonaws.com/123456789012/lc-node-termination", managedTag: "aws-node-termination-handler/lc", nodeTerminationGracePeriod: 900 }),
    );
    const tagged = ofType(mine("lc"), "aws:ec2/launchTemplate:LaunchTemplate").filter((r) => r.inputs.tagSpecifications[0].tags["aws-node-termination-handler/lc"] === "managed");
    expect(tagged.map((r) => r.name).sort()).toEqual(["lc-pool-general-launch-template", "lc-pool-spot-launch-template"]);
  });

  it("masters and their volumes never carry the managed tag", () => {
    const masters = ofType(mine("lc"), "aws:ec2/instance:Instance");
    expect(masters).toHaveLength(3);
    for (const m of masters) expect(Object.keys(m.inputs.tags).filter((k) => k.startsWith("aws-node-termination-handler/"))).toEqual([]);
  });

  it("the autoscaler discovers the groups by the tags the autoscaled pools carry, and only those", () => {
    const ca = mine("lc").find((r) => r.name === "lc-addons-cluster-autoscaler")!;
    expect(ca.inputs.values.autoDiscovery).toEqual({ clusterName: "lc" });
    const discovered = ofType(mine("lc"), "aws:autoscaling/group:Group").filter((g) =>
      ["k8s.io/cluster-autoscaler/enabled", "k8s.io/cluster-autoscaler/lc"].every((k) => g.inputs.tags.some((t: { key: string }) => t.key === k)),
    );
    expect(discovered.map((g) => g.name).sort()).toEqual(["lc-pool-general-group", "lc-pool-spot-group"]);
  });

  it("resources the two add-ons add: 12 a cluster (queue, policy, 5 rules, 5 targets) + 2 IAM policies + 2 Helm releases + the handler's host-network patch, a drain hook a drained pool", () => {
    const count = (prefix: string, pred: (r: Registration) => boolean) => mine(prefix).filter(pred).length;
    const custom = (r: Registration) => !r.type.startsWith("kubeadm-ha:index:");
    const clusterLevel = (r: Registration) => custom(r) && !r.name.includes("-pool-");
    const poolLevel = (pool: string) => (r: Registration) => custom(r) && r.name.includes(`-pool-${pool}-`);
    expect(count("lc", clusterLevel) - count("off", clusterLevel)).toBe(12 + 2 + 2 + 1);
    expect(["general", "spot", "fixed"].map((p) => count("lc", poolLevel(p)) - count("off", poolLevel(p)))).toEqual([1, 1, 0]);
    // Without the handler a pool still gets its readiness hook: the cluster's pools always have one.
    expect(["general", "spot", "fixed"].map((p) => count("off", (r) => r.type === "aws:autoscaling/lifecycleHook:LifecycleHook" && r.name.includes(`-pool-${p}-`)))).toEqual([1, 1, 1]);
    // ...and the worker role its policy to report it, add-ons or not.
    expect(names("off")).toContain("iam-worker-launch-hook");
    expect(ofType(mine("off"), "aws:sqs/queue:Queue")).toEqual([]);
    expect(names("off").filter((n) => /cluster-autoscaler|node-termination/.test(n))).toEqual([]);
  });

  it("a cluster without pools still has the queue and both add-ons, for pools a program adds from workerJoin", () => {
    expect(ofType(mine("nopools"), "aws:sqs/queue:Queue")).toHaveLength(1);
    expect(names("nopools").filter((n) => n.startsWith("addons-") && /cluster-autoscaler|node-termination/.test(n)).sort()).toEqual([
      "addons-aws-node-termination-handler",
      "addons-aws-node-termination-handler-aws-node-termination-handler",
      "addons-cluster-autoscaler",
    ]);
  });

  it("the autoscaler installs after the EBS CSI driver, the handler after the autoscaler", async () => {
    const dependsOn = async (n: string) => Promise.all(((optsOf.get(n)?.dependsOn ?? []) as pulumi.Resource[]).map((d) => valueOf(d.urn)));
    // And, as every resource of a cluster, after its ClusterState (test/day2-wiring.test.ts).
    expect(await dependsOn("lc-addons-cluster-autoscaler")).toEqual([expect.stringMatching(/::lc-addons-aws-ebs-csi-driver$/), expect.stringMatching(/dynamic:ClusterState::lc-state$/)]);
    expect(await dependsOn("lc-addons-aws-node-termination-handler")).toEqual([expect.stringMatching(/::lc-addons-cluster-autoscaler$/), expect.stringMatching(/dynamic:ClusterState::lc-state$/)]);
  });
});
