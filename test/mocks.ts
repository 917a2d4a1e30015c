/**
 * Pulumi mocks that record every registration and answer with deterministic, realistic state.
 *
 * Used by the unit tests and by `npm run render`, so what the tests assert is what the render shows.
 * TLS resources answer with fixed test PEMs from test/fixtures so that code parsing real PEM (the
 * discovery hash, kubeconfig) runs for real and renders are byte-identical from run to run.
 */
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";

export interface Registration {
  type: string;
  name: string;
  id: string;
  inputs: Record<string, any>;
  state: Record<string, any>;
  /** Resource options as the engine receives them (the mocks API itself passes none). */
  options: RegistrationOptions;
}

export interface RegistrationOptions {
  deleteBeforeReplace: boolean;
  ignoreChanges: string[];
  retainOnDelete: boolean;
  /** URNs of what the resource depends on, `dependsOn` included: the engine creates them first. */
  dependencies: string[];
}

const fixture = (f: string) => fs.readFileSync(path.join(__dirname, "fixtures", f), "utf8");
export const FIXTURES = {
  caCert: fixture("ca.crt"),
  caKey: fixture("ca.key"),
  clientCert: fixture("client.crt"),
  clientKey: fixture("client.key"),
  clientCsr: fixture("client.csr"),
};

/** A fixed-length string from a fixed alphabet, so random resources are deterministic. */
function pseudoRandom(name: string, length: number, alphabet: string): string {
  let h = 0;
  let out = "";
  for (let i = 0; i < length; i++) {
    h = (h * 31 + name.charCodeAt(i % name.length) + i) >>> 0;
    out += alphabet[h % alphabet.length];
  }
  return out;
}

/** What the mocks answer for a `RandomBytes` of this name: fixed bytes, so tests can look for the exact key. */
export function mockRandomBytes(name: string, length: number): { base64: string; hex: string } {
  const hex = pseudoRandom(name, length * 2, "0123456789abcdef");
  return { base64: Buffer.from(hex, "hex").toString("base64"), hex };
}

/** A certificate's end of validity as if signed at 2026-01-01T00:00:00Z (a fixed date, so renders stay byte-identical). */
export function mockValidityEnd(hours: number): string {
  return new Date(Date.UTC(2026, 0, 1) + hours * 3600000).toISOString().replace(".000Z", "Z");
}

