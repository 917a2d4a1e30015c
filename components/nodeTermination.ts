/**
 * How aws-node-termination-handler (queue mode, components/addons.ts) learns that a worker is about
 * to go: EventBridge rules route the events of every planned exit into one SQS queue the handler
 * reads, then cordons and drains the node, and, for a group's termination, completes the
 * lifecycle action that held the machine (the rules and queue of the handler's
 * docs/cfn-template.yaml, v1.25.6, plus a queue policy confined to these rules).
 *
 *   Spot interruption warning (two minutes)      ──┐
 *   Spot rebalance recommendation                  │
 *   group termination (scale-in, instance          ├─> EventBridge rules ─> SQS queue ─> handler: cordon, drain,
 *     refresh, rebalance) held by the pool's hook  │                                    complete the hook
 *   EC2 stop or termination outside the group      │
 *   scheduled retirement (AWS Health)            ──┘
 *
 * Events of every instance in the region reach the queue; the handler acts only on machines
 * carrying the cluster's managed tag (`managedTagKey`), which only the drained pools' machines
 * carry. Masters and etcd members never do, so they are never drained.
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { PolicyDocument } from "./iam";
import { clusterTags } from "./tags";

/** The termination lifecycle hook every drained pool's group carries; the rule for group terminations matches it by name. */
export const TERMINATION_HOOK_NAME = "kubeadm-ha-drain";

/**
 * The instance tag key that makes a machine the handler's to drain (its `managedTag`). One key a
 * cluster, so the handler of another cluster in the account, which receives the same EC2 events,
 * leaves this cluster's machines alone. Only the key counts.
 */
export function managedTagKey(clusterName: string): string {
  return `aws-node-termination-handler/${clusterName}`;
}

/**
 * Seconds an unread message stays in the queue, at least: the upstream template's 300. A Spot
 * warning is past acting on after two minutes; a termination hook's event is worth keeping as long
 * as its hook holds the machine, so the cluster passes its longest drain timeout when longer.
 */
export const QUEUE_RETENTION_SECONDS = 300;

/** One EventBridge rule: what it matches and why. */
export interface TerminationRule {
  /** Names the rule, `<cluster>-nth-<suffix>`, and its Pulumi child. */
  suffix: string;
  description: string;
  /** EventBridge event pattern. */
  pattern: Record<string, unknown>;
}

/**
 * The rules, in a fixed order. Patterns are upstream's; two are narrower: group terminations only
 * at this blueprint's hook (other groups' hooks are none of the handler's business), and state
 * changes only to the states the handler drains on (`instanceStatesToDrain` in
 * pkg/monitor/sqsevent/ec2-state-change-event.go), so the queue does not carry every launch in
 * the region.
 */
export function terminationRules(): TerminationRule[] {
  return [
    {
      suffix: "group-termination",
      description: "A worker group terminates a machine (scale-in, instance refresh, rebalancing): its termination hook holds it for the drain",
      pattern: { source: ["aws.autoscaling"], "detail-type": ["EC2 Instance-terminate Lifecycle Action"], detail: { LifecycleHookName: [TERMINATION_HOOK_NAME] } },
    },
    {
      suffix: "spot-interruption",
      description: "EC2 reclaims a Spot machine in two minutes",
      pattern: { source: ["aws.ec2"], "detail-type": ["EC2 Spot Instance Interruption Warning"] },
    },
    {
      suffix: "rebalance",
      description: "A Spot machine is at elevated risk of interruption; with capacity rebalancing its group launches a replacement",
      pattern: { source: ["aws.ec2"], "detail-type": ["EC2 Instance Rebalance Recommendation"] },
    },
    {
      suffix: "state-change",
      description: "A machine is stopped or terminated through EC2, outside its group",
      pattern: { source: ["aws.ec2"], "detail-type": ["EC2 Instance State-change Notification"], detail: { state: ["stopping", "stopped", "shutting-down", "terminated"] } },
    },
    {
      suffix: "scheduled-change",
      description: "AWS schedules a machine's retirement or maintenance",
      pattern: { source: ["aws.health"], "detail-type": ["AWS Health Event"], detail: { service: ["EC2"], eventTypeCategory: ["scheduledChange"] } },
    },
  ];
}

