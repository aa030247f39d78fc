import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { _, Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import addFormatsModule from "ajv-formats";
import { cachedJson, cachedValidator } from "./schema-cache.ts";

// ajv-formats is CommonJS; under NodeNext its default export arrives wrapped.
const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;

export type HttpMethod = "get" | "post" | "put" | "patch" | "delete";

interface ParameterSchema {
  type?: string;
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
}

interface OpenApiParameter {
  name: string;
  in: "path" | "query" | "header" | "cookie";
  required?: boolean;
  schema?: ParameterSchema;
}

interface OpenApiOperation {
  operationId?: string;
  parameters?: OpenApiParameter[];
  requestBody?: {
    required?: boolean;
    content?: Record<string, { schema?: object }>;
  };
}

interface OpenApiDocument {
  paths: Record<string, Partial<Record<HttpMethod, OpenApiOperation>>>;
}

/** A request matched to an operation of GitHub's OpenAPI description. */
export interface OperationMatch {
  method: HttpMethod;
  /** The path template, e.g. `/repos/{owner}/{repo}/issues/{issue_number}`. */
  route: string;
  /** Decoded path parameters. */
  params: Record<string, string>;
  operationId: string | undefined;
}

/** One thing wrong with a request; `field` names the parameter or body location. */
export interface RequestProblem {
  field: string;
  code: "missing_field" | "invalid" | "missing";
  message: string;
}

export interface OpenApiValidator {
  /** Finds the operation for a raw (still percent-encoded) path, or undefined for unknown routes. */
  match(method: string, rawPath: string): OperationMatch | undefined;
  /** Checks parameters and the JSON body; `body` undefined means the request had none. */
  validate(match: OperationMatch, query: URLSearchParams, body: unknown): RequestProblem[];
}

interface CompiledRoute {
  route: string;
  regex: RegExp;
  names: string[];
  /** Literal characters in the template: the more, the more specific (preferred) the match. */
  specificity: number;
  operations: Partial<Record<HttpMethod, OpenApiOperation>>;
}

const METHODS: HttpMethod[] = ["get", "post", "put", "patch", "delete"];

/**
 * Parameters whose values may contain `/` unencoded (GitHub accepts `contents/a/b.md` and
 * `git/ref/heads/main` as well as their `%2F` forms), so they match more than one segment.
 */
const MULTI_SEGMENT_PARAMS = new Set(["path", "ref", "branch"]);

const require = createRequire(import.meta.url);

let cachedDocument: OpenApiDocument | undefined;
let cachedRoutes: Map<string, CompiledRoute[]> | undefined;
const bodyValidators = new Map<string, ValidateFunction | null>();
let ajv: Ajv | undefined;

/**
 * GitHub's REST description, dereferenced (~70 MB), cut down to what request validation needs
 * (responses are most of the size): made once and kept on disk (schema-cache.ts), read once per
 * process.
 */
function loadDocument(): OpenApiDocument {
  cachedDocument ??= cachedJson("rest-requests", () => {
    const full = JSON.parse(
      readFileSync(require.resolve("@octokit/openapi/generated/api.github.com.deref.json"), "utf8"),
    ) as OpenApiDocument;
    const paths: OpenApiDocument["paths"] = {};
    for (const [route, item] of Object.entries(full.paths)) {
      paths[route] = {};
      for (const method of METHODS) {
        const operation = item[method];
        if (!operation) continue;
        paths[route][method] = {
          operationId: operation.operationId,
          parameters: operation.parameters,
          requestBody: operation.requestBody,
        };
      }
    }
    return { paths };
  });
  return cachedDocument;
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function compileRoutes(document: OpenApiDocument): Map<string, CompiledRoute[]> {
  const byFirstSegment = new Map<string, CompiledRoute[]>();
  for (const [route, operations] of Object.entries(document.paths)) {
    const names: string[] = [];
    let specificity = 0;
    const pattern = route
      .split(/(\{[^}]+\})/)
      .map((part) => {
        const param = /^\{([^}]+)\}$/.exec(part);
        if (!param) {
          specificity += part.length;
          return escapeRegex(part);
        }
        names.push(param[1]!);
        return MULTI_SEGMENT_PARAMS.has(param[1]!) ? "(.+)" : "([^/]+)";
      })
      .join("");
    const compiled = { route, regex: new RegExp(`^${pattern}$`), names, specificity, operations };
    const first = route.split("/")[1] ?? "";
    const key = first.startsWith("{") ? "*" : first;
    byFirstSegment.set(key, [...(byFirstSegment.get(key) ?? []), compiled]);
  }
  for (const routes of byFirstSegment.values())
    routes.sort((a, b) => b.specificity - a.specificity);
  return byFirstSegment;
}

function getAjv(): Ajv {
  if (!ajv) {
    // OpenAPI 3.0 schemas carry `nullable`, `example` and `x-*` keys: non-strict mode, no logging.
    // The code is kept (schema-cache.ts) and finds the same formats in ajv-formats.
    ajv = new Ajv({
      strict: false,
      allErrors: true,
      logger: false,
      code: { source: true, formats: _`require("ajv-formats/dist/formats").fullFormats` },
    });
    addFormats(ajv);
  }
  return ajv;
}

function checkParameter(parameter: OpenApiParameter, value: string): string | undefined {
  const schema = parameter.schema ?? {};
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  if (type === "integer" && !/^-?\d+$/.test(value)) return "must be an integer";
  if (type === "number" && Number.isNaN(Number(value))) return "must be a number";
  if (type === "boolean" && value !== "true" && value !== "false") return "must be true or false";
  if (schema.enum && !schema.enum.map(String).includes(value)) {
    return `must be one of ${schema.enum.join(", ")}`;
  }
  const number = Number(value);
  if (schema.minimum !== undefined && number < schema.minimum) {
    return `must be >= ${schema.minimum}`;
  }
  if (schema.maximum !== undefined && number > schema.maximum) {
    return `must be <= ${schema.maximum}`;
  }
  return undefined;
}

