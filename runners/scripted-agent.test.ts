import { mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "../test/helpers/wait-for.ts";
import {
  findIssueTitle,
  findScriptBlock,
  parseScript,
  parseUsageLine,
  SLEEPER_PID_PREFIX,
} from "./scripted-agent.ts";
import { type AgentHandle, isProcessAlive, type RunAgentOptions, runAgent } from "./supervisor.ts";

const BIN = join(import.meta.dirname, "scripted-agent-bin.js");
const FENCE = "```";

let base: string;
const handles: AgentHandle[] = [];

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), "conveyor-scripted-agent-"));
});
afterAll(async () => {
  for (const handle of handles) handle.cancel();
  await Promise.all(handles.map((h) => h.done));
  await rm(base, { recursive: true, force: true });
});

/** Runs the bin in a fresh workspace with `prompt` in the prompt file. */
async function runScripted(
  prompt: string,
  options: Partial<RunAgentOptions> & { setup?: (dir: string) => Promise<void> } = {},
) {
  const root = await mkdtemp(join(base, "task-"));
  const dir = join(root, "workspace");
  await mkdir(dir);
  await options.setup?.(dir);
  const promptFile = join(root, "prompt.md");
  await writeFile(promptFile, prompt);
  const handle = runAgent({
    argv: [BIN],
    cwd: dir,
    env: {
      PATH: process.env.PATH,
      CONVEYOR_PROMPT_FILE: promptFile,
      CONVEYOR_ISSUE_NUMBER: "42",
    },
    killGraceMs: 1000,
    wallClockMs: 20_000,
    ...options,
  });
  handles.push(handle);
  return { dir, root, handle };
}

const issue = (script: string) =>
  `# Add a greeting\n\nIssue #42 in o/r\n\nPlease do this:\n\n${FENCE}conveyor-script\n${script}\n${FENCE}\n`;

