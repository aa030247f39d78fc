import { describe, expect, it } from "vitest";
import { parseCommands } from "./commands.ts";

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
  ])("%j", (body, expected) => {
    expect(parseCommands(body)).toEqual(expected);
  });
});
