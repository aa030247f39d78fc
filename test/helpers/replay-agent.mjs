#!/usr/bin/env node
// A fake coding agent for the adapter tests: it replays recorded output of a real tool
// (runners/adapters/fixtures/) instead of calling a model. Installed on PATH under the tool's
// name (`claude`, `codex`, …) by a wrapper script, it reads its prompt (stdin, or the file after
// `--message-file` as aider does) and follows these lines in it:
//   replay: <fixture file>     which recording to print, line by line, on stdout
//   replay-exit: <n>           the exit status afterwards (default 0)
// It writes REPLAYED.md (naming the fixture and its argv) into its working directory first, so
// the run leaves a change that shows how it was started. REPLAY_DELAY_MS (environment) waits between lines, for heartbeats to see them.
import { readFileSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), "../../runners/adapters/fixtures");
const args = process.argv.slice(2);
const messageFile = args.indexOf("--message-file");
const prompt =
  messageFile >= 0 ? readFileSync(args[messageFile + 1], "utf8") : readFileSync(0, "utf8");
const fixture = /^replay: *(\S+)/m.exec(prompt)?.[1];
if (!fixture) {
  process.stderr.write("replay-agent: the prompt names no `replay: <fixture>`\n");
  process.exit(64);
}
const exit = Number(/^replay-exit: *(\d+)/m.exec(prompt)?.[1] ?? 0);
const delay = Number(process.env.REPLAY_DELAY_MS ?? 0);
writeFileSync("REPLAYED.md", `replayed ${fixture}\nargv: ${JSON.stringify(args)}\n`);
for (const line of readFileSync(join(FIXTURES, basename(fixture)), "utf8").split("\n")) {
  if (!line) continue;
  process.stdout.write(`${line}\n`);
  if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
}
process.exitCode = exit;
