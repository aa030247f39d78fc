// Writes the runner protocol's published JSON Schema (docs/protocol.schema.json) and the field
// tables of docs/protocol.md from the zod schemas in src/protocol/messages.ts
// (`npm run docs:protocol`). A test fails when either drifts from the schemas.
import { readFileSync, writeFileSync } from "node:fs";
import { protocolJsonSchemas } from "../src/protocol/messages.ts";
import { renderGeneratedSections } from "../src/protocol/protocol-doc-tables.ts";

const schemaFile = new URL("../docs/protocol.schema.json", import.meta.url);
writeFileSync(schemaFile, `${JSON.stringify(protocolJsonSchemas(), null, 2)}\n`);
process.stdout.write(`wrote ${schemaFile.pathname}\n`);

const page = new URL("../docs/protocol.md", import.meta.url);
const before = readFileSync(page, "utf8");
const after = renderGeneratedSections(before);
if (after !== before) writeFileSync(page, after);
process.stdout.write(`${after === before ? "unchanged" : "rewrote"} ${page.pathname}\n`);
