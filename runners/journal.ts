import { access, mkdir, open, readdir, readFile, rename, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { z } from "zod";
import { TASK_STAGES } from "../src/protocol/messages.ts";

/**
 * Where a journaled task stands: `accepted` is written before the runner sends `accept`, the
 * protocol's stages while it works, `uploaded` once the change set is on the server (with its
 * digest, so a restart can send `complete` instead of running the task again).
 */
export const JOURNAL_STAGES = ["accepted", ...TASK_STAGES, "uploaded"] as const;
export type JournalStage = (typeof JOURNAL_STAGES)[number];

/** One in-flight task. Only ids, generations, paths, stages and digests: never a token. */
export const JournalEntry = z.strictObject({
  task_id: z.uuid(),
  generation: z.number().int().min(1),
  workspace: z.string().min(1),
  accepted_at: z.iso.datetime({ offset: true }),
  stage: z.enum(JOURNAL_STAGES),
  digest: z
    .string()
    .regex(/^sha256:[0-9a-f]{64}$/)
    .optional(),
});
export type JournalEntry = z.infer<typeof JournalEntry>;

const JournalFile = z.strictObject({
  version: z.literal(1),
  entries: z.array(JournalEntry),
});

export interface JournalLoadResult {
  entries: JournalEntry[];
  /** Set when the file could not be read as a journal; it was moved aside, not deleted. */
  corrupt?: { movedTo: string; reason: string };
}

/** The runner's local record of in-flight tasks, so a crash or restart can report them in `hello`. */
export interface Journal {
  readonly path: string;
  /** Reads the file. Missing → empty; unreadable as a journal → moved aside and empty. */
  load(): Promise<JournalLoadResult>;
  /** Adds or replaces the entry for `entry.task_id`; durable on disk when the promise resolves. */
  record(entry: JournalEntry): Promise<void>;
  /** Drops a task's entry; resolves to whether there was one. */
  remove(taskId: string): Promise<boolean>;
  /** The entries as last loaded or written, in the order they were first recorded. */
  entries(): JournalEntry[];
}

export interface JournalOptions {
  now?: () => Date;
}

const TEMP_MARK = ".tmp-";

/**
 * A journal kept in one JSON file, replaced atomically on every change: write a temporary file in
 * the same directory, fsync it, rename it over the journal, fsync the directory. A crash at any
 * point leaves either the old or the new journal, never a mix. Changes made through one journal
 * object are serialized; two processes must not share a file.
 */
export function createJournal(path: string, options: JournalOptions = {}): Journal {
  const now = options.now ?? (() => new Date());
  const dir = dirname(path);
  const tempPrefix = `${basename(path)}${TEMP_MARK}`;
  const current = new Map<string, JournalEntry>();
  let loaded = false;
  let tempCounter = 0;
  // Every load and write runs after the previous one: the file always holds a whole snapshot,
  // and the last write carries the last change.
  let queue: Promise<unknown> = Promise.resolve();

  function serialized<T>(operation: () => Promise<T>): Promise<T> {
    const result = queue.then(operation);
    queue = result.catch(() => {});
    return result;
  }

  async function write(): Promise<void> {
    const snapshot = JSON.stringify({ version: 1, entries: [...current.values()] }, null, 2);
    await mkdir(dir, { recursive: true });
    const temp = join(dir, `${tempPrefix}${process.pid}-${tempCounter++}`);
    try {
      const handle = await open(temp, "w", 0o600);
      try {
        await handle.writeFile(`${snapshot}\n`, "utf8");
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, path);
    } catch (error) {
      await unlink(temp).catch(() => {});
      throw new Error("could not write the runner journal", { cause: error });
    }
    await syncDirectory(dir);
  }

  async function moveAside(reason: string): Promise<JournalLoadResult> {
    const stamp = now().toISOString().replace(/[:.]/g, "-");
    let movedTo = `${path}.corrupt-${stamp}`;
    for (let n = 1; await exists(movedTo); n++) movedTo = `${path}.corrupt-${stamp}-${n}`;
    await rename(path, movedTo);
    await syncDirectory(dir);
    return { entries: [], corrupt: { movedTo, reason } };
  }

  async function removeLeftoverTemps(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      return;
    }
    // A temporary file is only ever complete once renamed; any left over is from a crash.
    await Promise.all(
      names
        .filter((name) => name.startsWith(tempPrefix))
        .map((name) => unlink(join(dir, name)).catch(() => {})),
    );
  }

  /** A failed write leaves memory as the disk has it: what the caller was told did not happen. */
  function restore(previous: Map<string, JournalEntry>, error: unknown): never {
    current.clear();
    for (const [id, value] of previous) current.set(id, value);
    throw error;
  }

  return {
    path,
    load: () =>
      serialized(async () => {
        current.clear();
        loaded = true;
        await removeLeftoverTemps();
        let text: string;
        try {
          text = await readFile(path, "utf8");
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === "ENOENT") return { entries: [] };
          throw new Error("could not read the runner journal", { cause: error });
        }
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch (error) {
          return moveAside(`not valid JSON (${(error as Error).message})`);
        }
        const parsed = JournalFile.safeParse(json);
        if (!parsed.success) {
          const issue = parsed.error.issues[0];
          return moveAside(
            `not a runner journal (${issue?.path.join(".") || "(file)"}: ${issue?.message})`,
          );
        }
        for (const entry of parsed.data.entries) current.set(entry.task_id, entry);
        return { entries: [...current.values()] };
      }),
    record: (entry) =>
      serialized(async () => {
        assertLoaded(loaded);
        const valid = JournalEntry.parse(entry);
        const previous = new Map(current);
        current.set(valid.task_id, valid);
        await write().catch((error: unknown) => restore(previous, error));
      }),
    remove: (taskId) =>
      serialized(async () => {
        assertLoaded(loaded);
        const previous = new Map(current);
        if (!current.delete(taskId)) return false;
        await write().catch((error: unknown) => restore(previous, error));
        return true;
      }),
    entries: () => [...current.values()],
  };
}

function assertLoaded(loaded: boolean): void {
  // Writing before loading would replace a journal nobody has read: its tasks would be forgotten.
  if (!loaded) throw new Error("call journal.load() before recording or removing entries");
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** Makes a rename durable. Some platforms cannot open a directory for fsync; they need not. */
async function syncDirectory(dir: string): Promise<void> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(dir, "r");
    await handle.sync();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== "EISDIR" && code !== "EPERM" && code !== "EINVAL" && code !== "EBADF") throw error;
  } finally {
    await handle?.close();
  }
}