/** Outputs a real provider would compute, by resource type. */
function computedState(type: string, name: string, inputs: Record<string, any>, region: string): Record<string, any> {
  const arnOf = (service: string, resource: string) => `arn:aws:${service}:${region}:123456789012:${resource}`;
  switch (type) {
    case "aws:ec2/vpc:Vpc":
      return { arn: arnOf("ec2", `vpc/${name}-id`), defaultSecurityGroupId: `${name}-default-sg` };
    case "aws:ec2/eip:Eip":
      // A deterministic public address in TEST-NET-3 (RFC 5737), one per EIP name.
      return { publicIp: `203.0.113.${(parseInt(pseudoRandom(name, 3, "0123456789"), 10) % 250) + 1}`, allocationId: `${name}-alloc` };
    case "aws:lb/loadBalancer:LoadBalancer":
      return { arn: arnOf("elasticloadbalancing", `loadbalancer/net/${inputs.name ?? name}/0123456789abcdef`), dnsName: `${inputs.name ?? name}-0123456789abcdef.elb.${region}.amazonaws.com`, zoneId: "Z2IFOLAFXWLO4F" };
    case "aws:lb/targetGroup:TargetGroup":
      return { arn: arnOf("elasticloadbalancing", `targetgroup/${inputs.name ?? name}/0123456789abcdef`) };
    case "aws:kms/key:Key":
      return { arn: arnOf("kms", `key/${name}-id`), keyId: `${name}-id` };
    case "aws:ssm/parameter:Parameter":
      // A name that starts with "/" follows "parameter" directly in the ARN.
      return { arn: arnOf("ssm", `parameter${String(inputs.name).startsWith("/") ? "" : "/"}${inputs.name}`) };
    case "aws:secretsmanager/secret:Secret":
      return { arn: arnOf("secretsmanager", `secret:${inputs.name ?? name}-AbCdEf`) };
    case "aws:iam/role:Role":
      return { arn: `arn:aws:iam::123456789012:role/${inputs.name ?? name}`, name: inputs.name ?? name };
    case "aws:iam/instanceProfile:InstanceProfile":
      return { arn: `arn:aws:iam::123456789012:instance-profile/${inputs.name ?? name}`, name: inputs.name ?? name };
    case "aws:s3/bucket:Bucket":
    case "aws:s3/bucketV2:BucketV2":
      return { arn: `arn:aws:s3:::${inputs.bucket ?? name}`, bucket: inputs.bucket ?? name };
    case "aws:ec2/instance:Instance":
      return {
        arn: arnOf("ec2", `instance/${name}-id`),
        privateDns: inputs.privateIp ? `ip-${String(inputs.privateIp).replace(/\./g, "-")}.${region}.compute.internal` : undefined,
      };
    case "aws:ec2/launchTemplate:LaunchTemplate":
      return { arn: arnOf("ec2", `launch-template/${name}-id`), name: `${inputs.namePrefix ?? ""}0001`, latestVersion: 1, defaultVersion: 1 };
    case "aws:sqs/queue:Queue":
      return { arn: arnOf("sqs", inputs.name ?? name), url: `https://sqs.${region}.amazonaws.com/123456789012/${inputs.name ?? name}` };
    case "aws:cloudwatch/eventRule:EventRule":
      return { arn: arnOf("events", `rule/${inputs.name ?? name}`), name: inputs.name ?? name };
    case "aws:autoscaling/group:Group":
      return { arn: arnOf("autoscaling", `autoScalingGroup:0123:autoScalingGroupName/${inputs.namePrefix ?? ""}0001`), name: `${inputs.namePrefix ?? ""}0001` };
    case "tls:index/privateKey:PrivateKey":
      return { privateKeyPem: FIXTURES.caKey, publicKeyPem: "-----BEGIN PUBLIC KEY-----\n(mock)\n-----END PUBLIC KEY-----\n" };
    case "tls:index/selfSignedCert:SelfSignedCert":
      return { certPem: FIXTURES.caCert, validityEndTime: mockValidityEnd(inputs.validityPeriodHours) };
    case "tls:index/certRequest:CertRequest":
      return { certRequestPem: FIXTURES.clientCsr };
    case "tls:index/locallySignedCert:LocallySignedCert":
      return { certPem: FIXTURES.clientCert, validityEndTime: mockValidityEnd(inputs.validityPeriodHours) };
    // Dynamic providers do not run under mocks: what their create would return (day2/resources.ts).
    case "pulumi-nodejs:dynamic:ImagePin":
      return { imageId: inputs.candidate };
    case "pulumi-nodejs:dynamic:ClusterState":
      return { plan: [] };
    case "random:index/randomBytes:RandomBytes":
      return mockRandomBytes(name, inputs.length);
    case "random:index/randomString:RandomString": {
      const alphabet = (inputs.upper === false ? "" : "ABCDEFGHIJKLMNOPQRSTUVWXYZ") + (inputs.lower === false ? "" : "abcdefghijklmnopqrstuvwxyz") + (inputs.numeric === false ? "" : "0123456789");
      return { result: pseudoRandom(name, inputs.length, alphabet) };
    }
    default:
      return {};
  }
}

/** What the mocks answer for the AMI lookup and the caller's account. */
export const MOCK_AMI = { id: "ami-0123456789abcdef0", name: "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20261101" };
export const MOCK_ACCOUNT = "123456789012";

/** A value the mocks made up where AWS would answer with its own. */
export interface InventedValue {
  value: string;
  /** Where it came from: `<resource name>.<attribute>`, or the data source. */
  source: string;
}

/**
 * Every value the mocks invented for these registrations: each resource's ID, each output the
 * mocks computed rather than echoed (ARNs, DNS names, generated names, addresses), the AMI and the
 * account. Not `privateDns`: AWS derives it from the private IP the program itself sets, so the
 * mock's value is the real one.
 */
