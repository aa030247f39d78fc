import type { AgentUsage } from "./adapters/agent-adapter.ts";

/** One attempt's budget, from the `assign` frame's `limits` (the repository's `tasks.limits`). */
export interface AttemptBudget {
  max_cost_usd?: number | undefined;
  max_tokens?: number | undefined;
  max_turns?: number | undefined;
}

/** Whether the budget names any figure at all (then the runner reads usage after every line). */
export function hasBudget(budget: AttemptBudget): boolean {
  return (
    budget.max_cost_usd !== undefined ||
    budget.max_tokens !== undefined ||
    budget.max_turns !== undefined
  );
}

/**
 * What the usage so far has passed, as the line `budget exceeded` is reported with, or undefined
 * while it is within the budget. A figure the tool did not report cannot pass its limit. Limits
 * are inclusive: `max_turns: 3` allows three turns and stops at the fourth.
 */
export function budgetOverrun(budget: AttemptBudget, usage: AgentUsage): string | undefined {
  const passed: string[] = [];
  if (
    budget.max_cost_usd !== undefined &&
    usage.cost_usd !== undefined &&
    usage.cost_usd > budget.max_cost_usd
  ) {
    passed.push(`cost $${usd(usage.cost_usd)} > max_cost_usd $${usd(budget.max_cost_usd)}`);
  }
  if (
    budget.max_tokens !== undefined &&
    usage.tokens !== undefined &&
    usage.tokens > budget.max_tokens
  ) {
    passed.push(`tokens ${usage.tokens} > max_tokens ${budget.max_tokens}`);
  }
  if (
    budget.max_turns !== undefined &&
    usage.turns !== undefined &&
    usage.turns > budget.max_turns
  ) {
    passed.push(`turns ${usage.turns} > max_turns ${budget.max_turns}`);
  }
  if (passed.length === 0) return undefined;
  const used = [
    usage.cost_usd !== undefined ? `$${usd(usage.cost_usd)}` : undefined,
    usage.tokens !== undefined ? `${usage.tokens} tokens` : undefined,
    usage.turns !== undefined ? `${usage.turns} turns` : undefined,
  ].filter(Boolean);
  return `${passed.join(", ")} (used so far: ${used.join(", ")}); the agent was stopped`;
}

/** Dollars with up to four decimals, at least cents: `0.42`, `0.0421`, `3.00`. */
function usd(value: number): string {
  return value.toFixed(4).replace(/0{1,2}$/, "");
}
