import { describe, expect, it } from "vitest";
import {
  classifyExportLine,
  foreignKeyOrder,
  headerProblem,
  renderExportHeader,
} from "./export-format.ts";

describe("export header", () => {
  it("renders a first line that classifies back to the same header", () => {
    const header = {
      format: "conveyor-export" as const,
      format_version: 1,
      migration: "0006_x",
      exported_at: "2026-01-01T00:00:00.000Z",
    };
    const line = renderExportHeader(header);
    expect(line).toBe(
      '{"format":"conveyor-export","format_version":1,"migration":"0006_x","exported_at":"2026-01-01T00:00:00.000Z","tables":{\n',
    );
    expect(classifyExportLine(line.trimEnd(), 1)).toEqual({
      kind: "header",
      header: { ...header, tables: {} },
    });
  });

  it.each([
    [{ format_version: 1, migration: "0006_x" }, undefined],
    [{ format_version: 2, migration: "0006_x" }, "format_version"],
    [{ format_version: 1, migration: "0005_y" }, "migration"],
  ])("%j at 0006_x → problem in %s", (fields, path) => {
    const problem = headerProblem({ format: "conveyor-export", ...fields }, "0006_x");
    expect(problem?.path).toBe(path);
  });
});

describe("classifyExportLine", () => {
  it.each([
    ['{"a": 1},', { kind: "row", json: '{"a": 1}' }],
    ['{"a": "x,"}', { kind: "row", json: '{"a": "x,"}' }],
    ['"tasks":[', { kind: "table", name: "tasks" }],
    ['"leases":[],', [{ kind: "table", name: "leases" }, { kind: "table-end" }]],
    ["],", { kind: "table-end" }],
    ["]", { kind: "table-end" }],
    ["}}", { kind: "end" }],
    ["", { kind: "blank" }],
    ["  ", { kind: "blank" }],
  ])("%j → %j", (line, expected) => {
    expect(classifyExportLine(line, 5)).toEqual(expected);
  });

  it.each([['"Tasks":['], ['"tasks": ['], ["[1, 2]"], ["garbage"]])("calls %j invalid", (line) => {
    expect(classifyExportLine(line, 5)).toMatchObject({ kind: "invalid" });
  });

  it.each([
    ['{"format":"conveyor-export"}'],
    ['{"tables":{'.slice(0, 5)],
    ['{"format":"conveyor-export", broken,"tables":{'],
    ['"tasks":['],
  ])("refuses %j as a first line", (line) => {
    expect(classifyExportLine(line, 1)).toMatchObject({ kind: "invalid" });
  });
});

describe("foreignKeyOrder", () => {
  it("puts referenced tables first, ties by name, ignoring self and unknown references", () => {
    expect(
      foreignKeyOrder([
        { name: "task_events", references: ["tasks"] },
        { name: "tasks", references: ["repositories", "tasks"] },
        { name: "repositories", references: [] },
        { name: "alerts", references: ["elsewhere"] },
        { name: "pull_requests", references: ["tasks", "repositories"] },
      ]),
    ).toEqual(["alerts", "repositories", "tasks", "pull_requests", "task_events"]);
  });

  it("refuses a cycle, naming the tables in it", () => {
    expect(() =>
      foreignKeyOrder([
        { name: "a", references: ["b"] },
        { name: "b", references: ["a"] },
        { name: "c", references: [] },
      ]),
    ).toThrow("foreign keys form a cycle among a, b");
  });
});
