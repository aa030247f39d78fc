import { describe, expect, it } from "vitest";
import {
  isRepoInScope,
  isScopeWithin,
  parseDurationSeconds,
  RepoScope,
  RunnerName,
  RunnerRegistration,
  toFieldErrors,
} from "./runner-registration.ts";

describe("runner names", () => {
  it.each(["r1", "gpu-box.eu_1", "0", "a".repeat(63)])("accepts %j", (name) => {
    expect(RunnerName.safeParse(name).success).toBe(true);
  });

  it.each([
    ["empty", ""],
    ["upper case", "R1"],
    ["a space", "r 1"],
    ["leading dash (looks like a flag)", "-r1"],
    ["leading dot", ".r1"],
    ["64 characters", "a".repeat(64)],
    ["a slash", "a/b"],
    ["a non-ASCII letter", "rünner"],
    ["a newline", "r1\n"],
    ["not a string", 7],
  ])("refuses %s", (_, name) => {
    expect(RunnerName.safeParse(name).success).toBe(false);
  });
});

describe("repository scopes", () => {
  it.each([
    // [scope, repository, admitted]
    [[], "acme/widgets", true],
    [["acme/*"], "acme/widgets", true],
    [["acme/*"], "ACME/Widgets", true],
    [["acme/widgets"], "acme/widgets", true],
    [["acme/widgets"], "acme/gadgets", false],
    [["acme/*"], "acme-evil/widgets", false],
    [["acme/*"], "globex/acme", false],
    [["globex/*", "acme/widgets"], "acme/widgets", true],
  ] as const)("%j admits %s: %s", (scope, repo, admitted) => {
    const parsed = RepoScope.parse([...scope]);
    expect(isRepoInScope(repo, parsed)).toBe(admitted);
  });

  it.each([
    ["acme", "expected owner/name or owner/* (an owner's every repository)"],
    ["*/*", "expected owner/name or owner/* (an owner's every repository)"],
    ["acme/wid gets", "expected owner/name or owner/* (an owner's every repository)"],
    ["acme/**", "expected owner/name or owner/* (an owner's every repository)"],
    ["-acme/x", "expected owner/name or owner/* (an owner's every repository)"],
  ])("refuses the pattern %j", (pattern, message) => {
    const result = RepoScope.safeParse([pattern]);
    expect(result.success).toBe(false);
    expect(toFieldErrors(result.error!)).toEqual([{ field: "0", message }]);
  });

  it.each([
    // [inner, outer, within]
    [[], [], true],
    [["acme/*"], [], true],
    [[], ["acme/*"], false],
    [["acme/widgets"], ["acme/*"], true],
    [["acme/*"], ["acme/widgets"], false],
    [["acme/widgets", "globex/x"], ["acme/*"], false],
  ] as const)("scope %j lies within %j: %s", (inner, outer, within) => {
    expect(isScopeWithin(inner, outer)).toBe(within);
  });

  it.each([
    ["90s", 90],
    ["15m", 900],
    ["1h", 3600],
    ["2d", 172_800],
    ["600", 600],
    ["1 h", undefined],
    ["-1h", undefined],
    ["1w", undefined],
  ])("reads the duration %j as %s seconds", (text, seconds) => {
    expect(parseDurationSeconds(text)).toBe(seconds);
  });
});

describe("runner registration", () => {
  it("defaults to no capabilities and the normal class", () => {
    expect(RunnerRegistration.parse({ name: "r1" })).toEqual({
      name: "r1",
      capabilities: [],
      repos: [],
      class: "normal",
    });
  });

  it("sorts and deduplicates capabilities", () => {
    expect(
      RunnerRegistration.parse({
        name: "r1",
        capabilities: ["gpu", "docker", "gpu"],
        class: "heavy",
      }),
    ).toEqual({ name: "r1", capabilities: ["docker", "gpu"], repos: [], class: "heavy" });
  });

  it.each([
    [{ name: "r1", tier: "light" }, "light"],
    [{ name: "r1", class: "heavy", tier: "heavy" }, "heavy"],
  ])("takes tier, the old name of class: %j", (input, expected) => {
    expect(RunnerRegistration.parse(input)).toMatchObject({ class: expected });
    expect(RunnerRegistration.parse(input)).not.toHaveProperty("tier");
  });

  it.each([
    [{ name: "R1" }, [{ field: "name", message: expect.stringContaining("lower-case") }]],
    [{}, [{ field: "name", message: "expected a runner name" }]],
    [
      { name: "r1", capabilities: ["ok", "Not OK"] },
      [{ field: "capabilities.1", message: expect.stringContaining("lower-case") }],
    ],
    [
      { name: "r1", capabilities: "gpu" },
      [{ field: "capabilities", message: "expected a list of capability names" }],
    ],
    [
      { name: "r1", capabilities: Array.from({ length: 51 }, (_, i) => `c${i}`) },
      [{ field: "capabilities", message: "expected at most 50 capabilities" }],
    ],
    [
      { name: "r1", tier: "huge" },
      [{ field: "tier", message: "expected one of light, normal, heavy" }],
    ],
    // A misspelt key must not register a runner without the capabilities that were meant.
    [
      { name: "r1", capabilites: ["gpu"], extra: 1 },
      [
        { field: "capabilites", message: "unknown field" },
        { field: "extra", message: "unknown field" },
      ],
    ],
    [null, [{ field: "body", message: expect.any(String) }]],
  ])("reports %j field by field", (input, errors) => {
    const result = RunnerRegistration.safeParse(input);
    expect(result.success).toBe(false);
    expect(toFieldErrors(result.error!)).toEqual(errors);
  });
});
