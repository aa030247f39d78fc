import { chmod, mkdir, mkdtemp, readFile, rm, symlink, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChangeSet } from "../src/protocol/messages.ts";
import { type CollectedChangeSet, collectChangeSet } from "./change-set.ts";
import { gitEnvironment, runGit } from "./workspace.ts";

const IDENTITY = {
  GIT_AUTHOR_NAME: "Test Author",
  GIT_AUTHOR_EMAIL: "author@example.com",
  GIT_COMMITTER_NAME: "Test Committer",
  GIT_COMMITTER_EMAIL: "committer@example.com",
};
const git = (cwd: string, ...args: string[]) =>
  runGit(args, { cwd, env: gitEnvironment(process.env, IDENTITY) }).then((out) =>
    out.toString("utf8"),
  );

let base: string;

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), "conveyor-change-set-"));
});
afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

/** A repository with one commit of a few files, returning its directory and the commit. */
async function baseRepo(): Promise<{ dir: string; sha: string }> {
  const dir = await mkdtemp(join(base, "repo-"));
  await git(dir, "init", "--quiet", "--initial-branch=main");
  await writeFile(join(dir, "keep.txt"), "unchanged\n");
  await writeFile(join(dir, "modify.txt"), "a\nb\nc\n");
  await writeFile(join(dir, "delete.txt"), "gone soon\n");
  await writeFile(join(dir, "script.sh"), "#!/bin/sh\necho hi\n");
  await writeFile(join(dir, ".gitignore"), "*.log\n");
  await writeFile(join(dir, "force.log"), "tracked although ignored\n");
  await git(dir, "add", "--all");
  await git(dir, "add", "--force", "force.log");
  await git(dir, "commit", "--quiet", "-m", "base");
  const sha = (await git(dir, "rev-parse", "HEAD")).trim();
  return { dir, sha };
}

const SPACED = "dir with space/a b\nc.txt";
const UNICODE = "ünï/файл 🚀.txt";

/** Every kind of change an agent can leave behind. */
async function makeChanges(dir: string): Promise<void> {
  await writeFile(join(dir, "modify.txt"), "a\nB\nc\nd\n");
  await unlink(join(dir, "delete.txt"));
  await chmod(join(dir, "script.sh"), 0o755);
  await symlink("keep.txt", join(dir, "link"));
  await writeFile(join(dir, "data.bin"), Buffer.from([0, 1, 2, 255, 0, 10]));
  await writeFile(join(dir, "latin1.txt"), Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a]));
  await mkdir(join(dir, dirname(SPACED)), { recursive: true });
  await writeFile(join(dir, SPACED), "spaced\n");
  await mkdir(join(dir, dirname(UNICODE)), { recursive: true });
  await writeFile(join(dir, UNICODE), "unicode\n");
  await writeFile(join(dir, "debug.log"), "ignored, untracked\n");
  await writeFile(join(dir, "force.log"), "tracked and changed\n");
  await writeFile(join(dir, "empty.txt"), "");
  // A commit the agent made on the branch counts as a change against base_sha too.
  await writeFile(join(dir, "committed.txt"), "committed by the agent\n");
  await git(dir, "add", "committed.txt");
  await git(dir, "commit", "--quiet", "-m", "agent commit");
}

