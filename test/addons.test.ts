import * as pulumi from "@pulumi/pulumi";
import { parse, parseAllDocuments } from "yaml";
import { scriptsFor } from "../cloud-init/render";
import {
  ADDON_VERSIONS,
  AddonRelease,
  Addons,
  AddonsArgs,
  addonNodeFiles,
  addonReleases,
  addonVersions,
  defaultStorageClass,
} from "../components/addons";
import { masterDocuments } from "../components/controlPlane";
import { masterValues } from "./values";
import { SUPPORTED_MINORS } from "../config";
import { decodeUserData } from "../scripts/renderLib";
import { Captured, VARIANTS, captureAll } from "./capture";
import { FIXTURES, Registration, settle, setupMocks, valueOf } from "./mocks";

const MINORS = Array.from({ length: SUPPORTED_MINORS.max - SUPPORTED_MINORS.min + 1 }, (_, i) => SUPPORTED_MINORS.min + i);
const BASE = { kubernetesVersion: "1.35.0", clusterName: "prod", region: "eu-west-1", podCidr: "10.200.0.0/16", cni: "cilium", awsCloudControllerManager: true, ebsCsiDriver: true } as const;
const CP_TOLERATION = { key: "node-role.kubernetes.io/control-plane", effect: "NoSchedule" };

describe("pinned versions", () => {
  it.each(MINORS)("Kubernetes 1.%d has a row, and the cloud controller's image is of that minor or, for 1.36, the newest published", (minor) => {
    const v = addonVersions(`1.${minor}.0`);
    expect(v).toBe(ADDON_VERSIONS[minor]);
    expect(v.cilium).toMatch(/^1\.\d+\.\d+$/);
    expect(v.calico).toMatch(/^v3\.\d+\.\d+$/);
    expect(v.ebsCsiDriver).toMatch(/^2\.\d+\.\d+$/);
    expect(v.awsCloudControllerManagerImage).toMatch(minor === 36 ? /^v1\.35\.\d+$/ : new RegExp(`^v1\\.${minor}\\.\\d+$`));
    // The cluster-autoscaler's minor is always the cluster's.
    expect(v.clusterAutoscalerImage).toMatch(new RegExp(`^v1\\.${minor}\\.\\d+$`));
  });

  it.each([
    [31, "v1.31.5"],
    [32, "v1.32.7"],
    [33, "v1.33.6"],
    [34, "v1.34.5"],
    [35, "v1.35.2"],
    [36, "v1.36.1"],
  ])("Kubernetes 1.%d: cluster-autoscaler %s from chart 9.59.0; termination handler chart 0.27.6", (minor, image) => {
    const v = addonVersions(`1.${minor}.0`);
    expect([v.clusterAutoscalerChart, v.clusterAutoscalerImage, v.nodeTerminationHandlerChart]).toEqual(["9.59.0", image, "0.27.6"]);
  });

  it("pins nothing outside the supported minors", () => {
    expect(Object.keys(ADDON_VERSIONS).map(Number)).toEqual(MINORS);
    expect(() => addonVersions("1.40.0")).toThrow("addonVersions: no add-on versions pinned for Kubernetes 1.40; add a row to ADDON_VERSIONS");
  });
});

