import { spawn, spawnSync } from "node:child_process";
import {
  chmod,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gitEnvironment, prepareWorkspace, readRepoInstructions, runGit } from "./workspace.ts";

const TOKEN = "ghs_TestToken0123456789abcdefXYZ";
const BASIC = Buffer.from(`x-access-token:${TOKEN}`).toString("base64");
const IDENTITY = {
  GIT_AUTHOR_NAME: "Test Author",
  GIT_AUTHOR_EMAIL: "author@example.com",
  GIT_COMMITTER_NAME: "Test Committer",
  GIT_COMMITTER_EMAIL: "committer@example.com",
};

let base: string;
let bare: string;
let firstSha: string;
let secondSha: string;
let argvLog: string;
let envLog: string;
/** An environment whose `git` is a wrapper that records every invocation's argv and environment. */
let recordingEnv: NodeJS.ProcessEnv;

const git = (cwd: string, ...args: string[]) =>
  runGit(args, { cwd, env: gitEnvironment(process.env, IDENTITY) }).then((out) =>
    out.toString("utf8").trim(),
  );

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), "conveyor-workspace-"));
  const source = join(base, "source");
  await mkdir(source);
  await git(source, "init", "--quiet", "--initial-branch=main");
  await writeFile(join(source, "README.md"), "first\n");
  await git(source, "add", "--all");
  await git(source, "commit", "--quiet", "-m", "first");
  firstSha = await git(source, "rev-parse", "HEAD");
  await writeFile(join(source, "README.md"), "second\n");
  await writeFile(join(source, "later.txt"), "added later\n");
  await git(source, "add", "--all");
  await git(source, "commit", "--quiet", "-m", "second");
  secondSha = await git(source, "rev-parse", "HEAD");
  bare = join(base, "remote.git");
  await git(base, "clone", "--quiet", "--bare", source, bare);

  const realGit = spawnSync("sh", ["-c", "command -v git"], { encoding: "utf8" }).stdout.trim();
  const wrapperDir = join(base, "bin");
  await mkdir(wrapperDir);
  argvLog = join(base, "git-argv.log");
  envLog = join(base, "git-env.log");
  await writeFile(
    join(wrapperDir, "git"),
    `#!/bin/sh\nprintf '%s\\n' "$*" >> "${argvLog}"\nenv >> "${envLog}"\nexec "${realGit}" "$@"\n`,
  );
  await chmod(join(wrapperDir, "git"), 0o755);
  recordingEnv = { ...process.env, PATH: `${wrapperDir}:${process.env.PATH}` };
});

afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

async function allFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

/** Whether any file under `dir` contains the token or its Basic-auth form. */
async function filesMentioningToken(dir: string): Promise<string[]> {
  const hits: string[] = [];
  for (const file of await allFiles(dir)) {
    const bytes = await readFile(file);
    if (bytes.includes(TOKEN) || bytes.includes(BASIC)) hits.push(file);
  }
  return hits;
}

async function resetLogs(): Promise<void> {
  await writeFile(argvLog, "");
  await writeFile(envLog, "");
}

