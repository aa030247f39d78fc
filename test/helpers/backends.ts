import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createDatabase, type Database } from "../../db/client.ts";
import { migrate } from "../../db/migrate.ts";
import { createTestDatabase } from "./test-database.ts";

export interface Backend {
  name: "postgres" | "pglite";
  open(): Promise<Database & { dispose(): Promise<void> }>;
}

/**
 * The two databases Conveyor runs on. Repository-layer suites run against both, to prove the
 * embedded default behaves like the real server.
 */
export const BACKENDS: Backend[] = [
  {
    name: "postgres",
    async open() {
      const database = await createTestDatabase();
      return { ...database, dispose: () => database.drop() };
    },
  },
  {
    name: "pglite",
    async open() {
      const dir = mkdtempSync(join(tmpdir(), "conveyor-pglite-"));
      const database = await createDatabase({ dataDir: dir });
      await migrate(database.db);
      return {
        ...database,
        async dispose() {
          await database.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  },
];