describe("addonReleases", () => {
  it.each([
    [31, "1.18.14", "v3.29.4", "v1.31.5"],
    [32, "1.19.8", "v3.31.3", "v1.32.1"],
    [33, "1.19.8", "v3.31.3", "v1.33.0"],
    [34, "1.19.8", "v3.31.3", "v1.34.0"],
    [35, "1.19.8", "v3.31.3", "v1.35.2"],
    [36, "1.20.2", "v3.32.3", "v1.35.2"],
  ])("Kubernetes 1.%d: cilium %s, calico %s, cloud controller image %s", (minor, cilium, calico, ccmImage) => {
    const kubernetesVersion = `1.${minor}.2`;
    const summary = (rs: AddonRelease[]) => rs.map((r) => [r.name, r.chart, r.repo, r.version, r.namespace]);
    expect(summary(addonReleases({ ...BASE, kubernetesVersion }))).toEqual([
      ["cilium", "cilium", "https://helm.cilium.io/", cilium, "kube-system"],
      ["aws-cloud-controller-manager", "aws-cloud-controller-manager", "https://kubernetes.github.io/cloud-provider-aws", "0.0.10", "kube-system"],
      ["aws-ebs-csi-driver", "aws-ebs-csi-driver", "https://kubernetes-sigs.github.io/aws-ebs-csi-driver", "2.56.1", "kube-system"],
    ]);
    const withCalico = addonReleases({ ...BASE, kubernetesVersion, cni: "calico" });
    expect(summary(withCalico)[0]).toEqual(["calico", "tigera-operator", "https://docs.tigera.io/calico/charts", calico, "tigera-operator"]);
    expect((withCalico[1].values.image as { tag: string }).tag).toBe(ccmImage);
  });

  it("Cilium: VXLAN tunnel, pods from podCidr by cluster-pool IPAM, kube-proxy kept, two operators", () => {
    expect(addonReleases(BASE)[0].values).toEqual({
      routingMode: "tunnel",
      tunnelProtocol: "vxlan",
      kubeProxyReplacement: false,
      ipam: { mode: "cluster-pool", operator: { clusterPoolIPv4PodCIDRList: ["10.200.0.0/16"], clusterPoolIPv4MaskSize: 24 } },
      operator: { replicas: 2 },
    });
  });

  it("Calico: one VXLAN pool over podCidr, BGP off", () => {
    expect(addonReleases({ ...BASE, cni: "calico" })[0].values).toEqual({
      installation: {
        cni: { type: "Calico" },
        calicoNetwork: {
          bgp: "Disabled",
          ipPools: [{ name: "default-ipv4-ippool", cidr: "10.200.0.0/16", encapsulation: "VXLAN", natOutgoing: "Enabled", nodeSelector: "all()", blockSize: 26 }],
        },
      },
    });
  });

  it("cloud controller: the cluster's name, no cloud routes, on the masters through their taints, host network", () => {
    expect(addonReleases(BASE)[1].values).toEqual({
      args: ["--cloud-provider=aws", "--configure-cloud-routes=false", "--cluster-name=prod", "--v=2"],
      image: { repository: "registry.k8s.io/provider-aws/cloud-controller-manager", tag: "v1.35.2" },
      hostNetworking: true,
      nodeSelector: { "node-role.kubernetes.io/control-plane": "" },
      tolerations: [
        CP_TOLERATION,
        { key: "node.cloudprovider.kubernetes.io/uninitialized", value: "true", effect: "NoSchedule" },
        { key: "node.kubernetes.io/not-ready", effect: "NoSchedule" },
      ],
    });
  });

  it("EBS CSI: controller on the masters, node plugin everywhere, no StorageClass from the chart", () => {
    expect(addonReleases(BASE)[2].values).toEqual({
      controller: {
        region: "eu-west-1",
        k8sTagClusterId: "prod",
        nodeSelector: { "node-role.kubernetes.io/control-plane": "" },
        tolerations: [{ ...CP_TOLERATION, operator: "Exists" }],
      },
      node: { tolerateAllTaints: true, metadataSources: "kubernetes" },
      storageClasses: [],
      defaultStorageClass: { enabled: false },
    });
  });

  const NTH = { queueUrl: "https://sqs.eu-west-1.amazonaws.com/123456789012/prod-node-termination", managedTag: "aws-node-termination-handler/prod", drainTimeoutSeconds: 600 };
  const LIFECYCLE = { ...BASE, clusterAutoscaler: true, nodeTermination: NTH };

  it("the worker lifecycle add-ons come last, the termination handler's chart from its OCI registry", () => {
    const summary = addonReleases(LIFECYCLE).map((r) => [r.name, r.chart, r.repo, r.version, r.namespace]);
    expect(summary.slice(3)).toEqual([
      ["cluster-autoscaler", "cluster-autoscaler", "https://kubernetes.github.io/autoscaler", "9.59.0", "kube-system"],
      ["aws-node-termination-handler", "aws-node-termination-handler", "oci://public.ecr.aws/aws-ec2/helm", "0.27.6", "kube-system"],
    ]);
    expect(summary.map((r) => r[0])).toEqual(["cilium", "aws-cloud-controller-manager", "aws-ebs-csi-driver", "cluster-autoscaler", "aws-node-termination-handler"]);
  });

  it("cluster-autoscaler: AWS, the cluster's discovery tags, the minor's image, on the masters", () => {
    expect(addonReleases(LIFECYCLE)[3].values).toEqual({
      cloudProvider: "aws",
      awsRegion: "eu-west-1",
      autoDiscovery: { clusterName: "prod" },
      image: { repository: "registry.k8s.io/autoscaling/cluster-autoscaler", tag: "v1.35.2" },
      hostNetwork: true,
      dnsPolicy: "ClusterFirstWithHostNet",
      nodeSelector: { "node-role.kubernetes.io/control-plane": "" },
      tolerations: [{ ...CP_TOLERATION, operator: "Exists" }],
    });
  });

  it("termination handler: queue mode on the cluster's queue, only machines with the managed tag, the longest drain, on the masters", () => {
    expect(addonReleases(LIFECYCLE)[4].values).toEqual({
      enableSqsTerminationDraining: true,
      queueURL: NTH.queueUrl,
      awsRegion: "eu-west-1",
      checkTagBeforeDraining: true,
      managedTag: "aws-node-termination-handler/prod",
      nodeTerminationGracePeriod: 600,
      emitKubernetesEvents: true,
      fullnameOverride: "aws-node-termination-handler",
      nodeSelector: { "node-role.kubernetes.io/control-plane": "" },
      tolerations: [{ ...CP_TOLERATION, operator: "Exists" }],
    });
    // No pod reaches IMDS (issue 15): the handler's Deployment goes onto the host network by a
    // patch (its chart sets hostNetwork only on the IMDS-mode DaemonSet), the autoscaler by value.
    expect(addonReleases(LIFECYCLE).map((r) => [r.name, r.patches ?? []]).slice(3)).toEqual([
      ["cluster-autoscaler", []],
      ["aws-node-termination-handler", [{ kind: "Deployment", name: "aws-node-termination-handler", patch: { spec: { template: { spec: { hostNetwork: true, dnsPolicy: "ClusterFirstWithHostNet" } } } } }]],
    ]);
  });

  it("no pod reaches IMDS: the EBS CSI controller runs on the host network, the cloud controller too, nothing else is patched (issue 15)", () => {
    const releases = addonReleases(BASE);
    expect(releases.map((r) => [r.name, r.patches ?? []])).toEqual([
      ["cilium", []],
      ["aws-cloud-controller-manager", []],
      ["aws-ebs-csi-driver", [{ kind: "Deployment", name: "ebs-csi-controller", patch: { spec: { template: { spec: { hostNetwork: true, dnsPolicy: "ClusterFirstWithHostNet" } } } } }]],
    ]);
    expect(releases[1].values).toMatchObject({ hostNetworking: true });
  });

  it.each([
    ["cni none", { cni: "none" as const }, ["aws-cloud-controller-manager", "aws-ebs-csi-driver"]],
    ["no cloud controller", { awsCloudControllerManager: false }, ["cilium", "aws-ebs-csi-driver"]],
    ["no EBS CSI driver", { ebsCsiDriver: false }, ["cilium", "aws-cloud-controller-manager"]],
    ["nothing", { cni: "none" as const, awsCloudControllerManager: false, ebsCsiDriver: false }, []],
  ])("turning an add-on off removes exactly its release: %s", (_, off, names) => {
    expect(addonReleases({ ...BASE, ...off }).map((r) => r.name)).toEqual(names);
  });

  it.each([
    ["no cluster-autoscaler", { clusterAutoscaler: false }, ["cilium", "aws-cloud-controller-manager", "aws-ebs-csi-driver", "aws-node-termination-handler"]],
    ["no termination handler", { nodeTermination: undefined }, ["cilium", "aws-cloud-controller-manager", "aws-ebs-csi-driver", "cluster-autoscaler"]],
  ])("turning a lifecycle add-on off removes exactly its release: %s", (_, off, names) => {
    expect(addonReleases({ ...LIFECYCLE, ...off }).map((r) => r.name)).toEqual(names);
  });
});

