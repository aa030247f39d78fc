import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createGitStore, type GitIdentity, type GitStore } from "./git-store.ts";

const who: GitIdentity = {
  name: "Sim Tester",
  email: "tester@example.com",
  date: "2024-01-02T03:04:05Z",
};
const repo = "acme/widgets";

describe("createGitStore", () => {
  let dir: string;
  let store: GitStore;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "git-store-"));
    store = createGitStore(dir);
    await store.init(repo, "main");
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("builds nested trees on a base tree, deletes with sha null and records identities", async () => {
    const first = await store.commitFiles(repo, {
      branch: "main",
      files: { "README.md": "hello\n", "src/a.ts": "a\n", "src/deep/b.ts": "b\n" },
      message: "initial",
      author: who,
    });
    const base = (await store.readCommit(repo, first))!;
    expect(base.author).toEqual(who);
    expect(base.message).toBe("initial");
    const tree = await store.createTree(repo, base.tree, [
      { path: "src/deep/b.ts", mode: "100644", type: "blob", sha: null },
      { path: "src/new/c.ts", mode: "100755", type: "blob", content: "c\n" },
    ]);
    const { entries } = (await store.readTree(repo, tree, true))!;
    expect(entries.map((e) => `${e.mode} ${e.path}`)).toEqual([
      "100644 README.md",
      "040000 src",
      "100644 src/a.ts",
      "040000 src/new",
      "100755 src/new/c.ts",
    ]);
    const second = await store.createCommit(repo, {
      tree,
      parents: [first],
      message: "second",
      author: who,
      committer: who,
    });
    expect(await store.updateRef(repo, "refs/heads/main", second, first)).toBe(true);
    expect(await store.updateRef(repo, "refs/heads/main", second, first)).toBe(false);
    expect(await store.resolveCommit(repo, "main")).toBe(second);
    const diff = await store.diff(repo, first, second);
    expect(diff.map((d) => [d.filename, d.status, d.additions, d.deletions])).toEqual([
      ["src/deep/b.ts", "removed", 0, 1],
      ["src/new/c.ts", "added", 1, 0],
    ]);
    expect(diff[1]!.patch).toBe("@@ -0,0 +1 @@\n+c");
    const file = await store.readFile(repo, second, "src/new/c.ts");
    expect(file?.content?.toString()).toBe("c\n");
    expect(await store.readFile(repo, second, "missing.txt")).toBeUndefined();
  });

  it("merges cleanly, detects conflicts and rebases", async () => {
    const main = (await store.resolveCommit(repo, "main"))!;
    await store.updateRef(repo, "refs/heads/feature", main);
    await store.commitFiles(repo, {
      branch: "feature",
      files: { "f.txt": "feature\n" },
      message: "feat",
      author: who,
    });
    await store.commitFiles(repo, {
      branch: "main",
      files: { "m.txt": "main\n" },
      message: "main",
      author: who,
    });
    const clean = await store.mergeTree(repo, "refs/heads/main", "refs/heads/feature");
    expect(clean.clean).toBe(true);
    const rebased = await store.rebase(
      repo,
      (await store.resolveCommit(repo, "main"))!,
      (await store.resolveCommit(repo, "feature"))!,
      who,
    );
    expect(rebased).toHaveLength(1);
    const files = (await store.readTree(repo, rebased![0]!, true))!.entries.map((e) => e.path);
    expect(files).toContain("f.txt");
    expect(files).toContain("m.txt");

    await store.commitFiles(repo, {
      branch: "feature",
      files: { "README.md": "feature side\n" },
      message: "x",
      author: who,
    });
    await store.commitFiles(repo, {
      branch: "main",
      files: { "README.md": "main side\n" },
      message: "y",
      author: who,
    });
    const conflict = await store.mergeTree(repo, "refs/heads/main", "refs/heads/feature");
    expect(conflict.clean).toBe(false);
    const mainTip = (await store.resolveCommit(repo, "main"))!;
    const feature = (await store.resolveCommit(repo, "feature"))!;
    expect(await store.rebase(repo, mainTip, feature, who)).toBeUndefined();
  });
});
