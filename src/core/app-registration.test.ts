import { describe, expect, it } from "vitest";
import {
  compareEvents,
  compareHookContentType,
  compareHookUrl,
  comparePermissions,
  expectedHookUrl,
  hostReach,
} from "./app-registration.ts";

const EVENTS = ["issues", "issue_comment", "pull_request"];
const PERMISSIONS = { issues: "write", contents: "write", metadata: "read", actions: "write" };
const PUBLIC = "https://conveyor.example.com";
const SMEE = "https://smee.io/abc";
const GITHUB = "https://api.github.com";
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
    [
      "actions missing (only Actions on demand needs it)",
      { issues: "write", contents: "write", metadata: "read" },
      "warn",
      "the App has actions: none, not write: GitHub Actions on demand",
    ],
    ["actions read", { ...PERMISSIONS, actions: "read" }, "warn", "runners.actions"],
    [
      "actions missing and issues short (the failure wins)",
      { issues: "read", contents: "write", metadata: "read" },
      "fail",
      "issues: read, needs write",
    ],
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
    const verdict = compareHookUrl(facts, { publicUrl, webhookProxyUrl, githubApiUrl: GITHUB });
    expect(verdict.status).toBe(status);
    if (status === "fail") expect(verdict.fix).toBeDefined();
  });

  it("names the URL to set in the fix", () => {
    const verdict = compareHookUrl(hook(`${PUBLIC}/hooks`), {
      publicUrl: PUBLIC,
      webhookProxyUrl: undefined,
      githubApiUrl: GITHUB,
    });
    expect(verdict.fix).toBe(
      `On the App's settings page (General → Webhook), set Webhook URL to ${PUBLIC}/api/github/webhooks, tick Active and save`,
    );
  });

  it.each([
    ["github.com", "http://127.0.0.1:3000/api/github/webhooks", GITHUB, "fail"],
    ["github.com", "http://10.0.0.5/api/github/webhooks", GITHUB, "warn"],
    [
      "a GitHub Enterprise Server inside the network",
      "http://10.0.0.5/api/github/webhooks",
      "https://10.0.0.9/api/v3",
      "ok",
    ],
    [
      "a GitHub Enterprise Server inside the network",
      "http://127.0.0.1:3000/api/github/webhooks",
      "https://ghe.corp.internal/api/v3",
      "fail",
    ],
    [
      "a GitHub on this machine (the simulator)",
      "http://127.0.0.1:3000/api/github/webhooks",
      "http://127.0.0.1:4000",
      "ok",
    ],
  ])("what %s can reach: %s is %s", (_, url, githubApiUrl, status) => {
    const expectation = { publicUrl: undefined, webhookProxyUrl: undefined, githubApiUrl };
    expect(compareHookUrl(hook(url), expectation).status).toBe(status);
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

describe("hostReach", () => {
  it.each([
    ["localhost", "loopback"],
    ["app.localhost", "loopback"],
    ["127.0.0.1", "loopback"],
    ["[::1]", "loopback"],
    ["10.0.0.5", "private"],
    ["172.16.0.1", "private"],
    ["172.32.0.1", "public"],
    ["192.168.1.10", "private"],
    ["[fd00::2]", "private"],
    ["conveyor.example.com", "public"],
    ["127.example.com", "public"],
  ])("%s is %s", (host, reach) => {
    expect(hostReach(host)).toBe(reach);
  });
});
