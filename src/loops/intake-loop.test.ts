import pino from "pino";
import { describe, expect, it } from "vitest";
import type { Db } from "../../db/client.ts";
import type { GitHubGateway } from "../core/ports.ts";
import { createIntakeLoop, INTAKE_BATCH } from "./intake-loop.ts";

describe("intake hand-off", () => {
  const loop = () =>
    createIntakeLoop({
      // Reservations touch neither the database nor GitHub.
      db: {} as Db,
      gateway: {} as GitHubGateway,
      logger: pino({ level: "silent" }),
      instanceId: "instance-a",
      recordError: () => {},
      onChange: () => {},
      onPullRequestActivity: () => {},
    });

  it("takes at most a batch of deliveries at once, and none once stopping", () => {
    const intake = loop();
    const granted = Array.from({ length: INTAKE_BATCH + 3 }, () => intake.reserveHandOff());
    expect(granted.filter(Boolean)).toHaveLength(INTAKE_BATCH);
    expect(granted.slice(INTAKE_BATCH)).toEqual([false, false, false]);
    // A repeat gives its reservation back: the next delivery may be handed over.
    intake.releaseHandOff();
    expect(intake.reserveHandOff()).toBe(true);
    expect(intake.reserveHandOff()).toBe(false);

    const stopping = loop();
    stopping.stop();
    expect(stopping.reserveHandOff()).toBe(false);
  });
});
