import { describe, expect, it } from "vitest";
import {
  allows,
  type Command,
  type CommandPermission,
  type CommandPlace,
  interpretCommands,
  parseCommands,
  renderHelp,
  renderPermissionRefusal,
  requiredPermission,
  verbsFor,
} from "./commands.ts";

describe("parseCommands", () => {
  it.each([
    ["/fix rename the flag", [{ verb: "fix", args: "rename the flag", line: 1 }]],
    ["/conveyor fix use tabs", [{ verb: "fix", args: "use tabs", line: 1 }]],
    ["/RETRY", [{ verb: "retry", args: "", line: 1 }]],
    [
      "thanks!\n/hold\n/priority high",
      [
        { verb: "hold", args: "", line: 2 },
        { verb: "priority", args: "high", line: 3 },
      ],
    ],
    ["> /retry", []],
    ["  > quoted /retry", []],
    ["```\n/retry\n```", []],
    ["~~~\n/merge\n~~~\n/hold", [{ verb: "hold", args: "", line: 4 }]],
    // A shorter fence does not close a longer one (CommonMark).
    ["````\n```\n/merge", []],
    ["run `/retry` later", []],
    ["see /retry", []],
    ["//comment", []],
    ["/ retry", []],
    // Indented code, HTML comments: shown as code or not at all, never commands.
    ["    /retry", []],
    ["\t/retry", []],
    ["text\n\n    /merge\n/hold", [{ verb: "hold", args: "", line: 4 }]],
    ["   /hold", [{ verb: "hold", args: "", line: 1 }]],
    ["<!-- /retry -->", []],
    ["<!--\n/approve\n-->\n/hold", [{ verb: "hold", args: "", line: 4 }]],
    ["<!-- a -->\n/hold", [{ verb: "hold", args: "", line: 2 }]],
    ["<!-- a --> <!-- b\n/approve\n-->", []],
    ["x <!--\n/approve\n--> y\n/hold", [{ verb: "hold", args: "", line: 4 }]],
  ])("%j", (body, expected) => {
    expect(parseCommands(body)).toEqual(expected);
  });
});

describe("interpretCommands", () => {
  const ok = (command: Command) => ({ ok: true, command });
  const err = (pattern: RegExp) => ({ ok: false, error: expect.stringMatching(pattern) });
  it.each<[string, CommandPlace, unknown[]]>([
    ["/approve", "pr", [ok({ verb: "approve", sha: undefined })]],
    ["/approve ABCDEF1", "pr", [ok({ verb: "approve", sha: "abcdef1" })]],
    ["/Conveyor APPROVE", "pr", [ok({ verb: "approve", sha: undefined })]],
    ["> /approve", "pr", []],
    ["```\n/approve\n```", "pr", []],
    ["please /approve this", "pr", []],
    ["`/approve`", "pr", []],
    ["/approve abc1234 def5678", "pr", [err(/at most one commit SHA/)]],
    ["/approve zzzzzzz", "pr", [err(/at most one commit SHA/)]],
    ["/approve", "issue", [err(/works on a pull request, not here; valid here: .*`\/queue`/)]],
    ["/queue", "pr", [err(/works on an issue/)]],
    ["/frobnicate", "issue", [err(/unknown command `\/frobnicate`; valid on an issue: `\/queue`/)]],
    ["/conveyor frobnicate now", "pr", [err(/unknown command.*`\/approve`/)]],
    ["/conveyor", "pr", [ok({ verb: "help" })]],
    ["/priority high", "issue", [ok({ verb: "priority", lane: "high" })]],
    ["/PRIORITY Urgent", "issue", [ok({ verb: "priority", lane: "urgent" })]],
    ["/priority high low", "issue", [err(/exactly one lane/)]],
    ["/priority", "issue", [err(/exactly one lane/)]],
    ["/budget 25", "issue", [ok({ verb: "budget", usd: 25 })]],
    ["/budget $12.50", "pr", [ok({ verb: "budget", usd: 12.5 })]],
    ["/budget 0", "issue", [err(/one amount in USD, more than 0/)]],
    ["/budget -5", "issue", [err(/one amount in USD/)]],
    ["/budget 1.234", "issue", [err(/at most two decimals/)]],
    ["/budget 10000000", "issue", [err(/at most 1000000/)]],
    ["/budget", "issue", [err(/one amount in USD/)]],
    ["/budget 5 10", "issue", [err(/one amount in USD/)]],
    ["/budget 1e3", "issue", [err(/one amount in USD/)]],
    ["/priority asap", "issue", [err(/exactly one lane: `urgent`/)]],
    ["/retry now please", "issue", [err(/takes no arguments/)]],
    ["/fix", "pr", [err(/needs text/)]],
    ["/fix use tabs", "pr", [ok({ verb: "fix", text: "use tabs" })]],
    ["/hold waiting for legal", "issue", [ok({ verb: "hold", reason: "waiting for legal" })]],
    ["/freeze release week", "pr", [ok({ verb: "freeze", reason: "release week" })]],
    // Repeats count once; different commands all count, in order.
    ["/hold\n/hold\n/HOLD", "pr", [ok({ verb: "hold", reason: "" })]],
    ["/hold\n> /merge\n/unhold", "pr", [ok({ verb: "hold", reason: "" }), ok({ verb: "unhold" })]],
  ])("%j on %s", (body, place, expected) => {
    expect(interpretCommands(body, place)).toMatchObject(expected);
  });

  it("numbers lines and keeps the text", () => {
    expect(interpretCommands("hi\n\n/retry", "issue")).toEqual([
      { line: 3, text: "/retry", ok: true, command: { verb: "retry" } },
    ]);
  });
});

describe("permissions", () => {
  it.each<[Command, CommandPermission]>([
    [{ verb: "status" }, "read"],
    [{ verb: "help" }, "read"],
    [{ verb: "refresh" }, "read"],
    [{ verb: "hold", reason: "" }, "triage"],
    [{ verb: "approve", sha: undefined }, "write"],
    [{ verb: "priority", lane: "high" }, "write"],
    [{ verb: "priority", lane: "urgent" }, "maintain"],
    [{ verb: "freeze", reason: "" }, "maintain"],
    [{ verb: "unfreeze" }, "maintain"],
  ])("%j needs %s", (command, needed) => {
    expect(requiredPermission(command)).toBe(needed);
  });

  it.each([
    ["admin", "maintain", true],
    ["maintain", "maintain", true],
    ["write", "maintain", false],
    ["triage", "triage", true],
    ["read", "triage", false],
    ["none", "read", false],
    [undefined, "read", false],
    ["bogus", "read", false],
  ] as const)("%s allows %s: %s", (actual, needed, expected) => {
    expect(allows(actual, needed)).toBe(expected);
  });

  it("says why and who may", () => {
    expect(renderPermissionRefusal({ verb: "freeze", reason: "" }, "octo", "write")).toBe(
      "`/freeze` needs maintain access or more; @octo has write access. Ask someone with maintain access.",
    );
    expect(renderPermissionRefusal({ verb: "approve", sha: undefined }, "x", "none")).toMatch(
      /@x is not a collaborator/,
    );
  });

  it("lists every verb of a place in the help", () => {
    const help = renderHelp("pr");
    for (const verb of verbsFor("pr")) expect(help).toContain(`/${verb}`);
    expect(help).not.toContain("/queue");
  });
});
