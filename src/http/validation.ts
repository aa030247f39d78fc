import type { Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { ZodError, ZodType, z } from "zod";

/** One problem with one field of a request, in the shape every admin API 422 uses. */
export interface FieldProblem {
  /** Dotted path of the field (`role`, `query.limit`); `body` for the body as a whole. */
  path: string;
  message: string;
}

/** Flattens a zod error; every unknown key gets its own entry. */
export function toFieldProblems(error: ZodError, prefix?: string): FieldProblem[] {
  const join = (at: string) => [prefix, at].filter(Boolean).join(".");
  return error.issues.flatMap((issue) => {
    const at = issue.path.map(String).join(".");
    if (issue.code === "unrecognized_keys") {
      return issue.keys.map((key) => ({
        path: join(at ? `${at}.${key}` : key),
        message: "unknown field",
      }));
    }
    return [{ path: join(at) || "body", message: issue.message }];
  });
}

/** The 422 body: `{error, fields: [{path, message}]}`, the error naming every field. */
export function invalidRequest(fields: FieldProblem[]) {
  return {
    error: `invalid request: ${fields.map((f) => `${f.path}: ${f.message}`).join("; ")}`,
    fields,
  };
}

export type Parsed<T> = { ok: true; data: T } | { ok: false; response: Response };

/**
 * Reads and validates a JSON body. An absent body is `{}` (so an action with only optional fields
 * needs none); anything that is not JSON, or does not match, answers 422 naming the fields.
 */
export async function parseJsonBody<S extends ZodType>(
  c: Context,
  schema: S,
): Promise<Parsed<z.output<S>>> {
  const text = await c.req.text();
  let body: unknown = {};
  if (text.trim() !== "") {
    try {
      body = JSON.parse(text);
    } catch {
      return {
        ok: false,
        response: c.json(
          invalidRequest([{ path: "body", message: "expected a JSON object" }]),
          422,
        ),
      };
    }
  }
  const parsed = schema.safeParse(body);
  if (!parsed.success) {
    return { ok: false, response: c.json(invalidRequest(toFieldProblems(parsed.error)), 422) };
  }
  return { ok: true, data: parsed.data };
}

/** Validates the query string (repeated keys become arrays); problems are named `query.<key>`. */
export function parseQuery<S extends ZodType>(c: Context, schema: S): Parsed<z.output<S>> {
  const raw: Record<string, string | string[]> = {};
  for (const [key, values] of Object.entries(c.req.queries())) {
    raw[key] = values.length === 1 ? values[0]! : values;
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    return {
      ok: false,
      response: c.json(invalidRequest(toFieldProblems(parsed.error, "query")), 422),
    };
  }
  return { ok: true, data: parsed.data };
}

/** Bodies of admin requests are small; a bigger one is a mistake (or an attack). */
export const smallBody = bodyLimit({
  maxSize: 64 * 1024,
  onError: (c) => c.json({ error: "request body over 64 KiB" }, 413),
});
