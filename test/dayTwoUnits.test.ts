/**
 * The day-2 systemd units (cloud-init/systemd): which role gets which, and `systemd-analyze verify`
 * on each as shipped.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { dayTwoUnitFiles, dayTwoUnits } from "../cloud-init/render";

describe("day-2 units", () => {
  test("masters renew certificates and rotate the join token; etcd members renew; workers neither", () => {
    expect(dayTwoUnits("control-plane")).toEqual(["kubeadm-ha-cert-renew.service", "kubeadm-ha-cert-renew.timer", "kubeadm-ha-token-rotate.service", "kubeadm-ha-token-rotate.timer"]);
    expect(dayTwoUnits("etcd")).toEqual(["kubeadm-ha-cert-renew.service", "kubeadm-ha-cert-renew.timer"]);
    expect(dayTwoUnits("worker")).toEqual([]);
  });

  test("the timers: renewal twice a day at a random time in each half, catching up after downtime; rotation hourly", () => {
    const unit = (f: string) => dayTwoUnitFiles("control-plane").find((u) => u.path.endsWith(f))!.content;
    expect(unit("kubeadm-ha-cert-renew.timer")).toContain("[Timer]\nOnCalendar=*-*-* 00,12:00:00\nRandomizedDelaySec=12h\nPersistent=true\n");
    expect(unit("kubeadm-ha-token-rotate.timer")).toContain("[Timer]\nOnBootSec=5min\nOnUnitActiveSec=1h\nRandomizedDelaySec=10min\n");
    expect(unit("kubeadm-ha-cert-renew.service")).toContain("ExecStart=/usr/local/lib/kubeadm-ha/cert-renew.sh\n");
    expect(unit("kubeadm-ha-token-rotate.service")).toContain("ExecStart=/usr/local/lib/kubeadm-ha/token-rotate.sh\n");
    for (const u of dayTwoUnitFiles("control-plane")) {
      expect(u.path).toMatch(/^\/etc\/systemd\/system\/kubeadm-ha-[a-z-]+\.(service|timer)$/);
      expect(u.permissions).toBe("0644");
      expect(u.content).not.toMatch(/^#/m);
    }
  });

  test("systemd-analyze verify accepts every unit", () => {
    const which = spawnSync("systemd-analyze", ["--version"], { encoding: "utf8" });
    if (which.error || which.status !== 0) throw new Error("systemd-analyze is required (apt-get install systemd)");
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kubeadm-ha-units-"));
    try {
      // verify checks that ExecStart= is executable: point it at stand-ins.
      const files = dayTwoUnitFiles("control-plane").map((u) => {
        const f = path.join(dir, path.basename(u.path));
        const content = u.content.replace(/\/usr\/local\/lib\/kubeadm-ha\/([a-z-]+\.sh)/, (_m, s: string) => {
          fs.writeFileSync(path.join(dir, s), "#!/bin/sh\n", { mode: 0o755 });
          return path.join(dir, s);
        });
        fs.writeFileSync(f, content);
        return f;
      });
      const r = spawnSync("systemd-analyze", ["verify", "--man=no", ...files], { encoding: "utf8" });
      expect({ status: r.status, out: r.stdout + r.stderr }).toEqual({ status: 0, out: "" });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
