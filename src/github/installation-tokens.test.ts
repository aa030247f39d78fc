import { describe, expect, it } from "vitest";
import { createInstallationTokenCache } from "./installation-tokens.ts";

/** What @octokit/auth-app stores: `token|createdAt|expiresAt|repositorySelection|permissions|file`. */
const stored = (token: string, expiresAt: string) =>
  `${token}|2026-01-01T10:00:00Z|${expiresAt}|all|issues!,metadata|`;

describe("installation token store", () => {
  it.each([
    ["an hour before expiry", "2026-01-01T10:00:00Z", true],
    ["5 min 1 s before expiry", "2026-01-01T10:54:59Z", true],
    ["exactly 5 min before expiry", "2026-01-01T10:55:00Z", false],
    ["one minute before expiry", "2026-01-01T10:59:00Z", false],
    ["after expiry", "2026-01-01T11:00:01Z", false],
  ])("%s: reused %s", (_, at, reused) => {
    let now = Date.parse("2026-01-01T10:00:00Z");
    const cache = createInstallationTokenCache({ now: () => now });
    cache.set("7", stored("ghs_a", "2026-01-01T11:00:00Z"));
    now = Date.parse(at);
    expect(cache.get("7")).toBe(reused ? stored("ghs_a", "2026-01-01T11:00:00Z") : undefined);
  });

  it("drops a value whose expiry it cannot read, and the oldest beyond its size", () => {
    const cache = createInstallationTokenCache({ maxEntries: 2, now: () => 0 });
    cache.set("bad", "ghs_x|created|not-a-date|all||");
    expect(cache.get("bad")).toBeUndefined();
    for (const key of ["1", "2", "3"]) cache.set(key, stored(`ghs_${key}`, "2999-01-01T00:00:00Z"));
    expect([cache.get("1"), cache.get("2") !== undefined, cache.get("3") !== undefined]).toEqual([
      undefined,
      true,
      true,
    ]);
  });
});
