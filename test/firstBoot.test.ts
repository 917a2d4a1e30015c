/**
 * A machine's first boot never races the network it needs (issue 15): every master, external etcd
 * member and worker launch template depends on the NAT gateways, the private default routes and
 * their associations and the S3 gateway endpoint, and the Kubernetes nodes on the internal API
 * load balancer's listener. Mocks do not model the engine's order, so this reads the dependency
 * graph the program hands the engine (each registration's dependencies).
 */
import * as fs from "fs";
import * as path from "path";
import { Cluster } from "../components/cluster";
import { parseConfig } from "../config";
import { rawStackConfig } from "../scripts/failoverBudget";
import { stackConfig } from "../scripts/renderLib";
import { Registration, ofType, settle, setupMocks } from "./mocks";

const ROOT = path.resolve(__dirname, "..");
const STACKS = ["dev", "prod"] as const;
let regs: Registration[];

beforeAll(async () => {
  regs = await setupMocks();
  for (const stack of STACKS)
    new Cluster(stack, { config: parseConfig(rawStackConfig(stackConfig(fs.readFileSync(path.join(ROOT, `Pulumi.${stack}.yaml`), "utf8")))) });
  await settle();
}, 120000);

const nameOf = (urn: string) => urn.slice(urn.lastIndexOf("::") + 2);

describe.each(STACKS)("%s", (stack) => {
  const mine = () => regs.filter((r) => r.name.startsWith(`${stack}-`));
  const names = (type: string) => ofType(mine(), type).map((r) => r.name).sort();
  const egress = () =>
    [
      ...names("aws:ec2/natGateway:NatGateway"),
      ...mine().filter((r) => r.type === "aws:ec2/route:Route" && r.name.includes("-private-default-route-")).map((r) => r.name),
      ...mine().filter((r) => r.type === "aws:ec2/routeTableAssociation:RouteTableAssociation" && r.name.includes("-private-rta-")).map((r) => r.name),
      ...names("aws:ec2/vpcEndpoint:VpcEndpoint"),
    ].sort();
  const internalListener = () => ofType(mine(), "aws:lb/listener:Listener").filter((l) => !l.name.includes("-public-")).map((l) => l.name);
  const machines = () => [...ofType(mine(), "aws:ec2/instance:Instance"), ...ofType(mine(), "aws:ec2/launchTemplate:LaunchTemplate")];

  it("every machine waits for the NAT gateways, the private routes and the S3 endpoint its first boot uses", () => {
    const want = egress();
    // One NAT a zone in prod, one in dev; a route and an association a private subnet; one endpoint.
    expect(want.length).toBe((stack === "prod" ? 3 : 1) + 3 + 3 + 1);
    expect(machines().length).toBeGreaterThan(0);
    for (const m of machines()) {
      const deps = new Set(m.options.dependencies.map(nameOf));
      expect({ machine: m.name, missing: want.filter((d) => !deps.has(d)) }).toEqual({ machine: m.name, missing: [] });
    }
  });

  it("masters and workers wait for the internal API load balancer's listener; etcd members, which never call the API, do not", () => {
    const [listener] = internalListener();
    expect(listener).toBe(`${stack}-api-listener`);
    for (const m of machines()) {
      const deps = new Set(m.options.dependencies.map(nameOf));
      const isEtcd = m.inputs.tags?.["kubeadm-ha/role"] === "etcd";
      expect({ machine: m.name, waits: deps.has(listener) }).toEqual({ machine: m.name, waits: !isEtcd });
      // Never on the people's load balancer: no node uses it.
      expect(deps.has(`${stack}-api-public-listener`)).toBe(false);
    }
  });
});
