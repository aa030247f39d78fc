import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

/** Where `promtool` is: on PATH, or where Debian's `prometheus` package puts it. */
export function findPromtool(): string {
  for (const dir of (process.env.PATH ?? "").split(":").filter(Boolean)) {
    if (existsSync(`${dir}/promtool`)) return `${dir}/promtool`;
  }
  if (existsSync("/usr/bin/promtool")) return "/usr/bin/promtool";
  // Failing, not skipping: the check is part of what the metrics promise.
  throw new Error(
    "promtool not found: install the Debian package `prometheus` (apt-get install prometheus); .ci/run does",
  );
}

/** `promtool check metrics` on a scrape: its exit code and what it said (empty when clean). */
export function promtoolCheck(text: string): { status: number | null; output: string } {
  const result = spawnSync(findPromtool(), ["check", "metrics"], {
    input: text,
    encoding: "utf8",
    timeout: 30_000,
  });
  if (result.error) throw result.error;
  return { status: result.status, output: `${result.stdout}${result.stderr}`.trim() };
}

/** The value of the series `name` with exactly these labels in Prometheus text, or undefined. */
export function seriesValue(
  text: string,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const wanted = Object.entries(labels);
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const found = new Map<string, string>();
    for (const pair of (match[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      found.set(pair[1]!, pair[2]!);
    }
    if (found.size === wanted.length && wanted.every(([k, v]) => found.get(k) === v)) {
      return Number(match[3]);
    }
  }
  return undefined;
}