export function inventedValues(regs: Registration[]): InventedValue[] {
  const out: InventedValue[] = [
    { value: MOCK_AMI.id, source: "aws.ec2.getAmi id" },
    { value: MOCK_AMI.name, source: "aws.ec2.getAmi name" },
    { value: MOCK_ACCOUNT, source: "aws.getCallerIdentity accountId (and every ARN's account)" },
  ];
  for (const r of regs) {
    // Components and the stack have no cloud ID.
    if (r.type.startsWith("pulumi:") || r.type.startsWith("kubeadm-ha:")) continue;
    out.push({ value: r.id, source: `${r.name} id` });
    // Random bytes, tokens and keys are secrets, not identifiers: never listed.
    if (r.type.startsWith("random:") || r.type.startsWith("tls:")) continue;
    for (const [k, v] of Object.entries(r.state)) {
      if (k === "privateDns" || typeof v !== "string" || v === r.inputs[k] || v.length < 8) continue;
      out.push({ value: v, source: `${r.name}.${k}` });
    }
  }
  const seen = new Set<string>();
  return out.filter((x) => !seen.has(x.value) && seen.add(x.value));
}

/** Installs the mocks and returns the list every registration is appended to. */
export async function setupMocks(opts: { project?: string; stack?: string; region?: string; config?: Record<string, string> } = {}): Promise<Registration[]> {
  const region = opts.region ?? "eu-west-1";
  const registrations: Registration[] = [];
  const project = opts.project ?? "kubeadm-ha";
  if (opts.config) pulumi.runtime.setAllConfig(opts.config);
  let options: RegistrationOptions = { deleteBeforeReplace: false, ignoreChanges: [], retainOnDelete: false, dependencies: [] };
  await pulumi.runtime.setMocks(
    {
      newResource(args: pulumi.runtime.MockResourceArgs): { id: string; state: Record<string, any> } {
        const id = `${args.name}-id`;
        const state = { ...args.inputs, ...computedState(args.type, args.name, args.inputs, region) };
        registrations.push({ type: args.type, name: args.name, id, inputs: args.inputs, state, options });
        return { id, state };
      },
      call(args: pulumi.runtime.MockCallArgs): Record<string, any> {
        switch (args.token) {
          case "aws:ec2/getAmi:getAmi":
            return { id: MOCK_AMI.id, name: MOCK_AMI.name };
          case "aws:index/getCallerIdentity:getCallerIdentity":
            return { accountId: MOCK_ACCOUNT, arn: `arn:aws:iam::${MOCK_ACCOUNT}:user/test`, userId: "test" };
          case "aws:index/getPartition:getPartition":
            return { partition: "aws", dnsSuffix: "amazonaws.com" };
          case "aws:index/getRegion:getRegion":
            return { name: region, region };
          default:
            return args.inputs;
        }
      },
    },
    project,
    opts.stack ?? "test",
    false,
  );
  // The mock monitor calls newResource synchronously inside registerResource, so the request's
  // options read here belong to the registration newResource records next.
  const monitor = pulumi.runtime.getMonitor() as any;
  const register = monitor.registerResource.bind(monitor);
  monitor.registerResource = (req: any, callback: unknown) => {
    options = {
      deleteBeforeReplace: req.getDeletebeforereplace(),
      ignoreChanges: req.getIgnorechangesList(),
      retainOnDelete: req.getRetainondelete() ?? false,
      dependencies: req.getDependenciesList(),
    };
    return register(req, callback);
  };
  return registrations;
}

/** Resolves an Output's value in tests (secrets included). */
export function valueOf<T>(o: pulumi.Input<T>): Promise<T> {
  return new Promise((resolve) => pulumi.output(o).apply((v) => resolve(v as T)));
}

/** Whether an Output is marked secret. */
export function isSecret(o: pulumi.Output<unknown>): Promise<boolean> {
  return (o as any).isSecret as Promise<boolean>;
}

/** Registrations of one type, optionally filtered by name. */
export function ofType(regs: Registration[], type: string): Registration[] {
  return regs.filter((r) => r.type === type);
}

/**
 * Waits until every registration the program started has reached the mocks (the runtime's own
 * RPC queue drain, the same wait `pulumi up` does before it exits).
 */
export async function settle(): Promise<void> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const settings = require("@pulumi/pulumi/runtime/settings") as { waitForRPCs(): Promise<void> };
  await settings.waitForRPCs();
}
