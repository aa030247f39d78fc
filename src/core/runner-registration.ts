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

const runnerClass = z.enum(RUNNER_CLASSES, {
  error: `expected one of ${RUNNER_CLASSES.join(", ")}`,
});

/**
 * What an operator supplies to register a runner. Strict: an unknown key is an error, because a
 * misspelt `capabilites` must not silently register a runner with none. Capabilities are sorted
 * and deduplicated so equal sets compare equal. `class` is a label (see `RUNNER_CLASSES`);
 * `tier`, its old name, is still accepted.
 */
export const RunnerRegistration = z
  .strictObject({
    name: RunnerName,
    capabilities: z
      .array(RunnerCapability, { error: "expected a list of capability names" })
      .max(50, { error: "expected at most 50 capabilities" })
      .default([])
      .transform((caps) => [...new Set(caps)].sort()),
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
