import * as fs from "fs";
import * as path from "path";
import { configReference } from "../config";

const ROOT = path.resolve(__dirname, "..");
const README = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8"));

describe("README", () => {
  it("embeds the config reference generated from config.ts (npm run docs:config -- --write)", () => {
    const m = README.match(/<!-- config-reference:start -->\n([\s\S]*?)<!-- config-reference:end -->/);
    expect(m).not.toBeNull();
    // To refresh: npm run -s docs:config, and paste between the markers.
    expect(m![1]).toBe(configReference());
  });

  it("names only npm scripts that exist", () => {
    const used = [...README.matchAll(/npm run (?:-s |--silent )?([a-z][a-z:-]*)/g)].map((x) => x[1]);
    expect(used.length).toBeGreaterThan(0);
    for (const s of used) expect(Object.keys(pkg.scripts)).toContain(s);
    expect(pkg.scripts.test).toBe("tsc --noEmit && jest");
  });

  it("lists every stack file that exists", () => {
    for (const f of fs.readdirSync(ROOT).filter((f) => /^Pulumi\.[a-z]+\.yaml$/.test(f))) expect(README).toContain(f);
  });
});