describe("collectChangeSet", () => {
  it("collects adds, modifies, deletes, modes, symlinks, binary and odd paths", async () => {
    const { dir, sha } = await baseRepo();
    await makeChanges(dir);
    const nested = join(dir, "nested");
    await mkdir(nested);
    await git(nested, "init", "--quiet");
    await writeFile(join(nested, "inner.txt"), "inner\n");
    await git(nested, "add", "--all");
    await git(nested, "commit", "--quiet", "-m", "inner");
    const statusBefore = await git(dir, "status", "--porcelain=v2", "-z");

    const collected = (await collectChangeSet(dir, sha, "Fix things (#1)")) as CollectedChangeSet;
    expect(collected).toBeDefined();
    expect(ChangeSet.safeParse(collected.changeSet).success).toBe(true);
    expect(collected.changeSet.base_sha).toBe(sha);
    expect(collected.changeSet.message).toBe("Fix things (#1)");

    const byPath = Object.fromEntries(collected.changeSet.files.map((f) => [f.path, f]));
    expect(Object.keys(byPath).sort()).toEqual(
      [
        "committed.txt",
        "data.bin",
        "delete.txt",
        "empty.txt",
        "force.log",
        "latin1.txt",
        "link",
        "modify.txt",
        "script.sh",
        SPACED,
        UNICODE,
      ].sort(),
    );
    const text = { encoding: "utf8", mode: "100644" };
    expect(byPath["modify.txt"]).toEqual({
      ...text,
      path: "modify.txt",
      action: "modify",
      content: "a\nB\nc\nd\n",
    });
    expect(byPath["delete.txt"]).toEqual({
      ...text,
      path: "delete.txt",
      action: "delete",
      content: "",
    });
    expect(byPath["script.sh"]).toMatchObject({
      action: "modify",
      mode: "100755",
      encoding: "utf8",
      content: "#!/bin/sh\necho hi\n",
    });
    expect(byPath.link).toMatchObject({
      action: "add",
      mode: "120000",
      encoding: "utf8",
      content: "keep.txt",
    });
    expect(byPath["data.bin"]).toMatchObject({
      action: "add",
      encoding: "base64",
      content: Buffer.from([0, 1, 2, 255, 0, 10]).toString("base64"),
    });
    // Not valid UTF-8: base64 keeps the bytes exact.
    expect(byPath["latin1.txt"]).toMatchObject({
      encoding: "base64",
      content: Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a]).toString("base64"),
    });
    expect(byPath[SPACED]).toMatchObject({ action: "add", content: "spaced\n" });
    expect(byPath[UNICODE]).toMatchObject({ action: "add", content: "unicode\n" });
    expect(byPath["force.log"]).toMatchObject({
      action: "modify",
      content: "tracked and changed\n",
    });
    expect(byPath["empty.txt"]).toMatchObject({ action: "add", content: "" });
    expect(byPath["committed.txt"]).toMatchObject({ action: "add" });
    expect(byPath["debug.log"]).toBeUndefined();

    expect(collected.skipped).toEqual([
      { path: "nested", reason: expect.stringMatching(/160000/) },
    ]);
    expect(collected.stats).toEqual({
      files_changed: 11,
      // modify +2 -1, delete -1, spaced +1, unicode +1, force.log +1 -1, committed +1, latin1 +1,
      // link +1 (git counts a symlink's target as a line); data.bin is binary and counts nothing.
      lines_added: 8,
      lines_removed: 3,
    });
    // The workspace's own index is untouched.
    expect(await git(dir, "status", "--porcelain=v2", "-z")).toBe(statusBefore);
  });

  it("round-trips: applying the change set to base_sha reproduces the working tree", async () => {
    const { dir, sha } = await baseRepo();
    await makeChanges(dir);
    const collected = await collectChangeSet(dir, sha, "round trip");
    const copy = join(base, `copy-${Math.random().toString(36).slice(2)}`);
    await git(base, "clone", "--quiet", dir, copy);
    await git(copy, "checkout", "--quiet", "--detach", sha);
    for (const file of collected!.changeSet.files) {
      const target = join(copy, file.path);
      await rm(target, { force: true });
      if (file.action === "delete") continue;
      await mkdir(dirname(target), { recursive: true });
      const bytes = Buffer.from(file.content, file.encoding === "base64" ? "base64" : "utf8");
      if (file.mode === "120000") await symlink(bytes.toString("utf8"), target);
      else await writeFile(target, bytes, { mode: file.mode === "100755" ? 0o755 : 0o644 });
    }
    const tree = async (where: string) => {
      const env = gitEnvironment(process.env, { GIT_INDEX_FILE: join(where, ".git", "tmp-index") });
      await runGit(["read-tree", sha], { cwd: where, env });
      await runGit(["add", "--all"], { cwd: where, env });
      return (await runGit(["write-tree"], { cwd: where, env })).toString().trim();
    };
    expect(await tree(copy)).toBe(await tree(dir));
  });

  it("returns undefined when nothing changed, even with new ignored files", async () => {
    const { dir, sha } = await baseRepo();
    expect(await collectChangeSet(dir, sha, "nothing")).toBeUndefined();
    await writeFile(join(dir, "debug.log"), "ignored\n");
    await writeFile(join(dir, "keep.txt"), "unchanged\n");
    expect(await collectChangeSet(dir, sha, "nothing")).toBeUndefined();
  });

  it("ignores the runner host's own git ignore file", async () => {
    const { dir, sha } = await baseRepo();
    const home = await mkdtemp(join(base, "home-"));
    await mkdir(join(home, ".config", "git"), { recursive: true });
    await writeFile(join(home, ".config", "git", "ignore"), "*.txt\n");
    await writeFile(join(dir, "new.txt"), "new\n");
    const env = { ...process.env, HOME: home, XDG_CONFIG_HOME: join(home, ".config") };
    // Positive control: plain git on this host would hide the file.
    const status = await runGit(["status", "--porcelain"], {
      cwd: dir,
      env: { ...env, GIT_CONFIG_NOSYSTEM: "1" },
    });
    expect(status.toString()).not.toContain("new.txt");
    const collected = await collectChangeSet(dir, sha, "host ignores", { env });
    expect(collected?.changeSet.files.map((f) => f.path)).toEqual(["new.txt"]);
  });

  it("sees a change the agent committed and then reverted as no change", async () => {
    const { dir, sha } = await baseRepo();
    await writeFile(join(dir, "keep.txt"), "changed\n");
    await git(dir, "commit", "--quiet", "-am", "change");
    await writeFile(join(dir, "keep.txt"), "unchanged\n");
    expect(await collectChangeSet(dir, sha, "nothing")).toBeUndefined();
  });

  it("reports a type change (file to symlink) as a modify with the new mode", async () => {
    const { dir, sha } = await baseRepo();
    await unlink(join(dir, "keep.txt"));
    await symlink("modify.txt", join(dir, "keep.txt"));
    const collected = await collectChangeSet(dir, sha, "typechange");
    expect(collected?.changeSet.files).toEqual([
      {
        path: "keep.txt",
        action: "modify",
        mode: "120000",
        encoding: "utf8",
        content: "modify.txt",
      },
    ]);
  });

  it("fails with the message git gave for an unknown base sha", async () => {
    const { dir } = await baseRepo();
    await writeFile(join(dir, "keep.txt"), "changed\n");
    await expect(collectChangeSet(dir, "0".repeat(40), "x")).rejects.toThrow(/read-tree failed/);
  });

  it("refuses a message the protocol would reject", async () => {
    const { dir, sha } = await baseRepo();
    await writeFile(join(dir, "keep.txt"), "changed\n");
    await expect(collectChangeSet(dir, sha, "")).rejects.toThrow(/protocol schema/);
    expect(await readFile(join(dir, "keep.txt"), "utf8")).toBe("changed\n");
  });
});
