import { type ZodType, z } from "zod";
import { ChangeSet, RunnerMessage, ServerMessage } from "./messages.ts";

/*
 * The field tables of docs/protocol.md, generated from the zod schemas (the contract), so the page,
 * the published JSON Schema and the server cannot disagree. A table sits between
 * `<!-- generated:fields <name> -->` and `<!-- /generated:fields -->`, where <name> is a frame
 * type or `change-set`; `npm run docs:protocol` rewrites every such section, and a test fails
 * when the page differs from what it would write, or when a table's "Required" column disagrees
 * with the schema.
 */

/** Everything a field table can be generated for: each frame type, and the upload body. */
export const DOCUMENTED_SCHEMAS: ReadonlyMap<string, ZodType> = new Map<string, ZodType>([
  ...RunnerMessage.options.map((o) => [o.shape.type.value, o] as const),
  ...ServerMessage.options.map((o) => [o.shape.type.value, o] as const),
  ["change-set", ChangeSet],
]);

/** The subset of JSON Schema that `z.toJSONSchema` produces for the protocol. */
export interface JsonSchema {
  type?: string;
  const?: unknown;
  enum?: unknown[];
  format?: string;
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  minItems?: number;
  maxItems?: number;
  items?: JsonSchema;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  anyOf?: JsonSchema[];
  default?: unknown;
  description?: string;
}

/** One row of a field table. `field` is dotted (`repo.base_sha`, `running[].task_id`). */
export interface FieldRow {
  field: string;
  /** Must be present whenever the object it belongs to is. */
  required: boolean;
  /** The value the server assumes when an optional field is left out. */
  default?: unknown;
  type: string;
  meaning: string;
}

/** The input form (what a sender may send: fields with defaults are optional). */
export function jsonSchemaOf(schema: ZodType): JsonSchema {
  return z.toJSONSchema(schema, { io: "input" }) as JsonSchema;
}

/** The rows of an object schema's table, nested objects and arrays of objects flattened. */
export function fieldRows(schema: JsonSchema, prefix = ""): FieldRow[] {
  const rows: FieldRow[] = [];
  for (const [name, property] of Object.entries(schema.properties ?? {})) {
    const field = `${prefix}${name}`;
    rows.push({
      field,
      required: schema.required?.includes(name) ?? false,
      ...(property.default === undefined ? {} : { default: property.default }),
      type: typeText(property),
      meaning: property.description ?? "",
    });
    if (property.properties) rows.push(...fieldRows(property, `${field}.`));
    else if (property.type === "array" && property.items?.properties) {
      rows.push(...fieldRows(property.items, `${field}[].`));
    }
  }
  return rows;
}

/** The Markdown table for one documented schema. */
export function renderFieldTable(name: string): string {
  const schema = DOCUMENTED_SCHEMAS.get(name);
  if (!schema) throw new Error(`no schema named ${name}`);
  const lines = ["| Field | Required | Type | Meaning |", "| --- | --- | --- | --- |"];
  for (const row of fieldRows(jsonSchemaOf(schema))) {
    const required = row.required
      ? "yes"
      : row.default === undefined
        ? "no"
        : `no (default ${code(JSON.stringify(row.default))})`;
    lines.push(`| ${[code(row.field), required, row.type, row.meaning].map(cell).join(" | ")} |`);
  }
  return lines.join("\n");
}

const BEGIN = /^<!-- generated:fields ([\w-]+) -->$/;
const END = "<!-- /generated:fields -->";

/** A generated section of a page: the schema it is for and the lines between its markers. */
export interface GeneratedSection {
  name: string;
  /** 0-based line of the opening marker. */
  line: number;
  body: string[];
}

/** Every generated section of a page; a malformed one throws (an unknown name, no end marker). */
export function generatedSections(markdown: string): GeneratedSection[] {
  const lines = markdown.split("\n");
  const sections: GeneratedSection[] = [];
  for (let i = 0; i < lines.length; i++) {
    const name = BEGIN.exec(lines[i]!.trim())?.[1];
    if (name === undefined) {
      if (lines[i]!.trim() === END) throw new Error(`line ${i + 1}: ${END} without its start`);
      continue;
    }
    if (!DOCUMENTED_SCHEMAS.has(name)) {
      throw new Error(
        `line ${i + 1}: no schema named "${name}" (known: ${[...DOCUMENTED_SCHEMAS.keys()].join(", ")})`,
      );
    }
    const end = lines.findIndex((line, j) => j > i && line.trim() === END);
    if (end === -1) throw new Error(`line ${i + 1}: generated:fields ${name} has no ${END}`);
    sections.push({ name, line: i, body: lines.slice(i + 1, end) });
    i = end;
  }
  return sections;
}

/** The page with every generated section written afresh from the schemas. */
export function renderGeneratedSections(markdown: string): string {
  const lines = markdown.split("\n");
  const sections = generatedSections(markdown);
  // Back to front, so earlier line numbers stay right.
  for (const section of sections.reverse()) {
    lines.splice(section.line + 1, section.body.length, "", renderFieldTable(section.name), "");
  }
  return lines.join("\n");
}

/** A documented row: the field and whether its table says it is required. */
export interface DocumentedField {
  field: string;
  required: boolean;
}

