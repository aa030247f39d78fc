import { describe, expect, it } from "vitest";
import {
  classifyIssueEvent,
  confirmIssueEvent,
  decideQueueRequest,
  decideReconciledSnapshot,
  hasPermission,
  type IssueEventFacts,
  isBot,
  mayAffectQueue,
  parseTaskLabels,
} from "./intake.ts";
import { DEFAULT_REPO_CONFIG, parseRepoConfig } from "./repo-config.ts";

const facts = (over: Partial<IssueEventFacts>): IssueEventFacts => ({
  action: "labeled",
  label: "conveyor",
  issueLabels: ["conveyor"],
  issueState: "open",
  isPullRequest: false,
  config: DEFAULT_REPO_CONFIG,
  ...over,
});

describe("classifyIssueEvent", () => {
  it.each([
    [{}, "queue"],
    [{ label: "Conveyor" }, "queue"],
    [{ label: "bug" }, "ignore"],
    [{ issueState: "closed" as const }, "ignore"],
    [{ isPullRequest: true }, "ignore"],
    [{ action: "opened", label: undefined }, "queue"],
    [{ action: "opened", label: undefined, issueLabels: [] }, "ignore"],
    [{ action: "reopened", label: undefined }, "queue"],
    [{ action: "unlabeled" }, "cancel"],
    [{ action: "unlabeled", label: "bug" }, "ignore"],
    [{ action: "closed" }, "cancel"],
    [{ action: "deleted" }, "cancel"],
    [{ action: "transferred" }, "cancel"],
    [{ action: "edited" }, "ignore"],
    [{ action: "pinned" }, "ignore"],
  ])("%j → %s", (over, kind) => {
    expect(classifyIssueEvent(facts(over)).kind).toBe(kind);
  });

  it("uses the configured intake label", () => {
    const config = parseRepoConfig({ intake: { label: "ai" } }).config;
    expect(classifyIssueEvent(facts({ config, label: "ai", issueLabels: ["ai"] })).kind).toBe(
      "queue",
    );
    expect(classifyIssueEvent(facts({ config })).kind).toBe("ignore");
  });
});

describe("mayAffectQueue", () => {
  const actions = [
    "opened",
    "reopened",
    "labeled",
    "unlabeled",
    "closed",
    "deleted",
    "transferred",
    "edited",
    "pinned",
    "assigned",
    "milestoned",
  ];
  const configs = [DEFAULT_REPO_CONFIG, parseRepoConfig({ intake: { label: "ai" } }).config];
  const variants: Partial<IssueEventFacts>[] = [
    {},
    { label: undefined },
    { label: "ai", issueLabels: ["ai"] },
    { label: "bug", issueLabels: ["bug"] },
    { issueLabels: [] },
    { issueState: "closed" },
    { isPullRequest: true },
  ];
  // Every event it lets the handler skip is one classifyIssueEvent ignores under every config.
  it.each(actions.flatMap((action) => variants.map((v) => ({ action, ...v }))))(
    "%j: skipped only when no configuration acts on it",
    (over) => {
      const event = facts(over);
      const acted = configs.some(
        (config) => classifyIssueEvent({ ...event, config }).kind !== "ignore",
      );
      if (acted) expect(mayAffectQueue(event)).toBe(true);
    },
  );

  it.each([
    [{ action: "edited" }, false],
    [{ action: "opened", issueLabels: [] }, false],
    [{ action: "labeled", isPullRequest: true }, false],
    [{ action: "labeled", issueState: "closed" as const }, false],
    [{ action: "labeled", label: "anything" }, true],
    [{ action: "closed" }, true],
  ])("%j → %s", (over, expected) => {
    expect(mayAffectQueue(facts(over))).toBe(expected);
  });
});

describe("confirmIssueEvent", () => {
  const open = { state: "open" as const, labels: ["conveyor"] };
  const queue = { kind: "queue" as const, reason: "label conveyor added" };
  const cancel = { kind: "cancel" as const, reason: "x" };
  it.each([
    ["labeled, still open and labelled", "labeled", queue, open, "queue"],
    ["labeled, closed since (a replay)", "labeled", queue, { ...open, state: "closed" }, "ignore"],
    ["labeled, label removed since", "labeled", queue, { ...open, labels: ["bug"] }, "ignore"],
    ["labeled, issue gone", "labeled", queue, undefined, "ignore"],
    [
      "labeled, label in another case",
      "labeled",
      queue,
      { ...open, labels: ["Conveyor"] },
      "queue",
    ],
    ["closed, still closed", "closed", cancel, { ...open, state: "closed" }, "cancel"],
    ["closed, open again", "closed", cancel, open, "ignore"],
    ["closed, issue gone", "closed", cancel, undefined, "cancel"],
    ["unlabeled, still without", "unlabeled", cancel, { ...open, labels: [] }, "cancel"],
    ["unlabeled, labelled again", "unlabeled", cancel, open, "ignore"],
    ["unlabeled, and closed since", "unlabeled", cancel, { ...open, state: "closed" }, "cancel"],
    ["deleted", "deleted", cancel, undefined, "cancel"],
  ] as const)("%s → %s", (_name, action, kind, current, expected) => {
    const confirmed = confirmIssueEvent(kind, { action, config: DEFAULT_REPO_CONFIG }, current);
    expect(confirmed.kind).toBe(expected);
    if (expected === "ignore") expect(confirmed.reason).toMatch(/^stale: /);
  });

  it("leaves an ignored event alone", () => {
    const ignored = { kind: "ignore" as const, reason: "another label" };
    expect(
      confirmIssueEvent(ignored, { action: "labeled", config: DEFAULT_REPO_CONFIG }, open),
    ).toBe(ignored);
  });
});