describe("defaultStorageClass", () => {
  it("is the default class: encrypted gp3 from the EBS CSI driver, bound where the pod lands, expandable", () => {
    expect(defaultStorageClass()).toEqual({
      apiVersion: "storage.k8s.io/v1",
      kind: "StorageClass",
      metadata: { name: "gp3", annotations: { "storageclass.kubernetes.io/is-default-class": "true" } },
      provisioner: "ebs.csi.aws.com",
      parameters: { type: "gp3", encrypted: "true" },
      volumeBindingMode: "WaitForFirstConsumer",
      allowVolumeExpansion: true,
      reclaimPolicy: "Delete",
    });
  });
});

describe("addonNodeFiles (installer nodes)", () => {
  const releases = addonReleases(BASE);

  it("one values file a release, the ordered list addons.sh reads, and the StorageClass manifest, each YAML 1.1 that reads back", () => {
    const files = addonNodeFiles(releases, defaultStorageClass());
    expect(Object.keys(files).sort()).toEqual([
      "addons/aws-cloud-controller-manager.yaml",
      "addons/aws-ebs-csi-driver-ebs-csi-controller.patch.json",
      "addons/aws-ebs-csi-driver.yaml",
      "addons/cilium.yaml",
      "addons/patches",
      "addons/releases",
      "addons/storageclass.yaml",
    ]);
    expect(files["addons/patches"]).toBe("kube-system deployment ebs-csi-controller aws-ebs-csi-driver-ebs-csi-controller.patch.json\n");
    expect(JSON.parse(files["addons/aws-ebs-csi-driver-ebs-csi-controller.patch.json"])).toEqual({ spec: { template: { spec: { hostNetwork: true, dnsPolicy: "ClusterFirstWithHostNet" } } } });
    expect(files["addons/releases"]).toBe(
      "cilium cilium https://helm.cilium.io/ 1.19.8 kube-system\n" +
        "aws-cloud-controller-manager aws-cloud-controller-manager https://kubernetes.github.io/cloud-provider-aws 0.0.10 kube-system\n" +
        "aws-ebs-csi-driver aws-ebs-csi-driver https://kubernetes-sigs.github.io/aws-ebs-csi-driver 2.56.1 kube-system\n",
    );
    for (const r of releases) expect(parse(files[`addons/${r.name}.yaml`], { version: "1.1" })).toEqual(r.values);
    expect(parse(files["addons/storageclass.yaml"], { version: "1.1" })).toEqual(defaultStorageClass());
    // YAML 1.1 would read an unquoted true as a boolean: the annotation and parameter stay strings.
    expect(files["addons/storageclass.yaml"]).toContain('storageclass.kubernetes.io/is-default-class: "true"');
  });

  it("nothing to install: no files, so master 0 ships no add-on script", () => {
    expect(addonNodeFiles([])).toEqual({});
  });

  it("refuses a field the script would split", () => {
    expect(() => addonNodeFiles([{ ...releases[0], version: "1.19 .8" }])).toThrow(
      'addonNodeFiles: release "cilium" has a field addons.sh cannot read: "1.19 .8"',
    );
  });

  it("only a master that installs add-ons gets addons.sh", () => {
    expect(scriptsFor({ role: "control-plane", etcdTopology: "external", addons: true })).toContain("addons.sh");
    expect(scriptsFor({ role: "control-plane", etcdTopology: "external" })).not.toContain("addons.sh");
    expect(scriptsFor({ role: "worker", addons: true })).not.toContain("addons.sh");
  });

  it("masterDocuments writes them on master 0 only", () => {
    const v = masterValues({ addonFiles: addonNodeFiles(releases) });
    const masters = v.masters;
    const first = masterDocuments(v, masters[0]);
    expect(Object.keys(first.kubeadm).filter((k) => k.startsWith("addons/")).sort()).toEqual(Object.keys(v.addonFiles).sort());
    expect(first.needs).toEqual({ addons: true });
    const second = masterDocuments(v, masters[1]);
    expect(Object.keys(second.kubeadm).filter((k) => k.startsWith("addons/"))).toEqual([]);
    expect(second.needs).toBeUndefined();
  });
});

