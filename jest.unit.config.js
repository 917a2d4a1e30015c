/**
 * The fast tier, `npm run test:unit`: every test file that needs no external process. `npm test`
 * runs these and the slow tier below. A file here that starts a process fails
 * (test/tier/noProcesses.ts): move that test to a slow-tier file and list it.
 */
const base = require("./jest.config");

/** The slow tier: files that run other programs. */
const SLOW_TESTS = [
  // Real Kubernetes and etcd binaries.
  "-real\\.test\\.ts$",
  // Bootstrap scripts run by bash against stub commands, and shellcheck.
  "/test/bootstrap-scripts\\.test\\.ts$",
  "/test/boot-script\\.test\\.ts$",
  "/test/addons-script\\.test\\.ts$",
  "/test/etcd-rejoin\\.test\\.ts$",
  "/test/day2-script\\.test\\.ts$",
  // What SSM runs, by dash with aws a stub.
  "/test/day2-rollout\\.test\\.ts$",
  // The CLIs in their own node process; cloud-init's schema check.
  "/test/render-cli\\.test\\.ts$",
  "/test/failover-cli\\.test\\.ts$",
  // openssl, systemd-analyze; real HTTPS servers and the real clock.
  "/test/pki-openssl\\.test\\.ts$",
  "/test/etcdBackup-systemd\\.test\\.ts$",
  "/test/readiness\\.test\\.ts$",
  // The AWS CLI against moto, git, the setup script, the CLIs of the render review and certificates.
  "/test/aws-moto\\.test\\.ts$",
  "/test/operatorManual\\.test\\.ts$",
  "/test/setup\\.test\\.ts$",
  "/test/gitignore\\.test\\.ts$",
  "/test/renderReview\\.test\\.ts$",
  "/test/certificates\\.test\\.ts$",
  // The program evaluated twice for each of issue 14's scenarios under the mocks (about 80 s).
  "/test/day2-plan-program\\.test\\.ts$",
  // Whole files for one test that starts a process each: splitting them is a follow-up.
  "/test/dayTwoUnits\\.test\\.ts$",
  "/test/flows\\.test\\.ts$",
  // iptables in private network namespaces, systemd-analyze.
  "/test/imdsGuard\\.test\\.ts$",
];

/** @type {import('jest').Config} */
module.exports = {
  ...base,
  testPathIgnorePatterns: ["/node_modules/", ...SLOW_TESTS],
  // Both cores (jest's default leaves one idle): the files that share a stack's evaluation wait
  // for each other only while it is computed (test/capture.ts).
  maxWorkers: 2,
  setupFiles: ["<rootDir>/test/tier/noProcesses.ts"],
};
// Not enumerable: jest warns of any option it does not know; test/tiers.test.ts reads it.
Object.defineProperty(module.exports, "SLOW_TESTS", { value: SLOW_TESTS, enumerable: false });
