import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { DEFAULT_REPO_CONFIG, parseRepoConfig } from "./repo-config.ts";

/* The annotated file in docs/configuration.md is the whole file with its defaults: it must parse
 * and equal what the schema applies to an empty file. */

const doc = readFileSync(new URL("../../docs/configuration.md", import.meta.url), "utf8");

describe("docs/configuration.md", () => {
  it("shows every key with the default the schema applies", () => {
    const block = /```yaml\n([\s\S]*?)```/.exec(doc)?.[1];
    expect(block).toBeDefined();
    const parsed = parseRepoConfig(parse(block ?? ""));
    expect(parsed.ok ? [] : parsed.problems).toEqual([]);
    expect(parsed.config).toEqual({ ...DEFAULT_REPO_CONFIG, version: 1 });
  });
});