describe("decideQueueRequest", () => {
  const human = { login: "octocat", type: "User" };
  it.each([
    [{ permission: "write" }, "create"],
    [{ permission: "admin" }, "create"],
    [{ permission: "maintain" }, "create"],
    [{ permission: "triage" }, "refuse"],
    [{ permission: "read" }, "refuse"],
    [{ permission: undefined }, "refuse"],
    [{ permission: "admin", sender: { login: "conveyor[bot]", type: "Bot" } }, "ignore"],
    [{ permission: "admin", sender: { login: "renovate[bot]" } }, "ignore"],
    [{ permission: "write", activeTask: { state: "running" } }, "ignore"],
    [{ permission: "write", activeTask: { state: "dead" } }, "revive"],
  ] as const)("%j → %s", (over, kind) => {
    const decision = decideQueueRequest({ sender: human, intakeLabel: "conveyor", ...over });
    expect(decision.kind).toBe(kind);
  });

  it("tells an untrusted labeller who may queue work", () => {
    const decision = decideQueueRequest({
      sender: { login: "drive-by" },
      permission: "read",
      intakeLabel: "conveyor",
    });
    expect(decision).toMatchObject({ kind: "refuse" });
    if (decision.kind === "refuse") {
      expect(decision.reply).toContain("@drive-by");
      expect(decision.reply).toContain("write access");
      expect(decision.reply).toContain("`conveyor`");
    }
  });
});

describe("labels", () => {
  it.each([
    [[], "normal", []],
    [["priority:urgent"], "urgent", []],
    [["priority:low", "priority:high"], "high", []],
    [["Priority:Low"], "low", []],
    [["priority:bogus"], "normal", []],
    [["needs:gpu", "needs:docker", "needs:gpu"], "normal", ["docker", "gpu"]],
  ])("%j → lane %s, capabilities %j", (labels, lane, capabilities) => {
    expect(parseTaskLabels(labels, DEFAULT_REPO_CONFIG)).toEqual({ lane, capabilities });
  });

  it("adds the repository's configured capabilities", () => {
    const config = parseRepoConfig({ tasks: { capabilities: ["node"] } }).config;
    expect(parseTaskLabels(["needs:gpu"], config).capabilities).toEqual(["gpu", "node"]);
  });

  it("ranks permissions and recognises bots", () => {
    expect(hasPermission("maintain", "write")).toBe(true);
    expect(hasPermission("triage", "write")).toBe(false);
    expect(isBot({ login: "dependabot[bot]" })).toBe(true);
    expect(isBot({ login: "octocat", type: "User" })).toBe(false);
  });
});

describe("decideReconciledSnapshot", () => {
  const labelledAt = "2026-03-01T10:00:00Z";
  it.each([
    ["updated before the label", "2026-03-01T09:59:00Z", "snapshot"],
    ["updated by the label itself", labelledAt, "snapshot"],
    ["updated within the slack", "2026-03-01T10:00:03Z", "snapshot"],
    ["updated just after the slack", "2026-03-01T10:00:04Z", "confirm"],
    ["edited an hour later", "2026-03-01T11:00:00Z", "confirm"],
    ["unreadable update time", "yesterday-ish", "confirm"],
    ["empty update time", "", "confirm"],
  ])("%s → %s", (_, updatedAt, kind) => {
    const decision = decideReconciledSnapshot({ labelledAt, updatedAt });
    expect(decision.kind).toBe(kind);
    expect(decision.reason).not.toBe("");
  });

  it("fails closed on an unreadable label time", () => {
    expect(
      decideReconciledSnapshot({ labelledAt: "", updatedAt: "2026-03-01T09:00:00Z" }),
    ).toMatchObject({ kind: "confirm" });
  });

  it("takes the slack it is given", () => {
    const facts = { labelledAt, updatedAt: "2026-03-01T10:00:10Z" };
    expect(decideReconciledSnapshot({ ...facts, slackMs: 10_000 }).kind).toBe("snapshot");
    expect(decideReconciledSnapshot({ ...facts, slackMs: 0 }).kind).toBe("confirm");
  });
});
