import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { parseAllDocuments } from "yaml";
import { requirePrerequisite } from "./prerequisites.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

export interface KubernetesObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; [key: string]: unknown };
  [key: string]: unknown;
}

/** `kubectl kustomize <dir>`: the objects it renders, or a thrown error with what kubectl said. */
export function kustomize(dir: string): KubernetesObject[] {
  const result = spawnSync(requirePrerequisite("kubectl"), ["kustomize", dir], {
    encoding: "utf8",
    timeout: 60_000,
    maxBuffer: 1 << 24,
  });
  if (result.error) throw result.error;
  if (result.status !== 0) {
    throw new Error(`kubectl kustomize ${dir} failed (${result.status}):\n${result.stderr}`);
  }
  return parseAllDocuments(result.stdout).map((document) => {
    if (document.errors.length > 0) throw document.errors[0];
    return document.toJS() as KubernetesObject;
  });
}

/**
 * The major version of the kustomize inside kubectl. kubectl before 1.21 (Debian 12's
 * kubernetes-client is 1.20) has kustomize 2 and does not print its version: 2 then.
 */
export function kustomizeMajorVersion(): number {
  const result = spawnSync(requirePrerequisite("kubectl"), ["version", "--client"], {
    encoding: "utf8",
    timeout: 30_000,
  });
  if (result.error) throw result.error;
  const match = /Kustomize Version: v(\d+)\./.exec(result.stdout);
  return match ? Number(match[1]) : 2;
}

const id = (o: KubernetesObject) => `${o.kind}/${o.metadata?.name}`;

/**
 * The module with the models of an apiVersion: the Kubernetes API's own from `kubernetes-models`,
 * KEDA's custom resources (`keda.sh/…`) from `@kubernetes-models/keda`.
 */
function modelsModule(apiVersion: string): string {
  return apiVersion.startsWith("keda.sh/")
    ? `@kubernetes-models/keda/${apiVersion}`
    : `kubernetes-models/${apiVersion}`;
}

/**
 * Checks an object against the JSON Schema of its kind in the Kubernetes API (the OpenAPI
 * definitions, as compiled by the `kubernetes-models` package): types, enums, required fields.
 * Returns the problems, empty when there are none; a kind without a schema is a problem.
 */
export async function schemaProblems(object: KubernetesObject): Promise<string[]> {
  let models: Record<string, unknown>;
  try {
    const specifier = modelsModule(object.apiVersion);
    models = await import(/* @vite-ignore */ specifier);
  } catch {
    return [`${id(object)}: no schema for apiVersion ${object.apiVersion}`];
  }
  const Model = models[object.kind] as (new (data: unknown) => { validate(): void }) | undefined;
  if (typeof Model !== "function") {
    return [`${id(object)}: no schema for ${object.apiVersion} ${object.kind}`];
  }
  try {
    new Model(object).validate();
    return [];
  } catch (error) {
    return [`${id(object)}: ${(error as Error).message}`];
  }
}

/**
 * The API's JSON Schemas allow fields they do not define (the API server drops or, with strict
 * field validation, refuses them), so a misspelt field passes them. This finds such fields: it
 * type-checks each object as a literal of the package's TypeScript type for its kind, where an
 * unknown property at any depth is an error. Returns the problems, empty when there are none.
 */
export function unknownFields(objects: readonly KubernetesObject[]): string[] {
  const fileName = join(ROOT, "test", "kubernetes-objects.check.ts");
  const lines: string[] = [];
  const spans: { object: KubernetesObject; from: number; to: number }[] = [];
  objects.forEach((object, i) => {
    const type = `I${object.kind}`;
    lines.push(
      `import type { ${type} as T${i} } from "${modelsModule(object.apiVersion)}/${object.kind}";`,
    );
  });
  objects.forEach((object, i) => {
    const literal = `export const o${i}: T${i} = ${JSON.stringify(object, null, 2)};`;
    spans.push({ object, from: lines.length, to: lines.length + literal.split("\n").length });
    lines.push(literal);
  });
  const source = lines.join("\n");
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    lib: ["lib.es2022.d.ts"],
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, language, ...rest) =>
    name === fileName
      ? ts.createSourceFile(name, source, language)
      : getSourceFile(name, language, ...rest);
  const program = ts.createProgram([fileName], options, host);
  return ts.getPreEmitDiagnostics(program).map((diagnostic) => {
    const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n");
    if (diagnostic.file?.fileName !== fileName || diagnostic.start === undefined) return message;
    const { line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start);
    const span = spans.find((s) => line >= s.from && line < s.to);
    return span ? `${id(span.object)}: ${message}` : message;
  });
}
