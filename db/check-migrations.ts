import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));

/**
 * Runs drizzle-kit generate against a copy of the committed migrations. If it would write a new
 * migration, `db/schema.ts` changed without `npm run db:generate`. Returns the new SQL, or "".
 */
export function pendingSchemaChanges(): string {
  // drizzle-kit only understands an output folder relative to the working directory.
  mkdirSync(join(root, ".tmp"), { recursive: true });
  const dir = mkdtempSync(join(root, ".tmp", "migrations-check-"));
  try {
    cpSync(join(root, "db/migrations"), dir, { recursive: true });
    const before = new Set(readdirSync(dir));
    const output = execFileSync(
      join(root, "node_modules/.bin/drizzle-kit"),
      [
        "generate",
        "--dialect",
        "postgresql",
        "--schema",
        "./db/schema.ts",
        "--out",
        relative(root, dir),
      ],
      { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] },
    );
    const added = readdirSync(dir).filter((f) => f.endsWith(".sql") && !before.has(f));
    // drizzle-kit exits 0 even when it fails, so an answer that is neither is an error.
    if (added.length === 0 && !output.includes("No schema changes")) {
      throw new Error(`drizzle-kit generate failed:\n${output}`);
    }
    return added.map((f) => readFileSync(join(dir, f), "utf8")).join("\n");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const changes = pendingSchemaChanges();
  if (changes) {
    process.stderr.write(
      `db/schema.ts differs from db/migrations. Run \`npm run db:generate\` and commit the result.\nMissing migration:\n${changes}\n`,
    );
    process.exit(1);
  }
  process.stdout.write("migrations match the schema\n");
}
