import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Ajv, ValidateFunction } from "ajv";

/**
 * A disk cache for what the simulator derives from GitHub's published descriptions: the REST
 * document cut down to what request validation reads, and every compiled Ajv validator as
 * standalone code. Deriving them costs seconds of CPU (a 70 MB parse, compiles of large webhook
 * schemas), and test files each run in a fresh process, so without it every file paid again.
 *
 * The cache lives in `node_modules/.cache/` (gone with a fresh install) under a key made of the
 * versions of the packages it derives from and of the source files that derive it: a new
 * description, Ajv or a change to the validators makes a new key, never a stale answer. Files are
 * written whole and renamed into place, so test files running side by side never read a half.
 */

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, "../..");
const require = createRequire(import.meta.url);
const standaloneCode = (
  require("ajv/dist/standalone") as { default: (ajv: Ajv, validate: ValidateFunction) => string }
).default;

const SOURCES = [
  "schema-cache.ts",
  "openapi-validator.ts",
  "webhook-payload-validator.ts",
  "webhook-formats.cjs",
];
const PACKAGES = ["ajv", "ajv-formats", "@octokit/openapi", "@octokit/openapi-webhooks"];

let directory: string | undefined;

function cacheDirectory(): string {
  if (!directory) {
    const hash = createHash("sha256");
    for (const name of PACKAGES) {
      const manifest = JSON.parse(readFileSync(require.resolve(`${name}/package.json`), "utf8"));
      hash.update(`${name}@${manifest.version}\n`);
    }
    for (const source of SOURCES) hash.update(readFileSync(join(HERE, source)));
    directory = join(
      ROOT,
      "node_modules/.cache/conveyor-github-sim",
      hash.digest("hex").slice(0, 16),
    );
    mkdirSync(directory, { recursive: true });
  }
  return directory;
}

function fileFor(name: string, extension: string): string {
  const safe = name.replace(/[^a-zA-Z0-9._-]+/g, "_").slice(0, 80);
  const digest = createHash("sha256").update(name).digest("hex").slice(0, 12);
  return join(cacheDirectory(), `${safe}-${digest}${extension}`);
}

function writeWhole(path: string, text: string): void {
  const partial = `${path}.${process.pid}.partial`;
  writeFileSync(partial, text);
  renameSync(partial, path);
}

/** `build()`'s JSON-serialisable result, kept on disk under `name`. */
export function cachedJson<T>(name: string, build: () => T): T {
  const path = fileFor(name, ".json");
  if (existsSync(path)) return JSON.parse(readFileSync(path, "utf8")) as T;
  const value = build();
  writeWhole(path, JSON.stringify(value));
  return value;
}

/**
 * The validator `compile()` makes with `ajv`, kept on disk under `name` as Ajv's standalone code.
 * `ajv` must have `code.source` on and name its formats by a module (`code.formats`), so the code
 * loads in another process with the same formats.
 */
export function cachedValidator(
  name: string,
  ajv: () => Ajv,
  compile: (ajv: Ajv) => ValidateFunction,
): ValidateFunction {
  const path = fileFor(name, ".cjs");
  if (existsSync(path)) return require(path) as ValidateFunction;
  const instance = ajv();
  const validate = compile(instance);
  writeWhole(path, standaloneCode(instance, validate));
  return validate;
}
