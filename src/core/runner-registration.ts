import { type ZodError, z } from "zod";
import { RUNNER_CLASSES } from "./task-states.ts";

// Same alphabet as capabilities in `.github/conveyor.yml` and the socket protocol. Names must
// start with a letter or digit so that one can never be mistaken for a command-line flag.
const IDENTIFIER = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/** A runner's name: what operators type and what task history shows. */
export const RunnerName = z.string({ error: "expected a runner name" }).regex(IDENTIFIER, {
  error:
    "expected 1-63 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit",
});

/** A capability a runner offers; a task needing it (`needs:<cap>`) only goes to such runners. */
export const RunnerCapability = z
  .string({ error: "expected a capability name" })
  .regex(IDENTIFIER, {
    error:
      "expected 1-63 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit",
  });

/**
 * One entry of a runner's repository scope: `owner/name` (that repository) or `owner/*` (every
 * repository of that owner). Compared without regard to case, as GitHub compares names.
 */
export const RepoPattern = z
  .string({ error: "expected owner/name or owner/*" })
  .regex(/^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})\/(?:\*|[A-Za-z0-9._-]{1,100})$/, {
    error: "expected owner/name or owner/* (an owner's every repository)",
  })
  .transform((pattern) => pattern.toLowerCase());

/** A runner's scope: the repositories it may take tasks from; empty means every repository. */
export const RepoScope = z
  .array(RepoPattern, { error: "expected a list of owner/name or owner/* patterns" })
  .max(50, { error: "expected at most 50 repository patterns" })
  .default([])
  .transform((repos) => [...new Set(repos)].sort());

/** Whether a runner scoped to `repos` may take a task of repository `fullName`. */
export function isRepoInScope(fullName: string, repos: readonly string[]): boolean {
  if (repos.length === 0) return true;
  const name = fullName.toLowerCase();
  const owner = name.split("/")[0];
  return repos.some((pattern) => pattern === name || pattern === `${owner}/*`);
}

/**
 * Whether every repository scope `inner` admits, `outer` admits too (the dispatcher's shortcut:
 * a claim that found nothing for `outer` finds nothing for `inner` either).
 */
export function isScopeWithin(inner: readonly string[], outer: readonly string[]): boolean {
  if (outer.length === 0) return true;
  if (inner.length === 0) return false;
  return inner.every(
    (pattern) => outer.includes(pattern) || outer.includes(`${pattern.split("/")[0]}/*`),
  );
}

const runnerClass = z.enum(RUNNER_CLASSES, {
  error: `expected one of ${RUNNER_CLASSES.join(", ")}`,
});

/** A runner's capabilities: at most 50 names, deduplicated and sorted; none by default. */
const RunnerCapabilities = z
  .array(RunnerCapability, { error: "expected a list of capability names" })
  .max(50, { error: "expected at most 50 capabilities" })
  .default([])
  .transform((caps) => [...new Set(caps)].sort());

/**
 * What an operator supplies to register a runner. Strict: an unknown key is an error, because a
 * misspelt `capabilites` must not silently register a runner with none. Capabilities are sorted
 * and deduplicated so equal sets compare equal. `class` orders dispatch (see `RUNNER_CLASSES`);
 * `tier`, its old name, is still accepted.
 */
export const RunnerRegistration = z
  .strictObject({
    name: RunnerName,
    capabilities: RunnerCapabilities,
    repos: RepoScope,
    class: runnerClass.optional(),
    /** @deprecated the old name of `class`. */
    tier: runnerClass.optional(),
  })
  .superRefine((value, ctx) => {
    if (value.class && value.tier && value.class !== value.tier) {
      ctx.addIssue({
        code: "custom",
        path: ["tier"],
        message: "contradicts class (tier is the old name of class): give class only",
      });
    }
  })
  .transform(({ tier, ...value }) => ({ ...value, class: value.class ?? tier ?? "normal" }));
export type RunnerRegistration = z.output<typeof RunnerRegistration>;
export type RunnerRegistrationInput = z.input<typeof RunnerRegistration>;

/** One problem with one field of some input, in the shape the API and the CLI report. */
export interface FieldError {
  /** Dotted path of the offending field (`capabilities.1`); `body` for the input as a whole. */
  field: string;
  message: string;
}

/** Flattens a zod error into field errors; every unknown key gets its own entry. */
export function toFieldErrors(error: ZodError): FieldError[] {
  return error.issues.flatMap((issue) => {
    const at = issue.path.map(String).join(".");
    if (issue.code === "unrecognized_keys") {
      return issue.keys.map((key) => ({
        field: at ? `${at}.${key}` : key,
        message: "unknown field",
      }));
    }
    return [{ field: at || "body", message: issue.message }];
  });
}

/** Shortest and longest life of an unused one-time credential, and its default. */
export const ONE_TIME_TTL_SECONDS = { min: 60, max: 7 * 24 * 3600, default: 3600 } as const;

/**
 * What an operator (or an init step with an admin token) supplies to mint a one-time runner
 * credential: the capabilities and scope of the one ephemeral runner it registers, and how long it
 * stays usable unused. The name is generated (`jit-…`) unless given.
 */
export const OneTimeRunnerRequest = z.strictObject({
  name: RunnerName.optional(),
  capabilities: RunnerCapabilities,
  repos: RepoScope,
  ttl_seconds: z
    .number({ error: "expected a number of seconds" })
    .int({ error: "expected a whole number of seconds" })
    .min(ONE_TIME_TTL_SECONDS.min, { error: `expected at least ${ONE_TIME_TTL_SECONDS.min} s` })
    .max(ONE_TIME_TTL_SECONDS.max, {
      error: `expected at most ${ONE_TIME_TTL_SECONDS.max} s (7 days)`,
    })
    .default(ONE_TIME_TTL_SECONDS.default),
});
export type OneTimeRunnerRequest = z.output<typeof OneTimeRunnerRequest>;
export type OneTimeRunnerRequestInput = z.input<typeof OneTimeRunnerRequest>;

/**
 * Parses a duration as operators write it (`90s`, `15m`, `1h`, `2d`, or plain seconds) into
 * seconds; undefined when it is not one.
 */
export function parseDurationSeconds(text: string): number | undefined {
  const match = /^(\d{1,7})([smhd]?)$/.exec(text.trim());
  if (!match) return undefined;
  const unit = { "": 1, s: 1, m: 60, h: 3600, d: 86_400 }[match[2] as "" | "s" | "m" | "h" | "d"];
  return Number(match[1]) * unit;
}
