import { describe, expect, it } from "vitest";
import { formatLogLine } from "./format-log-line.ts";

const TIME = Date.UTC(2026, 0, 2, 3, 4, 5, 67);
// Local time, as a terminal shows it; computed independently of the formatter.
const CLOCK = `${new Date(TIME).toTimeString().slice(0, 8)}.067`;

function line(fields: Record<string, unknown>): string {
  return JSON.stringify({
    level: 30,
    time: TIME,
    pid: 7,
    hostname: "h",
    name: "conveyor",
    ...fields,
  });
}

describe("formatLogLine", () => {
  it.each([
    [
      { msg: "conveyor listening", url: "http://localhost:3000" },
      `${CLOCK} INFO  conveyor listening url=http://localhost:3000\n`,
    ],
    [{ level: 10, msg: "m" }, `${CLOCK} TRACE m\n`],
    [{ level: 20, msg: "m" }, `${CLOCK} DEBUG m\n`],
    [{ level: 40, msg: "m" }, `${CLOCK} WARN  m\n`],
    [{ level: 50, msg: "m" }, `${CLOCK} ERROR m\n`],
    [{ level: 60, msg: "m" }, `${CLOCK} FATAL m\n`],
    [{ level: 35, msg: "m" }, `${CLOCK} L35   m\n`],
    [
      { msg: "m", taskId: 12, ok: true, none: null },
      `${CLOCK} INFO  m taskId=12 ok=true none=null\n`,
    ],
    [{ msg: "m", repo: "acme/widgets" }, `${CLOCK} INFO  m repo=acme/widgets\n`],
    [{ msg: "m", title: 'say "hi" now' }, `${CLOCK} INFO  m title="say \\"hi\\" now"\n`],
    [{ msg: "m", empty: "" }, `${CLOCK} INFO  m empty=""\n`],
    [{ msg: "m", eq: "a=b" }, `${CLOCK} INFO  m eq="a=b"\n`],
    [
      { msg: "m", applied: ["0000_init", "0001_intake"] },
      `${CLOCK} INFO  m applied=["0000_init","0001_intake"]\n`,
    ],
    [{ msg: "m", req: { id: 1, method: "GET" } }, `${CLOCK} INFO  m req={"id":1,"method":"GET"}\n`],
    [{ msg: "m", token: "[redacted]" }, `${CLOCK} INFO  m token=[redacted]\n`],
    [{ url: "x" }, `${CLOCK} INFO  url=x\n`],
  ])("formats %j", (fields, expected) => {
    expect(formatLogLine(line(fields))).toBe(expected);
  });

  it("puts an error's stack on indented lines and keeps its other fields on the line", () => {
    const err = {
      type: "Error",
      message: "boom",
      stack: "Error: boom\n    at f (a.ts:1:2)",
      code: "E1",
    };
    expect(formatLogLine(line({ level: 50, msg: "failed", err, taskId: 3 }))).toBe(
      `${CLOCK} ERROR failed err.code=E1 taskId=3\n    Error: boom\n        at f (a.ts:1:2)\n`,
    );
  });

  it.each([
    [
      "an escape sequence",
      "\u001b[2J\u001b[31mred",
      "\\u001b[2J\\u001b[31mred",
      "\\u001b[2J\\u001b[31mred",
    ],
    ["a C1 control", "\u009b31m", "\\u009b31m", "\\u009b31m"],
    ["a bidirectional override", "abc\u202edcba", "abc\\u202edcba", "abc\\u202edcba"],
    ["a newline", "one\ntwo", "one\\u000atwo", '"one\\ntwo"'],
  ])("escapes %s in messages, keys and values (hostile issue text)", (_, raw, escaped, value) => {
    expect(formatLogLine(line({ msg: raw, [raw]: "k", title: raw }))).toBe(
      `${CLOCK} INFO  ${escaped} ${escaped}=k title=${value}\n`,
    );
  });

  it("colours the level and dims the time only when asked", () => {
    expect(formatLogLine(line({ level: 40, msg: "m" }), { color: true })).toBe(
      `\u001b[2m${CLOCK}\u001b[22m \u001b[33mWARN \u001b[0m m\n`,
    );
  });

  it.each([["not json\n"], ["[1,2]\n"], ['"text"\n'], ["null\n"]])(
    "passes %j through unchanged",
    (text) => {
      expect(formatLogLine(text)).toBe(text);
    },
  );
});
