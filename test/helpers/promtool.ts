import { spawnSync } from "node:child_process";
import { requirePrerequisite } from "./prerequisites.ts";

/** `promtool check metrics` on a scrape: its exit code and what it said (empty when clean). */
export function promtoolCheck(text: string): { status: number | null; output: string } {
  const result = spawnSync(requirePrerequisite("promtool"), ["check", "metrics"], {
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
