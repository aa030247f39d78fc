import type { SQL } from "drizzle-orm";
import { PgDialect } from "drizzle-orm/pg-core";
import pino from "pino";
import { describe, expect, it } from "vitest";
import type { Database } from "../../db/client.ts";
import { createObservability } from "./create-observability.ts";

const logger = pino({ level: "silent" });

/** A database that only takes statements, slowly, and remembers them as text and parameters. */
function fakeDatabase() {
  const dialect = new PgDialect();
  const written: { sql: string; params: unknown[] }[] = [];
  const db = {
    async execute(query: SQL) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      written.push(dialect.sqlToQuery(query));
      return [];
    },
  };
  return { database: { kind: "postgres", db } as unknown as Database, written };
}

describe("the observability subsystem", () => {
  it("counts an error at once and writes its event by the time it stops", async () => {
    const { database, written } = fakeDatabase();
    const at = Date.parse("2025-01-02T03:04:05.000Z");
    const observability = createObservability({ database, logger, options: { now: () => at } });
    observability.recordError("loop:notifier", new Error("GitHub said 502"), { taskId: "t1" });

    const counter = observability.metrics.registry.getSingleMetric("conveyor_errors_total");
    const counted = (await counter?.get())?.values.find((v) => v.labels.source === "loop:notifier");
    expect(counted?.value).toBe(1);
    expect(written).toEqual([]);

    await observability.stop();
    expect(written).toHaveLength(1);
    expect(written[0]?.sql).toMatch(/insert into error_events/);
    expect(written[0]?.params).toEqual([
      "loop:notifier",
      "GitHub said 502",
      JSON.stringify({ name: "Error", taskId: "t1" }),
      "2025-01-02T03:04:05.000Z",
    ]);
  });

  it("stops at once when nothing was recorded", async () => {
    const { database, written } = fakeDatabase();
    await createObservability({ database, logger, options: {} }).stop();
    expect(written).toEqual([]);
  });
});
