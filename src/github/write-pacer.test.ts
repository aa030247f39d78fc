import { describe, expect, it } from "vitest";
import { GitHubWritesClosed } from "../core/ports.ts";
import { createWritePacer, isGraphqlQuery } from "./write-pacer.ts";

describe("write pacer", () => {
  it("lets 80 writes through at once and makes the 81st wait for the window", async () => {
    let clock = 0;
    const slept: number[] = [];
    const pacer = createWritePacer({
      now: () => clock,
      sleep: async (ms) => {
        slept.push(ms);
        clock += ms;
      },
    });
    for (let i = 0; i < 80; i++) await pacer.take();
    expect(slept).toEqual([]);
    clock = 1_000;
    await pacer.take();
    expect(slept).toEqual([59_000]);
    expect(clock).toBe(60_000);
  });

  it("never delays reads", async () => {
    let waited = false;
    const pacer = createWritePacer({
      perMinute: 1,
      now: () => 0,
      sleep: async () => {
        waited = true;
      },
    });
    await pacer.hook({ method: "POST" });
    for (let i = 0; i < 5; i++) await pacer.hook({ method: "GET" });
    expect(waited).toBe(false);
  });

  it("refuses waiting and later writes once closed, releasing the caller at once", async () => {
    const pacer = createWritePacer({
      perMinute: 1,
      now: () => 0,
      sleep: () => new Promise(() => {}),
    });
    await pacer.take();
    const waiting = [pacer.take(), pacer.hook({ method: "PATCH" })];
    pacer.close();
    for (const write of waiting) await expect(write).rejects.toBeInstanceOf(GitHubWritesClosed);
    await expect(pacer.take()).rejects.toBeInstanceOf(GitHubWritesClosed);
    // Reads still pass: a stopping server may look things up.
    await pacer.hook({ method: "GET" });
  });

  it("never delays a GraphQL query, and paces a GraphQL mutation like any write", async () => {
    const pacer = createWritePacer({
      perMinute: 1,
      now: () => 0,
      sleep: () => new Promise(() => {}),
    });
    const mutation = { method: "POST", url: "/graphql", query: "mutation { y }" };
    await pacer.hook(mutation);
    // The minute's one write is spent: a paced query would wait forever here.
    for (let i = 0; i < 3; i++) {
      await pacer.hook({ method: "POST", url: "/graphql", query: "query($n: Int!) { x }" });
    }
    let settled = false;
    const waiting = pacer.hook(mutation).finally(() => {
      settled = true;
    });
    await new Promise((resolve) => setImmediate(resolve));
    expect(settled).toBe(false);
    pacer.close();
    await expect(waiting).rejects.toBeInstanceOf(GitHubWritesClosed);
  });

  it.each([
    ["query($a: Int) { repository { id } }", true],
    ["  { viewer { login } }", true],
    ["mutation($id: ID!) { dequeuePullRequest(input: {id: $id}) { clientMutationId } }", false],
    ["query { a } mutation { b }", false],
    ["subscription { a }", false],
  ])("isGraphqlQuery(%j) is %s", (document, expected) => {
    expect(isGraphqlQuery({ url: "/graphql", query: document })).toBe(expected);
  });

  it("is no query unless it goes to /graphql with a document", () => {
    expect(isGraphqlQuery({ url: "/repos/a/b/issues", query: "query { a }" })).toBe(false);
    expect(isGraphqlQuery({ url: "/graphql" })).toBe(false);
  });
});
