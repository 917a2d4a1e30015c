/**
 * Master 0 initialises only a cluster that provably never was (issue 15): the durable marker
 * (components/initMarker.ts) and what master 0 gets to check with. The decision itself runs in
 * test/bootstrap-scripts.test.ts; the marker's reads and writes against moto in test/aws-moto.test.ts.
 */
import { parse } from "yaml";
import { Cluster } from "../components/cluster";
import { INIT_MARKER_PENDING, initMarkerName, initMarkerPolicy } from "../components/initMarker";
import { masterDocuments } from "../components/controlPlane";
import { parseConfig } from "../config";
import { decodeUserData } from "../scripts/renderLib";
import { Registration, ofType, settle, setupMocks } from "./mocks";
import { masterValues } from "./values";

describe("the marker", () => {
  it("is named per cluster under /kubeadm-ha, readable and writable by the control plane role only", () => {
    expect(initMarkerName("dev")).toBe("/kubeadm-ha/dev/control-plane-initialised");
    expect(() => initMarkerName("Dev")).toThrow('initMarkerName: clusterName must be lowercase letters, digits and hyphens (got "Dev")');
    const arn = "arn:aws:ssm:eu-west-1:123456789012:parameter/kubeadm-ha/dev/control-plane-initialised";
    expect(initMarkerPolicy(arn)).toEqual({
      Version: "2012-10-17",
      Statement: [{ Sid: "ReadWriteInitMarker", Effect: "Allow", Action: ["ssm:GetParameter", "ssm:PutParameter"], Resource: arn }],
    });
    expect(() => initMarkerPolicy("*")).toThrow('initMarkerPolicy: parameterArn must be an SSM parameter ARN (got "*")');
  });

  it("master 0 alone gets the marker and every master's address; it refuses to render without the marker", () => {
    const v = masterValues();
    expect(masterDocuments(v, v.masters[0]).env).toMatchObject({ MASTER_IPS: "10.0.0.10,10.0.32.10,10.0.64.10", INIT_MARKER: "/kubeadm-ha/dev/control-plane-initialised" });
    for (const i of [1, 2]) {
      expect(masterDocuments(v, v.masters[i]).env).not.toHaveProperty("MASTER_IPS");
      expect(masterDocuments(v, v.masters[i]).env).not.toHaveProperty("INIT_MARKER");
    }
    expect(() => masterDocuments({ ...v, initMarker: undefined }, v.masters[0])).toThrow(
      "masterDocuments: initMarker is required on master 0: without it master 0 cannot prove the cluster does not exist",
    );
  });
});

describe("Cluster wiring", () => {
  let regs: Registration[];
  beforeAll(async () => {
    regs = await setupMocks();
    new Cluster("im", {
      config: parseConfig({ region: "eu-west-1", clusterName: "im", network: { availabilityZones: ["eu-west-1a", "eu-west-1b", "eu-west-1c"] }, apiLoadBalancer: { scheme: "internal" }, workerPools: [] }),
    });
    await settle();
  }, 60000);

  it("Pulumi creates the parameter as pending and never sets it back: master 0 owns the value", () => {
    const [p] = ofType(regs, "aws:ssm/parameter:Parameter");
    expect(p.name).toBe("im-init-marker-parameter");
    expect(p.inputs).toMatchObject({ name: "/kubeadm-ha/im/control-plane-initialised", type: "String", insecureValue: INIT_MARKER_PENDING });
    expect(p.options.ignoreChanges).toEqual(["insecureValue", "value"]);
    const policy = regs.find((r) => r.name === "im-init-marker-access")!;
    expect(policy.inputs.role).toBe("im-eu-west-1-control-plane");
    expect(JSON.parse(policy.inputs.policy)).toEqual(initMarkerPolicy("arn:aws:ssm:eu-west-1:123456789012:parameter/kubeadm-ha/im/control-plane-initialised"));
  });

  it("master 0's user data names the parameter, and master 0 boots only once it exists", () => {
    const m0 = regs.find((r) => r.name === "im-control-plane-master-0")!;
    const env = (parse(decodeUserData(m0.inputs.userDataBase64, true), { version: "1.1" }).write_files as Array<{ path: string; content: string }>).find((f) => f.path === "/etc/kubeadm-ha/node.env")!.content;
    expect(env).toContain("INIT_MARKER='/kubeadm-ha/im/control-plane-initialised'");
    expect(env).toContain("MASTER_IPS='10.0.0.10,10.0.32.10,10.0.64.10'");
    expect(m0.options.dependencies.some((u) => u.endsWith("::im-init-marker-parameter"))).toBe(true);
  });
});
