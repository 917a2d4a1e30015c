// @ts-check
/**
 * Mutation testing: `npm run test:mutation -- <file>...` (scripts/mutation.ts picks the fast-tier
 * tests that kill each file's mutants and passes them here in MUTATION_TESTS). Not part of
 * `npm test` or CI: a run over one file takes minutes to an hour on 2 cores. Scores and how they
 * were measured: docs/mutation-testing.md.
 * @type {import('@stryker-mutator/api/core').PartialStrykerOptions}
 */
const tests = (process.env.MUTATION_TESTS ?? "").split(",").filter(Boolean);

export default {
  packageManager: "npm",
  testRunner: "jest",
  jest: {
    projectType: "custom",
    configFile: "jest.unit.config.js",
    // The tests are chosen per file (scripts/mutation.ts), not by jest's import graph: nearly every
    // test imports config.ts.
    enableFindRelatedTests: false,
    config: { maxWorkers: 1, ...(tests.length ? { testMatch: tests.map((t) => `<rootDir>/${t}`) } : {}) },
  },
  coverageAnalysis: "perTest",
  mutate: ["config.ts", "cloud-init/**/*.ts", "components/**/*.ts"],
  // The machine has 2 cores shared with others.
  concurrency: 1,
  // Added to 1.5 x a mutant's normal test time: a mutant that loops forever costs this much.
  timeoutMS: 20000,
  reporters: ["clear-text", "progress", "json"],
  jsonReporter: { fileName: process.env.MUTATION_REPORT ?? "reports/mutation/mutation.json" },
  ignorePatterns: ["/.cache", "/out", "/reports", "/bin"],
  tempDirName: ".stryker-tmp",
  cleanTempDir: "always",
};
