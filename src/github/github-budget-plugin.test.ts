import { describe, expect, it } from "vitest";
import { createGitHubBudget } from "../core/github-budget.ts";
import { isWritesClosed } from "../core/ports.ts";
import { createBudgetPlugin } from "./github-budget-plugin.ts";

type Answer = { status: number; headers: Record<string, string> };
type Wrapper = (request: () => Promise<Answer>, options: { method?: string }) => Promise<Answer>;

/** An Octokit stand-in: the plugin's wrapper around a scripted `request`. */
function client(plugin: ReturnType<typeof createBudgetPlugin>["plugin"], installationId = 7) {
  let wrapper: Wrapper | undefined;
  plugin(
    { hook: { wrap: (_name, w) => (wrapper = w as unknown as Wrapper) } },
    {
      auth: { installationId },
    },
  );
  return (request: () => Promise<Answer>) => wrapper!(request, { method: "GET" });
}

const window = (remaining: number, reset: number) => ({
  "x-ratelimit-limit": "100",
  "x-ratelimit-remaining": String(remaining),
  "x-ratelimit-reset": String(reset),
  "x-ratelimit-resource": "core",
});

const refusal = (status: number, headers: Record<string, string>, message: string) =>
  Object.assign(new Error(message), { status, response: { status, headers, data: { message } } });

describe("the budget plugin", () => {
  it("waits out a secondary limit's retry-after, then sends the request again", async () => {
    let now = 1_000_000;
    const slept: number[] = [];
    const budget = createGitHubBudget({ now: () => now });
    const limited: string[] = [];
    const { plugin } = createBudgetPlugin({
      budget,
      now: () => now,
      sleep: async (ms) => {
        slept.push(ms);
        now += ms;
      },
      onLimited: (kind) => limited.push(kind),
    });
    const send = client(plugin);
    let calls = 0;
    const answer = await send(async () => {
      calls++;
      if (calls === 1)
        throw refusal(429, { ...window(50, 2_000), "retry-after": "3" }, "secondary rate limit");
      return { status: 200, headers: window(49, 2_000) };
    });
    expect(answer.status).toBe(200);
    expect(calls).toBe(2);
    expect(slept).toEqual([3_000]);
    expect(limited).toEqual(["secondary"]);
  });

  it("holds the next request while the window is empty, and passes a permission 403 through", async () => {
    let now = 1_000_000;
    const slept: number[] = [];
    const budget = createGitHubBudget({ now: () => now });
    const { plugin } = createBudgetPlugin({
      budget,
      now: () => now,
      sleep: async (ms) => {
        slept.push(ms);
        now += ms;
      },
    });
    const send = client(plugin);
    await send(async () => ({ status: 200, headers: window(0, 1_010) }));
    await send(async () => ({ status: 200, headers: window(99, 4_600) }));
    expect(slept).toEqual([10_000]);
    const forbidden = refusal(403, window(98, 4_600), "Resource not accessible by integration");
    await expect(
      send(async () => {
        throw forbidden;
      }),
    ).rejects.toBe(forbidden);
    expect(slept).toEqual([10_000]);
  });

  it("gives up after its retries, and close ends a wait with GitHubWritesClosed", async () => {
    let now = 1_000_000;
    const budget = createGitHubBudget({ now: () => now });
    const fast = createBudgetPlugin({
      budget,
      retries: 1,
      now: () => now,
      sleep: async (ms) => {
        now += ms;
      },
    });
    let calls = 0;
    await expect(
      client(fast.plugin)(async () => {
        calls++;
        throw refusal(403, window(0, 1_005), "API rate limit exceeded for installation ID 7.");
      }),
    ).rejects.toMatchObject({ status: 403 });
    expect(calls).toBe(2);

    const real = createBudgetPlugin({ budget: createGitHubBudget() });
    const send = client(real.plugin, 8);
    await send(async () => ({
      status: 200,
      headers: window(0, Math.floor(Date.now() / 1000) + 3_600),
    }));
    const waiting = send(async () => ({ status: 200, headers: window(99, 0) }));
    real.close();
    const error = await waiting.catch((e: unknown) => e);
    expect(isWritesClosed(error)).toBe(true);
  });
});
