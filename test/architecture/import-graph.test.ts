import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { FLOORS, SCANNED } from "./floors.ts";
import { checkLayering, type ImportGraph, readImportGraph } from "./import-graph.ts";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "../..");

describe("the import graph", () => {
  const real = readImportGraph(ROOT, SCANNED);

  it("has every arrow pointing down and no cycle", () => {
    expect(real.files.size).toBeGreaterThan(100);
    expect(real.files.get("src/main.ts")?.internal).toContain("src/store/create-store.ts");
    expect(checkLayering(real, FLOORS).map((v) => v.message)).toEqual([]);
  });

  it("fails once one arrow runs back up from the core to the GitHub edge", () => {
    const files = new Map(real.files);
    const ports = files.get("src/core/ports.ts");
    if (!ports) throw new Error("src/core/ports.ts is missing from the graph");
    files.set("src/core/ports.ts", {
      ...ports,
      internal: [...ports.internal, "src/github/github-gateway.ts"],
    });
    const violations = checkLayering({ files }, FLOORS);
    expect(violations.filter((v) => v.kind === "upward").map((v) => v.message)).toEqual([
      "src/core/ports.ts imports src/github/github-gateway.ts (upward: core → github)",
    ]);
    // The gateway implements the port, so the new arrow also closes a cycle.
    expect(violations.filter((v) => v.kind === "cycle")).toHaveLength(1);
    expect(violations.find((v) => v.kind === "cycle")?.message).toMatch(
      /src\/core\/ports\.ts → .*src\/github\/github-gateway\.ts/,
    );
  });
});

describe("the layering check on a fixture tree", () => {
  const root = mkdtempSync(join(tmpdir(), "import-graph-"));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const write = (path: string, text: string) => {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  };
  write("src/core/rules.ts", `import { z } from "zod";\nexport const rule = z.string();\n`);
  write(
    "src/core/leaky.ts",
    `import type { Logger } from "pino";\nimport { tick } from "../loops/tick.ts";\nexport type L = Logger;\nexport const t = tick;\n`,
  );
  write(
    "src/loops/tick.ts",
    `import { rule } from "../core/rules.ts";\nimport { tock } from "./tock.ts";\nexport const tick = () => tock(rule);\n`,
  );
  write(
    "src/loops/tock.ts",
    `import type { tick } from "./tick.ts";\nexport const tock = (x: unknown): typeof tick | unknown => x;\n`,
  );
  write("src/metrics/panel.ts", `export { board } from "../dashboard/board.ts";\n`);
  write("src/dashboard/board.ts", `export const board = await import("../core/rules.ts");\n`);
  write("src/stray/thing.ts", `export const stray = 1;\n`);
  write("src/loops/tick.test.ts", `import "../../src/github/anything.ts";\n`);
  const graph: ImportGraph = readImportGraph(root, ["src"]);
  const violations = checkLayering(graph, FLOORS);
  const messages = (kind: string) =>
    violations.filter((v) => v.kind === kind).map((v) => v.message);

  it("reads static, type-only, re-exported and dynamic imports, and skips tests", () => {
    expect(graph.files.get("src/core/leaky.ts")).toEqual({
      internal: ["src/loops/tick.ts"],
      packages: ["pino"],
    });
    expect(graph.files.get("src/metrics/panel.ts")?.internal).toEqual(["src/dashboard/board.ts"]);
    expect(graph.files.get("src/dashboard/board.ts")?.internal).toEqual(["src/core/rules.ts"]);
    expect(graph.files.has("src/loops/tick.test.ts")).toBe(false);
  });

  it("reports an arrow that runs back up", () => {
    expect(messages("upward")).toEqual([
      "src/core/leaky.ts imports src/loops/tick.ts (upward: core → loops)",
    ]);
  });

  it("reports an arrow between two rooms of one floor", () => {
    expect(messages("sideways")).toEqual([
      "src/metrics/panel.ts imports src/dashboard/board.ts (sideways: views → views)",
    ]);
  });

  it("reports a cycle, even inside one room and through a type-only import", () => {
    expect(messages("cycle")).toEqual([
      "import cycle: src/loops/tick.ts → src/loops/tock.ts → src/loops/tick.ts",
    ]);
  });

  it("reports a package the core may not use, and a file on no floor", () => {
    expect(messages("package")).toEqual(["src/core/leaky.ts imports pino (core)"]);
    expect(messages("no floor")).toEqual(["src/stray/thing.ts is in no room of any floor"]);
  });
});

describe("the floors in docs/architecture.md", () => {
  it("are the floors the test holds the code to, top floor first", () => {
    const doc = readFileSync(join(ROOT, "docs/architecture.md"), "utf8");
    const section = doc.split("## Rooms and what each may touch")[1]?.split("\n## ")[0] ?? "";
    // The section's first table.
    const lines = section.split("\n");
    const start = lines.findIndex((line) => line.startsWith("| floor"));
    const end = lines.findIndex((line, i) => i > start && !line.startsWith("|"));
    const rows = lines.slice(start + 2, end).map((line) => {
      const [name = "", rooms = ""] = line.split("|").slice(1, 3);
      const named = [...rooms.matchAll(/`([^`]+)`/g)].map((m) => (m[1] ?? "").replace(/\/$/, ""));
      return { name: name.trim(), rooms: named };
    });
    expect(rows).toEqual(
      [...FLOORS].reverse().map((floor) => ({ name: floor.name, rooms: [...floor.rooms] })),
    );
  });
});
