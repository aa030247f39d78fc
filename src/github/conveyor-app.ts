import type { Logger } from "pino";
import type { ApplicationFunction } from "probot";
import type { Db } from "../../db/client.ts";
import { recordDelivery } from "../store/webhook-deliveries.ts";

export interface ConveyorAppDeps {
  db: Db;
  logger: Logger;
}

/**
 * The Probot application: one handler per event, each parses the payload, records what it needs in
 * Postgres and returns (slow work happens in loops that read Postgres).
 */
export function createConveyorApp({ db, logger }: ConveyorAppDeps): ApplicationFunction {
  return (app) => {
    app.onAny(async (event) => {
      const payload = event.payload as { action?: string; installation?: { id: number } };
      const fresh = await recordDelivery(db, {
        deliveryId: event.id,
        event: event.name,
        action: payload.action,
        installationId: payload.installation?.id,
        outcome: "received",
      });
      logger.debug({ deliveryId: event.id, event: event.name, fresh }, "webhook recorded");
    });
  };
}
