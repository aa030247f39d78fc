import { describe, expect, it } from "vitest";
import { renderStartupMessage, SETUP_CODE_MESSAGE, SETUP_MODE_MESSAGE } from "./startup-message.ts";

const LOCAL = "http://localhost:3000";
const PUBLIC = "https://conveyor.example.com";

describe("renderStartupMessage", () => {
  it.each([
    [
      "configured, no public URL",
      { url: LOCAL, publicUrl: undefined, githubConfigured: true },
      [`${LOCAL}`, `${LOCAL}/dashboard`],
    ],
    [
      "setup mode",
      { url: LOCAL, publicUrl: undefined, githubConfigured: false },
      [`${LOCAL}`, `${LOCAL}/dashboard`, `${LOCAL}/probot`],
    ],
    [
      "setup mode behind a public URL: links where people reach it",
      { url: LOCAL, publicUrl: PUBLIC, githubConfigured: false },
      [`${LOCAL}`, `${PUBLIC}/dashboard`, `${PUBLIC}/probot`],
    ],
    [
      "setup mode with its one-time code",
      { url: LOCAL, publicUrl: PUBLIC, githubConfigured: false, setupCode: "c0de" },
      [`${LOCAL}`, `${PUBLIC}/dashboard`, `${PUBLIC}/probot`, `${PUBLIC}/probot?setup_code=c0de`],
    ],
  ])("%s", (_, facts, urls) => {
    const lines = renderStartupMessage(facts);
    expect(lines.map((l) => l.url)).toEqual(urls);
    expect(lines[0]).toEqual({ level: "info", url: LOCAL, msg: "conveyor listening" });
    expect(lines[1]?.msg).toMatch(/^dashboard \(sign in with CONVEYOR_ADMIN_TOKEN/);
    if (!facts.githubConfigured) {
      expect(lines[2]).toMatchObject({ level: "warn", msg: SETUP_MODE_MESSAGE });
    }
    if ("setupCode" in facts) {
      expect(lines[3]).toMatchObject({ level: "warn", msg: SETUP_CODE_MESSAGE });
    }
    // Probot's banner is wrong for Conveyor; nothing here may repeat it.
    expect(lines.map((l) => l.msg).join("\n")).not.toMatch(/custom routes/i);
  });
});
