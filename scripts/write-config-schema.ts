// Writes docs/conveyor.schema.json from the zod schema (`npm run docs:schema`). A test fails when
// the committed file drifts from the schema.
import { writeFileSync } from "node:fs";
import { repoConfigJsonSchema } from "../src/core/repo-config.ts";

const target = new URL("../docs/conveyor.schema.json", import.meta.url);
writeFileSync(target, `${JSON.stringify(repoConfigJsonSchema(), null, 2)}\n`);
process.stdout.write(`wrote ${target.pathname}\n`);
