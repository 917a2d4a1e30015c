/**
 * `npm run docs:config` prints the config reference table; `npm run docs:config -- --write`
 * puts it into README.md between its markers.
 */
import * as fs from "fs";
import * as path from "path";
import { configReference } from "../config";

const table = configReference();
if (process.argv.includes("--write")) {
  const file = path.resolve(__dirname, "..", "README.md");
  const readme = fs.readFileSync(file, "utf8");
  const re = /(<!-- config-reference:start -->\n)[\s\S]*?(<!-- config-reference:end -->)/;
  if (!re.test(readme)) throw new Error("README.md lacks the config-reference markers");
  fs.writeFileSync(file, readme.replace(re, (_m, start: string, end: string) => start + table + end));
  console.log("README.md config reference updated");
} else {
  process.stdout.write(table);
}
