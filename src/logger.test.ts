import { describe, expect, it } from "vitest";
import type { LogFormat } from "./config.ts";
import { createLogger, resolveLogFormat } from "./logger.ts";

function capture(format: LogFormat | undefined, terminal: boolean) {
  const lines: string[] = [];
  const logger = createLogger({
    format,
    terminal,
    destination: { write: (chunk: string) => void lines.push(chunk) },
  });
  return { logger, lines };
}

const SECRETS = {
  token: "tok-123",
  privateKey: "-----BEGIN KEY-----",
  headers: { authorization: "Bearer abc", cookie: "conveyor_session=xyz" },
  runner: { token: "nested-456" },
};

describe("resolveLogFormat", () => {
  it.each([
    ["auto", true, "pretty"],
    ["auto", false, "json"],
    ["json", true, "json"],
    ["json", false, "json"],
    ["pretty", true, "pretty"],
    ["pretty", false, "pretty"],
  ] as const)("%s on a terminal=%s is %s", (format, terminal, expected) => {
    expect(resolveLogFormat(format, terminal)).toBe(expected);
  });
});

describe("createLogger", () => {
  it("writes JSON lines when the output is not a terminal", () => {
    const { logger, lines } = capture(undefined, false);
    logger.child({ component: "probot" }).info({ taskId: 4 }, "hello");
    expect(JSON.parse(lines[0] ?? "")).toMatchObject({
      level: 30,
      name: "conveyor",
      component: "probot",
      taskId: 4,
      msg: "hello",
    });
  });

  it("writes coloured readable lines on a terminal", () => {
    const { logger, lines } = capture("auto", true);
    logger.warn({ taskId: 4 }, "slow");
    expect(lines[0]).toMatch(
      // biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI colours
      /^\u001b\[2m\d\d:\d\d:\d\d\.\d{3}\u001b\[22m \u001b\[33mWARN \u001b\[0m slow taskId=4\n$/,
    );
  });

  it("writes JSON on a terminal when LOG_FORMAT=json", () => {
    const { logger, lines } = capture("json", true);
    logger.info("hello");
    expect(JSON.parse(lines[0] ?? "")).toMatchObject({ msg: "hello" });
  });

  it("writes readable lines without colours to a pipe when LOG_FORMAT=pretty", () => {
    const { logger, lines } = capture("pretty", false);
    logger
      .child({ component: "setup" })
      .info({ url: "http://localhost:3000" }, "conveyor listening");
    expect(lines).toEqual([
      expect.stringMatching(
        /^\d\d:\d\d:\d\d\.\d{3} INFO {2}conveyor listening component=setup url=http:\/\/localhost:3000\n$/,
      ),
    ]);
  });

  it.each([["json"], ["pretty"]] as const)("redacts secrets in %s", (format) => {
    const { logger, lines } = capture(format, false);
    logger.info(SECRETS, "with secrets");
    const out = lines.join("");
    expect(out).toContain("with secrets");
    for (const secret of ["tok-123", "BEGIN KEY", "Bearer abc", "xyz", "nested-456"]) {
      expect(out).not.toContain(secret);
    }
    expect(out.match(/\[redacted\]/g)).toHaveLength(5);
  });
});
