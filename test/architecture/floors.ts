/**
 * The house's floors, bottom first: a module may import modules of its own room and of rooms on
 * lower floors, never a room on its own floor or above, and no import may close a cycle.
 * `import-graph.test.ts` holds the code to this; docs/architecture.md explains each floor.
 *
 * A room is a folder (`src/core`) or one file (`src/main.ts`), relative to the repository root.
 * `packages`, where given, lists the only npm packages (and `node:` modules) the floor may import.
 */
export interface Floor {
  name: string;
  rooms: readonly string[];
  packages?: readonly string[];
}

export const FLOORS: readonly Floor[] = [
  // The wire protocol shared with runners: zod schemas, nothing else.
  { name: "protocol", rooms: ["src/protocol"], packages: ["zod"] },
  // Pure decisions, domain types and the ports (interfaces) the features need.
  { name: "core", rooms: ["src/core"], packages: ["zod"] },
  { name: "config", rooms: ["src/config.ts"] },
  // How a log record reads on a terminal (the logger below uses it).
  { name: "log format", rooms: ["src/format-log-line.ts"] },
  // Process plumbing: the database client and schema, the logger, the server-info file.
  { name: "platform", rooms: ["db", "src/logger.ts", "src/server-info.ts", "src/lifecycle.ts"] },
  // SQL, one module per table family.
  { name: "store", rooms: ["src/store"] },
  // Features: each knows core, store and the ports, and the features below it.
  { name: "intake", rooms: ["src/intake"] },
  { name: "commands", rooms: ["src/commands"] },
  { name: "loops", rooms: ["src/loops"] },
  { name: "dispatch", rooms: ["src/dispatch"] },
  // Edges: the HTTP API, the views built on it, and GitHub (which implements the ports).
  { name: "http", rooms: ["src/http"] },
  { name: "views", rooms: ["src/metrics", "src/dashboard"] },
  { name: "github", rooms: ["src/github"] },
  // The composition root (and the options it takes), the operator's commands, the entry points.
  { name: "options", rooms: ["src/start-options.ts"] },
  { name: "root", rooms: ["src/main.ts"] },
  { name: "cli", rooms: ["src/cli"] },
  { name: "entry", rooms: ["src/cli.ts", "runners"] },
];

/** What the graph covers: the product's code. Tests, the demo, the bench and scripts may import anything. */
export const SCANNED = ["src", "db", "runners"] as const;
