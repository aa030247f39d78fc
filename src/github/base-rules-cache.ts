/**
 * What the merger keeps of a base branch's branch protection and rulesets between pull requests.
 * Every merge decision needs the required checks of its base branch, which change rarely; reading
 * both for every pull request cost two requests each, one of them a 403 for an App without the
 * `administration` permission (Conveyor never asks for it).
 *
 * Kept for a few minutes, not forever: Conveyor does not subscribe to the
 * `branch_protection_rule` and `repository_ruleset` webhooks, so a time limit is the only
 * invalidation. A rule added meanwhile is still enforced by GitHub itself, which refuses a merge
 * whose required checks have not passed
 * (https://docs.github.com/repositories/configuring-branches-and-merges-in-your-repository/managing-protected-branches/about-protected-branches#require-status-checks-before-merging),
 * and the checks that reported on the base commit are read fresh for every pull request.
 * Failed reads other than "not allowed" or "not there" are never kept.
 */
export interface BaseRulesCache {
  /** A kept answer for `key` (a branch, or a repository for a 403), while fresh. */
  get<T>(kind: BaseRulesKind, key: string): { value: T } | undefined;
  /** Keeps an answer for `kind`'s time to live. */
  set(kind: BaseRulesKind, key: string, value: unknown): void;
}

/**
 * `protection`: a branch's required status checks (or none: 404); `protectionDenied`: the App
 * may not read branch protection in a repository (403, remembered per repository, since it is a
 * permission of the installation); `rules`: a branch's active rules; `branchProtection`: the
 * required checks `GET …/branches/{branch}` shows every reader (the only view of them for an App
 * that may not read branch protection; the branch's tip comes with the merger's query).
 */
export type BaseRulesKind = "protection" | "protectionDenied" | "rules" | "branchProtection";

export interface BaseRulesCacheOptions {
  /** How long a branch's protection and rules are kept (default five minutes). */
  ttlMs?: number;
  /** How long a 403 on branch protection is remembered per repository (default 15 minutes). */
  deniedTtlMs?: number;
  maxEntries?: number;
  now?: () => number;
}

export function createBaseRulesCache(options: BaseRulesCacheOptions = {}): BaseRulesCache {
  const ttl: Record<BaseRulesKind, number> = {
    protection: options.ttlMs ?? 5 * 60_000,
    branchProtection: options.ttlMs ?? 5 * 60_000,
    rules: options.ttlMs ?? 5 * 60_000,
    protectionDenied: options.deniedTtlMs ?? 15 * 60_000,
  };
  const maxEntries = options.maxEntries ?? 1000;
  const now = options.now ?? Date.now;
  const entries = new Map<string, { value: unknown; until: number }>();
  const keyOf = (kind: BaseRulesKind, key: string) => `${kind} ${key.toLowerCase()}`;
  return {
    get<T>(kind: BaseRulesKind, key: string) {
      const k = keyOf(kind, key);
      const kept = entries.get(k);
      if (!kept) return undefined;
      if (kept.until <= now()) {
        entries.delete(k);
        return undefined;
      }
      return { value: structuredClone(kept.value) as T };
    },
    set(kind, key, value) {
      const k = keyOf(kind, key);
      entries.delete(k);
      entries.set(k, { value: structuredClone(value), until: now() + ttl[kind] });
      while (entries.size > maxEntries) {
        const oldest = entries.keys().next().value;
        if (oldest === undefined) break;
        entries.delete(oldest);
      }
    },
  };
}
