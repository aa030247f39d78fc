import { describe, expect, it } from "vitest";
import { htmlProblems } from "../../test/helpers/html-problems.ts";
import {
  conveyorManifest,
  escapeAttribute,
  oneDoctype,
  renderSetupCodePage,
  setupWebhookUrl,
} from "./setup-app.ts";

const BASE = "http://localhost:3000";
const PUBLIC = "https://conveyor.example.com";
const SMEE = "https://smee.io/abc";

describe("the setup page's parts", () => {
  it.each([
    ["the page's own address", undefined, undefined, `${BASE}/api/github/webhooks`],
    ["CONVEYOR_PUBLIC_URL", PUBLIC, undefined, `${PUBLIC}/api/github/webhooks`],
    ["WEBHOOK_PROXY_URL (local development)", PUBLIC, SMEE, SMEE],
  ])("registers the webhook at %s", (_, publicUrl, webhookProxyUrl, expected) => {
    expect(setupWebhookUrl({ baseUrl: BASE, publicUrl, webhookProxyUrl })).toBe(expected);
  });

  it.each([
    ["Probot's default webhook URL", `${BASE}/`, `${PUBLIC}/api/github/webhooks`],
    [
      "Probot's WEBHOOK_PROXY_URL, trailing slash or not",
      `${SMEE}/`,
      `${PUBLIC}/api/github/webhooks`,
    ],
    ["a URL from app.yml", "https://hooks.example.com/x", "https://hooks.example.com/x"],
  ])("keeps or moves %s", (_, url, expected) => {
    const manifest = JSON.stringify({ name: "Conveyor", hook_attributes: { url, active: true } });
    const options = {
      generatedUrls: [`${BASE}/`, SMEE],
      webhookUrl: `${PUBLIC}/api/github/webhooks`,
    };
    expect(JSON.parse(conveyorManifest(manifest, options))).toEqual({
      name: "Conveyor",
      hook_attributes: { url: expected, active: true },
    });
  });

  it("adds a webhook to a manifest without one", () => {
    const options = { generatedUrls: [], webhookUrl: `${PUBLIC}/api/github/webhooks` };
    expect(JSON.parse(conveyorManifest(JSON.stringify({ name: "C" }), options))).toEqual({
      name: "C",
      hook_attributes: { url: `${PUBLIC}/api/github/webhooks` },
    });
  });

  it.each([
    [false, "not on its machine"],
    [true, "not valid"],
  ])("asks for the setup code on a valid page (wrong code: %s)", (wrong, says) => {
    const page = renderSetupCodePage("/probot", wrong);
    expect(htmlProblems(page)).toEqual([]);
    expect(page).toContain(says);
    expect(page).toContain('<form method="get" action="/probot">');
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
