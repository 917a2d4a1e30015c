/**
 * What EC2 offers (ec2.ts): the provider's lists, and the table of sizes below `large` that the
 * masters' kubeadm preflight minimum is checked against.
 */
import { AWS_PROVIDER_VERSION, INSTANCE_TYPES, LARGE_FLOOR, LISTED_BELOW_LARGE, REGIONS, isBelowLarge, listedBelowLarge, minimumSize } from "../ec2";
import { masterSizeProblem } from "../config";

describe("the AWS provider's lists", () => {
  it("come from the pinned @pulumi/aws", () => {
    expect(AWS_PROVIDER_VERSION).toBe(require("../package.json").dependencies["@pulumi/aws"]);
  });

  it("hold the regions and types the stacks use, and not made-up ones", () => {
    for (const r of ["eu-west-1", "us-east-1", "us-gov-west-1", "cn-north-1"]) expect(REGIONS.has(r)).toBe(true);
    expect(REGIONS.has("eu-west-9")).toBe(false);
    for (const t of ["t3.medium", "t3.large", "m7i.large", "m7i.xlarge", "r7i.xlarge", "m6i.large", "m5.large", "c7g.large"]) expect(INSTANCE_TYPES.has(t)).toBe(true);
    expect(INSTANCE_TYPES.has("m7i.medium")).toBe(false);
  });
});

describe("sizes below large", () => {
  const below = [...INSTANCE_TYPES].filter(isBelowLarge).sort();

  it("every one the provider lists is in the table or is a .medium of 1 vCPU", () => {
    // A new burstable family (t5.small, say) fails here until the table lists it from AWS's specifications.
    const unlisted = below.filter((t) => !listedBelowLarge(t));
    expect(unlisted.filter((t) => !t.endsWith(".medium"))).toEqual([]);
    expect(unlisted.filter((t) => /^t\d/.test(t))).toEqual([]);
    for (const t of unlisted) expect(minimumSize(t)).toEqual({ vcpus: 1 });
  });

  it("the table lists only types that exist", () => {
    expect(LISTED_BELOW_LARGE.filter((t) => !INSTANCE_TYPES.has(t) || !isBelowLarge(t))).toEqual([]);
    expect(LISTED_BELOW_LARGE).toHaveLength(1 + 4 + 3 * 4 + 2 + 1);
  });

  it.each([
    ["t2.nano", { vcpus: 1, memoryMiB: 512 }],
    ["t2.small", { vcpus: 1, memoryMiB: 2048 }],
    ["t2.medium", { vcpus: 2, memoryMiB: 4096 }],
    ["t3.nano", { vcpus: 2, memoryMiB: 512 }],
    ["t3a.micro", { vcpus: 2, memoryMiB: 1024 }],
    ["t4g.small", { vcpus: 2, memoryMiB: 2048 }],
    ["t3.medium", { vcpus: 2, memoryMiB: 4096 }],
    ["t1.micro", { vcpus: 1, memoryMiB: 627 }],
    ["m1.small", { vcpus: 1, memoryMiB: 1740 }],
    ["m1.medium", { vcpus: 1, memoryMiB: 3840 }],
    ["c1.medium", { vcpus: 2, memoryMiB: 1740 }],
    ["m7g.medium", { vcpus: 1 }],
    ["m7i.large", LARGE_FLOOR],
    ["c4.large", LARGE_FLOOR],
    ["m7i.48xlarge", LARGE_FLOOR],
    ["c7i.metal-24xl", LARGE_FLOOR],
  ])("minimumSize(%s)", (t, size) => expect(minimumSize(t)).toEqual(size));

  it("a large has 2 vCPUs and 3.75 GiB", () => expect(LARGE_FLOOR).toEqual({ vcpus: 2, memoryMiB: 3840 }));

  it("masters: exactly the types with 2 vCPUs and 2 GiB pass, at every size the provider lists", () => {
    const passing = below.filter((t) => masterSizeProblem(t) === undefined);
    expect(passing).toEqual(["t2.medium", "t3.medium", "t3.small", "t3a.medium", "t3a.small", "t4g.medium", "t4g.small"]);
    expect([...INSTANCE_TYPES].filter((t) => !isBelowLarge(t) && masterSizeProblem(t) !== undefined)).toEqual([]);
  });
});
