import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { HOLD_LABELS, RULE_IDS, RULE_TITLES } from "./merge-policy.ts";
import { BUILD_CONFIG_PATHS, FLOOR_PROTECTED_PATHS } from "./protected-paths.ts";
import { DEFAULT_REPO_CONFIG } from "./repo-config.ts";
import {
  BUILTIN_TEST_PATHS,
  TEST_RUNNER_CONFIG_PATHS,
  TEST_SUPPORT_PATHS,
} from "./test-weakening.ts";

/*
 * Keeps docs/merge-policy.md honest: every built-in list the rules use is spelt out there in
 * full, every rule has its row in the order the safety check shows them, and the tier-1 defaults
 * are the ones the config schema applies.
 */

const doc = readFileSync(new URL("../../docs/merge-policy.md", import.meta.url), "utf8");
/** The whitespace-separated words of the page's ```text blocks. */
const listed = new Set(
  [...doc.matchAll(/```text\n([\s\S]*?)```/g)].flatMap((m) => (m[1] ?? "").split(/\s+/)),
);

describe("docs/merge-policy.md", () => {
  it.each([
    ["the floor", FLOOR_PROTECTED_PATHS],
    ["build and lint configuration", BUILD_CONFIG_PATHS],
    ["test-runner configuration", TEST_RUNNER_CONFIG_PATHS],
    ["test files", BUILTIN_TEST_PATHS],
    ["test setup and helper files", TEST_SUPPORT_PATHS],
  ])("lists every pattern of %s", (_name, patterns) => {
    expect(patterns.filter((pattern) => !listed.has(pattern))).toEqual([]);
  });

  it("lists the built-in hold labels", () => {
    const block = /## Hold labels[\s\S]*?```text\n([^`]*)```/.exec(doc)?.[1] ?? "";
    expect(block.trim()).toBe(HOLD_LABELS.join("  "));
  });

  it("has a row for every rule, in the order the safety check shows them", () => {
    const rows = [...doc.matchAll(/^\| (\d+) +\| \*\*(.+?)\*\*/gm)].map((m) => [
      Number(m[1]),
      m[2],
    ]);
    expect(rows).toEqual(RULE_IDS.map((id, i) => [i + 1, RULE_TITLES[id]]));
  });

  it("states the tier-1 defaults the schema applies", () => {
    const { tier1 } = DEFAULT_REPO_CONFIG.merge;
    expect(doc).toContain(`| \`merge.tier1.max_line_bytes\`     | \`${tier1.max_line_bytes}\``);
    expect(doc).toContain(`| \`merge.tier1.max_file_bytes\`     | \`${tier1.max_file_bytes}\``);
  });
});
