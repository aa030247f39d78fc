import { describe, expect, it } from "vitest";
import { conveyorManifest, escapeAttribute, oneDoctype } from "./setup-app.ts";

const BASE = "https://conveyor.example.com";

describe("the setup page's parts", () => {
  it.each([
    ["Probot's default webhook URL", `${BASE}/`, `${BASE}/api/github/webhooks`],
    ["a webhook proxy (WEBHOOK_PROXY_URL)", "https://smee.io/abc", "https://smee.io/abc"],
    ["a URL from app.yml", "https://hooks.example.com/x", "https://hooks.example.com/x"],
  ])("keeps or moves %s", (_, url, expected) => {
    const manifest = JSON.stringify({ name: "Conveyor", hook_attributes: { url } });
    expect(JSON.parse(conveyorManifest(manifest, BASE))).toEqual({
      name: "Conveyor",
      hook_attributes: { url: expected },
    });
  });

  it("escapes a manifest for an attribute so that it cannot end it", () => {
    const hostile = `{"name":"it's <b>&amp; \\"x\\"</b>"}`;
    const escaped = escapeAttribute(hostile);
    expect(escaped).not.toMatch(/['"<>]/);
    const decoded = escaped
      .replace(/&#39;/g, "'")
      .replace(/&quot;/g, '"')
      .replace(/&lt;/g, "<")
      .replace(/&gt;/g, ">")
      .replace(/&amp;/g, "&");
    expect(decoded).toBe(hostile);
  });

  it.each([
    ["<!DOCTYPE html>\n<!DOCTYPE html>\n<html></html>", "<!DOCTYPE html>\n<html></html>"],
    ["<!doctype html>\n<html></html>", "<!DOCTYPE html>\n<html></html>"],
    ["<html></html>", "<html></html>"],
    ["Found. Redirecting to /probot", "Found. Redirecting to /probot"],
  ])("gives %j one doctype", (page, expected) => {
    expect(oneDoctype(page)).toBe(expected);
  });
});
