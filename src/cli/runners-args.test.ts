import { describe, expect, it } from "vitest";
import { parseRunnersArgs } from "./runners-args.ts";

describe("conveyor runners arguments", () => {
  it.each([
    [
      ["add", "r1"],
      {
        command: "add",
        registration: { name: "r1", capabilities: [], repos: [], class: "normal" },
        json: false,
      },
    ],
    [
      ["add", "gpu-1", "--capability", "gpu", "-c", "docker,cuda.12", "--class", "heavy", "--json"],
      {
        command: "add",
        registration: {
          name: "gpu-1",
          capabilities: ["cuda.12", "docker", "gpu"],
          repos: [],
          class: "heavy",
        },
        json: true,
      },
    ],
    // --tier, the deprecated name of --class, still works and says so.
    [
      ["add", "--tier=light", "r1"],
      {
        command: "add",
        registration: { name: "r1", capabilities: [], repos: [], class: "light" },
        json: false,
        notes: ["--tier is deprecated: use --class (the same setting under a clearer name)"],
      },
    ],
    [
      ["add", "r1", "--class", "heavy", "--tier", "heavy"],
      {
        command: "add",
        registration: { name: "r1", capabilities: [], repos: [], class: "heavy" },
        json: false,
        notes: ["--tier is deprecated: use --class (the same setting under a clearer name)"],
      },
    ],
    [
      ["add", "team-a", "--repos", "Acme/*", "--repos", "globex/web,acme/*"],
      {
        command: "add",
        registration: {
          name: "team-a",
          capabilities: [],
          repos: ["acme/*", "globex/web"],
          class: "normal",
        },
        json: false,
      },
    ],
    [
      ["jit"],
      {
        command: "jit",
        request: { capabilities: [], repos: [], ttl_seconds: 3600 },
        json: false,
      },
    ],
    [
      ["jit", "-c", "gpu,node", "--repos", "acme/*", "--ttl", "15m", "--name", "ci-1", "--json"],
      {
        command: "jit",
        request: {
          name: "ci-1",
          capabilities: ["gpu", "node"],
          repos: ["acme/*"],
          ttl_seconds: 900,
        },
        json: true,
      },
    ],
    [["list"], { command: "list", json: false }],
    [["list", "--json"], { command: "list", json: true }],
    [["revoke", "r1"], { command: "revoke", name: "r1", json: false }],
    [["help"], { command: "help" }],
    [["add", "--help"], { command: "help" }],
    [["-h"], { command: "help" }],
  ])("%j", (argv, expected) => {
    expect(parseRunnersArgs(argv)).toEqual(expected);
  });

  it.each([
    [[], /missing command/, true],
    [["delete", "r1"], /unknown command "delete"/, true],
    [["add"], /add needs the runner's name/, false],
    [["add", "a", "b"], /add takes one name/, false],
    [["add", "R1"], /^name: expected 1-63 lower-case/, false],
    [["add", "r1", "--class", "huge"], /^--class: expected one of light, normal, heavy$/, false],
    [["add", "r1", "--tier", "huge"], /^--tier: expected one of light, normal, heavy$/, false],
    [["add", "r1", "--class", "light", "--tier", "heavy"], /^--tier: contradicts class/, false],
    [["add", "r1", "--tier"], /argument missing/, false],
    [["add", "r1", "--capability", "GPU"], /^--capability: expected 1-63/, false],
    [["add", "r1", "--capabilities", "gpu"], /^Unknown option '--capabilities'$/, false],
    // A flag in the name's place must not become a runner called "--json".
    [["add", "--", "--json"], /^name: /, false],
    [["list", "extra"], /list takes no arguments/, false],
    [["list", "--class", "x"], /Unknown option '--class'/, false],
    [["revoke"], /revoke needs the runner's name/, false],
    [["add", "r1", "--repos", "acme"], /^--repos: expected owner\/name or owner\/\*/, false],
    [["jit", "--ttl", "soon"], /^--ttl: expected a duration/, false],
    [["jit", "--ttl", "30s"], /^--ttl: expected at least 60 s$/, false],
    [["jit", "--ttl", "8d"], /^--ttl: expected at most 604800 s/, false],
    [["jit", "extra"], /jit takes no arguments/, false],
    [["revoke", "Bad Name"], /^name: /, false],
  ])("refuses %j", (argv, message, showUsage) => {
    const parsed = parseRunnersArgs(argv);
    expect(parsed).toMatchObject({ command: "usage-error", showUsage });
    expect((parsed as { message: string }).message).toMatch(message);
  });
});
