/**
 * The durable record that a cluster was initialised: an SSM parameter Pulumi creates as `pending`
 * and master 0 overwrites after its first successful `kubeadm init` (cloud-init/scripts/bootstrap.sh).
 * A master 0 that finds anything but `pending` never runs `kubeadm init`, whatever its probes see,
 * so a replacement cut off from the load balancer cannot start a second cluster with the same CA.
 *
 * Pulumi owns the parameter's life, not its value (`ignoreChanges`): `pulumi destroy` deletes it
 * with the cluster, and a cluster created again under the same name starts from `pending`. Only the
 * control plane role may read or write it.
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { roleNameOfArn } from "./etcdBackup";
import { PolicyDocument } from "./iam";
import { clusterTags } from "./tags";

/** The value before the first successful init; bootstrap.sh initialises only while it reads this. */
export const INIT_MARKER_PENDING = "pending";

/** `/kubeadm-ha/<cluster>/control-plane-initialised`: SSM parameters are regional, so unique per cluster and region. */
export function initMarkerName(clusterName: string): string {
  if (!/^[a-z][a-z0-9-]*$/.test(clusterName)) throw new Error(`initMarkerName: clusterName must be lowercase letters, digits and hyphens (got ${JSON.stringify(clusterName)})`);
  return `/kubeadm-ha/${clusterName}/control-plane-initialised`;
}

/** What the control plane role may do with the marker: read it and overwrite it, nothing else in SSM's parameters. */
export function initMarkerPolicy(parameterArn: string): PolicyDocument {
  if (!/^arn:aws[a-z-]*:ssm:[a-z0-9-]+:\d{12}:parameter\/.+$/.test(parameterArn))
    throw new Error(`initMarkerPolicy: parameterArn must be an SSM parameter ARN (got ${JSON.stringify(parameterArn)})`);
  return { Version: "2012-10-17", Statement: [{ Sid: "ReadWriteInitMarker", Effect: "Allow", Action: ["ssm:GetParameter", "ssm:PutParameter"], Resource: parameterArn }] };
}

export interface InitMarkerArgs {
  /** Cluster name: the parameter's name and tags. Required. */
  clusterName: string;
  /** The control plane role's ARN, the only one allowed the marker. Required. */
  controlPlaneRoleArn: pulumi.Input<string>;
  /** Extra tags on the parameter. Required (may be empty). */
  tags: Record<string, string>;
}

/** The init marker parameter and the control plane role's access to it. */
export class InitMarker extends pulumi.ComponentResource {
  /** The parameter's name, master 0's INIT_MARKER. */
  public readonly parameterName: string;
  /** The parameter itself: master 0 depends on it, so it exists at first boot. */
  public readonly parameter: aws.ssm.Parameter;

  constructor(name: string, args: InitMarkerArgs, opts?: pulumi.ComponentResourceOptions) {
    const parameterName = initMarkerName(args.clusterName);
    super("kubeadm-ha:index:InitMarker", name, {}, opts);
    this.parameter = new aws.ssm.Parameter(
      `${name}-parameter`,
      {
        name: parameterName,
        type: "String",
        // Not a secret: `insecureValue` keeps it readable in the state and the console.
        insecureValue: INIT_MARKER_PENDING,
        description: `${args.clusterName}: "${INIT_MARKER_PENDING}" until master 0's first kubeadm init succeeds; then no machine initialises this cluster again`,
        tags: clusterTags(args.clusterName, args.tags, parameterName),
      },
      // Master 0 writes the value; `pulumi up` must never set it back to pending.
      { parent: this, ignoreChanges: ["insecureValue", "value"] },
    );
    new aws.iam.RolePolicy(
      `${name}-access`,
      { name: "init-marker", role: pulumi.output(args.controlPlaneRoleArn).apply(roleNameOfArn), policy: this.parameter.arn.apply((arn) => JSON.stringify(initMarkerPolicy(arn))) },
      { parent: this },
    );
    this.parameterName = parameterName;
    this.registerOutputs({ parameterName: this.parameterName });
  }
}
