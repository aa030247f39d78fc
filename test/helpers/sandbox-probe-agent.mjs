#!/usr/bin/env node
// A hostile agent for test/runner-sandbox.test.ts. Its issue carries a ```conveyor-probe block:
//
//   {"role": "sibling", "marker": "…"}   writes the marker into its workspace, then waits to be
//                                         killed (a task another agent must not see);
//   {"role": "probe", "paths": {…}}       tries everything an agent could do to get at the runner's
//                                         token and at its sibling, and writes what it got to
//                                         probe-report.json in its workspace (uploaded as the
//                                         task's change set).
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

const prompt = readFileSync(0, "utf8");
const block = /```conveyor-probe\n([\s\S]*?)\n```/.exec(prompt);
if (!block) {
  process.stderr.write("no conveyor-probe block in the prompt\n");
  process.exit(2);
}
const order = JSON.parse(block[1]);
const workspace = process.env.CONVEYOR_WORKDIR ?? process.cwd();

if (order.role === "sibling") {
  writeFileSync(join(workspace, "sibling-secret.txt"), `${order.marker}\n`);
  process.stdout.write("sibling ready\n");
  setInterval(() => {}, 60_000);
} else {
  const TOKEN = /cvr_[A-Za-z0-9_-]{16,}/g;
  const RUNNER = /conveyor-runner(?:\.js)? start/;
  const tokens = [];
  /** Runs `read`; keeps its text (cut at 4 KiB) and every runner token it holds. */
  const attempt = (where, read) => {
    try {
      const text = String(read());
      for (const match of text.matchAll(TOKEN)) tokens.push({ where, token: match[0] });
      return { ok: true, text: text.slice(0, 4096) };
    } catch (error) {
      return { ok: false, error: error.code ?? error.message };
    }
  };
  const read = (path) => readFileSync(path, "latin1");

  const report = {
    ppid: process.ppid,
    parentEnviron: attempt("parent environ", () => read(`/proc/${process.ppid}/environ`)),
    parentCmdline: attempt("parent cmdline", () =>
      read(`/proc/${process.ppid}/cmdline`).split("\0").join(" "),
    ),
    // Every process this agent can see: the runner's command line names it.
    runnerProcesses: [],
    files: {},
    siblings: [],
    writeOutside: attempt("write outside", () => {
      writeFileSync(join(dirname(order.paths.config), "agent-was-here.txt"), "x");
      return "written";
    }),
    tokens,
  };
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = attempt(`/proc/${entry}/cmdline`, () =>
      read(`/proc/${entry}/cmdline`).split("\0").join(" "),
    );
    attempt(`/proc/${entry}/environ`, () => read(`/proc/${entry}/environ`));
    if (cmdline.ok && RUNNER.test(cmdline.text)) {
      report.runnerProcesses.push({ pid: Number(entry), cmdline: cmdline.text });
    }
  }
  for (const [name, path] of Object.entries(order.paths)) {
    report.files[name] = attempt(name, () => read(path));
  }
  const workDir = dirname(workspace);
  const listing = attempt("work dir", () => readdirSync(workDir).join("\n"));
  report.workDirListing = listing;
  for (const entry of listing.ok ? listing.text.split("\n").filter(Boolean) : []) {
    const dir = join(workDir, entry);
    if (dir === workspace) continue;
    report.siblings.push({
      entry,
      secret: attempt("sibling secret", () => read(join(dir, "sibling-secret.txt"))),
      write: attempt("sibling write", () => {
        writeFileSync(join(dir, "probe-was-here.txt"), "x");
        return "written";
      }),
    });
  }
  writeFileSync(join(workspace, "probe-report.json"), `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`probe done: ${tokens.length} token sightings\n`);
}
