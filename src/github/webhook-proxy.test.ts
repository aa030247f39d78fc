import pino from "pino";
import { describe, expect, it } from "vitest";
import { createWebhookProxy, webhookProxyTarget } from "./webhook-proxy.ts";

const logger = pino({ level: "silent" });

describe("createWebhookProxy, built alone", () => {
  it("is absent without WEBHOOK_PROXY_URL: nothing to start or stop", () => {
    const proxy = createWebhookProxy({
      config: { webhookProxyUrl: undefined },
      logger,
      target: () => {
        throw new Error("the target is only asked for at start");
      },
    });
    expect(proxy).toBeUndefined();
  });

  it("asks for its target only when it starts, and stops before starting without error", async () => {
    let asked = 0;
    const proxy = createWebhookProxy({
      config: { webhookProxyUrl: "https://smee.io/abc" },
      logger,
      target: () => {
        asked++;
        return "http://127.0.0.1:1/api/github/webhooks";
      },
    });
    expect(proxy).toBeDefined();
    await proxy!.stop!();
    // Stopped first: a later start neither asks for the target nor connects.
    await proxy!.start!();
    expect(asked).toBe(0);
  });

  it.each([
    ["0.0.0.0", 3000, "http://127.0.0.1:3000/api/github/webhooks"],
    ["::", 3000, "http://[::1]:3000/api/github/webhooks"],
    ["127.0.0.1", 4000, "http://127.0.0.1:4000/api/github/webhooks"],
    ["fd00::5", 80, "http://[fd00::5]:80/api/github/webhooks"],
  ])("reaches a server listening on %s:%d at %s", (host, port, url) => {
    expect(webhookProxyTarget(host, port)).toBe(url);
  });
});
