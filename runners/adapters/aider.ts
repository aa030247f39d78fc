import { type AgentAdapter, add, count, defined, modelArgs } from "./agent-adapter.ts";

/**
 * aider, scripted (https://aider.chat/docs/scripting.html): `--message-file` runs one message and
 * exits; `--yes-always` answers its questions; `--no-auto-commits` / `--no-dirty-commits` leave
 * the changes uncommitted for the runner to collect. Each repository instructions file is given
 * read-only with `--read`. aider has no JSON output: after each model reply it prints
 *
 *     Tokens: 2.3k sent, 245 received. Cost: $0.01 message, $0.05 session.
 *
 * (older releases print `12,345 sent`; with prompt caching `… sent, 1.2k cache write, 3.4k cache
 * hit, …` or `… cached, …`). `sent` is counted as input, the cache figures as cache reads and
 * writes, and the last `session` cost as the run's cost. Lines `Applied edit to <file>` are
 * progress.
 */
export const aiderAdapter: AgentAdapter = {
  name: "aider",
  program: "aider",
  promptOnStdin: false,
  argv: ({ model, promptFile, instructions }) => [
    "aider",
    "--message-file",
    promptFile,
    "--yes-always",
    "--no-auto-commits",
    "--no-dirty-commits",
    "--no-pretty",
    "--no-stream",
    "--no-check-update",
    ...modelArgs("--model", model),
    ...instructions.flatMap((path) => ["--read", path]),
  ],
  createParser() {
    let sent: number | undefined;
    let received: number | undefined;
    let cacheRead: number | undefined;
    let cacheWrite: number | undefined;
    let cost: number | undefined;
    let replies = 0;
    return {
      line(line) {
        const edit = /^Applied edit to (.+)$/.exec(line);
        if (edit) return `editing ${edit[1]!.slice(0, 200)}`;
        const report =
          /^Tokens: (.+?) sent, (?:(.+?) cache write, )?(?:(.+?) (?:cache hit|cached), )?(.+?) received\.(?: Cost: \$([\d.,]+) message, \$([\d.,]+) session\.)?/.exec(
            line,
          );
        if (!report) return undefined;
        replies++;
        sent = add(sent, tokenCount(report[1]));
        cacheWrite = add(cacheWrite, tokenCount(report[2]));
        cacheRead = add(cacheRead, tokenCount(report[3]));
        received = add(received, tokenCount(report[4]));
        const session = report[6] === undefined ? undefined : Number(report[6].replace(/,/g, ""));
        if (session !== undefined && Number.isFinite(session) && session >= 0) cost = session;
        return undefined;
      },
      usage() {
        // Each usage event adds to the running totals the final report gives.
        return this.finish("").usage;
      },
      finish() {
        return {
          usage: defined({
            tokens: add(sent, received),
            input_tokens: sent,
            output_tokens: received,
            cache_read_tokens: cacheRead,
            cache_write_tokens: cacheWrite,
            cost_usd: cost,
            turns: replies || undefined,
          }),
        };
      },
    };
  },
};

/** `245`, `12,345`, `2.3k`, `1.2M` → a whole number of tokens; undefined for anything else. */
export function tokenCount(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const match = /^([\d,]+(?:\.\d+)?)([kKmM]?)$/.exec(value.trim());
  if (!match) return undefined;
  const number = Number(match[1]!.replace(/,/g, ""));
  const scale = { "": 1, k: 1e3, K: 1e3, m: 1e6, M: 1e6 }[match[2]!] ?? 1;
  return count(number * scale);
}
