/**
 * What EC2 offers, as far as the stack config's rules need it: the regions and instance types
 * that exist, and how many vCPUs and how much memory the small sizes have.
 *
 * Regions and instance types come from @pulumi/aws's own enums (generated from the AWS provider's
 * schema), so they move with the provider version in package.json: a region or type AWS launched
 * after that release is refused until the provider is updated.
 */
import { Region } from "@pulumi/aws/types/enums";
import { InstanceType } from "@pulumi/aws/types/enums/ec2";
import awsPackage from "@pulumi/aws/package.json";

/** The @pulumi/aws release whose lists these are; messages name it so a refusal of a brand-new type explains itself. */
export const AWS_PROVIDER_VERSION: string = awsPackage.version;

/** Every region the AWS provider knows. */
export const REGIONS: ReadonlySet<string> = new Set(Object.values(Region));

/** Every instance type the AWS provider knows. */
export const INSTANCE_TYPES: ReadonlySet<string> = new Set(Object.values(InstanceType));

/** vCPUs and memory of one instance type; memory undefined where the rule below does not need it. */
export interface MachineSize {
  vcpus: number;
  memoryMiB?: number;
}

/**
 * Sizes below `large`, the only ones with fewer than 2 vCPUs or less than 2 GiB: a `large` has 2
 * vCPUs and at least 3.75 GiB in every family, and larger sizes have more. The burstable families
 * and the first generation are listed; every other size below `large` in the provider's list is a
 * `.medium` of 1 vCPU (a1, c6g, m7a, r8g, x8g, ...).
 *
 * Source: the Amazon EC2 instance types guide, "Specifications" of general purpose, compute
 * optimized, memory optimized and previous generation instances
 * (https://docs.aws.amazon.com/ec2/latest/instancetypes/gp.html and .../pg.html), read 2026-12-04.
 * test/ec2.test.ts fails when the provider's list gains a size below `large` this rule does not cover.
 */
const BELOW_LARGE: Record<string, Required<MachineSize>> = {
  "t1.micro": { vcpus: 1, memoryMiB: 627 },
  "t2.nano": { vcpus: 1, memoryMiB: 512 },
  "t2.micro": { vcpus: 1, memoryMiB: 1024 },
  "t2.small": { vcpus: 1, memoryMiB: 2048 },
  "t2.medium": { vcpus: 2, memoryMiB: 4096 },
  ...burstable("t3"),
  ...burstable("t3a"),
  ...burstable("t4g"),
  "m1.small": { vcpus: 1, memoryMiB: 1740 },
  "m1.medium": { vcpus: 1, memoryMiB: 3840 },
  "c1.medium": { vcpus: 2, memoryMiB: 1740 },
};

/** t3, t3a and t4g: 2 vCPUs at every size, 0.5, 1, 2 and 4 GiB from nano to medium. */
function burstable(family: string): Record<string, Required<MachineSize>> {
  return {
    [`${family}.nano`]: { vcpus: 2, memoryMiB: 512 },
    [`${family}.micro`]: { vcpus: 2, memoryMiB: 1024 },
    [`${family}.small`]: { vcpus: 2, memoryMiB: 2048 },
    [`${family}.medium`]: { vcpus: 2, memoryMiB: 4096 },
  };
}

/** The floor of every `large` and bigger size: 2 vCPUs, 3.75 GiB (c4.large). */
export const LARGE_FLOOR: Required<MachineSize> = { vcpus: 2, memoryMiB: 3840 };

/**
 * The vCPUs and memory an instance type has at least: exact for the listed sizes below `large`,
 * 1 vCPU for any other `.medium`, and {@link LARGE_FLOOR} for `large` and up.
 */
export function minimumSize(instanceType: string): MachineSize {
  const listed = BELOW_LARGE[instanceType];
  if (listed) return listed;
  if (/\.medium$/.test(instanceType)) return { vcpus: 1 };
  return LARGE_FLOOR;
}

/** Sizes below `large`, listed or not: what test/ec2.test.ts checks the rule against. */
export const isBelowLarge = (instanceType: string): boolean => /\.(nano|micro|small|medium)$/.test(instanceType);

/** The types the table lists. */
export const LISTED_BELOW_LARGE: readonly string[] = Object.keys(BELOW_LARGE);

/** True when the table lists the type. */
export const listedBelowLarge = (instanceType: string): boolean => instanceType in BELOW_LARGE;
