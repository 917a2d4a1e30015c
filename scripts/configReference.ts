/** `npm run docs:config`: prints the config reference table the README embeds. */
import { configReference } from "../config";

process.stdout.write(configReference());
