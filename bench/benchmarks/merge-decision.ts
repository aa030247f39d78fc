import { performance } from "node:perf_hooks";
import { evaluateMergePolicy, type PrFacts } from "../../src/core/merge-policy.ts";
import { DEFAULT_REPO_CONFIG, type RepoConfig } from "../../src/core/repo-config.ts";
import { cleanTier1, MERGE_POLICY_CASES } from "../../test/fixtures/merge-policy-cases.ts";
import type { Benchmark, Outcome } from "../lib/benchmark.ts";
import { ratio, round, summarize } from "../lib/stats.ts";

interface Row {
  name: string;
  facts: PrFacts;
  config: RepoConfig;
}

/** The table's rows, each as the facts and config `evaluateMergePolicy` gets. */
function rows(): Row[] {
  return MERGE_POLICY_CASES.map((c) => {
    const facts = cleanTier1();
    c.change(facts);
    return { name: c.name, facts, config: c.config ?? DEFAULT_REPO_CONFIG };
  });
}

/** One pass of `work` over every row; returns ns per row. */
function pass(table: readonly Row[], work: (row: Row) => unknown): number {
  let sink = 0;
  const start = performance.now();
  for (const row of table) {
    // Something must use the result, or the engine may skip the work.
    if (work(row)) sink++;
  }
  const ns = ((performance.now() - start) * 1e6) / table.length;
  if (sink < 0) throw new Error("unreachable");
  return ns;
}

/**
 * Alternates one pass of `ours` and one of `peer` over the table for `seconds`, so whatever else
 * the machine does slows both alike. Each pass is a sample (ns per row).
 */
function race(
  table: readonly Row[],
  seconds: number,
  ours: (row: Row) => unknown,
  peer: (row: Row) => unknown,
): { ours: number[]; peer: number[] } {
  const samples = { ours: [] as number[], peer: [] as number[] };
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    samples.ours.push(pass(table, ours));
    samples.peer.push(pass(table, peer));
  }
  return samples;
}

/** Rows per second from per-pass samples (ns per row): total rows ÷ total time in the passes. */
const perSecond = (nsPerRow: readonly number[]) =>
  1e9 / (nsPerRow.reduce((sum, ns) => sum + ns, 0) / nsPerRow.length);

/** JSON round trip of the row's facts: a yardstick for the machine's speed at plain JS work. */
const copyFacts = (row: Row) => JSON.parse(JSON.stringify(row.facts)) as unknown;

/**
 * Policy evaluations per second over the merge policy's test-case table (a pure function, no I/O).
 * Peer: a JSON round trip of the same facts, so the ratio stays put when the machine is busy.
 */
export const mergeDecision: Benchmark = {
  name: "merge-decision",
  title: "evaluateMergePolicy evaluations/s over the merge policy's test-case table",
  needsPostgres: false,
  async run(ctx): Promise<Outcome> {
    const seconds = ctx.smoke ? 0.2 : 5;
    const table = rows();
    const evaluate = (row: Row) => evaluateMergePolicy(row.facts, row.config);
    ctx.progress(`${table.length} cases; warming up`);
    race(table, ctx.smoke ? 0.1 : 1, evaluate, copyFacts);
    ctx.progress(`evaluating for ${seconds} s, alternating with the peer (a JSON round trip)`);
    const samples = race(table, seconds, evaluate, copyFacts);

    // Each row alone (the median of many short passes), to show which pull requests cost most.
    const perCase = table.map((row) => {
      const passes = Array.from({ length: ctx.smoke ? 5 : 200 }, () =>
        pass([row, row, row, row, row], evaluate),
      );
      return { name: row.name, microseconds: round(summarize(passes).p50 / 1000, 2) };
    });
    const slowest = [...perCase].sort((a, b) => b.microseconds - a.microseconds).slice(0, 5);
    const ourPass = summarize(samples.ours);
    const peerPass = summarize(samples.peer);
    const ours = { perSecond: perSecond(samples.ours) };
    const peer = { perSecond: perSecond(samples.peer) };
    return {
      parameters: { cases: table.length, seconds },
      results: {
        evaluationsPerSecond: round(ours.perSecond, 0),
        microsecondsPerEvaluation: round(1e6 / ours.perSecond, 3),
        nsPerEvaluationByPass: ourPass,
        perCaseMicroseconds: perCase,
      },
      peer: {
        name: "JSON round trip",
        description:
          "JSON.parse(JSON.stringify(facts)) of the same rows: plain JS work of similar size, a yardstick for the machine",
        results: {
          roundTripsPerSecond: round(peer.perSecond, 0),
          nsPerRoundTripByPass: peerPass,
        },
      },
      ratios: {
        throughput: {
          value: ratio(ours.perSecond, peer.perSecond),
          meaning: "evaluations/s ÷ JSON round trips/s of the same facts",
        },
      },
      samples: {
        nsPerEvaluationByPass: samples.ours.map((v) => round(v, 0)),
        nsPerRoundTripByPass: samples.peer.map((v) => round(v, 0)),
      },
      tables: [
        {
          title: `merge decision over ${table.length} cases (${seconds} s)`,
          columns: ["work", "per second", "µs each", "p50 µs", "p99 µs"],
          rows: [
            [
              "evaluateMergePolicy",
              round(ours.perSecond, 0),
              round(1e6 / ours.perSecond, 2),
              round(ourPass.p50 / 1000, 2),
              round(ourPass.p99 / 1000, 2),
            ],
            [
              "JSON round trip (peer)",
              round(peer.perSecond, 0),
              round(1e6 / peer.perSecond, 2),
              round(peerPass.p50 / 1000, 2),
              round(peerPass.p99 / 1000, 2),
            ],
            ["ratio", ratio(ours.perSecond, peer.perSecond), undefined, undefined, undefined],
          ],
        },
        {
          title: "slowest cases",
          columns: ["case", "µs"],
          rows: slowest.map((c) => [c.name, c.microseconds]),
        },
      ],
      notes: [
        "One evaluation is what the merger does per pull request per pass after it read the facts from GitHub; reading them (files, checks, statuses, reviews: several API calls) costs milliseconds, the decision microseconds.",
      ],
    };
  },
};
