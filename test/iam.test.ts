import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { Registration, ofType, settle, setupMocks, valueOf } from "./mocks";
import type * as IamModule from "../components/iam";
import type * as SecretsModule from "../components/secrets";

let iam: typeof IamModule;
let sm: typeof SecretsModule;
let regs: Registration[];

beforeAll(async () => {
  regs = await setupMocks();
  iam = await import("../components/iam");
  sm = await import("../components/secrets");
});

const ARN = {
  cp: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:kh/bootstrap/control-plane-AbCdEf",
  worker: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:kh/bootstrap/worker-AbCdEf",
  etcd: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:kh/bootstrap/etcd-AbCdEf",
  key: "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
};

describe("secretReadPolicy", () => {
  test.each([
    ["eu-west-1", ARN.worker, ARN.key],
    [
      "us-gov-west-1",
      "arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:kh/bootstrap/worker-AbCdEf",
      "arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    ],
  ])("%s: exactly one secret and its decryption via Secrets Manager", (region, secretArn, keyArn) => {
    expect(iam.secretReadPolicy(secretArn, keyArn, region)).toEqual({
      Version: "2012-10-17",
      Statement: [
        { Sid: "ReadOwnBootstrapSecret", Effect: "Allow", Action: "secretsmanager:GetSecretValue", Resource: secretArn },
        {
          Sid: "DecryptOwnBootstrapSecret",
          Effect: "Allow",
          Action: "kms:Decrypt",
          Resource: keyArn,
          Condition: { StringEquals: { "kms:ViaService": `secretsmanager.${region}.amazonaws.com`, "kms:EncryptionContext:SecretARN": secretArn } },
        },
      ],
    });
  });

  test("serializes with no wildcard anywhere", () => {
    expect(JSON.stringify(iam.secretReadPolicy(ARN.cp, ARN.key, "eu-west-1"))).not.toContain("*");
  });

  test.each([
    ["kh/bootstrap/worker", ARN.key, "eu-west-1", 'secretReadPolicy: secretArn must be a Secrets Manager secret ARN (got "kh/bootstrap/worker")'],
    ["arn:aws:ssm:eu-west-1:123456789012:parameter/x", ARN.key, "eu-west-1", 'secretReadPolicy: secretArn must be a Secrets Manager secret ARN (got "arn:aws:ssm:eu-west-1:123456789012:parameter/x")'],
    ["*", ARN.key, "eu-west-1", 'secretReadPolicy: secretArn must be a Secrets Manager secret ARN (got "*")'],
    [
      ARN.worker,
      "arn:aws:kms:eu-west-1:123456789012:alias/kh-bootstrap",
      "eu-west-1",
      'secretReadPolicy: kmsKeyArn must be a KMS key ARN, not an alias (got "arn:aws:kms:eu-west-1:123456789012:alias/kh-bootstrap")',
    ],
    [ARN.worker, "*", "eu-west-1", 'secretReadPolicy: kmsKeyArn must be a KMS key ARN, not an alias (got "*")'],
    [ARN.worker, ARN.key, "Ireland", 'secretReadPolicy: region must be an AWS region name such as eu-west-1 (got "Ireland")'],
    [ARN.worker, ARN.key, "us-east-1", "secretReadPolicy: secretArn is in eu-west-1, not us-east-1; kms:ViaService would never match"],
    [
      ARN.worker,
      "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
      "eu-west-1",
      "secretReadPolicy: kmsKeyArn is in us-east-1, not eu-west-1; Secrets Manager uses a key of its own region",
    ],
  ])("rejects (%j, %j, %j)", (secretArn, keyArn, region, message) => {
    expect(() => iam.secretReadPolicy(secretArn, keyArn, region)).toThrow(new Error(message));
  });
});

describe("cloud provider policies", () => {
  test("control plane: the CCM action list from cloud-provider-aws, on every resource", () => {
    const doc = iam.controlPlaneCloudProviderPolicy();
    expect(doc.Version).toBe("2012-10-17");
    expect(doc.Statement).toHaveLength(1);
    const [s] = doc.Statement;
    expect(s.Sid).toBe("CloudControllerManager");
    expect(s.Effect).toBe("Allow");
    expect(s.Resource).toBe("*");
    expect(s.Action).toHaveLength(56);
    expect(new Set(s.Action).size).toBe(56);
    const byService = (prefix: string) => (s.Action as string[]).filter((a) => a.startsWith(prefix)).length;
    expect([byService("autoscaling:"), byService("ec2:"), byService("elasticloadbalancing:"), byService("iam:"), byService("kms:")]).toEqual([3, 22, 29, 1, 1]);
    for (const a of [
      "ec2:DescribeInstances",
      "ec2:DescribeInstanceTopology",
      "ec2:CreateRoute",
      "elasticloadbalancing:CreateLoadBalancer",
      "elasticloadbalancing:RegisterTargets",
      "iam:CreateServiceLinkedRole",
      "kms:DescribeKey",
    ])
      expect(s.Action).toContain(a);
    // The CCM never reads secrets or pulls images.
    expect((s.Action as string[]).filter((a) => /^(secretsmanager|ecr|ssm|s3):/.test(a))).toEqual([]);
  });

  // The upstream document, copied verbatim into a fixture: a changed action list fails here.
  const upstream = JSON.parse(fs.readFileSync(path.join(__dirname, "fixtures", "cloud-provider-aws-policies.json"), "utf8"));

  test("control plane actions are upstream's, in upstream order, each once", () => {
    const actions: string[] = upstream.controlPlane.Statement[0].Action;
    expect(actions).toHaveLength(57);
    expect(iam.controlPlaneCloudProviderPolicy().Statement[0].Action).toEqual([...new Set(actions)]);
  });

  test("worker actions are upstream's node policy", () => {
    expect(iam.workerNodePolicy().Statement[0].Action).toEqual(upstream.node.Statement[0].Action);
  });

  test("worker: exactly the node policy from cloud-provider-aws", () => {
    expect(iam.workerNodePolicy()).toEqual({
      Version: "2012-10-17",
      Statement: [
        {
          Sid: "KubeletExternalCloudProvider",
          Effect: "Allow",
          Action: [
            "ec2:DescribeInstances",
            "ec2:DescribeRegions",
            "ecr:GetAuthorizationToken",
            "ecr:BatchCheckLayerAvailability",
            "ecr:GetDownloadUrlForLayer",
            "ecr:GetRepositoryPolicy",
            "ecr:DescribeRepositories",
            "ecr:ListImages",
            "ecr:BatchGetImage",
          ],
          Resource: "*",
        },
      ],
    });
  });

  test("no write action in the worker policy", () => {
    const actions = iam.workerNodePolicy().Statement[0].Action as string[];
    expect(actions.filter((a) => !/:(Describe|Get|List|BatchGet|BatchCheck)/.test(a))).toEqual([]);
  });

  test("policy builders return fresh objects", () => {
    const a = iam.controlPlaneCloudProviderPolicy();
    (a.Statement[0].Action as string[]).push("s3:*");
    expect(iam.controlPlaneCloudProviderPolicy().Statement[0].Action).not.toContain("s3:*");
  });

  test("EC2 trust policy", () => {
    expect(iam.ec2AssumeRolePolicy()).toEqual({
      Version: "2012-10-17",
      Statement: [{ Sid: "Ec2AssumeRole", Effect: "Allow", Principal: { Service: "ec2.amazonaws.com" }, Action: "sts:AssumeRole" }],
    });
  });

  test.each([
    ["aws", "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"],
    ["aws-us-gov", "arn:aws-us-gov:iam::aws:policy/AmazonSSMManagedInstanceCore"],
  ])("managed policy ARN in %s", (partition, arn) => {
    expect(iam.awsManagedPolicyArn(partition, iam.SSM_MANAGED_POLICY)).toBe(arn);
  });

  test.each([
    ["aws", "arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"],
    ["aws-cn", "arn:aws-cn:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"],
  ])("EBS CSI managed policy ARN in %s (under service-role/)", (partition, arn) => {
    expect(iam.awsManagedPolicyArn(partition, iam.EBS_CSI_MANAGED_POLICY)).toBe(arn);
  });
});

describe("NodeRoles component", () => {
  const TAGS = (name: string) => ({ env: "test", "kubernetes.io/cluster/kh": "owned", "kubeadm-ha/cluster": "kh", Name: name });

  async function build(name: string, secretArns: IamModule.NodeRolesArgs["secretArns"]) {
    const before = regs.length;
    const c = new iam.NodeRoles(name, { clusterName: "kh", secretArns, kmsKeyArn: pulumi.output(ARN.key), tags: { env: "test" } });
    await settle();
    return { c, mine: regs.slice(before) };
  }
  const policyOf = (mine: Registration[], resName: string) => JSON.parse(mine.find((r) => r.name === resName)!.inputs.policy);

  describe("stacked etcd (no etcd secret)", () => {
    let c: IamModule.NodeRoles;
    let mine: Registration[];
    beforeAll(async () => ({ c, mine } = await build("st", { controlPlane: pulumi.output(ARN.cp), worker: ARN.worker })));

    test("registers exactly two roles with their policies and profiles", () => {
      expect(mine.map((r) => `${r.type} ${r.name}`).sort()).toEqual(
        [
          "kubeadm-ha:index:NodeRoles st",
          "aws:iam/role:Role st-control-plane",
          "aws:iam/rolePolicyAttachment:RolePolicyAttachment st-control-plane-ssm",
          "aws:iam/rolePolicyAttachment:RolePolicyAttachment st-control-plane-ebs-csi",
          "aws:iam/rolePolicy:RolePolicy st-control-plane-bootstrap-secret",
          "aws:iam/rolePolicy:RolePolicy st-control-plane-cloud-controller-manager",
          "aws:iam/rolePolicy:RolePolicy st-control-plane-join-token-rotation",
          "aws:iam/instanceProfile:InstanceProfile st-control-plane-profile",
          "aws:iam/role:Role st-worker",
          "aws:iam/rolePolicyAttachment:RolePolicyAttachment st-worker-ssm",
          "aws:iam/rolePolicy:RolePolicy st-worker-bootstrap-secret",
          "aws:iam/rolePolicy:RolePolicy st-worker-kubelet",
          "aws:iam/instanceProfile:InstanceProfile st-worker-profile",
        ].sort(),
      );
    });

    test.each([
      ["st-control-plane", "kh-control-plane", "kh: control-plane nodes"],
      ["st-worker", "kh-worker", "kh: worker nodes"],
    ])("role %s is named %s and trusts EC2", (resName, roleName, description) => {
      const r = mine.find((x) => x.name === resName)!;
      expect(r.inputs).toEqual({
        name: roleName,
        description,
        assumeRolePolicy: JSON.stringify(iam.ec2AssumeRolePolicy()),
        tags: TAGS(roleName),
      });
      expect(mine.find((x) => x.name === `${resName}-profile`)!.inputs).toEqual({ name: roleName, role: roleName, tags: TAGS(roleName) });
      expect(mine.find((x) => x.name === `${resName}-ssm`)!.inputs).toEqual({
        role: roleName,
        policyArn: "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
      });
    });

    test("each role reads only its own secret, through the provider's region; the masters also rotate the workers' join token", () => {
      expect(policyOf(mine, "st-control-plane-bootstrap-secret")).toEqual(iam.secretReadPolicy(ARN.cp, ARN.key, "eu-west-1"));
      expect(policyOf(mine, "st-worker-bootstrap-secret")).toEqual(iam.secretReadPolicy(ARN.worker, ARN.key, "eu-west-1"));
      expect(policyOf(mine, "st-control-plane-join-token-rotation")).toEqual(iam.joinTokenRotationPolicy(ARN.worker, ARN.key, "eu-west-1"));
      const cpText = JSON.stringify(mine.filter((r) => r.name.startsWith("st-control-plane") && r.name !== "st-control-plane-join-token-rotation").map((r) => r.inputs));
      const workerText = JSON.stringify(mine.filter((r) => r.name.startsWith("st-worker")).map((r) => r.inputs));
      expect(cpText).toContain(ARN.cp);
      expect(cpText).not.toContain("bootstrap/worker");
      expect(workerText).toContain(ARN.worker);
      expect(workerText).not.toContain("bootstrap/control-plane");
    });

    test("inline policy names and the cloud provider policies", () => {
      const rp = (n: string) => mine.find((r) => r.name === n)!.inputs;
      expect(rp("st-control-plane-bootstrap-secret").name).toBe("bootstrap-secret-read");
      expect(rp("st-control-plane-bootstrap-secret").role).toBe("st-control-plane-id");
      expect(rp("st-control-plane-cloud-controller-manager")).toEqual({
        name: "cloud-controller-manager",
        role: "st-control-plane-id",
        policy: JSON.stringify(iam.controlPlaneCloudProviderPolicy()),
      });
      expect(rp("st-worker-kubelet")).toEqual({ name: "kubelet-external-cloud-provider", role: "st-worker-id", policy: JSON.stringify(iam.workerNodePolicy()) });
    });

    test("outputs: profiles and roles per role, no etcd", async () => {
      expect(Object.keys(c.instanceProfileNames).sort()).toEqual(["controlPlane", "worker"]);
      expect(Object.keys(c.roleArns).sort()).toEqual(["controlPlane", "worker"]);
      expect(await valueOf(c.instanceProfileNames.controlPlane)).toBe("kh-control-plane");
      expect(await valueOf(c.instanceProfileNames.worker)).toBe("kh-worker");
      expect(await valueOf(c.instanceProfileArns.worker)).toBe("arn:aws:iam::123456789012:instance-profile/kh-worker");
      expect(await valueOf(c.roleArns.controlPlane)).toBe("arn:aws:iam::123456789012:role/kh-control-plane");
    });
  });

  describe("external etcd", () => {
    let c: IamModule.NodeRoles;
    let mine: Registration[];
    beforeAll(async () => ({ c, mine } = await build("ex", { controlPlane: ARN.cp, worker: ARN.worker, etcd: ARN.etcd })));

    test("adds an etcd role with only the secret read and SSM", () => {
      expect(ofType(mine, "aws:iam/role:Role").map((r) => r.inputs.name).sort()).toEqual(["kh-control-plane", "kh-etcd", "kh-worker"]);
      expect(ofType(mine, "aws:iam/instanceProfile:InstanceProfile")).toHaveLength(3);
      expect(ofType(mine, "aws:iam/rolePolicyAttachment:RolePolicyAttachment")).toHaveLength(4);
      expect(ofType(mine, "aws:iam/rolePolicy:RolePolicy")).toHaveLength(6);
      expect(mine.filter((r) => r.name.startsWith("ex-etcd")).map((r) => r.name).sort()).toEqual([
        "ex-etcd",
        "ex-etcd-bootstrap-secret",
        "ex-etcd-profile",
        "ex-etcd-ssm",
      ]);
      expect(policyOf(mine, "ex-etcd-bootstrap-secret")).toEqual(iam.secretReadPolicy(ARN.etcd, ARN.key, "eu-west-1"));
    });

    test("no role's policies name another role's secret, but for the masters' rotation of the workers' token", () => {
      const text = (prefix: string) =>
        mine
          .filter((r) => r.type === "aws:iam/rolePolicy:RolePolicy" && r.name.startsWith(prefix) && !r.name.endsWith("-join-token-rotation"))
          .map((r) => r.inputs.policy)
          .join("\n");
      expect(policyOf(mine, "ex-control-plane-join-token-rotation")).toEqual(iam.joinTokenRotationPolicy(ARN.worker, ARN.key, "eu-west-1"));
      const own = { "ex-control-plane": ARN.cp, "ex-worker": ARN.worker, "ex-etcd": ARN.etcd };
      for (const [prefix, arn] of Object.entries(own)) {
        const t = text(prefix);
        expect(t).toContain(arn);
        for (const other of Object.values(own).filter((a) => a !== arn)) expect(t).not.toContain(other);
        expect((t.match(/secretsmanager:GetSecretValue/g) ?? []).length).toBe(1);
      }
    });

    test("outputs include etcd", async () => {
      expect(await valueOf(c.instanceProfileNames.etcd!)).toBe("kh-etcd");
      expect(await valueOf(c.roleArns.etcd!)).toBe("arn:aws:iam::123456789012:role/kh-etcd");
    });
  });

  test("wired to BootstrapSecrets, each role reads its own secret's ARN", async () => {
    const before = regs.length;
    const secrets = new sm.BootstrapSecrets("wired-secrets", {
      clusterName: "kh",
      etcdTopology: "external",
      material: { controlPlane: { "ca.key": "K" }, worker: { "bootstrap-token": "T" }, etcd: { "etcd/ca.key": "E" } },
      tags: {},
    });
    new iam.NodeRoles("wired", { clusterName: "kh", secretArns: secrets.secretArns, kmsKeyArn: secrets.kmsKeyArn, tags: {} });
    await settle();
    const mine = regs.slice(before);
    const key = "arn:aws:kms:eu-west-1:123456789012:key/wired-secrets-kms-key-id";
    for (const [slug] of [["control-plane"], ["worker"], ["etcd"]])
      expect(policyOf(mine, `wired-${slug}-bootstrap-secret`)).toEqual(
        iam.secretReadPolicy(`arn:aws:secretsmanager:eu-west-1:123456789012:secret:kh/bootstrap/${slug}-AbCdEf`, key, "eu-west-1"),
      );
  });

  test("an explicit region overrides the provider's", async () => {
    const before = regs.length;
    new iam.NodeRoles("us", {
      clusterName: "kh",
      region: "us-east-1",
      secretArns: { controlPlane: ARN.cp.replace("eu-west-1", "us-east-1"), worker: ARN.worker.replace("eu-west-1", "us-east-1") },
      kmsKeyArn: ARN.key.replace("eu-west-1", "us-east-1"),
      tags: {},
    });
    await settle();
    const doc = policyOf(regs.slice(before), "us-worker-bootstrap-secret");
    expect(doc.Statement[1].Condition.StringEquals["kms:ViaService"]).toBe("secretsmanager.us-east-1.amazonaws.com");
  });

  test.each([
    ["", "NodeRoles: clusterName must not be empty"],
    ["a".repeat(51), `NodeRoles: clusterName "${"a".repeat(51)}" makes the role name ${"a".repeat(51)}-control-plane longer than IAM's 64 characters`],
  ])("rejects cluster name %j", (clusterName, message) => {
    expect(() => new iam.NodeRoles("bad", { clusterName, secretArns: { controlPlane: ARN.cp, worker: ARN.worker }, kmsKeyArn: ARN.key, tags: {} })).toThrow(
      new Error(message),
    );
  });
});

describe("joinTokenRotationPolicy", () => {
  test("reads and writes the workers' secret only, with the key only through Secrets Manager for that secret", () => {
    expect(iam.joinTokenRotationPolicy(ARN.worker, ARN.key, "eu-west-1")).toEqual({
      Version: "2012-10-17",
      Statement: [
        { Sid: "RotateWorkerJoinToken", Effect: "Allow", Action: ["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"], Resource: ARN.worker },
        {
          Sid: "EncryptWorkerJoinToken",
          Effect: "Allow",
          Action: ["kms:Decrypt", "kms:GenerateDataKey"],
          Resource: ARN.key,
          Condition: { StringEquals: { "kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com", "kms:EncryptionContext:SecretARN": ARN.worker } },
        },
      ],
    });
  });

  test("refuses what secretReadPolicy refuses", () => {
    expect(() => iam.joinTokenRotationPolicy("alias/x", ARN.key, "eu-west-1")).toThrow("secretReadPolicy: secretArn must be a Secrets Manager secret ARN");
  });
});

describe("NodeRoles add-on permissions", () => {
  // [awsCloudControllerManager, ebsCsiDriver] -> the control plane role's resources beyond role,
  // profile, SSM and secret read. Workers and etcd never change.
  const CASES: Array<[boolean | undefined, boolean | undefined, string[]]> = [
    [undefined, undefined, ["cloud-controller-manager", "ebs-csi"]],
    [true, true, ["cloud-controller-manager", "ebs-csi"]],
    [true, false, ["cloud-controller-manager"]],
    [false, true, ["ebs-csi"]],
    [false, false, []],
  ];
  test.each(CASES)("awsCloudControllerManager %s, ebsCsiDriver %s: control plane extras %j", async (awsCloudControllerManager, ebsCsiDriver, extras) => {
    const before = regs.length;
    const name = `addon-${awsCloudControllerManager}-${ebsCsiDriver}`;
    new iam.NodeRoles(name, {
      clusterName: "kh",
      secretArns: { controlPlane: ARN.cp, worker: ARN.worker, etcd: ARN.etcd },
      kmsKeyArn: ARN.key,
      tags: {},
      ...(awsCloudControllerManager === undefined ? {} : { awsCloudControllerManager }),
      ...(ebsCsiDriver === undefined ? {} : { ebsCsiDriver }),
    });
    await settle();
    const mine = regs.slice(before);
    const under = (slug: string) =>
      mine
        .filter((r) => r.name.startsWith(`${name}-${slug}`))
        .map((r) => r.name.slice(`${name}-${slug}`.length).replace(/^-/, ""))
        .sort();
    expect(under("control-plane")).toEqual(["", "bootstrap-secret", "join-token-rotation", "profile", "ssm", ...extras].sort());
    expect(under("worker")).toEqual(["", "bootstrap-secret", "kubelet", "profile", "ssm"]);
    expect(under("etcd")).toEqual(["", "bootstrap-secret", "profile", "ssm"]);

    const ebs = mine.filter((r) => r.name === `${name}-control-plane-ebs-csi`);
    expect(ebs.map((r) => [r.type, r.inputs])).toEqual(
      extras.includes("ebs-csi")
        ? [["aws:iam/rolePolicyAttachment:RolePolicyAttachment", { role: "kh-control-plane", policyArn: "arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy" }]]
        : [],
    );
    const ccm = mine.filter((r) => r.name === `${name}-control-plane-cloud-controller-manager`);
    expect(ccm.map((r) => [r.type, r.inputs.name, r.inputs.policy])).toEqual(
      extras.includes("cloud-controller-manager")
        ? [["aws:iam/rolePolicy:RolePolicy", "cloud-controller-manager", JSON.stringify(iam.controlPlaneCloudProviderPolicy())]]
        : [],
    );
    // Only the control plane ever gets the EBS CSI policy.
    expect(JSON.stringify(mine.filter((r) => !r.name.startsWith(`${name}-control-plane`)).map((r) => r.inputs))).not.toContain("AmazonEBSCSIDriverPolicy");
  });
});

describe("worker lifecycle policies", () => {
  const QUEUE = "arn:aws:sqs:eu-west-1:123456789012:kh-node-termination";

  test("termination handler: its queue only, instance lookups, and lifecycle actions of the cluster's groups only", () => {
    expect(iam.nodeTerminationHandlerPolicy("kh", QUEUE)).toEqual({
      Version: "2012-10-17",
      Statement: [
        { Sid: "ReadTerminationQueue", Effect: "Allow", Action: ["sqs:ReceiveMessage", "sqs:DeleteMessage"], Resource: QUEUE },
        { Sid: "DescribeInstances", Effect: "Allow", Action: "ec2:DescribeInstances", Resource: "*" },
        {
          Sid: "CompleteDrainedTermination",
          Effect: "Allow",
          Action: "autoscaling:CompleteLifecycleAction",
          Resource: "*",
          Condition: { StringEquals: { "autoscaling:ResourceTag/kubeadm-ha/cluster": "kh" } },
        },
      ],
    });
  });

  test.each(["*", "arn:aws:sqs:eu-west-1:123456789012:*", "arn:aws:sns:eu-west-1:123456789012:kh", "kh-node-termination"])("termination handler refuses queue ARN %j", (arn) => {
    expect(() => iam.nodeTerminationHandlerPolicy("kh", arn)).toThrow(`nodeTerminationHandlerPolicy: queueArn must be an SQS queue ARN (got ${JSON.stringify(arn)})`);
  });

  test("cluster-autoscaler: discovery reads everywhere, resizing only groups tagged for this cluster's autoscaler", () => {
    expect(iam.clusterAutoscalerPolicy("kh")).toEqual({
      Version: "2012-10-17",
      Statement: [
        {
          Sid: "DiscoverGroups",
          Effect: "Allow",
          Action: [
            "autoscaling:DescribeAutoScalingGroups",
            "autoscaling:DescribeAutoScalingInstances",
            "autoscaling:DescribeLaunchConfigurations",
            "autoscaling:DescribeScalingActivities",
            "ec2:DescribeInstanceTypes",
            "ec2:DescribeLaunchTemplateVersions",
          ],
          Resource: "*",
        },
        {
          Sid: "ScaleOwnGroups",
          Effect: "Allow",
          Action: ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"],
          Resource: "*",
          Condition: { StringEquals: { "autoscaling:ResourceTag/k8s.io/cluster-autoscaler/kh": "owned" } },
        },
      ],
    });
  });

  test("every write these policies allow is confined to the cluster's own queue or groups", () => {
    const unconditionedWrites = [iam.clusterAutoscalerPolicy("kh"), iam.nodeTerminationHandlerPolicy("kh", QUEUE), iam.workerLaunchHookPolicy("kh")]
      .flatMap((d) => d.Statement)
      .filter((st) => st.Resource === "*" && !st.Condition)
      .flatMap((st) => (Array.isArray(st.Action) ? st.Action : [st.Action]))
      .filter((a) => !/:(Describe|Get|List)/.test(a));
    expect(unconditionedWrites).toEqual([]);
  });

  test("worker: finds its own group, then completes its launch action or marks itself unhealthy, in the cluster's groups only", () => {
    expect(iam.workerLaunchHookPolicy("kh")).toEqual({
      Version: "2012-10-17",
      Statement: [
        { Sid: "FindOwnGroup", Effect: "Allow", Action: "autoscaling:DescribeAutoScalingInstances", Resource: "*" },
        {
          Sid: "ReportReadiness",
          Effect: "Allow",
          Action: ["autoscaling:CompleteLifecycleAction", "autoscaling:SetInstanceHealth"],
          Resource: "*",
          Condition: { StringEquals: { "autoscaling:ResourceTag/kubeadm-ha/cluster": "kh" } },
        },
      ],
    });
  });

  test("NodeRoles: the autoscaler's and the handler's policies on the control plane, the launch hook's on workers, none on etcd", async () => {
    const before = regs.length;
    new iam.NodeRoles("lc", {
      clusterName: "kh",
      secretArns: { controlPlane: ARN.cp, worker: ARN.worker, etcd: ARN.etcd },
      kmsKeyArn: ARN.key,
      tags: {},
      clusterAutoscaler: true,
      terminationQueueArn: pulumi.output(QUEUE),
      workerLaunchHook: true,
    });
    await settle();
    const mine = regs.slice(before).filter((r) => r.type === "aws:iam/rolePolicy:RolePolicy");
    const inputs = (n: string) => mine.find((r) => r.name === n)!.inputs;
    expect(mine.map((r) => r.name).sort()).toEqual(
      [
        "lc-control-plane-bootstrap-secret",
        "lc-control-plane-cloud-controller-manager",
        "lc-control-plane-cluster-autoscaler",
        "lc-control-plane-join-token-rotation",
        "lc-control-plane-node-termination-handler",
        "lc-worker-bootstrap-secret",
        "lc-worker-kubelet",
        "lc-worker-launch-hook",
        "lc-etcd-bootstrap-secret",
      ].sort(),
    );
    expect(inputs("lc-control-plane-cluster-autoscaler")).toEqual({ name: "cluster-autoscaler", role: "lc-control-plane-id", policy: JSON.stringify(iam.clusterAutoscalerPolicy("kh")) });
    expect(inputs("lc-control-plane-node-termination-handler")).toEqual({ name: "node-termination-handler", role: "lc-control-plane-id", policy: JSON.stringify(iam.nodeTerminationHandlerPolicy("kh", QUEUE)) });
    expect(inputs("lc-worker-launch-hook")).toEqual({ name: "launch-hook", role: "lc-worker-id", policy: JSON.stringify(iam.workerLaunchHookPolicy("kh")) });
  });

  test("NodeRoles without them by default: nothing new on any role", async () => {
    const before = regs.length;
    new iam.NodeRoles("plain", { clusterName: "kh", secretArns: { controlPlane: ARN.cp, worker: ARN.worker }, kmsKeyArn: ARN.key, tags: {} });
    await settle();
    const names = regs.slice(before).map((r) => r.name);
    for (const n of ["plain-control-plane-cluster-autoscaler", "plain-control-plane-node-termination-handler", "plain-worker-launch-hook"]) expect(names).not.toContain(n);
  });
});
