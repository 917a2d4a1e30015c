/**
 * Each machine gets only its role's scripts (cloud-init/render.ts scriptsFor). These checks keep
 * the selection closed: whatever a selected script sources or runs from the script folder is
 * selected too, and no script in the folder is dead.
 */
import * as fs from "fs";
import * as path from "path";
import { SCRIPTS_DIR, ScriptNeeds, scriptsFor, shippedScript } from "../cloud-init/render";

/** Every combination of needs a machine can have. Extend it with each new field of ScriptNeeds. */
export const ALL_NEEDS: ScriptNeeds[] = [
  { role: "control-plane", etcdTopology: "stacked" },
  { role: "control-plane", etcdTopology: "external" },
  { role: "control-plane", etcdTopology: "stacked", addons: true },
  { role: "control-plane", etcdTopology: "external", addons: true },
  { role: "control-plane", etcdTopology: "stacked", backup: true },
  { role: "control-plane", etcdTopology: "stacked", addons: true, backup: true },
  { role: "worker" },
  { role: "worker", launchHook: true },
  { role: "etcd" },
  { role: "etcd", backup: true },
];

/**
 * References guarded at run time, with the machines on which the guard skips them: there the
 * referenced script may be absent. Extend it with each new guarded reference.
 */
export const GUARDED: Record<string, (n: ScriptNeeds) => boolean> = {
  "bootstrap.sh -> join-lock.sh": (n) => n.role !== "control-plane",
  // Runs only when master 0's add-on list exists, which ships with addons.sh.
  "bootstrap.sh -> addons.sh": (n) => !n.addons,
  // Runs only on a worker whose node.env names a launch hook, which ships with node-ready.sh.
  "bootstrap.sh -> node-ready.sh": (n) => !(n.role === "worker" && n.launchHook),
  // Runs only on machines holding an etcd member: external members and stacked masters.
  "bootstrap.sh -> etcd-rejoin.sh": (n) => !(n.role === "etcd" || (n.role === "control-plane" && n.etcdTopology === "stacked")),
  // `day2.sh addons` runs only on master 0 with addons.installer nodes, whose bundle ships addons.sh.
  "day2.sh -> addons.sh": (n) => !n.addons,
  // An etcd member renews under an etcd lock; only masters take the join lock.
  "cert-renew.sh -> join-lock.sh": (n) => n.role === "etcd",
  // `day2.sh upgrade` runs on masters only: it refuses on an etcd member before it takes the lock.
  "day2.sh -> join-lock.sh": (n) => n.role === "etcd",
};

/** Scripts a script pulls in: `source "$KUBEADM_HA_LIB/x.sh"`, `"$BASH" "$KUBEADM_HA_LIB/x.sh"` or `${BASH_SOURCE[0]%/*}/x.sh`. */
function referenced(script: string): string[] {
  const text = fs.readFileSync(path.join(SCRIPTS_DIR, script), "utf8");
  const refs = [...text.matchAll(/(?:\$KUBEADM_HA_LIB|\$\{KUBEADM_HA_LIB\}|\$\{BASH_SOURCE\[0\]%\/\*\})\/([a-z0-9-]+\.sh)/g)].map((m) => m[1]);
  return [...new Set(refs)].sort();
}

