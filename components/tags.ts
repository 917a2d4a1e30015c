/**
 * Tags every AWS resource of the cluster carries. `kubernetes.io/cluster/<name>: owned` is how the
 * AWS cloud-controller-manager and load balancer controllers find the cluster's subnets and
 * security groups.
 */
export function clusterTags(clusterName: string, extra: Record<string, string> = {}, name?: string): Record<string, string> {
  return {
    ...extra,
    [`kubernetes.io/cluster/${clusterName}`]: "owned",
    "kubeadm-ha/cluster": clusterName,
    ...(name ? { Name: name } : {}),
  };
}
