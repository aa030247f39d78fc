import { describe, expect, it } from "vitest";
import { createGroupCommit } from "./group-commit.ts";

/** A group commit over a fake statement that records its batches and can be held open. */
function recorded(options: { keyed?: boolean; refuse?: (item: string) => boolean } = {}) {
  const batches: string[][] = [];
  let release: (() => void) | undefined;
  let hold = false;
  const group = createGroupCommit<string, string>({
    async run(items) {
      batches.push(items);
      if (hold) await new Promise<void>((resolve) => (release = resolve));
      if (items.some((item) => options.refuse?.(item))) throw new Error("refused");
      return items.map((item) => `${item}!`);
    },
    ...(options.keyed ? { keyOf: (item: string) => item.split(":")[0]! } : {}),
  });
  return {
    group,
    batches,
    holdNext: () => {
      hold = true;
    },
    releaseHeld: () => {
      hold = false;
      release?.();
    },
  };
}

describe("group commit", () => {
  it("runs writes that arrive in one turn as one batch, each caller getting its own result", async () => {
    const { group, batches } = recorded();
    const results = await Promise.all(["a", "b", "c"].map((item) => group.submit(item)));
    expect(results).toEqual(["a!", "b!", "c!"]);
    expect(batches).toEqual([["a", "b", "c"]]);
  });

  it("keeps one batch in flight: what arrives meanwhile goes in the next, together", async () => {
    const { group, batches, holdNext, releaseHeld } = recorded();
    holdNext();
    const first = group.submit("a");
    await new Promise((resolve) => setImmediate(resolve));
    expect(batches).toEqual([["a"]]);
    const later = ["b", "c"].map((item) => group.submit(item));
    await new Promise((resolve) => setImmediate(resolve));
    // Still one statement in flight.
    expect(batches).toHaveLength(1);
    releaseHeld();
    expect(await Promise.all([first, ...later])).toEqual(["a!", "b!", "c!"]);
    expect(batches).toEqual([["a"], ["b", "c"]]);
  });

  it("never puts two writes with one key in the same batch", async () => {
    const { group, batches } = recorded({ keyed: true });
    const results = await Promise.all(["t1:a", "t2:a", "t1:b"].map((item) => group.submit(item)));
    expect(results).toEqual(["t1:a!", "t2:a!", "t1:b!"]);
    expect(batches).toEqual([["t1:a", "t2:a"], ["t1:b"]]);
  });

  it("fails only the write the statement refused: the others of its batch are tried alone", async () => {
    const { group, batches } = recorded({ refuse: (item) => item === "bad" });
    const results = await Promise.allSettled(["a", "bad", "c"].map((item) => group.submit(item)));
    expect(results.map((r) => (r.status === "fulfilled" ? r.value : "rejected"))).toEqual([
      "a!",
      "rejected",
      "c!",
    ]);
    expect(batches).toEqual([["a", "bad", "c"], ["a"], ["bad"], ["c"]]);
  });

  it("flush waits for every write queued so far", async () => {
    const { group, batches, holdNext, releaseHeld } = recorded();
    holdNext();
    const pending = group.submit("a");
    const flushed = group.flush();
    let done = false;
    void flushed.then(() => {
      done = true;
    });
    await new Promise((resolve) => setImmediate(resolve));
    expect(done).toBe(false);
    releaseHeld();
    await flushed;
    expect(await pending).toBe("a!");
    expect(batches).toEqual([["a"]]);
  });

  it("gathers the writes of the next few milliseconds into the statement of the first", async () => {
    const batches: string[][] = [];
    const group = createGroupCommit<string, string>({
      gatherMs: 30,
      run: async (items) => {
        batches.push(items);
        return items;
      },
    });
    const first = group.submit("a");
    await new Promise((resolve) => setTimeout(resolve, 5));
    const second = group.submit("b");
    expect(await Promise.all([first, second])).toEqual(["a", "b"]);
    expect(batches).toEqual([["a", "b"]]);
  });
});
