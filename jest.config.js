/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: "node",
  // Jest 30 deletes globals between files; @pulumi/pulumi keeps its runtime state in one.
  testEnvironmentOptions: { globalsCleanup: "off" },
  // Type-checking happens once in `tsc --noEmit`; swc only strips types (3 s instead of 17 s a file).
  transform: { "^.+\\.ts$": ["@swc/jest", { jsc: { parser: { syntax: "typescript" }, target: "es2022" } }] },
  testMatch: ["<rootDir>/test/**/*.test.ts"],
  testTimeout: 60000,
  // The real Kubernetes and etcd binaries on PATH when they are built (test/k8s/build.sh), and a
  // directory a run for the program evaluations test files share (test/capture.ts).
  globalSetup: "<rootDir>/test/tier/globalSetup.ts",
  globalTeardown: "<rootDir>/test/tier/globalTeardown.ts",
};
