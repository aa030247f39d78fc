import { describe, expect, it } from "vitest";
import {
  compareEvents,
  compareHookContentType,
  compareHookUrl,
  comparePermissions,
  expectedHookUrl,
} from "./app-registration.ts";

const EVENTS = ["issues", "issue_comment", "pull_request"];
const PERMISSIONS = { issues: "write", contents: "write", metadata: "read" };
const PUBLIC = "https://conveyor.example.com";
const SMEE = "https://smee.io/abc";
const hook = (url: string, contentType = "json", insecureSsl: string | number = "0") => ({
  url,
  contentType,
  insecureSsl,
});

describe("the App's events and permissions against app.yml", () => {
  it.each([
    ["exactly app.yml's", EVENTS, "ok", undefined],
    ["in another order", [...EVENTS].reverse(), "ok", undefined],
    ["one missing", ["issues", "pull_request"], "fail", "`issue_comment`"],
    ["none at all", [], "fail", "`issues`, `issue_comment`, `pull_request`"],
    ["an extra one", [...EVENTS, "push"], "warn", "`push`"],
    [
      "one missing and one extra (missing wins)",
      ["issues", "pull_request", "push"],
      "fail",
      "`issue_comment`",
    ],
  ])("events: %s", (_, actual, status, named) => {
    const verdict = compareEvents(EVENTS, actual);
    expect(verdict.status).toBe(status);
    if (named) expect(verdict.message).toContain(named);
    if (status !== "ok") expect(verdict.fix).toMatch(/Subscribe to events/);
  });

  it.each([
    ["exactly app.yml's", PERMISSIONS, "ok", undefined],
    [
      "admin where write is needed",
      { ...PERMISSIONS, contents: "admin" },
      "warn",
      "contents: admin (needs write)",
    ],
    [
      "read where write is needed",
      { ...PERMISSIONS, issues: "read" },
      "fail",
      "issues: read, needs write",
    ],
    ["one missing", { contents: "write", metadata: "read" }, "fail", "issues: none, needs write"],
    ["an unknown level", { ...PERMISSIONS, issues: "owner" }, "fail", "issues: owner, needs write"],
    ["workflows on top", { ...PERMISSIONS, workflows: "write" }, "warn", "workflows: write"],
  ])("permissions: %s", (_, actual, status, named) => {
    const verdict = comparePermissions(PERMISSIONS, actual);
    expect(verdict.status).toBe(status);
    if (named) expect(verdict.message).toContain(named);
  });

  it("says why the workflows permission matters", () => {
    const verdict = comparePermissions(PERMISSIONS, { ...PERMISSIONS, workflows: "write" });
    expect(verdict.message).toContain(".github/workflows/");
  });
});

describe("the App's webhook against what Conveyor serves", () => {
  it.each([
    [
      "the public URL's webhook route",
      hook(`${PUBLIC}/api/github/webhooks`),
      PUBLIC,
      undefined,
      "ok",
    ],
    ["with a trailing slash", hook(`${PUBLIC}/api/github/webhooks/`), PUBLIC, undefined, "ok"],
    ["Probot's old default path", hook(`${PUBLIC}/`), PUBLIC, undefined, "ok"],
    ["another path on the public host", hook(`${PUBLIC}/hooks`), PUBLIC, undefined, "fail"],
    [
      "another host",
      hook("https://old.example.com/api/github/webhooks"),
      PUBLIC,
      undefined,
      "fail",
    ],
    [
      "a look-alike host",
      hook("https://conveyor.example.com.evil.example/api/github/webhooks"),
      PUBLIC,
      undefined,
      "fail",
    ],
    ["no URL", hook(""), PUBLIC, undefined, "fail"],
    ["a URL that does not parse", hook("not a url"), PUBLIC, undefined, "fail"],
    [
      "no public URL: a served path",
      hook("https://x.example/api/github/webhooks"),
      undefined,
      undefined,
      "ok",
    ],
    [
      "no public URL: another path",
      hook("https://x.example/webhooks"),
      undefined,
      undefined,
      "fail",
    ],
    ["the proxy channel", hook(SMEE), PUBLIC, SMEE, "ok"],
    ["not the proxy channel", hook(`${PUBLIC}/api/github/webhooks`), PUBLIC, SMEE, "fail"],
    [
      "TLS not verified",
      hook(`${PUBLIC}/api/github/webhooks`, "json", "1"),
      PUBLIC,
      undefined,
      "warn",
    ],
    [
      "TLS not verified (a number)",
      hook(`${PUBLIC}/api/github/webhooks`, "json", 1),
      PUBLIC,
      undefined,
      "warn",
    ],
  ])("%s", (_, facts, publicUrl, webhookProxyUrl, status) => {
    const verdict = compareHookUrl(facts, { publicUrl, webhookProxyUrl });
    expect(verdict.status).toBe(status);
    if (status === "fail") expect(verdict.fix).toBeDefined();
  });

  it("names the URL to set in the fix", () => {
    const verdict = compareHookUrl(hook(`${PUBLIC}/hooks`), {
      publicUrl: PUBLIC,
      webhookProxyUrl: undefined,
    });
    expect(verdict.fix).toBe(
      `On the App's settings page (General → Webhook), set Webhook URL to ${PUBLIC}/api/github/webhooks, tick Active and save`,
    );
  });

  it.each([
    [{ publicUrl: PUBLIC, webhookProxyUrl: undefined }, `${PUBLIC}/api/github/webhooks`],
    [
      { publicUrl: `${PUBLIC}/conveyor`, webhookProxyUrl: undefined },
      `${PUBLIC}/conveyor/api/github/webhooks`,
    ],
    [{ publicUrl: PUBLIC, webhookProxyUrl: SMEE }, SMEE],
    [{ publicUrl: undefined, webhookProxyUrl: undefined }, undefined],
  ])("expects %j to be %s", (expectation, url) => {
    expect(expectedHookUrl(expectation)).toBe(url);
  });

  it.each([
    ["json", "ok"],
    [undefined, "ok"],
    ["form", "fail"],
    ["xml", "fail"],
  ])("content type %s: %s", (contentType, status) => {
    expect(compareHookContentType(contentType).status).toBe(status);
  });
});