describe("the scripted agent", () => {
  it("applies the edits of the script block and reports usage", async () => {
    const { dir, handle } = await runScripted(
      issue(
        [
          "# set up the files",
          "write docs/greeting.txt",
          "<<<",
          "hello",
          "  indented world",
          ">>>",
          "append README.md",
          "<<<",
          "more",
          ">>>",
          "delete old.txt",
          "write scripts/run.sh",
          "<<<",
          "#!/bin/sh",
          ">>>",
          "chmod +x scripts/run.sh",
          'write "dir with space/file.txt"',
          "<<<",
          ">>>",
          'print "some output"',
          "report-usage 1234 0.05",
        ].join("\n"),
      ),
      {
        // The prompt on stdin is ignored: only the prompt file counts.
        stdin: issue("fail 9"),
        setup: async (d) => {
          await writeFile(join(d, "README.md"), "# Readme\n");
          await writeFile(join(d, "old.txt"), "old\n");
        },
      },
    );
    const result = await handle.done;
    expect(result).toMatchObject({ reason: "exited", exitCode: 0 });
    expect(await readFile(join(dir, "docs/greeting.txt"), "utf8")).toBe(
      "hello\n  indented world\n",
    );
    expect(await readFile(join(dir, "README.md"), "utf8")).toBe("# Readme\nmore\n");
    await expect(stat(join(dir, "old.txt"))).rejects.toThrow(/ENOENT/);
    expect((await stat(join(dir, "scripts/run.sh"))).mode & 0o111).toBe(0o111);
    expect(await readFile(join(dir, "dir with space/file.txt"), "utf8")).toBe("");
    expect(result.output).toContain("some output\n");
    expect(parseUsageLine(result.outputTail)).toEqual({ tokens: 1234, cost_usd: 0.05 });
  });

  it("without a script block appends a note naming the issue", async () => {
    const { dir, handle } = await runScripted("# Make the logo bigger\n\nIt is too small.\n");
    const result = await handle.done;
    expect(result).toMatchObject({ reason: "exited", exitCode: 0 });
    expect(await readFile(join(dir, "CONVEYOR_NOTES.md"), "utf8")).toBe(
      "- Worked on issue #42: Make the logo bigger\n",
    );
  });

  it("fails on request with the given code and message, keeping earlier edits", async () => {
    const { dir, handle } = await runScripted(
      issue('write a.txt\n<<<\nA\n>>>\nfail 3 "simulated failure"\nwrite b.txt\n<<<\nB\n>>>'),
    );
    const result = await handle.done;
    expect(result).toMatchObject({ reason: "exited", exitCode: 3 });
    expect(result.outputTail).toContain("simulated failure");
    expect(await readFile(join(dir, "a.txt"), "utf8")).toBe("A\n");
    await expect(stat(join(dir, "b.txt"))).rejects.toThrow(/ENOENT/);
  });

  it("hangs on request until the idle timeout kills it", async () => {
    const { handle } = await runScripted(issue('print "working"\nhang'), { idleMs: 2000 });
    const result = await handle.done;
    expect(result.reason).toBe("timeout_idle");
    expect(result.output).toContain("working\nhanging\n");
  });

  it("spawn-sleeper: cancel takes the agent and its sleeping grandchild within 2 s", async () => {
    const lines: string[] = [];
    const { handle } = await runScripted(issue("spawn-sleeper"), {
      onOutput: (line) => lines.push(line),
    });
    const sleeper = await waitFor(() => {
      const line = lines.find((l) => l.startsWith(SLEEPER_PID_PREFIX));
      return line ? Number(line.slice(SLEEPER_PID_PREFIX.length)) : undefined;
    });
    expect(isProcessAlive(sleeper)).toBe(true);
    handle.cancel();
    await waitFor(() => !isProcessAlive(sleeper) && !isProcessAlive(handle.pid!), {
      timeoutMs: 2000,
      message: "agent and sleeper gone",
    });
    expect((await handle.done).reason).toBe("cancelled");
  });

  it.each([
    ["a parent segment", "write ../escape.txt\n<<<\nx\n>>>"],
    ["an absolute path", "write /tmp/conveyor-escape.txt\n<<<\nx\n>>>"],
    ["the .git directory", "delete .git/config"],
    ["a .GIT directory", "write sub/.GIT/hooks/pre-commit\n<<<\nx\n>>>"],
  ])("refuses %s before doing anything", async (_name, step) => {
    const { dir, root, handle } = await runScripted(issue(`write first.txt\n<<<\n1\n>>>\n${step}`));
    const result = await handle.done;
    expect(result).toMatchObject({ reason: "exited", exitCode: 2 });
    await expect(stat(join(dir, "first.txt"))).rejects.toThrow(/ENOENT/);
    await expect(stat(join(root, "escape.txt"))).rejects.toThrow(/ENOENT/);
  });

  it("refuses to write through a symlink that leads out of the workspace", async () => {
    const outside = await mkdtemp(join(base, "outside-"));
    const { handle } = await runScripted(issue("write out/planted.txt\n<<<\nx\n>>>"), {
      setup: (dir) => symlink(outside, join(dir, "out")),
    });
    const result = await handle.done;
    expect(result).toMatchObject({ reason: "exited", exitCode: 2 });
    expect(result.outputTail).toMatch(/refusing to follow the symlink out/);
    await expect(stat(join(outside, "planted.txt"))).rejects.toThrow(/ENOENT/);
  });

  it("exits 2 without CONVEYOR_PROMPT_FILE", async () => {
    const handle = runAgent({ argv: [BIN], cwd: base, env: { PATH: process.env.PATH } });
    handles.push(handle);
    const result = await handle.done;
    expect(result).toMatchObject({ exitCode: 2 });
    expect(result.output).toContain("CONVEYOR_PROMPT_FILE is not set");
  });
});

describe("findScriptBlock", () => {
  it.each([
    ["a backtick fence", `intro\n${FENCE}conveyor-script\nprint "a"\n${FENCE}\nafter`, 'print "a"'],
    ["a tilde fence", "~~~ conveyor-script\nhang\n~~~", "hang"],
    ["a longer fence around a shorter one", "````conveyor-script\nx\n```\ny\n````", "x\n```\ny"],
    [
      "the first of two blocks",
      `${FENCE}conveyor-script\none\n${FENCE}\n${FENCE}conveyor-script\ntwo\n${FENCE}`,
      "one",
    ],
    ["an unclosed block", `${FENCE}conveyor-script\nhang`, "hang"],
    ["another language", `${FENCE}sh\nrm -rf /\n${FENCE}`, undefined],
    ["an inline mention", "use `conveyor-script` blocks", undefined],
  ])("handles %s", (_name, prompt, expected) => {
    expect(findScriptBlock(prompt)).toBe(expected);
  });
});

