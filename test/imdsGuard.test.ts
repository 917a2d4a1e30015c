/**
 * The IMDS guard (cloud-init/systemd/kubeadm-ha-imds-guard.service): the unit systemd accepts, the
 * rule it installs, and which machines carry it. With IMDSv2's hop limit of 1 (components/nodeInstance.ts)
 * it keeps every pod off the node role's credentials (issue 15).
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parse } from "yaml";
import { IMDS_GUARD_UNIT, imdsGuardUnitFile } from "../cloud-init/render";
import { Cluster } from "../components/cluster";
import { parseConfig } from "../config";
import { decodeUserData } from "../scripts/renderLib";
import { Registration, settle, setupMocks } from "./mocks";

const RULE = "-t raw -I PREROUTING 1 -d 169.254.169.254/32 -m comment --comment kubeadm-ha-imds-guard -j DROP";

describe("the IMDS guard unit", () => {
  const unit = imdsGuardUnitFile();

  it("inserts one DROP for 169.254.169.254 first in raw PREROUTING, where only routed (pod) packets pass, and removes a stale copy first", () => {
    expect(unit.path).toBe(`/etc/systemd/system/${IMDS_GUARD_UNIT}`);
    const lines = unit.content.split("\n");
    expect(lines.filter((l) => l.startsWith("ExecStart="))).toEqual([`ExecStart=/usr/sbin/iptables -w ${RULE}`]);
    expect(lines.filter((l) => l.startsWith("ExecStartPre="))).toEqual([`ExecStartPre=-/usr/sbin/iptables -w ${RULE.replace("-I PREROUTING 1", "-D PREROUTING")}`]);
    expect(lines).toContain("Before=kubelet.service containerd.service");
    expect(unit.content).not.toMatch(/^#/m);
  });

  it("systemd-analyze verify accepts it", () => {
    const which = spawnSync("systemd-analyze", ["--version"], { encoding: "utf8" });
    if (which.error || which.status !== 0) throw new Error("systemd-analyze is required (apt-get install systemd)");
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kubeadm-ha-units-"));
    // verify checks that the command is executable: a stand-in for iptables, which this host may lack.
    const iptables = path.join(dir, "iptables");
    fs.writeFileSync(iptables, "#!/bin/sh\n", { mode: 0o755 });
    const file = path.join(dir, IMDS_GUARD_UNIT);
    fs.writeFileSync(file, unit.content.split("/usr/sbin/iptables").join(iptables));
    const r = spawnSync("systemd-analyze", ["verify", "--man=no", file], { encoding: "utf8" });
    fs.rmSync(dir, { recursive: true, force: true });
    expect({ status: r.status, out: r.stdout + r.stderr }).toEqual({ status: 0, out: "" });
  });
});

describe("which machines carry it", () => {
  let regs: Registration[];
  beforeAll(async () => {
    regs = await setupMocks();
    const config = parseConfig({
      region: "eu-west-1",
      clusterName: "guard",
      network: { availabilityZones: ["eu-west-1a", "eu-west-1b", "eu-west-1c"] },
      etcd: { topology: "external" },
      apiLoadBalancer: { scheme: "internal" },
      workerPools: [{ name: "general" }],
    });
    new Cluster("guard", { config });
    await settle();
  }, 60000);

  it("every master and worker, no external etcd member (it runs no pods)", () => {
    const carries = (r: Registration) => {
      const files = parse(decodeUserData(r.inputs.userDataBase64 ?? r.inputs.userData, true), { version: "1.1" }).write_files as Array<{ path: string; content: string }>;
      const f = files.find((x) => x.path === `/etc/systemd/system/${IMDS_GUARD_UNIT}`);
      if (f) expect(f.content).toBe(imdsGuardUnitFile().content);
      return f !== undefined;
    };
    const machines = regs.filter((r) => r.type === "aws:ec2/instance:Instance" || r.type === "aws:ec2/launchTemplate:LaunchTemplate");
    expect(Object.fromEntries(machines.map((r) => [r.name, carries(r)]))).toEqual({
      "guard-control-plane-master-0": true,
      "guard-control-plane-master-1": true,
      "guard-control-plane-master-2": true,
      "guard-etcd-member-0": false,
      "guard-etcd-member-1": false,
      "guard-etcd-member-2": false,
      "guard-pool-general-launch-template": true,
    });
  });
});
