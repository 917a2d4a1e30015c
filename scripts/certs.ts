/**
 * `npm run certs -- <stack>`: every certificate, key and token a cluster of the stack carries, who
 * signs it, for how long, and what renews it (components/certificates.ts). For a deployed stack,
 * `pulumi stack output certificateExpiry` gives the dates of the ones Pulumi signs. Exits 2 on usage
 * errors and unknown stacks, 1 on an invalid stack config.
 */
import * as fs from "fs";
import * as path from "path";
import { parseConfig } from "../config";
import { certificateInventory, certificateTable } from "../components/certificates";
import { rawStackConfig } from "./failoverBudget";
import { stackConfig } from "./renderLib";

const ROOT = path.resolve(__dirname, "..");

function main(): number {
  const stacks = fs.readdirSync(ROOT).filter((f) => /^Pulumi\.[^.]+\.yaml$/.test(f)).map((f) => f.split(".")[1]).sort();
  const argv = process.argv.slice(2);
  if (argv.length !== 1 || !stacks.includes(argv[0])) {
    console.error(`usage: npm run certs -- <stack>\nstacks: ${stacks.join(", ")}`);
    return 2;
  }
  const config = parseConfig(rawStackConfig(stackConfig(fs.readFileSync(path.join(ROOT, `Pulumi.${argv[0]}.yaml`), "utf8"))));
  console.log(`Certificates and tokens of stack ${argv[0]} (etcd ${config.etcd.topology}):\n`);
  console.log(certificateTable(certificateInventory(config)));
  console.log(`Dates of the ones Pulumi signs, once deployed: pulumi stack output certificateExpiry --stack ${argv[0]}`);
  console.log("Force a renewal on a machine: sudo systemctl start kubeadm-ha-cert-renew.service (README, Certificates and tokens).");
  return 0;
}

try {
  process.exitCode = main();
} catch (e: unknown) {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
}
