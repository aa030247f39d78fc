/**
 * The unified-diff hunks GitHub returns as a pull request file's `patch` (starting at `@@`, no
 * `---`/`+++` headers), split into lines the merge rules can look at.
 */

export type DiffLineKind = "add" | "remove" | "context";

export interface DiffLine {
  kind: DiffLineKind;
  /** The line without its `+`, `-` or ` ` prefix. */
  text: string;
  /** Line number in the new file (added and context lines), when the hunk header was readable. */
  newLine?: number | undefined;
}

export interface Hunk {
  oldStart: number;
  oldCount: number;
  newStart: number;
  newCount: number;
  lines: DiffLine[];
}

const HEADER = /^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@/;

/**
 * Parses a patch into hunks. Lines before the first header, `\ No newline at end of file` markers
 * and anything that is not a diff line are skipped; an unreadable header still yields a hunk, with
 * zero ranges and no line numbers, so no added line is ever lost to a malformed patch.
 */
export function parsePatch(patch: string): Hunk[] {
  const hunks: Hunk[] = [];
  let current: Hunk | undefined;
  let next: number | undefined;
  for (const raw of patch.split("\n")) {
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    if (line.startsWith("@@")) {
      const header = HEADER.exec(line);
      current = header
        ? {
            oldStart: Number(header[1]),
            oldCount: header[2] === undefined ? 1 : Number(header[2]),
            newStart: Number(header[3]),
            newCount: header[4] === undefined ? 1 : Number(header[4]),
            lines: [],
          }
        : { oldStart: 0, oldCount: 0, newStart: 0, newCount: 0, lines: [] };
      next = header ? current.newStart : undefined;
      hunks.push(current);
      continue;
    }
    const prefix = line[0];
    if (prefix !== "+" && prefix !== "-" && prefix !== " ") continue;
    if (!current) {
      // A patch without a header: keep the lines, without numbers.
      current = { oldStart: 0, oldCount: 0, newStart: 0, newCount: 0, lines: [] };
      hunks.push(current);
    }
    const kind: DiffLineKind = prefix === "+" ? "add" : prefix === "-" ? "remove" : "context";
    const text = line.slice(1);
    if (kind === "remove") {
      current.lines.push({ kind, text });
    } else {
      current.lines.push({ kind, text, newLine: next });
      if (next !== undefined) next++;
    }
  }
  return hunks;
}
