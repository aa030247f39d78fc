import { describe, expect, it } from "vitest";
import { createApiRateLimiter } from "./api-rate-limiter.ts";

const limits = { read: 3, write: 2, heavy: 1, unauthenticated: 2 };

function limiter() {
  let now = 1_000_000;
  const rate = createApiRateLimiter(limits, () => now);
  return { rate, advance: (ms: number) => (now += ms) };
}

describe("API rate limiter", () => {
  it("lets a client burst up to its limit, then refuses with when to come back", () => {
    const { rate } = limiter();
    for (let i = 0; i < 3; i++) expect(rate.take("token-a", "read")).toEqual({ allowed: true });
    const refused = rate.take("token-a", "read");
    expect(refused).toEqual({
      allowed: false,
      // One read refills in 20 s at 3 a minute: longer than the first rung of the ladder.
      retryAfterMs: 20_000,
      message: "too many requests: reads are limited to 3 a minute per token; retry in 20 s",
    });
  });

  it("keeps clients and costs apart", () => {
    const { rate } = limiter();
    for (let i = 0; i < 3; i++) rate.take("token-a", "read");
    expect(rate.take("token-a", "read").allowed).toBe(false);
    expect(rate.take("token-b", "read").allowed).toBe(true);
    expect(rate.take("token-a", "write").allowed).toBe(true);
    expect(rate.take("token-a", "heavy").allowed).toBe(true);
    expect(rate.take("token-a", "heavy")).toMatchObject({
      allowed: false,
      message: expect.stringContaining("exports and imports are limited to 1 a minute per token"),
    });
  });

  it("refills with time", () => {
    const { rate, advance } = limiter();
    for (let i = 0; i < 3; i++) rate.take("token-a", "read");
    expect(rate.take("token-a", "read").allowed).toBe(false);
    advance(20_000);
    expect(rate.take("token-a", "read").allowed).toBe(true);
  });

  it("limits unauthenticated addresses by their own budget, whatever the cost", () => {
    const { rate } = limiter();
    expect(rate.exhausted("ip:10.0.0.1", "read")).toBe(false);
    rate.take("ip:10.0.0.1", "read");
    expect(rate.exhausted("ip:10.0.0.1", "read")).toBe(false);
    rate.take("ip:10.0.0.1", "write");
    expect(rate.take("ip:10.0.0.1", "read")).toMatchObject({
      allowed: false,
      message: expect.stringContaining(
        "requests without a valid token are limited to 2 a minute per address",
      ),
    });
    expect(rate.exhausted("ip:10.0.0.1", "read")).toBe(true);
    expect(rate.take("ip:10.0.0.2", "read").allowed).toBe(true);
  });
});