describe("Addons component", () => {
  let regs: Registration[];
  beforeAll(async () => {
    regs = await setupMocks();
  });

  const KUBECONFIG = "apiVersion: v1\nkind: Config\n# test kubeconfig\n";
  const args = (over: Partial<AddonsArgs> = {}): AddonsArgs => ({
    kubeconfig: pulumi.secret(KUBECONFIG),
    apiEndpoint: pulumi.output("kh-api.elb.eu-west-1.amazonaws.com:6443"),
    caCertPem: FIXTURES.caCert,
    releases: addonReleases(BASE),
    storageClass: defaultStorageClass(),
    readinessTimeoutMinutes: 20,
    ...over,
  });

  /** Builds the component; returns what it registered (itself excluded) and every child's options. */
  async function build(name: string, a: AddonsArgs) {
    const before = regs.length;
    const opts = new Map<string, pulumi.CustomResourceOptions>();
    const addons = new Addons(name, a, {
      transformations: [
        (t) => {
          opts.set(t.name, t.opts as pulumi.CustomResourceOptions);
          return undefined;
        },
      ],
    });
    await settle();
    const mine = regs.slice(before).filter((r) => r.type !== "kubeadm-ha:index:Addons");
    return { addons, mine, opts };
  }

  it("readiness, then a provider from the kubeconfig, then the releases in order, then the StorageClass", async () => {
    const { addons, mine, opts } = await build("a", args());
    expect(mine.map((r) => [r.type, r.name])).toEqual([
      ["pulumi-nodejs:dynamic:ApiReadiness", "a-api-ready"],
      ["pulumi:providers:kubernetes", "a-provider"],
      ["kubernetes:helm.sh/v3:Release", "a-cilium"],
      ["kubernetes:helm.sh/v3:Release", "a-aws-cloud-controller-manager"],
      ["kubernetes:helm.sh/v3:Release", "a-aws-ebs-csi-driver"],
      ["kubernetes:apps/v1:DeploymentPatch", "a-aws-ebs-csi-driver-ebs-csi-controller"],
      ["kubernetes:storage.k8s.io/v1:StorageClass", "a-storage-class"],
    ]);
    const [ready, provider] = mine;
    const { __provider: _, ...readyInputs } = ready.inputs;
    expect(readyInputs).toEqual({ url: "https://kh-api.elb.eu-west-1.amazonaws.com:6443/readyz", caCertPem: FIXTURES.caCert, timeoutMinutes: 20, intervalSeconds: 10 });
    // The kubeconfig given, still secret.
    expect(provider.inputs.kubeconfig).toEqual({ [pulumi.runtime.specialSigKey]: pulumi.runtime.specialSecretSig, value: KUBECONFIG });

    // The provider waits for the readiness step; every release and the StorageClass go through it.
    expect(opts.get("a-provider")!.dependsOn).toEqual([addons.readiness]);
    for (const r of ["a-cilium", "a-aws-cloud-controller-manager", "a-aws-ebs-csi-driver", "a-storage-class"]) expect(opts.get(r)!.provider).toBe(addons.provider);
    const [cilium, ccm, ebs] = addons.helmReleases;
    expect(opts.get("a-cilium")!.dependsOn).toEqual([]);
    expect(opts.get("a-aws-cloud-controller-manager")!.dependsOn).toEqual([cilium]);
    expect(opts.get("a-aws-ebs-csi-driver")!.dependsOn).toEqual([ccm]);
    expect(opts.get("a-storage-class")!.dependsOn).toEqual([ebs]);
    // The controller's host network patch goes on once its release made the Deployment.
    expect(opts.get("a-aws-ebs-csi-driver-ebs-csi-controller")!.dependsOn).toEqual([ebs]);
    expect(opts.get("a-aws-ebs-csi-driver-ebs-csi-controller")!.provider).toBe(addons.provider);
    const patch = mine.find((r) => r.name === "a-aws-ebs-csi-driver-ebs-csi-controller")!;
    expect(patch.inputs).toMatchObject({ metadata: { name: "ebs-csi-controller", namespace: "kube-system" }, spec: { template: { spec: { hostNetwork: true, dnsPolicy: "ClusterFirstWithHostNet" } } } });
    expect(await valueOf(addons.provider.urn)).toMatch(/pulumi:providers:kubernetes::a-provider$/);
  });

  it("an OCI chart is named by its reference, with no repository options", async () => {
    const nth = addonReleases({ ...BASE, cni: "none", awsCloudControllerManager: false, ebsCsiDriver: false, nodeTermination: { queueUrl: "https://sqs.eu-west-1.amazonaws.com/123456789012/q", managedTag: "t", drainTimeoutSeconds: 300 } });
    const { mine } = await build("oci", args({ releases: nth, storageClass: undefined }));
    const release = mine.find((r) => r.type === "kubernetes:helm.sh/v3:Release")!;
    expect(release.inputs).toEqual(
      expect.objectContaining({ name: "aws-node-termination-handler", chart: "oci://public.ecr.aws/aws-ec2/helm/aws-node-termination-handler", version: "0.27.6", namespace: "kube-system" }),
    );
    expect(release.inputs.repositoryOpts).toBeUndefined();
  });

  it("each release carries its chart, repo, pinned version, namespace and values, atomic with a timeout", async () => {
    const { mine } = await build("b", args());
    const releases = mine.filter((r) => r.type === "kubernetes:helm.sh/v3:Release");
    expect(releases.map((r) => r.inputs)).toEqual(
      addonReleases(BASE).map((r) =>
        expect.objectContaining({
          name: r.name,
          chart: r.chart,
          version: r.version,
          repositoryOpts: { repo: r.repo },
          namespace: r.namespace,
          createNamespace: true,
          values: r.values,
          atomic: true,
          cleanupOnFail: true,
          timeout: 600,
        }),
      ),
    );
    const sc = mine.find((r) => r.type === "kubernetes:storage.k8s.io/v1:StorageClass")!;
    const { apiVersion: _a, kind: _k, ...spec } = defaultStorageClass();
    expect(sc.inputs).toEqual(expect.objectContaining(spec));
  });

  it.each([
    ["cni none", { cni: "none" as const }, ["c1-aws-cloud-controller-manager", "c1-aws-ebs-csi-driver", "c1-aws-ebs-csi-driver-ebs-csi-controller", "c1-storage-class"]],
    ["no cloud controller", { awsCloudControllerManager: false }, ["c2-cilium", "c2-aws-ebs-csi-driver", "c2-aws-ebs-csi-driver-ebs-csi-controller", "c2-storage-class"]],
    ["no EBS CSI driver", { ebsCsiDriver: false }, ["c3-cilium", "c3-aws-cloud-controller-manager"]],
  ])("turning an add-on off removes exactly its resources: %s", async (_, off, names) => {
    const name = `c${["cni none", "no cloud controller", "no EBS CSI driver"].indexOf(_) + 1}`;
    const values = { ...BASE, ...off };
    const { mine } = await build(name, args({ releases: addonReleases(values), storageClass: values.ebsCsiDriver ? defaultStorageClass() : undefined }));
    expect(mine.map((r) => r.name)).toEqual([`${name}-api-ready`, `${name}-provider`, ...names]);
  });

  it.each([
    ["a StorageClass without the EBS CSI driver", { releases: addonReleases({ ...BASE, ebsCsiDriver: false }) }, "Addons d: storageClass needs the aws-ebs-csi-driver release, whose driver provisions its volumes"],
    ["a release listed twice", { releases: [...addonReleases(BASE), addonReleases(BASE)[0]] }, 'Addons d: release "cilium" is listed twice'],
    ["a timeout of 0", { readinessTimeoutMinutes: 0 }, "Addons d: readinessTimeoutMinutes must be a whole number of at least 1, got 0"],
  ])("refuses %s before registering anything", async (_, over, message) => {
    const before = regs.length;
    expect(() => new Addons("d", args(over))).toThrow(message);
    await settle();
    expect(regs.length).toBe(before);
  });
});

