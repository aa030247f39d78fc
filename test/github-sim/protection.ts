import { type ApiRoutes, paginate, repoOf } from "./api-route.ts";
import { repoApiUrl } from "./github-objects.ts";
import { HttpError } from "./http-error.ts";
import type { SimMergeQueueRule, SimRepo, SimRuleset } from "./sim-state.ts";

/** Conclusions GitHub accepts for a required check. */
const PASSING_CONCLUSIONS = new Set(["success", "neutral", "skipped"]);

function rulesetApplies(repo: SimRepo, ruleset: SimRuleset, branch: string): boolean {
  return ruleset.branches.some(
    (b) =>
      b === "~ALL" || b === branch || (b === "~DEFAULT_BRANCH" && branch === repo.defaultBranch),
  );
}

/** The rulesets that apply to `branch`. */
export function rulesetsFor(repo: SimRepo, branch: string): SimRuleset[] {
  return repo.rulesets.filter((ruleset) => rulesetApplies(repo, ruleset, branch));
}

/**
 * The merge queue `branch` requires, if any (branch protection's "Require merge queue", or a
 * ruleset's `merge_queue` rule): its merges must go through the queue.
 */
export function mergeQueueFor(repo: SimRepo, branch: string): SimMergeQueueRule | undefined {
  return (
    repo.branchProtection.get(branch)?.mergeQueue ??
    rulesetsFor(repo, branch).find((r) => r.mergeQueue)?.mergeQueue
  );
}

/** Every check `branch` requires (branch protection and rulesets), and whether it must be up to date. */
export function requiredChecksFor(
  repo: SimRepo,
  branch: string,
): { contexts: string[]; strict: boolean } {
  const protection = repo.branchProtection.get(branch);
  const rulesets = rulesetsFor(repo, branch);
  const contexts = new Set([
    ...(protection?.contexts ?? []),
    ...rulesets.flatMap((r) => r.requiredChecks.map((c) => c.context)),
  ]);
  return {
    contexts: [...contexts],
    strict: Boolean(protection?.strict) || rulesets.some((r) => r.strict),
  };
}

/**
 * Whether a required check passed on `sha` as GitHub judges it: the latest check run of that name
 * concluded success, neutral or skipped, or the latest status of that context is success.
 */
export function requiredCheckPassed(repo: SimRepo, sha: string, context: string): boolean {
  const run = repo.checkRuns.filter((r) => r.headSha === sha && r.name === context).at(-1);
  if (run?.status === "completed" && PASSING_CONCLUSIONS.has(run.conclusion ?? "")) return true;
  const status = repo.statuses.filter((s) => s.sha === sha && s.context === context).at(-1);
  return status?.state === "success";
}

/** The first required check of `branch` that has not passed on `sha`, if any. */
export function missingRequiredCheck(
  repo: SimRepo,
  branch: string,
  sha: string,
): string | undefined {
  return requiredChecksFor(repo, branch).contexts.find(
    (context) => !requiredCheckPassed(repo, sha, context),
  );
}

/**
 * Branch protection's required status checks (needs the administration permission, as on GitHub)
 * and the rules that apply to a branch (metadata read suffices).
 */
export const protectionRoutes: ApiRoutes = {
  "GET /repos/{owner}/{repo}/branches/{branch}/protection/required_status_checks": {
    auth: "installation",
    permissions: [["administration", "read"]],
    handle(ctx, request) {
      const repo = repoOf(request);
      const branch = request.params.branch!;
      const protection = repo.branchProtection.get(branch);
      if (!protection) throw new HttpError(404, "Branch not protected");
      const url = `${repoApiUrl(ctx.base, repo)}/branches/${branch}/protection/required_status_checks`;
      return {
        body: {
          url,
          strict: protection.strict,
          contexts: protection.contexts,
          contexts_url: `${url}/contexts`,
          checks: protection.contexts.map((context) => ({ context, app_id: null })),
        },
      };
    },
  },

  "GET /repos/{owner}/{repo}/rules/branches/{branch}": {
    auth: "installation",
    permissions: [["metadata", "read"]],
    handle(_ctx, request) {
      const repo = repoOf(request);
      const rules = rulesetsFor(repo, request.params.branch!).flatMap((ruleset) => {
        const source = {
          ruleset_source_type: "Repository",
          ruleset_source: repo.fullName,
          ruleset_id: ruleset.id,
        };
        const checks = {
          type: "required_status_checks",
          parameters: {
            strict_required_status_checks_policy: ruleset.strict,
            do_not_enforce_on_create: false,
            required_status_checks: ruleset.requiredChecks.map((c) => ({
              context: c.context,
              ...(c.integrationId !== undefined ? { integration_id: c.integrationId } : {}),
            })),
          },
          ...source,
        };
        return ruleset.mergeQueue
          ? [checks, { type: "merge_queue", parameters: { ...ruleset.mergeQueue }, ...source }]
          : [checks];
      });
      const { page, headers } = paginate(request, rules);
      return { body: page, headers };
    },
  },
};