/** The rows of the field table in a generated section (however it was written). */
export function documentedFields(section: GeneratedSection): DocumentedField[] {
  const rows = section.body.filter((line) => line.trim().startsWith("|"));
  const header = rows[0] ? splitRow(rows[0]) : [];
  const fieldColumn = header.findIndex((h) => h.toLowerCase() === "field");
  const requiredColumn = header.findIndex((h) => h.toLowerCase() === "required");
  if (fieldColumn === -1 || requiredColumn === -1) {
    throw new Error(
      `generated:fields ${section.name}: the table needs "Field" and "Required" columns`,
    );
  }
  return rows.slice(2).map((row) => {
    const cells = splitRow(row);
    const required = (cells[requiredColumn] ?? "").trim().toLowerCase();
    return {
      field: (cells[fieldColumn] ?? "").replaceAll("`", "").trim(),
      required: required.startsWith("yes"),
    };
  });
}

/**
 * Where a page's field tables and the schemas disagree: a field one has and the other lacks, or
 * a field the table calls required that the schema does not require (or the other way round).
 * Empty when they agree.
 */
export function requirednessProblems(markdown: string): string[] {
  const problems: string[] = [];
  for (const section of generatedSections(markdown)) {
    const schema = DOCUMENTED_SCHEMAS.get(section.name)!;
    const truth = new Map(fieldRows(jsonSchemaOf(schema)).map((row) => [row.field, row.required]));
    const documented = documentedFields(section);
    for (const { field, required } of documented) {
      const expected = truth.get(field);
      if (expected === undefined) {
        problems.push(`${section.name}: the table has ${field}, which the schema does not`);
      } else if (expected !== required) {
        problems.push(
          `${section.name}: the table says ${field} is ${required ? "required" : "optional"}, the schema says ${expected ? "required" : "optional"}`,
        );
      }
    }
    const listed = new Set(documented.map((d) => d.field));
    for (const field of truth.keys()) {
      if (!listed.has(field)) {
        problems.push(`${section.name}: the schema has ${field}, which the table does not`);
      }
    }
  }
  return problems;
}

function splitRow(row: string): string[] {
  // Cells split on `|` that is not escaped; the outer pipes give an empty first and last cell.
  return row
    .trim()
    .split(/(?<!\\)\|/)
    .slice(1, -1)
    .map((c) => c.trim());
}

function code(text: string): string {
  return text.includes("`") ? `\`\` ${text} \`\`` : `\`${text}\``;
}

function cell(text: string): string {
  return text.replace(/\|/g, "\\|").replace(/\n/g, " ");
}

/** Numbers as the page writes them: 10 000 and up with a space between thousands. */
function number(value: number): string {
  return Math.abs(value) >= 10_000
    ? String(value).replace(/\B(?=(\d{3})+(?!\d))/g, " ")
    : String(value);
}

/** zod bounds every integer by the safe-integer range; that bound says nothing to a reader. */
const meaningful = (bound: number | undefined) =>
  bound !== undefined && Math.abs(bound) < Number.MAX_SAFE_INTEGER ? bound : undefined;

function range(min: number | undefined, max: number | undefined, unit = ""): string {
  const suffix = unit ? ` ${unit}` : "";
  if (min !== undefined && max !== undefined) {
    return min === max ? `${number(min)}${suffix}` : `${number(min)}–${number(max)}${suffix}`;
  }
  if (min !== undefined) return `≥ ${number(min)}${suffix}`;
  if (max !== undefined) return `≤ ${number(max)}${suffix}`;
  return "";
}

/** What a value must look like, in words: `UUID`, `integer ≥ 1`, `array (≤ 64) of objects`. */
export function typeText(schema: JsonSchema): string {
  if (schema.anyOf) return schema.anyOf.map(typeText).join(" or ");
  if (schema.const !== undefined) return code(JSON.stringify(schema.const));
  if (schema.enum) {
    const values = schema.enum.map((v) => code(String(v)));
    return values.length === 1
      ? values[0]!
      : `${values.slice(0, -1).join(", ")} or ${values.at(-1)}`;
  }
  switch (schema.type) {
    case "null":
      return "`null`";
    case "boolean":
      return "boolean";
    case "string": {
      if (schema.format === "uuid") return "UUID";
      const length = range(schema.minLength, schema.maxLength, "characters");
      const pattern = schema.pattern ? ` matching ${code(schema.pattern)}` : "";
      return `string${pattern}${length ? `, ${length}` : ""}`;
    }
    case "integer":
    case "number": {
      const min = meaningful(schema.minimum);
      const bounds =
        schema.exclusiveMinimum !== undefined
          ? `> ${number(schema.exclusiveMinimum)}`
          : range(min, meaningful(schema.maximum));
      if (!bounds) return schema.type;
      return bounds.startsWith("≥") || bounds.startsWith(">") || bounds.startsWith("≤")
        ? `${schema.type} ${bounds}`
        : `${schema.type}, ${bounds}`;
    }
    case "array": {
      const count = range(schema.minItems, schema.maxItems);
      const items = schema.items ? ` of ${plural(typeText(schema.items))}` : "";
      return `array${count ? ` (${count})` : ""}${items}`;
    }
    case "object":
      return "object";
    default:
      return "any JSON value";
  }
}

function plural(text: string): string {
  for (const word of ["string", "integer", "number", "boolean", "object", "array", "UUID"]) {
    if (text.startsWith(word)) return `${word}s${text.slice(word.length)}`;
  }
  return text;
}
