/** The etcd backup's systemd units, checked by systemd itself. Slow tier: it runs systemd-analyze. */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as render from "../cloud-init/render";

describe("etcd backup units", () => {
  test("systemd-analyze verify accepts both units", () => {
    const which = spawnSync("systemd-analyze", ["--version"], { encoding: "utf8" });
    if (which.error || which.status !== 0) throw new Error("systemd-analyze is required (apt-get install systemd)");
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kubeadm-ha-units-"));
    // verify checks that ExecStart= is executable: point it at a stand-in of the same script.
    const script = path.join(dir, "etcd-backup.sh");
    fs.writeFileSync(script, "#!/bin/sh\n", { mode: 0o755 });
    const files = render.backupUnitFiles(1440).map((u) => {
      const f = path.join(dir, path.basename(u.path));
      fs.writeFileSync(f, u.content.replace("/usr/local/lib/kubeadm-ha/etcd-backup.sh", script));
      return f;
    });
    const r = spawnSync("systemd-analyze", ["verify", "--man=no", ...files], { encoding: "utf8" });
    fs.rmSync(dir, { recursive: true, force: true });
    expect({ status: r.status, out: r.stdout + r.stderr }).toEqual({ status: 0, out: "" });
  });
});