/**
 * Only EventBridge may send to the queue, and only from these rules (upstream's policy also admits
 * sqs.amazonaws.com and any rule; neither is needed).
 */
export function terminationQueuePolicy(queueArn: string, ruleArns: string[]): PolicyDocument {
  if (ruleArns.length === 0) throw new Error("terminationQueuePolicy: no rule ARNs; the queue would accept nothing");
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "EventBridgeRulesOnly",
        Effect: "Allow",
        Principal: { Service: "events.amazonaws.com" },
        Action: "sqs:SendMessage",
        Resource: queueArn,
        Condition: { ArnEquals: { "aws:SourceArn": ruleArns } },
      },
    ],
  };
}

export interface NodeTerminationQueueArgs {
  /** Names the queue `<cluster>-node-termination` and the rules `<cluster>-nth-<suffix>`. Required. */
  clusterName: string;
  /** Seconds an unread message stays (SQS allows 60 to 1209600). Default QUEUE_RETENTION_SECONDS. */
  retentionSeconds?: number;
  /** Extra tags on every AWS resource. Default none. */
  tags?: Record<string, string>;
}

/** The queue aws-node-termination-handler reads, and the rules that fill it. */
export class NodeTerminationQueue extends pulumi.ComponentResource {
  /** ARN of the queue, for the handler's IAM policy. */
  public readonly queueArn: pulumi.Output<string>;
  /** URL of the queue, the handler's `queueURL`. */
  public readonly queueUrl: pulumi.Output<string>;
  /** The instance tag key of the machines the handler drains. */
  public readonly managedTagKey: string;

  constructor(name: string, args: NodeTerminationQueueArgs, opts?: pulumi.ComponentResourceOptions) {
    if (!args.clusterName) throw new Error(`NodeTerminationQueue ${name}: clusterName must not be empty`);
    const retention = args.retentionSeconds ?? QUEUE_RETENTION_SECONDS;
    if (!Number.isInteger(retention) || retention < 60 || retention > 1209600)
      throw new Error(`NodeTerminationQueue ${name}: retentionSeconds must be a whole number from 60 to 1209600, as SQS allows (got ${retention})`);
    super("kubeadm-ha:index:NodeTerminationQueue", name, {}, opts);
    const child = { parent: this };
    const queueName = `${args.clusterName}-node-termination`;
    const queue = new aws.sqs.Queue(
      `${name}-queue`,
      {
        name: queueName,
        messageRetentionSeconds: retention,
        // SQS-managed encryption: EventBridge cannot publish to a queue under an AWS-managed KMS
        // key, and a key of our own would need its policy opened to EventBridge (handler README).
        sqsManagedSseEnabled: true,
        tags: clusterTags(args.clusterName, args.tags, queueName),
      },
      child,
    );
    const rules = terminationRules().map((r) => {
      const ruleName = `${args.clusterName}-nth-${r.suffix}`;
      const rule = new aws.cloudwatch.EventRule(
        `${name}-${r.suffix}`,
        { name: ruleName, description: r.description, eventPattern: JSON.stringify(r.pattern), tags: clusterTags(args.clusterName, args.tags, ruleName) },
        child,
      );
      new aws.cloudwatch.EventTarget(`${name}-${r.suffix}-target`, { rule: rule.name, arn: queue.arn }, child);
      return rule;
    });
    new aws.sqs.QueuePolicy(
      `${name}-queue-policy`,
      {
        queueUrl: queue.url,
        policy: pulumi.all([queue.arn, ...rules.map((r) => r.arn)]).apply(([queueArn, ...ruleArns]) => JSON.stringify(terminationQueuePolicy(queueArn, ruleArns))),
      },
      child,
    );
    this.queueArn = queue.arn;
    this.queueUrl = queue.url;
    this.managedTagKey = managedTagKey(args.clusterName);
    this.registerOutputs({ queueArn: this.queueArn, queueUrl: this.queueUrl, managedTagKey: this.managedTagKey });
  }
}
