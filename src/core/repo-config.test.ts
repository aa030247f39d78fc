import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { DEFAULT_REPO_CONFIG, parseRepoConfig, repoConfigJsonSchema } from "./repo-config.ts";

describe("repository config", () => {
  it("uses the documented defaults for a missing file", () => {
    expect(parseRepoConfig(undefined)).toEqual({ ok: true, config: DEFAULT_REPO_CONFIG });
    expect(DEFAULT_REPO_CONFIG.intake.label).toBe("conveyor");
    expect(DEFAULT_REPO_CONFIG.tasks.max_attempts).toBe(3);
  });

  it("fills unspecified keys of a partial file with defaults", () => {
    const result = parseRepoConfig({ version: 1, tasks: { max_attempts: 5 } });
    expect(result.ok).toBe(true);
    expect(result.config.tasks.max_attempts).toBe(5);
    expect(result.config.tasks.deadline_minutes).toBe(120);
    expect(result.config.intake.label).toBe("conveyor");
  });

  it.each([
    [{ version: 2 }, "version"],
    [{ intake: { lable: "x" } }, "intake.lable"],
    [{ tasks: { max_attempts: 0 } }, "tasks.max_attempts"],
    [{ tasks: { capabilities: ["GPU!"] } }, "tasks.capabilities.0"],
    [{ verify: { commands: ["npm test"] } }, "verify.commands.0"],
    [{ surprise: true }, "surprise"],
    ["just a string", ""],
  ])("refuses %j naming %s and falls back to the defaults", (raw, key) => {
    const result = parseRepoConfig(raw);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems.map((p) => p.key)).toContain(key);
    expect(result.config).toEqual(DEFAULT_REPO_CONFIG);
  });

  it("matches the committed docs/conveyor.schema.json (run `npm run docs:schema`)", () => {
    const committed = JSON.parse(
      readFileSync(new URL("../../docs/conveyor.schema.json", import.meta.url), "utf8"),
    );
    expect(committed).toEqual(repoConfigJsonSchema());
  });
});