describe("Cluster picks the installer, on the run's shared evaluation of each stack (test/capture.ts)", () => {
  // dev: internet-facing API; prod: internal API; dev+off: the cloud controller, EBS CSI and CNI off.
  const stacks: Record<string, Captured> = {};
  beforeAll(async () => {
    [stacks.dev, stacks.prod, stacks.off] = await captureAll([VARIANTS.dev, VARIANTS.prod, VARIANTS.devOff]);
  }, 120000);

  const mine = (stack: string) => stacks[stack].registrations;
  const named = (stack: string) => (stack === "off" ? "dev" : stack);
  const writeFiles = (stack: string, resource: string): Array<{ path: string; content: string }> => {
    const r = mine(stack).find((x) => x.name === `${named(stack)}-${resource}`)!;
    const ud = r.inputs.userDataBase64 ?? r.inputs.userData;
    return parse(decodeUserData(ud, true), { version: "1.1" }).write_files;
  };
  const k8sTypes = (stack: string) => mine(stack).filter((r) => r.type.startsWith("kubernetes:") || r.type === "pulumi:providers:kubernetes").map((r) => r.name);
  const addonsOutput = (stack: string) => stacks[stack].outputs.addons as Array<{ name: string; version: string; installer: string }>;

  it("internet-facing API (auto -> pulumi): the add-ons are Helm releases; master 0 carries none", () => {
    // Registration order follows when each release's inputs resolve (the handler's waits for its
    // queue); the install order is the dependsOn chain, checked in the component's tests.
    expect(k8sTypes("dev").sort()).toEqual([
      "dev-addons-provider",
      "dev-addons-cilium",
      "dev-addons-aws-cloud-controller-manager",
      "dev-addons-aws-ebs-csi-driver",
      "dev-addons-aws-ebs-csi-driver-ebs-csi-controller",
      "dev-addons-cluster-autoscaler",
      "dev-addons-aws-node-termination-handler",
      "dev-addons-aws-node-termination-handler-aws-node-termination-handler",
      "dev-addons-storage-class",
    ].sort());
    // The handler reads the cluster's own queue.
    const nth = mine("dev").find((r) => r.name === "dev-addons-aws-node-termination-handler")!;
    expect(nth.inputs.values.queueURL).toBe("https://sqs.eu-west-1.amazonaws.com/123456789012/dev-node-termination");
    const paths = writeFiles("dev", "control-plane-master-0").map((f) => f.path);
    expect(paths.filter((p) => p.includes("addons"))).toEqual([]);
    expect(addonsOutput("dev").map((a) => [a.name, a.version, a.installer])).toEqual([
      ["cilium", "1.19.8", "pulumi"],
      ["aws-cloud-controller-manager", "0.0.10", "pulumi"],
      ["aws-ebs-csi-driver", "2.56.1", "pulumi"],
      ["cluster-autoscaler", "9.59.0", "pulumi"],
      ["aws-node-termination-handler", "0.27.6", "pulumi"],
    ]);
  });

  it("internal API (auto -> nodes): no Kubernetes provider or release; master 0 alone carries the files and addons.sh", () => {
    expect(k8sTypes("prod")).toEqual([]);
    expect(mine("prod").filter((r) => r.type === "kubeadm-ha:index:Addons")).toEqual([]);
    const addonPaths = (m: string) => writeFiles("prod", m).map((f) => f.path).filter((p) => p.includes("addons")).sort();
    expect(addonPaths("control-plane-master-0")).toEqual([
      "/etc/kubeadm-ha/addons/aws-cloud-controller-manager.yaml",
      "/etc/kubeadm-ha/addons/aws-ebs-csi-driver-ebs-csi-controller.patch.json",
      "/etc/kubeadm-ha/addons/aws-ebs-csi-driver.yaml",
      "/etc/kubeadm-ha/addons/aws-node-termination-handler-aws-node-termination-handler.patch.json",
      "/etc/kubeadm-ha/addons/aws-node-termination-handler.yaml",
      "/etc/kubeadm-ha/addons/cilium.yaml",
      "/etc/kubeadm-ha/addons/cluster-autoscaler.yaml",
      "/etc/kubeadm-ha/addons/patches",
      "/etc/kubeadm-ha/addons/releases",
      "/etc/kubeadm-ha/addons/storageclass.yaml",
    ]);
    // The handler's values file on master 0 names the queue by its URL, resolved at render time.
    const nthValues = writeFiles("prod", "control-plane-master-0").find((f) => f.path === "/etc/kubeadm-ha/addons/aws-node-termination-handler.yaml")!.content;
    expect(parse(nthValues, { version: "1.1" }).queueURL).toBe("https://sqs.eu-west-1.amazonaws.com/123456789012/prod-node-termination");
    expect(addonPaths("control-plane-master-1")).toEqual([]);
    // addons.sh itself comes from the bootstrap bucket, pinned by master 0's bundle.list alone.
    const fetched = (m: string) => writeFiles("prod", m).find((f) => f.path === "/etc/kubeadm-ha/bundle.list")!.content;
    expect(fetched("control-plane-master-0")).toMatch(/^[0-9a-f]{64} 0755 lib\/addons\.sh$/m);
    expect(fetched("control-plane-master-1")).not.toContain("addons.sh");
    expect(addonsOutput("prod").map((a) => a.installer)).toEqual(["nodes", "nodes", "nodes", "nodes", "nodes"]);
  });

  it("kubelets and the controller manager run --cloud-provider=external exactly when the cloud controller is on", () => {
    const kubeletArgs = (stack: string, resource: string, file: string) => {
      const f = writeFiles(stack, resource).find((x) => x.path === `/etc/kubeadm-ha/${file}`)!;
      return parseAllDocuments(f.content, { version: "1.1" }).map((d) => d.toJS());
    };
    const hasFlag = (docs: any[]) =>
      docs.map((d) => (d.nodeRegistration?.kubeletExtraArgs ?? d.controllerManager?.extraArgs ?? []).some((a: { name: string }) => a.name === "cloud-provider"));
    expect(hasFlag(kubeletArgs("dev", "control-plane-master-0", "init.yaml")).slice(0, 2)).toEqual([true, true]);
    expect(hasFlag(kubeletArgs("dev", "control-plane-master-1", "join.yaml"))).toEqual([true]);
    expect(hasFlag(kubeletArgs("dev", "pool-general-launch-template", "join.yaml"))).toEqual([true]);
    expect(hasFlag(kubeletArgs("off", "control-plane-master-0", "init.yaml")).slice(0, 2)).toEqual([false, false]);
    expect(hasFlag(kubeletArgs("off", "control-plane-master-1", "join.yaml"))).toEqual([false]);
    expect(hasFlag(kubeletArgs("off", "pool-general-launch-template", "join.yaml"))).toEqual([false]);
  });

  it("every add-on off: no release, no storage class, an empty add-ons output", () => {
    expect(k8sTypes("off")).toEqual([]);
    expect(addonsOutput("off")).toEqual([]);
  });
});