describe("scriptsFor", () => {
  it.each(ALL_NEEDS.map((n) => [JSON.stringify(n), n] as const))("%s: every script a selected script uses is selected", (_, needs) => {
    const selected = new Set(scriptsFor(needs));
    const missing = [...selected].flatMap((s) => referenced(s).filter((r) => !selected.has(r)).map((r) => `${s} -> ${r}`)).filter((ref) => !GUARDED[ref]?.(needs));
    expect(missing).toEqual([]);
  });

  it("every script in cloud-init/scripts is selected for some machine", () => {
    const used = new Set(ALL_NEEDS.flatMap((n) => scriptsFor(n)));
    const all = fs.readdirSync(SCRIPTS_DIR).filter((f) => f.endsWith(".sh"));
    expect(all.filter((f) => !used.has(f))).toEqual([]);
  });

  it("workers and etcd members do not get the control-plane join lock", () => {
    expect(scriptsFor({ role: "worker" })).toEqual(["boot.sh", "bootstrap.sh", "fetch-secrets.sh", "install.sh", "lib.sh"]);
    expect(scriptsFor({ role: "etcd" })).not.toContain("join-lock.sh");
    expect(scriptsFor({ role: "control-plane" })).toContain("join-lock.sh");
  });

  it("only machines holding an etcd member get etcd-rejoin.sh", () => {
    expect(ALL_NEEDS.filter((n) => scriptsFor(n).includes("etcd-rejoin.sh"))).toEqual(
      ALL_NEEDS.filter((n) => n.role === "etcd" || (n.role === "control-plane" && n.etcdTopology === "stacked")),
    );
    expect(referenced("etcd-rejoin.sh")).toEqual(["etcdctl.sh", "lib.sh"]);
  });

  it.each([
    [{ role: "control-plane", etcdTopology: "stacked", backup: true }, true],
    [{ role: "etcd", backup: true }, true],
    [{ role: "control-plane", etcdTopology: "stacked" }, false],
    [{ role: "etcd" }, false],
    // No member, nothing to snapshot: the flag is ignored.
    [{ role: "control-plane", etcdTopology: "external", backup: true }, false],
    [{ role: "worker", backup: true }, false],
  ] as [ScriptNeeds, boolean][])("%j: the backup and restore scripts only with backups on a machine holding a member (%s)", (needs, shipped) => {
    const s = scriptsFor(needs);
    expect([s.includes("etcd-backup.sh"), s.includes("etcd-restore.sh")]).toEqual([shipped, shipped]);
  });

  it("the reference scan sees the scripts bootstrap.sh pulls in", () => {
    expect(referenced("bootstrap.sh")).toEqual(["addons.sh", "etcd-rejoin.sh", "fetch-secrets.sh", "install.sh", "join-lock.sh", "lib.sh", "node-ready.sh"]);
  });

  it.each([
    [{ role: "worker", launchHook: true }, true],
    [{ role: "worker" }, false],
    // Only a worker has a launch hook: the flag means nothing elsewhere.
    [{ role: "control-plane", etcdTopology: "stacked", launchHook: true }, false],
    [{ role: "etcd", launchHook: true }, false],
  ] as [ScriptNeeds, boolean][])("%j: node-ready.sh only on a worker with the launch hook (%s)", (needs, shipped) => {
    expect(scriptsFor(needs).includes("node-ready.sh")).toBe(shipped);
  });
});

describe("shippedScript", () => {
  it.each([
    ["drops comment lines, keeps the shebang", "#!/usr/bin/env bash\n# why\nset -e\n  # indented why\necho hi # trailing stays\n", "#!/usr/bin/env bash\nset -e\necho hi # trailing stays\n"],
    ["keeps shellcheck directives", "# shellcheck shell=bash\n# prose\nx=1\n", "# shellcheck shell=bash\nx=1\n"],
    ["keeps every line of a here-document", "cat <<'EOF'\n# data\nEOF\n# gone\n", "cat <<'EOF'\n# data\nEOF\n"],
    ["keeps an unquoted, dash here-document", "read -r -d '' X <<-PY || true\n# python comment\n\tPY\n# gone\n", "read -r -d '' X <<-PY || true\n# python comment\n\tPY\n"],
    ["a here-string is not a here-document", "read -r a <<<\"$x\"\n# gone\n", "read -r a <<<\"$x\"\n"],
    ["a # not at line start is code", "echo \"#x\"\n", "echo \"#x\"\n"],
    ["keeps every line of a longer here-document, then strips again", "cat <<EOF\n# one\n# two\n  EOF\n# gone\n", "cat <<EOF\n# one\n# two\n  EOF\n"],
    ["a #! after the first line is a comment", "set -e\n#!/bin/sh\n", "set -e\n"],
    ["keeps an indented shellcheck directive", "  # shellcheck disable=SC2034\n  # prose\n", "  # shellcheck disable=SC2034\n"],
  ])("%s", (_, input, expected) => {
    expect(shippedScript(input)).toBe(expected);
  });
});
