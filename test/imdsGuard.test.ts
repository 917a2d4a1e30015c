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

/**
 * The unit's own commands, run for real in private network namespaces shaped like a node: a "pod"
 * namespace routed through the node, and the metadata service at 169.254.169.254 one hop away, as
 * on EC2. The host reaches it before and after; the pod only before. Needs root (or unprivileged
 * user namespaces), iptables, iproute2, util-linux and python3 (.ci/run installs them).
 */
describe("the rule, for real", () => {
  const commands = (prefix: string) =>
    imdsGuardUnitFile()
      .content.split("\n")
      .filter((l) => l.startsWith(prefix))
      .map((l) => l.slice(prefix.length).replace(/^-/, ""));

  it("drops a pod's connection to the metadata service and leaves the node's own, and starting it twice leaves one rule", () => {
    for (const tool of ["iptables", "ip", "unshare", "nsenter", "python3", "curl"])
      if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) throw new Error(`${tool} is required by the IMDS guard's real test (.ci/run installs it)`);
    const start = [...commands("ExecStartPre="), ...commands("ExecStart=")];
    expect(start).toHaveLength(2);
    const script = `set -euo pipefail
ip link set lo up
unshare --net sleep 60 & pod=$!
unshare --net sleep 60 & imds=$!
trap 'kill $pod $imds 2>/dev/null || true' EXIT
sleep 0.3
ip link add node0 type veth peer name pod0
ip link set pod0 netns $pod
ip addr add 10.99.0.1/24 dev node0; ip link set node0 up
nsenter -t $pod -n sh -c "ip link set lo up; ip addr add 10.99.0.2/24 dev pod0; ip link set pod0 up; ip route add default via 10.99.0.1"
ip link add node1 type veth peer name imds0
ip link set imds0 netns $imds
ip addr add 10.98.0.1/24 dev node1; ip link set node1 up
ip route add 169.254.169.254/32 via 10.98.0.2
nsenter -t $imds -n sh -c "ip link set lo up; ip addr add 10.98.0.2/24 dev imds0; ip addr add 169.254.169.254/32 dev lo; ip link set imds0 up; ip route add 10.99.0.0/24 via 10.98.0.1"
echo 1 >/proc/sys/net/ipv4/ip_forward
nsenter -t $imds -n python3 -m http.server --bind 169.254.169.254 80 >/dev/null 2>&1 &
for i in $(seq 50); do curl -s -o /dev/null --max-time 1 http://169.254.169.254/ && break; sleep 0.1; done
probe() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 http://169.254.169.254/latest/api/token || true; }
echo "before node=$(probe) pod=$(nsenter -t $pod -n bash -c "$(declare -f probe); probe")"
for n in 1 2; do
${start.map((c) => `  ${c.replace("/usr/sbin/iptables", "iptables")} ${c.includes(" -D ") ? "2>/dev/null || true" : ""}`).join("\n")}
done
echo "after node=$(probe) pod=$(nsenter -t $pod -n bash -c "$(declare -f probe); probe")"
echo "rules=$(iptables -w -t raw -S PREROUTING | grep -c kubeadm-ha-imds-guard)"
`;
    const unshare = process.getuid?.() === 0 ? ["--net"] : ["--user", "--map-root-user", "--net"];
    const r = spawnSync("unshare", [...unshare, "bash", "-c", script], { encoding: "utf8", timeout: 60000 });
    expect({ status: r.status, stderr: r.status === 0 ? "" : r.stderr }).toEqual({ status: 0, stderr: "" });
    // http.server answers 404 to the path: what matters is that it answers, or not.
    expect(r.stdout.trim().split("\n")).toEqual(["before node=404 pod=404", "after node=404 pod=000", "rules=1"]);
  }, 90000);
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