describe("parseScript", () => {
  it("parses every instruction", () => {
    const parsed = parseScript(
      [
        "write a/b.txt",
        "<<<",
        "x",
        ">>>",
        'append "c d.txt"',
        "<<<",
        ">>>",
        "delete old.txt",
        "chmod +x run.sh",
        "chmod -x run.sh",
        'fail 3 "simulated failure"',
        "fail 4",
        'print "some \\"quoted\\" output"',
        "sleep 10",
        "hang",
        "spawn-sleeper",
        "report-usage 1234 0.05",
      ].join("\n"),
    );
    expect(parsed).toEqual({
      ok: true,
      steps: [
        { op: "write", path: "a/b.txt", content: "x\n" },
        { op: "append", path: "c d.txt", content: "" },
        { op: "delete", path: "old.txt" },
        { op: "chmod", path: "run.sh", executable: true },
        { op: "chmod", path: "run.sh", executable: false },
        { op: "fail", code: 3, message: "simulated failure" },
        { op: "fail", code: 4, message: "scripted failure" },
        { op: "print", text: 'some "quoted" output' },
        { op: "sleep", ms: 10 },
        { op: "hang" },
        { op: "spawn-sleeper" },
        { op: "report-usage", tokens: 1234, costUsd: 0.05 },
      ],
    });
  });

  it.each([
    ["a parent segment", "delete a/../../x", /\.\. segment/],
    ["an absolute path", "delete /etc/passwd", /absolute/],
    ["a Windows drive", "delete C:/x", /absolute/],
    ["a backslash", "delete a\\b", /backslash/],
    ["the .git directory", "chmod +x .git/hooks/post-checkout", /inside \.git/],
    ["a shell command", "rm -rf /", /unknown instruction "rm"/],
    ["a write without content", "write a.txt", /<<</],
    ["an unclosed content", "write a.txt\n<<<\nx", />>>/],
    ["an exit code 0", "fail 0", /CODE 1-255/],
    ["an exit code 256", "fail 256", /CODE 1-255/],
    ["an unbalanced quote", 'print "oops', /unbalanced/],
    ["a negative usage", "report-usage -1 0", /report-usage/],
    ["chmod 777", "chmod 777 a", /chmod \+x/],
  ])("refuses %s", (_name, script, error) => {
    const parsed = parseScript(script);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.error).toMatch(error);
  });
});

describe("parseUsageLine", () => {
  it.each([
    ['{"conveyor_usage":{"tokens":1234,"cost_usd":0.05}}', { tokens: 1234, cost_usd: 0.05 }],
    ['text\n{"conveyor_usage":{"tokens":1}}\nmore text\n', { tokens: 1 }],
    [
      '{"conveyor_usage":{"tokens":1,"cost_usd":1}}\n{"conveyor_usage":{"tokens":2,"cost_usd":2}}',
      { tokens: 2, cost_usd: 2 },
    ],
    ['{"conveyor_usage":{"tokens":2}}\n{"conveyor_usage":{"tokens":-5}}', { tokens: 2 }],
    ['{"conveyor_usage":{"tokens":1.5}}', undefined],
    ['{"conveyor_usage": broken', undefined],
    ['echo {"conveyor_usage":{"tokens":1}}', undefined],
    ["no usage here", undefined],
    ["", undefined],
  ])("reads %j", (tail, expected) => {
    expect(parseUsageLine(tail)).toEqual(expected);
  });
});

describe("findIssueTitle", () => {
  it.each([
    ["# Fix the build\n\nbody", "Fix the build"],
    ["intro\n## Second level\n", "Second level"],
    ["Title: From a line\n", "From a line"],
    ["no title at all", undefined],
  ])("finds the title in %j", (prompt, expected) => {
    expect(findIssueTitle(prompt)).toBe(expected);
  });
});
