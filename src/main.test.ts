import { readFileSync } from "node:fs";
import pino from "pino";
import { describe, expect, it } from "vitest";
import type { Lifecycle } from "./lifecycle.ts";
import { startStages } from "./lifecycle.ts";
import { type Subsystems, startupOrder } from "./main.ts";

const logger = pino({ level: "silent" });

/** Fake subsystems that write their starts and stops into one journal. */
function fakeSubsystems(options: { withGitHub: boolean }) {
  const journal: string[] = [];
  const fake = (name: string): Lifecycle => ({
    start: () => void journal.push(`start ${name}`),
    stop: () => void journal.push(`stop ${name}`),
  });
  const subsystems: Subsystems = {
    store: fake("store"),
    observability: fake("observability"),
    monitoring: fake("monitoring"),
    loops: options.withGitHub ? fake("loops") : undefined,
    http: { connections: fake("http connections"), listener: fake("http listener") },
    dispatch: options.withGitHub ? fake("dispatch") : undefined,
    dashboard: fake("dashboard"),
    webhookProxy: options.withGitHub ? fake("webhook proxy") : undefined,
    redelivery: options.withGitHub ? fake("webhook redelivery") : undefined,
    githubWrites: options.withGitHub ? fake("github writes") : undefined,
  };
  return { journal, subsystems };
}

describe("the composition root's start-up order", () => {
  it("is data: the database first, the listener last", () => {
    const { subsystems } = fakeSubsystems({ withGitHub: true });
    expect(startupOrder(subsystems).map(([name]) => name)).toEqual([
      "store",
      "observability",
      "monitoring",
      "loops",
      "http connections",
      "dispatch",
      "dashboard",
      "github writes",
      "http listener",
      "webhook proxy",
      "webhook redelivery",
    ]);
  });

  it("is the order docs/architecture.md gives", () => {
    const doc = readFileSync(new URL("../docs/architecture.md", import.meta.url), "utf8");
    const section = doc.split("### Start-up and shutdown order")[1]?.split("\n## ")[0] ?? "";
    const documented = [...section.matchAll(/^\| \d+ \| `([^`]+)`/gm)].map((m) => m[1]);
    const { subsystems } = fakeSubsystems({ withGitHub: true });
    expect(documented).toEqual(startupOrder(subsystems).map(([name]) => name));
  });

  it("shuts down in exactly the reverse order", async () => {
    const { journal, subsystems } = fakeSubsystems({ withGitHub: true });
    const started = await startStages(startupOrder(subsystems), logger);
    const starts = journal.map((line) => line.replace("start ", ""));
    await started.stop();
    const stops = journal.slice(starts.length).map((line) => line.replace("stop ", ""));
    expect(stops).toEqual([...starts].reverse());
  });

  it("stops accepting first, closes runner sockets and dashboard streams before waiting for open connections, and closes the database last", async () => {
    const { journal, subsystems } = fakeSubsystems({ withGitHub: true });
    const started = await startStages(startupOrder(subsystems), logger);
    journal.length = 0;
    await started.stop();
    const at = (name: string) => journal.indexOf(`stop ${name}`);
    // Only what sends deliveries into the listener stops before it, and starts after it.
    expect(at("webhook redelivery")).toBe(0);
    expect(at("webhook proxy")).toBe(1);
    expect(at("http listener")).toBe(2);
    // A backlog of paced writes must not hold the loops (or the 10 s `conveyor start` allows).
    expect(at("github writes")).toBe(3);
    expect(at("dispatch")).toBeLessThan(at("http connections"));
    expect(at("dashboard")).toBeLessThan(at("http connections"));
    // Loops still write to the database and record errors while they finish their runs.
    expect(at("loops")).toBeLessThan(at("observability"));
    expect(at("observability")).toBe(journal.length - 2);
    expect(at("store")).toBe(journal.length - 1);
  });

  it("leaves out what needs the GitHub App when there is none", async () => {
    const { journal, subsystems } = fakeSubsystems({ withGitHub: false });
    const started = await startStages(startupOrder(subsystems), logger);
    await started.stop();
    expect(journal.filter((line) => /loops|dispatch|webhook|github writes/.test(line))).toEqual([]);
    expect(journal).toHaveLength(12);
  });
});
