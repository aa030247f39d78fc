import postgres from "postgres";
import type { TestProject } from "vitest/node";
import { createDatabase } from "../../db/client.ts";
import { migrate } from "../../db/migrate.ts";
import { type PostgresCluster, startPostgresCluster } from "./postgres-cluster.ts";

declare module "vitest" {
  export interface ProvidedContext {
    /** Superuser URL of the test server's maintenance database. */
    postgresAdminUrl: string;
    /** Name of the migrated template database every test file clones. */
    postgresTemplate: string;
  }
}

const TEMPLATE = `conveyor_template_${process.pid}`;

/**
 * Once per run: a PostgreSQL server (TEST_DATABASE_URL or a throwaway cluster) and a template
 * database with every migration applied. Test files clone it, which takes milliseconds.
 */
export default async function setup(project: TestProject) {
  const cluster: PostgresCluster | undefined = process.env.TEST_DATABASE_URL
    ? undefined
    : await startPostgresCluster();
  const adminUrl = process.env.TEST_DATABASE_URL ?? cluster!.url;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`drop database if exists ${TEMPLATE}`);
  await admin.unsafe(`create database ${TEMPLATE}`);
  const templateUrl = new URL(adminUrl);
  templateUrl.pathname = `/${TEMPLATE}`;
  const database = await createDatabase({ url: templateUrl.toString(), max: 1 });
  await migrate(database.db);
  await database.close();
  project.provide("postgresAdminUrl", adminUrl);
  project.provide("postgresTemplate", TEMPLATE);
  return async () => {
    await admin.unsafe(`drop database if exists ${TEMPLATE} with (force)`).catch(() => {});
    await admin.end();
    await cluster?.stop();
  };
}
