import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import ts from "typescript";
import type { Floor } from "./floors.ts";

/** One file's imports: relative ones as repository paths, the rest as package names. */
export interface ImportGraph {
  files: Map<string, { internal: string[]; packages: string[] }>;
}

const SOURCE = /\.(ts|mts|js|mjs)$/;
const SKIPPED = /(\.test\.ts|\.d\.ts)$/;

/**
 * Reads every source file below `dirs` (relative to `root`; tests and browser assets left out)
 * and lists what each imports, using TypeScript's own pre-processor: static imports, `import type`,
 * re-exports and `import()` calls with a literal name.
 */
export function readImportGraph(root: string, dirs: readonly string[]): ImportGraph {
  const files = new Map<string, { internal: string[]; packages: string[] }>();
  const walk = (dir: string) => {
    for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory()) {
        if (entry.name !== "node_modules" && entry.name !== "assets") walk(path);
      } else if (SOURCE.test(entry.name) && !SKIPPED.test(entry.name)) {
        files.set(path, readImports(root, path));
      }
    }
  };
  for (const dir of dirs) walk(dir);
  return { files };
}

function readImports(root: string, path: string): { internal: string[]; packages: string[] } {
  const info = ts.preProcessFile(readFileSync(join(root, path), "utf8"), true, true);
  const internal: string[] = [];
  const packages: string[] = [];
  for (const { fileName } of info.importedFiles) {
    if (fileName.startsWith(".")) {
      const target = relative(root, resolve(root, dirname(path), fileName));
      internal.push(target.split(sep).join("/"));
    } else {
      const parts = fileName.split("/");
      packages.push(fileName.startsWith("@") ? parts.slice(0, 2).join("/") : (parts[0] ?? ""));
    }
  }
  return { internal, packages };
}

export interface Violation {
  kind: "upward" | "sideways" | "cycle" | "no floor" | "package";
  message: string;
}

/** The room (a folder or one file) and floor a path belongs to: the longest room that holds it. */
function locate(floors: readonly Floor[], path: string) {
  let best: { room: string; floor: number } | undefined;
  floors.forEach((floor, index) => {
    for (const room of floor.rooms) {
      const holds = path === room || path.startsWith(`${room}/`);
      if (holds && (!best || room.length > best.room.length)) best = { room, floor: index };
    }
  });
  return best;
}

/**
 * Every import that breaks the floors: one that reaches a room on a higher floor (`upward`) or
 * another room on the same floor (`sideways`), a file or import target in no room, a package a
 * floor may not use, and every cycle of files (each listed once, as the files it runs through).
 */
export function checkLayering(graph: ImportGraph, floors: readonly Floor[]): Violation[] {
  const violations: Violation[] = [];
  for (const [file, { internal, packages }] of graph.files) {
    const from = locate(floors, file);
    if (!from) {
      violations.push({ kind: "no floor", message: `${file} is in no room of any floor` });
      continue;
    }
    const floor = floors[from.floor] as Floor;
    for (const target of internal) {
      const to = locate(floors, target);
      if (!to) {
        violations.push({ kind: "no floor", message: `${file} imports ${target}, in no room` });
      } else if (to.room !== from.room && to.floor >= from.floor) {
        const kind = to.floor > from.floor ? "upward" : "sideways";
        const where = `${floor.name} → ${floors[to.floor]?.name}`;
        violations.push({ kind, message: `${file} imports ${target} (${kind}: ${where})` });
      }
    }
    for (const name of floor.packages ? packages : []) {
      if (!floor.packages?.includes(name)) {
        violations.push({ kind: "package", message: `${file} imports ${name} (${floor.name})` });
      }
    }
  }
  for (const cycle of findCycles(graph)) {
    violations.push({
      kind: "cycle",
      message: `import cycle: ${[...cycle, cycle[0]].join(" → ")}`,
    });
  }
  return violations;
}

/** The strongly connected components of more than one file (or a file importing itself). */
export function findCycles(graph: ImportGraph): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  let next = 0;
  const edges = (file: string) =>
    (graph.files.get(file)?.internal ?? []).filter((t) => graph.files.has(t));
  const visit = (file: string) => {
    index.set(file, next);
    low.set(file, next++);
    stack.push(file);
    onStack.add(file);
    for (const target of edges(file)) {
      if (!index.has(target)) {
        visit(target);
        low.set(file, Math.min(low.get(file) ?? 0, low.get(target) ?? 0));
      } else if (onStack.has(target)) {
        low.set(file, Math.min(low.get(file) ?? 0, index.get(target) ?? 0));
      }
    }
    if (low.get(file) === index.get(file)) {
      const component: string[] = [];
      let member: string | undefined;
      do {
        member = stack.pop() as string;
        onStack.delete(member);
        component.push(member);
      } while (member !== file);
      if (component.length > 1 || edges(file).includes(file)) cycles.push(component.reverse());
    }
  };
  for (const file of [...graph.files.keys()].sort()) if (!index.has(file)) visit(file);
  return cycles;
}
