/**
 * The one check that every machine's user data fits EC2's 16 KB with our 4 KB to spare, per node
 * role and topology, from the run's shared renders (test/capture.ts; the numbers
 * docs/performance.md lists come from the same measure, scripts/userDataSizes.ts). Renders: dev
 * (stacked etcd), dev with add-ons installed by master 0 (the largest master 0) and prod (external
 * etcd, internal NLB).
 */
import { EC2_USER_DATA_LIMIT, SIZE_VARIANTS, USER_DATA_BUDGET, UserDataSize, measureFiles, roleOf, sizeTable } from "../scripts/userDataSizes";
import { VARIANTS, captureAll } from "./capture";

let sizes: UserDataSize[] = [];

beforeAll(async () => {
  const variants = [VARIANTS.dev, VARIANTS.devNodesAddons, VARIANTS.prod];
  sizes = (await captureAll(variants)).flatMap((c) => measureFiles(c.variant, c.files));
}, 120000);

it("measures the variants docs/performance.md lists", () => {
  expect([VARIANTS.dev, VARIANTS.devNodesAddons, VARIANTS.prod].map(({ id, stack, ...rest }) => ({ id, stack, overrides: "overrides" in rest ? rest.overrides : undefined }))).toEqual(
    SIZE_VARIANTS.map(({ id, stack, overrides }) => ({ id, stack, overrides })),
  );
});

describe("gzipped user data", () => {
  it("budget: EC2's 16,384 bytes less 4,096 spare", () => {
    expect([EC2_USER_DATA_LIMIT, USER_DATA_BUDGET]).toEqual([16384, 12288]);
  });

  it("covers every role in both topologies", () => {
    const seen = (variant: string) => [...new Set(sizes.filter((s) => s.variant === variant).map((s) => `${s.topology} ${s.role}`))].sort();
    expect(seen("dev")).toEqual(["stacked master 0", "stacked other master", "stacked worker"]);
    expect(seen("dev+nodes-addons")).toEqual(["stacked master 0", "stacked other master", "stacked worker"]);
    expect(seen("prod")).toEqual(["external etcd member", "external master 0", "external other master", "external worker"]);
    expect(sizes.filter((s) => s.variant === "prod").map((s) => s.node)).toEqual([
      "prod-control-plane-master-0",
      "prod-control-plane-master-1",
      "prod-control-plane-master-2",
      "prod-etcd-member-0",
      "prod-etcd-member-1",
      "prod-etcd-member-2",
      "prod-pool-general-launch-template",
      "prod-pool-memory-launch-template",
    ]);
  });

  it(`every node stays within ${USER_DATA_BUDGET} bytes`, () => {
    const over = sizes.filter((s) => s.gzipBytes > USER_DATA_BUDGET).map((s) => `${s.variant} ${s.node}: ${s.gzipBytes}`);
    expect(over).toEqual([]);
  });

  it("the table lists the largest node of each role", () => {
    const table = sizeTable(sizes).split("\n");
    expect(table).toHaveLength(2 + 3 + 3 + 4);
    const prodMaster0 = sizes.find((s) => s.node === "prod-control-plane-master-0")!;
    expect(table).toContain(`| prod | external | master 0 | prod-control-plane-master-0 | ${prodMaster0.gzipBytes} | ${((100 * prodMaster0.gzipBytes) / 16384).toFixed(0)}% | ${12288 - prodMaster0.gzipBytes} |`);
  });
});

describe("roleOf", () => {
  it.each([
    ["dev-control-plane-master-0", "master 0"],
    ["dev-control-plane-master-10", "other master"],
    ["prod-etcd-member-2", "etcd member"],
    ["prod-pool-memory-launch-template", "worker"],
  ])("%s is %s", (node, role) => expect(roleOf(node)).toBe(role));

  it("refuses a node it does not know", () => {
    expect(() => roleOf("prod-bastion")).toThrow("no node role for user data of prod-bastion");
  });
});
