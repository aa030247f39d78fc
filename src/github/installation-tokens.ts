/**
 * The store `@octokit/auth-app` keeps installation tokens in (its `cache` option: `get`/`set` of
 * strings it writes itself, `token|createdAt|expiresAt|…`). auth-app already reuses a token for
 * every request of an installation and asks GitHub for one token at a time; what this store
 * changes is when a token stops being reused: five minutes before the `expires_at` GitHub gave it
 * (Probot's own store drops tokens 59 minutes after they were stored, whatever their expiry),
 * so a request that starts late in a token's hour, or a slow one, still holds a valid token.
 * In memory per instance: a token is a credential and is never written to the database.
 */
export function createInstallationTokenCache(
  options: { refreshBeforeMs?: number; maxEntries?: number; now?: () => number } = {},
) {
  const refreshBeforeMs = options.refreshBeforeMs ?? 5 * 60_000;
  const maxEntries = options.maxEntries ?? 15_000;
  const now = options.now ?? Date.now;
  const entries = new Map<string, string>();
  return {
    get(key: string): string | undefined {
      const value = entries.get(key);
      if (value === undefined) return undefined;
      const expiresAt = Date.parse(value.split("|")[2] ?? "");
      if (!Number.isFinite(expiresAt) || expiresAt - now() <= refreshBeforeMs) {
        entries.delete(key);
        return undefined;
      }
      return value;
    },
    set(key: string, value: string): void {
      entries.delete(key);
      entries.set(key, value);
      while (entries.size > maxEntries) {
        const oldest = entries.keys().next().value;
        if (oldest === undefined) break;
        entries.delete(oldest);
      }
    },
  };
}
