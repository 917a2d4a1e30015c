/**
 * The Cluster component built under Pulumi's mocks as the stack `name`, for the day-2 tests that read
 * the dependency graph it builds (test/day2-wiring.test.ts) or what it renders
 * (test/day2-plan-program.test.ts).
 */
import * as pulumi from "@pulumi/pulumi";
import { ClusterConfig } from "../config";
import { Cluster } from "../components/cluster";
import { settle, valueOf } from "./mocks";

/** Builds the cluster and waits for it; each resource's options, by name, go into `opts`. */
export async function buildCluster(name: string, config: ClusterConfig, opts: Map<string, pulumi.CustomResourceOptions>): Promise<Cluster> {
  const cluster = new Cluster(name, { config: { ...config, clusterName: name } }, {
    transformations: [
      (a) => {
        opts.set(a.name, a.opts as pulumi.CustomResourceOptions);
        return undefined;
      },
    ],
  });
  await valueOf(cluster.kubeconfig);
  await settle();
  return cluster;
}
