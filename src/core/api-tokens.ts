import { z } from "zod";

/**
 * Roles of the admin API, weakest first: `read` may look (lists, details, metrics), `admin` may
 * also act (retry, cancel, register runners, manage tokens, export, import, change settings).
 */
export const API_ROLES = ["read", "admin"] as const;
export type ApiRole = (typeof API_ROLES)[number];

/** Whether a principal holding `held` may use a route that needs `needed`. */
export function hasRole(held: ApiRole, needed: ApiRole): boolean {
  return API_ROLES.indexOf(held) >= API_ROLES.indexOf(needed);
}

// The same alphabet as runner names: what operators type and what task history shows. Starting
// with a letter or digit keeps a name from being mistaken for a command-line flag.
const IDENTIFIER = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/** A token's name: who or what holds it (`grafana`, `alice`, `ci-deploy`). */
export const ApiTokenName = z.string({ error: "expected a token name" }).regex(IDENTIFIER, {
  error:
    "expected 1-63 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit",
});

export const ApiTokenRole = z.enum(API_ROLES, { error: "expected read or admin" });

/**
 * What an operator supplies to create a token. Strict, so a misspelt `rol` is an error rather than
 * a token with the default role. The role defaults to the weaker one.
 */
export const ApiTokenRequest = z.strictObject({
  name: ApiTokenName,
  role: ApiTokenRole.default("read"),
});
export type ApiTokenRequest = z.output<typeof ApiTokenRequest>;