describe("prepareWorkspace over file://", () => {
  it("checks out base_sha on a new branch with only that commit, and no trace of the token", async () => {
    await resetLogs();
    const root = join(base, "work-file");
    const workspace = await prepareWorkspace({
      root,
      taskId: "task-1",
      cloneUrl: `file://${bare}`,
      baseSha: firstSha,
      branch: "conveyor/issue-1",
      token: TOKEN,
      env: recordingEnv,
    });
    const { dir } = workspace;
    expect(dir.startsWith(join(root, "task-1-"))).toBe(true);
    expect(await git(dir, "rev-parse", "HEAD")).toBe(firstSha);
    expect(await git(dir, "symbolic-ref", "--short", "HEAD")).toBe("conveyor/issue-1");
    expect(await readFile(join(dir, "README.md"), "utf8")).toBe("first\n");
    expect(await git(dir, "status", "--porcelain")).toBe("");
    // Shallow: the later commit was not fetched.
    expect(await git(dir, "rev-parse", "--is-shallow-repository")).toBe("true");
    await expect(git(dir, "cat-file", "-e", secondSha)).rejects.toThrow();

    const argv = await readFile(argvLog, "utf8");
    expect(argv).not.toContain(TOKEN);
    expect(argv).not.toContain(BASIC);
    expect(await filesMentioningToken(dir)).toEqual([]);
    expect(await readFile(join(dir, ".git", "config"), "utf8")).not.toMatch(/extraheader/i);
    // Positive control: the token did reach git, through its environment only.
    expect(await readFile(envLog, "utf8")).toContain(
      `GIT_CONFIG_VALUE_0=Authorization: Basic ${BASIC}`,
    );
    expect(argv.match(/^fetch /gm)).toHaveLength(1);
    expect(argv).toContain(`fetch --quiet --no-tags --depth=1 origin ${firstSha}`);

    await workspace.cleanup();
    await expect(stat(dir)).rejects.toThrow(/ENOENT/);
    await workspace.cleanup();
  });

  it("gives every call a fresh directory", async () => {
    const root = join(base, "work-fresh");
    const options = {
      root,
      taskId: "task-2",
      cloneUrl: `file://${bare}`,
      baseSha: secondSha,
      branch: "conveyor/issue-2",
      token: TOKEN,
    };
    const one = await prepareWorkspace(options);
    const two = await prepareWorkspace(options);
    expect(one.dir).not.toBe(two.dir);
    expect(await readFile(join(two.dir, "later.txt"), "utf8")).toBe("added later\n");
    await one.cleanup();
    await two.cleanup();
  });

  it.each([
    ["a branch that looks like a flag", { branch: "-x" }, /branch is not a valid/],
    ["a branch with ..", { branch: "a..b" }, /branch is not a valid/],
    ["a task id with a slash", { taskId: "../escape" }, /task id/],
    ["a short sha", { baseSha: "abc123" }, /full commit sha/],
    ["credentials in the URL", { cloneUrl: `https://x:${TOKEN}@example.com/r.git` }, /credentials/],
    ["an unknown commit", { baseSha: "0".repeat(40) }, /fetch|not in the repository/],
  ])("refuses %s and leaves nothing behind", async (_name, override, error) => {
    const root = join(base, `work-bad-${Math.random().toString(36).slice(2)}`);
    await mkdir(root);
    const attempt = prepareWorkspace({
      root,
      taskId: "task-3",
      cloneUrl: `file://${bare}`,
      baseSha: firstSha,
      branch: "conveyor/issue-3",
      token: TOKEN,
      ...override,
    });
    await expect(attempt).rejects.toThrow(error);
    await attempt.catch((e: Error) => {
      expect(`${e.message} ${String(e.cause)}`).not.toContain(TOKEN);
    });
    expect(await readdir(root)).toEqual([]);
  });
});

