import { randomUUID } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { afterAll, beforeEach, describe, expect, it, vi } from "vitest";
import { createJournal, type JournalEntry } from "./journal.ts";

/** Watches the journal's file-system calls: their order, overlapping writes, injected failures. */
const fsWatch = vi.hoisted(() => ({
  events: [] as string[],
  writesInFlight: 0,
  maxWritesInFlight: 0,
  failNextRename: false,
}));

vi.mock("node:fs/promises", async (importOriginal) => {
  const actual = await importOriginal<typeof import("node:fs/promises")>();
  const name = (path: unknown) => basename(String(path)).replace(/\.tmp-.*/, ".tmp");
  return {
    ...actual,
    async open(...args: Parameters<typeof actual.open>) {
      const handle = await actual.open(...args);
      const [path, flags] = args;
      if (flags === "w") {
        fsWatch.writesInFlight++;
        fsWatch.maxWritesInFlight = Math.max(fsWatch.maxWritesInFlight, fsWatch.writesInFlight);
        // Give a concurrent caller every chance to start its own write in between.
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      const sync = handle.sync.bind(handle);
      handle.sync = async () => {
        fsWatch.events.push(`sync ${flags === "w" ? name(path) : "dir"}`);
        return sync();
      };
      fsWatch.events.push(`open ${flags} ${flags === "w" ? name(path) : "dir"}`);
      return handle;
    },
    async rename(from: string, to: string) {
      fsWatch.events.push(`rename ${name(from)} → ${name(to)}`);
      if (name(from).endsWith(".tmp")) fsWatch.writesInFlight--;
      if (fsWatch.failNextRename) {
        fsWatch.failNextRename = false;
        throw Object.assign(new Error("simulated crash before rename"), { code: "EIO" });
      }
      return actual.rename(from, to);
    },
  };
});

const root = mkdtempSync(join(tmpdir(), "runner-journal-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

beforeEach(() => {
  fsWatch.events = [];
  fsWatch.writesInFlight = 0;
  fsWatch.maxWritesInFlight = 0;
  fsWatch.failNextRename = false;
});

function journalPath(): string {
  return join(mkdtempSync(join(root, "case-")), "state", "journal.json");
}

function entry(overrides: Partial<JournalEntry> = {}): JournalEntry {
  const taskId = overrides.task_id ?? randomUUID();
  return {
    task_id: taskId,
    generation: 1,
    workspace: `/work/${taskId}`,
    accepted_at: "2025-01-01T00:00:00.000Z",
    stage: "accepted",
    ...overrides,
  };
}

const onDisk = (path: string) => JSON.parse(readFileSync(path, "utf8"));

describe("runner journal", () => {
  it("starts empty when there is no file, and keeps what was recorded across restarts", async () => {
    const path = journalPath();
    const journal = createJournal(path);
    expect(await journal.load()).toEqual({ entries: [] });
    const first = entry();
    const second = entry({ generation: 3, stage: "agent" });
    await journal.record(first);
    await journal.record(second);
    await journal.record({ ...first, stage: "uploaded", digest: `sha256:${"a".repeat(64)}` });
    expect(await journal.remove(randomUUID())).toBe(false);

    const restarted = createJournal(path);
    const loaded = await restarted.load();
    expect(loaded.corrupt).toBeUndefined();
    expect(loaded.entries).toEqual([
      { ...first, stage: "uploaded", digest: `sha256:${"a".repeat(64)}` },
      second,
    ]);
    expect(restarted.entries()).toEqual(loaded.entries);
    expect(await restarted.remove(first.task_id)).toBe(true);
    expect(onDisk(path)).toEqual({ version: 1, entries: [second] });
  });

  it("writes a temporary file, fsyncs it, renames it over the journal, then fsyncs the directory", async () => {
    const journal = createJournal(journalPath());
    await journal.load();
    fsWatch.events = [];
    await journal.record(entry());
    expect(fsWatch.events).toEqual([
      "open w journal.json.tmp",
      "sync journal.json.tmp",
      "rename journal.json.tmp → journal.json",
      "open r dir",
      "sync dir",
    ]);
  });

  it("leaves the previous journal whole when a write dies before the rename", async () => {
    const path = journalPath();
    const journal = createJournal(path);
    await journal.load();
    const kept = entry();
    await journal.record(kept);
    const before = readFileSync(path, "utf8");

    fsWatch.failNextRename = true;
    await expect(journal.record(entry())).rejects.toThrow("could not write the runner journal");
    expect(readFileSync(path, "utf8")).toBe(before);
    expect(readdirSync(dirname(path))).toEqual(["journal.json"]);
    // Memory matches the disk: the entry whose write failed is not reported in `hello`.
    expect(journal.entries()).toEqual([kept]);
    fsWatch.failNextRename = true;
    await expect(journal.remove(kept.task_id)).rejects.toThrow("could not write");
    expect(journal.entries()).toEqual([kept]);
    // The queue goes on after a failed write.
    await journal.remove(kept.task_id);
    expect(onDisk(path).entries).toEqual([]);
  });

  it.each([
    ["not JSON", "{ torn write", /not valid JSON/],
    ["another file's JSON", '{"version": 2, "entries": []}', /not a runner journal \(version/],
    [
      "an entry with a token in it",
      JSON.stringify({ version: 1, entries: [{ ...entry(), read_token: "ghs_x" }] }),
      /not a runner journal \(entries\.0/,
    ],
    ["an empty file", "", /not valid JSON/],
  ])("moves a corrupt journal (%s) aside and starts empty", async (_, content, reason) => {
    const path = journalPath();
    const now = () => new Date("2025-02-03T04:05:06.789Z");
    mkdirSync(dirname(path));
    writeFileSync(path, content);

    const journal = createJournal(path, { now });
    const loaded = await journal.load();
    expect(loaded.entries).toEqual([]);
    expect(loaded.corrupt?.reason).toMatch(reason);
    expect(loaded.corrupt?.movedTo).toBe(`${path}.corrupt-2025-02-03T04-05-06-789Z`);
    expect(readFileSync(loaded.corrupt!.movedTo, "utf8")).toBe(content);
    expect(existsSync(path)).toBe(false);

    // A second corrupt file in the same millisecond does not overwrite the first one.
    writeFileSync(path, content);
    const again = await createJournal(path, { now }).load();
    expect(again.corrupt?.movedTo).toBe(`${path}.corrupt-2025-02-03T04-05-06-789Z-1`);

    await journal.record(entry());
    expect(onDisk(path).entries).toHaveLength(1);
  });

  it("serializes concurrent records and removes: one write at a time, the last state wins", async () => {
    const path = journalPath();
    const journal = createJournal(path);
    await journal.load();
    const entries = Array.from({ length: 30 }, (_, i) =>
      entry({ accepted_at: new Date(Date.UTC(2025, 0, 1, 0, 0, i)).toISOString() }),
    );
    const removed = new Set(entries.filter((_, i) => i % 3 === 0).map((e) => e.task_id));
    await Promise.all([
      ...entries.map((e) => journal.record(e)),
      ...[...removed].map((id) => journal.remove(id)),
      ...entries
        .filter((e) => !removed.has(e.task_id))
        .map((e) => journal.record({ ...e, stage: "cloning" })),
    ]);
    expect(fsWatch.maxWritesInFlight).toBe(1);

    const expected = entries
      .filter((e) => !removed.has(e.task_id))
      .map((e) => ({ ...e, stage: "cloning" }));
    expect(journal.entries()).toEqual(expected);
    expect((await createJournal(path).load()).entries).toEqual(expected);
  });

  it("survives a crash mid-write: a leftover temporary file is ignored and cleaned up", async () => {
    const path = journalPath();
    const journal = createJournal(path);
    await journal.load();
    const kept = entry();
    await journal.record(kept);
    // What a runner killed between writing and renaming leaves behind.
    const leftover = join(dirname(path), "journal.json.tmp-4242-7");
    writeFileSync(leftover, '{"version":1,"entries":[{"task_id":');
    const unrelated = join(dirname(path), "notes.tmp-1");
    writeFileSync(unrelated, "keep me");

    const restarted = createJournal(path);
    const loaded = await restarted.load();
    expect(loaded).toEqual({ entries: [kept] });
    expect(existsSync(leftover)).toBe(false);
    expect(existsSync(unrelated)).toBe(true);

    // Only a temporary file, no journal yet: still empty, not corrupt.
    const fresh = journalPath();
    mkdirSync(dirname(fresh));
    const orphan = join(dirname(fresh), "journal.json.tmp-1-0");
    writeFileSync(orphan, "{");
    expect(await createJournal(fresh).load()).toEqual({ entries: [] });
    expect(existsSync(orphan)).toBe(false);
  });

  it("refuses to write before the journal was loaded, and refuses entries that are not journal entries", async () => {
    const path = journalPath();
    const journal = createJournal(path);
    await expect(journal.record(entry())).rejects.toThrow("call journal.load()");
    await expect(journal.remove(randomUUID())).rejects.toThrow("call journal.load()");
    await journal.load();
    await expect(
      journal.record({ ...entry(), read_token: "ghs_secret" } as unknown as JournalEntry),
    ).rejects.toThrow();
    await expect(journal.record(entry({ task_id: "not-a-uuid" }))).rejects.toThrow();
    await expect(journal.record(entry({ generation: 0 }))).rejects.toThrow();
    expect(existsSync(path)).toBe(false);
  });
});
