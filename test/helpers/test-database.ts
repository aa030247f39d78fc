import { randomBytes } from "node:crypto";
import postgres from "postgres";
import { inject } from "vitest";
import { createDatabase, type Database } from "../../db/client.ts";

export interface TestDatabase extends Database {
  url: string;
  /** Closes the connections and drops the database. */
  drop(): Promise<void>;
}

/**
 * A fresh database cloned from the migrated template: isolated from every other test file.
 * `migrated: false` gives an empty database instead.
 */
export async function createTestDatabase(
  options: { max?: number; migrated?: boolean; applicationName?: string } = {},
): Promise<TestDatabase> {
  const adminUrl = inject("postgresAdminUrl");
  const name = `conveyor_test_${randomBytes(6).toString("hex")}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    const template = options.migrated === false ? "template0" : inject("postgresTemplate");
    await admin.unsafe(`create database ${name} template ${template}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const database = await createDatabase({
    url: url.toString(),
    max: options.max ?? 5,
    // Lease holders are recognised by their connections' name (see `tryAcquireLease`).
    ...(options.applicationName ? { applicationName: options.applicationName } : {}),
  });
  return {
    ...database,
    url: url.toString(),
    async drop() {
      await database.close();
      const again = postgres(adminUrl, { max: 1, onnotice: () => {} });
      await again.unsafe(`drop database if exists ${name} with (force)`);
      await again.end();
    },
  };
}