/** A smart-HTTP git server (git http-backend as CGI) that demands the Basic token. */
async function serveGit(projectRoot: string): Promise<{
  url: string;
  auth: (string | undefined)[];
  close: () => Promise<void>;
}> {
  const auth: (string | undefined)[] = [];
  const server: Server = createServer((req: IncomingMessage, res) => {
    auth.push(req.headers.authorization);
    if (req.headers.authorization !== `Basic ${BASIC}`) {
      res.writeHead(401, { "WWW-Authenticate": 'Basic realm="git"' });
      res.end();
      return;
    }
    const url = new URL(req.url ?? "/", "http://localhost");
    // No GIT_PROTOCOL is forwarded, so the backend speaks protocol v0 and refuses unadvertised shas.
    const child = spawn("git", ["http-backend"], {
      env: {
        PATH: process.env.PATH,
        GIT_CONFIG_NOSYSTEM: "1",
        GIT_CONFIG_GLOBAL: "/dev/null",
        GIT_PROJECT_ROOT: projectRoot,
        GIT_HTTP_EXPORT_ALL: "1",
        PATH_INFO: url.pathname,
        QUERY_STRING: url.search.slice(1),
        REQUEST_METHOD: req.method ?? "GET",
        CONTENT_TYPE: req.headers["content-type"] ?? "",
        HTTP_CONTENT_ENCODING: req.headers["content-encoding"] ?? "",
        REMOTE_ADDR: "127.0.0.1",
      },
    });
    req.pipe(child.stdin);
    const out: Buffer[] = [];
    child.stdout.on("data", (chunk: Buffer) => out.push(chunk));
    child.on("close", () => {
      const body = Buffer.concat(out);
      const split = body.indexOf("\r\n\r\n");
      const head = body.subarray(0, split).toString("latin1");
      const headers: Record<string, string> = {};
      let status = 200;
      for (const line of head.split("\r\n")) {
        const [name, ...rest] = line.split(":");
        const value = rest.join(":").trim();
        if (name?.toLowerCase() === "status") status = Number.parseInt(value, 10);
        else if (name) headers[name] = value;
      }
      res.writeHead(status, headers);
      res.end(body.subarray(split + 4));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    auth,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

describe("prepareWorkspace over HTTP", () => {
  it("sends the token as a header, falls back to a full fetch when the server refuses the sha", async () => {
    const server = await serveGit(base);
    try {
      await resetLogs();
      const workspace = await prepareWorkspace({
        root: join(base, "work-http"),
        taskId: "task-4",
        cloneUrl: `${server.url}/remote.git`,
        baseSha: firstSha,
        branch: "conveyor/issue-4",
        token: TOKEN,
        env: { ...recordingEnv, NO_PROXY: "*", no_proxy: "*" },
      });
      expect(await git(workspace.dir, "rev-parse", "HEAD")).toBe(firstSha);
      expect(await git(workspace.dir, "symbolic-ref", "--short", "HEAD")).toBe("conveyor/issue-4");
      expect(server.auth.length).toBeGreaterThan(0);
      expect(server.auth.every((a) => a === `Basic ${BASIC}`)).toBe(true);
      const argv = await readFile(argvLog, "utf8");
      expect(argv).not.toContain(TOKEN);
      expect(argv).not.toContain(BASIC);
      expect(await filesMentioningToken(workspace.dir)).toEqual([]);
      expect(argv.match(/^fetch /gm)).toHaveLength(2);
      await workspace.cleanup();
    } finally {
      await server.close();
    }
  });

  it("fails without leaking the token when the server refuses it", async () => {
    const server = await serveGit(base);
    const root = join(base, "work-http-denied");
    try {
      const attempt = prepareWorkspace({
        root,
        taskId: "task-5",
        cloneUrl: `${server.url}/remote.git`,
        baseSha: firstSha,
        branch: "conveyor/issue-5",
        token: "wrong-token",
        env: { ...process.env, NO_PROXY: "*", no_proxy: "*" },
      });
      const error = await attempt.then(
        () => undefined,
        (e: Error) => e,
      );
      expect(error).toBeInstanceOf(Error);
      expect(error?.message).not.toContain("wrong-token");
      expect(server.auth.length).toBeGreaterThan(0);
      expect(await readdir(root)).toEqual([]);
    } finally {
      await server.close();
    }
  });
});

describe("readRepoInstructions", () => {
  it("reads the instruction files that are regular files, bounded, and skips symlinks", async () => {
    const dir = await mkdtemp(join(base, "instructions-"));
    await writeFile(join(base, "host-secret.txt"), "do not read me\n");
    await writeFile(join(dir, "AGENTS.md"), "Use tabs.\n");
    await symlink(join(base, "host-secret.txt"), join(dir, "CLAUDE.md"));
    await mkdir(join(dir, ".github"));
    await writeFile(join(dir, ".github", "copilot-instructions.md"), `${"é".repeat(100)}\n`);

    const found = await readRepoInstructions(dir, { maxBytes: 51 });
    expect(found).toEqual([
      { path: "AGENTS.md", content: "Use tabs.\n", truncated: false },
      // 51 bytes would end inside a two-byte character: the partial character is dropped.
      { path: ".github/copilot-instructions.md", content: "é".repeat(25), truncated: true },
    ]);
  });

  it("skips a .github directory that is a symlink and returns nothing when no file exists", async () => {
    const dir = await mkdtemp(join(base, "instructions-"));
    const outside = await mkdtemp(join(base, "outside-"));
    await writeFile(join(outside, "copilot-instructions.md"), "outside\n");
    await symlink(outside, join(dir, ".github"));
    expect(await readRepoInstructions(dir)).toEqual([]);
  });
});
