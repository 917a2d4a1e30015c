/**
 * The worker lifecycle as a cluster builds it: the termination queue and its rules
 * (components/nodeTermination.ts).
 */
import { NodeTerminationQueue, managedTagKey, terminationQueuePolicy, terminationRules } from "../components/nodeTermination";
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