/** Turns an Ajv error into a problem that names the body field in GitHub's dotted style. */
export function describeAjvError(error: ErrorObject, root = "request body"): RequestProblem {
  const pointer = error.instancePath.slice(1).replaceAll("/", ".");
  const where = pointer ? `${root} field '${pointer}'` : root;
  if (error.keyword === "required") {
    const missing = (error.params as { missingProperty: string }).missingProperty;
    return {
      field: pointer ? `${pointer}.${missing}` : missing,
      code: "missing_field",
      message: `${where} must have required property '${missing}'`,
    };
  }
  if (error.keyword === "additionalProperties") {
    const extra = (error.params as { additionalProperty: string }).additionalProperty;
    return {
      field: pointer,
      code: "invalid",
      message: `${where} has unexpected property '${extra}'`,
    };
  }
  return { field: pointer, code: "invalid", message: `${where} ${error.message ?? "is invalid"}` };
}

/**
 * Rewrites OpenAPI 3.0 `nullable: true` into JSON Schema (`type: [t, "null"]`, or `anyOf` with
 * `{type: "null"}` where there is no `type`, e.g. beside `oneOf`), which Ajv's own `nullable`
 * support refuses.
 */
export function toJsonSchema(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(toJsonSchema);
  if (!schema || typeof schema !== "object") return schema;
  const { nullable, ...rest } = schema as Record<string, unknown>;
  const converted: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(rest)) {
    // `properties` and `enum` hold names and values, not schemas keyed by keyword.
    converted[key] =
      key === "properties" && value && typeof value === "object"
        ? Object.fromEntries(Object.entries(value).map(([name, sub]) => [name, toJsonSchema(sub)]))
        : key === "enum" || key === "example" || key === "examples"
          ? value
          : toJsonSchema(value);
  }
  if (nullable !== true) return converted;
  if (typeof converted.type === "string") {
    const nullableType: Record<string, unknown> = { ...converted, type: [converted.type, "null"] };
    if (Array.isArray(converted.enum)) nullableType.enum = [...converted.enum, null];
    return nullableType;
  }
  return { anyOf: [converted, { type: "null" }] };
}

function bodyValidator(match: OperationMatch, operation: OpenApiOperation) {
  const key = `${match.method} ${match.route}`;
  if (!bodyValidators.has(key)) {
    const schema = operation.requestBody?.content?.["application/json"]?.schema;
    bodyValidators.set(
      key,
      schema
        ? cachedValidator(`rest ${key}`, getAjv, (instance) =>
            instance.compile(toJsonSchema(schema) as object),
          )
        : null,
    );
  }
  return bodyValidators.get(key) ?? undefined;
}

/**
 * Matches requests against GitHub's published OpenAPI description and checks their parameters and
 * JSON bodies. The document and the compiled validators are kept on disk (schema-cache.ts) and
 * read once per process.
 */
export function createOpenApiValidator(): OpenApiValidator {
  const routes = () => {
    cachedRoutes ??= compileRoutes(loadDocument());
    return cachedRoutes;
  };

  const operationOf = (match: OperationMatch) => {
    const operation = loadDocument().paths[match.route]?.[match.method];
    if (!operation) throw new Error(`no operation for ${match.method} ${match.route}`);
    return operation;
  };

  return {
    match(method, rawPath) {
      const lower = method.toLowerCase() as HttpMethod;
      if (!METHODS.includes(lower)) return undefined;
      const first = rawPath.split("/")[1] ?? "";
      const candidates = [...(routes().get(first) ?? []), ...(routes().get("*") ?? [])];
      for (const candidate of candidates) {
        const operation = candidate.operations[lower];
        if (!operation) continue;
        const found = candidate.regex.exec(rawPath);
        if (!found) continue;
        const params: Record<string, string> = {};
        let decodable = true;
        candidate.names.forEach((name, index) => {
          try {
            params[name] = decodeURIComponent(found[index + 1]!);
          } catch {
            decodable = false;
          }
        });
        if (!decodable) continue;
        return {
          method: lower,
          route: candidate.route,
          params,
          operationId: operation.operationId,
        };
      }
      return undefined;
    },

    validate(match, query, body) {
      const operation = operationOf(match);
      const problems: RequestProblem[] = [];
      for (const parameter of operation.parameters ?? []) {
        if (parameter.in === "path") {
          const value = match.params[parameter.name];
          const error = value === undefined ? "is missing" : checkParameter(parameter, value);
          if (error) {
            problems.push({
              field: parameter.name,
              code: "invalid",
              message: `path parameter '${parameter.name}' ${error} (got ${JSON.stringify(value)})`,
            });
          }
        } else if (parameter.in === "query") {
          const value = query.get(parameter.name);
          if (value === null) {
            if (parameter.required) {
              problems.push({
                field: parameter.name,
                code: "missing",
                message: `query parameter '${parameter.name}' is required`,
              });
            }
            continue;
          }
          const error = checkParameter(parameter, value);
          if (error) {
            problems.push({
              field: parameter.name,
              code: "invalid",
              message: `query parameter '${parameter.name}' ${error} (got ${JSON.stringify(value)})`,
            });
          }
        }
      }
      if (body === undefined) {
        if (operation.requestBody?.required) {
          problems.push({ field: "body", code: "missing", message: "a request body is required" });
        }
        return problems;
      }
      const validate = bodyValidator(match, operation);
      if (validate && !validate(body)) {
        problems.push(...(validate.errors ?? []).map((error) => describeAjvError(error)));
      }
      return problems;
    },
  };
}
