import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../db/client.ts";
import { countDeliveries, recordOnce } from "../../src/store/webhook-deliveries.ts";
import { BACKENDS } from "../helpers/backends.ts";

describe.each(BACKENDS)("recordOnce on $name", (backend) => {
  let database: Database & { dispose(): Promise<void> };
  beforeAll(async () => {
    database = await backend.open();
  });
  afterAll(async () => {
    await database?.dispose();
  });

  const delivery = { deliveryId: "d-1", event: "issues", action: "labeled", installationId: 1 };
  const effect = async (tx: typeof database.db) => {
    await tx.execute(sql`
      insert into settings (key, value) values ('effects', '1'::jsonb)
      on conflict (key) do update set value = to_jsonb((settings.value)::int + 1)`);
    return "done";
  };

  it("records the effect's outcome with the delivery, and rolls a repeat back", async () => {
    expect(await recordOnce(database.db, delivery, effect)).toBe("done");
    expect(await recordOnce(database.db, delivery, effect)).toBe("duplicate");
    const [row] = await database.rows<{ value: number }>(
      sql`select value from settings where key = 'effects'`,
    );
    expect(Number(row?.value)).toBe(1);
    expect(await countDeliveries(database.db, "issues")).toBe(1);
    const [stored] = await database.rows<{ outcome: string }>(
      sql`select outcome from webhook_deliveries where delivery_id = 'd-1'`,
    );
    expect(stored?.outcome).toBe("done");
  });
});
