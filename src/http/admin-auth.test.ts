import { describe, expect, it } from "vitest";
import { isAdminToken } from "./admin-auth.ts";

describe("isAdminToken", () => {
  const token = "correct-horse-battery-staple";
  it.each([
    [token, true],
    ["", false],
    ["correct-horse-battery-stapl", false],
    [`${token}x`, false],
    [token.toUpperCase(), false],
    [` ${token}`, false],
  ])("%j → %s", (presented, expected) => {
    expect(isAdminToken(presented, token)).toBe(expected);
  });
});
