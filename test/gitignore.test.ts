/**
 * Nothing secret lands in git: every path the README's commands write inside the repository is
 * ignored, and the admin kubeconfig goes outside it. The paths come from the README itself
 * (redirections, `pulumi login file://`), so a new step that writes a file is checked as written.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";

const ROOT = path.resolve(__dirname, "..");
const README = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");

/** Every command line of the README's ```sh blocks. */
export function readmeCommands(markdown: string): string[] {
  return [...markdown.matchAll(/```sh\n([\s\S]*?)```/g)].flatMap((m) => m[1].split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#")));
}

/** The files and directories a command line writes: `> file`, `>> file`, `pulumi login file://<dir>`. */
export function writtenPaths(line: string): string[] {
  const out: string[] = [];
  // A `>` inside quotes is text ('<urn>'), unless the quotes are a redirection's target.
  line = line.replace(/(>>?\s*)?("[^"]*"|'[^']*')/g, (all, redirect: string | undefined) => (redirect ? all : "''"));
  // Redirections, not fd duplications (>&2) and not /dev/null; quotes around the target are allowed.
  for (const m of line.matchAll(/(?:^|[^0-9&>])>>?\s*(?!&)("[^"]+"|'[^']+'|[^\s;|&)]+)/g)) out.push(m[1].replace(/^["']|["']$/g, ""));
  // A directory: written with a trailing slash.
  for (const m of line.matchAll(/pulumi login file:\/\/(\S+)/g)) out.push(`${m[1].replace(/\/$/, "")}/`);
  return out.filter((p) => !p.startsWith("/dev/"));
}

/** Where a README path lands: inside the repository (relative to it) or outside. */
function place(p: string): { inside: boolean; rel: string } {
  if (/^(~|\$HOME)\//.test(p)) return { inside: false, rel: p };
  const rel = p.replace(/^\$PWD\//, "").replace(/^\.\//, "");
  if (rel.startsWith("/") || rel.startsWith("$")) return { inside: false, rel };
  return { inside: true, rel };
}

/** Whether git ignores `rel`; for a directory (trailing slash), a file in it. */
const ignored = (rel: string) => spawnSync("git", ["check-ignore", "-q", "--no-index", rel.endsWith("/") ? `${rel}meta.yaml` : rel], { cwd: ROOT }).status === 0;

describe("writtenPaths", () => {
  it.each([
    ["pulumi stack output kubeconfig --show-secrets > kubeconfig", ["kubeconfig"]],
    ['echo x >> "$PWD/a b.txt"; cat y >&2', ["$PWD/a b.txt"]],
    ["pulumi login file://$PWD/.pulumi-state        # or: s3", ["$PWD/.pulumi-state/"]],
    ["cmd 2>/dev/null >out/x.json", ["out/x.json"]],
    ["aws s3 ls | sort | tail -5", []],
    ["pulumi up --replace '<urn>' && echo \"a > b\"", []],
  ])("%s", (line, paths) => expect(writtenPaths(line)).toEqual(paths));
});

describe(".gitignore against the README's commands", () => {
  const written = readmeCommands(README).flatMap(writtenPaths);

  it("finds the state directory and the kubeconfig among the paths the deploy steps write", () => {
    expect(written).toEqual(expect.arrayContaining(["$PWD/.pulumi-state/", "~/.kube/kubeadm-ha-dev.yaml"]));
  });

  it("ignores every path the README writes inside the repository", () => {
    const inside = written.map(place).filter((p) => p.inside);
    expect(inside.length).toBeGreaterThan(0);
    for (const { rel } of inside) expect({ rel, ignored: ignored(rel) }).toEqual({ rel, ignored: true });
  });

  it("writes the admin kubeconfig outside the repository, readable only by its owner", () => {
    const lines = readmeCommands(README).filter((l) => /pulumi stack output kubeconfig/.test(l));
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) {
      for (const p of writtenPaths(l)) expect({ p, inside: place(p).inside }).toEqual({ p, inside: false });
      expect(l).toMatch(/\(umask 077 && pulumi stack output kubeconfig/);
    }
  });

  it("ignores what npm run setup, the render, the tests and a stray kubeconfig leave", () => {
    for (const rel of ["node_modules/x", ".cache/k8s", ".cache/aws/bin/python", "out/dev/resources.md", "out/prod/cost.md", ".pulumi-state/.pulumi/stacks/kubeadm-ha/dev.json", "kubeconfig", "admin.kubeconfig"])
      expect({ rel, ignored: ignored(rel) }).toEqual({ rel, ignored: true });
    // Not everything: the sources stay tracked.
    for (const rel of ["index.ts", "Pulumi.dev.yaml", "scripts/setup.sh", "docs/performance.md"]) expect({ rel, ignored: ignored(rel) }).toEqual({ rel, ignored: false });
  });
});
